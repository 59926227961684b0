//! Time as the store sees it. Leases, delays, retention and dedup windows are
//! judged by the store's clock, never a caller's, and tests use a manual one.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Milliseconds since the Unix epoch.
pub type Timestamp = u64;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Timestamp {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(start_ms: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start_ms)))
    }

    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// The system clock moved by an offset to agree with a reference clock (a
/// database's), so a node judges ages and due times as the store does even
/// when its own clock is off. The offset is measured from time to time with
/// [`AlignedClock::align`].
#[derive(Debug, Default)]
pub struct AlignedClock {
    offset_ms: AtomicI64,
}

impl AlignedClock {
    /// Takes a reading `reference_ms` of the reference clock, asked for at
    /// `sent_ms` and answered at `received_ms` by the system clock: the
    /// reading is taken to belong halfway between.
    pub fn align(&self, reference_ms: Timestamp, sent_ms: Timestamp, received_ms: Timestamp) {
        let midpoint = (sent_ms as i64 + received_ms as i64) / 2;
        self.offset_ms
            .store(reference_ms as i64 - midpoint, Ordering::SeqCst);
    }

    /// How far the reference clock is ahead of the system clock.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }
}

impl Clock for AlignedClock {
    fn now_ms(&self) -> Timestamp {
        (SystemClock.now_ms() as i64)
            .saturating_add(self.offset_ms())
            .max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_clock_follows_the_reference_reading_taken_halfway() {
        let clock = AlignedClock::default();
        let now = SystemClock.now_ms();
        // The reference said 5 s ahead, in a round trip of 20 ms.
        clock.align(now + 5_010, now, now + 20);
        assert_eq!(clock.offset_ms(), 5_000);
        let read = clock.now_ms();
        assert!((now + 5_000..now + 6_000).contains(&read), "{read}");
        clock.align(now - 2_000, now, now);
        assert_eq!(clock.offset_ms(), -2_000);
    }
}
