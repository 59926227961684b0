//! The manifest target: `App::parse` on arbitrary text.
//!
//! A rejected manifest must point inside the text and say what is wrong and
//! what to do; an accepted one must hold together (every reference resolves,
//! every limit is in range, no two routes conflict), and parsing is
//! deterministic.

use nimbus_manifest::{App, Destination, Grant, ManifestError, limits};
use std::path::Path;

pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("fuzz/nimbus.toml");
    match App::parse(path, &text) {
        Err(e) => check_error(&text, &e),
        Ok(app) => {
            check_app(&app);
            // Same text, same app: nothing depends on hidden state.
            let again = App::parse(path, &text).expect("the second parse of an accepted manifest");
            assert_eq!(format!("{app:?}"), format!("{again:?}"));
        }
    }
}

fn check_error(text: &str, e: &ManifestError) {
    let ManifestError::Invalid { diagnostics, .. } = e else {
        panic!("parsing text cannot fail to read a file: {e}");
    };
    assert!(!diagnostics.is_empty(), "an error without diagnostics");
    // Locations count lines by `\n` and columns in characters, from one.
    let lines: Vec<&str> = text.split('\n').collect();
    for d in diagnostics {
        let loc = d.location;
        assert!(
            loc.line >= 1 && loc.line <= lines.len(),
            "line {} outside a text of {} lines: {d:?}",
            loc.line,
            lines.len()
        );
        let columns = lines[loc.line - 1].chars().count() + 1;
        assert!(
            loc.column >= 1 && loc.column <= columns,
            "column {} outside line {} of {} characters: {d:?}",
            loc.column,
            loc.line,
            columns - 1
        );
        assert!(!d.message.trim().is_empty(), "empty message: {d:?}");
        assert!(!d.help.trim().is_empty(), "empty help: {d:?}");
    }
    let rendered = e.to_string();
    assert!(rendered.starts_with("error: "), "{rendered}");
    assert!(rendered.contains("fuzz/nimbus.toml:"), "{rendered}");
}

fn check_app(app: &App) {
    for (name, f) in &app.functions {
        assert_eq!(name, &f.name);
        assert!(limits::MEMORY_MB.range().contains(&u64::from(f.memory_mb)));
        assert!(limits::TIMEOUT_MS.range().contains(&f.timeout_ms));
        assert!(
            limits::MAX_CONCURRENCY
                .range()
                .contains(&u64::from(f.max_concurrency))
        );
        assert!(limits::MAX_LOG_BYTES.range().contains(&f.max_log_bytes));
        for grant in &f.grants {
            match grant {
                Grant::QueueSend(queue) => {
                    assert!(app.queues.contains_key(queue), "grant to unknown {queue}")
                }
                Grant::FunctionInvoke(g) => {
                    assert!(app.functions.contains_key(g), "grant to unknown {g}")
                }
                // Secrets are set at runtime; any valid name may be granted.
                Grant::SecretRead(name) => assert!(!name.is_empty()),
                Grant::TableRead(t) | Grant::TableWrite(t) => {
                    assert!(app.tables.contains_key(t), "grant to unknown table {t}")
                }
                Grant::BucketRead { bucket, prefix } | Grant::BucketWrite { bucket, prefix } => {
                    assert!(
                        app.buckets.contains_key(bucket),
                        "grant to unknown {bucket}"
                    );
                    assert!(nimbus_manifest::bucket::check_key_prefix(prefix).is_ok());
                }
            }
        }
        for destination in [&f.async_invoke.on_success, &f.async_invoke.on_failure]
            .into_iter()
            .flatten()
        {
            match destination {
                Destination::Queue(q) => assert!(app.queues.contains_key(q), "{q}"),
                Destination::Function(g) => assert!(app.functions.contains_key(g), "{g}"),
            }
        }
    }
    for trigger in &app.stream_triggers {
        let table = &app.tables[&trigger.table];
        assert!(
            table.stream.is_some(),
            "stream trigger on a table without one"
        );
        assert!(app.functions.contains_key(&trigger.function));
    }
    for (name, q) in &app.queues {
        assert_eq!(name, &q.name);
        assert!(
            limits::VISIBILITY_TIMEOUT_MS
                .range()
                .contains(&q.visibility_timeout_ms)
        );
        assert!(limits::RETENTION_MS.range().contains(&q.retention_ms));
        assert!(limits::DELAY_MS.range().contains(&q.delay_ms));
        assert!(
            limits::MAX_MESSAGE_BYTES
                .range()
                .contains(&q.max_message_bytes)
        );
        assert!(limits::DEDUP_WINDOW_MS.range().contains(&q.dedup_window_ms));
        assert_eq!(q.max_receive_count.is_some(), q.dead_letter_queue.is_some());
        if let Some(dlq) = &q.dead_letter_queue {
            assert!(app.queues.contains_key(dlq), "dead-letter queue {dlq}");
        }
    }
    for t in &app.queue_triggers {
        assert!(app.queues.contains_key(&t.queue), "trigger on {}", t.queue);
        assert!(app.functions.contains_key(&t.function), "{}", t.function);
    }
    for (i, t) in app.http_triggers.iter().enumerate() {
        assert!(app.functions.contains_key(&t.function), "{}", t.function);
        assert!(limits::MAX_BODY_BYTES.range().contains(&t.max_body_bytes));
        // The pattern kept is the one written, and reads back the same.
        let reparsed = nimbus_manifest::RoutePattern::parse(t.route.as_str())
            .expect("an accepted route parses again");
        assert_eq!(reparsed, t.route);
        if let Some(methods) = &t.methods {
            assert!(!methods.is_empty(), "route {} allows no method", t.route);
            for m in methods {
                assert!(
                    !m.is_empty() && m.chars().all(|c| c.is_ascii_uppercase()),
                    "method `{m}` of route {}",
                    t.route
                );
            }
        }
        for earlier in &app.http_triggers[..i] {
            if !earlier.route.same_shape(&t.route) {
                continue;
            }
            let overlap = match (&earlier.methods, &t.methods) {
                (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                _ => true,
            };
            assert!(
                !overlap,
                "routes {} and {} were both accepted but conflict",
                earlier.route, t.route
            );
        }
    }
}
