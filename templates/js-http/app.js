// Greets whoever the route's `{name}` parameter names.
//
// Nimbus passes path parameters as `x-nimbus-param-NAME` request headers.
// The component answers wasi:http requests through the `fetch` event of
// ComponentizeJS's engine; Nimbus's own services are imports of the world in
// `wit/world.wit`, such as the log below (a line tagged with the function and
// invocation; `nimbus logs hello`).

import { log } from 'nimbus:function/log@{{nimbus_wit_version}}';

addEventListener('fetch', (event) =>
  event.respondWith(
    (async () => {
      const name = event.request.headers.get('x-nimbus-param-name') ?? 'world';
      log('info', `greeting ${name}`);
      return new Response(`Hello, ${name}!\n`, {
        headers: { 'content-type': 'text/plain; charset=utf-8' },
      });
    })(),
  ),
);
