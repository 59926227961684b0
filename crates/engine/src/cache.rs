//! Compiled-artifact cache in the data directory.
//!
//! An artifact's file name is a SHA-256 over the component's bytes and the
//! engine's compatibility hash (target, compiler flags, tunables, features and
//! wasmtime version), so a changed component, engine setting or wasmtime
//! version compiles anew, and an unchanged one is only loaded.

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Bumped when the cache's own layout changes.
const FORMAT: &str = "nimbus-artifact-v1";

/// Whether loading a component reused a cached artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a cached artifact; nothing was compiled.
    Hit,
    /// Compiled and written to the cache.
    Compiled,
}

/// Directory of precompiled components, one `<key>.cwasm` file each.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ArtifactCache { dir: dir.into() }
    }

    /// The cache key for `component` compiled by `engine`.
    pub fn key(engine: &Engine, component: &[u8]) -> String {
        let mut hasher = Sha256Hasher(Sha256::new());
        hasher.0.update(FORMAT);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(component);
        hex(&hasher.0.finalize())
    }

    /// Loads `component` from the cache, compiling and storing it on a miss.
    /// An artifact that fails to load (truncated, corrupted) is replaced.
    pub fn load(
        &self,
        engine: &Engine,
        component: &[u8],
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        let path = self
            .dir
            .join(format!("{}.cwasm", Self::key(engine, component)));
        if path.is_file() {
            match deserialize(engine, &path) {
                Ok(loaded) => return Ok((loaded, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(artifact = %path.display(), "discarding unusable cached artifact: {e:#}")
                }
            }
        }
        let compiled = engine
            .precompile_component(component)
            .map_err(anyhow::Error::from)
            .context("failed to compile component")?;
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("failed to create artifact cache {}", self.dir.display()))?;
        // Write to a unique temporary name, sync, then rename: a reader never
        // sees a half-written artifact, a crash leaves at worst a stray
        // temporary file, and concurrent writers do not collide.
        let tmp = tempfile_path(&path);
        let written = write_synced(&tmp, &compiled).and_then(|()| {
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("failed to store {}", path.display()))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let loaded = deserialize(engine, &path)?;
        Ok((loaded, CacheOutcome::Compiled))
    }
}

fn deserialize(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: `deserialize_file` trusts the file to be an artifact produced
    // by `precompile_component` of a compatible engine. Only this cache writes
    // into its directory, under a name derived from the engine's
    // compatibility hash, and wasmtime still checks the header before use.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize_file(engine, path) };
    component.map_err(anyhow::Error::from)
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write {}", path.display()))
}

fn tempfile_path(path: &Path) -> PathBuf {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    path.with_extension(format!("tmp-{}-{nonce}", std::process::id()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` implementations into SHA-256, so the engine's compatibility
/// hash contributes all of its state, not a 64-bit summary.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        // Only `write` is used; the digest is read from the inner state.
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::Config;

    fn engine(configure: impl FnOnce(&mut Config)) -> Engine {
        let mut config = Config::new();
        config.wasm_component_model(true);
        configure(&mut config);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn the_key_changes_with_the_component_and_with_compile_settings() {
        let hello = std::fs::read(nimbus_test_programs::HELLO).unwrap();
        let echo = std::fs::read(nimbus_test_programs::ECHO).unwrap();
        let plain = engine(|_| {});
        let epochs = engine(|c| {
            c.epoch_interruption(true);
        });
        assert_eq!(
            ArtifactCache::key(&plain, &hello),
            ArtifactCache::key(&engine(|_| {}), &hello)
        );
        assert_ne!(
            ArtifactCache::key(&plain, &hello),
            ArtifactCache::key(&plain, &echo)
        );
        assert_ne!(
            ArtifactCache::key(&plain, &hello),
            ArtifactCache::key(&epochs, &hello)
        );
    }

    #[test]
    fn an_engine_with_other_settings_compiles_instead_of_loading() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(dir.path());
        let hello = std::fs::read(nimbus_test_programs::HELLO).unwrap();
        let plain = engine(|_| {});
        assert_eq!(
            cache.load(&plain, &hello).unwrap().1,
            CacheOutcome::Compiled
        );
        assert_eq!(cache.load(&plain, &hello).unwrap().1, CacheOutcome::Hit);
        let epochs = engine(|c| {
            c.epoch_interruption(true);
        });
        assert_eq!(
            cache.load(&epochs, &hello).unwrap().1,
            CacheOutcome::Compiled
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
