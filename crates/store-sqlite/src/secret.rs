//! `SecretStore` on SQLite: the schema and the operations, each run by the
//! writer inside the batch's transaction. Rows hold sealed bytes only.

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::StoreResult;
use nimbus_store::secret::{PutOutcome, SealedSecret, SecretInfo, SecretStore};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS secrets (
            name TEXT PRIMARY KEY,
            sealed BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS secret_key_check (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            sealed BLOB NOT NULL
        );",
    )
    .map_err(backend)
}

fn put(tx: &Tx<'_>, name: &str, sealed: &[u8]) -> StoreResult<PutOutcome> {
    let now = tx.now as i64;
    let replaced = tx
        .execute(
            "UPDATE secrets SET sealed = ?2, updated_at = ?3 WHERE name = ?1",
            params![name, sealed, now],
        )
        .map_err(backend)?;
    if replaced > 0 {
        return Ok(PutOutcome::Replaced);
    }
    tx.execute(
        "INSERT INTO secrets (name, sealed, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
        params![name, sealed, now],
    )
    .map_err(backend)?;
    Ok(PutOutcome::Created)
}

fn get(tx: &Tx<'_>, name: &str) -> StoreResult<Option<SealedSecret>> {
    tx.query_row(
        "SELECT sealed, created_at, updated_at FROM secrets WHERE name = ?1",
        params![name],
        |row| {
            Ok(SealedSecret {
                name: name.to_owned(),
                sealed: row.get(0)?,
                created_at: row.get::<_, i64>(1)? as u64,
                updated_at: row.get::<_, i64>(2)? as u64,
            })
        },
    )
    .optional()
    .map_err(backend)
}

fn list(tx: &Tx<'_>) -> StoreResult<Vec<SecretInfo>> {
    let mut select = tx
        .conn
        .prepare_cached("SELECT name, created_at, updated_at FROM secrets ORDER BY name")
        .map_err(backend)?;
    let rows = select
        .query_map([], |row| {
            Ok(SecretInfo {
                name: row.get(0)?,
                created_at: row.get::<_, i64>(1)? as u64,
                updated_at: row.get::<_, i64>(2)? as u64,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<_, _>>().map_err(backend)
}

fn key_check(tx: &Tx<'_>, candidate: &[u8]) -> StoreResult<Vec<u8>> {
    tx.execute(
        "INSERT OR IGNORE INTO secret_key_check (id, sealed) VALUES (1, ?1)",
        params![candidate],
    )
    .map_err(backend)?;
    tx.query_row(
        "SELECT sealed FROM secret_key_check WHERE id = 1",
        [],
        |row| row.get(0),
    )
    .map_err(backend)
}

#[async_trait::async_trait]
impl SecretStore for SqliteStore {
    async fn put_secret(&self, name: &str, sealed: Vec<u8>) -> StoreResult<PutOutcome> {
        let name = name.to_owned();
        self.writer.run(move |tx| put(tx, &name, &sealed)).await
    }

    async fn get_secret(&self, name: &str) -> StoreResult<Option<SealedSecret>> {
        let name = name.to_owned();
        self.writer.run(move |tx| get(tx, &name)).await
    }

    async fn list_secrets(&self) -> StoreResult<Vec<SecretInfo>> {
        self.writer.run(list).await
    }

    async fn delete_secret(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.writer
            .run(move |tx| {
                let n = tx
                    .execute("DELETE FROM secrets WHERE name = ?1", params![name])
                    .map_err(backend)?;
                Ok(n > 0)
            })
            .await
    }

    async fn key_check(&self, candidate: Vec<u8>) -> StoreResult<Vec<u8>> {
        self.writer.run(move |tx| key_check(tx, &candidate)).await
    }
}
