//! `/v1/traces/{trace_id}`: one trace as the invocation records in it keep
//! it: every span of the trace's recorded invocations (the newest 50), each naming
//! its invocation, so a client can draw the tree across functions (an HTTP
//! function, the queue message it sent, the function that consumed it).

use super::invocations::record_json;
use super::{ApiError, ApiState};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nimbus_store::{InvocationFilter, SpanRecord};
use serde_json::{Value, json};

/// Most records one trace answer reads (each keeps up to 128 spans, 32 KiB
/// of their text): the newest of the trace; a trace with more says
/// `truncated`.
const MAX_TRACE_RECORDS: u32 = 50;

pub(super) fn router() -> Router<ApiState> {
    Router::new().route("/v1/traces/{trace_id}", get(get_trace))
}

/// A trace id as W3C writes it: 32 lower-case hex digits.
pub(super) fn trace_id(text: String) -> Result<String, ApiError> {
    if text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(text)
    } else {
        Err(ApiError::bad_request(
            "a trace id is 32 lower-case hex digits (as in a `traceparent` header)",
        ))
    }
}

pub(super) fn span_json(span: &SpanRecord) -> Value {
    json!({
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "name": span.name,
        "kind": span.kind,
        "start_us": span.start_us,
        "duration_us": span.duration_us,
        "attributes": span
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect::<serde_json::Map<_, _>>(),
        "error": span.error,
    })
}

async fn get_trace(
    State(state): State<ApiState>,
    Path(trace): Path<String>,
) -> Result<Response, ApiError> {
    let trace = trace_id(trace)?;
    let records = state
        .history_store
        .list_invocations(InvocationFilter {
            trace_id: Some(trace.clone()),
            // One more than is answered: whether the trace has more.
            limit: MAX_TRACE_RECORDS + 1,
            with_spans: true,
            ..InvocationFilter::default()
        })
        .await?;
    let truncated = records.len() as u32 > MAX_TRACE_RECORDS;
    let records = &records[..records.len().min(MAX_TRACE_RECORDS as usize)];
    if records.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no invocation of trace `{trace}` is in the history"),
        ));
    }
    let mut spans: Vec<(u64, Value)> = Vec::new();
    for record in records {
        for span in &record.spans {
            let mut out = span_json(span);
            out["invocation_id"] = record.id.as_str().into();
            out["function"] = record.function.as_str().into();
            spans.push((span.start_us, out));
        }
    }
    spans.sort_by_key(|(start, _)| *start);
    let invocations: Vec<Value> = records
        .iter()
        .rev()
        .map(|r| {
            let mut summary = record_json(r, false);
            summary["spans_dropped"] = r.spans_dropped.into();
            summary
        })
        .collect();
    Ok(axum::Json(json!({
        "trace_id": trace,
        "invocations": invocations,
        "spans": spans.into_iter().map(|(_, span)| span).collect::<Vec<_>>(),
        "truncated": truncated,
    }))
    .into_response())
}
