//! The schema's version: `nimbus_schema` holds the version the file is at.
//! A newer binary migrates forward (version 1 is every table's
//! `CREATE TABLE IF NOT EXISTS`, which also adopts a file written before
//! versions were kept; version 2 adds the registry of uploads in flight);
//! an older one refuses a newer file.

use crate::backend;
use nimbus_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension};

/// The schema version this binary reads and writes.
pub const SCHEMA_VERSION: u32 = 2;

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS nimbus_schema (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        );",
    )
    .map_err(backend)?;
    let found: u32 = conn
        .query_row(
            "SELECT version FROM nimbus_schema WHERE id = 1",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(backend)?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    if found < 1 {
        crate::queue::migrate(conn)?;
        crate::secret::migrate(conn)?;
        crate::keys::migrate(conn)?;
        crate::history::migrate(conn)?;
        crate::table::migrate(conn)?;
        crate::schedule::migrate(conn)?;
        crate::bucket::migrate(conn)?;
    }
    if found < 2 {
        crate::lease::migrate(conn)?;
        crate::bucket::migrate_uploads(conn)?;
    }
    conn.execute(
        "INSERT INTO nimbus_schema (id, version) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [SCHEMA_VERSION],
    )
    .map_err(backend)?;
    Ok(())
}
