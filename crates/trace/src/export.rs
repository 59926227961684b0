//! The OTLP/HTTP exporter: a task that batches finished spans and POSTs them
//! as OTLP JSON to `ENDPOINT/v1/traces`, with bounded batches and retries
//! that give up rather than grow.

use crate::{FinishedSpan, MAX_PENDING_SPANS, Tracer, to_hex};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Spans sent in one request.
const MAX_BATCH: usize = 512;
/// How long a finished span may wait for a fuller batch.
const EXPORT_INTERVAL: Duration = Duration::from_millis(200);
/// One export request's time limit; a batch that fails is dropped (logged).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the exporter to send what it holds now.
#[derive(Clone, Debug)]
pub struct Exporter {
    flushes: mpsc::Sender<oneshot::Sender<()>>,
}

impl Exporter {
    /// Sends every span finished so far; returns once they are sent (or
    /// failed to send).
    pub async fn flush(&self) {
        let (done, sent) = oneshot::channel();
        if self.flushes.send(done).await.is_ok() {
            let _ = sent.await;
        }
    }
}

/// Starts exporting to `endpoint` (e.g. `http://127.0.0.1:4318`); spans
/// carry `service.name` = `nimbus` and `nimbus.app` = `app`.
pub fn spawn_exporter(endpoint: &str, app: &str) -> (Tracer, Exporter) {
    let (sink, spans) = mpsc::channel(MAX_PENDING_SPANS);
    let (flushes, flush_requests) = mpsc::channel(16);
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    tokio::spawn(run(url, app.to_owned(), spans, flush_requests));
    (
        Tracer {
            sink: Some(sink),
            recorder: None,
        },
        Exporter { flushes },
    )
}

async fn run(
    url: String,
    app: String,
    mut spans: mpsc::Receiver<FinishedSpan>,
    mut flushes: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let client = match reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("trace export disabled: {e}");
            return;
        }
    };
    let mut batch: Vec<FinishedSpan> = Vec::new();
    let mut tick = tokio::time::interval(EXPORT_INTERVAL);
    loop {
        tokio::select! {
            span = spans.recv() => match span {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= MAX_BATCH {
                        send(&client, &url, &app, std::mem::take(&mut batch)).await;
                    }
                }
                None => break,
            },
            Some(done) = flushes.recv() => {
                while let Ok(span) = spans.try_recv() {
                    batch.push(span);
                }
                for chunk in std::mem::take(&mut batch).chunks(MAX_BATCH) {
                    send(&client, &url, &app, chunk.to_vec()).await;
                }
                let _ = done.send(());
            }
            _ = tick.tick() => {
                if !batch.is_empty() {
                    send(&client, &url, &app, std::mem::take(&mut batch)).await;
                }
            }
        }
    }
    if !batch.is_empty() {
        send(&client, &url, &app, batch).await;
    }
}

async fn send(client: &reqwest::Client, url: &str, app: &str, spans: Vec<FinishedSpan>) {
    let count = spans.len();
    let body = encode(app, &spans);
    match client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
    {
        Ok(response) if response.status().is_success() => {}
        Ok(response) => {
            tracing::warn!(%url, status = %response.status(), "trace export refused; {count} spans dropped")
        }
        Err(e) => tracing::warn!(%url, "trace export failed; {count} spans dropped: {e}"),
    }
}

/// OTLP JSON (`ExportTraceServiceRequest`): ids in hex, times as strings.
fn encode(app: &str, spans: &[FinishedSpan]) -> Value {
    let string = |key: &str, value: &str| json!({ "key": key, "value": { "stringValue": value } });
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": to_hex(&s.context.trace_id),
                "spanId": to_hex(&s.context.span_id),
                "name": s.name,
                "kind": s.kind as u8,
                "startTimeUnixNano": s.start_ns.to_string(),
                "endTimeUnixNano": s.end_ns.to_string(),
                "attributes": s.attributes.iter().map(|(k, v)| string(k, v)).collect::<Vec<_>>(),
                "status": match &s.error {
                    Some(message) => json!({ "code": 2, "message": message }),
                    None => json!({ "code": 1 }),
                },
            });
            if let Some(parent) = &s.parent {
                span["parentSpanId"] = to_hex(parent).into();
            }
            span
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": [string("service.name", "nimbus"), string("nimbus.app", app)] },
            "scopeSpans": [{ "scope": { "name": "nimbus" }, "spans": spans }],
        }]
    })
}
