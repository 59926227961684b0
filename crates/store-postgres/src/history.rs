//! `HistoryStore` on PostgreSQL: one row per invocation, its captured lines
//! as a JSON array of `[stream, text]` pairs; a batch of records is one
//! statement.

use crate::{PgStore, Tx, in_tx, int8};
use nimbus_store::StoreResult;
use nimbus_store::history::{HistoryStore, InvocationFilter, InvocationRecord, LogLine};
use tokio_postgres::Row;

const COLUMNS: &str = "id, function, trigger, source, started_at, duration_ms, outcome, error, \
     attempt, trace_id, logs_truncated, node";

fn record(row: &Row, logs: Option<&str>) -> InvocationRecord {
    let logs = logs
        .and_then(|text| serde_json::from_str::<Vec<(String, String)>>(text).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(stream, text)| LogLine { stream, text })
        .collect();
    InvocationRecord {
        id: row.get(0),
        function: row.get(1),
        trigger: row.get(2),
        source: row.get(3),
        started_at: row.get::<_, i64>(4) as u64,
        duration_ms: row.get::<_, i64>(5) as u64,
        outcome: row.get(6),
        error: row.get(7),
        attempt: row.get::<_, i64>(8) as u32,
        trace_id: row.get(9),
        logs,
        logs_truncated: row.get(10),
        node: row.get(11),
    }
}

/// Stores the records in one statement (arrays unnested into rows); an id
/// already stored is replaced.
async fn insert(tx: &Tx<'_>, records: &[InvocationRecord]) -> StoreResult<()> {
    // One statement cannot upsert a row twice: of a repeated id, the last
    // record wins, as separate writes would have it.
    let mut seen = std::collections::HashSet::new();
    let mut records: Vec<&InvocationRecord> = records
        .iter()
        .rev()
        .filter(|r| seen.insert(r.id.as_str()))
        .collect();
    records.reverse();
    if records.is_empty() {
        return Ok(());
    }
    let column =
        |f: fn(&InvocationRecord) -> String| records.iter().map(|r| f(r)).collect::<Vec<_>>();
    let number = |f: fn(&InvocationRecord) -> i64| records.iter().map(|r| f(r)).collect::<Vec<_>>();
    let logs: Vec<String> = records
        .iter()
        .map(|r| {
            let lines: Vec<(&str, &str)> = r
                .logs
                .iter()
                .map(|l| (l.stream.as_str(), l.text.as_str()))
                .collect();
            serde_json::to_string(&lines).unwrap_or_else(|_| "[]".to_owned())
        })
        .collect();
    let errors: Vec<Option<String>> = records.iter().map(|r| r.error.clone()).collect();
    let traces: Vec<Option<String>> = records.iter().map(|r| r.trace_id.clone()).collect();
    let truncated: Vec<bool> = records.iter().map(|r| r.logs_truncated).collect();
    let nodes: Vec<Option<String>> = records.iter().map(|r| r.node.clone()).collect();
    tx.execute(
        "INSERT INTO invocations
            (id, function, trigger, source, started_at, recorded_at, duration_ms, outcome, error,
             attempt, trace_id, logs, logs_truncated, node)
         SELECT id, function, trigger, source, started_at, $13, duration_ms, outcome, error,
                attempt, trace_id, logs, logs_truncated, node
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[],
                     $7::text[], $8::text[], $9::int8[], $10::text[], $11::text[], $12::bool[],
                     $14::text[])
              AS r(id, function, trigger, source, started_at, duration_ms, outcome, error,
                   attempt, trace_id, logs, logs_truncated, node)
         ON CONFLICT (id) DO UPDATE SET function = excluded.function, trigger = excluded.trigger,
            source = excluded.source, started_at = excluded.started_at,
            recorded_at = excluded.recorded_at, duration_ms = excluded.duration_ms,
            outcome = excluded.outcome, error = excluded.error, attempt = excluded.attempt,
            trace_id = excluded.trace_id, logs = excluded.logs,
            logs_truncated = excluded.logs_truncated, node = excluded.node",
        &[
            &column(|r| r.id.clone()),
            &column(|r| r.function.clone()),
            &column(|r| r.trigger.clone()),
            &column(|r| r.source.clone()),
            &number(|r| int8(r.started_at)),
            &number(|r| int8(r.duration_ms)),
            &column(|r| r.outcome.clone()),
            &errors,
            &number(|r| i64::from(r.attempt)),
            &traces,
            &logs,
            &truncated,
            &tx.now,
            &nodes,
        ],
    )
    .await?;
    Ok(())
}

async fn list(tx: &Tx<'_>, filter: &InvocationFilter) -> StoreResult<Vec<InvocationRecord>> {
    let logs = if filter.with_logs {
        "logs"
    } else {
        "NULL::text"
    };
    let outcomes: Option<&Vec<String>> = (!filter.outcomes.is_empty()).then_some(&filter.outcomes);
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS}, {logs} FROM invocations
                 WHERE ($1::text IS NULL OR function = $1)
                   AND ($2::text IS NULL OR id < $2)
                   AND ($3::text[] IS NULL OR outcome = ANY($3))
                 ORDER BY id DESC LIMIT $4"
            ),
            &[
                &filter.function,
                &filter.before,
                &outcomes,
                &i64::from(filter.limit),
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| record(row, row.get(12))).collect())
}

async fn expire(tx: &Tx<'_>, retention_ms: u64, max_records: u64) -> StoreResult<u64> {
    let cutoff = tx.now.saturating_sub(int8(retention_ms));
    let old = tx
        .execute("DELETE FROM invocations WHERE recorded_at < $1", &[&cutoff])
        .await?;
    let over = tx
        .execute(
            "DELETE FROM invocations WHERE id IN
             (SELECT id FROM invocations ORDER BY id DESC OFFSET $1)",
            &[&int8(max_records)],
        )
        .await?;
    Ok(old + over)
}

#[async_trait::async_trait]
impl HistoryStore for PgStore {
    async fn record_invocations(&self, records: Vec<InvocationRecord>) -> StoreResult<()> {
        in_tx!(self, |tx| insert(tx, &records).await)
    }

    async fn list_invocations(
        &self,
        filter: InvocationFilter,
    ) -> StoreResult<Vec<InvocationRecord>> {
        in_tx!(self, |tx| list(tx, &filter).await)
    }

    async fn get_invocation(&self, id: &str) -> StoreResult<Option<InvocationRecord>> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    &format!("SELECT {COLUMNS}, logs FROM invocations WHERE id = $1"),
                    &[&id],
                )
                .await?;
            Ok(row.map(|row| record(&row, row.get(12))))
        })
    }

    async fn expire_invocations(&self, retention_ms: u64, max_records: u64) -> StoreResult<u64> {
        in_tx!(self, |tx| expire(tx, retention_ms, max_records).await)
    }
}
