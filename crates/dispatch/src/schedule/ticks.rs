//! Tick math: when a schedule's expression fires, in its time zone. Cron
//! fields are local wall-clock times; across daylight-saving changes a local
//! time the clocks skip fires at the end of the gap (02:30 on a night that
//! skips 02:00-03:00 fires at 03:00) and one they repeat fires once, at its
//! first occurrence; rates are aligned to the Unix epoch; `at` is
//! one instant.

use chrono::TimeZone as _;
use chrono_tz::Tz;
use nimbus_manifest::{ScheduleExpression, ScheduleTrigger};
use std::str::FromStr as _;

/// A schedule's ticks, as ms since the epoch.
#[derive(Debug, Clone)]
pub struct Ticks {
    kind: Kind,
    zone: Tz,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron(Box<croner::Cron>),
    Rate(u64),
    At(u64),
}

impl Ticks {
    /// The ticks of a resolved trigger (whose expression and zone the
    /// manifest has checked already).
    pub fn new(trigger: &ScheduleTrigger) -> Result<Self, String> {
        let zone = Tz::from_str(&trigger.timezone)
            .map_err(|_| format!("unknown time zone `{}`", trigger.timezone))?;
        let kind = match &trigger.expression {
            ScheduleExpression::Cron(text) => Kind::Cron(Box::new(
                croner::Cron::from_str(text).map_err(|e| format!("bad cron `{text}`: {e}"))?,
            )),
            ScheduleExpression::Rate { every_ms, .. } => Kind::Rate((*every_ms).max(1)),
            ScheduleExpression::At { at_ms, .. } => Kind::At(*at_ms),
        };
        Ok(Ticks { kind, zone })
    }

    fn local(&self, ms: u64) -> Option<chrono::DateTime<Tz>> {
        self.zone.timestamp_millis_opt(ms as i64).single()
    }

    /// The first tick strictly after `after_ms`.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match &self.kind {
            Kind::Rate(every) => (after_ms / every).checked_add(1)?.checked_mul(*every),
            Kind::At(at) => (*at > after_ms).then_some(*at),
            Kind::Cron(cron) => {
                // Ticks are whole seconds: search from the second `after_ms` is in.
                let from = self.local(after_ms - after_ms % 1000)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }

    /// The last tick at or before `until_ms`.
    pub fn latest_until(&self, until_ms: u64) -> Option<u64> {
        match &self.kind {
            Kind::Rate(every) => Some(until_ms - until_ms % every),
            Kind::At(at) => (*at <= until_ms).then_some(*at),
            Kind::Cron(cron) => {
                let from = self.local(until_ms - until_ms % 1000)?;
                let previous = cron.find_previous_occurrence(&from, true).ok()?;
                u64::try_from(previous.timestamp_millis()).ok()
            }
        }
    }

    /// The ticks after `after_ms` and at or before `until_ms`, oldest first;
    /// when there are more than `max`, only the `max` most recent.
    pub fn due(&self, after_ms: u64, until_ms: u64, max: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cursor = until_ms;
        while out.len() < max {
            match self.latest_until(cursor) {
                Some(tick) if tick > after_ms => {
                    out.push(tick);
                    match tick.checked_sub(1) {
                        Some(before) => cursor = before,
                        None => break,
                    }
                }
                _ => break,
            }
        }
        out.reverse();
        out
    }

    /// The next `n` ticks after `after_ms`.
    pub fn upcoming(&self, after_ms: u64, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = after_ms;
        while out.len() < n {
            match self.next_after(cursor) {
                Some(tick) => {
                    out.push(tick);
                    cursor = tick;
                }
                None => break,
            }
        }
        out
    }

    /// `ms` as an RFC 3339 date-time in the schedule's zone, with its offset.
    pub fn local_rfc3339(&self, ms: u64) -> String {
        self.local(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nimbus_manifest::{CatchUp, Delivery, RetryPolicy};

    fn ticks(expression: ScheduleExpression, timezone: &str) -> Ticks {
        Ticks::new(&ScheduleTrigger {
            name: "s".into(),
            function: "f".into(),
            expression,
            timezone: timezone.into(),
            catch_up: CatchUp::Latest,
            delivery: Delivery {
                batch_size: 1,
                batch_window_ms: 0,
                max_concurrency: 1,
                report_batch_item_failures: false,
                retry_backoff: RetryPolicy::defaults().retry_backoff,
            },
            retry: RetryPolicy::defaults(),
        })
        .unwrap()
    }

    fn cron(text: &str, timezone: &str) -> Ticks {
        ticks(ScheduleExpression::Cron(text.into()), timezone)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ` as ms.
    fn utc(text: &str) -> u64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis() as u64
    }

    fn rendered(t: &Ticks, ms: &[u64]) -> Vec<String> {
        ms.iter().map(|m| t.local_rfc3339(*m)).collect()
    }

    #[test]
    fn cron_ticks_every_minute_after_and_until() {
        let t = cron("* * * * *", "UTC");
        let start = utc("2026-01-05T00:00:30Z");
        assert_eq!(t.next_after(start), Some(utc("2026-01-05T00:01:00Z")));
        assert_eq!(t.latest_until(start), Some(utc("2026-01-05T00:00:00Z")));
        let due = t.due(start, start + 180_000, 100);
        assert_eq!(
            rendered(&t, &due),
            [
                "2026-01-05T00:01:00Z",
                "2026-01-05T00:02:00Z",
                "2026-01-05T00:03:00Z"
            ]
        );
        assert_eq!(t.due(start, start + 180_000, 2).len(), 2);
        assert_eq!(
            t.due(start, start + 180_000, 2)[0],
            utc("2026-01-05T00:02:00Z")
        );
        assert!(t.due(start, start + 29_000, 100).is_empty());
    }

    #[test]
    fn cron_fields_are_local_time_across_daylight_saving_changes() {
        // 09:00 in New York is 14:00 UTC in winter, 13:00 UTC in summer; the
        // clocks spring forward on 2026-03-08 and fall back on 2026-11-01.
        let t = cron("0 9 * * *", "America/New_York");
        let spring = t.upcoming(utc("2026-03-07T00:00:00Z"), 2);
        assert_eq!(
            spring,
            [utc("2026-03-07T14:00:00Z"), utc("2026-03-08T13:00:00Z")]
        );
        let autumn = t.upcoming(utc("2026-10-31T00:00:00Z"), 2);
        assert_eq!(
            autumn,
            [utc("2026-10-31T13:00:00Z"), utc("2026-11-01T14:00:00Z")]
        );
        assert_eq!(t.local_rfc3339(autumn[1]), "2026-11-01T09:00:00-05:00");
    }

    #[test]
    fn a_local_time_the_clocks_skip_or_repeat_fires_once() {
        // Berlin skips 02:00-03:00 on 2026-03-29 and repeats 02:00-03:00 on
        // 2026-10-25.
        let t = cron("30 2 * * *", "Europe/Berlin");
        let spring = t.upcoming(utc("2026-03-28T12:00:00Z"), 2);
        assert_eq!(
            rendered(&t, &spring),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
        );
        let autumn = t.due(utc("2026-10-24T12:00:00Z"), utc("2026-10-25T12:00:00Z"), 10);
        assert_eq!(rendered(&t, &autumn), ["2026-10-25T02:30:00+02:00"]);
    }

    #[test]
    fn a_cron_that_never_matches_has_no_ticks() {
        // February 31st never comes: no tick, quickly, in either direction.
        let t = cron("0 0 31 2 *", "UTC");
        let start = utc("2026-01-05T00:00:00Z");
        let began = std::time::Instant::now();
        assert_eq!(t.next_after(start), None);
        assert_eq!(t.latest_until(start), None);
        assert!(t.due(0, start, 100).is_empty());
        assert!(began.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn rates_are_aligned_to_the_epoch() {
        let t = ticks(
            ScheduleExpression::Rate {
                text: "rate(5 minutes)".into(),
                every_ms: 300_000,
            },
            "UTC",
        );
        let start = utc("2026-01-05T00:03:00Z");
        assert_eq!(t.next_after(start), Some(utc("2026-01-05T00:05:00Z")));
        assert_eq!(t.due(start, start + 600_000, 100).len(), 2);
    }

    #[test]
    fn at_ticks_once() {
        let at = utc("2026-12-01T08:00:00Z");
        let t = ticks(
            ScheduleExpression::At {
                text: "2026-12-01T09:00:00".into(),
                at_ms: at,
            },
            "Europe/Berlin",
        );
        assert_eq!(t.upcoming(0, 3), [at]);
        assert_eq!(t.next_after(at), None);
        assert_eq!(t.due(at - 1, at + 1_000_000, 100), [at]);
        assert!(t.due(at, at + 1_000_000, 100).is_empty());
        assert_eq!(t.local_rfc3339(at), "2026-12-01T09:00:00+01:00");
    }
}
