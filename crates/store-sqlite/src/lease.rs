//! `LeaseStore` on SQLite: one row per lease, changed by the single writer,
//! so a take, a renewal and a fenced write never interleave. One process
//! uses a SQLite file, but leases behave as on PostgreSQL so the same
//! dispatch code runs on both. (The `/` in the take's SQL is
//! `INCARNATION_SEPARATOR`.)

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::lease::{Fence, Lease, LeaseStore};
use nimbus_store::{StoreError, StoreResult, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            fence INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );",
    )
    .map_err(backend)
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn later(now: Timestamp, ttl_ms: u64) -> i64 {
    int(now).saturating_add(int(ttl_ms))
}

fn lease_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        name: row.get(0)?,
        owner: row.get(1)?,
        fence: row.get::<_, i64>(2)? as u64,
        expires_at: row.get::<_, i64>(3)? as u64,
    })
}

/// Fails with `Fenced` unless `fence`'s lease is still at its token.
pub(crate) fn check_fence(tx: &Tx<'_>, fence: &Fence) -> StoreResult<()> {
    let current: Option<i64> = tx
        .query_row(
            "SELECT fence FROM leases WHERE name = ?1",
            params![fence.lease],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?;
    if current != Some(int(fence.token)) {
        return Err(StoreError::Fenced {
            lease: fence.lease.clone(),
            token: fence.token,
        });
    }
    Ok(())
}

#[async_trait::async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> StoreResult<Option<Lease>> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.writer
            .run(move |tx| {
                let now = int(tx.now);
                tx.query_row(
                    "INSERT INTO leases (name, owner, fence, expires_at) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT (name) DO UPDATE SET
                        fence = CASE WHEN leases.owner = excluded.owner AND leases.expires_at > ?4
                                     THEN leases.fence ELSE leases.fence + 1 END,
                        owner = excluded.owner,
                        expires_at = excluded.expires_at
                     WHERE leases.owner = excluded.owner OR leases.expires_at <= ?4
                        OR substr(leases.owner, 1, instr(leases.owner || '/', '/') - 1)
                           = substr(excluded.owner, 1, instr(excluded.owner || '/', '/') - 1)
                     RETURNING name, owner, fence, expires_at",
                    params![name, owner, later(tx.now, ttl_ms), now],
                    lease_from_row,
                )
                .optional()
                .map_err(backend)
            })
            .await
    }

    async fn renew_leases(
        &self,
        owner: &str,
        names: &[String],
        ttl_ms: u64,
    ) -> StoreResult<Vec<Lease>> {
        let (owner, names) = (owner.to_owned(), names.to_vec());
        self.writer
            .run(move |tx| {
                let mut renewed = Vec::new();
                let mut statement = tx
                    .conn
                    .prepare_cached(
                        "UPDATE leases SET expires_at = ?3
                         WHERE name = ?1 AND owner = ?2 AND expires_at > ?4
                         RETURNING name, owner, fence, expires_at",
                    )
                    .map_err(backend)?;
                for name in &names {
                    let lease = statement
                        .query_row(
                            params![name, owner, later(tx.now, ttl_ms), int(tx.now)],
                            lease_from_row,
                        )
                        .optional()
                        .map_err(backend)?;
                    renewed.extend(lease);
                }
                renewed.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(renewed)
            })
            .await
    }

    async fn release_lease(&self, name: &str, owner: &str, fence: u64) -> StoreResult<()> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.writer
            .run(move |tx| {
                tx.execute(
                    "UPDATE leases SET expires_at = ?4
                     WHERE name = ?1 AND owner = ?2 AND fence = ?3 AND expires_at > ?4",
                    params![name, owner, int(fence), int(tx.now)],
                )
                .map(drop)
                .map_err(backend)
            })
            .await
    }

    async fn leases(&self, prefix: &str) -> StoreResult<Vec<Lease>> {
        let prefix = prefix.to_owned();
        self.writer
            .run(move |tx| {
                tx.conn
                    .prepare_cached(
                        "SELECT name, owner, fence, expires_at FROM leases
                         WHERE substr(name, 1, length(?1)) = ?1 AND expires_at > ?2
                         ORDER BY name",
                    )
                    .map_err(backend)?
                    .query_map(params![prefix, int(tx.now)], lease_from_row)
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)
            })
            .await
    }
}
