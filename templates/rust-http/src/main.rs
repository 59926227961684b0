//! Greets whoever the route's `{name}` parameter names.
//!
//! Nimbus passes path parameters as `x-nimbus-param-NAME` request headers and
//! the function's `env` table as environment variables; what it prints goes
//! to the function's log (`nimbus logs hello`).

use wstd::http::body::Body;
use wstd::http::{Error, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    let name = request
        .headers()
        .get("x-nimbus-param-name")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("world")
        .to_owned();
    println!("greeting {name}");
    Ok(Response::new(format!("{greeting}, {name}!\n").into()))
}
