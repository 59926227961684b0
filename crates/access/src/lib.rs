//! Access keys for the S3 and SQS endpoints: an AWS-style key id and secret
//! with a list of grants, kept sealed in the vault (under `_access.ID`, a
//! name no user secret can take), looked up by id for every signed request
//! and checked against what the request does. Nothing is reachable without
//! a grant.

use nimbus_store::Timestamp;
use nimbus_vault::{Vault, VaultError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the vault keeps access keys: `_access.` then the key id.
const VAULT_PREFIX: &str = "_access.";
/// What every key id starts with (AWS's start with `AKIA`).
pub const KEY_ID_PREFIX: &str = "NIMB";
/// Characters after the prefix in a key id (20 in all, as AWS's).
const KEY_ID_RANDOM: usize = 16;
/// Characters of a secret (40, as AWS's).
const SECRET_CHARS: usize = 40;
/// Longest key name.
pub const MAX_NAME_LEN: usize = 64;
/// Most grants one key holds.
pub const MAX_GRANTS: usize = 64;
/// How long a looked-up key (or its absence) is trusted before the vault
/// is asked again: a key created or revoked through another node applies
/// here within this. This node's own creations and revocations apply at once.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// One permission of an access key. The syntax is the one function grants
/// use (`queue:orders:send`, `bucket:photos/uploads/:write`), with the
/// queue actions a consumer needs besides sending.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessGrant {
    /// `queue:NAME:send`: SendMessage and SendMessageBatch.
    QueueSend(String),
    /// `queue:NAME:receive`: ReceiveMessage, DeleteMessage(Batch) and
    /// ChangeMessageVisibility(Batch).
    QueueReceive(String),
    /// `queue:NAME:purge`: PurgeQueue.
    QueuePurge(String),
    /// `bucket:NAME:read` or `bucket:NAME/PREFIX:read`: get, head and list
    /// objects whose keys start with `prefix`.
    BucketRead { bucket: String, prefix: String },
    /// `bucket:NAME:write` or `bucket:NAME/PREFIX:write`: put (multipart
    /// too), copy into, and delete objects whose keys start with `prefix`.
    BucketWrite { bucket: String, prefix: String },
}

/// What a grant must look like, for error messages.
pub const GRANT_SYNTAX: &str = "grants look like `queue:NAME:send`, `queue:NAME:receive`, `queue:NAME:purge`, `bucket:NAME:read`, `bucket:NAME:write` or `bucket:NAME/PREFIX:read`";

impl AccessGrant {
    /// Parses one grant; the error says what is wrong and what is accepted.
    pub fn parse(text: &str) -> Result<AccessGrant, String> {
        if let Some(rest) = text.strip_prefix("bucket:") {
            let Some((target, action)) = rest.rsplit_once(':') else {
                return Err(format!("`{text}` is not a grant; {GRANT_SYNTAX}"));
            };
            let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
            if !nimbus_manifest::bucket::is_bucket_name(bucket) {
                return Err(format!(
                    "grant `{text}` names an invalid bucket `{bucket}`: bucket names are 1 to 63 lowercase letters, digits, `-` and `_`, starting with a letter"
                ));
            }
            nimbus_manifest::bucket::check_key_prefix(prefix)
                .map_err(|e| format!("grant `{text}` has an invalid key prefix: {e}"))?;
            let (bucket, prefix) = (bucket.to_owned(), prefix.to_owned());
            return match action {
                "read" => Ok(AccessGrant::BucketRead { bucket, prefix }),
                "write" => Ok(AccessGrant::BucketWrite { bucket, prefix }),
                _ => Err(format!(
                    "buckets have no `{action}` permission; they have `read` and `write`"
                )),
            };
        }
        match text.split(':').collect::<Vec<_>>().as_slice() {
            ["queue", name, action] => {
                if !nimbus_manifest::is_queue_name(name) {
                    return Err(format!(
                        "grant `{text}` names an invalid queue `{name}`: queue names are 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter"
                    ));
                }
                let name = (*name).to_owned();
                match *action {
                    "send" => Ok(AccessGrant::QueueSend(name)),
                    "receive" => Ok(AccessGrant::QueueReceive(name)),
                    "purge" => Ok(AccessGrant::QueuePurge(name)),
                    _ => Err(format!(
                        "queues have no `{action}` permission; they have `send`, `receive` and `purge`"
                    )),
                }
            }
            _ => Err(format!("`{text}` is not a grant; {GRANT_SYNTAX}")),
        }
    }
}

impl std::fmt::Display for AccessGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bucket = |f: &mut std::fmt::Formatter<'_>, b: &str, p: &str, a: &str| {
            if p.is_empty() {
                write!(f, "bucket:{b}:{a}")
            } else {
                write!(f, "bucket:{b}/{p}:{a}")
            }
        };
        match self {
            AccessGrant::QueueSend(q) => write!(f, "queue:{q}:send"),
            AccessGrant::QueueReceive(q) => write!(f, "queue:{q}:receive"),
            AccessGrant::QueuePurge(q) => write!(f, "queue:{q}:purge"),
            AccessGrant::BucketRead { bucket: b, prefix } => bucket(f, b, prefix, "read"),
            AccessGrant::BucketWrite { bucket: b, prefix } => bucket(f, b, prefix, "write"),
        }
    }
}

/// What a request wants to do, to be checked against a key's grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    QueueSend(&'a str),
    QueueReceive(&'a str),
    QueuePurge(&'a str),
    /// Knowing the queue exists and reading its settings and counts
    /// (GetQueueUrl, GetQueueAttributes, ListQueues, CreateQueue of a
    /// declared queue): any grant on the queue.
    QueueSee(&'a str),
    /// Reading one object.
    BucketRead {
        bucket: &'a str,
        key: &'a str,
    },
    /// Writing or deleting one object (or a multipart upload to it).
    BucketWrite {
        bucket: &'a str,
        key: &'a str,
    },
    /// Listing keys under a prefix: a read grant whose prefix the listed
    /// prefix starts with.
    BucketList {
        bucket: &'a str,
        prefix: &'a str,
    },
    /// Knowing the bucket exists (ListBuckets, HeadBucket): any grant on it.
    BucketSee(&'a str),
}

/// An access key as the endpoints use it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub name: String,
    /// The signing secret. `Debug` never shows it.
    pub secret: String,
    pub grants: Vec<AccessGrant>,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

impl AccessKey {
    /// Whether one of the key's grants allows `action`.
    pub fn allows(&self, action: Action<'_>) -> bool {
        self.grants.iter().any(|g| grant_allows(g, action))
    }
}

fn grant_allows(grant: &AccessGrant, action: Action<'_>) -> bool {
    use AccessGrant as G;
    match (grant, action) {
        (G::QueueSend(q), Action::QueueSend(a))
        | (G::QueueReceive(q), Action::QueueReceive(a))
        | (G::QueuePurge(q), Action::QueuePurge(a)) => q == a,
        (G::QueueSend(q) | G::QueueReceive(q) | G::QueuePurge(q), Action::QueueSee(a)) => q == a,
        (G::BucketRead { bucket, prefix }, Action::BucketRead { bucket: b, key })
        | (G::BucketWrite { bucket, prefix }, Action::BucketWrite { bucket: b, key }) => {
            bucket == b && key.starts_with(prefix.as_str())
        }
        (
            G::BucketRead { bucket, prefix },
            Action::BucketList {
                bucket: b,
                prefix: p,
            },
        ) => bucket == b && p.starts_with(prefix.as_str()),
        (G::BucketRead { bucket, .. } | G::BucketWrite { bucket, .. }, Action::BucketSee(b)) => {
            bucket == b
        }
        _ => false,
    }
}

/// A key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessKeyInfo {
    pub id: String,
    pub name: String,
    pub grants: Vec<String>,
    pub created_at: Timestamp,
}

/// Why an access key call failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Invalid(String),
    #[error("no access key `{0}`")]
    NotFound(String),
    #[error("the system's random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error("access key `{0}` could not be read: {1}")]
    Corrupt(String, String),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// What the vault holds for one key (sealed as a whole).
#[derive(Serialize, Deserialize)]
struct Record {
    name: String,
    secret: String,
    grants: Vec<String>,
}

/// The access keys, kept in the vault, with a short-lived cache of lookups.
pub struct AccessKeys {
    vault: Arc<Vault>,
    cache: Mutex<HashMap<String, Cached>>,
    /// Moved on by every creation and revocation here: a lookup that read
    /// the vault before one does not cache what it read.
    generation: std::sync::atomic::AtomicU64,
}

/// A lookup's answer and when it was made.
type Cached = (Instant, Option<Arc<AccessKey>>);

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeys").finish_non_exhaustive()
    }
}

impl AccessKeys {
    pub fn new(vault: Arc<Vault>) -> Self {
        AccessKeys {
            vault,
            cache: Mutex::new(HashMap::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Makes a key with a fresh id and secret; the secret is in the answer
    /// and nowhere else in the clear.
    pub async fn create(&self, name: &str, grants: &[String]) -> Result<AccessKey, AccessError> {
        check_name(name)?;
        if grants.is_empty() {
            return Err(AccessError::Invalid(format!(
                "an access key needs at least one grant; {GRANT_SYNTAX}"
            )));
        }
        if grants.len() > MAX_GRANTS {
            return Err(AccessError::Invalid(format!(
                "an access key holds at most {MAX_GRANTS} grants"
            )));
        }
        let mut parsed = Vec::with_capacity(grants.len());
        for grant in grants {
            parsed.push(AccessGrant::parse(grant).map_err(AccessError::Invalid)?);
        }
        parsed.sort();
        parsed.dedup();
        let key = AccessKey {
            id: format!(
                "{KEY_ID_PREFIX}{}",
                random_chars(KEY_ID_RANDOM, ID_ALPHABET)?
            ),
            name: name.to_owned(),
            secret: random_chars(SECRET_CHARS, SECRET_ALPHABET)?,
            grants: parsed,
        };
        let record = Record {
            name: key.name.clone(),
            secret: key.secret.clone(),
            grants: key.grants.iter().map(ToString::to_string).collect(),
        };
        let bytes = serde_json::to_vec(&record).expect("a record always serializes");
        self.vault
            .set_internal(&vault_name(&key.id), &bytes)
            .await?;
        self.forget(&key.id);
        Ok(key)
    }

    /// Every key, oldest first, without secrets.
    pub async fn list(&self) -> Result<Vec<AccessKeyInfo>, AccessError> {
        let mut infos = Vec::new();
        for stored in self.vault.list_internal(VAULT_PREFIX).await? {
            let id = &stored.name[VAULT_PREFIX.len()..];
            // Gone between the listing and the read: revoked meanwhile.
            let Some(key) = self.read(id).await? else {
                continue;
            };
            infos.push(AccessKeyInfo {
                id: key.id.clone(),
                name: key.name.clone(),
                grants: key.grants.iter().map(ToString::to_string).collect(),
                created_at: stored.created_at,
            });
        }
        infos.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(infos)
    }

    /// Removes a key: every request signed with it is refused from then on
    /// (on other nodes within a second).
    pub async fn revoke(&self, id: &str) -> Result<(), AccessError> {
        if !valid_id(id) {
            return Err(AccessError::NotFound(id.to_owned()));
        }
        let removed = self.vault.delete_internal(&vault_name(id)).await?;
        self.forget(id);
        if removed {
            Ok(())
        } else {
            Err(AccessError::NotFound(id.to_owned()))
        }
    }

    /// The key with id `id`, if there is one.
    pub async fn lookup(&self, id: &str) -> Result<Option<Arc<AccessKey>>, AccessError> {
        if !valid_id(id) {
            return Ok(None);
        }
        if let Some((at, key)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(key.clone());
        }
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        let key = self.read(id).await?.map(Arc::new);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded by the number of keys plus the ids tried in one second.
        cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        // A revocation since the read may have removed what was read.
        if self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation {
            cache.insert(id.to_owned(), (Instant::now(), key.clone()));
        }
        Ok(key)
    }

    async fn read(&self, id: &str) -> Result<Option<AccessKey>, AccessError> {
        let Some(value) = self.vault.get_internal(&vault_name(id)).await? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(value.expose())
            .map_err(|e| AccessError::Corrupt(id.to_owned(), e.to_string()))?;
        let grants = record
            .grants
            .iter()
            .map(|g| AccessGrant::parse(g))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AccessError::Corrupt(id.to_owned(), e))?;
        Ok(Some(AccessKey {
            id: id.to_owned(),
            name: record.name,
            secret: record.secret,
            grants,
        }))
    }

    fn forget(&self, id: &str) {
        // Under the cache's lock, so a lookup cannot check the generation
        // between the bump and the removal.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        cache.remove(id);
    }
}

/// Upper-case letters and digits 2-7 (base32), as AWS key ids.
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Letters and digits: no character a shell or URL needs quoted.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_chars(n: usize, alphabet: &[u8]) -> Result<String, AccessError> {
    let mut out = String::with_capacity(n);
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % alphabet.len();
    while out.len() < n {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(AccessError::Random)?;
        for b in buf {
            if (b as usize) < limit && out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

fn vault_name(id: &str) -> String {
    format!("{VAULT_PREFIX}{id}")
}

/// Whether `id` could be a key id at all (checked before the vault is
/// asked, so a hostile id never reaches it).
fn valid_id(id: &str) -> bool {
    id.len() == KEY_ID_PREFIX.len() + KEY_ID_RANDOM
        && id.starts_with(KEY_ID_PREFIX)
        && id.bytes().all(|b| ID_ALPHABET.contains(&b))
}

fn check_name(name: &str) -> Result<(), AccessError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AccessError::Invalid(format!(
            "an access key's name is 1 to {MAX_NAME_LEN} letters, digits, `-`, `_` and `.`"
        )))
    }
}

#[cfg(test)]
mod tests;
