//! Schedule marks: which ticks of each schedule are done. A tick's mark and
//! the tick event it sends commit in one transaction, so a tick fires once.

use crate::{SendMessage, StoreResult, Timestamp};

/// Where a schedule stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    pub name: String,
    /// Every tick at or before this time is done: fired or skipped.
    pub mark_ms: Timestamp,
    /// The scheduled time of the last tick that fired, if one has.
    pub last_fired_ms: Option<Timestamp>,
}

#[async_trait::async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Starts tracking `schedule` if it is new, its mark at `since_ms` (when
    /// the scheduler started, by the store's clock: ticks before a schedule
    /// first existed never fire); an existing schedule keeps its mark.
    /// Returns where it stands.
    async fn register_schedule(
        &self,
        schedule: &str,
        since_ms: Timestamp,
    ) -> StoreResult<ScheduleState>;

    /// Fires the tick at `tick_ms`: in one transaction, moves the mark to
    /// `tick_ms` and sends `message` to `queue`, only if `tick_ms` is past
    /// the mark. Returns false, sending nothing, when the tick is done
    /// already. If the send fails, the mark does not move. With a `fence`,
    /// only while that lease has not changed hands, else
    /// [`crate::StoreError::Fenced`] and nothing happens.
    async fn fire(
        &self,
        schedule: &str,
        tick_ms: Timestamp,
        queue: &str,
        message: SendMessage,
        fence: Option<&crate::Fence>,
    ) -> StoreResult<bool>;

    /// Moves the mark to `mark_ms` without firing (ticks skipped by the
    /// catch-up policy, or time a running scheduler has seen pass), if that
    /// is past it. Returns whether it moved. `fence` as for [`Self::fire`].
    async fn skip_ticks(
        &self,
        schedule: &str,
        mark_ms: Timestamp,
        fence: Option<&crate::Fence>,
    ) -> StoreResult<bool>;

    /// One schedule's state, if it is tracked.
    async fn schedule_state(&self, schedule: &str) -> StoreResult<Option<ScheduleState>>;

    /// Every tracked schedule, by name.
    async fn schedules(&self) -> StoreResult<Vec<ScheduleState>>;
}
