//! `/v1/invocations`: the invocation history (list with filters, one record
//! with its captured output and spans), and `/v1/functions/{name}/logs`: a function's
//! output from recent records, or followed live as newline-delimited JSON.

use super::{ApiError, ApiState};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper::body::Frame;
use nimbus_store::{InvocationFilter, InvocationRecord};
use serde::Deserialize;
use serde_json::{Value, json};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{broadcast, mpsc};

/// Records listed when no `limit` is given.
const DEFAULT_PAGE: u32 = 50;
/// Most records one listing returns.
const MAX_PAGE: u32 = 1000;
/// Most records whose output one `logs` request reads (each holds up to
/// `MAX_RECORD_LOG_BYTES`).
const MAX_LOG_RECORDS: u32 = 100;
/// Records whose output `logs` reads when no `limit` is given.
const DEFAULT_LOG_RECORDS: u32 = 20;
/// Followers at once; more get 503, so idle streams cannot pile up.
const MAX_FOLLOWERS: usize = 64;
/// Lines buffered between a follower's subscription and its connection.
const FOLLOW_BUFFER: usize = 64;
/// How often a follower with nothing to read gets a blank line, so a client
/// that went away is noticed (its write fails) and its slot freed.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);
/// Longest filter value accepted (function names and ids are far shorter).
const MAX_FILTER_CHARS: usize = 256;
const OUTCOMES: [&str; 4] = ["success", "error", "timeout", "throttled"];

pub(super) fn router() -> Router<ApiState> {
    Router::new()
        .route("/v1/invocations", get(list_invocations))
        .route("/v1/invocations/{id}", get(get_invocation))
        .route("/v1/functions/{name}/logs", get(function_logs))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    function: Option<String>,
    outcome: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
    trace_id: Option<String>,
}

pub(super) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
}

fn bounded(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > MAX_FILTER_CHARS => {
            Err(ApiError::bad_request(format!(
                "`{name}` must be 1 to {MAX_FILTER_CHARS} characters"
            )))
        }
        other => Ok(other),
    }
}

async fn list_invocations(
    State(state): State<ApiState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    // A comma-separated list: `outcome=error,timeout` is every failure.
    let outcomes: Vec<String> = match &q.outcome {
        Some(list) => list.split(',').map(str::to_owned).collect(),
        None => Vec::new(),
    };
    if outcomes.iter().any(|o| !OUTCOMES.contains(&o.as_str())) {
        return Err(ApiError::bad_request(format!(
            "`outcome` must be a comma-separated list of {}",
            OUTCOMES.join(", ")
        )));
    }
    let filter = InvocationFilter {
        function: bounded("function", q.function)?,
        outcomes,
        before: bounded("before", q.before)?,
        trace_id: q.trace_id.map(super::traces::trace_id).transpose()?,
        limit: super::page_limit(q.limit, DEFAULT_PAGE, MAX_PAGE)?,
        with_logs: false,
        with_spans: false,
    };
    let records = state.history_store.list_invocations(filter.clone()).await?;
    let next = (records.len() as u32 == filter.limit)
        .then(|| records.last().map(|r| r.id.clone()))
        .flatten();
    let out: Vec<Value> = records.iter().map(|r| record_json(r, false)).collect();
    Ok(axum::Json(json!({ "invocations": out, "next": next })).into_response())
}

async fn get_invocation(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.history_store.get_invocation(&id).await? {
        Some(record) => Ok(axum::Json(record_json(&record, true)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("invocation `{id}` is not in the history (unknown, or past its retention)"),
        )),
    }
}

pub(super) fn record_json(r: &InvocationRecord, with_logs: bool) -> Value {
    let mut out = json!({
        "id": r.id,
        "function": r.function,
        "trigger": r.trigger,
        "source": r.source,
        "started_at": nimbus_engine::rfc3339(r.started_at),
        "duration_ms": r.duration_ms,
        "outcome": r.outcome,
        "error": r.error,
        "attempt": r.attempt,
        "trace_id": r.trace_id,
        "logs_truncated": r.logs_truncated,
        "node": r.node,
        "memory_mb": r.memory_mb,
        "billed_ms": r.billed_ms,
        "outbound_bytes": r.outbound_bytes,
    });
    if with_logs {
        out["logs"] = r
            .logs
            .iter()
            .map(|line| json!({ "stream": line.stream, "text": line.text }))
            .collect();
        out["spans"] = r.spans.iter().map(super::traces::span_json).collect();
        out["spans_dropped"] = r.spans_dropped.into();
    }
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    limit: Option<u32>,
}

fn ndjson(value: &Value) -> Bytes {
    let mut line = value.to_string();
    line.push('\n');
    line.into()
}

/// Without `follow`: the lines of the function's last `limit` records,
/// oldest first. With it: lines as they are written, until the client goes.
async fn function_logs(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let functions = &state.app().functions;
    if !functions.event.contains_key(&name) && !functions.http.contains(&name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("function `{name}` does not exist"),
        ));
    }
    let head = [(header::CONTENT_TYPE, "application/x-ndjson")];
    if !q.follow {
        let filter = InvocationFilter {
            function: Some(name),
            limit: super::page_limit(q.limit, DEFAULT_LOG_RECORDS, MAX_LOG_RECORDS)?,
            with_logs: true,
            ..InvocationFilter::default()
        };
        let records = state.history_store.list_invocations(filter).await?;
        let mut body = Vec::new();
        for r in records.iter().rev() {
            for line in &r.logs {
                body.extend_from_slice(&ndjson(&json!({
                    "invocation_id": r.id, "stream": line.stream, "text": line.text,
                })));
            }
            if r.logs_truncated {
                body.extend_from_slice(&ndjson(&json!({
                    "invocation_id": r.id,
                    "notice": "output truncated: the record keeps at most min(max_log_bytes, 64 KiB)",
                })));
            }
        }
        return Ok((head, body).into_response());
    }
    if q.limit.is_some() {
        return Err(ApiError::bad_request(
            "`limit` does not apply with `follow`",
        ));
    }
    if state.history.followers() >= MAX_FOLLOWERS {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_FOLLOWERS} followers already; try again later"),
        ));
    }
    let live = state.history.subscribe();
    let (sender, receiver) = mpsc::channel(FOLLOW_BUFFER);
    // The first line tells the client it is subscribed: nothing written
    // after it is missed (unless the follower falls behind).
    let hello = ndjson(&json!({ "notice": format!("following the output of `{name}`") }));
    let _ = sender.try_send(hello);
    tokio::spawn(forward(name, live, sender));
    Ok((head, axum::body::Body::new(ChannelBody(receiver))).into_response())
}

/// Copies `function`'s lines from the live feed to one follower, until the
/// follower's connection is gone.
async fn forward(
    function: String,
    mut live: broadcast::Receiver<nimbus_engine::LiveLine>,
    sender: mpsc::Sender<Bytes>,
) {
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        let line = tokio::select! {
            line = live.recv() => line,
            _ = keepalive.tick() => {
                if sender.send(Bytes::from_static(b"\n")).await.is_err() {
                    return;
                }
                continue;
            }
            () = sender.closed() => return,
        };
        let out = match line {
            Ok(line) if *line.function == *function => json!({
                "invocation_id": &*line.invocation_id,
                "stream": &*line.stream,
                "text": &*line.text,
            }),
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(missed)) => json!({
                "notice": format!("{missed} lines (of all functions) were dropped: this follower fell behind"),
            }),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if sender.send(ndjson(&out)).await.is_err() {
            return;
        }
    }
}

/// A response body fed line by line from a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|bytes| Ok(Frame::data(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(function: &str, text: &str) -> nimbus_engine::LiveLine {
        nimbus_engine::LiveLine {
            function: function.into(),
            invocation_id: "inv".into(),
            stream: "stdout".into(),
            text: text.into(),
        }
    }

    #[tokio::test]
    async fn a_follower_that_fell_behind_is_told_how_many_lines_it_lost_then_continues() {
        let (live, receiver) = broadcast::channel(4);
        // Ten lines before the follower reads any: six are lost.
        for i in 0..10 {
            live.send(line("f", &format!("line {i}"))).unwrap();
        }
        live.send(line("other", "not for this follower")).unwrap();
        let (sender, mut out) = mpsc::channel(FOLLOW_BUFFER);
        tokio::spawn(forward("f".to_owned(), receiver, sender));
        let mut next =
            async || -> Value { serde_json::from_slice(&out.recv().await.unwrap()).unwrap() };
        let notice = next().await;
        assert!(
            notice["notice"].as_str().unwrap().starts_with("7 lines"),
            "{notice}"
        );
        assert_eq!(next().await["text"], "line 7");
        assert_eq!(next().await["text"], "line 8");
        assert_eq!(next().await["text"], "line 9");
        live.send(line("f", "after")).unwrap();
        let after = next().await;
        assert_eq!(after["text"], "after");
        assert_eq!(after["invocation_id"], "inv");
    }
}
