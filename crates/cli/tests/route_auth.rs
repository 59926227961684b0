//! Route authentication through the real gateway: an authentication matrix
//! for JWT (HS256, RS256 and ES256 with a JWKS) and API keys (created,
//! revoked, rate-limited and over quota through the CLI), where nothing but
//! a valid credential reaches the function, each refusal with its status.

mod support;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use nimbus_test_programs as programs;
use serde_json::{Value, json};
use std::path::PathBuf;
use support::{ADMIN_TOKEN, Nimbus, TestApp};
use tokio::process::Command;

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "orders-api";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims that pass every check, to be spoiled one at a time.
fn good_claims() -> Value {
    json!({
        "sub": "user-42",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 600,
        "nbf": now() - 10,
        "scope": "orders:read orders:write",
    })
}

fn with(claims: &Value, key: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[key] = value;
    claims
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn rs256(claims: &Value, pem: &str, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(&std::fs::read(fixture(pem)).unwrap()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn es256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let pem = std::fs::read(fixture("ec-pkcs8.pem")).unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_pem(&pem).unwrap()).unwrap()
}

/// A token with `alg: none` and no signature, written by hand (no library
/// will make one).
fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

/// An app whose `/orders` route needs a JWT with `orders:write`, `/me` any
/// JWT, `/keyed` an API key and `/open` nothing; all served by `echo`.
fn app(verifier: &str) -> TestApp {
    TestApp::new("auth")
        .function("echo", programs::ECHO, &format!("\n[auth.jwt]\n{verifier}"))
        .route(
            "/orders",
            "echo",
            "auth = \"jwt\"\nscopes = [\"orders:write\"]",
        )
        .route("/me", "echo", "auth = \"jwt\"")
        .route("/keyed", "echo", "auth = \"api_key\"")
        .route("/open", "echo", "")
}

fn hs256_verifier() -> String {
    format!(
        "algorithm = \"HS256\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\nsecret_env = \"ORDERS_JWT_SECRET\"\n"
    )
}

async fn start_with_secret(app: &TestApp, secret: Option<&str>) -> Nimbus {
    let manifest = app.write();
    let mut command = Command::new(support::nimbus_bin());
    command
        .arg("up")
        .arg(&manifest)
        .arg("--data-dir")
        .arg(app.data_dir())
        .args(["--admin-token", ADMIN_TOKEN]);
    match secret {
        Some(secret) => command.env("ORDERS_JWT_SECRET", secret),
        None => command.env_remove("ORDERS_JWT_SECRET"),
    };
    Nimbus::spawn(command).await
}

/// A client that sends only what each test gives it.
fn bare() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(support::PATIENCE)
        .build()
        .unwrap()
}

async fn call(nimbus: &Nimbus, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = bare().post(nimbus.url(path)).body("{}");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn with_token(nimbus: &Nimbus, path: &str, token: &str) -> reqwest::Response {
    call(
        nimbus,
        path,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

/// The headers the function saw, from `echo`'s answer.
async fn seen_headers(response: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 200);
    let echoed: Value = response.json().await.unwrap();
    echoed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                pair[0].as_str().unwrap().to_owned(),
                pair[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Asserts a refusal: its status, its challenge and its message.
async fn assert_refused(response: reqwest::Response, status: u16, message: &str, case: &str) {
    assert_eq!(response.status(), status, "{case}");
    if status == 401 || status == 403 {
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("realm=\"nimbus\""),
            "{case}: {challenge}"
        );
    }
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(message),
        "{case}: {error:?} lacks {message:?}"
    );
    // Refusals come from the gateway: no function ran.
    assert!(body.get("invocation_id").is_none(), "{case}");
}

#[tokio::test]
async fn hs256_tokens_are_checked_claim_by_claim() {
    let app = app(&hs256_verifier());
    let nimbus = start_with_secret(&app, Some(SECRET)).await;
    let good = good_claims();
    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("missing token", None, 401, "missing bearer token"),
        (
            "bad signature",
            Some(hs256(&good, b"another-secret-that-is-long-enough!!")),
            401,
            "signature does not verify",
        ),
        ("alg none", Some(unsigned(&good)), 401, "malformed"),
        (
            "expired beyond the leeway",
            Some(hs256(
                &with(&good, "exp", json!(now() - 120)),
                SECRET.as_bytes(),
            )),
            401,
            "expired",
        ),
        (
            "not yet valid",
            Some(hs256(
                &with(&good, "nbf", json!(now() + 120)),
                SECRET.as_bytes(),
            )),
            401,
            "not valid yet",
        ),
        (
            "wrong issuer",
            Some(hs256(
                &with(&good, "iss", json!("https://evil.test")),
                SECRET.as_bytes(),
            )),
            401,
            "issuer",
        ),
        (
            "wrong audience",
            Some(hs256(
                &with(&good, "aud", json!("billing-api")),
                SECRET.as_bytes(),
            )),
            401,
            "audience",
        ),
        (
            "no exp",
            Some(hs256(
                &{
                    let mut c = good.clone();
                    c.as_object_mut().unwrap().remove("exp");
                    c
                },
                SECRET.as_bytes(),
            )),
            401,
            "required claim",
        ),
        (
            "missing scope",
            Some(hs256(
                &with(&good, "scope", json!("orders:read")),
                SECRET.as_bytes(),
            )),
            403,
            "orders:write",
        ),
        ("garbage", Some("not.a.jwt".to_owned()), 401, "malformed"),
    ];
    // Registered claims of the wrong RFC 7519 type are refused, even when
    // their value would pass (`iss` as a list holding the accepted issuer).
    let wrong_types = [
        (
            json!(["https://evil.test", ISSUER]),
            "iss",
            "`iss` claim is an array",
        ),
        (json!([ISSUER]), "iss", "`iss` claim is an array"),
        (
            json!((now() - 10).to_string()),
            "nbf",
            "`nbf` claim is a string",
        ),
        (
            json!((now() + 600).to_string()),
            "exp",
            "`exp` claim is a string",
        ),
        (json!("yesterday"), "iat", "`iat` claim is a string"),
        (json!([AUDIENCE, 5]), "aud", "`aud` claim is an array"),
        (json!({"aud": AUDIENCE}), "aud", "`aud` claim is an object"),
        (json!(42), "sub", "`sub` claim is a number"),
        (json!(["a"]), "jti", "`jti` claim is an array"),
    ];
    let cases = cases
        .into_iter()
        .chain(wrong_types.iter().map(|(value, claim, message)| {
            (
                *claim,
                Some(hs256(&with(&good, claim, value.clone()), SECRET.as_bytes())),
                401,
                *message,
            )
        }));
    for (case, token, status, message) in cases {
        let response = match &token {
            Some(token) => with_token(&nimbus, "/orders", token).await,
            None => call(&nimbus, "/orders", &[]).await,
        };
        if status == 403 {
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.contains("insufficient_scope"), "{challenge}");
        }
        assert_refused(response, status, message, case).await;
    }

    // A valid token, and one expired only within the leeway, get through;
    // the function sees the verified claims but not the token.
    for claims in [good.clone(), with(&good, "exp", json!(now() - 5))] {
        let token = hs256(&claims, SECRET.as_bytes());
        let seen = seen_headers(with_token(&nimbus, "/orders", &token).await).await;
        assert_eq!(header(&seen, "x-nimbus-auth"), Some("jwt"));
        assert_eq!(header(&seen, "x-nimbus-auth-subject"), Some("user-42"));
        let claims_seen: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header(&seen, "x-nimbus-auth-claims").unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims_seen["sub"], "user-42");
        assert_eq!(header(&seen, "authorization"), None);
    }
    // A route without scopes takes any valid token; scopes may also be `scp`.
    let scp = {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("scope");
        c["scp"] = json!(["orders:write"]);
        c
    };
    seen_headers(
        with_token(
            &nimbus,
            "/me",
            &hs256(&with(&good, "scope", json!("")), SECRET.as_bytes()),
        )
        .await,
    )
    .await;
    seen_headers(with_token(&nimbus, "/orders", &hs256(&scp, SECRET.as_bytes())).await).await;

    // A public route cannot be fooled by a client claiming to be someone.
    let seen = seen_headers(
        call(
            &nimbus,
            "/open",
            &[("x-nimbus-auth-subject", "admin"), ("x-nimbus-auth", "jwt")],
        )
        .await,
    )
    .await;
    assert_eq!(header(&seen, "x-nimbus-auth"), Some("public"));
    assert_eq!(header(&seen, "x-nimbus-auth-subject"), None);
    // A JWT is not an API key.
    let token = hs256(&good, SECRET.as_bytes());
    assert_refused(
        with_token(&nimbus, "/keyed", &token).await,
        401,
        "missing API key",
        "jwt on api_key route",
    )
    .await;
}

#[tokio::test]
async fn rs256_and_es256_take_keys_from_a_jwks_and_refuse_algorithm_confusion() {
    let verifier = |alg: &str| {
        format!(
            "algorithm = \"{alg}\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = {:?}\n",
            fixture("jwks.json")
        )
    };
    let good = good_claims();
    let rsa = app(&verifier("RS256")).start().await;
    seen_headers(with_token(&rsa, "/orders", &rs256(&good, "rsa.pem", "rsa-1")).await).await;
    // The public key used as an HMAC secret: the classic confusion attack.
    let public_pem = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let cases = [
        (
            "HS/RS confusion",
            hs256(&good, &public_pem),
            "accepts only RS256",
        ),
        (
            "signed by another key",
            rs256(&good, "rsa-other.pem", "rsa-1"),
            "signature does not verify",
        ),
        (
            "unknown kid",
            rs256(&good, "rsa.pem", "rsa-9"),
            "no known key",
        ),
        (
            "ES256 on an RS256 app",
            es256(&good, "ec-1"),
            "accepts only RS256",
        ),
        ("alg none", unsigned(&good), "malformed"),
        (
            "expired",
            rs256(&with(&good, "exp", json!(now() - 120)), "rsa.pem", "rsa-1"),
            "expired",
        ),
    ];
    for (case, token, message) in cases {
        assert_refused(
            with_token(&rsa, "/orders", &token).await,
            401,
            message,
            case,
        )
        .await;
    }

    let ec = app(&verifier("ES256")).start().await;
    seen_headers(with_token(&ec, "/orders", &es256(&good, "ec-1")).await).await;
    // The JWKS's RSA key is not usable on an ES256 app, even by its kid.
    let forged = rs256(&good, "rsa.pem", "ec-1");
    assert_refused(
        with_token(&ec, "/orders", &forged).await,
        401,
        "accepts only ES256",
        "RS256 on ES256",
    )
    .await;
}

/// Serves `jwks` on loopback and counts the fetches.
async fn jwks_server(
    jwks: Option<String>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let response = match &jwks {
                Some(body) => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                ),
                None => "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
            };
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (url, fetches)
}

#[tokio::test]
async fn a_jwks_url_is_fetched_once_and_cached_and_its_outage_is_a_503() {
    let jwks = std::fs::read_to_string(fixture("jwks.json")).unwrap();
    let (url, fetches) = jwks_server(Some(jwks)).await;
    let verifier = format!(
        "algorithm = \"ES256\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_url = \"{url}\"\n"
    );
    let nimbus = app(&verifier).start().await;
    let good = good_claims();
    for _ in 0..5 {
        seen_headers(with_token(&nimbus, "/orders", &es256(&good, "ec-1")).await).await;
    }
    // Unknown kids do not turn into fetches: one refetch per 10 s at most,
    // and the start-up fetch was just now.
    for kid in ["x1", "x2", "x3"] {
        assert_refused(
            with_token(&nimbus, "/orders", &es256(&good, kid)).await,
            401,
            "no known key",
            kid,
        )
        .await;
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    // An identity provider that is down at start does not stop the app;
    // its routes answer 503 until keys can be fetched.
    let (down, _) = jwks_server(None).await;
    let verifier = format!(
        "algorithm = \"ES256\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_url = \"{down}\"\n"
    );
    let nimbus = app(&verifier).start().await;
    let response = with_token(&nimbus, "/orders", &es256(&good, "ec-1")).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_refused(response, 503, "keys are not available", "jwks down").await;
    assert_eq!(call(&nimbus, "/open", &[]).await.status(), 200);
}

#[tokio::test]
async fn a_missing_secret_or_unreadable_jwks_stops_the_app_at_start() {
    let app = app(&hs256_verifier());
    for (secret, expected) in [
        (None, "environment variable `ORDERS_JWT_SECRET`"),
        (Some("short"), "shorter than 32 bytes"),
    ] {
        let output = std::process::Command::new(support::nimbus_bin())
            .arg("up")
            .arg(app.write())
            .arg("--data-dir")
            .arg(app.data_dir())
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env_remove("ORDERS_JWT_SECRET")
            .env("XDG_CONFIG_HOME", support::CONFIG_HOME)
            .envs(secret.map(|s| ("ORDERS_JWT_SECRET", s)))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("[auth.jwt]"), "{stderr}");
    }
    // So does a JWKS file that cannot be read.
    let app = self::app(&format!(
        "algorithm = \"RS256\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"missing-jwks.json\"\n"
    ));
    let output = std::process::Command::new(support::nimbus_bin())
        .arg("up")
        .arg(app.write())
        .arg("--data-dir")
        .arg(app.data_dir())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("failed to load the JWKS") && stderr.contains("missing-jwks.json"),
        "{stderr}"
    );
}

/// Runs `nimbus key ...` against `nimbus` and parses its JSON output.
fn key_cli(nimbus: &Nimbus, args: &[&str]) -> Value {
    let output = std::process::Command::new(support::nimbus_bin())
        .arg("key")
        .args(args)
        .args(["--admin", &nimbus.admin])
        .env("NIMBUS_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "nimbus key {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn api_keys_are_created_limited_and_revoked_through_the_cli() {
    let app = app(&hs256_verifier());
    let nimbus = start_with_secret(&app, Some(SECRET)).await;

    let created = key_cli(&nimbus, &["create", "ci pipeline"]);
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("nbk_"), "{key}");

    assert_refused(
        call(&nimbus, "/keyed", &[]).await,
        401,
        "missing API key",
        "no key",
    )
    .await;
    let wrong = format!("{}x", &key[..key.len() - 1]);
    assert_refused(
        call(&nimbus, "/keyed", &[("x-api-key", &wrong)]).await,
        401,
        "not valid",
        "wrong key",
    )
    .await;
    assert_refused(
        call(&nimbus, "/keyed", &[("x-api-key", "nbk_nope")]).await,
        401,
        "not valid",
        "unknown id",
    )
    .await;

    let seen = seen_headers(call(&nimbus, "/keyed", &[("x-api-key", &key)]).await).await;
    assert_eq!(header(&seen, "x-nimbus-auth"), Some("api_key"));
    assert_eq!(header(&seen, "x-nimbus-api-key-id"), Some(id.as_str()));
    assert_eq!(header(&seen, "x-nimbus-api-key-name"), Some("ci pipeline"));
    assert_eq!(
        header(&seen, "x-api-key"),
        None,
        "the function must not see the key"
    );

    // Listings never show a key or its hash.
    let listed = key_cli(&nimbus, &["list", "-o", "json"]);
    let text = listed.to_string();
    assert!(!text.contains(&key[4..]), "{text}");
    assert!(!text.contains("hash"), "{text}");
    assert_eq!(listed["keys"][0]["name"], "ci pipeline");

    // A rate of one request per 1000 s with a burst of 2: the third is 429.
    let limited = key_cli(
        &nimbus,
        &["create", "slow", "--rate", "0.001", "--burst", "2"],
    );
    let limited = limited["key"].as_str().unwrap();
    for _ in 0..2 {
        seen_headers(call(&nimbus, "/keyed", &[("x-api-key", limited)]).await).await;
    }
    let response = call(&nimbus, "/keyed", &[("x-api-key", limited)]).await;
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{retry}");
    assert_refused(response, 429, "over its rate", "rate").await;

    // A quota of 2 a day holds across a restart.
    let quota = key_cli(
        &nimbus,
        &["create", "metered", "--quota", "2", "--quota-period", "day"],
    );
    let quota = quota["key"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        seen_headers(call(&nimbus, "/keyed", &[("x-api-key", &quota)]).await).await;
    }
    let response = call(&nimbus, "/keyed", &[("x-api-key", &quota)]).await;
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_refused(response, 429, "quota of 2", "quota").await;

    // Revoked: refused from then on.
    let revoked = key_cli(&nimbus, &["revoke", &id]);
    assert!(revoked["revoked_at_ms"].as_u64().is_some());
    assert_refused(
        call(&nimbus, "/keyed", &[("x-api-key", &key)]).await,
        401,
        "not valid",
        "revoked",
    )
    .await;

    let mut nimbus = nimbus;
    nimbus.terminate();
    assert_eq!(nimbus.exit_code().await, Some(0));
    let nimbus = start_with_secret(&app, Some(SECRET)).await;
    assert_refused(
        call(&nimbus, "/keyed", &[("x-api-key", &quota)]).await,
        429,
        "quota",
        "quota after restart",
    )
    .await;
    assert_refused(
        call(&nimbus, "/keyed", &[("x-api-key", &key)]).await,
        401,
        "not valid",
        "revoked after restart",
    )
    .await;
    let listed = key_cli(&nimbus, &["list", "-o", "json"]);
    let metered = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "metered")
        .unwrap();
    assert_eq!(metered["quota_used"], 2);

    // Bad requests are 400s that say what is wrong; unknown ids are 404.
    let client = support::client();
    for (body, message) in [
        (json!({}), "missing field `name`"),
        (json!({"name": "x", "rate_per_s": -1}), "rate_per_s"),
        (
            json!({"name": "x", "quota_period": "week", "quota": 1}),
            "quota_period",
        ),
        (json!({"name": "x", "colour": "red"}), "unknown field"),
    ] {
        let response = client
            .post(nimbus.admin_url("/v1/keys"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(message),
            "{error}"
        );
    }
    let response = client
        .delete(nimbus.admin_url("/v1/keys/ghost"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}
