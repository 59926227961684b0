//! `KeyStore` on PostgreSQL: API key records and their quota use.

use crate::{PgStore, Tx, in_tx, int8};
use nimbus_store::keys::{ApiKeyRecord, KeyStore, KeyUsage};
use nimbus_store::{StoreError, StoreResult};
use tokio_postgres::Row;

const COLUMNS: &str = "id, name, hash, created_at, revoked_at, rate_per_s, burst, quota, \
     quota_period_s, window_start_s, used";

fn record(row: &Row) -> (ApiKeyRecord, Option<KeyUsage>) {
    let hash: Vec<u8> = row.get(2);
    let record = ApiKeyRecord {
        id: row.get(0),
        name: row.get(1),
        hash: hash.try_into().unwrap_or([0; 32]),
        created_at: row.get::<_, i64>(3) as u64,
        revoked_at: row.get::<_, Option<i64>>(4).map(|t| t as u64),
        rate_per_s: row.get(5),
        burst: row.get::<_, Option<i64>>(6).map(|b| b as u32),
        quota: row.get::<_, Option<i64>>(7).map(|q| q as u64),
        quota_period_s: row.get::<_, Option<i64>>(8).map(|p| p as u64),
    };
    let usage = match (row.get::<_, Option<i64>>(9), row.get::<_, Option<i64>>(10)) {
        (Some(start), Some(used)) => Some(KeyUsage {
            window_start_s: start as u64,
            used: used as u64,
        }),
        _ => None,
    };
    (record, usage)
}

async fn create(tx: &Tx<'_>, key: &ApiKeyRecord) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO api_keys (id, name, hash, created_at, revoked_at, rate_per_s, burst, quota, quota_period_s)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &key.id,
            &key.name,
            &key.hash.as_slice(),
            &int8(key.created_at),
            &key.revoked_at.map(int8),
            &key.rate_per_s,
            &key.burst.map(i64::from),
            &key.quota.map(int8),
            &key.quota_period_s.map(int8),
        ],
    )
    .await?;
    Ok(())
}

async fn revoke(tx: &Tx<'_>, id: &str) -> StoreResult<ApiKeyRecord> {
    tx.query_opt(
        &format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {COLUMNS}"
        ),
        &[&id, &tx.now],
    )
    .await?
    .map(|row| record(&row).0)
    .ok_or_else(|| StoreError::KeyNotFound(id.to_owned()))
}

#[async_trait::async_trait]
impl KeyStore for PgStore {
    async fn create_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        in_tx!(self, |tx| create(tx, &key).await)
    }

    async fn list_keys(&self) -> StoreResult<Vec<(ApiKeyRecord, Option<KeyUsage>)>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY seq"), &[])
                .await?;
            Ok(rows.iter().map(record).collect())
        })
    }

    async fn revoke_key(&self, id: &str) -> StoreResult<ApiKeyRecord> {
        in_tx!(self, |tx| revoke(tx, id).await)
    }

    async fn add_key_usage(
        &self,
        usage: Vec<(String, KeyUsage)>,
    ) -> StoreResult<Vec<(String, KeyUsage)>> {
        in_tx!(self, |tx| {
            let mut totals = Vec::with_capacity(usage.len());
            for (id, u) in &usage {
                let row = tx
                    .query_opt(
                        "UPDATE api_keys SET
                            used = CASE WHEN window_start_s = $2 THEN used + $3
                                        WHEN window_start_s > $2 THEN used
                                        ELSE $3 END,
                            window_start_s = GREATEST(window_start_s, $2)
                         WHERE id = $1
                         RETURNING window_start_s, used",
                        &[id, &int8(u.window_start_s), &int8(u.used)],
                    )
                    .await?;
                if let Some(row) = row {
                    totals.push((
                        id.clone(),
                        KeyUsage {
                            window_start_s: row.get::<_, i64>(0) as u64,
                            used: row.get::<_, i64>(1) as u64,
                        },
                    ));
                }
            }
            Ok(totals)
        })
    }
}
