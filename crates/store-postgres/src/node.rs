//! `NodeStore` on PostgreSQL: one row per node, its last report, replaced by
//! an upsert on every heartbeat and read whole for the cluster view.

use crate::{PgStore, in_tx, int8};
use nimbus_store::StoreResult;
use nimbus_store::node::{NodeReport, NodeStore};

#[async_trait::async_trait]
impl NodeStore for PgStore {
    async fn report_node(&self, r: &NodeReport) -> StoreResult<()> {
        in_tx!(self, |tx| {
            tx.execute(
                "INSERT INTO nodes (id, version, started_at, reported_at, in_flight)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version,
                    started_at = excluded.started_at, reported_at = excluded.reported_at,
                    in_flight = excluded.in_flight",
                &[
                    &r.node,
                    &r.version,
                    &int8(r.started_at),
                    &tx.now,
                    &int8(r.in_flight),
                ],
            )
            .await
            .map(drop)
        })
    }

    async fn node_reports(&self) -> StoreResult<Vec<NodeReport>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT id, version, started_at, reported_at, in_flight FROM nodes ORDER BY id",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| NodeReport {
                    node: row.get(0),
                    version: row.get(1),
                    started_at: row.get::<_, i64>(2) as u64,
                    reported_at: row.get::<_, i64>(3) as u64,
                    in_flight: row.get::<_, i64>(4) as u64,
                })
                .collect())
        })
    }

    async fn forget_nodes(&self, silent_ms: u64) -> StoreResult<u64> {
        in_tx!(self, |tx| {
            tx.execute(
                "DELETE FROM nodes WHERE reported_at < $1",
                &[&tx.now.saturating_sub(int8(silent_ms))],
            )
            .await
        })
    }
}
