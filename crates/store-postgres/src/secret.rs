//! `SecretStore` on PostgreSQL: sealed bytes under a name, and the key check
//! (the first candidate stored wins, however many processes race).

use crate::{PgStore, in_tx};
use nimbus_store::StoreResult;
use nimbus_store::secret::{PutOutcome, SealedSecret, SecretInfo, SecretStore};

#[async_trait::async_trait]
impl SecretStore for PgStore {
    async fn put_secret(&self, name: &str, sealed: Vec<u8>) -> StoreResult<PutOutcome> {
        in_tx!(self, |tx| {
            // `xmax = 0` only on a row this statement inserted.
            let row = tx
                .query_one(
                    "INSERT INTO secrets (name, sealed, created_at, updated_at) VALUES ($1, $2, $3, $3)
                     ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
                     RETURNING (xmax = 0)",
                    &[&name, &sealed, &tx.now],
                )
                .await?;
            Ok(if row.get::<_, bool>(0) {
                PutOutcome::Created
            } else {
                PutOutcome::Replaced
            })
        })
    }

    async fn get_secret(&self, name: &str) -> StoreResult<Option<SealedSecret>> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    "SELECT sealed, created_at, updated_at FROM secrets WHERE name = $1",
                    &[&name],
                )
                .await?;
            Ok(row.map(|row| SealedSecret {
                name: name.to_owned(),
                sealed: row.get(0),
                created_at: row.get::<_, i64>(1) as u64,
                updated_at: row.get::<_, i64>(2) as u64,
            }))
        })
    }

    async fn list_secrets(&self) -> StoreResult<Vec<SecretInfo>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT name, created_at, updated_at FROM secrets ORDER BY name",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| SecretInfo {
                    name: row.get(0),
                    created_at: row.get::<_, i64>(1) as u64,
                    updated_at: row.get::<_, i64>(2) as u64,
                })
                .collect())
        })
    }

    async fn delete_secret(&self, name: &str) -> StoreResult<bool> {
        in_tx!(self, |tx| {
            let n = tx
                .execute("DELETE FROM secrets WHERE name = $1", &[&name])
                .await?;
            Ok(n > 0)
        })
    }

    async fn key_check(&self, candidate: Vec<u8>) -> StoreResult<Vec<u8>> {
        in_tx!(self, |tx| {
            tx.execute(
                "INSERT INTO secret_key_check (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&candidate],
            )
            .await?;
            let row = tx
                .query_one("SELECT sealed FROM secret_key_check WHERE id = 1", &[])
                .await?;
            Ok(row.get(0))
        })
    }
}
