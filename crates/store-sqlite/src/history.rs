//! `HistoryStore` on SQLite: one row per invocation, its captured lines as
//! a JSON array of `[stream, text]` pairs, its spans as JSON; usage, one row per function and
//! hour, added to in the savepoint that stores a new record.

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::StoreResult;
use nimbus_store::history::{
    HistoryStore, InvocationFilter, InvocationRecord, LogLine, UsageFilter, UsageRow,
    spans_from_json, spans_to_json,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS invocations (
            id TEXT PRIMARY KEY,
            function TEXT NOT NULL,
            trigger TEXT NOT NULL,
            source TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            recorded_at INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            error TEXT,
            attempt INTEGER NOT NULL,
            trace_id TEXT,
            logs TEXT NOT NULL,
            logs_truncated INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS invocations_function ON invocations (function, id);
        CREATE INDEX IF NOT EXISTS invocations_recorded ON invocations (recorded_at);",
    )
    .map_err(backend)
}

/// Schema version 3: the node that ran each invocation (empty in older
/// records, and in records a version-2 node writes during an upgrade).
/// (A file from before versions were kept may have it already.)
pub(crate) fn migrate_node(conn: &Connection) -> StoreResult<()> {
    if !crate::schema::has_column(conn, "invocations", "node")? {
        conn.execute_batch("ALTER TABLE invocations ADD COLUMN node TEXT;")
            .map_err(backend)?;
    }
    Ok(())
}

/// Schema version 5: what each record meters, and the usage it adds up to.
/// Older records meter nothing (they were never added to usage).
pub(crate) fn migrate_usage(conn: &Connection) -> StoreResult<()> {
    for column in ["memory_mb", "billed_ms", "outbound_bytes"] {
        if !crate::schema::has_column(conn, "invocations", column)? {
            conn.execute_batch(&format!(
                "ALTER TABLE invocations ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0;"
            ))
            .map_err(backend)?;
        }
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS usage (
            function TEXT NOT NULL,
            hour INTEGER NOT NULL,
            invocations INTEGER NOT NULL,
            billed_ms INTEGER NOT NULL,
            mb_ms INTEGER NOT NULL,
            outbound_bytes INTEGER NOT NULL,
            PRIMARY KEY (hour, function)
        );",
    )
    .map_err(backend)
}

const COLUMNS: &str = "id, function, trigger, source, started_at, duration_ms, outcome, error, attempt, trace_id, logs_truncated, node, memory_mb, billed_ms, outbound_bytes";

/// Schema version 6: each record's spans (JSON, by
/// [`nimbus_store::history::spans_to_json`]; NULL without spans), and an
/// index to find a trace's records.
pub(crate) fn migrate_spans(conn: &Connection) -> StoreResult<()> {
    if !crate::schema::has_column(conn, "invocations", "spans")? {
        conn.execute_batch("ALTER TABLE invocations ADD COLUMN spans TEXT;")
            .map_err(backend)?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS invocations_trace ON invocations (trace_id)
         WHERE trace_id IS NOT NULL;",
    )
    .map_err(backend)
}

/// A row of [`COLUMNS`] then the logs and spans (NULL when not loaded).
fn record(row: &Row<'_>) -> rusqlite::Result<InvocationRecord> {
    let logs: Option<String> = row.get(15)?;
    let spans: Option<String> = row.get(16)?;
    let (spans, spans_dropped) = spans_from_json(spans.as_deref());
    let logs = logs
        .and_then(|text| serde_json::from_str::<Vec<(String, String)>>(&text).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(stream, text)| LogLine { stream, text })
        .collect();
    Ok(InvocationRecord {
        id: row.get(0)?,
        function: row.get(1)?,
        trigger: row.get(2)?,
        source: row.get(3)?,
        started_at: row.get::<_, i64>(4)? as u64,
        duration_ms: row.get::<_, i64>(5)? as u64,
        outcome: row.get(6)?,
        error: row.get(7)?,
        attempt: row.get::<_, i64>(8)? as u32,
        trace_id: row.get(9)?,
        logs,
        logs_truncated: row.get::<_, i64>(10)? != 0,
        node: row.get(11)?,
        memory_mb: row.get::<_, i64>(12)? as u32,
        billed_ms: row.get::<_, i64>(13)? as u64,
        outbound_bytes: row.get::<_, i64>(14)? as u64,
        spans,
        spans_dropped,
    })
}

fn insert(tx: &Tx<'_>, r: &InvocationRecord) -> StoreResult<()> {
    let logs: Vec<(&str, &str)> = r
        .logs
        .iter()
        .map(|line| (line.stream.as_str(), line.text.as_str()))
        .collect();
    let logs = serde_json::to_string(&logs).map_err(backend)?;
    let stored_before = tx
        .query_row(
            "SELECT 1 FROM invocations WHERE id = ?1",
            params![r.id],
            |_| Ok(()),
        )
        .optional()
        .map_err(backend)?
        .is_some();
    if r.metered() && !stored_before {
        tx.execute(
            "INSERT INTO usage (function, hour, invocations, billed_ms, mb_ms, outbound_bytes)
             VALUES (?1, ?2, 1, ?3, ?4, ?5)
             ON CONFLICT (hour, function) DO UPDATE SET
                invocations = invocations + 1,
                billed_ms = billed_ms + excluded.billed_ms,
                mb_ms = mb_ms + excluded.mb_ms,
                outbound_bytes = outbound_bytes + excluded.outbound_bytes",
            params![
                r.function,
                r.usage_hour() as i64,
                r.billed_ms as i64,
                (u64::from(r.memory_mb) * r.billed_ms) as i64,
                r.outbound_bytes as i64,
            ],
        )
        .map_err(backend)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO invocations
         (id, function, trigger, source, started_at, recorded_at, duration_ms, outcome, error, attempt, trace_id, logs, logs_truncated, node, memory_mb, billed_ms, outbound_bytes, spans)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        params![
            r.id,
            r.function,
            r.trigger,
            r.source,
            r.started_at as i64,
            tx.now as i64,
            r.duration_ms as i64,
            r.outcome,
            r.error,
            i64::from(r.attempt),
            r.trace_id,
            logs,
            i64::from(r.logs_truncated),
            r.node,
            i64::from(r.memory_mb),
            r.billed_ms as i64,
            r.outbound_bytes as i64,
            spans_to_json(&r.spans, r.spans_dropped),
        ],
    )
    .map_err(backend)?;
    Ok(())
}

fn list(tx: &Tx<'_>, filter: &InvocationFilter) -> StoreResult<Vec<InvocationRecord>> {
    let mut sql = format!(
        "SELECT {COLUMNS}, {}, {} FROM invocations WHERE 1 = 1",
        if filter.with_logs { "logs" } else { "NULL" },
        if filter.with_spans { "spans" } else { "NULL" },
    );
    let mut values: Vec<Value> = Vec::new();
    for (column, value) in [
        ("function = ?", &filter.function),
        ("id < ?", &filter.before),
        ("trace_id = ?", &filter.trace_id),
    ] {
        if let Some(value) = value {
            sql.push_str(" AND ");
            sql.push_str(column);
            values.push(Value::Text(value.clone()));
        }
    }
    if !filter.outcomes.is_empty() {
        let marks = vec!["?"; filter.outcomes.len()].join(", ");
        sql.push_str(&format!(" AND outcome IN ({marks})"));
        values.extend(filter.outcomes.iter().cloned().map(Value::Text));
    }
    sql.push_str(" ORDER BY id DESC LIMIT +?");
    values.push(Value::Integer(i64::from(filter.limit)));
    let mut statement = tx.conn.prepare_cached(&sql).map_err(backend)?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(values), record)
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

fn expire(tx: &Tx<'_>, retention_ms: u64, max_records: u64) -> StoreResult<u64> {
    let cutoff = tx.now.saturating_sub(retention_ms) as i64;
    let old = tx
        .execute(
            "DELETE FROM invocations WHERE recorded_at < ?1",
            params![cutoff],
        )
        .map_err(backend)?;
    let over = tx
        .execute(
            "DELETE FROM invocations WHERE id IN
             (SELECT id FROM invocations ORDER BY id DESC LIMIT -1 OFFSET +?1)",
            params![max_records.min(i64::MAX as u64) as i64],
        )
        .map_err(backend)?;
    Ok((old + over) as u64)
}

#[async_trait::async_trait]
impl HistoryStore for SqliteStore {
    async fn record_invocations(&self, records: Vec<InvocationRecord>) -> StoreResult<()> {
        // Of an id repeated within the batch, the last record wins (as
        // separate writes would have it), and only it is metered.
        let mut seen = std::collections::HashSet::new();
        let mut records: Vec<InvocationRecord> = records
            .into_iter()
            .rev()
            .filter(|r| seen.insert(r.id.clone()))
            .collect();
        records.reverse();
        self.writer
            .run(move |tx| records.iter().try_for_each(|r| insert(tx, r)))
            .await
    }

    async fn list_invocations(
        &self,
        filter: InvocationFilter,
    ) -> StoreResult<Vec<InvocationRecord>> {
        self.writer.run(move |tx| list(tx, &filter)).await
    }

    async fn usage(&self, filter: UsageFilter) -> StoreResult<Vec<UsageRow>> {
        self.writer
            .run(move |tx| {
                let mut statement = tx
                    .conn
                    .prepare_cached(
                        "SELECT function, hour, invocations, billed_ms, mb_ms, outbound_bytes
                         FROM usage WHERE hour >= ?1 AND hour < ?2
                           AND (?3 IS NULL OR function = ?3)
                         ORDER BY hour, function",
                    )
                    .map_err(backend)?;
                let rows = statement
                    .query_map(
                        params![filter.from as i64, filter.to as i64, filter.function],
                        |row| {
                            Ok(UsageRow {
                                function: row.get(0)?,
                                hour: row.get::<_, i64>(1)? as u64,
                                invocations: row.get::<_, i64>(2)? as u64,
                                billed_ms: row.get::<_, i64>(3)? as u64,
                                mb_ms: row.get::<_, i64>(4)? as u64,
                                outbound_bytes: row.get::<_, i64>(5)? as u64,
                            })
                        },
                    )
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await
    }

    async fn get_invocation(&self, id: &str) -> StoreResult<Option<InvocationRecord>> {
        let id = id.to_owned();
        self.writer
            .run(move |tx| {
                tx.query_row(
                    &format!("SELECT {COLUMNS}, logs, spans FROM invocations WHERE id = ?1"),
                    params![id],
                    record,
                )
                .optional()
                .map_err(backend)
            })
            .await
    }

    async fn expire_invocations(&self, retention_ms: u64, max_records: u64) -> StoreResult<u64> {
        self.writer
            .run(move |tx| expire(tx, retention_ms, max_records))
            .await
    }
}
