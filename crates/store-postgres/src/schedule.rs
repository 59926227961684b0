//! `ScheduleStore` on PostgreSQL: a schedule's mark moves by a conditional
//! upsert in the same transaction as the tick's send, so racing schedulers
//! (in any number of processes) fire a tick once.

use crate::{PgStore, Tx, in_tx, int8};
use nimbus_store::schedule::{ScheduleState, ScheduleStore};
use nimbus_store::{SendMessage, StoreResult, Timestamp};
use tokio_postgres::Row;

fn state_from_row(row: &Row) -> ScheduleState {
    ScheduleState {
        name: row.get(0),
        mark_ms: row.get::<_, i64>(1) as u64,
        last_fired_ms: row.get::<_, Option<i64>>(2).map(|t| t as u64),
    }
}

async fn state(tx: &Tx<'_>, name: &str) -> StoreResult<Option<ScheduleState>> {
    Ok(tx
        .query_opt(
            "SELECT name, mark_ms, last_fired_ms FROM schedules WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|row| state_from_row(&row)))
}

/// Moves the mark to `mark_ms` (recording it as fired or not), creating the
/// row if needed, only if that is past the current mark. A racing mover
/// waits on the row and then finds the condition false.
async fn advance(tx: &Tx<'_>, name: &str, mark_ms: Timestamp, fired: bool) -> StoreResult<bool> {
    let changed = tx
        .execute(
            "INSERT INTO schedules (name, mark_ms, last_fired_ms)
             VALUES ($1, $2::int8, CASE WHEN $3::bool THEN $2::int8 END)
             ON CONFLICT (name) DO UPDATE SET
                mark_ms = excluded.mark_ms,
                last_fired_ms = COALESCE(excluded.last_fired_ms, schedules.last_fired_ms)
             WHERE schedules.mark_ms < excluded.mark_ms",
            &[&name, &int8(mark_ms), &fired],
        )
        .await?;
    Ok(changed > 0)
}

#[async_trait::async_trait]
impl ScheduleStore for PgStore {
    async fn register_schedule(
        &self,
        schedule: &str,
        since_ms: Timestamp,
    ) -> StoreResult<ScheduleState> {
        in_tx!(self, |tx| {
            tx.execute(
                "INSERT INTO schedules (name, mark_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&schedule, &int8(since_ms)],
            )
            .await?;
            state(tx, schedule).await?.ok_or_else(|| {
                nimbus_store::StoreError::Backend("the schedule row vanished".into())
            })
        })
    }

    async fn fire(
        &self,
        schedule: &str,
        tick_ms: Timestamp,
        queue: &str,
        message: SendMessage,
        fence: Option<&nimbus_store::Fence>,
    ) -> StoreResult<bool> {
        in_tx!(self, |tx| {
            if let Some(fence) = fence {
                crate::lease::check_fence(tx, fence).await?;
            }
            if !advance(tx, schedule, tick_ms, true).await? {
                return Ok(false);
            }
            // In the same transaction: a failed send rolls the mark back.
            crate::queue::send(tx, queue, vec![message.clone()]).await?;
            Ok(true)
        })
    }

    async fn skip_ticks(
        &self,
        schedule: &str,
        mark_ms: Timestamp,
        fence: Option<&nimbus_store::Fence>,
    ) -> StoreResult<bool> {
        in_tx!(self, |tx| {
            if let Some(fence) = fence {
                crate::lease::check_fence(tx, fence).await?;
            }
            advance(tx, schedule, mark_ms, false).await
        })
    }

    async fn schedule_state(&self, schedule: &str) -> StoreResult<Option<ScheduleState>> {
        in_tx!(self, |tx| state(tx, schedule).await)
    }

    async fn schedules(&self) -> StoreResult<Vec<ScheduleState>> {
        in_tx!(self, |tx| {
            let rows = tx
                .query(
                    "SELECT name, mark_ms, last_fired_ms FROM schedules ORDER BY name",
                    &[],
                )
                .await?;
            Ok(rows.iter().map(state_from_row).collect())
        })
    }
}
