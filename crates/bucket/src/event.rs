//! Object events: which object triggers an event goes to, and the message
//! each gets (`ce-type` `nimbus.object.created|removed`, `ce-subject` the
//! key, a JSON body with the sequencer, and the upload's trace context).

use nimbus_manifest::{ObjectEventKind, ObjectTrigger};
use nimbus_store::{ObjectMeta, SendMessage};
use std::collections::BTreeMap;

/// Message attributes the retrying delivery reads (as
/// `nimbus_dispatch::retrying`'s `ATTR_*`).
const ATTR_SOURCE: &str = "ce-source";
const ATTR_TYPE: &str = "ce-type";
const ATTR_SUBJECT: &str = "ce-subject";
const ATTR_CONTENT_TYPE: &str = "content-type";
const ATTR_TRACEPARENT: &str = "traceparent";

/// The sequencer as written in events: 16 hex digits, so comparing two as
/// text orders them as numbers.
pub fn sequencer_text(sequencer: u64) -> String {
    format!("{sequencer:016x}")
}

/// The events of `kind` on `object` for every matching trigger.
pub(crate) fn messages(
    triggers: &[ObjectTrigger],
    kind: ObjectEventKind,
    object: &ObjectMeta,
    traceparent: Option<&str>,
) -> Vec<(String, SendMessage)> {
    let matching: Vec<&ObjectTrigger> = triggers
        .iter()
        .filter(|t| t.matches(kind, &object.key))
        .collect();
    if matching.is_empty() {
        return Vec::new();
    }
    let body = serde_json::json!({
        "bucket": object.bucket,
        "key": object.key,
        "size": object.size,
        "etag": object.etag,
        "content_type": object.content_type,
        "sequencer": sequencer_text(object.sequencer),
    })
    .to_string()
    .into_bytes();
    let mut attributes = BTreeMap::from([
        (
            ATTR_SOURCE.to_owned(),
            format!("nimbus:bucket/{}", object.bucket),
        ),
        (ATTR_TYPE.to_owned(), kind.event_type().to_owned()),
        (ATTR_SUBJECT.to_owned(), object.key.clone()),
        (ATTR_CONTENT_TYPE.to_owned(), "application/json".to_owned()),
    ]);
    if let Some(traceparent) = traceparent {
        attributes.insert(ATTR_TRACEPARENT.to_owned(), traceparent.to_owned());
    }
    matching
        .into_iter()
        .map(|t| {
            let message = SendMessage {
                body: body.clone(),
                attributes: attributes.clone(),
                ..SendMessage::default()
            };
            (t.queue.clone(), message)
        })
        .collect()
}
