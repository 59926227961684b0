//! Route authentication settings: each HTTP trigger's `auth` and `scopes`,
//! and the app's `[auth.jwt]` token verifier.
//!
//! Every route must say how callers prove who they are; serving a route to
//! anyone is a choice written down as `auth = "public"`, never a default.

use crate::diagnostic::Diagnostics;
use crate::limits;
use crate::resolve::limit;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// How callers of one route authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAuth {
    /// Anyone may call the route.
    Public,
    /// An API key created with `nimbus key create`, in the `x-api-key` header.
    ApiKey,
    /// A bearer JWT checked by the app's `[auth.jwt]` verifier, carrying
    /// every listed scope.
    Jwt { scopes: Vec<String> },
}

/// The signature algorithm every accepted token must use. Pinned per app, so
/// a token cannot choose how it is checked (`none`, HS/RS confusion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Rs256,
    Es256,
}

impl JwtAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Es256 => "ES256",
        }
    }
}

/// Where the verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeys {
    /// HS256: the shared secret is in this environment variable of the
    /// `nimbus` process (never in the manifest).
    SecretEnv(String),
    /// RS256/ES256: a JWKS document on disk, absolute path.
    JwksFile(PathBuf),
    /// RS256/ES256: a JWKS document fetched over HTTP(S) and cached.
    JwksUrl(String),
}

/// `[auth.jwt]`: how bearer tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    pub keys: JwtKeys,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (a token's `aud` may be a list containing it).
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_s: u64,
    /// How long fetched JWKS keys are used before they are fetched again.
    pub jwks_refresh_s: u64,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub jwt: Option<Spanned<RawJwt>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwt {
    pub algorithm: Option<Spanned<String>>,
    pub issuer: Option<Spanned<String>>,
    pub audience: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    pub jwks_file: Option<Spanned<String>>,
    pub jwks_url: Option<Spanned<String>>,
    pub leeway_s: Option<Spanned<i64>>,
    pub jwks_refresh_s: Option<Spanned<i64>>,
}

/// Most scopes one route may require.
const MAX_SCOPES: usize = 32;

pub(crate) fn resolve_jwt(
    d: &mut Diagnostics,
    base_dir: &Path,
    raw: &Spanned<RawJwt>,
) -> Option<JwtConfig> {
    let jwt = raw.get_ref();
    let algorithm = match &jwt.algorithm {
        None => {
            d.error(
                raw.span(),
                "[auth.jwt] has no `algorithm`",
                "add `algorithm = \"HS256\"`, `\"RS256\"` or `\"ES256\"`: tokens signed any other way are refused",
            );
            None
        }
        Some(a) => match a.get_ref().as_str() {
            "HS256" => Some(JwtAlgorithm::Hs256),
            "RS256" => Some(JwtAlgorithm::Rs256),
            "ES256" => Some(JwtAlgorithm::Es256),
            other => {
                d.error(
                    a.span(),
                    format!("JWT algorithm `{other}` is not supported"),
                    "use \"HS256\", \"RS256\" or \"ES256\" (upper case)",
                );
                None
            }
        },
    };
    let required =
        |d: &mut Diagnostics, value: &Option<Spanned<String>>, key: &str, help: &str| match value {
            Some(v) if !v.get_ref().trim().is_empty() => Some(v.get_ref().clone()),
            Some(v) => {
                d.error(v.span(), format!("`{key}` is empty"), help);
                None
            }
            None => {
                d.error(raw.span(), format!("[auth.jwt] has no `{key}`"), help);
                None
            }
        };
    let issuer = required(
        d,
        &jwt.issuer,
        "issuer",
        "add `issuer = \"https://issuer.example\"`: tokens must carry this `iss`",
    );
    let audience = required(
        d,
        &jwt.audience,
        "audience",
        "add `audience = \"my-api\"`: tokens must carry this `aud`, so tokens minted for other services are refused",
    );
    let leeway_s = limit(d, &jwt.leeway_s, limits::JWT_LEEWAY_S);
    let jwks_refresh_s = limit(d, &jwt.jwks_refresh_s, limits::JWKS_REFRESH_S);

    let sources: Vec<(&str, &Spanned<String>)> = [
        ("secret_env", &jwt.secret_env),
        ("jwks_file", &jwt.jwks_file),
        ("jwks_url", &jwt.jwks_url),
    ]
    .into_iter()
    .filter_map(|(key, v)| v.as_ref().map(|v| (key, v)))
    .collect();
    let keys = match (algorithm, sources.as_slice()) {
        (_, []) => {
            d.error(
                raw.span(),
                "[auth.jwt] does not say where its keys come from",
                "add `secret_env = \"VAR\"` for HS256, or `jwks_file`/`jwks_url` for RS256 and ES256",
            );
            None
        }
        (_, [_, (key, extra), ..]) => {
            d.error(
                extra.span(),
                format!("`{key}` conflicts with another key source"),
                "give exactly one of `secret_env`, `jwks_file` and `jwks_url`",
            );
            None
        }
        (Some(JwtAlgorithm::Hs256), [(key, v)]) if *key != "secret_env" => {
            d.error(
                v.span(),
                format!("HS256 verifies with a shared secret, not `{key}`"),
                "use `secret_env = \"VAR\"` naming the environment variable that holds the secret",
            );
            None
        }
        (Some(alg), [("secret_env", v)]) if alg != JwtAlgorithm::Hs256 => {
            d.error(
                v.span(),
                format!(
                    "{} verifies with public keys, not a shared secret",
                    alg.as_str()
                ),
                "use `jwks_file = \"jwks.json\"` or `jwks_url = \"https://.../jwks.json\"`",
            );
            None
        }
        (_, [("secret_env", v)]) => {
            if crate::resolve::valid_env_name(v.get_ref()) {
                Some(JwtKeys::SecretEnv(v.get_ref().clone()))
            } else {
                d.error(
                    v.span(),
                    format!("`{}` is not an environment variable name", v.get_ref()),
                    "use letters, digits and `_`, not starting with a digit",
                );
                None
            }
        }
        (_, [("jwks_file", v)]) => Some(JwtKeys::JwksFile(base_dir.join(v.get_ref()))),
        (_, [(_, v)]) => {
            let url = v.get_ref();
            if url.starts_with("https://") || url.starts_with("http://") {
                Some(JwtKeys::JwksUrl(url.clone()))
            } else {
                d.error(
                    v.span(),
                    format!("`{url}` is not an http(s) URL"),
                    "give the JWKS address as `https://host/path`",
                );
                None
            }
        }
    };
    Some(JwtConfig {
        algorithm: algorithm?,
        keys: keys?,
        issuer: issuer?,
        audience: audience?,
        leeway_s,
        jwks_refresh_s,
    })
}

/// Resolves one trigger's `auth` and `scopes`; `has_jwt` says whether the
/// app declares `[auth.jwt]`.
pub(crate) fn resolve_route_auth(
    d: &mut Diagnostics,
    trigger_span: std::ops::Range<usize>,
    auth: &Option<Spanned<String>>,
    scopes: &Option<Spanned<Vec<Spanned<String>>>>,
    has_jwt: bool,
) -> Option<RouteAuth> {
    let Some(auth) = auth else {
        d.error(
            trigger_span,
            "[[trigger.http]] has no `auth`",
            "add `auth = \"api_key\"` or `auth = \"jwt\"`; to serve the route to anyone, say so with `auth = \"public\"`",
        );
        return None;
    };
    let resolved = match auth.get_ref().as_str() {
        "public" => RouteAuth::Public,
        "api_key" => RouteAuth::ApiKey,
        "jwt" => {
            if !has_jwt {
                d.error(
                    auth.span(),
                    "`auth = \"jwt\"` needs an [auth.jwt] table to verify tokens with",
                    "add [auth.jwt] with `algorithm`, `issuer`, `audience` and a key source",
                );
            }
            let mut list = Vec::new();
            for scope in scopes.iter().flat_map(|s| s.get_ref()) {
                let text = scope.get_ref();
                if text.is_empty()
                    || text.len() > 128
                    || text.chars().any(|c| !c.is_ascii_graphic())
                {
                    d.error(
                        scope.span(),
                        format!("scope `{text}` is not valid"),
                        "scopes are 1 to 128 printable ASCII characters without spaces",
                    );
                } else if !list.contains(text) {
                    list.push(text.clone());
                }
            }
            if let Some(s) = scopes
                && s.get_ref().len() > MAX_SCOPES
            {
                d.error(
                    s.span(),
                    format!("a route may require at most {MAX_SCOPES} scopes"),
                    "require fewer scopes",
                );
            }
            return Some(RouteAuth::Jwt { scopes: list });
        }
        other => {
            d.error(
                auth.span(),
                format!("`{other}` is not a route authentication mode"),
                "use \"public\", \"api_key\" or \"jwt\"",
            );
            return None;
        }
    };
    if let Some(s) = scopes {
        d.error(
            s.span(),
            format!(
                "`scopes` apply only to `auth = \"jwt\"`, not `{}`",
                auth.get_ref()
            ),
            "remove `scopes`, or use `auth = \"jwt\"`",
        );
    }
    Some(resolved)
}
