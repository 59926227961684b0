//! `/v1/queues`: send, receive (with long polling), delete, change
//! visibility, purge, statistics, inspection and redrive of dead letters.

use super::{ApiError, ApiState, page_limit, parse_json, traceparent};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use nimbus_store::queue::{QueueConfig, QueueStats, SendMessage, StoredMessage};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Messages in one send or receive, as in SQS.
pub const MAX_BATCH: usize = 10;
/// Longest a receive may wait for messages.
pub const MAX_WAIT_MS: u64 = 20_000;
/// While long polling, how often a receive looks again for messages that
/// became visible without a send (delays ending, leases expiring).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Messages listed per page when the caller does not say.
const DEFAULT_PAGE: u32 = 100;
/// Most messages one listing page holds.
const MAX_PAGE: u32 = 1000;

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/queues", get(list_queues))
        .route("/v1/queues/{queue}", get(queue_stats).delete(delete_queue))
        .route(
            "/v1/queues/{queue}/messages",
            post(send_one).get(list_messages),
        )
        .route("/v1/queues/{queue}/messages/batch", post(send_batch))
        .route(
            "/v1/queues/{queue}/messages/{message_id}",
            delete(delete_message),
        )
        .route("/v1/queues/{queue}/receive", post(receive))
        .route(
            "/v1/queues/{queue}/receipts/{receipt}",
            delete(delete_receipt),
        )
        .route(
            "/v1/queues/{queue}/receipts/{receipt}/visibility",
            post(change_visibility),
        )
        .route("/v1/queues/{queue}/purge", post(purge))
        .route("/v1/queues/{queue}/redrive", post(redrive))
        .route("/v1/dead-letter-queues", get(list_dead_letter_queues))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageIn {
    body: Option<String>,
    body_base64: Option<String>,
    delay_ms: Option<u64>,
    dedup_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

impl MessageIn {
    /// The message to store; it carries `traceparent` (the caller's trace
    /// context) unless it sets that attribute itself.
    fn into_send(self, traceparent: Option<&str>) -> Result<SendMessage, ApiError> {
        let body = match (self.body, self.body_base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(encoded)) => BASE64.decode(encoded).map_err(|e| {
                ApiError::bad_request(format!("`body_base64` is not valid base64: {e}"))
            })?,
            _ => {
                return Err(ApiError::bad_request(
                    "give exactly one of `body` (text) and `body_base64`",
                ));
            }
        };
        if let Some(delay) = self.delay_ms
            && delay > nimbus_manifest::limits::DELAY_MS.range.1
        {
            return Err(ApiError::bad_request(format!(
                "`delay_ms` = {delay} is over the maximum of {}",
                nimbus_manifest::limits::DELAY_MS.range.1
            )));
        }
        let mut attributes = self.attributes;
        if let Some(traceparent) = traceparent {
            attributes
                .entry(nimbus_store::queue::TRACEPARENT_ATTRIBUTE.to_owned())
                .or_insert_with(|| traceparent.to_owned());
        }
        Ok(SendMessage {
            body,
            delay_ms: self.delay_ms,
            dedup_id: self.dedup_id,
            attributes,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    messages: Vec<MessageIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiveIn {
    #[serde(default = "one")]
    max_messages: u32,
    visibility_timeout_ms: Option<u64>,
    #[serde(default)]
    wait_ms: u64,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibilityIn {
    timeout_ms: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveIn {
    to: Option<String>,
    #[serde(default = "redrive_default_limit")]
    limit: u32,
}

fn redrive_default_limit() -> u32 {
    1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<u32>,
    after: Option<String>,
}

/// A body as JSON: text when it is UTF-8, base64 otherwise.
fn body_json(body: &[u8]) -> (&'static str, Value) {
    match std::str::from_utf8(body) {
        Ok(text) => ("body", Value::from(text)),
        Err(_) => ("body_base64", Value::from(BASE64.encode(body))),
    }
}

fn stats_json(config: &QueueConfig, stats: &QueueStats) -> Value {
    json!({
        "name": config.name,
        "visible": stats.visible,
        "in_flight": stats.in_flight,
        "delayed": stats.delayed,
        "oldest_age_ms": stats.oldest_age_ms,
        "visibility_timeout_ms": config.visibility_timeout_ms,
        "retention_ms": config.retention_ms,
        "delay_ms": config.delay_ms,
        "max_message_bytes": config.max_message_bytes,
        "dedup_window_ms": config.dedup_window_ms,
        "max_receive_count": config.max_receive_count,
        "dead_letter_queue": config.dead_letter_queue,
    })
}

async fn config_of(state: &ApiState, queue: &str) -> Result<QueueConfig, ApiError> {
    state
        .queues
        .queues()
        .await?
        .into_iter()
        .find(|q| q.name == queue)
        .ok_or_else(|| nimbus_store::StoreError::QueueNotFound(queue.to_owned()).into())
}

async fn list_queues(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let out: Vec<Value> = (state.queues.all_stats().await?.iter())
        .map(|(config, stats)| stats_json(config, stats))
        .collect();
    Ok(axum::Json(json!({ "queues": out })).into_response())
}

async fn queue_stats(
    State(state): State<ApiState>,
    Path(queue): Path<String>,
) -> Result<Response, ApiError> {
    let config = config_of(&state, &queue).await?;
    let stats = state.queues.stats(&queue).await?;
    Ok(axum::Json(stats_json(&config, &stats)).into_response())
}

/// `DELETE /v1/queues/{queue}`: a queue the version being served does not
/// declare (one a deployment dropped), with its messages.
async fn delete_queue(
    State(state): State<ApiState>,
    Path(queue): Path<String>,
) -> Result<Response, ApiError> {
    if state.app().queues.contains(&queue) {
        return Err(super::declared("queue", &queue));
    }
    let messages = state.queues.delete_queue(&queue).await?;
    tracing::info!(queue, messages, "deleted the queue");
    Ok(axum::Json(json!({ "queue": queue, "messages": messages })).into_response())
}

async fn send_one(
    State(state): State<ApiState>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let message =
        parse_json::<MessageIn>(&headers, &body)?.into_send(traceparent(&headers).as_deref())?;
    let receipt = state.queues.send(&queue, vec![message]).await?.remove(0);
    Ok(axum::Json(
        json!({ "message_id": receipt.message_id, "deduplicated": receipt.deduplicated }),
    )
    .into_response())
}

async fn send_batch(
    State(state): State<ApiState>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let batch = parse_json::<BatchIn>(&headers, &body)?;
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} messages"
        )));
    }
    let trace = traceparent(&headers);
    let messages = batch
        .messages
        .into_iter()
        .map(|m| m.into_send(trace.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    let receipts = state.queues.send(&queue, messages).await?;
    let results: Vec<Value> = receipts
        .into_iter()
        .map(|r| json!({ "message_id": r.message_id, "deduplicated": r.deduplicated }))
        .collect();
    Ok(axum::Json(json!({ "results": results })).into_response())
}

async fn receive(
    State(state): State<ApiState>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = parse_json::<ReceiveIn>(&headers, &body)?;
    if request.max_messages == 0 || request.max_messages as usize > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "`max_messages` must be 1 to {MAX_BATCH}"
        )));
    }
    if request.wait_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(format!(
            "`wait_ms` must be at most {MAX_WAIT_MS}"
        )));
    }
    let max_visibility = nimbus_manifest::limits::VISIBILITY_TIMEOUT_MS.range.1;
    if let Some(timeout) = request.visibility_timeout_ms
        && timeout > max_visibility
    {
        return Err(ApiError::bad_request(format!(
            "`visibility_timeout_ms` must be at most {max_visibility}"
        )));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(request.wait_ms);
    let receive = || {
        state
            .queues
            .receive(&queue, request.max_messages, request.visibility_timeout_ms)
    };
    let mut messages = receive().await?;
    if messages.is_empty() && request.wait_ms > 0 {
        // Only after the first receive has shown the queue exists: a signal is
        // kept per queue name, and unknown names must not grow that map.
        let waiter = state.waiters.get(&queue);
        while messages.is_empty() && tokio::time::Instant::now() < deadline {
            let notified = waiter.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Look again once subscribed, so a send in between is not missed.
            messages = receive().await?;
            if !messages.is_empty() {
                break;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
    let out: Vec<Value> = messages
        .into_iter()
        .map(|m| {
            let (key, body) = body_json(&m.body);
            json!({
                "message_id": m.message_id,
                key: body,
                "receipt_handle": m.receipt_handle,
                "receive_count": m.receive_count,
                "sent_at_ms": m.sent_at,
                "attributes": m.attributes,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "messages": out })).into_response())
}

async fn delete_receipt(
    State(state): State<ApiState>,
    Path((queue, receipt)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.queues.delete(&queue, &receipt).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn change_visibility(
    State(state): State<ApiState>,
    Path((queue, receipt)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request = parse_json::<VisibilityIn>(&headers, &body)?;
    let max = nimbus_manifest::limits::VISIBILITY_TIMEOUT_MS.range.1;
    if request.timeout_ms > max {
        return Err(ApiError::bad_request(format!(
            "`timeout_ms` must be at most {max}"
        )));
    }
    state
        .queues
        .change_visibility(&queue, &receipt, request.timeout_ms)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn purge(
    State(state): State<ApiState>,
    Path(queue): Path<String>,
) -> Result<Response, ApiError> {
    let purged = state.queues.purge(&queue).await?;
    Ok(axum::Json(json!({ "purged": purged })).into_response())
}

fn stored_json(m: &StoredMessage) -> Value {
    let (key, body) = body_json(&m.body);
    json!({
        "message_id": m.message_id,
        key: body,
        "sent_at_ms": m.sent_at,
        "receive_count": m.receive_count,
        "last_error": m.last_error,
        "source_queue": m.source_queue,
        "attributes": m.attributes,
    })
}

async fn list_messages(
    State(state): State<ApiState>,
    Path(queue): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(page.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let messages = state
        .queues
        .peek(&queue, limit, page.after.as_deref())
        .await?;
    let next = (messages.len() as u32 == limit)
        .then(|| messages.last().map(|m| m.message_id.clone()))
        .flatten();
    let out: Vec<Value> = messages.iter().map(stored_json).collect();
    Ok(axum::Json(json!({ "messages": out, "next": next })).into_response())
}

async fn delete_message(
    State(state): State<ApiState>,
    Path((queue, message_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.queues.delete_by_id(&queue, &message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn redrive(
    State(state): State<ApiState>,
    Path(queue): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = parse_json::<RedriveIn>(&headers, &body)?;
    let moved = state
        .queues
        .redrive(&queue, request.to.as_deref(), request.limit)
        .await?;
    Ok(axum::Json(json!({ "moved": moved })).into_response())
}

async fn list_dead_letter_queues(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let all = state.queues.all_stats().await?;
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (config, _) in &all {
        if let Some(dlq) = &config.dead_letter_queue {
            sources
                .entry(dlq.clone())
                .or_default()
                .push(config.name.clone());
        }
    }
    let mut out = Vec::new();
    for (name, source_queues) in sources {
        let Some((_, stats)) = all.iter().find(|(q, _)| q.name == name) else {
            // A dead-letter queue named but not declared holds nothing.
            continue;
        };
        out.push(json!({
            "name": name,
            "source_queues": source_queues,
            "depth": stats.visible + stats.in_flight + stats.delayed,
            "oldest_age_ms": stats.oldest_age_ms,
        }));
    }
    Ok(axum::Json(json!({ "dead_letter_queues": out })).into_response())
}
