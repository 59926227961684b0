//! The signature check against AWS's published SigV4 test suite (the
//! vectors named below, with the suite's key, date and signatures) and
//! against signatures botocore makes for the same key and date.

use super::*;
use chrono::TimeZone;

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SCOPE: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

fn key() -> Option<Arc<AccessKey>> {
    Some(Arc::new(AccessKey {
        id: KEY_ID.to_owned(),
        name: "example".to_owned(),
        secret: SECRET.to_owned(),
        grants: Vec::new(),
    }))
}

/// The suite's time: 2015-08-30T12:36:00Z.
fn suite_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
}

fn request(
    method: &str,
    uri: &str,
    form: bool,
    body: &str,
    signed_headers: &str,
    signature: &str,
) -> http::Request<Bytes> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "example.amazonaws.com")
        .header("x-amz-date", "20150830T123600Z");
    if form {
        builder = builder.header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
    }
    builder
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders={signed_headers}, Signature={signature}"
            ),
        )
        .body(Bytes::from(body.to_owned()))
        .unwrap()
}

async fn check_at(request: http::Request<Bytes>, now: DateTime<Utc>) -> Result<(), SqsError> {
    verify(request, "service", key(), now).await.map(|_| ())
}

/// (vector, method, uri, form content type, body, signed headers, signature)
const SUITE: &[(&str, &str, &str, bool, &str, &str, &str)] = &[
    (
        "get-vanilla",
        "GET",
        "/",
        false,
        "",
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "post-vanilla",
        "POST",
        "/",
        false,
        "",
        "host;x-amz-date",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "/?Param2=value2&Param1=value1",
        false,
        "",
        "host;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST",
        "/",
        true,
        "",
        "content-type;host;x-amz-date",
        "0c3bc22986c53164a4755b4466c2e17db853888c5ddb98567e700a3ecdb262f6",
    ),
    // The suite signs this form folded into the query string.
    (
        "post-x-www-form-urlencoded-parameters",
        "POST",
        "/",
        true,
        "Param1=value1",
        "content-type;host;x-amz-date",
        "ad1ac0c5fa1793b9b9d23894903b9ce84044d014533a633091e12c840473b393",
    ),
    // botocore 1.43's SigV4Auth for the same key, date and request: a
    // form body hashed as the payload, as SQS query clients sign it.
    (
        "botocore: form body as payload",
        "POST",
        "/",
        true,
        "Param1=value1",
        "content-type;host;x-amz-date",
        "2f3b42f35f135abf9c562afcbbc44fc03df96dcfd4332ecebad8b39a7d4b6125",
    ),
    (
        "botocore: an SQS query request",
        "POST",
        "/",
        true,
        "Action=ListQueues&Version=2012-11-05",
        "content-type;host;x-amz-date",
        "632d847d1de95576ba18b97bac5a4d4a518848780665b2bfb52673b8dbe695f2",
    ),
];

#[tokio::test]
async fn aws_test_suite_vectors_verify() {
    for (name, method, uri, form, body, signed, signature) in SUITE {
        let result = check_at(
            request(method, uri, *form, body, signed, signature),
            suite_time(),
        )
        .await;
        assert_eq!(result, Ok(()), "{name}");
    }
}

#[tokio::test]
async fn a_changed_byte_anywhere_breaks_the_signature() {
    for (name, method, uri, form, body, signed, signature) in SUITE {
        // Another body, another query, another signature.
        let tampered_body = format!("{body}x");
        let r = check_at(
            request(method, uri, *form, &tampered_body, signed, signature),
            suite_time(),
        )
        .await;
        assert_eq!(
            r.unwrap_err().kind,
            SqsErrorKind::SignatureDoesNotMatch,
            "{name}"
        );
        let tampered_uri = if uri.contains('?') {
            format!("{uri}&x=1")
        } else {
            format!("{uri}?x=1")
        };
        let r = check_at(
            request(method, &tampered_uri, *form, body, signed, signature),
            suite_time(),
        )
        .await;
        assert_eq!(
            r.unwrap_err().kind,
            SqsErrorKind::SignatureDoesNotMatch,
            "{name}"
        );
        let mut flipped = signature.to_string();
        let last = if flipped.ends_with('0') { "1" } else { "0" };
        flipped.replace_range(63.., last);
        let r = check_at(
            request(method, uri, *form, body, signed, &flipped),
            suite_time(),
        )
        .await;
        assert_eq!(
            r.unwrap_err().kind,
            SqsErrorKind::SignatureDoesNotMatch,
            "{name}"
        );
    }
}

#[tokio::test]
async fn an_unknown_key_is_an_invalid_client_token_id() {
    let (_, method, uri, form, body, signed, signature) = SUITE[0];
    let r = verify(
        request(method, uri, form, body, signed, signature),
        "service",
        None,
        suite_time(),
    )
    .await;
    assert_eq!(r.unwrap_err().kind, SqsErrorKind::InvalidClientTokenId);
}

#[tokio::test]
async fn a_clock_skew_past_fifteen_minutes_is_refused() {
    let (_, method, uri, form, body, signed, signature) = SUITE[0];
    let at = |minutes: i64| suite_time() + chrono::Duration::minutes(minutes);
    for ok in [-14, 14] {
        assert_eq!(
            check_at(request(method, uri, form, body, signed, signature), at(ok)).await,
            Ok(())
        );
    }
    for late in [-16, 16, 60 * 24] {
        let error = check_at(
            request(method, uri, form, body, signed, signature),
            at(late),
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind, SqsErrorKind::SignatureDoesNotMatch, "{late}");
        assert!(error.message.contains("Signature"), "{}", error.message);
    }
}

#[tokio::test]
async fn another_service_is_refused_and_any_region_is_accepted() {
    let (_, method, uri, form, body, signed, signature) = SUITE[0];
    let r = verify(
        request(method, uri, form, body, signed, signature),
        "sqs",
        key(),
        suite_time(),
    )
    .await;
    assert_eq!(r.unwrap_err().kind, SqsErrorKind::SignatureDoesNotMatch);
    // The region is read from the credential scope: a request scoped to
    // another region fails only because its signature was made for
    // us-east-1, not because of the region.
    let scoped = request(method, uri, form, body, signed, signature);
    let (mut parts, body) = scoped.into_parts();
    let header = parts.headers["authorization"]
        .to_str()
        .unwrap()
        .replace("us-east-1", "eu-west-3");
    parts
        .headers
        .insert("authorization", header.parse().unwrap());
    let error = verify(
        http::Request::from_parts(parts, body),
        "service",
        key(),
        suite_time(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind, SqsErrorKind::SignatureDoesNotMatch);
    assert!(
        error.message.contains("does not match"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_request_without_a_signature_is_missing_authentication() {
    let request = http::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "example.amazonaws.com")
        .body(Bytes::new())
        .unwrap();
    let error = verify(request, "sqs", key(), suite_time())
        .await
        .unwrap_err();
    assert_eq!(error.kind, SqsErrorKind::MissingAuthenticationToken);
}

#[test]
fn the_credential_scope_names_the_key_and_region() {
    let r = request("GET", "/", false, "", "host;x-amz-date", "00");
    let (parts, _) = r.into_parts();
    assert_eq!(
        credential(&parts),
        Some(Credential {
            key_id: KEY_ID.to_owned(),
            region: "us-east-1".to_owned()
        })
    );
}
