//! `GET /metrics` on the admin listener: every counter and histogram as
//! Nimbus keeps them, plus queue gauges read from the store at scrape time.

use crate::api::ApiState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The exposition format Prometheus scrapes.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn scrape(State(state): State<ApiState>) -> Response {
    if let Err(e) = refresh_queue_gauges(&state).await {
        tracing::warn!("metrics scrape could not read queue statistics: {e}");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("queue statistics are unavailable: {e}\n"),
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        state.metrics.render(),
    )
        .into_response()
}

/// Replaces the queue gauges with what the store holds now; queues that no
/// longer exist disappear from the scrape.
async fn refresh_queue_gauges(state: &ApiState) -> Result<(), nimbus_store::StoreError> {
    let stats = state.queues.all_stats().await?;
    let metrics = &state.metrics;
    metrics.queue_messages.clear();
    metrics.queue_oldest_age.clear();
    metrics.dead_letter_messages.clear();
    for (config, s) in &stats {
        let name = &config.name;
        for (state_label, n) in [
            ("visible", s.visible),
            ("in_flight", s.in_flight),
            ("delayed", s.delayed),
        ] {
            metrics
                .queue_messages
                .with(&[name, state_label])
                .set(n as i64);
        }
        metrics
            .queue_oldest_age
            .with(&[name])
            .set((s.oldest_age_ms.unwrap_or(0) / 1000) as i64);
        if stats
            .iter()
            .any(|(q, _)| q.dead_letter_queue.as_deref() == Some(name))
        {
            metrics
                .dead_letter_messages
                .with(&[name])
                .set((s.visible + s.in_flight + s.delayed) as i64);
        }
    }
    Ok(())
}
