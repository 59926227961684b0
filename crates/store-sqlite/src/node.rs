//! `NodeStore` on SQLite: one row per node, its last report. One process
//! uses a SQLite file, so this holds only that node; it is kept so the
//! cluster view reads the same on both backends.

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::StoreResult;
use nimbus_store::node::{NodeReport, NodeStore};
use rusqlite::{Connection, params};

/// Schema version 3: node reports.
pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS nodes (
            id TEXT PRIMARY KEY,
            version TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            reported_at INTEGER NOT NULL,
            in_flight INTEGER NOT NULL
        );",
    )
    .map_err(backend)
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn report(tx: &Tx<'_>, r: &NodeReport) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO nodes (id, version, started_at, reported_at, in_flight)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version,
            started_at = excluded.started_at, reported_at = excluded.reported_at,
            in_flight = excluded.in_flight",
        params![
            r.node,
            r.version,
            int(r.started_at),
            int(tx.now),
            int(r.in_flight)
        ],
    )
    .map(drop)
    .map_err(backend)
}

#[async_trait::async_trait]
impl NodeStore for SqliteStore {
    async fn report_node(&self, r: &NodeReport) -> StoreResult<()> {
        let r = r.clone();
        self.writer.run(move |tx| report(tx, &r)).await
    }

    async fn node_reports(&self) -> StoreResult<Vec<NodeReport>> {
        self.writer
            .run(|tx| {
                tx.conn
                    .prepare_cached(
                        "SELECT id, version, started_at, reported_at, in_flight FROM nodes ORDER BY id",
                    )
                    .map_err(backend)?
                    .query_map([], |row| {
                        Ok(NodeReport {
                            node: row.get(0)?,
                            version: row.get(1)?,
                            started_at: row.get::<_, i64>(2)? as u64,
                            reported_at: row.get::<_, i64>(3)? as u64,
                            in_flight: row.get::<_, i64>(4)? as u64,
                        })
                    })
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)
            })
            .await
    }

    async fn forget_nodes(&self, silent_ms: u64) -> StoreResult<u64> {
        self.writer
            .run(move |tx| {
                let cutoff = int(tx.now.saturating_sub(silent_ms));
                tx.execute("DELETE FROM nodes WHERE reported_at < ?1", params![cutoff])
                    .map(|n| n as u64)
                    .map_err(backend)
            })
            .await
    }
}
