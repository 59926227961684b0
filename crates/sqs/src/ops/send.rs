//! SendMessage and SendMessageBatch: bodies and typed attributes checked as
//! SQS checks them, stored as Nimbus messages (see `attributes`), answered
//! with the MD5 digests clients verify.

use super::Grant;
use super::{Context, check_entry_ids, failed, seconds_ms};
use crate::attributes::{AttributeValue, md5_hex, md5_of_attributes, to_stored, valid_text};
use crate::error::{SqsError, SqsErrorKind};
use nimbus_store::queue::{SendMessage as Message, check_message, message_size};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Most bytes of messages one batch carries (SQS's limit for a batch).
const MAX_BATCH_BYTES: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Entry {
    message_body: String,
    delay_seconds: Option<i64>,
    #[serde(default)]
    message_attributes: BTreeMap<String, AttributeValue>,
    /// `AWSTraceHeader` (X-Ray): accepted and not kept.
    #[serde(default)]
    #[allow(dead_code)]
    message_system_attributes: Option<Value>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendOne {
    queue_url: String,
    #[serde(flatten)]
    entry: Entry,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchEntry {
    id: String,
    #[serde(flatten)]
    entry: Entry,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendBatch {
    queue_url: String,
    #[serde(default)]
    entries: Vec<BatchEntry>,
}

/// A message ready to store, with its digests.
struct Prepared {
    message: Message,
    md5_of_body: String,
    md5_of_attributes: Option<String>,
}

fn prepare(entry: Entry) -> Result<Prepared, SqsError> {
    if entry.message_body.is_empty() {
        return Err(SqsError::missing("MessageBody"));
    }
    if !valid_text(&entry.message_body) {
        return Err(SqsError::new(
            SqsErrorKind::InvalidMessageContents,
            "the message body holds characters SQS does not allow (only tab, line feed, carriage return and U+0020 on)",
        ));
    }
    if entry.message_group_id.is_some() {
        return Err(SqsError::invalid(
            "MessageGroupId is for FIFO queues; Nimbus queues are standard queues",
        ));
    }
    let delay_ms = entry
        .delay_seconds
        .map(|s| seconds_ms("DelaySeconds", s, nimbus_manifest::limits::DELAY_MS.range.1))
        .transpose()?;
    if entry.message_attributes.len() > nimbus_store::queue::MAX_ATTRIBUTES {
        return Err(SqsError::invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{}].",
            entry.message_attributes.len(),
            nimbus_store::queue::MAX_ATTRIBUTES
        )));
    }
    let attributes = to_stored(&entry.message_attributes)?;
    Ok(Prepared {
        md5_of_body: md5_hex(entry.message_body.as_bytes()),
        md5_of_attributes: md5_of_attributes(&entry.message_attributes),
        message: Message {
            body: entry.message_body.into_bytes(),
            delay_ms,
            dedup_id: entry.message_deduplication_id,
            attributes,
        },
    })
}

fn sent(message_id: String, prepared: &Prepared) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("MessageId".into(), Value::from(message_id));
    out.insert(
        "MD5OfMessageBody".into(),
        Value::from(prepared.md5_of_body.clone()),
    );
    if let Some(md5) = &prepared.md5_of_attributes {
        out.insert("MD5OfMessageAttributes".into(), Value::from(md5.clone()));
    }
    out
}

pub async fn one(context: &Context<'_>, input: SendOne) -> Result<Value, SqsError> {
    let queue = context.queue(&input.queue_url, Grant::Send)?;
    let prepared = prepare(input.entry)?;
    let receipt = context
        .endpoint
        .store
        .send(queue, vec![prepared.message.clone()])
        .await?
        .remove(0);
    Ok(Value::Object(sent(receipt.message_id, &prepared)))
}

/// The valid entries are stored together (one store call, all or none);
/// each invalid one is listed in `Failed` with its reason.
pub async fn batch(context: &Context<'_>, input: SendBatch) -> Result<Value, SqsError> {
    let queue = context.queue(&input.queue_url, Grant::Send)?;
    check_entry_ids(input.entries.iter().map(|e| e.id.as_str()))?;
    let config = context
        .endpoint
        .store
        .queues()
        .await?
        .into_iter()
        .find(|q| q.name == queue)
        .ok_or_else(|| SqsError::no_queue(queue))?;
    let mut ready = Vec::new();
    let mut failures = Vec::new();
    let mut total = 0usize;
    for BatchEntry { id, entry } in input.entries {
        let checked = prepare(entry).and_then(|p| {
            check_message(&config, &p.message)?;
            Ok(p)
        });
        match checked {
            Ok(prepared) => {
                total = total.saturating_add(message_size(&prepared.message));
                ready.push((id, prepared));
            }
            Err(error) => failures.push(failed(&id, &error)),
        }
    }
    if total > MAX_BATCH_BYTES {
        return Err(SqsError::new(
            SqsErrorKind::BatchRequestTooLong,
            format!(
                "the batch's messages total {total} bytes, over the limit of {MAX_BATCH_BYTES}"
            ),
        ));
    }
    let mut successful = Vec::new();
    if !ready.is_empty() {
        let messages = ready.iter().map(|(_, p)| p.message.clone()).collect();
        let receipts = context.endpoint.store.send(queue, messages).await?;
        for ((id, prepared), receipt) in ready.iter().zip(receipts) {
            let mut entry = sent(receipt.message_id, prepared);
            entry.insert("Id".into(), Value::from(id.clone()));
            successful.push(Value::Object(entry));
        }
    }
    Ok(json!({ "Successful": successful, "Failed": failures }))
}
