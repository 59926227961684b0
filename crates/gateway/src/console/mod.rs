//! The web console at `/console` on the admin listener: its pages and
//! scripts, embedded in the binary, and its sign-in. Signing in with the
//! admin token starts a session held in this process (an HttpOnly,
//! SameSite=Strict cookie); the pages call `/v1` with that cookie, and every
//! state-changing call must also carry the session's CSRF token. No page
//! runs an inline script: the Content-Security-Policy allows scripts and
//! styles from the console's own URLs only.

mod session;

pub use session::Sessions;

use crate::AdminToken;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "nimbus_console";
/// The header every state-changing `/v1` call from the console carries.
pub const CSRF_HEADER: &str = "x-nimbus-csrf";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

/// What the console's routes need.
#[derive(Clone)]
pub struct ConsoleState {
    pub token: AdminToken,
    pub sessions: Arc<Sessions>,
}

pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/console", get(|| async { see_other("/console/") }))
        .route("/console/", get(index))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route(
            "/console/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route(
            "/console/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .with_state(state)
}

/// Headers every console answer carries.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    secured(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn html(status: StatusCode, body: String) -> Response {
    secured(
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            body,
        )
            .into_response(),
    )
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secured(response)
}

/// Every value of the session cookie in the request (a page on another
/// port of the same host may have set one of its own under a longer path,
/// which the browser sends first).
fn session_cookies(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

/// The live session the request's cookies name, if any.
pub(crate) fn live_session(headers: &HeaderMap, sessions: &Sessions) -> Option<String> {
    session_cookies(headers)
        .find(|id| sessions.csrf(id).is_some())
        .map(str::to_owned)
}

/// Removes the console's session cookie from a request's headers: what is
/// forwarded to a function or another endpoint on this host never carries
/// the admin's session (browsers send a host's cookies to every port).
pub fn strip_session_cookie(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let rest: Vec<&str> = v
                .split(';')
                .map(str::trim)
                .filter(|pair| {
                    pair.split_once('=')
                        .is_none_or(|(name, _)| name != SESSION_COOKIE)
                })
                .collect();
            (!rest.is_empty()).then(|| rest.join("; "))
        })
        .filter_map(|v| HeaderValue::from_str(&v).ok())
        .collect();
    headers.remove(header::COOKIE);
    for value in kept {
        headers.append(header::COOKIE, value);
    }
}

async fn index(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let live = live_session(&headers, &state.sessions);
    let Some(csrf) = live.and_then(|id| state.sessions.csrf(&id)) else {
        return see_other("/console/login");
    };
    html(StatusCode::OK, INDEX_HTML.replace("{{csrf}}", &csrf))
}

async fn login_page() -> Response {
    html(StatusCode::OK, LOGIN_HTML.replace("{{error}}", ""))
}

/// `token=...` from the sign-in form.
fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decode(value))
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space; a
/// `%` not followed by two hex digits stays as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[a, b]) if bytes[i] == b'%' => hex(a).zip(hex(b)).map(|(a, b)| a * 16 + b),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn login(State(state): State<ConsoleState>, body: Bytes) -> Response {
    let body = String::from_utf8_lossy(&body);
    let given = form_field(&body, "token").unwrap_or_default();
    if !state.token.matches(&given) {
        let page = LOGIN_HTML.replace(
            "{{error}}",
            "<p class=\"error\" role=\"alert\">That is not the admin token.</p>",
        );
        return html(StatusCode::UNAUTHORIZED, page);
    }
    let id = match state.sessions.start() {
        Ok(id) => id,
        Err(e) => {
            tracing::error!("console: could not start a session: {e}");
            return html(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<p>Could not start a session; see the server log.</p>".to_owned(),
            );
        }
    };
    let mut response = see_other("/console/");
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        session::SESSION_TTL.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Ends the session. A plain form post (the page's sign-out button) cannot
/// set a header, so the CSRF token comes as a form field here.
async fn logout(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let body = String::from_utf8_lossy(&body);
    let Some(id) = live_session(&headers, &state.sessions) else {
        return see_other("/console/login");
    };
    let given = form_field(&body, "csrf").unwrap_or_default();
    if !state.sessions.check_csrf(&id, &given) {
        return secured(
            crate::api::ApiError::new(
                StatusCode::FORBIDDEN,
                "the sign-out form lacks this session's CSRF token",
            )
            .into_response(),
        );
    }
    state.sessions.end(&id);
    let mut response = see_other("/console/login");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("nimbus_console=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_field("a=1&token=ab%2Bc+d%zz", "token").as_deref(),
            Some("ab+c d%zz")
        );
        assert_eq!(form_field("token=x%4", "token").as_deref(), Some("x%4"));
        assert_eq!(form_field("a=1", "token"), None);
    }

    #[test]
    fn the_live_session_is_found_among_other_cookies() {
        let sessions = Sessions::default();
        let live = sessions.start().unwrap();
        let mut headers = HeaderMap::new();
        // A planted cookie of the same name comes first.
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!(
                "a=b; nimbus_console=planted; nimbus_console={live}; c=d"
            ))
            .unwrap(),
        );
        assert_eq!(live_session(&headers, &sessions), Some(live));
        strip_session_cookie(&mut headers);
        assert_eq!(headers[header::COOKIE], "a=b; c=d");
        let mut only = HeaderMap::new();
        only.insert(header::COOKIE, HeaderValue::from_static("nimbus_console=x"));
        strip_session_cookie(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }
}
