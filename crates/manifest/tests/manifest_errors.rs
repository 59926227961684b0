//! A table of bad manifests, each with the line, column and message fragments
//! its error must carry, plus checks on what a good manifest resolves to.

use nimbus_manifest::{
    App, JwtAlgorithm, JwtConfig, JwtKeys, ManifestError, Outbound, Reach, RouteAuth, limits,
};
use std::path::Path;

const FUNCTION: &str = "[app]\nname = \"demo\"\n\n[function.hello]\ncomponent = \"hello.wasm\"\n";

/// `FUNCTION` plus a valid HS256 verifier, ending on line 10.
const JWT: &str = "[app]\nname = \"demo\"\n\n[function.hello]\ncomponent = \"hello.wasm\"\n[auth.jwt]\nalgorithm = \"HS256\"\nissuer = \"i\"\naudience = \"a\"\nsecret_env = \"S\"\n";

fn errors(source: &str) -> ManifestError {
    App::parse(Path::new("/apps/demo/nimbus.toml"), source)
        .expect_err("manifest should be rejected")
}

#[test]
fn bad_manifests_are_reported_with_line_column_and_fix() {
    // (case, manifest, line, column, fragments the message and help contain)
    let cases: &[(&str, String, usize, usize, &[&str])] = &[
        (
            "unknown top-level key",
            format!("{FUNCTION}[database]\nurl = \"x\"\n"),
            6,
            2,
            &["unknown field `database`", "remove the key"],
        ),
        (
            "misspelt function key",
            format!("{FUNCTION}memroy_mb = 64\n"),
            6,
            1,
            &[
                "unknown field `memroy_mb`",
                "memory_mb",
                "correct its spelling",
            ],
        ),
        (
            "unknown trigger kind",
            format!("{FUNCTION}[[trigger.carrier_pigeon]]\nfunction = \"hello\"\n"),
            6,
            11,
            &["unknown field `carrier_pigeon`"],
        ),
        (
            "wrong value type",
            format!("{FUNCTION}memory_mb = \"64\"\n"),
            6,
            13,
            &["invalid type", "type the key expects"],
        ),
        (
            "toml syntax error",
            format!("{FUNCTION}[function.broken\n"),
            6,
            17,
            &["fix the TOML syntax"],
        ),
        (
            "missing app table",
            "[function.hello]\ncomponent = \"h.wasm\"\n".to_owned(),
            1,
            1,
            &["no [app] table", "add `[app]`"],
        ),
        (
            "invalid app name",
            "[app]\nname = \"Hello World\"\n".to_owned(),
            2,
            8,
            &["app name `Hello World` is not valid", "lowercase"],
        ),
        (
            "missing component",
            "[app]\nname = \"demo\"\n[function.hello]\nmemory_mb = 1\n".to_owned(),
            3,
            1,
            &["has no `component`", "add `component = "],
        ),
        (
            "memory out of range",
            format!("{FUNCTION}memory_mb = 0\n"),
            6,
            13,
            &[
                "`memory_mb` = 0 is out of range",
                "from 1 to 4096 (default 128)",
            ],
        ),
        (
            "timeout out of range",
            format!("{FUNCTION}timeout_ms = 900001\n"),
            6,
            14,
            &["`timeout_ms` = 900001 is out of range"],
        ),
        (
            "negative concurrency",
            format!("{FUNCTION}max_concurrency = -1\n"),
            6,
            19,
            &["`max_concurrency` = -1 is out of range"],
        ),
        (
            "log bound out of range",
            format!("{FUNCTION}max_log_bytes = 99999999999\n"),
            6,
            17,
            &["`max_log_bytes`", "out of range"],
        ),
        (
            "bad env name",
            format!("{FUNCTION}env = {{ \"1BAD\" = \"x\" }}\n"),
            6,
            9,
            &["environment variable name `1BAD`"],
        ),
        (
            "invalid function name",
            "[app]\nname = \"demo\"\n[function.Hello]\ncomponent = \"h.wasm\"\n".to_owned(),
            3,
            11,
            &["function name `Hello` is not valid"],
        ),
        (
            "trigger without route",
            format!("{FUNCTION}[[trigger.http]]\nauth = \"public\"\nfunction = \"hello\"\n"),
            6,
            1,
            &["has no `route`"],
        ),
        (
            "route without slash",
            format!(
                "{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"hello\"\nfunction = \"hello\"\n"
            ),
            8,
            9,
            &["must start with `/`", "/users/{id}"],
        ),
        (
            "rest not last",
            format!(
                "{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"/.../x\"\nfunction = \"hello\"\n"
            ),
            8,
            9,
            &["only be the last segment"],
        ),
        (
            "missing function reference",
            format!(
                "{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"/x\"\nfunction = \"nope\"\n"
            ),
            9,
            12,
            &["function `nope` is not declared", "use one of: hello"],
        ),
        (
            "trigger without function",
            format!("{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"/x\"\n"),
            6,
            1,
            &["has no `function`"],
        ),
        (
            "unknown method",
            format!(
                "{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"/x\"\nmethods = [\"GET\", \"FETCH\"]\nfunction = \"hello\"\n"
            ),
            9,
            19,
            &["unknown HTTP method `FETCH`"],
        ),
        (
            "empty methods",
            format!(
                "{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"/x\"\nmethods = []\nfunction = \"hello\"\n"
            ),
            9,
            11,
            &["`methods` is empty"],
        ),
        (
            "outbound host without a scheme",
            format!("{FUNCTION}allowed_outbound_hosts = [\"api.example.com\"]\n"),
            6,
            27,
            &["`api.example.com` has no scheme", "scheme://host[:port]"],
        ),
        (
            "outbound host with a path",
            format!("{FUNCTION}allowed_outbound_hosts = [\"https://example.com/v1\"]\n"),
            6,
            27,
            &[
                "path, query or fragment (`/v1`)",
                "scheme, host and port only",
            ],
        ),
        (
            "outbound host with user information",
            format!("{FUNCTION}allowed_outbound_hosts = [\"https://me@example.com\"]\n"),
            6,
            27,
            &["user information", "credentials belong in request headers"],
        ),
        (
            "outbound host with an unsupported scheme",
            format!("{FUNCTION}allowed_outbound_hosts = [\"ftp://example.com\"]\n"),
            6,
            27,
            &["scheme `ftp`", "`http`, `https` or `*`"],
        ),
        (
            "outbound host with a misplaced wildcard",
            format!("{FUNCTION}allowed_outbound_hosts = [\"https://api.*.com\"]\n"),
            6,
            27,
            &["wildcard `api.*.com`", "`*.example.com`"],
        ),
        (
            "outbound host with a bad port",
            format!("{FUNCTION}allowed_outbound_hosts = [\"https://example.com:99999\"]\n"),
            6,
            27,
            &["port `99999`", "1 to 65535, or `*`"],
        ),
        (
            "outbound IPv6 host without brackets",
            format!("{FUNCTION}allowed_outbound_hosts = [\"http://fe80::1\"]\n"),
            6,
            27,
            &["more than one `:`", "IPv6 addresses in brackets"],
        ),
        (
            "outbound host in a numeric form",
            format!("{FUNCTION}allowed_outbound_hosts = [\"http://2130706433\"]\n"),
            6,
            27,
            &["neither a DNS name nor an IP address", "dotted IPv4"],
        ),
        (
            "private host wildcard for every host",
            format!("{FUNCTION}allowed_private_hosts = [\"http://*:8080\"]\n"),
            6,
            26,
            &["every private address", "name the private host"],
        ),
        (
            "malformed private host",
            format!("{FUNCTION}allowed_private_hosts = [\"localhost:8080\"]\n"),
            6,
            26,
            &["`localhost:8080` has no scheme"],
        ),
        (
            "outbound timeout out of range",
            format!("{FUNCTION}outbound_timeout_ms = 0\n"),
            6,
            23,
            &["`outbound_timeout_ms` = 0 is out of range", "1 to 900000"],
        ),
        (
            "outbound response cap out of range",
            format!("{FUNCTION}max_outbound_response_bytes = -1\n"),
            6,
            31,
            &["`max_outbound_response_bytes` = -1 is out of range"],
        ),
        (
            "body limit out of range",
            format!(
                "{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"/x\"\nfunction = \"hello\"\nmax_body_bytes = 104857601\n"
            ),
            10,
            18,
            &["`max_body_bytes`", "out of range"],
        ),
        (
            "unknown queue key",
            format!("{FUNCTION}[queue.jobs]\nvisibility = 5\n"),
            7,
            1,
            &["unknown field `visibility`", "visibility_timeout_ms"],
        ),
        (
            "queue setting out of range",
            format!("{FUNCTION}[queue.jobs]\nvisibility_timeout_ms = 43200001\n"),
            7,
            25,
            &[
                "`visibility_timeout_ms` = 43200001 is out of range",
                "0 to 43200000",
            ],
        ),
        (
            "undeclared dead-letter queue",
            format!(
                "{FUNCTION}[queue.jobs]\nmax_receive_count = 3\ndead_letter_queue = \"dead\"\n"
            ),
            8,
            21,
            &["dead-letter queue `dead` is not declared", "[queue.dead]"],
        ),
        (
            "queue is its own dead-letter queue",
            format!(
                "{FUNCTION}[queue.jobs]\nmax_receive_count = 3\ndead_letter_queue = \"jobs\"\n"
            ),
            8,
            21,
            &["its own dead-letter queue"],
        ),
        (
            "dead-letter queue without a count",
            format!("{FUNCTION}[queue.dead]\n[queue.jobs]\ndead_letter_queue = \"dead\"\n"),
            8,
            21,
            &["without `max_receive_count`", "add `max_receive_count"],
        ),
        (
            "count without a dead-letter queue",
            format!("{FUNCTION}[queue.jobs]\nmax_receive_count = 3\n"),
            7,
            21,
            &["needs a `dead_letter_queue`"],
        ),
        (
            "invalid queue name",
            format!("{FUNCTION}[queue.Jobs]\n"),
            6,
            8,
            &["queue name `Jobs` is not valid"],
        ),
        (
            "unknown grant",
            format!("{FUNCTION}allow = [\"disk:write\"]\n"),
            6,
            10,
            &["`disk:write` is not a grant", "queue:NAME:send"],
        ),
        (
            "grant naming an undeclared function",
            format!("{FUNCTION}allow = [\"function:ghost:invoke\"]\n"),
            6,
            10,
            &[
                "names function `ghost`, which is not declared",
                "[function.ghost]",
            ],
        ),
        (
            "function grant with an unknown action",
            format!("{FUNCTION}allow = [\"function:hello:delete\"]\n"),
            6,
            10,
            &[
                "functions have no `delete` permission",
                "function:NAME:invoke",
            ],
        ),
        (
            "grant for an undeclared queue",
            format!("{FUNCTION}allow = [\"queue:ghost:send\"]\n"),
            6,
            10,
            &["queue `ghost`, which is not declared"],
        ),
        (
            "grant for an invalid secret name",
            format!("{FUNCTION}allow = [\"secret:9lives:read\"]\n"),
            6,
            10,
            &["names an invalid secret", "starts with a letter"],
        ),
        (
            "secret grant with an unknown action",
            format!("{FUNCTION}allow = [\"secret:db:write\"]\n"),
            6,
            10,
            &["secrets have no `write` permission", "secret:NAME:read"],
        ),
        (
            "queue trigger on an undeclared queue",
            format!("{FUNCTION}[[trigger.queue]]\nqueue = \"ghost\"\nfunction = \"hello\"\n"),
            7,
            9,
            &["queue `ghost` is not declared"],
        ),
        (
            "queue trigger with an unknown key",
            format!(
                "{FUNCTION}[queue.jobs]\n[[trigger.queue]]\nqueue = \"jobs\"\nfunction = \"hello\"\nbatch = 5\n"
            ),
            10,
            1,
            &["unknown field `batch`", "batch_size"],
        ),
        (
            "visibility shorter than the function timeout",
            format!(
                "{FUNCTION}timeout_ms = 5000\n[queue.jobs]\nvisibility_timeout_ms = 1000\n[[trigger.queue]]\nqueue = \"jobs\"\nfunction = \"hello\"\n"
            ),
            10,
            9,
            &[
                "shorter than function `hello`'s timeout_ms = 5000",
                "at least 5000",
            ],
        ),
        (
            "batch size out of range",
            format!(
                "{FUNCTION}[queue.jobs]\n[[trigger.queue]]\nqueue = \"jobs\"\nfunction = \"hello\"\nbatch_size = 0\n"
            ),
            10,
            14,
            &[
                "`batch_size` = 0 is out of range",
                "1 to 10000 (default 10)",
            ],
        ),
        (
            "backoff cap below its start",
            format!(
                "{FUNCTION}[queue.jobs]\n[[trigger.queue]]\nqueue = \"jobs\"\nfunction = \"hello\"\nretry_backoff = {{ initial_ms = 5000, max_ms = 100 }}\n"
            ),
            10,
            17,
            &["`max_ms` = 100 is below `initial_ms` = 5000"],
        ),
        (
            "backoff multiplier out of range",
            format!(
                "{FUNCTION}[queue.jobs]\n[[trigger.queue]]\nqueue = \"jobs\"\nfunction = \"hello\"\nretry_backoff = {{ multiplier = 0.5 }}\n"
            ),
            10,
            32,
            &["`multiplier` = 0.5 is out of range"],
        ),
        (
            "async retries out of range",
            format!("{FUNCTION}[function.hello.async]\nmax_retry_attempts = 3\n"),
            7,
            22,
            &[
                "`max_retry_attempts` = 3 is out of range",
                "0 to 2 (default 2)",
            ],
        ),
        (
            "malformed destination",
            format!("{FUNCTION}[function.hello.async]\non_failure = \"sqs://x\"\n"),
            7,
            14,
            &["`sqs://x` is not a destination", "queue:NAME"],
        ),
        (
            "destination queue not declared",
            format!("{FUNCTION}[function.hello.async]\non_success = \"queue:ghost\"\n"),
            7,
            14,
            &["queue `ghost` is not declared"],
        ),
        (
            "destination function not declared",
            format!("{FUNCTION}[function.hello.async]\non_failure = \"function:ghost\"\n"),
            7,
            14,
            &["function `ghost` is not declared"],
        ),
        (
            "conflicting routes",
            format!(
                "{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"/u/{{id}}\"\nfunction = \"hello\"\n[[trigger.http]]\nauth = \"public\"\nroute = \"/u/{{name}}\"\nmethods = [\"GET\"]\nfunction = \"hello\"\n"
            ),
            12,
            9,
            &[
                "route `/u/{name}` conflicts with route `/u/{id}` on line 8",
                "methods",
            ],
        ),
        (
            "route without auth",
            format!("{FUNCTION}[[trigger.http]]\nroute = \"/x\"\nfunction = \"hello\"\n"),
            6,
            1,
            &["has no `auth`", "auth = \"public\""],
        ),
        (
            "unknown auth mode",
            format!(
                "{FUNCTION}[[trigger.http]]\nroute = \"/x\"\nfunction = \"hello\"\nauth = \"basic\"\n"
            ),
            9,
            8,
            &["`basic` is not a route authentication mode", "\"api_key\""],
        ),
        (
            "jwt route without verifier",
            format!(
                "{FUNCTION}[[trigger.http]]\nroute = \"/x\"\nfunction = \"hello\"\nauth = \"jwt\"\n"
            ),
            9,
            8,
            &["needs an [auth.jwt] table", "issuer"],
        ),
        (
            "scopes on an api_key route",
            format!(
                "{FUNCTION}[[trigger.http]]\nroute = \"/x\"\nfunction = \"hello\"\nauth = \"api_key\"\nscopes = [\"a\"]\n"
            ),
            10,
            10,
            &["`scopes` apply only to `auth = \"jwt\"`"],
        ),
        (
            "scope with a space",
            format!(
                "{JWT}[[trigger.http]]\nroute = \"/x\"\nfunction = \"hello\"\nauth = \"jwt\"\nscopes = [\"a b\"]\n"
            ),
            15,
            11,
            &["scope `a b` is not valid"],
        ),
        (
            "jwt algorithm none",
            format!(
                "{FUNCTION}[auth.jwt]\nalgorithm = \"none\"\nissuer = \"i\"\naudience = \"a\"\nsecret_env = \"S\"\n"
            ),
            7,
            13,
            &["JWT algorithm `none` is not supported", "RS256"],
        ),
        (
            "jwt without audience",
            format!(
                "{FUNCTION}[auth.jwt]\nalgorithm = \"HS256\"\nissuer = \"i\"\nsecret_env = \"S\"\n"
            ),
            6,
            1,
            &["has no `audience`", "other services"],
        ),
        (
            "hs256 with a jwks",
            format!(
                "{FUNCTION}[auth.jwt]\nalgorithm = \"HS256\"\nissuer = \"i\"\naudience = \"a\"\njwks_file = \"k.json\"\n"
            ),
            10,
            13,
            &["HS256 verifies with a shared secret", "secret_env"],
        ),
        (
            "rs256 with a secret",
            format!(
                "{FUNCTION}[auth.jwt]\nalgorithm = \"RS256\"\nissuer = \"i\"\naudience = \"a\"\nsecret_env = \"S\"\n"
            ),
            10,
            14,
            &["RS256 verifies with public keys", "jwks_file"],
        ),
        (
            "two key sources",
            format!(
                "{FUNCTION}[auth.jwt]\nalgorithm = \"RS256\"\nissuer = \"i\"\naudience = \"a\"\njwks_file = \"k.json\"\njwks_url = \"https://x/k\"\n"
            ),
            11,
            12,
            &["conflicts with another key source", "exactly one"],
        ),
        (
            "no key source",
            format!(
                "{FUNCTION}[auth.jwt]\nalgorithm = \"ES256\"\nissuer = \"i\"\naudience = \"a\"\n"
            ),
            6,
            1,
            &["does not say where its keys come from"],
        ),
        (
            "jwks url not http",
            format!(
                "{FUNCTION}[auth.jwt]\nalgorithm = \"ES256\"\nissuer = \"i\"\naudience = \"a\"\njwks_url = \"file:///etc/k\"\n"
            ),
            10,
            12,
            &["is not an http(s) URL"],
        ),
        (
            "leeway out of range",
            format!("{JWT}leeway_s = 301\n"),
            11,
            12,
            &["`leeway_s` = 301 is out of range"],
        ),
    ];
    for (case, source, line, column, fragments) in cases {
        let err = errors(source);
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
        let rendered = err.to_string();
        assert!(
            rendered.contains(&format!("/apps/demo/nimbus.toml:{line}:{column}")),
            "{case}: rendered error names no file position:\n{rendered}"
        );
    }
}

#[test]
fn every_problem_in_a_manifest_is_reported_at_once() {
    let source = format!(
        "{FUNCTION}memory_mb = 0\ntimeout_ms = 0\n[[trigger.http]]\nauth = \"public\"\nroute = \"/x\"\nfunction = \"nope\"\n"
    );
    let err = errors(&source);
    let lines: Vec<usize> = err.diagnostics().iter().map(|d| d.location.line).collect();
    assert_eq!(lines, [6, 7, 11]);
}

#[test]
fn routes_with_disjoint_methods_do_not_conflict() {
    let source = format!(
        "{FUNCTION}[[trigger.http]]\nauth = \"public\"\nroute = \"/u/{{id}}\"\nmethods = [\"GET\"]\nfunction = \"hello\"\n[[trigger.http]]\nauth = \"public\"\nroute = \"/u/{{name}}\"\nmethods = [\"post\"]\nfunction = \"hello\"\n"
    );
    let app = App::parse(Path::new("nimbus.toml"), &source).unwrap();
    assert_eq!(
        app.http_triggers[1].methods.as_deref(),
        Some(&["POST".to_owned()][..])
    );
}

#[test]
fn defaults_apply_and_paths_resolve_against_the_manifest() {
    let source = format!(
        "{FUNCTION}env = {{ GREETING = \"hi\" }}\n[[trigger.http]]\nauth = \"public\"\nroute = \"/hello/{{name}}\"\nfunction = \"hello\"\n"
    );
    let app = App::parse(Path::new("/apps/demo/nimbus.toml"), &source).unwrap();
    assert_eq!(app.name, "demo");
    let f = &app.functions["hello"];
    assert_eq!(f.component, Path::new("/apps/demo/hello.wasm"));
    assert_eq!(f.memory_mb as u64, limits::MEMORY_MB.default);
    assert_eq!(f.timeout_ms, limits::TIMEOUT_MS.default);
    assert_eq!(f.max_concurrency as u64, limits::MAX_CONCURRENCY.default);
    assert_eq!(f.max_log_bytes, limits::MAX_LOG_BYTES.default);
    assert_eq!(f.outbound, Outbound::default());
    assert!(f.outbound.allowed_hosts.is_empty() && f.outbound.private_hosts.is_empty());
    assert_eq!(f.outbound.timeout_ms, limits::OUTBOUND_TIMEOUT_MS.default);
    assert_eq!(
        f.outbound.max_response_bytes,
        limits::MAX_OUTBOUND_RESPONSE_BYTES.default
    );
    assert_eq!(f.env["GREETING"], "hi");
    let t = &app.http_triggers[0];
    assert_eq!(
        (t.route.as_str(), t.methods.clone(), t.max_body_bytes),
        ("/hello/{name}", None, limits::MAX_BODY_BYTES.default)
    );
}

#[test]
fn a_missing_component_file_names_its_line_and_suggests_building() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("nimbus.toml");
    std::fs::write(&manifest, format!("{FUNCTION}build = \"make\"\n")).unwrap();
    let app = App::load(&manifest).unwrap();
    let err = app.check_components().unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!((d.location.line, d.location.column), (5, 13));
    assert!(
        d.message.contains("hello.wasm") && d.message.contains("does not exist"),
        "{}",
        d.message
    );
    assert!(d.help.contains("nimbus build"), "{}", d.help);

    std::fs::write(dir.path().join("hello.wasm"), b"\0asm").unwrap();
    app.check_components().unwrap();
}

#[test]
fn an_unreadable_manifest_says_which_file() {
    let err = App::load(Path::new("/definitely/not/here/nimbus.toml")).unwrap_err();
    assert!(
        err.to_string().contains("/definitely/not/here/nimbus.toml"),
        "{err}"
    );
}

#[test]
fn queues_resolve_with_defaults_and_their_dead_letter_queue() {
    let source = format!(
        "{FUNCTION}[queue.orders]\nvisibility_timeout_ms = 60000\nmax_receive_count = 3\ndead_letter_queue = \"orders-dlq\"\n[queue.orders-dlq]\n"
    );
    let app = App::parse(Path::new("nimbus.toml"), &source).unwrap();
    let orders = &app.queues["orders"];
    assert_eq!(orders.visibility_timeout_ms, 60_000);
    assert_eq!(orders.max_receive_count, Some(3));
    assert_eq!(orders.dead_letter_queue.as_deref(), Some("orders-dlq"));
    let dlq = &app.queues["orders-dlq"];
    assert_eq!(dlq.retention_ms, limits::RETENTION_MS.default);
    assert_eq!(dlq.delay_ms, limits::DELAY_MS.default);
    assert_eq!(dlq.max_message_bytes, limits::MAX_MESSAGE_BYTES.default);
    assert_eq!(dlq.dedup_window_ms, limits::DEDUP_WINDOW_MS.default);
    assert_eq!(
        (dlq.max_receive_count, dlq.dead_letter_queue.clone()),
        (None, None)
    );
}

#[test]
fn queue_triggers_resolve_with_the_shared_delivery_defaults() {
    use nimbus_manifest::delivery;
    let source = format!(
        "{FUNCTION}allow = [\"queue:jobs:send\", \"queue:jobs:send\"]\n[queue.jobs]\n[[trigger.queue]]\nqueue = \"jobs\"\nfunction = \"hello\"\n[[trigger.queue]]\nqueue = \"jobs\"\nfunction = \"hello\"\nbatch_size = 3\nbatch_window_ms = 50\nmax_concurrency = 4\nreport_batch_item_failures = true\nretry_backoff = {{ initial_ms = 10, multiplier = 3.0, max_ms = 100 }}\n"
    );
    let app = App::parse(Path::new("nimbus.toml"), &source).unwrap();
    assert_eq!(
        app.functions["hello"].grants,
        [nimbus_manifest::Grant::QueueSend("jobs".into())]
    );
    let defaults = &app.queue_triggers[0].delivery;
    assert_eq!(defaults.batch_size as u64, delivery::BATCH_SIZE.default);
    assert_eq!(defaults.batch_window_ms, delivery::BATCH_WINDOW_MS.default);
    assert_eq!(
        defaults.max_concurrency as u64,
        delivery::TRIGGER_MAX_CONCURRENCY.default
    );
    assert!(!defaults.report_batch_item_failures);
    assert_eq!(
        defaults.retry_backoff.initial_ms,
        delivery::BACKOFF_INITIAL_MS.default
    );
    let set = &app.queue_triggers[1].delivery;
    assert_eq!(
        (set.batch_size, set.batch_window_ms, set.max_concurrency),
        (3, 50, 4)
    );
    assert!(set.report_batch_item_failures);
    assert_eq!(
        set.retry_backoff,
        nimbus_manifest::Backoff {
            initial_ms: 10,
            multiplier: 3.0,
            max_ms: 100
        }
    );
}

#[test]
fn a_secret_grant_needs_no_declaration_because_secrets_are_set_at_runtime() {
    let source =
        format!("{FUNCTION}allow = [\"secret:db.password:read\", \"secret:api-key:read\"]\n");
    let app = App::parse(Path::new("nimbus.toml"), &source).unwrap();
    assert_eq!(
        app.functions["hello"].grants,
        [
            nimbus_manifest::Grant::SecretRead("api-key".into()),
            nimbus_manifest::Grant::SecretRead("db.password".into()),
        ]
    );
}

#[test]
fn outbound_settings_resolve_into_patterns_and_limits() {
    let source = format!(
        "{FUNCTION}allowed_outbound_hosts = [\"https://api.example.com\", \"http://*.example.com:8080\", \"HTTPS://API.example.com\"]\nallowed_private_hosts = [\"http://localhost:*\"]\noutbound_timeout_ms = 2500\nmax_outbound_response_bytes = 1024\n"
    );
    let app = App::parse(Path::new("nimbus.toml"), &source).unwrap();
    let out = &app.functions["hello"].outbound;
    let written: Vec<String> = out.allowed_hosts.iter().map(|p| p.to_string()).collect();
    // The same destination written twice is kept once.
    assert_eq!(
        written,
        ["https://api.example.com", "http://*.example.com:8080"]
    );
    assert_eq!((out.timeout_ms, out.max_response_bytes), (2500, 1024));
    assert_eq!(
        out.reach("https", "api.example.com", 443),
        Some(Reach::Public)
    );
    assert_eq!(
        out.reach("http", "x.example.com", 8080),
        Some(Reach::Public)
    );
    assert_eq!(out.reach("http", "localhost", 3000), Some(Reach::Private));
    assert_eq!(out.reach("https", "evil.net", 443), None);
}

#[test]
fn route_auth_and_the_jwt_verifier_resolve() {
    let source = format!(
        "{FUNCTION}[auth.jwt]\nalgorithm = \"ES256\"\nissuer = \"https://issuer\"\naudience = \"orders\"\njwks_file = \"keys/jwks.json\"\njwks_refresh_s = 60\n\
         [[trigger.http]]\nroute = \"/a\"\nfunction = \"hello\"\nauth = \"public\"\n\
         [[trigger.http]]\nroute = \"/b\"\nfunction = \"hello\"\nauth = \"api_key\"\n\
         [[trigger.http]]\nroute = \"/c\"\nfunction = \"hello\"\nauth = \"jwt\"\nscopes = [\"orders:write\", \"orders:write\", \"admin\"]\n"
    );
    let app = App::parse(Path::new("/apps/demo/nimbus.toml"), &source).unwrap();
    let auth: Vec<RouteAuth> = app.http_triggers.iter().map(|t| t.auth.clone()).collect();
    assert_eq!(
        auth,
        [
            RouteAuth::Public,
            RouteAuth::ApiKey,
            RouteAuth::Jwt {
                scopes: vec!["orders:write".into(), "admin".into()]
            }
        ]
    );
    assert_eq!(
        app.jwt,
        Some(JwtConfig {
            algorithm: JwtAlgorithm::Es256,
            keys: JwtKeys::JwksFile("/apps/demo/keys/jwks.json".into()),
            issuer: "https://issuer".into(),
            audience: "orders".into(),
            leeway_s: limits::JWT_LEEWAY_S.default,
            jwks_refresh_s: 60,
        })
    );
}

/// `FUNCTION` plus a table without a stream, ending on line 8.
const TABLE: &str = "[app]\nname = \"demo\"\n\n[function.hello]\ncomponent = \"hello.wasm\"\n[table.orders]\npartition_key = \"id\"\nsort_key = \"at\"\n";

#[test]
fn bad_tables_and_stream_triggers_are_reported_with_line_column_and_fix() {
    let cases: &[(&str, String, usize, usize, &[&str])] = &[
        (
            "table without a partition key",
            format!("{FUNCTION}[table.t]\nsort_key = \"x\"\n"),
            6,
            1,
            &["has no `partition_key`", "partition_key = \"ATTRIBUTE\""],
        ),
        (
            "unknown stream view",
            format!("{TABLE}stream = \"everything\"\n"),
            9,
            10,
            &["not a stream view", "new_and_old_images"],
        ),
        (
            "stream trigger on a table without a stream",
            format!("{TABLE}[[trigger.stream]]\ntable = \"orders\"\nfunction = \"hello\"\n"),
            10,
            9,
            &["has no change stream", "stream = \"new_and_old_images\""],
        ),
        (
            "stream trigger with a bad starting position",
            format!(
                "{TABLE}stream = \"keys_only\"\n[[trigger.stream]]\ntable = \"orders\"\nfunction = \"hello\"\nstarting_position = \"yesterday\"\n"
            ),
            13,
            21,
            &["not a starting position", "\"oldest\", \"latest\""],
        ),
        (
            "stream trigger with on_success",
            format!(
                "{TABLE}stream = \"keys_only\"\n[queue.q]\n[[trigger.stream]]\ntable = \"orders\"\nfunction = \"hello\"\non_success = \"queue:q\"\n"
            ),
            14,
            14,
            &["no `on_success`", "on_failure"],
        ),
        (
            "grant on an undeclared table",
            format!("{FUNCTION}allow = [\"table:nope:read\"]\n"),
            6,
            10,
            &["table `nope`", "[table.nope]"],
        ),
        (
            "unknown table permission",
            format!(
                "{TABLE}[function.hello2]\ncomponent = \"x.wasm\"\nallow = [\"table:orders:drop\"]\n"
            ),
            11,
            10,
            &["no `drop` permission", "table:NAME:write"],
        ),
    ];
    for (case, manifest, line, column, fragments) in cases {
        let ManifestError::Invalid { diagnostics, .. } = errors(manifest) else {
            panic!("{case}: not a validation error");
        };
        let d = &diagnostics[0];
        let text = format!("{} {}", d.message, d.help);
        assert_eq!(
            (d.location.line, d.location.column),
            (*line, *column),
            "{case}: {text}"
        );
        for fragment in *fragments {
            assert!(
                text.contains(fragment),
                "{case}: `{fragment}` not in {text}"
            );
        }
    }
}

#[test]
fn tables_and_stream_triggers_resolve_with_the_shared_delivery_defaults() {
    let source = format!(
        "{TABLE}stream = \"new_image\"\n[[trigger.stream]]\ntable = \"orders\"\nfunction = \"hello\"\nstarting_position = \"2026-11-27T09:00:00Z\"\nbisect_batch_on_error = true\n"
    );
    let app = App::parse(Path::new("/apps/demo/nimbus.toml"), &source).unwrap();
    let table = &app.tables["orders"];
    assert_eq!(table.stream.as_deref(), Some("new_image"));
    assert_eq!(table.stream_retention_s, 86_400);
    let trigger = &app.stream_triggers[0];
    assert_eq!(
        trigger.starting_position,
        nimbus_manifest::StartingPosition::At(1_795_770_000_000)
    );
    assert!(trigger.bisect_batch_on_error);
    assert_eq!(trigger.retry, nimbus_manifest::RetryPolicy::defaults());
    assert_eq!(trigger.delivery.batch_size, 10);
}
