//! The web console: through a real browser (Debian's chromium driven by
//! playwright-core, `tests/console/console.test.mjs`), and its guards
//! through plain HTTP: pages and actions without a session are refused, a
//! state-changing call without the session's CSRF token is refused, and no
//! page may run an inline script.

mod support;

use nimbus_test_programs as programs;
use serde_json::json;
use support::{Nimbus, TestApp, client};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Where the screenshots land, for people to look at.
const SHOTS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/console-screenshots");
/// Where playwright-core is installed (from the pinned lockfile).
const NPM_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/console-npm");

fn app() -> TestApp {
    TestApp::new("console")
        .function(
            "printer",
            programs::STDIO,
            "\n[queue.jobs]\ndead_letter_queue = \"jobs-dlq\"\nmax_receive_count = 1\n\n[queue.jobs-dlq]\n\n[bucket.files]\n",
        )
        .route("/print", "printer", "")
        .function("echo", programs::ECHO, "")
        .route("/echo", "echo", "")
        .function(
            "caller",
            programs::EVENTS,
            "allow = [\"function:callee:invoke\"]",
        )
        .function("callee", programs::EVENTS, "")
}

/// Invokes `caller`, which calls `callee`: one trace over two records.
/// Returns the caller's invocation id once both records are stored.
async fn traced_call(nimbus: &Nimbus) -> String {
    let answer: serde_json::Value = client()
        .post(nimbus.admin_url("/v1/functions/caller/invoke"))
        .bearer_auth(support::ADMIN_TOKEN)
        .body("invoke:callee:hi")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = answer["invocation_id"].as_str().unwrap().to_owned();
    let record = support::invocation_record(nimbus, &id).await;
    let trace = record["trace_id"].as_str().unwrap().to_owned();
    support::until("for both records of the trace", || async {
        let page = admin(
            nimbus,
            "GET",
            &format!("/v1/invocations?trace_id={trace}"),
            json!(null),
        )
        .await;
        (page["invocations"].as_array()?.len() == 2).then_some(())
    })
    .await;
    id
}

async fn admin(
    nimbus: &Nimbus,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let response = client()
        .request(method.parse().unwrap(), nimbus.admin_url(path))
        .bearer_auth(support::ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{method} {path}");
    response.json().await.unwrap_or_default()
}

/// A message on `jobs-dlq`, dead-lettered from `jobs` after its one receive.
async fn dead_letter_one(nimbus: &Nimbus) {
    admin(
        nimbus,
        "POST",
        "/v1/queues/jobs/messages",
        json!({ "body": "poison" }),
    )
    .await;
    let receive = json!({ "max_messages": 1, "visibility_timeout_ms": 0 });
    let first = admin(nimbus, "POST", "/v1/queues/jobs/receive", receive.clone()).await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 1);
    // Past max_receive_count: the next receive moves it instead.
    let second = admin(nimbus, "POST", "/v1/queues/jobs/receive", receive).await;
    assert_eq!(second["messages"], json!([]));
    let dlq = admin(nimbus, "GET", "/v1/queues/jobs-dlq", json!(null)).await;
    assert_eq!(dlq["visible"], 1);
}

fn npm_install() {
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console");
    std::fs::create_dir_all(NPM_DIR).unwrap();
    for file in ["package.json", "package-lock.json", "console.test.mjs"] {
        std::fs::copy(format!("{source}/{file}"), format!("{NPM_DIR}/{file}")).unwrap();
    }
    let installed = std::path::Path::new(NPM_DIR).join("node_modules/playwright-core/package.json");
    if installed.exists() {
        return;
    }
    let output = std::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(NPM_DIR)
        .output()
        .expect("npm runs the console test's installs: apt-get install nodejs npm");
    assert!(
        output.status.success(),
        "npm ci: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_person_signs_in_watches_invocations_redrives_and_moves_files() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "the console test drives Debian's chromium: apt-get install chromium"
    );
    npm_install();
    let nimbus = app().start().await;
    dead_letter_one(&nimbus).await;
    let traced = traced_call(&nimbus).await;
    std::fs::create_dir_all(SHOTS).unwrap();
    let upload = tempfile::tempdir().unwrap();
    let file = upload.path().join("report.txt");
    std::fs::write(&file, "quarterly numbers\n".repeat(100)).unwrap();

    let mut command = tokio::process::Command::new("node");
    command
        .arg("console.test.mjs")
        .current_dir(NPM_DIR)
        .env("ADMIN", &nimbus.admin)
        .env("TOKEN", support::ADMIN_TOKEN)
        .env("GATEWAY", &nimbus.gateway)
        .env("SHOTS", SHOTS)
        .env("CHROMIUM", CHROMIUM)
        .env("UPLOAD", &file)
        .env("TRACED", &traced);
    let output = tokio::time::timeout(support::PATIENCE * 3, command.output())
        .await
        .expect("the browser run ends")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("step: done"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for shot in [
        "overview",
        "function",
        "invocation",
        "trace",
        "dead-letter-queue",
        "bucket",
        "usage",
    ] {
        assert!(
            std::path::Path::new(&format!("{SHOTS}/{shot}.png")).exists(),
            "{shot}"
        );
    }
    // What the browser did, as the API sees it: redriven, uploaded.
    let dlq = admin(&nimbus, "GET", "/v1/queues/jobs-dlq", json!(null)).await;
    assert_eq!(dlq["visible"], 0);
    let jobs = admin(&nimbus, "GET", "/v1/queues/jobs", json!(null)).await;
    assert_eq!(jobs["visible"], 1);
}

/// A session cookie from signing in with the admin token, and the page's
/// CSRF token.
async fn sign_in(nimbus: &Nimbus) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed = http
        .post(nimbus.admin_url("/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", support::ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let index = http
        .get(nimbus.admin_url("/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 200);
    let html = index.text().await.unwrap();
    let csrf = html
        .split("name=\"nimbus-csrf\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn pages_and_actions_need_a_session_and_writes_its_csrf_token() {
    let nimbus = app().start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // No session: the page sends you to sign in; the API refuses.
    let page = http
        .get(nimbus.admin_url("/console/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/console/login");
    let purge = http
        .post(nimbus.admin_url("/v1/queues/jobs/purge"))
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), 401);
    // A wrong token starts no session.
    let wrong = http
        .post(nimbus.admin_url("/console/login"))
        .body("token=guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let (cookie, csrf) = sign_in(&nimbus).await;
    // Reads need only the session.
    let read = http
        .get(nimbus.admin_url("/v1/queues/jobs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    // A wrong bearer token is refused whatever cookie comes with it.
    let wrong_bearer = http
        .get(nimbus.admin_url("/v1/queues/jobs"))
        .header("cookie", &cookie)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_bearer.status(), 401);
    // The session's cookie never reaches a function on this host.
    let echoed = http
        .get(nimbus.url("/echo"))
        .header("cookie", format!("theirs=1; {cookie}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        echoed.contains("theirs=1") && !echoed.contains("nimbus_console"),
        "{echoed}"
    );
    // An object is a download that runs nothing, whatever its type.
    let put = http
        .put(nimbus.admin_url("/v1/buckets/files/objects/page.html"))
        .bearer_auth(support::ADMIN_TOKEN)
        .header("content-type", "text/html")
        .body("<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    let object = http
        .get(nimbus.admin_url("/v1/buckets/files/objects/page.html"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(object.status(), 200);
    assert_eq!(object.headers()["content-disposition"], "attachment");
    assert_eq!(object.headers()["x-content-type-options"], "nosniff");
    assert!(
        object.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("sandbox")
    );
    // A forged cross-site action (the cookie, no CSRF token) is refused and
    // changes nothing.
    admin(
        &nimbus,
        "POST",
        "/v1/queues/jobs/messages",
        json!({ "body": "keep" }),
    )
    .await;
    let without_token = http
        .post(nimbus.admin_url("/v1/queues/jobs/purge"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(without_token.status(), 403);
    let forged = http
        .post(nimbus.admin_url("/v1/queues/jobs/purge"))
        .header("cookie", &cookie)
        .header("x-nimbus-csrf", "guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        admin(&nimbus, "GET", "/v1/queues/jobs", json!(null)).await["visible"],
        1
    );
    let logout = http
        .post(nimbus.admin_url("/console/logout"))
        .header("cookie", &cookie)
        .body("csrf=guessed")
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 403);
    // With the token, the same action goes through.
    let purged = http
        .post(nimbus.admin_url("/v1/queues/jobs/purge"))
        .header("cookie", &cookie)
        .header("x-nimbus-csrf", &csrf)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);

    // Every console answer forbids inline scripts.
    for path in ["/console/login", "/console/assets/console.js"] {
        let answer = http.get(nimbus.admin_url(path)).send().await.unwrap();
        let policy = answer.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(
            policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
            "{policy}"
        );
    }
    // Signing out ends the session.
    let out = http
        .post(nimbus.admin_url("/console/logout"))
        .header("cookie", &cookie)
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = http
        .get(nimbus.admin_url("/v1/queues/jobs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}
