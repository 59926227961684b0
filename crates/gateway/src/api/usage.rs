//! `/v1/usage`: each function's metered use per hour (invocations, billed
//! milliseconds, GB-seconds, outbound bytes), as the store added it up from
//! the invocation records, over a time range and for one function or all.

use super::invocations::query;
use super::{ApiError, ApiState};
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use nimbus_store::{UsageFilter, UsageRow};
use serde::Deserialize;
use serde_json::{Value, json};

/// The range read when none is given: the last day.
const DEFAULT_RANGE_MS: u64 = 24 * nimbus_store::history::HOUR_MS;
/// Megabyte-milliseconds in a gigabyte-second.
const MB_MS_PER_GB_S: f64 = 1024.0 * 1000.0;

pub(super) fn router() -> Router<ApiState> {
    Router::new().route("/v1/usage", get(usage))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    /// Hours starting at or after this (ms since the epoch).
    from_ms: Option<u64>,
    /// Hours starting before this.
    to_ms: Option<u64>,
    function: Option<String>,
}

fn row_json(row: &UsageRow) -> Value {
    json!({
        "function": row.function,
        "hour": nimbus_engine::rfc3339(row.hour),
        "hour_ms": row.hour,
        "invocations": row.invocations,
        "billed_ms": row.billed_ms,
        "mb_ms": row.mb_ms,
        "gb_seconds": row.mb_ms as f64 / MB_MS_PER_GB_S,
        "outbound_bytes": row.outbound_bytes,
    })
}

async fn usage(
    State(state): State<ApiState>,
    params: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let params = query(params)?;
    let now = state.clock.now_ms();
    // Times past what either backend stores (i64 milliseconds) mean "the
    // end of time".
    let to = params.to_ms.unwrap_or(now + 1).min(i64::MAX as u64);
    let from = params
        .from_ms
        .unwrap_or_else(|| to.saturating_sub(DEFAULT_RANGE_MS))
        .min(i64::MAX as u64);
    // Usage is kept by the hour: a range starting within an hour takes
    // that whole hour (and says so in `from_ms`).
    let from = from - from % nimbus_store::history::HOUR_MS;
    if from >= to {
        return Err(ApiError::bad_request("`from_ms` must be before `to_ms`"));
    }
    let rows = state
        .history_store
        .usage(UsageFilter {
            from,
            to,
            function: params.function,
        })
        .await?;
    let mut total = UsageRow {
        function: String::new(),
        hour: from,
        invocations: 0,
        billed_ms: 0,
        mb_ms: 0,
        outbound_bytes: 0,
    };
    for row in &rows {
        total.invocations += row.invocations;
        total.billed_ms += row.billed_ms;
        total.mb_ms += row.mb_ms;
        total.outbound_bytes += row.outbound_bytes;
    }
    Ok(axum::Json(json!({
        "from_ms": from,
        "to_ms": to,
        "usage": rows.iter().map(row_json).collect::<Vec<_>>(),
        "total": {
            "invocations": total.invocations,
            "billed_ms": total.billed_ms,
            "mb_ms": total.mb_ms,
            "gb_seconds": total.mb_ms as f64 / MB_MS_PER_GB_S,
            "outbound_bytes": total.outbound_bytes,
        },
    }))
    .into_response())
}
