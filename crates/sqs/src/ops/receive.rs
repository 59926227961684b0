//! ReceiveMessage: leases up to ten messages, long-polling up to 20 s on
//! the queue's signal (woken by the store after a commit that sent to the
//! queue, as `/v1`'s receive), and gives each with the system and message
//! attributes asked for.

use super::Grant;
use super::{Context, MAX_BATCH, seconds_ms};
use crate::attributes::{from_stored, md5_hex, md5_of_attributes};
use crate::error::SqsError;
use nimbus_store::queue::ReceivedMessage;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// Longest a receive waits for messages, as in SQS.
const MAX_WAIT_SECONDS: i64 = 20;
/// While long polling, how often a receive looks again for messages that
/// became visible without a send (delays ending, leases expiring).
const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Receive {
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
    #[allow(dead_code)]
    receive_request_attempt_id: Option<String>,
}

pub async fn receive(context: &Context<'_>, input: Receive) -> Result<Value, SqsError> {
    let queue = context.queue(&input.queue_url, Grant::Receive)?;
    let max = input.max_number_of_messages.unwrap_or(1);
    if !(1..=MAX_BATCH as i64).contains(&max) {
        return Err(SqsError::invalid(format!(
            "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and {MAX_BATCH}, if provided."
        )));
    }
    let wait = input.wait_time_seconds.unwrap_or(0);
    if !(0..=MAX_WAIT_SECONDS).contains(&wait) {
        return Err(SqsError::invalid(format!(
            "Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= {MAX_WAIT_SECONDS}, if provided."
        )));
    }
    let visibility = input
        .visibility_timeout
        .map(|s| {
            seconds_ms(
                "VisibilityTimeout",
                s,
                nimbus_manifest::limits::VISIBILITY_TIMEOUT_MS.range.1,
            )
        })
        .transpose()?;
    let store = &context.endpoint.store;
    let receive = || store.receive(queue, max as u32, visibility);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait as u64);
    let mut messages = receive().await?;
    if messages.is_empty() && wait > 0 {
        let signal = context.endpoint.signals.get(queue);
        while messages.is_empty() && tokio::time::Instant::now() < deadline {
            let notified = signal.notified();
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
    let system: Vec<&str> = input
        .attribute_names
        .iter()
        .chain(&input.message_system_attribute_names)
        .map(String::as_str)
        .collect();
    let out: Vec<Value> = messages
        .iter()
        .map(|m| message(m, &system, &input.message_attribute_names))
        .collect();
    let mut result = Map::new();
    if !out.is_empty() {
        result.insert("Messages".into(), Value::Array(out));
    }
    Ok(Value::Object(result))
}

/// Whether a message attribute is among those asked for: `All`, `.*`, a
/// name, or a prefix ending in `.*`.
fn wanted(name: &str, filters: &[String]) -> bool {
    filters.iter().any(|f| {
        f == "All"
            || f == ".*"
            || f == name
            || f.strip_suffix(".*").is_some_and(|prefix| {
                name.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    })
}

/// One received message. The system attributes Nimbus knows are
/// `ApproximateReceiveCount`, `SentTimestamp` and
/// `ApproximateFirstReceiveTimestamp`; it keeps no sender or sequence
/// number, so those are not given.
fn message(m: &ReceivedMessage, system: &[&str], filters: &[String]) -> Value {
    // SQS bodies are text; a body sent as other bytes through `/v1` is
    // shown with U+FFFD for what is not UTF-8, its MD5 that of the text.
    let body = String::from_utf8_lossy(&m.body);
    let mut out = Map::new();
    out.insert("MessageId".into(), Value::from(m.message_id.clone()));
    out.insert(
        "ReceiptHandle".into(),
        Value::from(m.receipt_handle.clone()),
    );
    out.insert("MD5OfBody".into(), Value::from(md5_hex(body.as_bytes())));
    out.insert("Body".into(), Value::from(body.as_ref()));
    let all = system.contains(&"All");
    let mut attributes = Map::new();
    if all || system.contains(&"ApproximateReceiveCount") {
        attributes.insert(
            "ApproximateReceiveCount".into(),
            Value::from(m.receive_count.to_string()),
        );
    }
    if all || system.contains(&"SentTimestamp") {
        attributes.insert("SentTimestamp".into(), Value::from(m.sent_at.to_string()));
    }
    if all || system.contains(&"ApproximateFirstReceiveTimestamp") {
        attributes.insert(
            "ApproximateFirstReceiveTimestamp".into(),
            Value::from(m.first_received_at.to_string()),
        );
    }
    if !attributes.is_empty() {
        out.insert("Attributes".into(), Value::Object(attributes));
    }
    let mut typed = from_stored(&m.attributes);
    typed.retain(|name, _| wanted(name, filters));
    if let Some(md5) = md5_of_attributes(&typed) {
        out.insert("MD5OfMessageAttributes".into(), Value::from(md5));
        out.insert("MessageAttributes".into(), json!(typed));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn message_attribute_filters_match_names_and_prefixes() {
        let f = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(wanted("a", &f(&["All"])));
        assert!(wanted("a", &f(&[".*"])));
        assert!(wanted("a", &f(&["b", "a"])));
        assert!(wanted("bar.baz", &f(&["bar.*"])));
        assert!(!wanted("barbaz", &f(&["bar.*"])));
        assert!(!wanted("a", &f(&[])));
        assert!(!wanted("ab", &f(&["a"])));
    }
}
