//! `/v1/schedules`: each schedule with its expression, time zone, catch-up
//! policy, last fired tick and next fire times.

use super::{ApiError, ApiState};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use nimbus_dispatch::schedule::Ticks;
use nimbus_engine::rfc3339;
use serde::Deserialize;
use serde_json::{Value, json};

/// Next fire times listed when the caller does not say.
const DEFAULT_NEXT: usize = 5;
/// Most next fire times one listing gives per schedule.
pub const MAX_NEXT: usize = 100;

pub(super) fn router() -> Router<ApiState> {
    Router::new().route("/v1/schedules", get(list_schedules))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    next: Option<usize>,
}

async fn list_schedules(
    State(state): State<ApiState>,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let next = query.next.unwrap_or(DEFAULT_NEXT);
    if !(1..=MAX_NEXT).contains(&next) {
        return Err(ApiError::bad_request(format!(
            "`next` must be from 1 to {MAX_NEXT}"
        )));
    }
    let now = state.clock.now_ms();
    let app = state.app();
    let mut out = Vec::with_capacity(app.schedules.len());
    for trigger in app.schedules.iter() {
        let stored = state.schedule_store.schedule_state(&trigger.name).await?;
        let ticks =
            Ticks::new(trigger).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
        let after = stored.as_ref().map_or(now, |s| s.mark_ms.max(now));
        let upcoming = ticks.upcoming(after, next);
        out.push(json!({
            "name": trigger.name,
            "function": trigger.function,
            "expression": trigger.expression.describe(),
            "timezone": trigger.timezone,
            "catch_up": trigger.catch_up.as_str(),
            "last_fired": stored.and_then(|s| s.last_fired_ms).map(rfc3339),
            "next": upcoming.iter().map(|t| rfc3339(*t)).collect::<Vec<_>>(),
            "next_local": upcoming.iter().map(|t| ticks.local_rfc3339(*t)).collect::<Vec<_>>(),
        }));
    }
    Ok(axum::Json(json!({ "schedules": out, "now": rfc3339(now) })))
}
