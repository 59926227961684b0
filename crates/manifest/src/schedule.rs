//! `[[trigger.schedule]]`: cron expressions, `rate(N unit)` and one-time
//! `at`, in a named time zone, checked and resolved (the delivery and retry
//! keys are the shared ones of `delivery`).

use crate::diagnostic::Diagnostics;
use crate::{Delivery, Function, Queue, RetryPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr as _;
use toml::Spanned;

crate::delivery::raw_retrying_trigger!(
    /// `[[trigger.schedule]]`: a function run on a schedule.
    RawScheduleTrigger {
        name: Option<Spanned<String>>,
        function: Option<Spanned<String>>,
        cron: Option<Spanned<String>>,
        rate: Option<Spanned<String>>,
        at: Option<Spanned<String>>,
        timezone: Option<Spanned<String>>,
        catch_up: Option<Spanned<String>>,
    }
);

/// The time zone of a schedule that names none.
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// `[[trigger.schedule]]`: `function` runs at every tick of `expression`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleTrigger {
    pub name: String,
    pub function: String,
    pub expression: ScheduleExpression,
    /// IANA name; cron fields and `at` are local times in it.
    pub timezone: String,
    pub catch_up: CatchUp,
    pub delivery: Delivery,
    pub retry: RetryPolicy,
}

/// When a schedule ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleExpression {
    /// A cron expression: 5 fields (minute hour day-of-month month
    /// day-of-week), or 6 with leading seconds, or 7 with a trailing year.
    Cron(String),
    /// `rate(N unit)`: every `every_ms`, aligned to the Unix epoch.
    Rate { text: String, every_ms: u64 },
    /// `at`: once, at this instant (ms since the epoch), written as a local
    /// date-time in the schedule's time zone.
    At { text: String, at_ms: u64 },
}

impl ScheduleExpression {
    /// The expression as written, e.g. `cron(0 9 * * MON)`.
    pub fn describe(&self) -> String {
        match self {
            ScheduleExpression::Cron(c) => format!("cron({c})"),
            ScheduleExpression::Rate { text, .. } => text.clone(),
            ScheduleExpression::At { text, .. } => format!("at({text})"),
        }
    }
}

/// What a schedule does about ticks that passed while Nimbus was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Fire only the most recent missed tick (the default).
    Latest,
    /// Skip every missed tick.
    None,
    /// Fire every missed tick, the most recent `MAX_CATCH_UP_TICKS` at most.
    All,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Latest => "latest",
            CatchUp::None => "none",
            CatchUp::All => "all",
        }
    }
}

/// The most missed ticks `catch_up = "all"` fires after downtime.
pub const MAX_CATCH_UP_TICKS: usize = 100;

pub(crate) fn resolve_schedule_triggers(
    d: &mut Diagnostics,
    raw: &[Spanned<RawScheduleTrigger>],
    functions: &BTreeMap<String, Function>,
    queues: &BTreeMap<String, Queue>,
) -> Vec<ScheduleTrigger> {
    let function_names: Vec<String> = functions.keys().cloned().collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for spanned in raw {
        let t = spanned.get_ref();
        let delivery = crate::delivery::resolve(d, t.delivery());
        let retry = crate::delivery::resolve_retry_policy(d, t.retry(), queues, &function_names);
        let name = match &t.name {
            None => {
                d.error(
                    spanned.span(),
                    "[[trigger.schedule]] has no `name`",
                    "add `name = \"NAME\"`: it names the schedule in `nimbus schedule list` and its tick events",
                );
                None
            }
            Some(n) if !crate::resolve::valid_name(n.get_ref(), 64, true) => {
                d.error(
                    n.span(),
                    format!("schedule name `{}` is not valid", n.get_ref()),
                    "use 1 to 64 lowercase letters, digits, `-` and `_`, starting with a letter",
                );
                None
            }
            Some(n) if !seen.insert(n.get_ref().clone()) => {
                d.error(
                    n.span(),
                    format!("schedule `{}` is declared twice", n.get_ref()),
                    "give every [[trigger.schedule]] its own name",
                );
                None
            }
            Some(n) => Some(n.get_ref().clone()),
        };
        let function =
            crate::resolve::trigger_function(d, functions, spanned.span(), "schedule", &t.function);
        let timezone = match &t.timezone {
            None => Some(chrono_tz::Tz::UTC),
            Some(tz) => match chrono_tz::Tz::from_str(tz.get_ref()) {
                Ok(zone) => Some(zone),
                Err(_) => {
                    d.error(
                        tz.span(),
                        format!("`{}` is not a known time zone", tz.get_ref()),
                        "use an IANA time zone name such as `UTC`, `Europe/Berlin` or `America/New_York`",
                    );
                    None
                }
            },
        };
        let catch_up = match &t.catch_up {
            None => CatchUp::Latest,
            Some(c) => match c.get_ref().as_str() {
                "latest" => CatchUp::Latest,
                "none" => CatchUp::None,
                "all" => CatchUp::All,
                other => {
                    d.error(
                        c.span(),
                        format!("`catch_up` = `{other}` is not a catch-up policy"),
                        "use `latest` (the default: fire the most recent missed tick), `none` or `all`",
                    );
                    CatchUp::Latest
                }
            },
        };
        let expression = expression(d, spanned, timezone);
        if let (Some(name), Some(function), Some(expression), Some(timezone)) =
            (name, function, expression, timezone)
        {
            out.push(ScheduleTrigger {
                name,
                function,
                expression,
                timezone: timezone.name().to_owned(),
                catch_up,
                delivery,
                retry,
            });
        }
    }
    out
}

/// Exactly one of `cron`, `rate` and `at`, parsed.
fn expression(
    d: &mut Diagnostics,
    raw: &Spanned<RawScheduleTrigger>,
    timezone: Option<chrono_tz::Tz>,
) -> Option<ScheduleExpression> {
    let t = raw.get_ref();
    let given: Vec<&Spanned<String>> = [&t.cron, &t.rate, &t.at].into_iter().flatten().collect();
    match given.as_slice() {
        [] => {
            d.error(
                raw.span(),
                "[[trigger.schedule]] says neither `cron`, `rate` nor `at`",
                "add one: `cron = \"0 9 * * MON-FRI\"`, `rate = \"rate(5 minutes)\"` or `at = \"2026-12-01T09:00:00\"`",
            );
            return None;
        }
        [_] => {}
        [_, second, ..] => {
            d.error(
                second.span(),
                "a schedule takes exactly one of `cron`, `rate` and `at`",
                "keep one of them; declare another [[trigger.schedule]] for a second expression",
            );
            return None;
        }
    }
    if let Some(cron) = &t.cron {
        return match croner::Cron::from_str(cron.get_ref().trim()) {
            Ok(_) => Some(ScheduleExpression::Cron(cron.get_ref().trim().to_owned())),
            Err(e) => {
                d.error(
                    cron.span(),
                    format!("`{}` is not a cron expression: {e}", cron.get_ref()),
                    "write 5 fields, `minute hour day-of-month month day-of-week`, e.g. `0 9 * * MON-FRI` (a leading seconds field and a trailing year field are also accepted)",
                );
                None
            }
        };
    }
    if let Some(rate) = &t.rate {
        return match parse_rate(rate.get_ref()) {
            Some(every_ms) => Some(ScheduleExpression::Rate {
                text: rate.get_ref().trim().to_owned(),
                every_ms,
            }),
            None => {
                d.error(
                    rate.span(),
                    format!("`{}` is not a rate", rate.get_ref()),
                    "write `rate(N unit)` with N at least 1 and unit minute(s), hour(s) or day(s), e.g. `rate(5 minutes)`",
                );
                None
            }
        };
    }
    let at = t.at.as_ref()?;
    let zone = timezone?;
    match parse_at(at.get_ref(), zone) {
        Ok(at_ms) => Some(ScheduleExpression::At {
            text: at.get_ref().trim().to_owned(),
            at_ms,
        }),
        Err(problem) => {
            d.error(
                at.span(),
                problem,
                "write a local date-time without offset, e.g. `2026-12-01T09:00:00`, read in the schedule's `timezone`",
            );
            None
        }
    }
}

/// `rate(N unit)` as milliseconds.
pub(crate) fn parse_rate(text: &str) -> Option<u64> {
    let inner = text.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(char::is_whitespace)?;
    let count: u64 = count.parse().ok().filter(|n| *n >= 1)?;
    let unit_ms: u64 = match unit.trim() {
        "minute" | "minutes" => 60_000,
        "hour" | "hours" => 3_600_000,
        "day" | "days" => 86_400_000,
        _ => return None,
    };
    count.checked_mul(unit_ms)
}

/// A local date-time in `zone` as ms since the epoch; a time skipped by a
/// daylight-saving change is an error, a repeated one means its first
/// occurrence.
fn parse_at(text: &str, zone: chrono_tz::Tz) -> Result<u64, String> {
    use chrono::TimeZone as _;
    let local = chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M"))
        .map_err(|e| format!("`{text}` is not a local date-time: {e}"))?;
    let instant = zone.from_local_datetime(&local).earliest().ok_or_else(|| {
        format!(
            "`{text}` does not exist in {} (the clocks skip it)",
            zone.name()
        )
    })?;
    u64::try_from(instant.timestamp_millis())
        .map_err(|_| format!("`{text}` is before 1970, so it can never come"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_take_minutes_hours_and_days() {
        assert_eq!(parse_rate("rate(5 minutes)"), Some(300_000));
        assert_eq!(parse_rate("rate(1 hour)"), Some(3_600_000));
        assert_eq!(parse_rate("rate(2 days)"), Some(172_800_000));
        assert_eq!(parse_rate("rate(0 minutes)"), None);
        assert_eq!(parse_rate("rate(5 weeks)"), None);
        assert_eq!(parse_rate("5 minutes"), None);
    }

    #[test]
    fn at_is_local_time_in_the_zone() {
        let berlin = chrono_tz::Tz::Europe__Berlin;
        // 09:00 in Berlin in winter is 08:00 UTC.
        assert_eq!(
            parse_at("2026-12-01T09:00:00", berlin),
            Ok(1_796_112_000_000)
        );
        assert!(parse_at("2026-03-29T02:30:00", berlin).is_err());
    }
}
