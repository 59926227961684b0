//! Who sent a request: its AWS Signature Version 4 (the `Authorization`
//! header, or the `X-Amz-*` query parameters of a presigned URL) checked
//! against the access key's secret by `scratchstack-aws-signature`, which
//! builds the canonical request (for SQS the payload hash is the SHA-256 of
//! the raw body, and the canonical query string is the URL's query only:
//! a form body is not folded into it), checks the date against the server's
//! clock (15 minutes either way) and compares in constant time. Any region
//! is accepted in the credential scope; the service must be the endpoint's.

use crate::error::{SqsError, SqsErrorKind};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use nimbus_access::AccessKey;
use scratchstack_aws_signature::errors::ServiceError;
use scratchstack_aws_signature::{
    GetSigningKeyRequest, GetSigningKeyResponse, KSecretKey, NO_ADDITIONAL_SIGNED_HEADERS,
    SignatureError, SignatureOptions, sigv4_validate_request,
};
use std::str::FromStr;
use std::sync::Arc;

/// Longest region name a credential scope may carry (it is echoed in ARNs).
const MAX_REGION_LEN: usize = 32;

/// The key id and region a request's credential scope names, if it names
/// them: what the caller looks up before [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub key_id: String,
    pub region: String,
}

/// Reads the credential scope (`KEYID/DATE/REGION/SERVICE/aws4_request`)
/// from the `Authorization` header or the `X-Amz-Credential` parameter.
/// The signature itself is checked by [`verify`].
pub fn credential(parts: &http::request::Parts) -> Option<Credential> {
    let scope = if let Some(header) = parts.headers.get(http::header::AUTHORIZATION) {
        let header = header.to_str().ok()?;
        let start = header.find("Credential=")? + "Credential=".len();
        let rest = &header[start..];
        let end = rest
            .find(|c: char| c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        rest[..end].to_owned()
    } else {
        let query = parts.uri.query()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "X-Amz-Credential")
            .map(|(_, v)| v.into_owned())?
    };
    let mut fields = scope.split('/');
    let key_id = fields.next()?.to_owned();
    let _date = fields.next()?;
    let region = fields.next()?.to_owned();
    Some(Credential { key_id, region })
}

/// Checks the signature of `request` (its body read whole) with `key`,
/// the key its credential names (`None` when there is no such key), at
/// `now`. Returns the request back on success.
pub async fn verify(
    request: http::Request<Bytes>,
    service: &str,
    key: Option<Arc<AccessKey>>,
    now: DateTime<Utc>,
) -> Result<(http::request::Parts, Bytes), SqsError> {
    let (parts, body) = request.into_parts();
    let region = credential(&parts).map(|c| c.region).unwrap_or_default();
    let valid_region = !region.is_empty()
        && region.len() <= MAX_REGION_LEN
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if credential(&parts).is_some() && !valid_region {
        return Err(SqsError::new(
            SqsErrorKind::SignatureDoesNotMatch,
            "Credential should be scoped to a valid region",
        ));
    }
    let copy = |parts: &http::request::Parts| {
        let mut request = http::Request::new(body.clone());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = parts.version;
        *request.headers_mut() = parts.headers.clone();
        request
    };
    let signed = check(
        copy(&parts),
        &region,
        service,
        key.clone(),
        now,
        SignatureOptions::default(),
    )
    .await;
    match signed {
        Ok(()) => Ok((parts, body)),
        // Query-protocol clients hash a form body as the payload, as SigV4
        // says; the signature may also have been made over the form folded
        // into the query string, which AWS's query services accept too
        // (AWS's test vector `post-x-www-form-urlencoded-parameters`).
        Err(first) if first.kind == SqsErrorKind::SignatureDoesNotMatch && is_form(&parts) => {
            let folded = SignatureOptions::url_encode_form();
            match check(copy(&parts), &region, service, key, now, folded).await {
                Ok(()) => Ok((parts, body)),
                Err(_) => Err(first),
            }
        }
        Err(error) => Err(error),
    }
}

fn is_form(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

/// One signature check, with the body canonicalized as `options` say.
async fn check(
    request: http::Request<Bytes>,
    region: &str,
    service: &str,
    key: Option<Arc<AccessKey>>,
    now: DateTime<Utc>,
    options: SignatureOptions,
) -> Result<(), SqsError> {
    let mut keys = tower::service_fn(move |wanted: GetSigningKeyRequest| {
        let key = key.clone();
        async move {
            let Some(key) = key.filter(|k| k.id == wanted.access_key()) else {
                return Err(SignatureError::InvalidClientTokenId(
                    "The security token included in the request is invalid.".to_owned(),
                )
                .into());
            };
            let secret = KSecretKey::from_str(&key.secret)?;
            let signing_key =
                secret.to_ksigning(wanted.request_date(), wanted.region(), wanted.service());
            Ok(GetSigningKeyResponse::builder()
                .signing_key(signing_key)
                .build()?)
        }
    });
    match sigv4_validate_request(
        request,
        region,
        service,
        &mut keys,
        now,
        &NO_ADDITIONAL_SIGNED_HEADERS,
        options,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(error) => Err(match error.downcast::<SignatureError>() {
            Ok(error) => signature_error(*error),
            Err(other) => {
                tracing::error!(error = %other, "sqs: signature check failed");
                SqsError::new(SqsErrorKind::InternalError, "internal error")
            }
        }),
    }
}

fn signature_error(error: SignatureError) -> SqsError {
    let kind = match error.error_code() {
        "InvalidClientTokenId" => SqsErrorKind::InvalidClientTokenId,
        "SignatureDoesNotMatch" => SqsErrorKind::SignatureDoesNotMatch,
        "IncompleteSignature" => SqsErrorKind::IncompleteSignature,
        "MissingAuthenticationToken" => SqsErrorKind::MissingAuthenticationToken,
        "MalformedQueryString" => SqsErrorKind::MalformedQueryString,
        "InternalFailure" => {
            tracing::error!(error = %error, "sqs: signature check failed");
            return SqsError::new(SqsErrorKind::InternalError, "internal error");
        }
        _ => SqsErrorKind::InvalidParameterValue,
    };
    let message = match &error {
        SignatureError::SignatureDoesNotMatch(None) => {
            "The request signature we calculated does not match the signature you provided."
                .to_owned()
        }
        other => other.to_string(),
    };
    SqsError::new(kind, message)
}

#[cfg(test)]
mod tests;
