//! Route authentication on the public gateway: before a function runs (and
//! before its body is read), decides whether the request may call the route
//! and who is calling.
//!
//! What a function learns about the caller, in headers set by Nimbus (a
//! client's own `x-nimbus-*` headers are removed first):
//! - `x-nimbus-auth`: `public`, `api_key` or `jwt`;
//! - API keys: `x-nimbus-api-key-id` and `x-nimbus-api-key-name`;
//! - JWT: `x-nimbus-auth-subject` (the `sub` claim) and
//!   `x-nimbus-auth-claims`, the verified claims as unpadded base64url JSON.
//!
//! The credential itself (`x-api-key`, or `Authorization` on a JWT route) is
//! removed, so a function cannot leak or replay what it never sees.

mod jwt;
mod keys;

pub use jwt::JwtVerifier;
pub use keys::{ApiKeys, KeyView, NewKey, NewKeyError};

use crate::response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use nimbus_engine::ResponseBody;
use nimbus_manifest::RouteAuth;
use std::sync::Arc;

/// Header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Longest credential read from a request; anything longer is refused
/// before it is parsed.
const MAX_CREDENTIAL_BYTES: usize = 8 * 1024;

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    ApiKey {
        id: String,
        name: String,
    },
    Jwt {
        subject: Option<String>,
        /// The verified claims as the token carried them (base64url JSON).
        claims: String,
    },
}

/// Why a request was refused, with what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// 401: no credential, or one that does not verify.
    Unauthenticated { challenge: String, message: String },
    /// 403: a valid token without the scopes the route requires.
    Forbidden { challenge: String, message: String },
    /// 429: the key is over its rate or quota.
    Limited { retry_after_s: u64, message: String },
    /// 503: the verification keys cannot be fetched right now.
    Unavailable { message: String },
}

/// Checks credentials for every route of the app.
pub struct Authenticator {
    keys: Arc<ApiKeys>,
    jwt: Option<JwtVerifier>,
}

impl Authenticator {
    pub fn new(keys: Arc<ApiKeys>, jwt: Option<JwtVerifier>) -> Self {
        Authenticator { keys, jwt }
    }

    /// Authenticates a request for a route, then strips the credential from
    /// its headers and adds what the function may know about the caller.
    pub async fn admit(&self, auth: &RouteAuth, headers: &mut HeaderMap) -> Result<(), Denied> {
        let principal = self.authenticate(auth, headers).await?;
        headers.remove(API_KEY_HEADER);
        if matches!(auth, RouteAuth::Jwt { .. }) {
            headers.remove(header::AUTHORIZATION);
        }
        match principal {
            Principal::Anonymous => set(headers, "x-nimbus-auth", "public"),
            Principal::ApiKey { id, name } => {
                set(headers, "x-nimbus-auth", "api_key");
                set(headers, "x-nimbus-api-key-id", &id);
                set(headers, "x-nimbus-api-key-name", &name);
            }
            Principal::Jwt { subject, claims } => {
                set(headers, "x-nimbus-auth", "jwt");
                if let Some(subject) = subject {
                    set(headers, "x-nimbus-auth-subject", &subject);
                }
                set(headers, "x-nimbus-auth-claims", &claims);
            }
        }
        Ok(())
    }

    async fn authenticate(
        &self,
        auth: &RouteAuth,
        headers: &HeaderMap,
    ) -> Result<Principal, Denied> {
        match auth {
            RouteAuth::Public => Ok(Principal::Anonymous),
            RouteAuth::ApiKey => {
                let key = credential(headers.get(API_KEY_HEADER)).ok_or_else(|| {
                    api_key_denied("missing API key: send it in the `x-api-key` header")
                })?;
                self.keys.admit(key)
            }
            RouteAuth::Jwt { scopes } => {
                let Some(jwt) = &self.jwt else {
                    // The manifest refuses `auth = "jwt"` without [auth.jwt].
                    return Err(Denied::Unavailable {
                        message: "no token verifier is configured".into(),
                    });
                };
                let token = credential(headers.get(header::AUTHORIZATION))
                    .and_then(bearer)
                    .ok_or_else(|| Denied::Unauthenticated {
                        challenge: "Bearer realm=\"nimbus\"".into(),
                        message: "missing bearer token: send `Authorization: Bearer TOKEN`".into(),
                    })?;
                jwt.verify(token, scopes).await
            }
        }
    }
}

/// A header's value as text, if present and of a sane length.
fn credential(value: Option<&HeaderValue>) -> Option<&str> {
    value
        .filter(|v| v.len() <= MAX_CREDENTIAL_BYTES)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The token of `Bearer TOKEN` (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn api_key_denied(message: &str) -> Denied {
    Denied::Unauthenticated {
        challenge: "ApiKey realm=\"nimbus\", header=\"x-api-key\"".into(),
        message: message.into(),
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

impl Denied {
    pub fn into_response(self) -> hyper::Response<ResponseBody> {
        let (status, message, extra) = match self {
            Denied::Unauthenticated { challenge, message } => (
                StatusCode::UNAUTHORIZED,
                message,
                Some((header::WWW_AUTHENTICATE, challenge)),
            ),
            Denied::Forbidden { challenge, message } => (
                StatusCode::FORBIDDEN,
                message,
                Some((header::WWW_AUTHENTICATE, challenge)),
            ),
            Denied::Limited {
                retry_after_s,
                message,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                message,
                Some((header::RETRY_AFTER, retry_after_s.max(1).to_string())),
            ),
            Denied::Unavailable { message } => (
                StatusCode::SERVICE_UNAVAILABLE,
                message,
                Some((header::RETRY_AFTER, "5".to_owned())),
            ),
        };
        let mut response = response::error(status, &message, None);
        if let Some((name, value)) = extra
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn constant_time_eq_compares_whole_values() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
