//! The delivery contract's settings, in one place: every asynchronous
//! trigger kind takes the same keys with the same defaults and meaning
//! (`raw_trigger!` adds them to each trigger table).

use crate::diagnostic::Diagnostics;
use crate::limits::Limit;
use serde::Deserialize;
use toml::Spanned;

/// How events reach a function: batching, concurrency, and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Most events one invocation gets.
    pub batch_size: u32,
    /// How long to wait to fill a batch before invoking with fewer.
    pub batch_window_ms: u64,
    /// Invocations in flight for this trigger.
    pub max_concurrency: u32,
    /// The handler names failed events; only those are retried. Off: any
    /// reported failure fails the whole batch.
    pub report_batch_item_failures: bool,
    pub retry_backoff: Backoff,
}

/// Delay before retry `n` (from 1): `initial_ms * multiplier^(n-1)`, capped
/// at `max_ms`, with up to 20% jitter subtracted so retries spread out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial_ms: u64,
    pub multiplier: f64,
    pub max_ms: u64,
}

impl Backoff {
    /// The delay before retry `retry` (1 for the first retry), before jitter.
    pub fn delay_ms(&self, retry: u32) -> u64 {
        let exponent = retry.saturating_sub(1).min(64) as i32;
        let delay = self.initial_ms as f64 * self.multiplier.powi(exponent);
        delay.min(self.max_ms as f64) as u64
    }

    /// [`Backoff::delay_ms`] less a jitter of up to 20%, `unit` in [0, 1).
    pub fn jittered_ms(&self, retry: u32, unit: f64) -> u64 {
        let delay = self.delay_ms(retry);
        delay - (delay as f64 * 0.2 * unit.clamp(0.0, 1.0)) as u64
    }
}

/// Retries after the first attempt, then the failure destination (as Lambda: 0 to 2).
pub const MAX_RETRY_ATTEMPTS: Limit = Limit {
    key: "max_retry_attempts",
    default: 2,
    range: (0, 2),
};
/// Events older than this are not invoked; they go to the failure destination.
pub const MAX_EVENT_AGE_S: Limit = Limit {
    key: "max_event_age_s",
    default: 21_600,
    range: (60, 21_600),
};

/// Where a result goes: `queue:NAME` or `function:NAME` (an event function,
/// invoked asynchronously with the record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Queue(String),
    Function(String),
}

/// What happens to an event handled one at a time, with retries: the
/// delivery settings of asynchronous invocation (and of later triggers that
/// retry by themselves rather than through a queue).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_retry_attempts: u32,
    pub max_event_age_s: u64,
    pub retry_backoff: Backoff,
    pub on_success: Option<Destination>,
    pub on_failure: Option<Destination>,
}

pub const BATCH_SIZE: Limit = Limit {
    key: "batch_size",
    default: 10,
    range: (1, 10_000),
};
pub const BATCH_WINDOW_MS: Limit = Limit {
    key: "batch_window_ms",
    default: 0,
    range: (0, 300_000),
};
pub const TRIGGER_MAX_CONCURRENCY: Limit = Limit {
    key: "max_concurrency",
    default: 2,
    range: (1, 1000),
};
pub const BACKOFF_INITIAL_MS: Limit = Limit {
    key: "initial_ms",
    default: 1000,
    range: (0, 900_000),
};
pub const BACKOFF_MAX_MS: Limit = Limit {
    key: "max_ms",
    default: 60_000,
    range: (0, 43_200_000),
};
pub const BACKOFF_MULTIPLIER_DEFAULT: f64 = 2.0;
pub const BACKOFF_MULTIPLIER_RANGE: (f64, f64) = (1.0, 10.0);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    pub initial_ms: Option<Spanned<i64>>,
    pub multiplier: Option<Spanned<f64>>,
    pub max_ms: Option<Spanned<i64>>,
}

/// The delivery keys as written in a trigger table.
pub(crate) struct RawDelivery<'a> {
    pub batch_size: &'a Option<Spanned<i64>>,
    pub batch_window_ms: &'a Option<Spanned<i64>>,
    pub max_concurrency: &'a Option<Spanned<i64>>,
    pub report_batch_item_failures: &'a Option<Spanned<bool>>,
    pub retry_backoff: &'a Option<Spanned<RawBackoff>>,
}

/// Declares a raw trigger table: its own keys plus the delivery keys.
macro_rules! raw_trigger {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $name {
            $(pub $field: $ty,)*
            pub batch_size: Option<toml::Spanned<i64>>,
            pub batch_window_ms: Option<toml::Spanned<i64>>,
            pub max_concurrency: Option<toml::Spanned<i64>>,
            pub report_batch_item_failures: Option<toml::Spanned<bool>>,
            pub retry_backoff: Option<toml::Spanned<$crate::delivery::RawBackoff>>,
        }

        impl $name {
            pub(crate) fn delivery(&self) -> $crate::delivery::RawDelivery<'_> {
                $crate::delivery::RawDelivery {
                    batch_size: &self.batch_size,
                    batch_window_ms: &self.batch_window_ms,
                    max_concurrency: &self.max_concurrency,
                    report_batch_item_failures: &self.report_batch_item_failures,
                    retry_backoff: &self.retry_backoff,
                }
            }
        }
    };
}
pub(crate) use raw_trigger;

/// Declares a raw trigger table for a source that retries by itself (streams,
/// object events, schedules): its own keys, the delivery keys, and the retry
/// keys of [`RetryPolicy`] (`max_retry_attempts`, `max_event_age_s`,
/// `on_success`, `on_failure`), with the same names and defaults as
/// `[function.NAME.async]`. `retry_backoff` is shared with the delivery keys.
macro_rules! raw_retrying_trigger {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $crate::delivery::raw_trigger!(
            $(#[$meta])*
            $name {
                $($field: $ty,)*
                max_retry_attempts: Option<toml::Spanned<i64>>,
                max_event_age_s: Option<toml::Spanned<i64>>,
                on_success: Option<toml::Spanned<String>>,
                on_failure: Option<toml::Spanned<String>>,
            }
        );

        impl $name {
            pub(crate) fn retry(&self) -> $crate::delivery::RawRetry<'_> {
                $crate::delivery::RawRetry {
                    max_retry_attempts: &self.max_retry_attempts,
                    max_event_age_s: &self.max_event_age_s,
                    retry_backoff: &self.retry_backoff,
                    on_success: &self.on_success,
                    on_failure: &self.on_failure,
                }
            }
        }
    };
}
pub(crate) use raw_retrying_trigger;

/// The retry keys as written, in `[function.NAME.async]` or a retrying
/// trigger table.
pub(crate) struct RawRetry<'a> {
    pub max_retry_attempts: &'a Option<Spanned<i64>>,
    pub max_event_age_s: &'a Option<Spanned<i64>>,
    pub retry_backoff: &'a Option<Spanned<RawBackoff>>,
    pub on_success: &'a Option<Spanned<String>>,
    pub on_failure: &'a Option<Spanned<String>>,
}

/// `[function.NAME.async]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetryPolicy {
    pub max_retry_attempts: Option<Spanned<i64>>,
    pub max_event_age_s: Option<Spanned<i64>>,
    pub retry_backoff: Option<Spanned<RawBackoff>>,
    pub on_success: Option<Spanned<String>>,
    pub on_failure: Option<Spanned<String>>,
}

impl RawRetryPolicy {
    pub(crate) fn retry(&self) -> RawRetry<'_> {
        RawRetry {
            max_retry_attempts: &self.max_retry_attempts,
            max_event_age_s: &self.max_event_age_s,
            retry_backoff: &self.retry_backoff,
            on_success: &self.on_success,
            on_failure: &self.on_failure,
        }
    }
}

impl RetryPolicy {
    /// The policy of a function that declares none.
    pub fn defaults() -> Self {
        RetryPolicy {
            max_retry_attempts: MAX_RETRY_ATTEMPTS.default as u32,
            max_event_age_s: MAX_EVENT_AGE_S.default,
            retry_backoff: default_backoff(),
            on_success: None,
            on_failure: None,
        }
    }
}

/// Resolves a retry policy; destinations must name a declared queue or
/// function (whether a function is an event function is known only once its
/// component is loaded, so `nimbus up` checks that).
pub(crate) fn resolve_retry_policy(
    d: &mut Diagnostics,
    raw: RawRetry<'_>,
    queues: &std::collections::BTreeMap<String, crate::Queue>,
    functions: &[String],
) -> RetryPolicy {
    let destination = |d: &mut Diagnostics, value: &Option<Spanned<String>>| {
        let value = value.as_ref()?;
        let text = value.get_ref();
        let parsed = match text.split_once(':') {
            Some(("queue", name)) if !name.is_empty() => Destination::Queue(name.to_owned()),
            Some(("function", name)) if !name.is_empty() => Destination::Function(name.to_owned()),
            _ => {
                d.error(
                    value.span(),
                    format!("`{text}` is not a destination"),
                    "write `queue:NAME` or `function:NAME`",
                );
                return None;
            }
        };
        let missing = match &parsed {
            Destination::Queue(q) if !queues.contains_key(q) => {
                Some(format!("queue `{q}` is not declared"))
            }
            Destination::Function(f) if !functions.contains(f) => {
                Some(format!("function `{f}` is not declared"))
            }
            _ => None,
        };
        if let Some(problem) = missing {
            d.error(
                value.span(),
                problem,
                "declare it, or name a declared queue or event function",
            );
            return None;
        }
        Some(parsed)
    };
    RetryPolicy {
        max_retry_attempts: crate::resolve::limit(d, raw.max_retry_attempts, MAX_RETRY_ATTEMPTS)
            as u32,
        max_event_age_s: crate::resolve::limit(d, raw.max_event_age_s, MAX_EVENT_AGE_S),
        retry_backoff: resolve_backoff(d, raw.retry_backoff),
        on_success: destination(d, raw.on_success),
        on_failure: destination(d, raw.on_failure),
    }
}

fn default_backoff() -> Backoff {
    Backoff {
        initial_ms: BACKOFF_INITIAL_MS.default,
        multiplier: BACKOFF_MULTIPLIER_DEFAULT,
        max_ms: BACKOFF_MAX_MS.default,
    }
}

pub(crate) fn resolve(d: &mut Diagnostics, raw: RawDelivery<'_>) -> Delivery {
    let limit =
        |d: &mut Diagnostics, v: &Option<Spanned<i64>>, l: Limit| crate::resolve::limit(d, v, l);
    Delivery {
        batch_size: limit(d, raw.batch_size, BATCH_SIZE) as u32,
        batch_window_ms: limit(d, raw.batch_window_ms, BATCH_WINDOW_MS),
        max_concurrency: limit(d, raw.max_concurrency, TRIGGER_MAX_CONCURRENCY) as u32,
        report_batch_item_failures: raw
            .report_batch_item_failures
            .as_ref()
            .is_some_and(|v| *v.get_ref()),
        retry_backoff: resolve_backoff(d, raw.retry_backoff),
    }
}

fn resolve_backoff(d: &mut Diagnostics, raw: &Option<Spanned<RawBackoff>>) -> Backoff {
    let Some(b) = raw else {
        return default_backoff();
    };
    let raw_b = b.get_ref();
    let initial_ms = crate::resolve::limit(d, &raw_b.initial_ms, BACKOFF_INITIAL_MS);
    let max_ms = crate::resolve::limit(d, &raw_b.max_ms, BACKOFF_MAX_MS);
    let multiplier = match &raw_b.multiplier {
        None => BACKOFF_MULTIPLIER_DEFAULT,
        Some(m) => {
            let (lo, hi) = BACKOFF_MULTIPLIER_RANGE;
            let v = *m.get_ref();
            if !(lo..=hi).contains(&v) {
                d.error(
                    m.span(),
                    format!("`multiplier` = {v} is out of range"),
                    format!("use a value from {lo} to {hi} (default {BACKOFF_MULTIPLIER_DEFAULT})"),
                );
            }
            v
        }
    };
    if max_ms < initial_ms {
        d.error(
            b.span(),
            format!("`max_ms` = {max_ms} is below `initial_ms` = {initial_ms}"),
            "make `max_ms` at least `initial_ms`",
        );
    }
    Backoff {
        initial_ms,
        multiplier,
        max_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_the_multiplier_up_to_the_cap() {
        let b = Backoff {
            initial_ms: 1000,
            multiplier: 2.0,
            max_ms: 5000,
        };
        let delays: Vec<u64> = (1..=5).map(|n| b.delay_ms(n)).collect();
        assert_eq!(delays, [1000, 2000, 4000, 5000, 5000]);
        assert_eq!(b.jittered_ms(2, 0.0), 2000);
        assert_eq!(b.jittered_ms(2, 0.5), 1800);
    }
}
