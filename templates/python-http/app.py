"""Greets whoever the route's `{name}` parameter names.

Nimbus passes path parameters as `x-nimbus-param-NAME` request headers and
the function's `env` table as environment variables; what it prints goes to
the function's log (`nimbus logs hello`).
"""

import os

from componentize_py_types import Ok
from wit_world import exports
from wit_world.imports.wasi_http_types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        greeting = os.environ.get("GREETING", "Hello")
        name = "world"
        for key, value in request.headers().entries():
            if key == "x-nimbus-param-name":
                name = value.decode()
        print(f"greeting {name}")

        response = OutgoingResponse(
            Fields.from_list([("content-type", b"text/plain; charset=utf-8")])
        )
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        with body.write() as stream:
            # One call writes at most 4096 bytes; loop for longer bodies.
            stream.blocking_write_and_flush(f"{greeting}, {name}!\n".encode())
        OutgoingBody.finish(body, None)
