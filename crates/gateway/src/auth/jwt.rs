//! Bearer JWT verification for `auth = "jwt"` routes: the algorithm pinned
//! by the manifest, the registered claims held to their RFC 7519 types,
//! `iss`, `aud`, `exp` and `nbf` checked with a small leeway, required
//! scopes, and keys from a shared secret or a JWKS that is cached and
//! refreshed within bounds.

use super::{Denied, Principal};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use nimbus_manifest::{JwtAlgorithm, JwtConfig, JwtKeys};
use serde_json::Value;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;
/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// A token naming an unknown `kid` triggers a refetch at most this often,
/// so forged `kid`s cannot turn into a flood of fetches.
const MIN_REFETCH: Duration = Duration::from_secs(10);
/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a verifier could not be built at start.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("environment variable `{0}` (the HS256 secret of [auth.jwt]) is not set")]
    MissingSecret(String),
    #[error("the HS256 secret in `{0}` is shorter than {MIN_SECRET_BYTES} bytes")]
    ShortSecret(String),
    #[error("failed to load the JWKS: {0}")]
    Jwks(String),
}

pub struct JwtVerifier {
    config: JwtConfig,
    validation: Validation,
    keys: Keys,
}

enum Keys {
    Secret(Box<DecodingKey>),
    Jwks {
        cache: RwLock<Cached>,
        /// One fetch at a time; waiters reuse its result.
        fetching: tokio::sync::Mutex<()>,
        client: reqwest::Client,
    },
}

#[derive(Default)]
struct Cached {
    keys: Vec<(Option<String>, DecodingKey)>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

impl JwtVerifier {
    /// Builds the verifier. A secret that is missing or short, or a JWKS file
    /// that cannot be read, fails here (at start); a JWKS URL that cannot be
    /// reached yet is retried when tokens arrive.
    pub async fn new(config: JwtConfig) -> Result<Self, VerifierError> {
        let algorithm = algorithm(config.algorithm);
        // The library checks the signature only: its claim checks skip a
        // claim of the wrong type (`nbf: "later"`) and take `iss` as a list,
        // so `check_claims` does them, types first.
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let keys = match &config.keys {
            JwtKeys::SecretEnv(var) => {
                let secret =
                    std::env::var(var).map_err(|_| VerifierError::MissingSecret(var.clone()))?;
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(VerifierError::ShortSecret(var.clone()));
                }
                Keys::Secret(Box::new(DecodingKey::from_secret(secret.as_bytes())))
            }
            JwtKeys::JwksFile(_) | JwtKeys::JwksUrl(_) => Keys::Jwks {
                cache: RwLock::new(Cached::default()),
                fetching: tokio::sync::Mutex::new(()),
                client: reqwest::Client::builder()
                    .timeout(FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| VerifierError::Jwks(e.to_string()))?,
            },
        };
        let verifier = JwtVerifier {
            config,
            validation,
            keys,
        };
        match (&verifier.config.keys, verifier.refresh().await) {
            (_, Ok(())) => {}
            (JwtKeys::JwksFile(_), Err(e)) => return Err(e),
            (_, Err(e)) => tracing::warn!("JWKS not available yet, will retry: {e}"),
        }
        Ok(verifier)
    }

    /// Verifies a token and checks it carries every scope in `scopes`.
    pub(super) async fn verify(&self, token: &str, scopes: &[String]) -> Result<Principal, Denied> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("the token is malformed"))?;
        let pinned = algorithm(self.config.algorithm);
        if header.alg != pinned {
            return Err(invalid(&format!(
                "the token is signed with {:?}; this API accepts only {}",
                header.alg,
                self.config.algorithm.as_str()
            )));
        }
        let claims = match &self.keys {
            Keys::Secret(key) => self.decode(token, key)?,
            Keys::Jwks { .. } => {
                let kid = header.kid.as_deref();
                let unknown_kid = self.lookup(kid, |_| ()).is_none() && self.may_refetch();
                if (self.is_stale() || unknown_kid)
                    && let Err(e) = self.refresh().await
                {
                    tracing::warn!("JWKS refresh failed: {e}");
                }
                match self.lookup(kid, |key| self.decode(token, key)) {
                    Some(result) => result?,
                    None if self.cache().keys.is_empty() => {
                        return Err(Denied::Unavailable {
                            message: "the token verification keys are not available".into(),
                        });
                    }
                    None => return Err(invalid("no known key matches the token's `kid`")),
                }
            }
        };
        let granted = granted_scopes(&claims);
        let missing: Vec<&str> = scopes
            .iter()
            .filter(|s| !granted.contains(&s.as_str()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            let required = scopes.join(" ");
            return Err(Denied::Forbidden {
                challenge: format!(
                    "Bearer realm=\"nimbus\", error=\"insufficient_scope\", scope=\"{required}\""
                ),
                message: format!("the token lacks the scope(s) {}", missing.join(", ")),
            });
        }
        Ok(Principal::Jwt {
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .filter(|s| s.len() <= 256)
                .map(str::to_owned),
            claims: token.split('.').nth(1).unwrap_or_default().to_owned(),
        })
    }

    fn decode(&self, token: &str, key: &DecodingKey) -> Result<Value, Denied> {
        let claims = jsonwebtoken::decode::<Value>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                invalid(match e.kind() {
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key",
                    _ => "the token is not valid",
                })
            })?;
        check_claims(&claims, &self.config, unix_now()).map_err(|why| invalid(&why))?;
        Ok(claims)
    }

    fn cache(&self) -> std::sync::RwLockReadGuard<'_, Cached> {
        match &self.keys {
            Keys::Jwks { cache, .. } => cache.read().unwrap(),
            Keys::Secret(_) => unreachable!("only JWKS verifiers cache keys"),
        }
    }

    /// Runs `f` with the key for `kid` (or the only key, when the token
    /// names none and there is exactly one).
    fn lookup<T>(&self, kid: Option<&str>, f: impl FnOnce(&DecodingKey) -> T) -> Option<T> {
        let cache = self.cache();
        let key = match kid {
            Some(kid) => cache
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key),
            None if cache.keys.len() == 1 => Some(&cache.keys[0].1),
            None => None,
        };
        key.map(f)
    }

    fn is_stale(&self) -> bool {
        let refresh = Duration::from_secs(self.config.jwks_refresh_s);
        let cache = self.cache();
        cache.fetched.is_none_or(|t| t.elapsed() >= refresh) && self.may_refetch_with(&cache)
    }

    fn may_refetch(&self) -> bool {
        self.may_refetch_with(&self.cache())
    }

    fn may_refetch_with(&self, cache: &Cached) -> bool {
        cache.attempted.is_none_or(|t| t.elapsed() >= MIN_REFETCH)
    }

    /// Fetches the JWKS and replaces the cached keys; on failure the old
    /// keys stay in use.
    async fn refresh(&self) -> Result<(), VerifierError> {
        let Keys::Jwks {
            cache,
            fetching,
            client,
        } = &self.keys
        else {
            return Ok(());
        };
        let asked = Instant::now();
        let _one_at_a_time = fetching.lock().await;
        if cache.read().unwrap().attempted.is_some_and(|t| t >= asked) {
            // Another caller fetched while this one waited.
            return Ok(());
        }
        cache.write().unwrap().attempted = Some(Instant::now());
        let document = match &self.config.keys {
            JwtKeys::JwksFile(path) => tokio::fs::read(path)
                .await
                .map_err(|e| jwks(format!("cannot read {}: {e}", path.display())))?,
            JwtKeys::JwksUrl(url) => fetch(client, url).await?,
            JwtKeys::SecretEnv(_) => return Ok(()),
        };
        if document.len() > MAX_JWKS_BYTES {
            return Err(jwks(format!(
                "the JWKS is larger than {MAX_JWKS_BYTES} bytes"
            )));
        }
        let set: JwkSet = serde_json::from_slice(&document)
            .map_err(|e| jwks(format!("the JWKS is not valid: {e}")))?;
        let keys = usable_keys(&set, self.config.algorithm);
        if keys.is_empty() {
            return Err(jwks(format!(
                "the JWKS holds no key usable with {}",
                self.config.algorithm.as_str()
            )));
        }
        let mut cached = cache.write().unwrap();
        cached.keys = keys;
        cached.fetched = Some(Instant::now());
        Ok(())
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, VerifierError> {
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| jwks(format!("cannot fetch {url}: {e}")))?;
    if !response.status().is_success() {
        return Err(jwks(format!("{url} answered {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| jwks(format!("cannot read {url}: {e}")))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(jwks(format!("{url} sent more than {MAX_JWKS_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The keys of a JWKS that can verify the pinned algorithm: the right key
/// type (and curve), not marked for encryption, and not marked for another
/// algorithm.
fn usable_keys(set: &JwkSet, pinned: JwtAlgorithm) -> Vec<(Option<String>, DecodingKey)> {
    set.keys
        .iter()
        .filter(|jwk| fits(jwk, pinned))
        .filter_map(|jwk| match DecodingKey::from_jwk(jwk) {
            Ok(key) => Some((jwk.common.key_id.clone(), key)),
            Err(e) => {
                tracing::warn!(kid = ?jwk.common.key_id, "skipping a JWKS key: {e}");
                None
            }
        })
        .collect()
}

fn fits(jwk: &Jwk, pinned: JwtAlgorithm) -> bool {
    let usable = !matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    );
    let (shape, alg) = match (&jwk.algorithm, pinned) {
        (AlgorithmParameters::RSA(_), JwtAlgorithm::Rs256) => (true, KeyAlgorithm::RS256),
        (AlgorithmParameters::EllipticCurve(ec), JwtAlgorithm::Es256) => {
            (ec.curve == EllipticCurve::P256, KeyAlgorithm::ES256)
        }
        _ => (false, KeyAlgorithm::RS256),
    };
    usable && shape && jwk.common.key_algorithm.is_none_or(|a| a == alg)
}

/// The JSON type RFC 7519 §4.1 gives a registered claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClaimType {
    /// A string (`StringOrURI`, or `jti`'s case-sensitive string).
    Text,
    /// A `NumericDate`: a JSON number of seconds since the epoch.
    NumericDate,
    /// A string, or an array of strings.
    Audience,
}

/// Every registered claim of RFC 7519 §4.1 with its type.
const REGISTERED_CLAIMS: [(&str, ClaimType); 7] = [
    ("iss", ClaimType::Text),
    ("sub", ClaimType::Text),
    ("aud", ClaimType::Audience),
    ("exp", ClaimType::NumericDate),
    ("nbf", ClaimType::NumericDate),
    ("iat", ClaimType::NumericDate),
    ("jti", ClaimType::Text),
];

/// Claims every token must carry.
const REQUIRED_CLAIMS: [&str; 3] = ["exp", "iss", "aud"];

/// Checks the claims of a token whose signature verified, at `now`
/// (seconds since the epoch): every registered claim present has its RFC
/// 7519 type (else the token is refused, whatever the value), the required
/// ones are there, `exp` and `nbf` hold within the leeway, `iss` is the
/// issuer and `aud` is or contains the audience.
fn check_claims(claims: &Value, config: &JwtConfig, now: f64) -> Result<(), String> {
    let Some(object) = claims.as_object() else {
        return Err("the token's claims are not a JSON object".to_owned());
    };
    for (name, kind) in REGISTERED_CLAIMS {
        let Some(value) = object.get(name) else {
            continue;
        };
        let fits = match kind {
            ClaimType::Text => value.is_string(),
            ClaimType::NumericDate => value.is_number(),
            ClaimType::Audience => {
                value.is_string()
                    || value
                        .as_array()
                        .is_some_and(|list| list.iter().all(Value::is_string))
            }
        };
        if !fits {
            let wanted = match kind {
                ClaimType::Text => "a string",
                ClaimType::NumericDate => "a NumericDate (a number of seconds since the epoch)",
                ClaimType::Audience => "a string or an array of strings",
            };
            return Err(format!(
                "the token's `{name}` claim is {}, not {wanted} (RFC 7519)",
                json_type(value)
            ));
        }
    }
    if let Some(missing) = REQUIRED_CLAIMS.iter().find(|c| !object.contains_key(**c)) {
        return Err(format!(
            "the token lacks the required claim `{missing}` (`exp`, `iss` and `aud` are required)"
        ));
    }
    let leeway = config.leeway_s as f64;
    let date = |name: &str| object.get(name).and_then(Value::as_f64);
    if date("exp").is_some_and(|exp| exp < now - leeway) {
        return Err("the token has expired".to_owned());
    }
    if date("nbf").is_some_and(|nbf| nbf > now + leeway) {
        return Err("the token is not valid yet (`nbf`)".to_owned());
    }
    if object.get("iss").and_then(Value::as_str) != Some(config.issuer.as_str()) {
        return Err("the token's issuer (`iss`) is not accepted".to_owned());
    }
    let audience_matches = match &object["aud"] {
        Value::String(aud) => *aud == config.audience,
        Value::Array(list) => list.iter().any(|aud| *aud == *config.audience),
        _ => false,
    };
    if !audience_matches {
        return Err("the token's audience (`aud`) is not this API".to_owned());
    }
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Scopes a token grants: OAuth's space-separated `scope`, or `scp` as a
/// string or a list.
fn granted_scopes(claims: &Value) -> Vec<&str> {
    let mut scopes = Vec::new();
    for claim in ["scope", "scp"] {
        match claims.get(claim) {
            Some(Value::String(s)) => scopes.extend(s.split_whitespace()),
            Some(Value::Array(list)) => scopes.extend(list.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    scopes
}

fn algorithm(pinned: JwtAlgorithm) -> Algorithm {
    match pinned {
        JwtAlgorithm::Hs256 => Algorithm::HS256,
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Es256 => Algorithm::ES256,
    }
}

/// A JWKS that could not be loaded, saying why.
fn jwks(why: String) -> VerifierError {
    VerifierError::Jwks(why)
}

fn invalid(message: &str) -> Denied {
    Denied::Unauthenticated {
        challenge: format!(
            "Bearer realm=\"nimbus\", error=\"invalid_token\", error_description=\"{}\"",
            message.replace('"', "'")
        ),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: f64 = 1_800_000_000.0;

    fn config() -> JwtConfig {
        JwtConfig {
            algorithm: JwtAlgorithm::Hs256,
            keys: JwtKeys::SecretEnv("UNUSED".into()),
            issuer: "https://issuer.test".into(),
            audience: "orders-api".into(),
            leeway_s: 30,
            jwks_refresh_s: 300,
        }
    }

    fn good() -> Value {
        json!({
            "iss": "https://issuer.test",
            "sub": "user-42",
            "aud": "orders-api",
            "exp": NOW + 600.0,
            "nbf": NOW - 10.0,
            "iat": NOW - 10.0,
            "jti": "token-1",
        })
    }

    fn with(key: &str, value: Value) -> Value {
        let mut claims = good();
        claims[key] = value;
        claims
    }

    #[test]
    fn well_typed_claims_pass() {
        let config = config();
        for claims in [
            good(),
            with("aud", json!(["billing-api", "orders-api"])),
            with("exp", json!(NOW + 0.5)),
            with("nbf", json!(NOW + 29.0)),
            with("exp", json!(NOW - 29.0)),
            with("iat", json!(-1)),
        ] {
            assert_eq!(check_claims(&claims, &config, NOW), Ok(()), "{claims}");
        }
    }

    /// Every registered claim, with every JSON value of a type RFC 7519 does
    /// not give it, is refused with a message naming the claim, even where
    /// the value would otherwise pass (`iss` as a list holding the issuer).
    #[test]
    fn every_registered_claim_of_a_wrong_type_is_refused() {
        let config = config();
        let any_type = [
            json!(null),
            json!(true),
            json!(false),
            json!(NOW),
            json!(1),
            json!("https://issuer.test"),
            json!("orders-api"),
            json!("1800000000"),
            json!([]),
            json!(["https://issuer.test"]),
            json!(["orders-api", 1]),
            json!([NOW]),
            json!({}),
            json!({"iss": "https://issuer.test"}),
        ];
        for (name, kind) in REGISTERED_CLAIMS {
            let mut refused_types = std::collections::BTreeSet::new();
            for value in &any_type {
                let well_typed = match kind {
                    ClaimType::Text => value.is_string(),
                    ClaimType::NumericDate => value.is_number(),
                    ClaimType::Audience => {
                        value.is_string()
                            || value
                                .as_array()
                                .is_some_and(|l| l.iter().all(Value::is_string))
                    }
                };
                let result = check_claims(&with(name, value.clone()), &config, NOW);
                if well_typed {
                    assert!(
                        !result.as_ref().is_err_and(|e| e.contains("RFC 7519")),
                        "{name} = {value}: {result:?}"
                    );
                    continue;
                }
                let error = result.unwrap_err();
                assert!(
                    error.contains(&format!("`{name}` claim is {}", json_type(value))),
                    "{name} = {value}: {error}"
                );
                refused_types.insert(json_type(value));
            }
            // Each claim was tried with every JSON type it may not have.
            let others: std::collections::BTreeSet<_> = match kind {
                ClaimType::Text | ClaimType::Audience => {
                    ["null", "a boolean", "a number", "an array", "an object"].into()
                }
                ClaimType::NumericDate => {
                    ["null", "a boolean", "a string", "an array", "an object"].into()
                }
            };
            assert_eq!(refused_types, others, "{name}");
        }
    }

    #[test]
    fn required_claims_must_be_present() {
        let config = config();
        for name in REQUIRED_CLAIMS {
            let mut claims = good();
            claims.as_object_mut().unwrap().remove(name);
            let error = check_claims(&claims, &config, NOW).unwrap_err();
            assert!(
                error.contains(&format!("required claim `{name}`")),
                "{error}"
            );
        }
        for name in ["sub", "nbf", "iat", "jti"] {
            let mut claims = good();
            claims.as_object_mut().unwrap().remove(name);
            assert_eq!(check_claims(&claims, &config, NOW), Ok(()), "{name}");
        }
        let error = check_claims(&json!(["not", "an", "object"]), &config, NOW).unwrap_err();
        assert!(error.contains("not a JSON object"), "{error}");
    }

    #[test]
    fn claim_values_are_checked_within_the_leeway() {
        let config = config();
        let cases = [
            (with("exp", json!(NOW - 31.0)), "expired"),
            (with("nbf", json!(NOW + 31.0)), "not valid yet"),
            (with("iss", json!("https://evil.test")), "issuer"),
            (with("aud", json!("billing-api")), "audience"),
            (with("aud", json!(["billing-api"])), "audience"),
            (with("aud", json!([])), "audience"),
        ];
        for (claims, message) in cases {
            let error = check_claims(&claims, &config, NOW).unwrap_err();
            assert!(error.contains(message), "{claims}: {error}");
        }
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let claims = serde_json::json!({"scope": "a b", "scp": ["c"]});
        assert_eq!(granted_scopes(&claims), ["a", "b", "c"]);
        let claims = serde_json::json!({"scp": "d e"});
        assert_eq!(granted_scopes(&claims), ["d", "e"]);
        assert!(granted_scopes(&serde_json::json!({"scope": 1})).is_empty());
    }
}
