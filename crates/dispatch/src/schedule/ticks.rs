//! Tick math: when a schedule's expression fires, in its time zone. Cron
//! fields are local wall-clock times; across daylight-saving changes a local
//! time the clocks skip fires at the end of the gap (02:30 on a night that
//! skips 02:00-03:00 fires at 03:00; several skipped times fire there once)
//! and one they repeat fires once, at its first occurrence. This holds for
//! every field form (single values, lists, ranges, steps, wildcards): the
//! cron is matched against wall-clock time with no zone (where croner's own
//! rules would skip a gap or fire twice for intervals), and each match is
//! then placed in the zone. Rates are aligned to the Unix epoch; `at` is
//! one instant.

use chrono::{LocalResult, NaiveDateTime, TimeDelta, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Tz;
use nimbus_manifest::{ScheduleExpression, ScheduleTrigger};
use std::str::FromStr as _;

/// Longest a daylight-saving (or zone) change skips, in minutes: a day, as
/// when Samoa crossed the date line.
const MAX_GAP_MINUTES: u32 = 2 * 24 * 60;
/// Most wall-clock matches one search steps over (those a repeated hour or
/// a gap maps outside the range asked for): an every-second cron across a
/// repeated hour, with room to spare.
const MAX_SKIPPED_MATCHES: u32 = 3 * 3600;
const DAY_MS: u64 = 24 * 3600 * 1000;

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
                // Ticks are whole seconds: search from the second `after_ms`
                // is in. Wall-clock matches map to instants in order (never
                // backwards), so the first match whose instant is past
                // `after_ms` is the next tick; one that maps at or before it
                // (a repeated hour's match, already fired in its first
                // occurrence; a gap's match, collapsed onto the gap's end)
                // is skipped.
                let mut wall = self.local(after_ms - after_ms % 1000)?.naive_local();
                for _ in 0..MAX_SKIPPED_MATCHES {
                    let next = cron
                        .find_next_occurrence(&Utc.from_utc_datetime(&wall), false)
                        .ok()?
                        .naive_utc();
                    let at = self.place(next)?;
                    if at > after_ms {
                        return Some(at);
                    }
                    wall = next;
                }
                None
            }
        }
    }

    /// The instant a wall-clock match fires: the time itself where it
    /// exists once, its first occurrence where the clocks repeat it, and
    /// the end of the gap where they skip it.
    fn place(&self, wall: NaiveDateTime) -> Option<u64> {
        let instant = match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(t) => t,
            LocalResult::Ambiguous(first, second) => first.min(second),
            LocalResult::None => {
                // Gaps start and end on whole minutes: the first minute
                // that exists after this one is the end of the gap.
                let mut minute = wall.with_second(0)?.with_nanosecond(0)?;
                let mut found = None;
                for _ in 0..MAX_GAP_MINUTES {
                    minute += TimeDelta::minutes(1);
                    if let Some(t) = self.zone.from_local_datetime(&minute).earliest() {
                        found = Some(t);
                        break;
                    }
                }
                found?
            }
        };
        u64::try_from(instant.timestamp_millis()).ok()
    }

    /// The last tick at or before `until_ms`.
    pub fn latest_until(&self, until_ms: u64) -> Option<u64> {
        match &self.kind {
            Kind::Rate(every) => Some(until_ms - until_ms % every),
            Kind::At(at) => (*at <= until_ms).then_some(*at),
            Kind::Cron(cron) => {
                // Search back from the latest wall-clock time that can map
                // at or before `until_ms`: `until_ms` read with the larger
                // of the offsets in force now and a day before (in the
                // second pass of a repeated hour, the first pass's matches
                // lie ahead on the wall clock but behind in time).
                let until = until_ms - until_ms % 1000;
                let now = self.local(until)?;
                let before = self.local(until.saturating_sub(DAY_MS))?;
                let offset =
                    |t: &chrono::DateTime<Tz>| chrono::Offset::fix(t.offset()).local_minus_utc();
                let widest = TimeDelta::seconds(i64::from(offset(&now).max(offset(&before))));
                let mut wall = now.naive_utc() + widest;
                let mut inclusive = true;
                for _ in 0..MAX_SKIPPED_MATCHES {
                    let previous = cron
                        .find_previous_occurrence(&Utc.from_utc_datetime(&wall), inclusive)
                        .ok()?
                        .naive_utc();
                    let at = self.place(previous)?;
                    if at <= until_ms {
                        return Some(at);
                    }
                    wall = previous;
                    inclusive = false;
                }
                None
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

    /// The cases: a list of hours in Berlin and a step of minutes
    /// in New York, on both changes of 2026.
    #[test]
    fn lists_and_steps_follow_the_rule_across_both_changes() {
        let t = cron("30 2,14 * * *", "Europe/Berlin");
        let spring = t.upcoming(utc("2026-03-28T12:00:00Z"), 3);
        assert_eq!(
            rendered(&t, &spring),
            [
                "2026-03-28T14:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T14:30:00+02:00"
            ]
        );
        let autumn = t.upcoming(utc("2026-10-24T12:00:00Z"), 3);
        assert_eq!(
            rendered(&t, &autumn),
            [
                "2026-10-24T14:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T14:30:00+01:00"
            ]
        );
        let t = cron("*/20 1 * * *", "America/New_York");
        let autumn = t.upcoming(utc("2026-11-01T00:00:00Z"), 4);
        assert_eq!(
            rendered(&t, &autumn),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:20:00-04:00",
                "2026-11-01T01:40:00-04:00",
                "2026-11-02T01:00:00-05:00"
            ]
        );
        let t = cron("*/20 2 * * *", "America/New_York");
        let spring = t.upcoming(utc("2026-03-08T00:00:00Z"), 2);
        assert_eq!(
            rendered(&t, &spring),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
        );
    }

    /// Every field form (single value, list, range, step, wildcard) of the
    /// seconds, minutes and hours, on both daylight-saving changes of two
    /// zones, against an oracle that walks the wall clock second by second
    /// and places each match by the documented rule: where the wall time
    /// exists once, then; in a repeated hour, at its first occurrence only;
    /// in a gap, at the end of the gap, once however many matches it holds.
    #[test]
    fn every_field_form_fires_by_the_rule_on_both_changes() {
        // (zone, an instant before the change, the hour it skips or repeats)
        let changes = [
            ("Europe/Berlin", "2026-03-28T22:00:00Z", 2),
            ("Europe/Berlin", "2026-10-24T22:00:00Z", 2),
            ("America/New_York", "2026-03-08T03:00:00Z", 2),
            ("America/New_York", "2026-11-01T02:00:00Z", 1),
        ];
        for (zone, start, h) in changes {
            let forms = [
                // hours
                format!("30 {h} * * *"),
                format!("30 {h},{} * * *", h + 12),
                format!("30 {}-{} * * *", h - 1, h + 1),
                "30 */2 * * *".to_owned(),
                "30 * * * *".to_owned(),
                // minutes
                format!("0,30 {h} * * *"),
                format!("10-20 {h} * * *"),
                format!("*/20 {h} * * *"),
                format!("* {h} * * *"),
                // seconds
                format!("15 30 {h} * * *"),
                format!("0,30 30 {h} * * *"),
                format!("10-12 30 {h} * * *"),
                format!("*/20 30 {h} * * *"),
                format!("* 30 {h} * * *"),
            ];
            for form in forms {
                check_against_oracle(&form, zone, utc(start));
            }
        }
    }

    fn check_against_oracle(text: &str, zone: &str, start: u64) {
        const WINDOW_MS: u64 = 8 * 3600 * 1000;
        let t = cron(text, zone);
        let tz = Tz::from_str(zone).unwrap();
        let matcher = croner::Cron::from_str(text).unwrap();
        let end = start + WINDOW_MS;
        // The change: the first second whose offset differs from the start's.
        let offset = |ms: u64| {
            let local = tz.timestamp_millis_opt(ms as i64).unwrap();
            chrono::Offset::fix(local.offset()).local_minus_utc()
        };
        let change = (start..end)
            .step_by(1000)
            .find(|ms| offset(*ms) != offset(start))
            .expect("a change in the window");
        let mut expected = std::collections::BTreeSet::new();
        let first_wall = tz.timestamp_millis_opt(start as i64).unwrap().naive_local();
        // The window's wall-clock times, with an hour to spare either side.
        let mut wall = first_wall - TimeDelta::hours(1);
        let last_wall = first_wall + TimeDelta::hours(9);
        while wall <= last_wall {
            if matcher
                .is_time_matching(&Utc.from_utc_datetime(&wall))
                .unwrap()
            {
                let at = match tz.from_local_datetime(&wall) {
                    LocalResult::Single(t) => t.timestamp_millis() as u64,
                    LocalResult::Ambiguous(a, b) => a.min(b).timestamp_millis() as u64,
                    LocalResult::None => change,
                };
                if at > start && at <= end {
                    expected.insert(at);
                }
            }
            wall += TimeDelta::seconds(1);
        }
        let expected: Vec<u64> = expected.into_iter().collect();
        assert!(!expected.is_empty(), "{text} in {zone}");
        let upcoming = t.upcoming(start, expected.len() + 1);
        assert_eq!(
            rendered(&t, &upcoming[..expected.len()]),
            rendered(&t, &expected),
            "{text} in {zone}: upcoming"
        );
        assert!(upcoming[expected.len()] > end, "{text} in {zone}");
        let due = t.due(start, end, usize::MAX);
        assert_eq!(
            rendered(&t, &due),
            rendered(&t, &expected),
            "{text} in {zone}: due"
        );
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
