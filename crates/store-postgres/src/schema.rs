//! The schema and its versions: `nimbus_schema` holds the newest migration
//! applied (`applied`) and the oldest schema version a binary must know to
//! use the database (`version`, the column binaries before version 3 read),
//! by the rule of [`nimbus_store::schema`]. A newer binary migrates forward
//! step by step (one process at a time, under an advisory lock); a binary
//! refuses a schema that needs a newer one, and keeps running on a newer one
//! that does not (nodes of two versions side by side in a rolling upgrade).

use nimbus_store::StoreResult;
use nimbus_store::schema::SchemaState;

/// The schema version this binary reads and writes.
pub const SCHEMA_VERSION: u32 = 7;

/// `MIGRATIONS[v]` takes the schema from version `v` to `v + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [V1, V2, V3, V4, V5, V6, V7];

/// What each version asks of binaries: `REQUIRES[v - 1]` is the oldest
/// schema version that can use a database at version `v`. Versions 3 to 7
/// only add, so version-2 nodes keep running on them during a rolling
/// upgrade (records older nodes write meter nothing and keep no spans;
/// messages they receive keep no first receive time, and a message they
/// redrive keeps the one it had).
const REQUIRES: [u32; SCHEMA_VERSION as usize] = [1, 2, 2, 2, 2, 2, 2];

/// Held while migrating, so two processes starting at once migrate once.
const MIGRATION_LOCK: i64 = 0x6e69_6d62_7573; // "nimbus"

/// Keys are `text COLLATE "C"` or `bytea`, so they compare byte-wise as on
/// SQLite; times are milliseconds since the epoch (`int8`); bodies and
/// documents are `bytea`, stored as written.
const V1: &str = r#"
CREATE TABLE queues (
    name text COLLATE "C" PRIMARY KEY,
    visibility_timeout_ms int8 NOT NULL,
    retention_ms int8 NOT NULL,
    delay_ms int8 NOT NULL,
    max_message_bytes int8 NOT NULL,
    dedup_window_ms int8 NOT NULL,
    max_receive_count int4,
    dead_letter_queue text COLLATE "C"
);
CREATE TABLE messages (
    seq int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id text NOT NULL UNIQUE,
    queue text COLLATE "C" NOT NULL,
    body bytea NOT NULL,
    attributes text NOT NULL,
    sent_at int8 NOT NULL,
    visible_at int8 NOT NULL,
    receive_count int4 NOT NULL DEFAULT 0,
    receipt text,
    last_error text,
    source_queue text COLLATE "C"
) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0);
-- No index on receipt or visible_at: a lease changes only unindexed columns,
-- so it is a heap-only update (room left by the fillfactor) that writes no
-- index entries. A receipt handle names its message's seq, found by the key.
CREATE INDEX messages_queue ON messages (queue, seq);
CREATE TABLE dedup (
    queue text COLLATE "C" NOT NULL,
    dedup_id text COLLATE "C" NOT NULL,
    message_id text NOT NULL,
    expires_at int8 NOT NULL,
    PRIMARY KEY (queue, dedup_id)
);
CREATE TABLE api_keys (
    seq int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    name text NOT NULL,
    hash bytea NOT NULL,
    created_at int8 NOT NULL,
    revoked_at int8,
    rate_per_s float8,
    burst int8,
    quota int8,
    quota_period_s int8,
    window_start_s int8,
    used int8
);
CREATE TABLE secrets (
    name text COLLATE "C" PRIMARY KEY,
    sealed bytea NOT NULL,
    created_at int8 NOT NULL,
    updated_at int8 NOT NULL
);
CREATE TABLE secret_key_check (
    id int4 PRIMARY KEY CHECK (id = 1),
    sealed bytea NOT NULL
);
CREATE TABLE invocations (
    id text COLLATE "C" PRIMARY KEY,
    function text COLLATE "C" NOT NULL,
    trigger text NOT NULL,
    source text NOT NULL,
    started_at int8 NOT NULL,
    recorded_at int8 NOT NULL,
    duration_ms int8 NOT NULL,
    outcome text NOT NULL,
    error text,
    attempt int8 NOT NULL,
    trace_id text,
    logs text NOT NULL,
    logs_truncated bool NOT NULL
);
CREATE INDEX invocations_function ON invocations (function, id);
CREATE INDEX invocations_recorded ON invocations (recorded_at);
CREATE TABLE doc_tables (
    name text COLLATE "C" PRIMARY KEY,
    partition_key text NOT NULL,
    sort_key text,
    stream text,
    stream_retention_ms int8 NOT NULL,
    max_item_bytes int8 NOT NULL
);
CREATE TABLE items (
    tbl text COLLATE "C" NOT NULL,
    pk text COLLATE "C" NOT NULL,
    sk text COLLATE "C" NOT NULL,
    document bytea NOT NULL,
    version int8 NOT NULL,
    updated_at int8 NOT NULL,
    PRIMARY KEY (tbl, pk, sk)
);
CREATE TABLE stream_heads (
    tbl text COLLATE "C" PRIMARY KEY,
    last_seq int8 NOT NULL
);
CREATE TABLE stream_records (
    tbl text COLLATE "C" NOT NULL,
    seq int8 NOT NULL,
    kind text NOT NULL,
    pk text COLLATE "C" NOT NULL,
    sk text COLLATE "C",
    key_hash int8 NOT NULL,
    new_image bytea,
    old_image bytea,
    version int8 NOT NULL,
    at int8 NOT NULL,
    trace text,
    PRIMARY KEY (tbl, seq)
);
CREATE INDEX stream_records_at ON stream_records (tbl, at);
CREATE TABLE stream_checkpoints (
    consumer text COLLATE "C" PRIMARY KEY,
    seq int8 NOT NULL
);
CREATE TABLE schedules (
    name text COLLATE "C" PRIMARY KEY,
    mark_ms int8 NOT NULL,
    last_fired_ms int8
);
CREATE TABLE objects (
    bucket text COLLATE "C" NOT NULL,
    key bytea NOT NULL,
    size int8 NOT NULL,
    etag text NOT NULL,
    content_type text NOT NULL,
    user_metadata text NOT NULL,
    blob text NOT NULL,
    created_at int8 NOT NULL,
    sequencer int8 NOT NULL,
    PRIMARY KEY (bucket, key)
);
CREATE INDEX objects_blob ON objects (bucket, blob);
CREATE SEQUENCE object_sequencer;
-- The time one statement works at: the test clock's reading when one is
-- given, else the database's clock.
CREATE FUNCTION nimbus_now_ms(test_clock int8) RETURNS int8 LANGUAGE sql VOLATILE
    AS $$ SELECT COALESCE(test_clock, (extract(epoch FROM clock_timestamp()) * 1000)::int8) $$;
-- `after` milliseconds past `at`, clamped to the end of time.
CREATE FUNCTION nimbus_later(at int8, after int8) RETURNS int8 LANGUAGE sql IMMUTABLE
    AS $$ SELECT CASE WHEN after >= 9223372036854775807 - at THEN 9223372036854775807 ELSE at + after END $$;
"#;

/// Leases (who owns which singleton work, until when, at which fence) and
/// the registry of uploads in flight: a row from before an upload writes its
/// blob until the commit that references it (or the upload is given up on,
/// or outlives the bound), so no node's orphan sweep removes the blob.
const V2: &str = r#"
CREATE TABLE leases (
    name text COLLATE "C" PRIMARY KEY,
    owner text NOT NULL,
    fence int8 NOT NULL,
    expires_at int8 NOT NULL
);
CREATE TABLE uploads (
    bucket text COLLATE "C" NOT NULL,
    blob text COLLATE "C" NOT NULL,
    begun_at int8 NOT NULL,
    PRIMARY KEY (bucket, blob)
);
CREATE INDEX uploads_begun ON uploads (begun_at);
"#;

/// Node reports (each node's version, start, and work in flight, for the
/// cluster view), the node that ran each invocation, and the node that
/// began each upload (so a restarted node ends its dead predecessor's
/// registrations at once). Only additions: version-2 nodes write records
/// and registrations without a node, and never report.
const V3: &str = r#"
CREATE TABLE nodes (
    id text COLLATE "C" PRIMARY KEY,
    version text NOT NULL,
    started_at int8 NOT NULL,
    reported_at int8 NOT NULL,
    in_flight int8 NOT NULL
);
ALTER TABLE invocations ADD COLUMN node text;
ALTER TABLE uploads ADD COLUMN uploader text;
"#;

/// Deployments: components by digest (stored uncompressed: wasm gains
/// little from pglz, and every node reads a component when it activates),
/// the deployments with the components they name, and the state row (the
/// last id handed out, the active deployment) every deployment change locks
/// first. Only additions: older nodes never read them.
const V4: &str = r#"
CREATE TABLE components (
    digest text COLLATE "C" PRIMARY KEY,
    put_at int8 NOT NULL,
    bytes bytea NOT NULL
);
ALTER TABLE components ALTER COLUMN bytes SET STORAGE EXTERNAL;
CREATE TABLE deployments (
    id int8 PRIMARY KEY,
    digest text COLLATE "C" NOT NULL UNIQUE,
    manifest text NOT NULL,
    created_at int8 NOT NULL,
    activated_at int8
);
CREATE TABLE deployment_components (
    deployment int8 NOT NULL,
    function text COLLATE "C" NOT NULL,
    digest text COLLATE "C" NOT NULL,
    PRIMARY KEY (deployment, function)
);
CREATE INDEX deployment_components_digest ON deployment_components (digest);
CREATE TABLE deployment_state (
    id int4 PRIMARY KEY CHECK (id = 1),
    last_id int8 NOT NULL,
    active int8
);
INSERT INTO deployment_state (id, last_id, active) VALUES (1, 0, NULL);
"#;

/// What each invocation record meters, and the usage they add up to (per
/// function and hour, added to in the transaction that stores a new record,
/// kept after the records expire). Only additions.
const V5: &str = r#"
ALTER TABLE invocations
    ADD COLUMN memory_mb int8 NOT NULL DEFAULT 0,
    ADD COLUMN billed_ms int8 NOT NULL DEFAULT 0,
    ADD COLUMN outbound_bytes int8 NOT NULL DEFAULT 0;
CREATE TABLE usage (
    function text COLLATE "C" NOT NULL,
    hour int8 NOT NULL,
    invocations int8 NOT NULL,
    billed_ms int8 NOT NULL,
    mb_ms int8 NOT NULL,
    outbound_bytes int8 NOT NULL,
    PRIMARY KEY (hour, function)
);
"#;

/// Each invocation record's spans (JSON text by
/// `nimbus_store::history::spans_to_json`, NULL without spans), and an index
/// to find the records of one trace. Only additions.
const V6: &str = r#"
ALTER TABLE invocations ADD COLUMN spans text;
CREATE INDEX invocations_trace ON invocations (trace_id) WHERE trace_id IS NOT NULL;
"#;

/// Each message's first receive time (for SQS's
/// `ApproximateFirstReceiveTimestamp`); an unindexed column, so a lease
/// stays a heap-only update. Messages older nodes received have none, and
/// take their next receive's.
const V7: &str = r#"
ALTER TABLE messages ADD COLUMN first_received_at int8;
"#;

/// Brings the database to [`SCHEMA_VERSION`], or refuses it if it needs a
/// newer binary.
pub(crate) async fn migrate(client: &mut deadpool_postgres::Client) -> StoreResult<()> {
    let fail = |e: tokio_postgres::Error| crate::commit_error(&e);
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(fail)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS nimbus_schema (
            id int4 PRIMARY KEY CHECK (id = 1),
            version int4 NOT NULL
        );
        ALTER TABLE nimbus_schema ADD COLUMN IF NOT EXISTS applied int4;",
    )
    .await
    .map_err(fail)?;
    let number = |n: i32| u32::try_from(n).unwrap_or(0);
    let found = tx
        .query_opt(
            "SELECT version, coalesce(applied, version) FROM nimbus_schema WHERE id = 1",
            &[],
        )
        .await
        .map_err(fail)?
        .map_or(
            SchemaState {
                applied: 0,
                requires: 0,
            },
            |row| SchemaState {
                requires: number(row.get(0)),
                applied: number(row.get(1)),
            },
        );
    found.check(SCHEMA_VERSION)?;
    for (from, step) in MIGRATIONS.iter().enumerate().skip(found.applied as usize) {
        tx.batch_execute(step).await.map_err(fail)?;
        tracing::info!(from, to = from + 1, "migrated the PostgreSQL schema");
    }
    let now = found.migrated(&REQUIRES);
    tx.execute(
        "INSERT INTO nimbus_schema (id, version, applied) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, applied = excluded.applied",
        &[&(now.requires as i32), &(now.applied as i32)],
    )
    .await
    .map_err(fail)?;
    tx.commit().await.map_err(fail)
}
