//! Secrets as the store sees them: opaque sealed bytes under a name, with
//! the store's timestamps. Sealing and opening happen above the store (in
//! `nimbus-vault`), so no plaintext and no key ever reach a backend.

use crate::{StoreResult, Timestamp};

/// A sealed secret as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    /// Nonce, ciphertext and tag, in the vault's format; opaque here.
    pub sealed: Vec<u8>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

// Sealed bytes are harmless without the key, but they are noise in a log.
impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("name", &self.name)
            .field("sealed_bytes", &self.sealed.len())
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// What a listing tells about a secret: never its value, sealed or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whether a put made a new secret or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Replaced,
}

#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores `sealed` under `name`, replacing any earlier value; the
    /// creation time of a replaced secret is kept. Answered once durable.
    async fn put_secret(&self, name: &str, sealed: Vec<u8>) -> StoreResult<PutOutcome>;

    /// The secret stored under `name`, if any.
    async fn get_secret(&self, name: &str) -> StoreResult<Option<SealedSecret>>;

    /// Every secret's name and times, by name.
    async fn list_secrets(&self) -> StoreResult<Vec<SecretInfo>>;

    /// Removes the secret; false if there was none.
    async fn delete_secret(&self, name: &str) -> StoreResult<bool>;

    /// The key check: a value sealed with the key that sealed this store's
    /// secrets, so a different key is noticed before any secret is read.
    /// Returns the stored check, storing `candidate` first (atomically) if
    /// there is none yet.
    async fn key_check(&self, candidate: Vec<u8>) -> StoreResult<Vec<u8>>;
}
