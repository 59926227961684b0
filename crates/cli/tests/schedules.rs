//! Schedules through the real server on the test clock (`nimbus up
//! --test-clock`, moved by `POST /v1/test/clock`): ticks fire once each as
//! time passes, a restart neither repeats a tick nor skips one beyond the
//! catch-up policy, rates, one-time `at`, time zones, retries with backoff
//! to the failure destination, `nimbus schedule list`, and manifest errors.
//!
//! Every tick's outcome record goes to a queue (`on_success`), so what fired
//! is read back from the store: once a schedule's last-fired mark says a
//! tick fired and its internal queue is empty, every record up to that tick
//! is on the destination queue.

mod support;

use nimbus_test_programs as programs;
use serde_json::Value;
use support::{Nimbus, TestApp, client, get_json, nimbus, until};

/// 2026-01-05T00:00:30Z: half a minute before a minute boundary.
const T0: u64 = 1_767_571_230_000;
const MINUTE: u64 = 60_000;

fn app(name: &str, schedule: &str) -> TestApp {
    TestApp::new(name)
        .function("worker", programs::EVENTS, "\n[queue.done]\n[queue.failed]")
        .route_kind(
            "schedule",
            &format!("function = \"worker\"\non_success = \"queue:done\"\n{schedule}"),
        )
}

async fn start_at(app: &TestApp, start_ms: u64) -> Nimbus {
    app.start_with(&[
        "--test-clock",
        "--test-clock-start-ms",
        &start_ms.to_string(),
    ])
    .await
}

async fn stop(mut nimbus: Nimbus) {
    nimbus.terminate();
    assert_eq!(
        nimbus.exit_code().await,
        Some(0),
        "{}",
        nimbus.stderr.text()
    );
}

async fn advance(nimbus: &Nimbus, ms: u64) {
    let response = client()
        .post(nimbus.admin_url("/v1/test/clock"))
        .json(&serde_json::json!({ "advance_ms": ms }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn schedule(nimbus: &Nimbus, name: &str) -> Value {
    let listing = get_json(nimbus.admin_url("/v1/schedules?next=3")).await;
    listing["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no schedule {name} in {listing}"))
}

/// The tick events recorded on `queue`, as their `scheduled_time`s in
/// order (workers run concurrently, so records may arrive in any order;
/// a tick delivered twice would be listed twice).
async fn recorded_ticks(nimbus: &Nimbus, queue: &str) -> Vec<String> {
    let page = get_json(nimbus.admin_url(&format!("/v1/queues/{queue}/messages"))).await;
    let mut ticks: Vec<String> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let record: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
            let tick: Value =
                serde_json::from_str(record["event"]["data"].as_str().unwrap()).unwrap();
            tick["scheduled_time"].as_str().unwrap().to_owned()
        })
        .collect();
    ticks.sort();
    ticks
}

/// Waits until schedule `name` has fired `last_fired` and its internal queue
/// is drained, then returns the ticks recorded on `done`.
async fn settled(nimbus: &Nimbus, name: &str, last_fired: &str) -> Vec<String> {
    until(
        &format!("for {name} to fire {last_fired} and drain"),
        || async {
            let state = schedule(nimbus, name).await;
            let stats = get_json(nimbus.admin_url(&format!("/v1/queues/_schedule.{name}"))).await;
            let drained = stats["visible"] == 0 && stats["in_flight"] == 0 && stats["delayed"] == 0;
            (state["last_fired"] == last_fired && drained).then_some(())
        },
    )
    .await;
    recorded_ticks(nimbus, "done").await
}

#[tokio::test]
async fn a_cron_schedule_fires_once_per_elapsed_tick() {
    let app = app("cronticks", "name = \"every-minute\"\ncron = \"* * * * *\"");
    let nimbus = start_at(&app, T0).await;
    assert!(
        nimbus
            .stdout
            .text()
            .contains("schedule every-minute cron(* * * * *) (UTC) -> worker")
    );
    advance(&nimbus, MINUTE).await;
    let ticks = settled(&nimbus, "every-minute", "2026-01-05T00:01:00.000Z").await;
    assert_eq!(ticks, ["2026-01-05T00:01:00.000Z"]);
    // Three minutes at once: three ticks, each once.
    advance(&nimbus, 3 * MINUTE).await;
    let ticks = settled(&nimbus, "every-minute", "2026-01-05T00:04:00.000Z").await;
    assert_eq!(
        ticks,
        [
            "2026-01-05T00:01:00.000Z",
            "2026-01-05T00:02:00.000Z",
            "2026-01-05T00:03:00.000Z",
            "2026-01-05T00:04:00.000Z"
        ]
    );
    let line = nimbus
        .stderr
        .wait_for("with a delivered tick", |l| {
            l.contains("source=nimbus:schedule/every-minute")
        })
        .await;
    assert!(line.contains("type=nimbus.schedule.tick"), "{line}");
    // Each fired tick's lag is observed once (just after its commit).
    until("for the lag of four ticks", || async {
        let metrics = support::get_text(nimbus.admin_url("/metrics")).await;
        metrics
            .contains("nimbus_schedule_lag_seconds_count{schedule=\"every-minute\"} 4")
            .then_some(())
    })
    .await;
}

/// Fires 00:01 on a first run, stops, and restarts at 00:04:30 so that
/// 00:02, 00:03 and 00:04 were missed; returns the server and what it did.
async fn restart_after_missing_three_ticks(name: &str, catch_up: &str) -> (Nimbus, Vec<String>) {
    let app = app(
        name,
        &format!("name = \"minutely\"\ncron = \"* * * * *\"\ncatch_up = \"{catch_up}\""),
    );
    let first = start_at(&app, T0).await;
    advance(&first, MINUTE).await;
    let ticks = settled(&first, "minutely", "2026-01-05T00:01:00.000Z").await;
    assert_eq!(ticks, ["2026-01-05T00:01:00.000Z"]);
    stop(first).await;
    let second = start_at(&app, T0 + 4 * MINUTE).await;
    let expected_last = match catch_up {
        "none" => "2026-01-05T00:01:00.000Z",
        _ => "2026-01-05T00:04:00.000Z",
    };
    let ticks = settled(&second, "minutely", expected_last).await;
    (second, ticks)
}

#[tokio::test]
async fn after_a_restart_catch_up_latest_fires_only_the_most_recent_missed_tick() {
    let (_nimbus, ticks) = restart_after_missing_three_ticks("catchlatest", "latest").await;
    assert_eq!(
        ticks,
        ["2026-01-05T00:01:00.000Z", "2026-01-05T00:04:00.000Z"]
    );
}

#[tokio::test]
async fn after_a_restart_catch_up_all_fires_every_missed_tick_once() {
    let (_nimbus, ticks) = restart_after_missing_three_ticks("catchall", "all").await;
    assert_eq!(
        ticks,
        [
            "2026-01-05T00:01:00.000Z",
            "2026-01-05T00:02:00.000Z",
            "2026-01-05T00:03:00.000Z",
            "2026-01-05T00:04:00.000Z"
        ]
    );
}

#[tokio::test]
async fn after_a_restart_catch_up_none_skips_missed_ticks_and_goes_on() {
    let (nimbus, _) = restart_after_missing_three_ticks("catchnone", "none").await;
    // The skipped ticks never fire; the next one does.
    advance(&nimbus, MINUTE).await;
    let ticks = settled(&nimbus, "minutely", "2026-01-05T00:05:00.000Z").await;
    assert_eq!(
        ticks,
        ["2026-01-05T00:01:00.000Z", "2026-01-05T00:05:00.000Z"]
    );
}

#[tokio::test]
async fn a_restart_with_no_tick_missed_repeats_nothing() {
    let app = app("norepeat", "name = \"minutely\"\ncron = \"* * * * *\"");
    let first = start_at(&app, T0).await;
    advance(&first, MINUTE).await;
    settled(&first, "minutely", "2026-01-05T00:01:00.000Z").await;
    stop(first).await;
    // Back at the same moment: the fired tick stays fired.
    let second = start_at(&app, T0 + MINUTE).await;
    advance(&second, MINUTE).await;
    let ticks = settled(&second, "minutely", "2026-01-05T00:02:00.000Z").await;
    assert_eq!(
        ticks,
        ["2026-01-05T00:01:00.000Z", "2026-01-05T00:02:00.000Z"]
    );
}

#[tokio::test]
async fn a_rate_schedule_fires_at_each_multiple_of_its_period() {
    let app = app("rates", "name = \"five\"\nrate = \"rate(5 minutes)\"");
    let nimbus = start_at(&app, T0).await;
    advance(&nimbus, 10 * MINUTE).await;
    let ticks = settled(&nimbus, "five", "2026-01-05T00:10:00.000Z").await;
    assert_eq!(
        ticks,
        ["2026-01-05T00:05:00.000Z", "2026-01-05T00:10:00.000Z"]
    );
    let state = schedule(&nimbus, "five").await;
    assert_eq!(state["expression"], "rate(5 minutes)");
    assert_eq!(state["next"][0], "2026-01-05T00:15:00.000Z");
}

#[tokio::test]
async fn a_one_time_schedule_fires_once_and_never_again() {
    let app = app("once", "name = \"launch\"\nat = \"2026-01-05T00:02:00\"");
    let nimbus = start_at(&app, T0).await;
    assert_eq!(
        schedule(&nimbus, "launch").await["next"],
        serde_json::json!(["2026-01-05T00:02:00.000Z"])
    );
    advance(&nimbus, 2 * MINUTE).await;
    let ticks = settled(&nimbus, "launch", "2026-01-05T00:02:00.000Z").await;
    assert_eq!(ticks, ["2026-01-05T00:02:00.000Z"]);
    advance(&nimbus, 24 * 60 * MINUTE).await;
    let state = schedule(&nimbus, "launch").await;
    assert_eq!(state["next"], serde_json::json!([]));
    stop(nimbus).await;
    // Nor after a restart, whatever the catch-up policy would do.
    let again = start_at(&app, T0 + 48 * 60 * MINUTE).await;
    let ticks = settled(&again, "launch", "2026-01-05T00:02:00.000Z").await;
    assert_eq!(ticks, ["2026-01-05T00:02:00.000Z"]);
}

#[tokio::test]
async fn a_schedule_in_a_time_zone_fires_at_local_time() {
    // 09:00 in New York in January is 14:00 UTC.
    let app = app(
        "zoned",
        "name = \"morning\"\ncron = \"0 9 * * *\"\ntimezone = \"America/New_York\"",
    );
    let start = T0 + 14 * 60 * MINUTE - MINUTE; // 2026-01-05T13:59:30Z
    let nimbus = start_at(&app, start).await;
    let state = schedule(&nimbus, "morning").await;
    assert_eq!(state["next"][0], "2026-01-05T14:00:00.000Z");
    assert_eq!(state["next_local"][0], "2026-01-05T09:00:00-05:00");
    advance(&nimbus, MINUTE).await;
    let ticks = settled(&nimbus, "morning", "2026-01-05T14:00:00.000Z").await;
    assert_eq!(ticks, ["2026-01-05T14:00:00.000Z"]);
    let page = get_json(nimbus.admin_url("/v1/queues/done/messages")).await;
    let record: Value =
        serde_json::from_str(page["messages"][0]["body"].as_str().unwrap()).unwrap();
    let tick: Value = serde_json::from_str(record["event"]["data"].as_str().unwrap()).unwrap();
    assert_eq!(tick["local_time"], "2026-01-05T09:00:00-05:00");
    assert_eq!(tick["timezone"], "America/New_York");
    assert_eq!(tick["expression"], "cron(0 9 * * *)");
    assert_eq!(record["subject"], "morning");
}

#[tokio::test]
async fn a_failing_run_is_retried_after_its_backoff_then_recorded_at_on_failure() {
    // The events program fails events whose subject starts with `fail`.
    let app = app(
        "failing",
        "name = \"failing\"\ncron = \"* * * * *\"\nmax_retry_attempts = 1\nretry_backoff = { initial_ms = 5000, max_ms = 5000 }\non_failure = \"queue:failed\"",
    );
    let nimbus = start_at(&app, T0).await;
    advance(&nimbus, MINUTE).await;
    nimbus
        .stderr
        .wait_for("with the first attempt", |l| {
            l.contains("attempt=1") && l.contains("source=nimbus:schedule/failing")
        })
        .await;
    // The retry waits out its backoff by the store's clock.
    until("for the retry to be scheduled", || async {
        let stats = get_json(nimbus.admin_url("/v1/queues/_schedule.failing")).await;
        (stats["delayed"] == 1).then_some(())
    })
    .await;
    assert!(
        !nimbus.stderr.text().contains("attempt=2"),
        "retried before the backoff passed"
    );
    advance(&nimbus, 5000).await;
    nimbus
        .stderr
        .wait_for("with the retry", |l| {
            l.contains("attempt=2") && l.contains("source=nimbus:schedule/failing")
        })
        .await;
    let records = until("for the failure record", || async {
        let page = get_json(nimbus.admin_url("/v1/queues/failed/messages")).await;
        let found = page["messages"].as_array().cloned().unwrap_or_default();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(records.len(), 1);
    let record: Value = serde_json::from_str(records[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(record["condition"], "RetriesExhausted");
    assert_eq!(record["attempts"], 2);
    assert_eq!(record["function"], "worker");
    assert_eq!(record["event_type"], Value::Null);
    assert!(recorded_ticks(&nimbus, "done").await.is_empty());
}

#[tokio::test]
async fn a_tick_older_than_max_event_age_goes_to_on_failure_without_running_again() {
    // The retry waits 2 minutes by the store's clock; by then the tick is
    // older than max_event_age_s.
    let app = app(
        "aged",
        "name = \"fail-aged\"\ncron = \"* * * * *\"\nmax_event_age_s = 60\nretry_backoff = { initial_ms = 120000, max_ms = 120000 }\non_failure = \"queue:failed\"",
    );
    let nimbus = start_at(&app, T0).await;
    advance(&nimbus, MINUTE).await;
    until(
        "for the failed first attempt to wait out its backoff",
        || async {
            let stats = get_json(nimbus.admin_url("/v1/queues/_schedule.fail-aged")).await;
            (stats["delayed"] == 1).then_some(())
        },
    )
    .await;
    advance(&nimbus, 2 * MINUTE).await;
    let records = until("for the age record", || async {
        let page = get_json(nimbus.admin_url("/v1/queues/failed/messages")).await;
        let found = page["messages"].as_array().cloned().unwrap_or_default();
        (!found.is_empty()).then_some(found)
    })
    .await;
    let record: Value = serde_json::from_str(records[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(record["condition"], "EventAgeExceeded");
    let tick: Value = serde_json::from_str(record["event"]["data"].as_str().unwrap()).unwrap();
    assert_eq!(tick["scheduled_time"], "2026-01-05T00:01:00.000Z");
    let id = record["event_id"].as_str().unwrap().to_owned();
    let attempts = nimbus
        .stderr
        .snapshot()
        .iter()
        .filter(|l| l.contains("source=nimbus:schedule/fail-aged") && l.contains(&id))
        .count();
    assert_eq!(attempts, 1, "{}", nimbus.stderr.text());
}

#[tokio::test]
async fn ticks_are_batched_by_the_shared_delivery_settings() {
    let app = app(
        "batched",
        "name = \"batched\"\ncron = \"* * * * *\"\nbatch_size = 3\nbatch_window_ms = 60000\nmax_concurrency = 1",
    );
    let nimbus = start_at(&app, T0).await;
    advance(&nimbus, 3 * MINUTE).await;
    let ticks = settled(&nimbus, "batched", "2026-01-05T00:03:00.000Z").await;
    assert_eq!(ticks.len(), 3, "{ticks:?}");
    nimbus
        .stderr
        .wait_for_count("with three delivered ticks", 3, |l| {
            l.contains("source=nimbus:schedule/batched")
        })
        .await;
    let lines: Vec<String> = nimbus
        .stderr
        .snapshot()
        .into_iter()
        .filter(|l| l.contains("source=nimbus:schedule/batched"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("batch=3")), "{lines:?}");
}

#[tokio::test]
async fn schedule_list_shows_the_next_fire_times() {
    let app = app(
        "listing",
        "name = \"nightly\"\ncron = \"0 2 * * *\"\ntimezone = \"Europe/Berlin\"\ncatch_up = \"all\"",
    );
    let server = start_at(&app, T0).await;
    let (admin, dir) = (server.admin.clone(), app.dir.path().to_owned());
    let output = tokio::task::spawn_blocking(move || {
        nimbus(
            &["schedule", "list", "--admin", &admin, "--next", "2"],
            &dir,
        )
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text,
        "nightly -> worker  cron(0 2 * * *)  Europe/Berlin  catch_up=all\n  last fired: never\n  next: 2026-01-05T02:00:00+01:00\n        2026-01-06T02:00:00+01:00\n"
    );
}

#[test]
fn manifest_errors_in_schedules_name_line_and_column() {
    let cases = [
        ("cron = \"61 * * * *\"", "11:8", "is not a cron expression"),
        (
            "cron = \"* * * * *\"\ntimezone = \"Mars/Olympus\"",
            "12:12",
            "is not a known time zone",
        ),
        (
            "cron = \"* * * * *\"\nrate = \"rate(1 minute)\"",
            "12:8",
            "exactly one of `cron`, `rate` and `at`",
        ),
        ("rate = \"rate(0 minutes)\"", "11:8", "is not a rate"),
        (
            "at = \"2026-03-29T02:30:00\"\ntimezone = \"Europe/Berlin\"",
            "11:6",
            "does not exist in Europe/Berlin",
        ),
    ];
    for (lines, at, message) in cases {
        let app = TestApp::new("bad")
            .function("worker", programs::EVENTS, "")
            .route_kind(
                "schedule",
                &format!("name = \"s\"\nfunction = \"worker\"\n{lines}"),
            );
        let manifest = app.write();
        let output = nimbus(&["validate", manifest.to_str().unwrap()], app.dir.path());
        let err = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("nimbus.toml:{at}")) && err.contains(message),
            "expected {at} `{message}` in:\n{err}"
        );
    }
}

#[test]
fn up_refuses_a_schedule_of_an_http_function() {
    let app = TestApp::new("httpsched")
        .function("web", programs::HELLO, "")
        .route_kind(
            "schedule",
            "name = \"s\"\nfunction = \"web\"\ncron = \"* * * * *\"",
        );
    let manifest = app.write();
    let data_dir = app.data_dir();
    let output = nimbus(
        &[
            "up",
            manifest.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        app.dir.path(),
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("schedule `s` invokes function `web`, which is an HTTP function"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
}

/// Lists and steps follow the daylight-saving rule as single values do: a
/// skipped tick fires once at the end of the gap, a repeated hour's ticks
/// once each; `GET /v1/schedules?next=N` on the test clock shows it.
#[tokio::test]
async fn listed_fire_times_of_lists_and_steps_follow_the_daylight_saving_rule() {
    let app = TestApp::new("dstforms")
        .function("worker", programs::EVENTS, "")
        .route_kind(
            "schedule",
            "function = \"worker\"\nname = \"berlin\"\ncron = \"30 2,14 * * *\"\ntimezone = \"Europe/Berlin\"",
        )
        .route_kind(
            "schedule",
            "function = \"worker\"\nname = \"newyork\"\ncron = \"*/20 1 * * *\"\ntimezone = \"America/New_York\"",
        );
    let next_local = |listing: &Value, name: &str| -> Vec<String> {
        listing["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["next_local"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    };

    // 2026-03-28T12:00:00Z: Berlin skips 02:00-03:00 the next night.
    let nimbus = start_at(&app, 1_774_699_200_000).await;
    let listing = get_json(nimbus.admin_url("/v1/schedules?next=3")).await;
    assert_eq!(
        next_local(&listing, "berlin"),
        [
            "2026-03-28T14:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T14:30:00+02:00"
        ]
    );
    stop(nimbus).await;

    // 2026-10-24T12:00:00Z: Berlin repeats 02:00-03:00 the next night, New
    // York 01:00-02:00 a week later.
    let app = TestApp::new("dstforms-autumn")
        .function("worker", programs::EVENTS, "")
        .route_kind(
            "schedule",
            "function = \"worker\"\nname = \"berlin\"\ncron = \"30 2,14 * * *\"\ntimezone = \"Europe/Berlin\"",
        )
        .route_kind(
            "schedule",
            "function = \"worker\"\nname = \"newyork\"\ncron = \"*/20 1 * * *\"\ntimezone = \"America/New_York\"",
        );
    let nimbus = start_at(&app, 1_792_843_200_000).await;
    let listing = get_json(nimbus.admin_url("/v1/schedules?next=30")).await;
    assert_eq!(
        next_local(&listing, "berlin")[..3],
        [
            "2026-10-24T14:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T14:30:00+01:00"
        ]
    );
    let newyork = next_local(&listing, "newyork");
    let on_the_night: Vec<&str> = newyork
        .iter()
        .map(String::as_str)
        .filter(|t| t.starts_with("2026-11-01"))
        .collect();
    assert_eq!(
        on_the_night,
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:20:00-04:00",
            "2026-11-01T01:40:00-04:00"
        ]
    );
    stop(nimbus).await;
}

/// A schedule a deployment adds exists from when that deployment went
/// live: the ticks before it never fire, whatever the process's age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_added_by_a_deploy_fires_only_the_ticks_after_it_went_live() {
    let without = TestApp::new("deployed-beat").function(
        "worker",
        programs::EVENTS,
        "\n[queue.done]\n[queue.failed]",
    );
    let nimbus = start_at(&without, T0).await;
    advance(&nimbus, 10 * MINUTE).await;
    let with = app("deployed-beat", "name = \"beat\"\ncron = \"* * * * *\"");
    let manifest = support::version(without.dir.path(), "with-beat.toml", &with);
    let output = support::cli(&nimbus, &["deploy", manifest.to_str().unwrap()]).await;
    assert!(output.status.success(), "{output:?}");
    advance(&nimbus, MINUTE).await;
    let ticks = settled(&nimbus, "beat", "2026-01-05T00:11:00.000Z").await;
    assert_eq!(ticks, ["2026-01-05T00:11:00.000Z"]);
}
