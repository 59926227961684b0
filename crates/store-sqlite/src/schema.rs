//! The schema's version. `nimbus_schema` holds the newest migration applied
//! (`applied`) and the oldest schema version a binary must know to use the
//! file (`version`, the column binaries before version 3 read), by the rule
//! of [`nimbus_store::schema`]. A newer binary migrates forward (version 1
//! is every table's `CREATE TABLE IF NOT EXISTS`, which also adopts a file
//! written before versions were kept; 2 adds leases and the registry of
//! uploads in flight; 3 adds node reports, the node of each invocation
//! record and the node of each upload; 4 adds deployments and their
//! components; 5 adds what each invocation record meters and the usage
//! table; 6 adds each record's spans and an index by trace; 7 adds each
//! message's first receive time; 8 drops the index on receipt handles, which
//! now name their message's seq); a binary refuses a file that needs a newer
//! one.

use crate::backend;
use nimbus_store::StoreResult;
use nimbus_store::schema::SchemaState;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this binary reads and writes.
pub const SCHEMA_VERSION: u32 = 8;

/// What each version asks of binaries: `REQUIRES[v - 1]` is the oldest
/// schema version that can use a file at version `v`. Versions 3 to 8 keep
/// every table and column, so version-2 binaries keep running on them during
/// a rolling upgrade (records a version-4 binary writes meter nothing;
/// records older binaries write keep no spans; messages they receive keep no
/// first receive time, and a message they redrive keeps the one it had;
/// without version 8's index on receipts their deletes scan the queue, and
/// the receipt handles they hand out are stale to newer binaries, so those
/// messages come back when their leases end).
const REQUIRES: [u32; SCHEMA_VERSION as usize] = [1, 2, 2, 2, 2, 2, 2, 2];

/// Whether `table` has `column` (SQLite has no `ADD COLUMN IF NOT EXISTS`).
pub(crate) fn has_column(conn: &Connection, table: &str, column: &str) -> StoreResult<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get(0),
    )
    .map_err(backend)
}

/// Brings the file to [`SCHEMA_VERSION`] in one transaction (a migration
/// cut off halfway leaves the file as it was), or refuses it.
pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(backend)?;
    match migrate_in_transaction(conn) {
        Ok(()) => conn.execute_batch("COMMIT").map_err(backend),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn migrate_in_transaction(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS nimbus_schema (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        );",
    )
    .map_err(backend)?;
    if !has_column(conn, "nimbus_schema", "applied")? {
        conn.execute_batch("ALTER TABLE nimbus_schema ADD COLUMN applied INTEGER;")
            .map_err(backend)?;
    }
    let found = conn
        .query_row(
            "SELECT version, coalesce(applied, version) FROM nimbus_schema WHERE id = 1",
            [],
            |row| {
                Ok(SchemaState {
                    requires: row.get(0)?,
                    applied: row.get(1)?,
                })
            },
        )
        .optional()
        .map_err(backend)?
        .unwrap_or(SchemaState {
            applied: 0,
            requires: 0,
        });
    found.check(SCHEMA_VERSION)?;
    if found.applied < 1 {
        crate::queue::migrate(conn)?;
        crate::secret::migrate(conn)?;
        crate::keys::migrate(conn)?;
        crate::history::migrate(conn)?;
        crate::table::migrate(conn)?;
        crate::schedule::migrate(conn)?;
        crate::bucket::migrate(conn)?;
    }
    if found.applied < 2 {
        crate::lease::migrate(conn)?;
        crate::bucket::migrate_uploads(conn)?;
    }
    if found.applied < 3 {
        crate::history::migrate_node(conn)?;
        crate::node::migrate(conn)?;
        crate::bucket::migrate_uploader(conn)?;
    }
    if found.applied < 4 {
        crate::deployment::migrate(conn)?;
    }
    if found.applied < 5 {
        crate::history::migrate_usage(conn)?;
    }
    if found.applied < 6 {
        crate::history::migrate_spans(conn)?;
    }
    if found.applied < 7 {
        crate::queue::migrate_first_receive(conn)?;
    }
    if found.applied < 8 {
        crate::queue::migrate_receipts_by_seq(conn)?;
    }
    let now = found.migrated(&REQUIRES);
    conn.execute(
        "INSERT INTO nimbus_schema (id, version, applied) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, applied = excluded.applied",
        [now.requires, now.applied],
    )
    .map_err(backend)?;
    Ok(())
}
