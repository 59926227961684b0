//! This node's id: `--node-id` when given, else the one kept in the data
//! directory, else a new one written there, so a restarted node is the same
//! node (and takes back its own leases at once instead of waiting for them
//! to lapse); and the report the node leaves in the store on every
//! heartbeat, for the cluster view.

use anyhow::Context as _;
use nimbus_store::{NodeReport, Store, Timestamp};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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

/// How long the store keeps the report of a node that stopped reporting
/// (so a killed node stays visible in the cluster view for a while).
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Leaves this node's report in the store every `every` until `shutdown`:
/// its version, start time and the invocations running on it, for
/// `GET /v1/cluster` on any node.
pub async fn report_periodically(
    store: Arc<dyn Store>,
    node: String,
    started_at: Timestamp,
    metrics: Arc<nimbus_metrics::Metrics>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        let in_flight: i64 = metrics
            .concurrent_executions
            .series()
            .iter()
            .map(|(_, gauge)| gauge.get())
            .sum();
        let report = NodeReport {
            node: node.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at,
            reported_at: 0,
            in_flight: in_flight.max(0) as u64,
        };
        match store.report_node(&report).await {
            Ok(()) => failing = false,
            // Once per outage: the node's lease line says the rest.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!("failed to report this node to the store: {e}");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
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
