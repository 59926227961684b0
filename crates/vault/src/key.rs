//! The secret key and its file. The key lives apart from the database (by
//! default in the per-user config directory), so a copy of the data
//! directory alone does not open the secrets. The file holds the key as hex.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Bytes in a key (XChaCha20-Poly1305 takes 256 bits).
pub const KEY_BYTES: usize = 32;

/// The key that seals and opens secrets. Its `Debug` never shows it.
#[derive(Clone)]
pub struct SecretKey(pub(crate) [u8; KEY_BYTES]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Why a key file could not be used. Messages name the file, never its
/// contents.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("failed to read the secret key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to create the secret key file {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the secret key file {path} does not hold a key: expected {} hex digits",
        KEY_BYTES * 2
    )]
    Malformed { path: PathBuf },
    #[error("the system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Whether [`SecretKey::load_or_create`] found the key or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    Loaded,
    Created,
}

impl SecretKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyFileError> {
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(KeyFileError::Random)?;
        Ok(SecretKey(key))
    }

    /// Reads the key at `path`; `None` if there is no file.
    pub fn load(path: &Path) -> Result<Option<Self>, KeyFileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Self::parse(path, &text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyFileError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Reads the key at `path`, or creates the file (mode 0600, its
    /// directory 0700) with a fresh key if there is none. A key file that
    /// others may read is used, with a warning.
    pub fn load_or_create(path: &Path) -> Result<(Self, KeyOrigin), KeyFileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => return Ok((Self::parse(path, &text)?, KeyOrigin::Loaded)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(KeyFileError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let key = Self::generate()?;
        match key.create_file(path) {
            Ok(()) => Ok((key, KeyOrigin::Created)),
            // Another process made it first: use theirs.
            Err(KeyFileError::Create { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Ok((Self::parse(path, &text)?, KeyOrigin::Loaded))
            }
            Err(e) => Err(e),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<Self, KeyFileError> {
        let malformed = || KeyFileError::Malformed {
            path: path.to_owned(),
        };
        let hex = text.trim().as_bytes();
        if hex.len() != KEY_BYTES * 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(malformed());
        }
        let mut key = [0u8; KEY_BYTES];
        let (pairs, _) = hex.as_chunks::<2>();
        for (byte, pair) in key.iter_mut().zip(pairs) {
            let digits = std::str::from_utf8(pair).map_err(|_| malformed())?;
            *byte = u8::from_str_radix(digits, 16).map_err(|_| malformed())?;
        }
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the secret key file can be read by other users; `chmod 600` it"
            );
        }
        Ok(SecretKey(key))
    }

    /// Writes the key to a private temporary file and links it into place,
    /// so `path` never exists half-written (a crash or a second process
    /// starting at the same time sees the whole key or no file).
    fn create_file(&self, path: &Path) -> Result<(), KeyFileError> {
        let create = |source| KeyFileError::Create {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(create)?;
        }
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(KeyFileError::Random)?;
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{:016x}.tmp", u64::from_le_bytes(suffix)));
        let temporary = PathBuf::from(temporary);
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temporary)?;
            let hex: String = self.0.iter().map(|b| format!("{b:02x}")).collect();
            file.write_all(format!("{hex}\n").as_bytes())?;
            file.sync_all()?;
            std::fs::hard_link(&temporary, path)
        })();
        let _ = std::fs::remove_file(&temporary);
        written.map_err(create)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_file_is_private_and_reads_back_as_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/secrets.key");
        let (created, origin) = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(origin, KeyOrigin::Created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let (loaded, origin) = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(origin, KeyOrigin::Loaded);
        assert_eq!(created.0, loaded.0);
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        std::fs::write(&path, "hunter2-not-a-key").unwrap();
        let e = SecretKey::load_or_create(&path).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("64 hex digits"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn the_debug_form_hides_the_key() {
        let key = SecretKey([0xab; KEY_BYTES]);
        assert_eq!(format!("{key:?}"), "SecretKey(..)");
    }
}
