//! The operation layer: one function per SQS operation, taking the JSON
//! protocol's input shape and giving its output shape, whichever protocol
//! carried the request. Here too: which grant each operation needs, how a
//! queue URL names a queue, and the inputs' parsing.

mod queues;
mod receive;
mod send;
mod settle;

use crate::SqsEndpoint;
use crate::error::{SqsError, SqsErrorKind};
use nimbus_access::{AccessKey, Action};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The account every queue URL and ARN names: Nimbus has one.
pub const ACCOUNT: &str = "000000000000";
/// Most entries in one batch, as in SQS.
pub const MAX_BATCH: usize = 10;

/// What an operation runs with: the endpoint, the caller's key, the region
/// its signature was scoped to, and the URL clients reached the endpoint
/// at (`scheme://host`), which queue URLs start with.
pub struct Context<'a> {
    pub endpoint: &'a SqsEndpoint,
    pub key: &'a AccessKey,
    pub region: &'a str,
    pub base_url: &'a str,
}

impl Context<'_> {
    pub fn queue_url(&self, queue: &str) -> String {
        format!("{}/{ACCOUNT}/{queue}", self.base_url)
    }

    pub fn queue_arn(&self, queue: &str) -> String {
        format!("arn:aws:sqs:{}:{ACCOUNT}:{queue}", self.region)
    }

    /// Whether the version being served declares `queue`.
    pub fn declared(&self, queue: &str) -> bool {
        (self.endpoint.queues)().contains(queue)
    }

    /// Refuses what the key has no grant for. The grant is checked before
    /// whether the queue exists, so a key learns nothing of queues it has
    /// no grant on.
    pub fn allow(&self, action: Action<'_>) -> Result<(), SqsError> {
        if self.key.allows(action) {
            return Ok(());
        }
        let (queue, grant) = match action {
            Action::QueueSend(q) => (q, format!("queue:{q}:send")),
            Action::QueueReceive(q) => (q, format!("queue:{q}:receive")),
            Action::QueuePurge(q) => (q, format!("queue:{q}:purge")),
            Action::QueueSee(q) => (q, format!("queue:{q}:send, receive or purge")),
            _ => ("", String::new()),
        };
        Err(SqsError::new(
            SqsErrorKind::AccessDenied,
            format!(
                "access key {} is not allowed this on queue `{queue}`: it needs the grant {grant}",
                self.key.id
            ),
        ))
    }

    /// The queue a `QueueUrl` names (its last path segment, whatever the
    /// host), once the key may do `action` on it and it is declared.
    pub fn queue<'q>(&self, url: &'q str, grant: Grant) -> Result<&'q str, SqsError> {
        let name = url.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        self.allow(grant.on(name))?;
        if !self.declared(name) {
            return Err(SqsError::no_queue(name));
        }
        Ok(name)
    }
}

/// The grant an operation on one queue needs.
#[derive(Debug, Clone, Copy)]
pub enum Grant {
    See,
    Send,
    Receive,
    Purge,
}

impl Grant {
    fn on(self, queue: &str) -> Action<'_> {
        match self {
            Grant::See => Action::QueueSee(queue),
            Grant::Send => Action::QueueSend(queue),
            Grant::Receive => Action::QueueReceive(queue),
            Grant::Purge => Action::QueuePurge(queue),
        }
    }
}

/// An operation's input, as its shape.
pub fn input<T: DeserializeOwned>(input: Value) -> Result<T, SqsError> {
    serde_json::from_value(input).map_err(|e| {
        let text = e.to_string();
        match text.strip_prefix("missing field ") {
            Some(field) => SqsError::missing(field.trim_matches('`')),
            None => SqsError::invalid(format!("invalid input: {text}")),
        }
    })
}

/// Runs `action`.
pub async fn run(context: &Context<'_>, action: &str, body: Value) -> Result<Value, SqsError> {
    match action {
        "CreateQueue" => queues::create(context, input(body)?).await,
        "GetQueueUrl" => queues::url(context, input(body)?),
        "ListQueues" => queues::list(context, input(body)?),
        "GetQueueAttributes" => queues::attributes(context, input(body)?).await,
        "PurgeQueue" => queues::purge(context, input(body)?).await,
        "SendMessage" => send::one(context, input(body)?).await,
        "SendMessageBatch" => send::batch(context, input(body)?).await,
        "ReceiveMessage" => receive::receive(context, input(body)?).await,
        "DeleteMessage" => settle::delete(context, input(body)?).await,
        "DeleteMessageBatch" => settle::delete_batch(context, input(body)?).await,
        "ChangeMessageVisibility" => settle::visibility(context, input(body)?).await,
        "ChangeMessageVisibilityBatch" => settle::visibility_batch(context, input(body)?).await,
        "SetQueueAttributes"
        | "DeleteQueue"
        | "AddPermission"
        | "RemovePermission"
        | "TagQueue"
        | "UntagQueue"
        | "ListQueueTags"
        | "ListDeadLetterSourceQueues"
        | "StartMessageMoveTask"
        | "CancelMessageMoveTask"
        | "ListMessageMoveTasks" => Err(SqsError::new(
            SqsErrorKind::UnsupportedOperation,
            format!(
                "{action} is not supported: Nimbus queues are declared as [queue.NAME] in nimbus.toml and change by deploying"
            ),
        )),
        other => Err(SqsError::new(
            SqsErrorKind::InvalidAction,
            format!("the action {other} is not valid for this endpoint"),
        )),
    }
}

/// A batch entry id: 1 to 80 letters, digits, `-` and `_`.
pub fn check_entry_ids<'a>(ids: impl Iterator<Item = &'a str> + Clone) -> Result<(), SqsError> {
    let count = ids.clone().count();
    if count == 0 {
        return Err(SqsError::new(
            SqsErrorKind::EmptyBatchRequest,
            "the batch request does not contain any entries",
        ));
    }
    if count > MAX_BATCH {
        return Err(SqsError::new(
            SqsErrorKind::TooManyEntriesInBatchRequest,
            format!("the batch request holds {count} entries; at most {MAX_BATCH} are allowed"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        let valid = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SqsError::new(
                SqsErrorKind::InvalidBatchEntryId,
                "a batch entry id is 1 to 80 letters, digits, `-` and `_`",
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::new(
                SqsErrorKind::BatchEntryIdsNotDistinct,
                format!("the batch entry id `{id}` is used twice"),
            ));
        }
    }
    Ok(())
}

/// A batch entry's failure, as `Failed` lists it.
pub fn failed(id: &str, error: &SqsError) -> Value {
    serde_json::json!({
        "Id": id,
        "SenderFault": error.kind.fault() == "Sender",
        "Code": error.kind.query_code(),
        "Message": error.message,
    })
}

/// Seconds as milliseconds, within `0..=max_ms`.
pub fn seconds_ms(name: &str, seconds: i64, max_ms: u64) -> Result<u64, SqsError> {
    let max = max_ms / 1000;
    if seconds < 0 || seconds as u64 > max {
        return Err(SqsError::invalid(format!(
            "Value {seconds} for parameter {name} is invalid. Reason: must be between 0 and {max}."
        )));
    }
    Ok(seconds as u64 * 1000)
}
