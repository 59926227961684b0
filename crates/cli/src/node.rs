//! This node's id: `--node-id` when given, else the one kept in the data
//! directory, else a new one written there, so a restarted node is the same
//! node (and takes back its own leases at once instead of waiting for them
//! to lapse).

use anyhow::Context as _;
use std::path::Path;

/// Longest node id accepted.
const MAX_NODE_ID_LEN: usize = 64;
/// The file in the data directory that keeps the id.
const NODE_ID_FILE: &str = "node-id";

/// Checks a node id: 1 to 64 of `A-Z a-z 0-9 . _ -`, as it goes into lease
/// names, logs and metric labels.
pub fn check(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_NODE_ID_LEN {
        return Err(format!(
            "a node id is 1 to {MAX_NODE_ID_LEN} characters; `{id}` has {}",
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "a node id may hold letters, digits, `.`, `_` and `-`; `{id}` holds `{bad}`"
        ));
    }
    Ok(())
}

/// The node id to run as.
pub fn resolve(given: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(id) = given {
        check(id).map_err(|e| anyhow::anyhow!("--node-id: {e}"))?;
        return Ok(id.to_owned());
    }
    let path = data_dir.join(NODE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim().to_owned();
        check(&id).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(id);
    }
    let id = format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("failed to write {}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_and_plain() {
        assert!(check("node-a.1_x").is_ok());
        assert!(check("").unwrap_err().contains("1 to 64"));
        assert!(check(&"n".repeat(65)).unwrap_err().contains("has 65"));
        assert!(check("node a").unwrap_err().contains("holds ` `"));
        assert!(check("nöde").unwrap_err().contains("holds `ö`"));
    }

    #[test]
    fn a_generated_id_is_kept_and_a_given_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(None, dir.path()).unwrap();
        assert!(first.starts_with("node-"));
        assert_eq!(resolve(None, dir.path()).unwrap(), first);
        assert_eq!(resolve(Some("edge-1"), dir.path()).unwrap(), "edge-1");
        assert!(
            resolve(Some("bad id"), dir.path())
                .unwrap_err()
                .to_string()
                .starts_with("--node-id:")
        );
    }
}
