//! `ScheduleStore` on SQLite: one row per schedule with its mark; firing a
//! tick moves the mark and sends the tick event in the same transaction.

use crate::writer::Tx;
use crate::{SqliteStore, backend};
use nimbus_store::schedule::{ScheduleState, ScheduleStore};
use nimbus_store::{SendMessage, StoreResult, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

pub(crate) fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schedules (
            name TEXT PRIMARY KEY,
            mark_ms INTEGER NOT NULL,
            last_fired_ms INTEGER
        );",
    )
    .map_err(backend)
}

fn state(tx: &Tx<'_>, name: &str) -> StoreResult<Option<ScheduleState>> {
    tx.query_row(
        "SELECT mark_ms, last_fired_ms FROM schedules WHERE name = ?1",
        params![name],
        |row| {
            Ok(ScheduleState {
                name: name.to_owned(),
                mark_ms: row.get::<_, i64>(0)? as u64,
                last_fired_ms: row.get::<_, Option<i64>>(1)?.map(|t| t as u64),
            })
        },
    )
    .optional()
    .map_err(backend)
}

/// Moves the mark to `mark_ms` (recording it as fired or not), creating the
/// row if needed, only if that is past the current mark.
fn advance(tx: &Tx<'_>, name: &str, mark_ms: Timestamp, fired: bool) -> StoreResult<bool> {
    let mark = i64::try_from(mark_ms).unwrap_or(i64::MAX);
    let changed = tx
        .execute(
            "INSERT INTO schedules (name, mark_ms, last_fired_ms)
             VALUES (?1, ?2, CASE WHEN ?3 THEN ?2 END)
             ON CONFLICT (name) DO UPDATE SET
                mark_ms = excluded.mark_ms,
                last_fired_ms = COALESCE(excluded.last_fired_ms, schedules.last_fired_ms)
             WHERE schedules.mark_ms < excluded.mark_ms",
            params![name, mark, fired],
        )
        .map_err(backend)?;
    Ok(changed > 0)
}

#[async_trait::async_trait]
impl ScheduleStore for SqliteStore {
    async fn register_schedule(
        &self,
        schedule: &str,
        since_ms: Timestamp,
    ) -> StoreResult<ScheduleState> {
        let name = schedule.to_owned();
        self.writer
            .run(move |tx| {
                tx.execute(
                    "INSERT INTO schedules (name, mark_ms) VALUES (?1, ?2)
                     ON CONFLICT (name) DO NOTHING",
                    params![name, i64::try_from(since_ms).unwrap_or(i64::MAX)],
                )
                .map_err(backend)?;
                state(tx, &name)?.ok_or_else(|| backend("the schedule row vanished"))
            })
            .await
    }

    async fn fire(
        &self,
        schedule: &str,
        tick_ms: Timestamp,
        queue: &str,
        message: SendMessage,
        fence: Option<&nimbus_store::Fence>,
    ) -> StoreResult<bool> {
        let (name, queue, fence) = (schedule.to_owned(), queue.to_owned(), fence.cloned());
        self.writer
            .run(move |tx| {
                if let Some(fence) = &fence {
                    crate::lease::check_fence(tx, fence)?;
                }
                if !advance(tx, &name, tick_ms, true)? {
                    return Ok(false);
                }
                // In the same savepoint: a failed send rolls the mark back.
                crate::queue::send(tx, &queue, vec![message])?;
                Ok(true)
            })
            .await
    }

    async fn skip_ticks(
        &self,
        schedule: &str,
        mark_ms: Timestamp,
        fence: Option<&nimbus_store::Fence>,
    ) -> StoreResult<bool> {
        let (name, fence) = (schedule.to_owned(), fence.cloned());
        self.writer
            .run(move |tx| {
                if let Some(fence) = &fence {
                    crate::lease::check_fence(tx, fence)?;
                }
                advance(tx, &name, mark_ms, false)
            })
            .await
    }

    async fn schedule_state(&self, schedule: &str) -> StoreResult<Option<ScheduleState>> {
        let name = schedule.to_owned();
        self.writer.run(move |tx| state(tx, &name)).await
    }

    async fn schedules(&self) -> StoreResult<Vec<ScheduleState>> {
        self.writer
            .run(|tx| {
                let names: Vec<String> = tx
                    .conn
                    .prepare_cached("SELECT name FROM schedules ORDER BY name")
                    .map_err(backend)?
                    .query_map([], |row| row.get(0))
                    .map_err(backend)?
                    .collect::<Result<_, _>>()
                    .map_err(backend)?;
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    out.extend(state(tx, &name)?);
                }
                Ok(out)
            })
            .await
    }
}
