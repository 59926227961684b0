//! `KeyStore` on SQLite: API key records and their quota use.

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::keys::{ApiKeyRecord, KeyStore, KeyUsage};
use nimbus_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS api_keys (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            hash BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            revoked_at INTEGER,
            rate_per_s REAL,
            burst INTEGER,
            quota INTEGER,
            quota_period_s INTEGER,
            window_start_s INTEGER,
            used INTEGER
        );",
    )
    .map_err(backend)
}

const COLUMNS: &str = "id, name, hash, created_at, revoked_at, rate_per_s, burst, quota, quota_period_s, window_start_s, used";

fn record(row: &Row<'_>) -> rusqlite::Result<(ApiKeyRecord, Option<KeyUsage>)> {
    let hash: Vec<u8> = row.get(2)?;
    let record = ApiKeyRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        hash: hash.try_into().unwrap_or([0; 32]),
        created_at: row.get::<_, i64>(3)? as u64,
        revoked_at: row.get::<_, Option<i64>>(4)?.map(|t| t as u64),
        rate_per_s: row.get(5)?,
        burst: row.get::<_, Option<i64>>(6)?.map(|b| b as u32),
        quota: row.get::<_, Option<i64>>(7)?.map(|q| q as u64),
        quota_period_s: row.get::<_, Option<i64>>(8)?.map(|p| p as u64),
    };
    let usage = match (
        row.get::<_, Option<i64>>(9)?,
        row.get::<_, Option<i64>>(10)?,
    ) {
        (Some(start), Some(used)) => Some(KeyUsage {
            window_start_s: start as u64,
            used: used as u64,
        }),
        _ => None,
    };
    Ok((record, usage))
}

fn create(tx: &Tx<'_>, key: &ApiKeyRecord) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO api_keys (id, name, hash, created_at, revoked_at, rate_per_s, burst, quota, quota_period_s)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            key.id,
            key.name,
            key.hash.as_slice(),
            key.created_at as i64,
            key.revoked_at.map(|t| t as i64),
            key.rate_per_s,
            key.burst.map(i64::from),
            key.quota.map(|q| q as i64),
            key.quota_period_s.map(|p| p as i64),
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn revoke(tx: &Tx<'_>, id: &str) -> StoreResult<ApiKeyRecord> {
    tx.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
        params![id, tx.now as i64],
    )
    .map_err(backend)?;
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"),
        params![id],
        record,
    )
    .optional()
    .map_err(backend)?
    .map(|(record, _)| record)
    .ok_or_else(|| StoreError::KeyNotFound(id.to_owned()))
}

#[async_trait::async_trait]
impl KeyStore for SqliteStore {
    async fn create_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        self.writer.run(move |tx| create(tx, &key)).await
    }

    async fn list_keys(&self) -> StoreResult<Vec<(ApiKeyRecord, Option<KeyUsage>)>> {
        self.writer
            .run(|tx| {
                let mut statement = tx
                    .conn
                    .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY seq"))
                    .map_err(backend)?;
                let rows = statement.query_map([], record).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn revoke_key(&self, id: &str) -> StoreResult<ApiKeyRecord> {
        let id = id.to_owned();
        self.writer.run(move |tx| revoke(tx, &id)).await
    }

    async fn add_key_usage(
        &self,
        usage: Vec<(String, KeyUsage)>,
    ) -> StoreResult<Vec<(String, KeyUsage)>> {
        self.writer
            .run(move |tx| {
                let mut totals = Vec::with_capacity(usage.len());
                for (id, u) in &usage {
                    let total = tx
                        .query_row(
                            "UPDATE api_keys SET
                                used = CASE WHEN window_start_s = ?2 THEN used + ?3
                                            WHEN window_start_s > ?2 THEN used
                                            ELSE ?3 END,
                                window_start_s = MAX(COALESCE(window_start_s, ?2), ?2)
                             WHERE id = ?1
                             RETURNING window_start_s, used",
                            params![id, u.window_start_s as i64, u.used as i64],
                            |row| {
                                Ok(KeyUsage {
                                    window_start_s: row.get::<_, i64>(0)? as u64,
                                    used: row.get::<_, i64>(1)? as u64,
                                })
                            },
                        )
                        .optional()
                        .map_err(backend)?;
                    totals.extend(total.map(|t| (id.clone(), t)));
                }
                Ok(totals)
            })
            .await
    }
}
