//! `[[trigger.schedule]]`: what a good one resolves to (with the delivery
//! and retry defaults every trigger shares) and where a bad one's error
//! points.

use nimbus_manifest::{
    App, CatchUp, Destination, RetryPolicy, ScheduleExpression, delivery, schedule,
};
use std::path::Path;

/// An app with one event function and a queue, ending on line 7.
const APP: &str = "[app]\nname = \"demo\"\n\n[function.worker]\ncomponent = \"worker.wasm\"\n[queue.failures]\n\n";

fn parse(schedules: &str) -> Result<App, nimbus_manifest::ManifestError> {
    App::parse(
        Path::new("/apps/demo/nimbus.toml"),
        &format!("{APP}{schedules}"),
    )
}

#[test]
fn schedules_resolve_with_the_shared_delivery_and_retry_defaults() {
    let app = parse(
        "[[trigger.schedule]]\nname = \"minutely\"\nfunction = \"worker\"\ncron = \"* * * * *\"\n\
         [[trigger.schedule]]\nname = \"often\"\nfunction = \"worker\"\nrate = \"rate(15 minutes)\"\ncatch_up = \"all\"\n\
         max_retry_attempts = 0\nbatch_size = 1\non_failure = \"queue:failures\"\n\
         [[trigger.schedule]]\nname = \"launch\"\nfunction = \"worker\"\nat = \"2026-12-01T09:00\"\ntimezone = \"Europe/Berlin\"\ncatch_up = \"none\"\n",
    )
    .unwrap();
    let [minutely, often, launch] = app.schedule_triggers.as_slice() else {
        panic!("{:?}", app.schedule_triggers)
    };
    assert_eq!(
        minutely.expression,
        ScheduleExpression::Cron("* * * * *".into())
    );
    assert_eq!(minutely.timezone, schedule::DEFAULT_TIMEZONE);
    assert_eq!(minutely.catch_up, CatchUp::Latest);
    assert_eq!(minutely.retry, RetryPolicy::defaults());
    assert_eq!(
        minutely.delivery.batch_size as u64,
        delivery::BATCH_SIZE.default
    );
    assert_eq!(
        minutely.delivery.max_concurrency as u64,
        delivery::TRIGGER_MAX_CONCURRENCY.default
    );
    assert_eq!(
        often.expression,
        ScheduleExpression::Rate {
            text: "rate(15 minutes)".into(),
            every_ms: 900_000
        }
    );
    assert_eq!(often.catch_up, CatchUp::All);
    assert_eq!(often.retry.max_retry_attempts, 0);
    assert_eq!(often.delivery.batch_size, 1);
    assert_eq!(
        often.retry.on_failure,
        Some(Destination::Queue("failures".into()))
    );
    // 09:00 in Berlin in winter is 08:00 UTC.
    assert_eq!(
        launch.expression,
        ScheduleExpression::At {
            text: "2026-12-01T09:00".into(),
            at_ms: 1_796_112_000_000
        }
    );
    assert_eq!(launch.catch_up, CatchUp::None);
    assert_eq!(launch.expression.describe(), "at(2026-12-01T09:00)");
}

#[test]
fn bad_schedules_are_reported_with_line_column_and_fix() {
    // (case, schedule tables from line 8, line, column, fragments)
    let cases: &[(&str, &str, usize, usize, &[&str])] = &[
        (
            "no name",
            "[[trigger.schedule]]\nfunction = \"worker\"\ncron = \"* * * * *\"\n",
            8,
            1,
            &["has no `name`"],
        ),
        (
            "a name twice",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\n[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\n",
            13,
            8,
            &["declared twice", "its own name"],
        ),
        (
            "an invalid name",
            "[[trigger.schedule]]\nname = \"Nightly\"\nfunction = \"worker\"\ncron = \"* * * * *\"\n",
            9,
            8,
            &["is not valid", "lowercase"],
        ),
        (
            "an unknown function",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"ghost\"\ncron = \"* * * * *\"\n",
            10,
            12,
            &["function `ghost` is not declared", "[function.ghost]"],
        ),
        (
            "no expression",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\n",
            8,
            1,
            &["neither `cron`, `rate` nor `at`", "rate(5 minutes)"],
        ),
        (
            "cron and at",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\nat = \"2026-01-01T00:00:00\"\n",
            12,
            6,
            &["exactly one of"],
        ),
        (
            "a bad cron",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"every day\"\n",
            11,
            8,
            &["is not a cron expression", "minute hour day-of-month"],
        ),
        (
            "a bad rate unit",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\nrate = \"rate(3 weeks)\"\n",
            11,
            8,
            &["is not a rate", "minute(s), hour(s) or day(s)"],
        ),
        (
            "a bad at",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\nat = \"tomorrow\"\n",
            11,
            6,
            &["is not a local date-time", "2026-12-01T09:00:00"],
        ),
        (
            "an unknown time zone",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\ntimezone = \"Europe/Atlantis\"\n",
            12,
            12,
            &["not a known time zone", "IANA"],
        ),
        (
            "an unknown catch-up policy",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\ncatch_up = \"some\"\n",
            12,
            12,
            &["not a catch-up policy", "latest"],
        ),
        (
            "a retry setting out of range",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\nmax_retry_attempts = 9\n",
            12,
            22,
            &["`max_retry_attempts` = 9 is out of range", "0 to 2"],
        ),
        (
            "an undeclared destination",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\non_failure = \"queue:ghost\"\n",
            12,
            14,
            &["queue `ghost` is not declared"],
        ),
        (
            "an unknown key",
            "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\nevery = 5\n",
            12,
            1,
            &["unknown field `every`"],
        ),
    ];
    for (case, schedules, line, column, fragments) in cases {
        let err = parse(schedules).expect_err(case);
        let d = err
            .diagnostics()
            .first()
            .unwrap_or_else(|| panic!("{case}: no diagnostic"));
        let text = format!("{}\n{}", d.message, d.help);
        assert_eq!(
            (d.location.line, d.location.column),
            (*line, *column),
            "{case}: {text}"
        );
        for fragment in *fragments {
            assert!(
                text.contains(fragment),
                "{case}: {text:?} lacks {fragment:?}"
            );
        }
    }
}

#[test]
fn a_bad_retry_backoff_is_reported_once_though_delivery_and_retries_share_it() {
    let err = parse(
        "[[trigger.schedule]]\nname = \"a\"\nfunction = \"worker\"\ncron = \"* * * * *\"\nretry_backoff = { initial_ms = 5000, max_ms = 100 }\n",
    )
    .unwrap_err();
    let messages: Vec<&str> = err
        .diagnostics()
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert_eq!(messages, ["`max_ms` = 100 is below `initial_ms` = 5000"]);
}
