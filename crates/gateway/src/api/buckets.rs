//! `/v1/buckets`: list buckets and objects (prefix, delimiter, pages), and
//! put, get (with a single `Range`), head and delete objects. Object bodies
//! are raw bytes with `Content-Type`, `ETag` and `x-nimbus-meta-*` headers;
//! an upload streams to object storage as it arrives, and a read streams
//! out of it as it is sent (bounded memory both ways).
//! A bucket a deployment dropped keeps its objects, which are listed, read
//! and removed as a declared bucket's are (not written), until the bucket
//! is deleted.

use super::{ApiError, ApiState};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::TryStreamExt as _;
use nimbus_bucket::{BucketError, ByteRange, PutOptions, UploadError};
use nimbus_store::{ListQuery, ObjectMeta, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Header prefix of user metadata.
const META_PREFIX: &str = "x-nimbus-meta-";
/// Objects per listing page when the caller does not say.
const DEFAULT_PAGE: u32 = 1000;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/buckets", get(list_buckets))
        .route("/v1/buckets/{bucket}", axum::routing::delete(delete_bucket))
        .route("/v1/buckets/{bucket}/objects", get(list_objects))
        .route(
            "/v1/buckets/{bucket}/objects/{*key}",
            get(get_object)
                .head(head_object)
                .put(put_object)
                .delete(delete_object),
        )
        // Uploads are bounded by each bucket's `max_object_bytes` instead.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

impl From<BucketError> for ApiError {
    fn from(e: BucketError) -> Self {
        let status = match &e {
            BucketError::NoSuchBucket(_) | BucketError::NoSuchKey(_) => StatusCode::NOT_FOUND,
            BucketError::Declared(_) => StatusCode::CONFLICT,
            BucketError::InvalidKey(_) | BucketError::Invalid(_) => StatusCode::BAD_REQUEST,
            BucketError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BucketError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            // A store that cannot be reached, or an upload that outlived its
            // registration: a 503, worth trying again.
            BucketError::Store(
                store @ (StoreError::Closed
                | StoreError::Unavailable(_)
                | StoreError::UploadNotRegistered(_)),
            ) => return ApiError::from(store.clone()),
            BucketError::Store(_) | BucketError::Blob(_) => {
                tracing::error!("bucket failure behind /v1: {e}");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "object storage failed; see the server log",
                );
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// The served version's buckets, then those kept from earlier versions
/// (holding objects, no longer declared).
async fn list_buckets(State(state): State<ApiState>) -> Result<axum::Json<Value>, ApiError> {
    let app = state.app();
    let mut buckets: Vec<Value> = app
        .buckets
        .list_buckets()
        .map(
            |b| json!({ "name": b.name, "max_object_bytes": b.max_object_bytes, "declared": true }),
        )
        .collect();
    for name in state.store.buckets_with_objects().await? {
        if app.buckets.bucket(&name).is_err() {
            buckets.push(json!({ "name": name, "declared": false }));
        }
    }
    Ok(axum::Json(json!({ "buckets": buckets })))
}

/// `DELETE /v1/buckets/{bucket}`: a bucket the version being served does
/// not declare, with its objects and their bytes.
async fn delete_bucket(
    State(state): State<ApiState>,
    Path(bucket): Path<String>,
) -> Result<Response, ApiError> {
    let deleted = state.app().buckets.delete_bucket(&bucket).await?;
    Ok(axum::Json(json!({
        "bucket": bucket,
        "objects": deleted.objects,
        "bytes": deleted.bytes,
        "blobs_removed": deleted.blobs_removed,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(default)]
    prefix: String,
    delimiter: Option<String>,
    start_after: Option<String>,
    limit: Option<u32>,
}

fn object_json(o: &ObjectMeta) -> Value {
    json!({
        "key": o.key,
        "size": o.size,
        "etag": o.etag,
        "content_type": o.content_type,
        "last_modified": nimbus_engine::rfc3339(o.created_at),
        "sequencer": nimbus_bucket::sequencer_text(o.sequencer),
        "metadata": o.user_metadata,
    })
}

async fn list_objects(
    State(state): State<ApiState>,
    Path(bucket): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let query = ListQuery {
        prefix: params.prefix,
        delimiter: params.delimiter,
        start_after: params.start_after,
        limit: params.limit.unwrap_or(DEFAULT_PAGE),
    };
    let page = state.app().buckets.list(&bucket, query).await?;
    Ok(axum::Json(json!({
        "objects": page.objects.iter().map(object_json).collect::<Vec<_>>(),
        "common_prefixes": page.common_prefixes,
        "next_start_after": page.next_start_after,
    })))
}

/// The object headers every response about an object carries.
fn object_headers(meta: &ObjectMeta) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, &meta.content_type);
    set(header::ETAG, &format!("\"{}\"", meta.etag));
    set(header::ACCEPT_RANGES, "bytes");
    set(
        header::LAST_MODIFIED,
        &nimbus_engine::rfc3339(meta.created_at),
    );
    for (name, value) in &meta.user_metadata {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::from_bytes(format!("{META_PREFIX}{name}").as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }
    headers
}

/// A single `bytes=` range; several ranges, or another unit, are refused.
fn parse_range(value: &str) -> Result<ByteRange, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!(
                "unsupported Range `{value}`: give one `bytes=FIRST-LAST`, `bytes=FIRST-` or `bytes=-SUFFIX`"
            ),
        )
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(bad());
    }
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, false) => Ok(ByteRange::Suffix(number(last)?)),
        (false, true) => Ok(ByteRange::From {
            first: number(first)?,
            last: None,
        }),
        (false, false) => Ok(ByteRange::From {
            first: number(first)?,
            last: Some(number(last)?),
        }),
        (true, true) => Err(bad()),
    }
}

async fn get_object(
    State(state): State<ApiState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(v) => Some(parse_range(v.to_str().unwrap_or_default())?),
    };
    let got = match state.app().buckets.get_stream(&bucket, &key, range).await {
        Err(BucketError::RangeNotSatisfiable { size }) => {
            let mut response =
                ApiError::from(BucketError::RangeNotSatisfiable { size }).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
        other => other?,
    };
    let mut response_headers = object_headers(&got.meta);
    // Set, since the body's own length is not known to hyper: a body that
    // then ends short of it (it cannot: the bucket's stream errs instead)
    // would be cut off, not taken as complete.
    response_headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(got.content_length()),
    );
    let status = match &got.range {
        Some(r) => {
            let content_range = format!("bytes {}-{}/{}", r.start, r.end - 1, got.meta.size);
            if let Ok(v) = HeaderValue::from_str(&content_range) {
                response_headers.insert(header::CONTENT_RANGE, v);
            }
            StatusCode::PARTIAL_CONTENT
        }
        None => StatusCode::OK,
    };
    // Sent as it is read; an error mid-way (storage failing) aborts the
    // response, so the client sees a cut-off body, never a complete one.
    let body = got.body.inspect_err(|e| {
        tracing::error!("an object read behind /v1 failed after its headers went out: {e}");
    });
    Ok((status, response_headers, Body::from_stream(body)).into_response())
}

async fn head_object(
    State(state): State<ApiState>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let meta = state.app().buckets.head(&bucket, &key).await?;
    let mut headers = object_headers(&meta);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    Ok((StatusCode::OK, headers).into_response())
}

/// The `x-nimbus-meta-*` headers, by lower-case name without the prefix.
fn user_metadata(headers: &HeaderMap) -> Result<BTreeMap<String, String>, ApiError> {
    let mut meta = BTreeMap::new();
    for (name, value) in headers {
        if let Some(short) = name.as_str().strip_prefix(META_PREFIX) {
            let value = value.to_str().map_err(|_| {
                ApiError::bad_request(format!("header `{name}` must be printable ASCII"))
            })?;
            meta.insert(short.to_owned(), value.to_owned());
        }
    }
    Ok(meta)
}

async fn put_object(
    State(state): State<ApiState>,
    Path((bucket, key)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    // One deployment's buckets for the whole upload.
    let buckets = state.app().buckets.clone();
    let limit = buckets.bucket(&bucket)?.max_object_bytes;
    nimbus_bucket::check_object_key(&key).map_err(BucketError::InvalidKey)?;
    let headers = request.headers().clone();
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > limit
    {
        return Err(BucketError::TooLarge {
            bucket: bucket.clone(),
            size: length,
            limit,
        }
        .into());
    }
    let options = PutOptions {
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        user_metadata: user_metadata(&headers)?,
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(nimbus_trace::TraceContext::parse)
            .map(|c| c.to_traceparent()),
        etag: None,
    };
    // Streamed to object storage as it arrives; the bucket refuses it once
    // it passes the limit (a 413), and nothing is stored.
    let body = request.into_body().into_data_stream();
    let meta = buckets
        .put_stream(&bucket, &key, body, options, |_, _| {
            Ok(nimbus_bucket::Checksums::default())
        })
        .await
        .map_err(|e| match e {
            UploadError::Body(e) => {
                ApiError::bad_request(format!("the body could not be read: {e}"))
            }
            UploadError::Bucket(e) => e.into(),
        })?;
    let mut response = (StatusCode::OK, axum::Json(object_json(&meta))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", meta.etag)) {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok(response)
}

async fn delete_object(
    State(state): State<ApiState>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(nimbus_trace::TraceContext::parse)
        .map(|c| c.to_traceparent());
    if state
        .app()
        .buckets
        .delete(&bucket, &key, traceparent)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(BucketError::NoSuchKey(key).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_store_or_an_expired_upload_is_503_and_a_storage_failure_500() {
        let status = |e: BucketError| ApiError::from(e).status;
        assert_eq!(
            status(BucketError::Store(StoreError::UploadNotRegistered(
                "b".into()
            ))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(BucketError::Store(StoreError::Unavailable("down".into()))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let failed = ApiError::from(BucketError::Blob("SignatureDoesNotMatch at s3".into()));
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!failed.message.contains("SignatureDoesNotMatch"));
    }
}
