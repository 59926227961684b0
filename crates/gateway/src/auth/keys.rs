//! API keys: issued once, kept only as SHA-256, checked in constant time,
//! each with an optional token-bucket rate and a fixed-window quota.
//!
//! Records live in the store and in memory (every request is checked
//! without a store call). Quota use is counted in memory and added to the
//! store's count every [`ApiKeys::flush`] (the server flushes each second
//! and at shutdown), so a crash forgets at most the last second of use.
//! Nodes sharing a store each add their own use, and each flush and
//! [`ApiKeys::refresh`] bring back the total, so a quota holds across
//! nodes to within about a second of traffic; a refresh also picks up keys
//! created or revoked on other nodes.

use super::{Denied, api_key_denied, constant_time_eq};
use nimbus_store::{ApiKeyRecord, KeyStore, KeyUsage, StoreError, StoreResult};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Every key starts with this, so a leaked key is easy to recognise (and to
/// scan for) as a Nimbus key.
const KEY_PREFIX: &str = "nbk_";
/// Most keys an app may hold, revoked ones included.
pub const MAX_KEYS: usize = 10_000;
/// Longest key name.
const MAX_NAME_LEN: usize = 64;
/// Highest rate and burst a key may be given.
const MAX_RATE_PER_S: f64 = 1_000_000.0;
const MAX_BURST: u32 = 1_000_000;

/// A key to create, as asked for through `/v1/keys`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub rate_per_s: Option<f64>,
    pub burst: Option<u32>,
    pub quota: Option<u64>,
    /// `minute`, `hour` or `day` (the default).
    pub quota_period: Option<String>,
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewKeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("this app already holds {MAX_KEYS} keys; revoked keys count too")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key as listed: never the key or its hash.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub created_at_ms: u64,
    pub revoked_at_ms: Option<u64>,
    pub rate_per_s: Option<f64>,
    pub burst: Option<u32>,
    pub quota: Option<u64>,
    pub quota_period_s: Option<u64>,
    /// Quota used in the current window.
    pub quota_used: u64,
}

struct Entry {
    record: ApiKeyRecord,
    meter: Mutex<Meter>,
}

/// A key's rate and quota state.
struct Meter {
    tokens: f64,
    refilled: Instant,
    /// This window's use as this node knows it: the store's total at the
    /// last flush or refresh, plus what it counted since.
    usage: KeyUsage,
    /// Use counted here and not yet added to the store's total.
    unflushed: u64,
}

pub struct ApiKeys {
    store: Arc<dyn KeyStore>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl ApiKeys {
    /// Loads every key and its recorded quota use.
    pub async fn load(store: Arc<dyn KeyStore>) -> StoreResult<Self> {
        let mut entries = HashMap::new();
        for (record, usage) in store.list_keys().await? {
            let usage = usage.unwrap_or(KeyUsage {
                window_start_s: 0,
                used: 0,
            });
            entries.insert(record.id.clone(), Arc::new(Entry::new(record, usage)));
        }
        Ok(ApiKeys {
            store,
            entries: RwLock::new(entries),
        })
    }

    /// Creates a key; returns its record and the key, which is never
    /// available again.
    pub async fn create(&self, new: NewKey) -> Result<(KeyView, String), NewKeyError> {
        let record_limits = validate(&new)?;
        if self.entries.read().unwrap().len() >= MAX_KEYS {
            return Err(NewKeyError::TooMany);
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let key = format!("{KEY_PREFIX}{id}_{secret}");
        let (rate_per_s, burst, quota, quota_period_s) = record_limits;
        let record = ApiKeyRecord {
            id: id.clone(),
            name: new.name,
            hash: Sha256::digest(key.as_bytes()).into(),
            created_at: unix_ms(),
            revoked_at: None,
            rate_per_s,
            burst,
            quota,
            quota_period_s,
        };
        self.store.create_key(record.clone()).await?;
        let entry = Arc::new(Entry::new(
            record,
            KeyUsage {
                window_start_s: 0,
                used: 0,
            },
        ));
        let view = entry.view();
        self.entries.write().unwrap().insert(id, entry);
        tracing::info!(target: "nimbus::audit", key_id = %view.id, name = %view.name, "API key created");
        Ok((view, key))
    }

    /// Revokes a key: from this call on it is refused.
    pub async fn revoke(&self, id: &str) -> StoreResult<KeyView> {
        let record = self.store.revoke_key(id).await?;
        let mut entries = self.entries.write().unwrap();
        let usage = entries
            .get(id)
            .map(|e| e.meter.lock().unwrap().usage)
            .unwrap_or(KeyUsage {
                window_start_s: 0,
                used: 0,
            });
        let entry = Arc::new(Entry::new(record, usage));
        let view = entry.view();
        entries.insert(id.to_owned(), entry);
        tracing::info!(target: "nimbus::audit", key_id = %id, "API key revoked");
        Ok(view)
    }

    pub fn list(&self) -> Vec<KeyView> {
        let mut views: Vec<KeyView> = self
            .entries
            .read()
            .unwrap()
            .values()
            .map(|e| e.view())
            .collect();
        views.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        views
    }

    /// Checks a presented key and charges it one request.
    pub(super) fn admit(&self, presented: &str) -> Result<super::Principal, Denied> {
        let invalid = || api_key_denied("the API key is not valid");
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let id = presented
            .strip_prefix(KEY_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .ok_or_else(invalid)?;
        let entry = self.entries.read().unwrap().get(id).cloned();
        let Some(entry) = entry else {
            return Err(invalid());
        };
        if !constant_time_eq(&hash, &entry.record.hash) {
            return Err(invalid());
        }
        if entry.record.revoked_at.is_some() {
            tracing::info!(target: "nimbus::audit", key_id = %id, "revoked API key presented");
            return Err(invalid());
        }
        entry.charge(Instant::now(), unix_ms() / 1000)?;
        Ok(super::Principal::ApiKey {
            id: entry.record.id.clone(),
            name: entry.record.name.clone(),
        })
    }

    /// Adds quota use counted since the last flush to the store's totals,
    /// and takes the totals (with other nodes' use) back.
    pub async fn flush(&self) -> StoreResult<()> {
        let counted: Vec<(String, KeyUsage)> = self
            .entries
            .read()
            .unwrap()
            .values()
            .filter_map(|e| {
                let mut meter = e.meter.lock().unwrap();
                let used = std::mem::take(&mut meter.unflushed);
                (used > 0).then(|| {
                    let window_start_s = meter.usage.window_start_s;
                    (
                        e.record.id.clone(),
                        KeyUsage {
                            window_start_s,
                            used,
                        },
                    )
                })
            })
            .collect();
        if counted.is_empty() {
            return Ok(());
        }
        let entries = self.entries.read().unwrap().clone();
        match self.store.add_key_usage(counted.clone()).await {
            Ok(totals) => {
                for (id, total) in totals {
                    if let Some(e) = entries.get(&id) {
                        e.meter.lock().unwrap().adopt(total);
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Added again next flush rather than forgotten.
                for (id, counted) in &counted {
                    if let Some(e) = entries.get(id) {
                        let mut meter = e.meter.lock().unwrap();
                        if meter.usage.window_start_s == counted.window_start_s {
                            meter.unflushed += counted.used;
                        }
                    }
                }
                Err(e)
            }
        }
    }

    /// Reads every key again: keys created on other nodes become usable,
    /// keys revoked there are refused from now on, and quota use adds
    /// other nodes' share.
    pub async fn refresh(&self) -> StoreResult<()> {
        let stored = self.store.list_keys().await?;
        let mut entries = self.entries.write().unwrap();
        for (record, usage) in stored {
            match entries.get(&record.id) {
                Some(entry) if entry.record == record => {
                    if let Some(usage) = usage {
                        entry.meter.lock().unwrap().adopt(usage);
                    }
                }
                existing => {
                    // New here, or changed (revoked) elsewhere: a new entry
                    // that keeps what this node counted.
                    if record.revoked_at.is_some()
                        && existing.is_none_or(|e| e.record.revoked_at.is_none())
                    {
                        tracing::info!(target: "nimbus::audit", key_id = %record.id, "API key revoked on another node");
                    }
                    let (known, unflushed) = existing.map_or(
                        (
                            KeyUsage {
                                window_start_s: 0,
                                used: 0,
                            },
                            0,
                        ),
                        |e| {
                            let meter = e.meter.lock().unwrap();
                            (meter.usage, meter.unflushed)
                        },
                    );
                    let entry = Entry::new(record.clone(), known);
                    {
                        let mut meter = entry.meter.lock().unwrap();
                        meter.unflushed = unflushed;
                        if let Some(usage) = usage {
                            meter.adopt(usage);
                        }
                    }
                    entries.insert(record.id.clone(), Arc::new(entry));
                }
            }
        }
        Ok(())
    }
}

impl Meter {
    /// Takes the store's total for a window: this node's view becomes that
    /// plus what it counted since. A total of an older window is stale.
    fn adopt(&mut self, total: KeyUsage) {
        if total.window_start_s > self.usage.window_start_s {
            self.usage = total;
            self.unflushed = 0;
        } else if total.window_start_s == self.usage.window_start_s {
            self.usage.used = total.used + self.unflushed;
        }
    }
}

impl Entry {
    fn new(record: ApiKeyRecord, usage: KeyUsage) -> Self {
        let tokens = f64::from(burst_of(&record));
        Entry {
            record,
            meter: Mutex::new(Meter {
                tokens,
                refilled: Instant::now(),
                usage,
                unflushed: 0,
            }),
        }
    }

    /// Takes one request from the quota and one token from the bucket, or
    /// says how long to wait. A refused request uses neither.
    fn charge(&self, now: Instant, now_s: u64) -> Result<(), Denied> {
        let r = &self.record;
        let mut meter = self.meter.lock().unwrap();
        if let (Some(quota), Some(period)) = (r.quota, r.quota_period_s) {
            let window = now_s - now_s % period;
            if meter.usage.window_start_s < window {
                meter.usage = KeyUsage {
                    window_start_s: window,
                    used: 0,
                };
                meter.unflushed = 0;
            }
            if meter.usage.used >= quota {
                return Err(Denied::Limited {
                    retry_after_s: window + period - now_s,
                    message: format!(
                        "the API key has used its quota of {quota} requests per {period} s"
                    ),
                });
            }
        }
        if let Some(rate) = r.rate_per_s {
            let burst = f64::from(burst_of(r));
            let elapsed = now.saturating_duration_since(meter.refilled).as_secs_f64();
            meter.tokens = (meter.tokens + elapsed * rate).min(burst);
            meter.refilled = now;
            if meter.tokens < 1.0 {
                return Err(Denied::Limited {
                    retry_after_s: ((1.0 - meter.tokens) / rate).ceil() as u64,
                    message: format!("the API key is over its rate of {rate} requests per second"),
                });
            }
            meter.tokens -= 1.0;
        }
        if r.quota.is_some() {
            meter.usage.used += 1;
            meter.unflushed += 1;
        }
        Ok(())
    }

    fn view(&self) -> KeyView {
        let r = &self.record;
        let usage = self.meter.lock().unwrap().usage;
        let current = r
            .quota_period_s
            .is_some_and(|p| usage.window_start_s == (unix_ms() / 1000) / p * p);
        KeyView {
            id: r.id.clone(),
            name: r.name.clone(),
            created_at_ms: r.created_at,
            revoked_at_ms: r.revoked_at,
            rate_per_s: r.rate_per_s,
            burst: r.rate_per_s.map(|_| burst_of(r)),
            quota: r.quota,
            quota_period_s: r.quota_period_s,
            quota_used: if current { usage.used } else { 0 },
        }
    }
}

/// The bucket size: as given, else one second of the rate (at least 1).
fn burst_of(record: &ApiKeyRecord) -> u32 {
    record
        .burst
        .unwrap_or_else(|| record.rate_per_s.map_or(1, |r| r.ceil().max(1.0) as u32))
}

type Limits = (Option<f64>, Option<u32>, Option<u64>, Option<u64>);

fn validate(new: &NewKey) -> Result<Limits, NewKeyError> {
    let invalid = |m: String| Err(NewKeyError::Invalid(m));
    let name = &new.name;
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    {
        return invalid(format!(
            "`name` must be 1 to {MAX_NAME_LEN} printable ASCII characters"
        ));
    }
    if let Some(rate) = new.rate_per_s
        && !(rate > 0.0 && rate <= MAX_RATE_PER_S)
    {
        return invalid(format!(
            "`rate_per_s` must be above 0 and at most {MAX_RATE_PER_S}"
        ));
    }
    if let Some(burst) = new.burst {
        if new.rate_per_s.is_none() {
            return invalid("`burst` needs a `rate_per_s`".into());
        }
        if !(1..=MAX_BURST).contains(&burst) {
            return invalid(format!("`burst` must be from 1 to {MAX_BURST}"));
        }
    }
    let period = match new.quota_period.as_deref() {
        None => 86_400,
        Some("minute") => 60,
        Some("hour") => 3_600,
        Some("day") => 86_400,
        Some(other) => {
            return invalid(format!(
                "`quota_period` `{other}` is not known; use `minute`, `hour` or `day`"
            ));
        }
    };
    match new.quota {
        Some(0) => invalid("`quota` must be at least 1".into()),
        Some(quota) => Ok((new.rate_per_s, new.burst, Some(quota), Some(period))),
        None if new.quota_period.is_some() => invalid("`quota_period` needs a `quota`".into()),
        None => Ok((new.rate_per_s, new.burst, None, None)),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(rate: Option<f64>, burst: Option<u32>, quota: Option<u64>) -> Entry {
        Entry::new(
            ApiKeyRecord {
                id: "k".into(),
                name: "k".into(),
                hash: [0; 32],
                created_at: 0,
                revoked_at: None,
                rate_per_s: rate,
                burst,
                quota,
                quota_period_s: quota.map(|_| 60),
            },
            KeyUsage {
                window_start_s: 0,
                used: 0,
            },
        )
    }

    fn retry_after(result: Result<(), Denied>) -> u64 {
        match result {
            Err(Denied::Limited { retry_after_s, .. }) => retry_after_s,
            other => panic!("expected 429, got {other:?}"),
        }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refills_at_the_rate() {
        let e = entry(Some(2.0), Some(3), None);
        let t0 = Instant::now();
        for _ in 0..3 {
            e.charge(t0, 1_000).unwrap();
        }
        assert_eq!(retry_after(e.charge(t0, 1_000)), 1);
        // Half a second at 2/s is one token.
        e.charge(t0 + Duration::from_millis(500), 1_000).unwrap();
        assert!(e.charge(t0 + Duration::from_millis(500), 1_000).is_err());
    }

    #[test]
    fn the_quota_resets_with_its_window_and_says_when() {
        let e = entry(None, None, Some(2));
        let t = Instant::now();
        e.charge(t, 1_200).unwrap();
        e.charge(t, 1_210).unwrap();
        // Window [1200, 1260): 30 s left at 1230.
        assert_eq!(retry_after(e.charge(t, 1_230)), 30);
        e.charge(t, 1_260).unwrap();
    }

    #[test]
    fn a_request_refused_by_the_rate_does_not_use_quota() {
        let e = entry(Some(1.0), Some(1), Some(10));
        let t = Instant::now();
        e.charge(t, 0).unwrap();
        assert!(e.charge(t, 0).is_err());
        assert_eq!(e.meter.lock().unwrap().usage.used, 1);
    }

    #[test]
    fn limits_are_validated() {
        let key = |f: fn(&mut NewKey)| {
            let mut k = NewKey {
                name: "ci".into(),
                ..NewKey::default()
            };
            f(&mut k);
            validate(&k)
        };
        assert!(key(|_| {}).is_ok());
        assert!(key(|k| k.name = String::new()).is_err());
        assert!(key(|k| k.name = "\u{7}".into()).is_err());
        assert!(key(|k| k.rate_per_s = Some(0.0)).is_err());
        assert!(key(|k| k.rate_per_s = Some(f64::NAN)).is_err());
        assert!(key(|k| k.burst = Some(5)).is_err());
        assert!(key(|k| k.quota = Some(0)).is_err());
        assert!(key(|k| k.quota_period = Some("day".into())).is_err());
        assert!(
            key(|k| {
                k.quota = Some(5);
                k.quota_period = Some("week".into());
            })
            .is_err()
        );
        assert_eq!(
            key(|k| {
                k.quota = Some(5);
                k.quota_period = Some("hour".into());
            })
            .unwrap(),
            (None, None, Some(5), Some(3_600))
        );
    }
}
