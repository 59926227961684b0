//! API keys for routes with `auth = "api_key"`: records holding a key's
//! hash (never the key), its limits, whether it is revoked, and how much of
//! its quota the current window has used.

use crate::{StoreResult, Timestamp};

/// One API key as stored. The key itself is shown once, at creation, and
/// only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    /// Public identifier, also embedded in the key so it can be looked up.
    pub id: String,
    pub name: String,
    /// SHA-256 of the whole key.
    pub hash: [u8; 32],
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// Requests per second the key may sustain; `None` is unlimited.
    pub rate_per_s: Option<f64>,
    /// Requests the key may make at once above the rate.
    pub burst: Option<u32>,
    /// Requests allowed per quota window; `None` is unlimited.
    pub quota: Option<u64>,
    /// Length of the quota window in seconds (windows start at the Unix
    /// epoch, so a day is a UTC day).
    pub quota_period_s: Option<u64>,
}

/// Quota use of one key in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUsage {
    pub window_start_s: u64,
    pub used: u64,
}

#[async_trait::async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key; answers once it is durable.
    async fn create_key(&self, key: ApiKeyRecord) -> StoreResult<()>;

    /// Every key, revoked ones included, oldest first, with its recorded use.
    async fn list_keys(&self) -> StoreResult<Vec<(ApiKeyRecord, Option<KeyUsage>)>>;

    /// Marks a key revoked at the store's clock; `KeyNotFound` if unknown.
    /// Revoking twice keeps the first time.
    async fn revoke_key(&self, id: &str) -> StoreResult<ApiKeyRecord>;

    /// Adds quota use: each entry's `used` is what its caller counted in
    /// window `window_start_s` since it last added. A window newer than the
    /// stored one starts the count over; use in an older window (already
    /// over) is dropped. Every node adds its own use, so none overwrites
    /// another's. Returns each key's total after adding (unknown keys are
    /// left out).
    async fn add_key_usage(
        &self,
        usage: Vec<(String, KeyUsage)>,
    ) -> StoreResult<Vec<(String, KeyUsage)>>;
}
