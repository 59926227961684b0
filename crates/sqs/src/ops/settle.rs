//! Settling leased messages: DeleteMessage(Batch) and
//! ChangeMessageVisibility(Batch), by Nimbus receipt handles (a handle that
//! is not the message's current one is `ReceiptHandleIsInvalid`). A
//! batch's entries run concurrently, each with its own outcome.

use super::Grant;
use super::{Context, check_entry_ids, failed, seconds_ms};
use crate::error::SqsError;
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{Value, json};

/// Longest receipt handle passed to the store.
const MAX_HANDLE_LEN: usize = 1024;

/// `Successful` and `Failed` of a batch whose entries ran concurrently.
fn outcomes<E>(
    entries: &[E],
    id: impl Fn(&E) -> &String,
    results: Vec<Result<(), SqsError>>,
) -> (Vec<Value>, Vec<Value>) {
    let (mut successful, mut failures) = (Vec::new(), Vec::new());
    for (entry, result) in entries.iter().zip(results) {
        match result {
            Ok(()) => successful.push(json!({ "Id": id(entry) })),
            Err(error) => failures.push(failed(id(entry), &error)),
        }
    }
    (successful, failures)
}

fn handle(handle: &str) -> Result<&str, SqsError> {
    if handle.is_empty() || handle.len() > MAX_HANDLE_LEN {
        return Err(SqsError::invalid_receipt());
    }
    Ok(handle)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Delete {
    queue_url: String,
    receipt_handle: String,
}

pub async fn delete(context: &Context<'_>, input: Delete) -> Result<Value, SqsError> {
    let queue = context.queue(&input.queue_url, Grant::Receive)?;
    context
        .endpoint
        .store
        .delete(queue, handle(&input.receipt_handle)?)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteEntry {
    id: String,
    receipt_handle: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteBatch {
    queue_url: String,
    #[serde(default)]
    entries: Vec<DeleteEntry>,
}

pub async fn delete_batch(context: &Context<'_>, input: DeleteBatch) -> Result<Value, SqsError> {
    let queue = context.queue(&input.queue_url, Grant::Receive)?;
    check_entry_ids(input.entries.iter().map(|e| e.id.as_str()))?;
    let results = join_all(input.entries.iter().map(|entry| async move {
        let h = handle(&entry.receipt_handle)?;
        context.endpoint.store.delete(queue, h).await?;
        Ok::<(), SqsError>(())
    }))
    .await;
    let (successful, failures) = outcomes(&input.entries, |e| &e.id, results);
    Ok(json!({ "Successful": successful, "Failed": failures }))
}

fn timeout_ms(seconds: i64) -> Result<u64, SqsError> {
    seconds_ms(
        "VisibilityTimeout",
        seconds,
        nimbus_manifest::limits::VISIBILITY_TIMEOUT_MS.range.1,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Visibility {
    queue_url: String,
    receipt_handle: String,
    visibility_timeout: i64,
}

pub async fn visibility(context: &Context<'_>, input: Visibility) -> Result<Value, SqsError> {
    let queue = context.queue(&input.queue_url, Grant::Receive)?;
    let timeout = timeout_ms(input.visibility_timeout)?;
    context
        .endpoint
        .store
        .change_visibility(queue, handle(&input.receipt_handle)?, timeout)
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VisibilityEntry {
    id: String,
    receipt_handle: String,
    visibility_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VisibilityBatch {
    queue_url: String,
    #[serde(default)]
    entries: Vec<VisibilityEntry>,
}

pub async fn visibility_batch(
    context: &Context<'_>,
    input: VisibilityBatch,
) -> Result<Value, SqsError> {
    let queue = context.queue(&input.queue_url, Grant::Receive)?;
    check_entry_ids(input.entries.iter().map(|e| e.id.as_str()))?;
    let results = join_all(input.entries.iter().map(|entry| async move {
        let timeout = timeout_ms(entry.visibility_timeout.unwrap_or(0))?;
        let h = handle(&entry.receipt_handle)?;
        context
            .endpoint
            .store
            .change_visibility(queue, h, timeout)
            .await?;
        Ok::<(), SqsError>(())
    }))
    .await;
    let (successful, failures) = outcomes(&input.entries, |e| &e.id, results);
    Ok(json!({ "Successful": successful, "Failed": failures }))
}
