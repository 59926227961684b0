//! `HistoryStore` on PostgreSQL: one row per invocation, its captured lines
//! as a JSON array of `[stream, text]` pairs, its spans as JSON; a batch of records is one
//! statement, and the usage of its new records one more.

use crate::{PgStore, Tx, in_tx, int8};
use nimbus_store::StoreResult;
use nimbus_store::history::{
    HistoryStore, InvocationFilter, InvocationRecord, LogLine, UsageFilter, UsageRow,
    spans_from_json, spans_to_json,
};
use std::collections::{BTreeMap, HashSet};
use tokio_postgres::Row;

const COLUMNS: &str = "id, function, trigger, source, started_at, duration_ms, outcome, error, \
     attempt, trace_id, logs_truncated, node, memory_mb, billed_ms, outbound_bytes";

/// A row of [`COLUMNS`] then the logs and spans (NULL when not loaded).
fn record(row: &Row) -> InvocationRecord {
    let (spans, spans_dropped) = spans_from_json(row.get(16));
    let logs = row
        .get::<_, Option<&str>>(15)
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
        memory_mb: row.get::<_, i64>(12) as u32,
        billed_ms: row.get::<_, i64>(13) as u64,
        outbound_bytes: row.get::<_, i64>(14) as u64,
        spans,
        spans_dropped,
    }
}

/// Adds the usage of the metered records among `records` whose ids the
/// insert just created (a record stored again, even by a retry racing its
/// first commit, adds nothing), one upsert per batch.
async fn add_usage(
    tx: &Tx<'_>,
    records: &[&InvocationRecord],
    inserted: &HashSet<String>,
) -> StoreResult<()> {
    // (function, hour) -> [invocations, billed_ms, mb_ms, outbound_bytes]
    let mut sums: BTreeMap<(&str, u64), [u64; 4]> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.metered() && inserted.contains(&r.id))
    {
        let sum = sums
            .entry((r.function.as_str(), r.usage_hour()))
            .or_default();
        sum[0] += 1;
        sum[1] += r.billed_ms;
        sum[2] += u64::from(r.memory_mb) * r.billed_ms;
        sum[3] += r.outbound_bytes;
    }
    if sums.is_empty() {
        return Ok(());
    }
    let functions: Vec<&str> = sums.keys().map(|(f, _)| *f).collect();
    let hours: Vec<i64> = sums.keys().map(|(_, h)| int8(*h)).collect();
    let field = |i: usize| sums.values().map(|s| int8(s[i])).collect::<Vec<_>>();
    tx.execute(
        "INSERT INTO usage (function, hour, invocations, billed_ms, mb_ms, outbound_bytes)
         SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
         ON CONFLICT (hour, function) DO UPDATE SET
            invocations = usage.invocations + excluded.invocations,
            billed_ms = usage.billed_ms + excluded.billed_ms,
            mb_ms = usage.mb_ms + excluded.mb_ms,
            outbound_bytes = usage.outbound_bytes + excluded.outbound_bytes",
        &[&functions, &hours, &field(0), &field(1), &field(2), &field(3)],
    )
    .await?;
    Ok(())
}

/// Stores the records in one statement (arrays unnested into rows); an id
/// already stored is replaced.
async fn insert(tx: &Tx<'_>, records: &[InvocationRecord]) -> StoreResult<()> {
    // One statement cannot upsert a row twice: of a repeated id, the last
    // record wins, as separate writes would have it.
    let mut seen = HashSet::new();
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
    let spans: Vec<Option<String>> = records
        .iter()
        .map(|r| spans_to_json(&r.spans, r.spans_dropped))
        .collect();
    let rows = tx
        .query(
            "INSERT INTO invocations
            (id, function, trigger, source, started_at, recorded_at, duration_ms, outcome, error,
             attempt, trace_id, logs, logs_truncated, node, memory_mb, billed_ms, outbound_bytes,
             spans)
         SELECT id, function, trigger, source, started_at, $13, duration_ms, outcome, error,
                attempt, trace_id, logs, logs_truncated, node, memory_mb, billed_ms,
                outbound_bytes, spans
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[],
                     $7::text[], $8::text[], $9::int8[], $10::text[], $11::text[], $12::bool[],
                     $14::text[], $15::int8[], $16::int8[], $17::int8[], $18::text[])
              AS r(id, function, trigger, source, started_at, duration_ms, outcome, error,
                   attempt, trace_id, logs, logs_truncated, node, memory_mb, billed_ms,
                   outbound_bytes, spans)
         ON CONFLICT (id) DO UPDATE SET function = excluded.function, trigger = excluded.trigger,
            source = excluded.source, started_at = excluded.started_at,
            recorded_at = excluded.recorded_at, duration_ms = excluded.duration_ms,
            outcome = excluded.outcome, error = excluded.error, attempt = excluded.attempt,
            trace_id = excluded.trace_id, logs = excluded.logs,
            logs_truncated = excluded.logs_truncated, node = excluded.node,
            memory_mb = excluded.memory_mb, billed_ms = excluded.billed_ms,
            outbound_bytes = excluded.outbound_bytes, spans = excluded.spans
         RETURNING id, (xmax = 0) AS inserted",
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
                &number(|r| i64::from(r.memory_mb)),
                &number(|r| int8(r.billed_ms)),
                &number(|r| int8(r.outbound_bytes)),
                &spans,
            ],
        )
        .await?;
    // `xmax = 0` marks a row this statement created rather than updated:
    // decided under the row's lock, so two writers of one id cannot both
    // see it as new.
    let inserted: HashSet<String> = rows
        .iter()
        .filter(|row| row.get::<_, bool>(1))
        .map(|row| row.get(0))
        .collect();
    add_usage(tx, &records, &inserted).await
}

async fn list(tx: &Tx<'_>, filter: &InvocationFilter) -> StoreResult<Vec<InvocationRecord>> {
    let logs = match (filter.with_logs, filter.with_spans) {
        (true, true) => "logs, spans",
        (true, false) => "logs, NULL::text",
        (false, true) => "NULL::text, spans",
        (false, false) => "NULL::text, NULL::text",
    };
    let outcomes: Option<&Vec<String>> = (!filter.outcomes.is_empty()).then_some(&filter.outcomes);
    // A trace's records are found by the trace index, so its condition is
    // a plain one (a cached generic plan for `$5 IS NULL OR trace_id = $5`
    // could not use the index); `$5` is an empty string when unused.
    let trace = if filter.trace_id.is_some() {
        "trace_id = $5"
    } else {
        "$5::text = ''"
    };
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS}, {logs} FROM invocations
                 WHERE ($1::text IS NULL OR function = $1)
                   AND ($2::text IS NULL OR id < $2)
                   AND ($3::text[] IS NULL OR outcome = ANY($3))
                   AND {trace}
                 ORDER BY id DESC LIMIT $4"
            ),
            &[
                &filter.function,
                &filter.before,
                &outcomes,
                &i64::from(filter.limit),
                &filter.trace_id.as_deref().unwrap_or_default(),
            ],
        )
        .await?;
    Ok(rows.iter().map(record).collect())
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

    async fn usage(&self, filter: UsageFilter) -> StoreResult<Vec<UsageRow>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT function, hour, invocations, billed_ms, mb_ms, outbound_bytes
                     FROM usage WHERE hour >= $1 AND hour < $2
                       AND ($3::text IS NULL OR function = $3)
                     ORDER BY hour, function",
                    &[&int8(filter.from), &int8(filter.to), &filter.function],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| UsageRow {
                    function: row.get(0),
                    hour: row.get::<_, i64>(1) as u64,
                    invocations: row.get::<_, i64>(2) as u64,
                    billed_ms: row.get::<_, i64>(3) as u64,
                    mb_ms: row.get::<_, i64>(4) as u64,
                    outbound_bytes: row.get::<_, i64>(5) as u64,
                })
                .collect())
        })
    }

    async fn get_invocation(&self, id: &str) -> StoreResult<Option<InvocationRecord>> {
        in_tx!(self, |tx| {
            let row = tx
                .query_opt(
                    &format!("SELECT {COLUMNS}, logs, spans FROM invocations WHERE id = $1"),
                    &[&id],
                )
                .await?;
            Ok(row.map(|row| record(&row)))
        })
    }

    async fn expire_invocations(&self, retention_ms: u64, max_records: u64) -> StoreResult<u64> {
        in_tx!(self, |tx| expire(tx, retention_ms, max_records).await)
    }
}
