//! `[table.NAME]` and `[[trigger.stream]]`: tables of JSON documents, their
//! change streams, and the functions that consume them.

use crate::delivery::{Delivery, RetryPolicy};
use crate::diagnostic::Diagnostics;
use crate::limits::Limit;
use crate::{Function, Queue};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The change-stream views a table may declare, as written in `stream`.
pub const STREAM_VIEWS: [&str; 4] = ["keys_only", "new_image", "old_image", "new_and_old_images"];

/// How long change records are kept, in seconds (1 minute to 7 days).
pub const STREAM_RETENTION_S: Limit = Limit {
    key: "stream_retention_s",
    default: 86_400,
    range: (60, 604_800),
};
/// Largest item document, in bytes (DynamoDB's 400 KiB by default).
pub const MAX_ITEM_BYTES: Limit = Limit {
    key: "max_item_bytes",
    default: 409_600,
    range: (64, 4_194_304),
};

/// A table (`[table.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    /// The document attribute holding the partition key.
    pub partition_key: String,
    pub sort_key: Option<String>,
    /// One of [`STREAM_VIEWS`], or `None` for no change stream.
    pub stream: Option<String>,
    pub stream_retention_s: u64,
    pub max_item_bytes: u64,
}

/// Where a new stream consumer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    /// The oldest record still retained.
    Oldest,
    /// Only records written after the consumer starts.
    Latest,
    /// The first record written at or after this time (ms since the epoch).
    At(u64),
}

/// `[[trigger.stream]]`: `function` consumes `table`'s change stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamTrigger {
    pub table: String,
    pub function: String,
    pub starting_position: StartingPosition,
    /// Split a failing batch in two and retry the halves, to isolate the
    /// record that fails.
    pub bisect_batch_on_error: bool,
    /// `max_concurrency` is the number of lanes: keys are spread over them
    /// by hash, so one key's records are always handled in order.
    pub delivery: Delivery,
    pub retry: RetryPolicy,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTable {
    pub partition_key: Option<Spanned<String>>,
    pub sort_key: Option<Spanned<String>>,
    pub stream: Option<Spanned<String>>,
    pub stream_retention_s: Option<Spanned<i64>>,
    pub max_item_bytes: Option<Spanned<i64>>,
}

crate::delivery::raw_retrying_trigger!(
    /// `[[trigger.stream]]` as written.
    RawStreamTrigger {
        table: Option<Spanned<String>>,
        function: Option<Spanned<String>>,
        starting_position: Option<Spanned<String>>,
        bisect_batch_on_error: Option<Spanned<bool>>,
    }
);

pub(crate) fn resolve_tables(
    d: &mut Diagnostics,
    raw: &BTreeMap<Spanned<String>, Spanned<RawTable>>,
) -> BTreeMap<String, Table> {
    let mut tables = BTreeMap::new();
    for (name, spanned) in raw {
        let t = spanned.get_ref();
        if !crate::resolve::valid_name(name.get_ref(), 64, true) {
            d.error(
                name.span(),
                format!("table name `{}` is not valid", name.get_ref()),
                "use 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter",
            );
        }
        let attribute = |d: &mut Diagnostics, value: &Spanned<String>, what: &str| {
            if value.get_ref().is_empty() {
                d.error(
                    value.span(),
                    format!("`{what}` is empty"),
                    "name the document attribute that holds the key, e.g. \"id\"",
                );
            }
            value.get_ref().clone()
        };
        let partition_key = match &t.partition_key {
            Some(pk) => attribute(d, pk, "partition_key"),
            None => {
                d.error(
                    spanned.span(),
                    format!("table `{}` has no `partition_key`", name.get_ref()),
                    "add `partition_key = \"ATTRIBUTE\"` naming the document attribute items are keyed by",
                );
                String::new()
            }
        };
        let sort_key = t.sort_key.as_ref().map(|sk| attribute(d, sk, "sort_key"));
        if let Some(sk) = &t.sort_key
            && *sk.get_ref() == partition_key
        {
            d.error(
                sk.span(),
                "`sort_key` is the same attribute as `partition_key`",
                "use a different attribute, or remove `sort_key`",
            );
        }
        let stream = t.stream.as_ref().and_then(|s| {
            if STREAM_VIEWS.contains(&s.get_ref().as_str()) {
                Some(s.get_ref().clone())
            } else {
                d.error(
                    s.span(),
                    format!("`{}` is not a stream view", s.get_ref()),
                    format!("use one of {}", STREAM_VIEWS.join(", ")),
                );
                None
            }
        });
        tables.insert(
            name.get_ref().clone(),
            Table {
                name: name.get_ref().clone(),
                partition_key,
                sort_key,
                stream,
                stream_retention_s: crate::resolve::limit(
                    d,
                    &t.stream_retention_s,
                    STREAM_RETENTION_S,
                ),
                max_item_bytes: crate::resolve::limit(d, &t.max_item_bytes, MAX_ITEM_BYTES),
            },
        );
    }
    tables
}

pub(crate) fn resolve_stream_trigger(
    d: &mut Diagnostics,
    functions: &BTreeMap<String, Function>,
    tables: &BTreeMap<String, Table>,
    queues: &BTreeMap<String, Queue>,
    raw: &Spanned<RawStreamTrigger>,
) -> Option<StreamTrigger> {
    let t = raw.get_ref();
    let delivery = crate::delivery::resolve(d, t.delivery());
    let function_names: Vec<String> = functions.keys().cloned().collect();
    let retry = crate::delivery::resolve_retry_policy(d, t.retry(), queues, &function_names);
    let table = match &t.table {
        None => {
            d.error(
                raw.span(),
                "[[trigger.stream]] has no `table`",
                "add `table = \"NAME\"` naming a [table.NAME] with a `stream`",
            );
            None
        }
        Some(name) => match tables.get(name.get_ref()) {
            None => {
                d.error(
                    name.span(),
                    format!("table `{}` is not declared", name.get_ref()),
                    format!("declare it with a [table.{}] table", name.get_ref()),
                );
                None
            }
            Some(table) if table.stream.is_none() => {
                d.error(
                    name.span(),
                    format!("table `{}` has no change stream", table.name),
                    format!(
                        "add `stream = \"new_and_old_images\"` (or {}) to [table.{}]",
                        STREAM_VIEWS.join(", "),
                        table.name
                    ),
                );
                None
            }
            Some(table) => Some(table.name.clone()),
        },
    };
    if let Some(on_success) = &t.on_success {
        d.error(
            on_success.span(),
            "stream triggers have no `on_success` destination",
            "remove it: as with DynamoDB Streams, only records given up on go to `on_failure`",
        );
    }
    let function =
        crate::resolve::trigger_function(d, functions, raw.span(), "stream", &t.function);
    let starting_position = match &t.starting_position {
        None => StartingPosition::Latest,
        Some(p) => match p.get_ref().as_str() {
            "oldest" => StartingPosition::Oldest,
            "latest" => StartingPosition::Latest,
            text => match crate::time::parse_rfc3339_utc(text) {
                Some(ms) => StartingPosition::At(ms),
                None => {
                    d.error(
                        p.span(),
                        format!("`{text}` is not a starting position"),
                        "use \"oldest\", \"latest\" or a UTC time like \"2026-11-27T09:00:00Z\"",
                    );
                    StartingPosition::Latest
                }
            },
        },
    };
    Some(StreamTrigger {
        table: table?,
        function: function?,
        starting_position,
        bisect_batch_on_error: t
            .bisect_batch_on_error
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
        delivery,
        retry,
    })
}
