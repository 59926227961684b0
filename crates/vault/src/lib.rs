//! Secrets sealed at rest: the one place that seals and opens them. A
//! [`Vault`] wraps a [`SecretStore`] and the [`SecretKey`]; the admin API
//! and the guest capability both go through it, so plaintext never reaches
//! the store and the key never leaves this crate. Opened over a key file
//! ([`Vault::open_with_key_file`]), it creates that file only when the first
//! secret is set, so an app that never uses secrets leaves no key behind.
//!
//! Sealing is XChaCha20-Poly1305 with a random 192-bit nonce per write and
//! the secret's name as associated data, so a sealed value moved to another
//! name (or another row) fails to open instead of answering for it.

mod key;

pub use key::{KEY_BYTES, KeyFileError, KeyOrigin, SecretKey};
pub use nimbus_manifest::secret::{MAX_SECRET_NAME_LEN, SecretNameError, check_secret_name};
pub use nimbus_store::secret::{PutOutcome, SecretInfo};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use nimbus_store::StoreError;
use nimbus_store::secret::SecretStore;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Largest secret value, in bytes: room for keys, certificates and tokens,
/// not for files.
pub const MAX_SECRET_VALUE_BYTES: usize = 64 * 1024;

/// The first byte of every sealed value: the format, so a later change of
/// algorithm or key can tell old values from new.
const FORMAT_V1: u8 = 1;
const NONCE_BYTES: usize = 24;

/// Associated data of the key check. Not a valid secret name (it holds a
/// `:`), so the check can never be mistaken for a secret or stand in for one.
const KEY_CHECK_AAD: &[u8] = b"nimbus:secret-key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"nimbus secret key check v1";

/// Why a vault call failed. Messages name secrets, never their values.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("invalid secret name: {0}")]
    Name(#[from] SecretNameError),
    #[error("a secret value cannot be empty")]
    Empty,
    #[error("the secret value is {size} bytes, over the limit of {MAX_SECRET_VALUE_BYTES} bytes")]
    TooLarge { size: usize },
    #[error(
        "the secret key does not open the secrets already stored: they were sealed with another key"
    )]
    WrongKey,
    #[error("secret `{0}` could not be opened: it was altered or sealed for another name")]
    Corrupt(String),
    #[error("the system's random number generator failed: {0}")]
    Random(getrandom::Error),
    #[error(
        "the secret key file {0} does not exist, but secrets sealed with a key are stored: \
         start with the key file they were sealed with"
    )]
    KeyMissing(PathBuf),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A secret's plaintext. `Debug` shows only its length, so a stray `{:?}`
/// cannot put it in a log.
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue({} bytes)", self.0.len())
    }
}

/// Seals on the way into a [`SecretStore`] and opens on the way out.
pub struct Vault {
    store: Arc<dyn SecretStore>,
    /// Set once the key is known: at open if it exists, else when the first
    /// secret is set.
    cipher: OnceLock<XChaCha20Poly1305>,
    /// Where the key is created when first needed (`None`: given at open).
    key_file: Option<PathBuf>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault")
    }
}

impl Vault {
    /// Opens the vault, proving `key` is the key of the secrets already in
    /// `store` (through the store's key check, which the first open with any
    /// key sets). A different key is [`VaultError::WrongKey`] here, at
    /// start, rather than a failure inside some function later.
    pub async fn open(store: Arc<dyn SecretStore>, key: &SecretKey) -> Result<Vault, VaultError> {
        let cipher = XChaCha20Poly1305::new(&key.0.into());
        check_key(store.as_ref(), &cipher).await?;
        Ok(Vault {
            store,
            cipher: OnceLock::from(cipher),
            key_file: None,
        })
    }

    /// Opens the vault with the key in `key_file`. If the file exists, as
    /// [`Vault::open`]. If it does not, nothing is created yet: the store
    /// must hold no secrets ([`VaultError::KeyMissing`] otherwise, as they
    /// were sealed with a key that is not there), and the file is created
    /// (0600, with a fresh key) when the first secret is set.
    pub async fn open_with_key_file(
        store: Arc<dyn SecretStore>,
        key_file: &Path,
    ) -> Result<Vault, VaultError> {
        if let Some(key) = SecretKey::load(key_file)? {
            let mut vault = Vault::open(store, &key).await?;
            vault.key_file = Some(key_file.to_owned());
            return Ok(vault);
        }
        if !store.list_secrets().await?.is_empty() {
            return Err(VaultError::KeyMissing(key_file.to_owned()));
        }
        Ok(Vault {
            store,
            cipher: OnceLock::new(),
            key_file: Some(key_file.to_owned()),
        })
    }

    /// Whether the key is known yet (false until the first secret is set
    /// when the vault was opened without a key file).
    pub fn has_key(&self) -> bool {
        self.cipher.get().is_some()
    }

    /// The cipher, creating the key file first if this is the first time a
    /// key is needed. Two callers racing here load the same file: the key
    /// file is created by a link that only one of them wins.
    async fn cipher(&self) -> Result<&XChaCha20Poly1305, VaultError> {
        if let Some(cipher) = self.cipher.get() {
            return Ok(cipher);
        }
        let path = self
            .key_file
            .as_deref()
            .expect("a vault without a key file was opened with a key");
        let (key, origin) = SecretKey::load_or_create(path)?;
        if origin == KeyOrigin::Created {
            tracing::info!(
                path = %path.display(),
                "created the secret key; keep it apart from the data directory, and back it up"
            );
        }
        let cipher = XChaCha20Poly1305::new(&key.0.into());
        check_key(self.store.as_ref(), &cipher).await?;
        Ok(self.cipher.get_or_init(|| cipher))
    }

    /// Seals `value` and stores it under `name`, replacing any earlier value.
    pub async fn set(&self, name: &str, value: &[u8]) -> Result<PutOutcome, VaultError> {
        check_secret_name(name)?;
        self.put_sealed(name, value).await
    }

    /// The plaintext of `name`, if it is set.
    pub async fn get(&self, name: &str) -> Result<Option<SecretValue>, VaultError> {
        check_secret_name(name)?;
        self.get_sealed(name).await
    }

    /// Seals and stores under a name already checked (a secret's or an
    /// internal one).
    async fn put_sealed(&self, name: &str, value: &[u8]) -> Result<PutOutcome, VaultError> {
        if value.is_empty() {
            return Err(VaultError::Empty);
        }
        if value.len() > MAX_SECRET_VALUE_BYTES {
            return Err(VaultError::TooLarge { size: value.len() });
        }
        let sealed = seal(self.cipher().await?, name.as_bytes(), value)?;
        Ok(self.store.put_secret(name, sealed).await?)
    }

    /// Reads and opens a name already checked. The stored value is looked
    /// up before the cipher is asked for, so reading a name never set does
    /// not create the key file.
    async fn get_sealed(&self, name: &str) -> Result<Option<SecretValue>, VaultError> {
        let Some(stored) = self.store.get_secret(name).await? else {
            return Ok(None);
        };
        match unseal(self.cipher().await?, name.as_bytes(), &stored.sealed) {
            Some(plain) => Ok(Some(SecretValue(plain))),
            None => Err(VaultError::Corrupt(name.to_owned())),
        }
    }

    /// Names and times of every secret; never values. What the platform
    /// keeps for itself (see [`Vault::set_internal`]) is left out.
    pub async fn list(&self) -> Result<Vec<SecretInfo>, VaultError> {
        let mut secrets = self.store.list_secrets().await?;
        secrets.retain(|s| !s.name.starts_with(INTERNAL_PREFIX));
        Ok(secrets)
    }

    /// Seals `value` under a name the platform keeps for itself:
    /// `_` followed by a valid secret name. No user secret can have it (a
    /// secret name starts with a letter), so neither a grant nor `/v1`
    /// reaches it. Access keys live here, sealed like every secret.
    pub async fn set_internal(&self, name: &str, value: &[u8]) -> Result<PutOutcome, VaultError> {
        check_internal_name(name)?;
        self.put_sealed(name, value).await
    }

    /// The plaintext of an internal name, if it is set.
    pub async fn get_internal(&self, name: &str) -> Result<Option<SecretValue>, VaultError> {
        check_internal_name(name)?;
        self.get_sealed(name).await
    }

    /// Names and times of the internal names starting with `prefix`.
    pub async fn list_internal(&self, prefix: &str) -> Result<Vec<SecretInfo>, VaultError> {
        let mut secrets = self.store.list_secrets().await?;
        secrets.retain(|s| s.name.starts_with(INTERNAL_PREFIX) && s.name.starts_with(prefix));
        Ok(secrets)
    }

    /// Removes an internal name; false if it was not set.
    pub async fn delete_internal(&self, name: &str) -> Result<bool, VaultError> {
        check_internal_name(name)?;
        Ok(self.store.delete_secret(name).await?)
    }

    /// Removes `name`; false if it was not set.
    pub async fn delete(&self, name: &str) -> Result<bool, VaultError> {
        check_secret_name(name)?;
        Ok(self.store.delete_secret(name).await?)
    }
}

/// What every internal name starts with; no secret name can.
const INTERNAL_PREFIX: &str = "_";

fn check_internal_name(name: &str) -> Result<(), VaultError> {
    match name.strip_prefix(INTERNAL_PREFIX) {
        Some(rest) => Ok(check_secret_name(rest)?),
        None => Err(VaultError::Name(SecretNameError::Pattern)),
    }
}

/// Proves `cipher` is the one of the secrets in `store`, through the key
/// check (set by the first key to ask).
async fn check_key(store: &dyn SecretStore, cipher: &XChaCha20Poly1305) -> Result<(), VaultError> {
    let candidate = seal(cipher, KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT)?;
    let stored = store.key_check(candidate).await?;
    match unseal(cipher, KEY_CHECK_AAD, &stored) {
        Some(plain) if plain == KEY_CHECK_PLAINTEXT => Ok(()),
        _ => Err(VaultError::WrongKey),
    }
}

/// `FORMAT_V1 || nonce || ciphertext+tag`, bound to `aad`.
fn seal(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, VaultError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(VaultError::Random)?;
    let ciphertext = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Encryption fails only for inputs far beyond MAX_SECRET_VALUE_BYTES.
        .map_err(|_| VaultError::TooLarge {
            size: plaintext.len(),
        })?;
    let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
    sealed.push(FORMAT_V1);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

/// The plaintext, or `None` if `sealed` is not a value this key sealed
/// for `aad`.
fn unseal(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (&format, rest) = sealed.split_first()?;
    if format != FORMAT_V1 || rest.len() < NONCE_BYTES {
        return None;
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
    let nonce = XNonce::try_from(nonce).ok()?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_store::SystemClock;
    use nimbus_store_sqlite::{Durability, SqliteOptions, SqliteStore};

    fn store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        let options = SqliteOptions {
            path: dir.path().join("nimbus.db"),
            durability: Durability::Fsync,
        };
        Arc::new(SqliteStore::open(&options, Arc::new(SystemClock)).unwrap())
    }

    #[tokio::test]
    async fn a_value_is_stored_sealed_and_opens_only_under_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let key = SecretKey::generate().unwrap();
        let vault = Vault::open(store.clone(), &key).await.unwrap();
        vault.set("db", b"canary-plaintext").await.unwrap();
        let sealed = store.get_secret("db").await.unwrap().unwrap().sealed;
        assert!(!sealed.windows(6).any(|w| w == b"canary"));
        assert_eq!(
            vault.get("db").await.unwrap().unwrap().expose(),
            b"canary-plaintext"
        );
        // The same value sealed twice differs (a fresh nonce each time).
        vault.set("db", b"canary-plaintext").await.unwrap();
        let again = store.get_secret("db").await.unwrap().unwrap().sealed;
        assert_ne!(sealed, again);
        // Moved to another name, it does not open.
        store.put_secret("other", sealed).await.unwrap();
        assert!(matches!(
            vault.get("other").await,
            Err(VaultError::Corrupt(name)) if name == "other"
        ));
        assert!(vault.get("absent").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_key_file_is_created_only_when_the_first_secret_is_set() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let path = dir.path().join("keys/secrets.key");
        let vault = Vault::open_with_key_file(store.clone(), &path)
            .await
            .unwrap();
        // Reading, listing and deleting need no key and create none.
        assert!(vault.get("absent").await.unwrap().is_none());
        assert!(vault.list().await.unwrap().is_empty());
        assert!(!vault.delete("absent").await.unwrap());
        assert!(!vault.has_key());
        assert!(!path.exists());
        // A refused value creates none either.
        assert!(vault.set("a", b"").await.is_err());
        assert!(!path.exists());
        vault.set("db", b"canary").await.unwrap();
        assert!(vault.has_key());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(vault.get("db").await.unwrap().unwrap().expose(), b"canary");
        // Opened again, the file is read and opens what it sealed.
        let again = Vault::open_with_key_file(store, &path).await.unwrap();
        assert!(again.has_key());
        assert_eq!(again.get("db").await.unwrap().unwrap().expose(), b"canary");
    }

    #[tokio::test]
    async fn a_missing_key_file_with_secrets_stored_is_refused_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let vault = Vault::open(store.clone(), &SecretKey::generate().unwrap())
            .await
            .unwrap();
        vault.set("db", b"canary").await.unwrap();
        let path = dir.path().join("lost.key");
        let refused = Vault::open_with_key_file(store, &path).await;
        assert!(
            matches!(&refused, Err(VaultError::KeyMissing(p)) if *p == path),
            "{refused:?}"
        );
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn another_key_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        Vault::open(store.clone(), &SecretKey::generate().unwrap())
            .await
            .unwrap();
        let other = Vault::open(store, &SecretKey::generate().unwrap()).await;
        assert!(matches!(other, Err(VaultError::WrongKey)));
    }

    #[tokio::test]
    async fn names_sizes_and_empty_values_are_checked_before_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(store(&dir), &SecretKey::generate().unwrap())
            .await
            .unwrap();
        assert!(matches!(
            vault.set("bad name", b"x").await,
            Err(VaultError::Name(_))
        ));
        assert!(matches!(vault.set("a", b"").await, Err(VaultError::Empty)));
        let big = vec![7u8; MAX_SECRET_VALUE_BYTES + 1];
        assert!(matches!(
            vault.set("a", &big).await,
            Err(VaultError::TooLarge { .. })
        ));
        vault.set("a", &big[1..]).await.unwrap();
        assert_eq!(
            format!("{:?}", vault.get("a").await.unwrap().unwrap()),
            "SecretValue(65536 bytes)"
        );
    }

    #[tokio::test]
    async fn internal_names_are_sealed_and_kept_out_of_the_users_view() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let vault = Vault::open(store.clone(), &SecretKey::generate().unwrap())
            .await
            .unwrap();
        vault.set("db", b"user").await.unwrap();
        vault
            .set_internal("_access.K1", b"canary-record")
            .await
            .unwrap();
        let sealed = store
            .get_secret("_access.K1")
            .await
            .unwrap()
            .unwrap()
            .sealed;
        assert!(!sealed.windows(6).any(|w| w == b"canary"));
        let names = |list: Vec<SecretInfo>| list.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(names(vault.list().await.unwrap()), ["db"]);
        assert_eq!(
            names(vault.list_internal("_access.").await.unwrap()),
            ["_access.K1"]
        );
        assert_eq!(
            vault
                .get_internal("_access.K1")
                .await
                .unwrap()
                .unwrap()
                .expose(),
            b"canary-record"
        );
        // A user's name is no internal name, and the other way round.
        assert!(vault.get("_access.K1").await.is_err());
        assert!(vault.get_internal("db").await.is_err());
        assert!(vault.delete_internal("_access.K1").await.unwrap());
        assert!(vault.get_internal("_access.K1").await.unwrap().is_none());
    }
}
