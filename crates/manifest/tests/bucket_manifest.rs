//! `[bucket.NAME]`, `[[trigger.object]]` and bucket grants: bad ones are
//! reported at their line and column with a fix, good ones resolve with the
//! shared delivery and retry defaults.

use nimbus_manifest::{App, Grant, ObjectEventKind, delivery, limits};
use std::path::Path;

const FUNCTION: &str = "[app]\nname = \"demo\"\n\n[function.hello]\ncomponent = \"hello.wasm\"\n";

#[test]
fn bad_buckets_triggers_and_grants_are_reported_with_line_column_and_fix() {
    let trigger = "[bucket.b]\n[[trigger.object]]\nbucket = \"b\"\nfunction = \"hello\"\n";
    // (case, manifest after FUNCTION, line, column, fragments)
    let cases: &[(&str, String, usize, usize, &[&str])] = &[
        (
            "invalid bucket name",
            "[bucket.Bad]\n".into(),
            6,
            9,
            &["bucket name `Bad` is not valid", "lowercase"],
        ),
        (
            "object size limit out of range",
            "[bucket.b]\nmax_object_bytes = 0\n".into(),
            7,
            20,
            &["`max_object_bytes` = 0 is out of range", "268435456"],
        ),
        (
            "unknown bucket key",
            "[bucket.b]\nmax_size = 1\n".into(),
            7,
            1,
            &["unknown field `max_size`", "remove the key"],
        ),
        (
            "trigger on an undeclared bucket",
            "[[trigger.object]]\nbucket = \"ghost\"\nfunction = \"hello\"\n".into(),
            7,
            10,
            &["bucket `ghost` is not declared", "[bucket.ghost]"],
        ),
        (
            "trigger without a function",
            "[bucket.b]\n[[trigger.object]]\nbucket = \"b\"\n".into(),
            7,
            1,
            &["[[trigger.object]] has no `function`"],
        ),
        (
            "unknown object event",
            format!("{trigger}events = [\"updated\"]\n"),
            10,
            11,
            &["unknown object event `updated`", "`created` or `removed`"],
        ),
        (
            "prefix no key can have",
            format!("{trigger}prefix = \"/abs\"\n"),
            10,
            10,
            &["`prefix` cannot match any valid key", "starts with `/`"],
        ),
        (
            "failure destination not declared",
            format!("{trigger}on_failure = \"queue:ghost\"\n"),
            10,
            14,
            &["queue `ghost` is not declared"],
        ),
        (
            "retries out of range",
            format!("{trigger}max_retry_attempts = 5\n"),
            10,
            22,
            &["`max_retry_attempts` = 5 is out of range"],
        ),
        (
            "grant to an undeclared bucket",
            "allow = [\"bucket:ghost:read\"]\n".into(),
            6,
            10,
            &[
                "names bucket `ghost`, which is not declared",
                "[bucket.ghost]",
            ],
        ),
        (
            "two object triggers of one function with one id",
            format!(
                "{trigger}[[trigger.object]]\nid = \"b\"\nbucket = \"b\"\nfunction = \"hello\"\n"
            ),
            11,
            6,
            &[
                "function `hello` has two object triggers with the id `b`",
                "its own `id = \"NAME\"`",
            ],
        ),
        (
            "invalid object trigger id",
            format!("{trigger}id = \"Bad\"\n"),
            10,
            6,
            &["object trigger id `Bad` is not valid", "lowercase letter"],
        ),
        (
            "grant with an unknown action",
            "allow = [\"bucket:b:delete\"]\n[bucket.b]\n".into(),
            6,
            10,
            &["buckets have no `delete` permission", "bucket:NAME:write"],
        ),
        (
            "grant with an escaping prefix",
            "allow = [\"bucket:b/../x:read\"]\n[bucket.b]\n".into(),
            6,
            10,
            &["invalid key prefix", "`..` segment"],
        ),
    ];
    for (case, rest, line, column, fragments) in cases {
        let source = format!("{FUNCTION}{rest}");
        let err = App::parse(Path::new("/apps/demo/nimbus.toml"), &source)
            .expect_err("manifest should be rejected");
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
        assert!(
            err.to_string()
                .contains(&format!("/apps/demo/nimbus.toml:{line}:{column}")),
            "{case}"
        );
    }
}

#[test]
fn buckets_object_triggers_and_bucket_grants_resolve_with_defaults() {
    let source = format!(
        "{FUNCTION}allow = [\"bucket:photos:read\", \"bucket:photos/uploads/:write\"]\n[queue.dlq]\n[bucket.photos]\n[bucket.big]\nmax_object_bytes = 1024\n[[trigger.object]]\nbucket = \"photos\"\nfunction = \"hello\"\n[[trigger.object]]\nid = \"pngs\"\nbucket = \"photos\"\nfunction = \"hello\"\nevents = [\"removed\"]\nprefix = \"img/\"\nsuffix = \".png\"\nbatch_size = 5\nmax_retry_attempts = 0\non_failure = \"queue:dlq\"\n"
    );
    let app = App::parse(Path::new("nimbus.toml"), &source).unwrap();
    assert_eq!(
        app.buckets["photos"].max_object_bytes,
        limits::MAX_OBJECT_BYTES.default
    );
    assert_eq!(app.buckets["big"].max_object_bytes, 1024);
    assert_eq!(
        app.functions["hello"].grants,
        [
            Grant::BucketRead {
                bucket: "photos".into(),
                prefix: String::new()
            },
            Grant::BucketWrite {
                bucket: "photos".into(),
                prefix: "uploads/".into()
            },
        ]
    );
    let [all, pngs] = app.object_triggers.as_slice() else {
        panic!("two triggers expected");
    };
    assert_eq!(
        (all.id.as_str(), all.queue.as_str()),
        ("photos", "_object.hello.photos")
    );
    assert_eq!(
        all.events,
        [ObjectEventKind::Created, ObjectEventKind::Removed]
    );
    assert_eq!(all.delivery.batch_size as u64, delivery::BATCH_SIZE.default);
    assert_eq!(
        all.policy.max_retry_attempts as u64,
        delivery::MAX_RETRY_ATTEMPTS.default
    );
    assert_eq!(
        (pngs.id.as_str(), pngs.queue.as_str()),
        ("pngs", "_object.hello.pngs")
    );
    assert_eq!(pngs.delivery.batch_size, 5);
    assert_eq!(pngs.policy.max_retry_attempts, 0);
    assert_eq!(
        pngs.policy.on_failure,
        Some(nimbus_manifest::Destination::Queue("dlq".into()))
    );
    assert!(pngs.matches(ObjectEventKind::Removed, "img/a.png"));
    assert!(!pngs.matches(ObjectEventKind::Created, "img/a.png"));
    assert!(!pngs.matches(ObjectEventKind::Removed, "img/a.jpg"));
    assert!(!pngs.matches(ObjectEventKind::Removed, "doc/a.png"));
}
