//! The manifest exactly as written: serde types mirroring `nimbus.toml`.
//! Unknown keys are errors here; meaning is given in `resolve`.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    pub app: Option<Spanned<RawApp>>,
    #[serde(default)]
    pub function: BTreeMap<Spanned<String>, Spanned<RawFunction>>,
    #[serde(default)]
    pub queue: BTreeMap<Spanned<String>, Spanned<RawQueue>>,
    #[serde(default)]
    pub table: BTreeMap<Spanned<String>, Spanned<crate::table::RawTable>>,
    #[serde(default)]
    pub bucket: BTreeMap<Spanned<String>, Spanned<RawBucket>>,
    #[serde(default)]
    pub trigger: RawTriggers,
    pub auth: Option<Spanned<crate::auth::RawAuth>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQueue {
    pub visibility_timeout_ms: Option<Spanned<i64>>,
    pub retention_ms: Option<Spanned<i64>>,
    pub delay_ms: Option<Spanned<i64>>,
    pub max_message_bytes: Option<Spanned<i64>>,
    pub dedup_window_ms: Option<Spanned<i64>>,
    pub max_receive_count: Option<Spanned<i64>>,
    pub dead_letter_queue: Option<Spanned<String>>,
}

/// `[bucket.NAME]`: an object bucket.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBucket {
    pub max_object_bytes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApp {
    pub name: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFunction {
    pub component: Option<Spanned<String>>,
    pub build: Option<Spanned<String>>,
    pub memory_mb: Option<Spanned<i64>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub max_concurrency: Option<Spanned<i64>>,
    pub max_log_bytes: Option<Spanned<i64>>,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub allowed_private_hosts: Vec<Spanned<String>>,
    pub outbound_timeout_ms: Option<Spanned<i64>>,
    pub max_outbound_response_bytes: Option<Spanned<i64>>,
    /// `[function.NAME.async]`: retries and destinations of async invocations.
    #[serde(rename = "async")]
    pub async_invoke: Option<Spanned<crate::delivery::RawRetryPolicy>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTriggers {
    #[serde(default)]
    pub http: Vec<Spanned<RawHttpTrigger>>,
    #[serde(default)]
    pub queue: Vec<Spanned<RawQueueTrigger>>,
    #[serde(default)]
    pub stream: Vec<Spanned<crate::table::RawStreamTrigger>>,
    #[serde(default)]
    pub schedule: Vec<Spanned<crate::schedule::RawScheduleTrigger>>,
    #[serde(default)]
    pub object: Vec<Spanned<RawObjectTrigger>>,
}

crate::delivery::raw_retrying_trigger!(
    /// `[[trigger.object]]`: a function told of objects created in or
    /// removed from a bucket.
    RawObjectTrigger {
        id: Option<Spanned<String>>,
        bucket: Option<Spanned<String>>,
        function: Option<Spanned<String>>,
        events: Option<Spanned<Vec<Spanned<String>>>>,
        prefix: Option<Spanned<String>>,
        suffix: Option<Spanned<String>>,
    }
);

crate::delivery::raw_trigger!(
    /// `[[trigger.queue]]`: a function consuming a queue in batches.
    RawQueueTrigger {
        queue: Option<Spanned<String>>,
        function: Option<Spanned<String>>,
    }
);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttpTrigger {
    pub route: Option<Spanned<String>>,
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    pub function: Option<Spanned<String>>,
    pub max_body_bytes: Option<Spanned<i64>>,
    pub auth: Option<Spanned<String>>,
    pub scopes: Option<Spanned<Vec<Spanned<String>>>>,
}
