//! Deployments: the versions of an app kept in the store, so every node
//! sharing it serves the same one. A version's components are kept apart,
//! content-addressed by the lowercase hex SHA-256 of their bytes, so a new
//! version uploads only the components the store lacks and versions share
//! what did not change. A deployment names its manifest and, per function,
//! a component; one deployment at a time is active (the one nodes serve),
//! and activating an older one is a rollback. Pruning drops old deployments
//! (never the active one) and then the components none of the rest names.

use crate::{StoreError, StoreResult, Timestamp};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The signal the store gives after a commit that changed which deployment
/// is active (see [`crate::Store::signals`]); on a store shared by many
/// processes it reaches all of them.
pub const DEPLOYMENT_SIGNAL: &str = "_deployment";

/// Largest component the store keeps. Python components are about 18 MiB;
/// the bound leaves room for that to grow several times over.
pub const MAX_COMPONENT_BYTES: usize = 128 << 20;
/// Largest manifest a deployment carries.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Most functions (so components) one deployment names, and most digests
/// one [`DeploymentStore::missing_components`] asks about.
pub const MAX_DEPLOYMENT_FUNCTIONS: usize = 1_000;
/// Longest function name a deployment maps to a component.
pub const MAX_FUNCTION_NAME_BYTES: usize = 256;
/// Longest digest a caller may give a whole deployment.
pub const MAX_DEPLOYMENT_DIGEST_BYTES: usize = 128;
/// How long a component no deployment names is kept after it was put (or
/// last reported present by `missing_components`): a deploy uploads its
/// components before it creates the deployment that names them, and a
/// prune running in between must not take them.
pub const COMPONENT_GRACE_MS: u64 = 3_600_000;

/// A version to record: what `nimbus deploy` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployment {
    /// The app's `nimbus.toml`, as written.
    pub manifest: String,
    /// Function name to the digest of its component (each already put).
    pub components: BTreeMap<String, String>,
    /// The caller's digest of the whole version: two deployments with the
    /// same digest are the same version.
    pub digest: String,
}

/// A recorded version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// 1, 2, 3... in creation order, never reused.
    pub id: u64,
    /// When it was created, by the store's clock.
    pub created_ms: Timestamp,
    pub digest: String,
    pub manifest: String,
    /// Function name to component digest.
    pub components: BTreeMap<String, String>,
}

/// A deployment in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSummary {
    pub id: u64,
    pub created_ms: Timestamp,
    pub digest: String,
    /// Its functions' names, sorted.
    pub functions: Vec<String>,
    /// The last time it became active, by the store's clock; `None` if it
    /// never was.
    pub activated_ms: Option<Timestamp>,
    /// Whether it is the active deployment now.
    pub active: bool,
}

#[async_trait::async_trait]
pub trait DeploymentStore: Send + Sync {
    /// Keeps `bytes` under `digest`, the lowercase hex SHA-256 of `bytes`;
    /// putting a component already kept changes nothing but its grace (see
    /// [`COMPONENT_GRACE_MS`]). Bytes that do not hash to `digest`, or past
    /// [`MAX_COMPONENT_BYTES`], are refused with `InvalidComponent` and
    /// nothing is stored.
    async fn put_component(&self, digest: &str, bytes: Vec<u8>) -> StoreResult<()>;

    /// The digests of `digests` the store does not keep, in the order given,
    /// each once (a malformed digest is never kept, so it is missing). The
    /// ones kept get a new grace, since the caller is about to name them.
    async fn missing_components(&self, digests: &[String]) -> StoreResult<Vec<String>>;

    /// The bytes kept under `digest`, if any.
    async fn component(&self, digest: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Records a version, stamped by the store's clock, with the next id.
    /// When a deployment with the same digest exists it is returned as it
    /// is and nothing is added. Refused with `ComponentMissing` when a
    /// component it names is not kept, and with `InvalidDeployment` past
    /// the bounds of this module.
    async fn create_deployment(&self, new: NewDeployment) -> StoreResult<Deployment>;

    /// Makes deployment `id` the active one, recording when by the store's
    /// clock, and signals [`DEPLOYMENT_SIGNAL`] after the commit. An
    /// unknown id is refused with `DeploymentNotFound`.
    async fn activate(&self, id: u64) -> StoreResult<()>;

    /// The active deployment's id, if one was ever activated (cheap: every
    /// node polls it).
    async fn active_deployment_id(&self) -> StoreResult<Option<u64>>;

    /// Deployment `id`, if it exists (a pruned one does not).
    async fn deployment(&self, id: u64) -> StoreResult<Option<Deployment>>;

    /// Up to `limit` deployments, newest first.
    async fn deployments(&self, limit: u32) -> StoreResult<Vec<DeploymentSummary>>;

    /// Removes every deployment but the newest `keep` and the active one,
    /// then every component no remaining deployment names whose grace has
    /// passed; returns how many deployments went. Ids are not reused. A
    /// deployment created but not yet activated is kept only while it is
    /// among the newest `keep`.
    async fn prune_deployments(&self, keep: u32) -> StoreResult<u64>;
}

/// The lowercase hex SHA-256 of `bytes`: a component's digest.
pub fn component_digest(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Whether `digest` has the form of a component digest: 64 lowercase hex
/// digits.
pub fn is_component_digest(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a component before a backend stores it: its size, and that its
/// bytes hash to `digest`. Every backend calls it on every put. Hashing
/// tens of megabytes takes a while, so it runs on a blocking thread; the
/// bytes come back for storing.
pub async fn check_component(digest: &str, bytes: Vec<u8>) -> StoreResult<Vec<u8>> {
    let digest = digest.to_owned();
    tokio::task::spawn_blocking(move || verify_component(&digest, &bytes).map(|()| bytes))
        .await
        .map_err(|e| StoreError::Backend(format!("hashing the component failed: {e}")))?
}

/// [`check_component`] on the calling thread.
pub fn verify_component(digest: &str, bytes: &[u8]) -> StoreResult<()> {
    if !is_component_digest(digest) {
        return Err(StoreError::InvalidComponent(format!(
            "`{}` is not a component digest (64 lowercase hex digits)",
            quoted(digest)
        )));
    }
    if bytes.len() > MAX_COMPONENT_BYTES {
        return Err(StoreError::InvalidComponent(format!(
            "the component is {} bytes, over the limit of {MAX_COMPONENT_BYTES}",
            bytes.len()
        )));
    }
    let actual = component_digest(bytes);
    if actual != digest {
        return Err(StoreError::InvalidComponent(format!(
            "the bytes' SHA-256 is {actual}, not the digest given ({digest}): nothing was stored"
        )));
    }
    Ok(())
}

/// Checks a deployment against this module's bounds before a backend
/// records it; every backend calls it on every create.
pub fn check_deployment(new: &NewDeployment) -> StoreResult<()> {
    let invalid = |why: String| Err(StoreError::InvalidDeployment(why));
    if new.digest.is_empty()
        || new.digest.len() > MAX_DEPLOYMENT_DIGEST_BYTES
        || !new.digest.bytes().all(|b| b.is_ascii_graphic())
    {
        return invalid(format!(
            "the deployment digest `{}` must be 1 to {MAX_DEPLOYMENT_DIGEST_BYTES} ASCII letters, \
             digits or punctuation marks",
            quoted(&new.digest)
        ));
    }
    if new.manifest.len() > MAX_MANIFEST_BYTES {
        return invalid(format!(
            "the manifest is {} bytes, over the limit of {MAX_MANIFEST_BYTES}",
            new.manifest.len()
        ));
    }
    if new.components.len() > MAX_DEPLOYMENT_FUNCTIONS {
        return invalid(format!(
            "{} functions, over the limit of {MAX_DEPLOYMENT_FUNCTIONS}",
            new.components.len()
        ));
    }
    for (function, digest) in &new.components {
        if function.is_empty() || function.len() > MAX_FUNCTION_NAME_BYTES {
            return invalid(format!(
                "the function name `{}` must be 1 to {MAX_FUNCTION_NAME_BYTES} bytes",
                quoted(function)
            ));
        }
        if !is_component_digest(digest) {
            return invalid(format!(
                "function `{function}` names `{}`, which is not a component digest \
                 (64 lowercase hex digits)",
                quoted(digest)
            ));
        }
    }
    Ok(())
}

/// Checks the length of a `missing_components` question.
pub fn check_digest_count(digests: &[String]) -> StoreResult<()> {
    if digests.len() > MAX_DEPLOYMENT_FUNCTIONS {
        return Err(StoreError::InvalidDeployment(format!(
            "asked about {} components, over the limit of {MAX_DEPLOYMENT_FUNCTIONS}",
            digests.len()
        )));
    }
    Ok(())
}

/// How much of a refused value an error quotes.
const QUOTED_BYTES: usize = 80;

fn quoted(text: &str) -> &str {
    let mut end = text.len().min(QUOTED_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn a_component_digest_is_the_lowercase_hex_sha256() {
        assert_eq!(component_digest(b""), EMPTY_SHA256);
        assert!(is_component_digest(EMPTY_SHA256));
        assert!(!is_component_digest(&EMPTY_SHA256.to_uppercase()));
        assert!(!is_component_digest(&EMPTY_SHA256[1..]));
        assert!(!is_component_digest(&format!("{}g", &EMPTY_SHA256[1..])));
    }

    #[test]
    fn a_component_must_hash_to_its_digest() {
        assert_eq!(verify_component(EMPTY_SHA256, b""), Ok(()));
        let Err(StoreError::InvalidComponent(why)) = verify_component(EMPTY_SHA256, b"x") else {
            panic!("bytes of another digest must be refused");
        };
        assert!(why.contains(&component_digest(b"x")), "{why}");
        let Err(StoreError::InvalidComponent(why)) = verify_component(&"A".repeat(1000), b"")
        else {
            panic!("a malformed digest must be refused");
        };
        assert!(why.len() < 200, "the error quotes only a prefix: {why}");
    }

    #[test]
    fn a_deployment_is_held_to_its_bounds() {
        let ok = NewDeployment {
            manifest: "[app]".into(),
            components: BTreeMap::from([("f".into(), EMPTY_SHA256.into())]),
            digest: "v1".into(),
        };
        assert_eq!(check_deployment(&ok), Ok(()));
        let refused = |change: &dyn Fn(&mut NewDeployment)| {
            let mut new = ok.clone();
            change(&mut new);
            match check_deployment(&new) {
                Err(StoreError::InvalidDeployment(why)) => why,
                other => panic!("expected InvalidDeployment, got {other:?}"),
            }
        };
        assert!(refused(&|n| n.digest.clear()).contains("digest"));
        assert!(refused(&|n| n.digest = "a b".into()).contains("digest"));
        assert!(refused(&|n| n.manifest = "#".repeat(MAX_MANIFEST_BYTES + 1)).contains("manifest"));
        let why = refused(&|n| {
            n.components.insert(String::new(), EMPTY_SHA256.into());
        });
        assert!(why.contains("function name"), "{why}");
        let why = refused(&|n| {
            n.components.insert("g".into(), "nope".into());
        });
        assert!(why.contains("`g`"), "{why}");
        let why = refused(&|n| {
            n.components = (0..=MAX_DEPLOYMENT_FUNCTIONS)
                .map(|i| (format!("f{i}"), EMPTY_SHA256.to_owned()))
                .collect();
        });
        assert!(why.contains("functions"), "{why}");
    }
}
