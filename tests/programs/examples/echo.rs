//! Reflects the request (method, path, query, headers, body) back as JSON.

use wasip2::http::types::Method;

use nimbus_guest_programs as guest;
use wasip2::exports::http::incoming_handler::Guest;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Program;
wasip2::http::proxy::export!(Program);

impl Guest for Program {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let method = match request.method() {
            Method::Get => "GET".to_owned(),
            Method::Head => "HEAD".to_owned(),
            Method::Post => "POST".to_owned(),
            Method::Put => "PUT".to_owned(),
            Method::Delete => "DELETE".to_owned(),
            Method::Connect => "CONNECT".to_owned(),
            Method::Options => "OPTIONS".to_owned(),
            Method::Trace => "TRACE".to_owned(),
            Method::Patch => "PATCH".to_owned(),
            Method::Other(other) => other,
        };
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((path_with_query.as_str(), ""));
        let headers = guest::headers(&request)
            .iter()
            .map(|(n, v)| format!("[{},{}]", guest::json_string(n), guest::json_string(v)))
            .collect::<Vec<_>>()
            .join(",");
        let body = guest::read_body(&request);
        let json = format!(
            "{{\"method\":{},\"path\":{},\"query\":{},\"headers\":[{}],\"body\":{}}}",
            guest::json_string(&method),
            guest::json_string(path),
            guest::json_string(query),
            headers,
            guest::json_string(&String::from_utf8_lossy(&body)),
        );
        guest::respond(out, 200, &[("content-type", "application/json")], json.as_bytes());
    }
}
