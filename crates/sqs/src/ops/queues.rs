//! The queue operations: CreateQueue (of a declared queue only), GetQueueUrl,
//! ListQueues, GetQueueAttributes and PurgeQueue.

use super::{Context, Grant};
use crate::error::{SqsError, SqsErrorKind};
use nimbus_access::Action;
use nimbus_store::queue::QueueConfig;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Most queue URLs one ListQueues answer holds, as in SQS.
const MAX_LIST: usize = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateQueue {
    queue_name: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// CreateQueue answers with the URL of a queue the version being served
/// declares, when the attributes given (if any) are the declared ones; as
/// SQS does for an existing queue, different attributes are refused
/// (`QueueNameExists`): a queue changes by editing nimbus.toml and
/// deploying. Tags are accepted and not kept.
pub async fn create(context: &Context<'_>, input: CreateQueue) -> Result<Value, SqsError> {
    let name = input.queue_name.as_str();
    context.allow(Action::QueueSee(name))?;
    if !context.declared(name) {
        return Err(SqsError::new(
            SqsErrorKind::UnsupportedOperation,
            format!(
                "queue `{name}` is not declared: declare [queue.{name}] in nimbus.toml and deploy (Nimbus creates queues from the manifest, not through CreateQueue)"
            ),
        ));
    }
    if !input.attributes.is_empty() {
        let config = config(context, name).await?;
        let declared = queue_attributes(context, &config);
        for (attribute, given) in &input.attributes {
            let same = match attribute.as_str() {
                "RedrivePolicy" => same_redrive(given, &config),
                "FifoQueue" | "ContentBasedDeduplication" => given == "false",
                "SqsManagedSseEnabled" => true,
                other => match declared.get(other) {
                    Some(value) => value.as_str() == Some(given.trim()),
                    None => {
                        return Err(SqsError::new(
                            SqsErrorKind::InvalidAttributeName,
                            format!("Nimbus queues do not support the attribute {other}"),
                        ));
                    }
                },
            };
            if !same {
                let now = declared
                    .get(attribute)
                    .and_then(Value::as_str)
                    .unwrap_or("not set");
                return Err(SqsError::new(
                    SqsErrorKind::QueueNameExists,
                    format!(
                        "queue `{name}` is declared with {attribute} = {now}, not {given}: change [queue.{name}] in nimbus.toml and deploy"
                    ),
                ));
            }
        }
    }
    Ok(json!({ "QueueUrl": context.queue_url(name) }))
}

/// Whether a RedrivePolicy names the declared dead-letter queue and count.
fn same_redrive(given: &str, config: &QueueConfig) -> bool {
    let Ok(policy) = serde_json::from_str::<Value>(given) else {
        return false;
    };
    let target = policy["deadLetterTargetArn"]
        .as_str()
        .and_then(|arn| arn.rsplit(':').next());
    let count = match &policy["maxReceiveCount"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    target == config.dead_letter_queue.as_deref()
        && count == config.max_receive_count.map(u64::from)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueueUrl {
    queue_name: String,
}

pub fn url(context: &Context<'_>, input: GetQueueUrl) -> Result<Value, SqsError> {
    let name = input.queue_name.as_str();
    context.allow(Action::QueueSee(name))?;
    if !context.declared(name) {
        return Err(SqsError::no_queue(name));
    }
    Ok(json!({ "QueueUrl": context.queue_url(name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueues {
    #[serde(default)]
    queue_name_prefix: String,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// The declared queues the key has a grant on, by name, after the
/// `NextToken` (the last name of the page before) when given.
pub fn list(context: &Context<'_>, input: ListQueues) -> Result<Value, SqsError> {
    let limit = match input.max_results {
        None => MAX_LIST,
        Some(n) if (1..=MAX_LIST as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(SqsError::invalid(format!(
                "Value {n} for parameter MaxResults is invalid. Reason: must be between 1 and {MAX_LIST}."
            )));
        }
    };
    let declared = (context.endpoint.queues)();
    let mut names = declared
        .iter()
        .filter(|q| q.starts_with(&input.queue_name_prefix))
        .filter(|q| {
            input
                .next_token
                .as_deref()
                .is_none_or(|after| q.as_str() > after)
        })
        .filter(|q| context.key.allows(Action::QueueSee(q)));
    let page: Vec<&String> = names.by_ref().take(limit).collect();
    let more = input.max_results.is_some() && names.next().is_some();
    let mut out = Map::new();
    out.insert(
        "QueueUrls".to_owned(),
        page.iter()
            .map(|q| Value::from(context.queue_url(q)))
            .collect(),
    );
    if more && let Some(last) = page.last() {
        out.insert("NextToken".to_owned(), Value::from(last.as_str()));
    }
    Ok(Value::Object(out))
}

async fn config(context: &Context<'_>, name: &str) -> Result<QueueConfig, SqsError> {
    context
        .endpoint
        .store
        .queues()
        .await?
        .into_iter()
        .find(|q| q.name == name)
        .ok_or_else(|| SqsError::no_queue(name))
}

/// A queue's settings as SQS attributes (the counts come from its stats).
fn queue_attributes(context: &Context<'_>, config: &QueueConfig) -> Map<String, Value> {
    let seconds = |ms: u64| Value::from((ms / 1000).to_string());
    let mut out = Map::new();
    out.insert(
        "VisibilityTimeout".into(),
        seconds(config.visibility_timeout_ms),
    );
    out.insert(
        "MessageRetentionPeriod".into(),
        seconds(config.retention_ms),
    );
    out.insert("DelaySeconds".into(), seconds(config.delay_ms));
    out.insert(
        "MaximumMessageSize".into(),
        Value::from(config.max_message_bytes.to_string()),
    );
    out.insert("ReceiveMessageWaitTimeSeconds".into(), Value::from("0"));
    out.insert(
        "QueueArn".into(),
        Value::from(context.queue_arn(&config.name)),
    );
    if let (Some(dlq), Some(count)) = (&config.dead_letter_queue, config.max_receive_count) {
        let policy =
            json!({ "deadLetterTargetArn": context.queue_arn(dlq), "maxReceiveCount": count });
        out.insert("RedrivePolicy".into(), Value::from(policy.to_string()));
    }
    out
}

/// The attributes GetQueueAttributes knows; others SQS has (creation
/// times, policies, encryption, FIFO settings) Nimbus does not keep, and
/// asking for them gives nothing.
const COUNTS: &[&str] = &[
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
];
const KNOWN_ELSEWHERE: &[&str] = &[
    "Policy",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueueAttributes {
    queue_url: String,
    #[serde(default)]
    attribute_names: Vec<String>,
}

pub async fn attributes(
    context: &Context<'_>,
    input: GetQueueAttributes,
) -> Result<Value, SqsError> {
    let name = context.queue(&input.queue_url, Grant::See)?;
    let config = config(context, name).await?;
    let mut all = queue_attributes(context, &config);
    let all_wanted = input.attribute_names.iter().any(|a| a == "All");
    for wanted in &input.attribute_names {
        let known = wanted == "All"
            || all.contains_key(wanted)
            || wanted == "RedrivePolicy"
            || COUNTS.contains(&wanted.as_str())
            || KNOWN_ELSEWHERE.contains(&wanted.as_str());
        if !known {
            return Err(SqsError::new(
                SqsErrorKind::InvalidAttributeName,
                format!("Unknown Attribute {wanted}."),
            ));
        }
    }
    if all_wanted
        || input
            .attribute_names
            .iter()
            .any(|a| COUNTS.contains(&a.as_str()))
    {
        let stats = context.endpoint.store.stats(name).await?;
        all.insert(COUNTS[0].into(), Value::from(stats.visible.to_string()));
        all.insert(COUNTS[1].into(), Value::from(stats.in_flight.to_string()));
        all.insert(COUNTS[2].into(), Value::from(stats.delayed.to_string()));
    }
    if !all_wanted {
        all.retain(|k, _| input.attribute_names.iter().any(|a| a == k));
    }
    let mut out = Map::new();
    if !all.is_empty() {
        out.insert("Attributes".to_owned(), Value::Object(all));
    }
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PurgeQueue {
    queue_url: String,
}

pub async fn purge(context: &Context<'_>, input: PurgeQueue) -> Result<Value, SqsError> {
    let name = context.queue(&input.queue_url, Grant::Purge)?;
    let purged = context.endpoint.store.purge(name).await?;
    tracing::info!(queue = name, purged, key = %context.key.id, "sqs: purged the queue");
    Ok(json!({}))
}
