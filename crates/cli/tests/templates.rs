//! `nimbus new` through the real binary, one test per template: the project
//! it writes builds with its own `build` command (`nimbus build`), `nimbus
//! up` serves it, and one request or one queue message gets the answer the
//! template promises.
//!
//! The Rust guests build into one shared target directory, so wit-bindgen
//! and the other guest crates compile once for both Rust templates. Python
//! templates need componentize-py and the JavaScript one npm; without them
//! they fail (never skip) with the command that installs them.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Nimbus, client, nimbus_bin, until};

/// What installs the Python build tool the templates name.
const COMPONENTIZE_PY_INSTALL: &str = "pip install componentize-py==0.25.1";

/// What installs npm, which fetches ComponentizeJS for the JavaScript
/// template.
const NPM_INSTALL: &str = "apt-get install nodejs npm";

/// One template at a time: each compiles a component (a Python one carries
/// the interpreter, about 18 MB), and two compiling at once on a small CI
/// machine only make both slower.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A project written by `nimbus new` in a fresh directory.
struct Project {
    _root: tempfile::TempDir,
    dir: PathBuf,
}

impl Project {
    fn new(template: &str) -> Project {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        let output = Command::new(nimbus_bin())
            .args(["new", "my-app", "--template", template, "--dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "nimbus new --template {template} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("created app `my-app` from template"),
            "{output:?}"
        );
        Project { _root: root, dir }
    }

    fn manifest(&self) -> PathBuf {
        self.dir.join("nimbus.toml")
    }

    /// Runs `nimbus build` on the project with `path_extra` ahead on PATH.
    fn build(&self, path_extra: Option<&Path>) {
        let mut command = Command::new(nimbus_bin());
        command
            .arg("build")
            .arg(self.manifest())
            .env("CARGO_TARGET_DIR", guest_target_dir());
        // The flags and wrappers of the build running this test are for the
        // host, not for guests.
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_TARGET",
        ] {
            command.env_remove(var);
        }
        if let Some(extra) = path_extra {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let paths = std::iter::once(extra.to_owned()).chain(std::env::split_paths(&path));
            command.env("PATH", std::env::join_paths(paths).unwrap());
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "nimbus build failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    async fn up(&self) -> Nimbus {
        let key = self.dir.join("secrets.key");
        let args = ["--secret-key-file", key.to_str().unwrap()];
        Nimbus::start(&self.manifest(), &self.dir.join("data"), &args).await
    }
}

/// The one target directory both Rust templates build into.
fn guest_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("template-guests")
}

/// The directory holding `componentize-py`: on PATH, else a scripts
/// directory of the `python3` on PATH (where `pip install --user` puts it).
/// Panics with the install command when there is none.
fn componentize_py_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import os, sysconfig; print(sysconfig.get_path('scripts')); \
             print(sysconfig.get_path('scripts', os.name + '_user'))",
        ])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(PathBuf::from)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(scripts)
        .find(|dir| works(&dir.join("componentize-py")))
        .unwrap_or_else(|| {
            panic!(
                "componentize-py is not installed (neither on PATH nor in python3's scripts \
                 directory); the Python templates build with it: {COMPONENTIZE_PY_INSTALL}"
            )
        })
}

/// Panics with the install command when npm is not on PATH.
fn require_npm() {
    let found = Command::new("npm")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "npm is not installed; the js-http template builds with it: {NPM_INSTALL}"
    );
}

/// Whether `program --version` runs (a pyenv shim for a Python without the
/// package is on PATH but fails).
fn works(program: &Path) -> bool {
    program.is_file()
        && Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
}

async fn greets_world(nimbus: &Nimbus) {
    let response = client()
        .get(nimbus.url("/hello/world"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "Hello, world!\n");
}

/// Sends one message to the `tasks` queue and waits for the worker to have
/// recorded it in the `tasks` table under the message id.
async fn records_a_task(nimbus: &Nimbus) {
    let sent: Value = client()
        .post(nimbus.admin_url("/v1/queues/tasks/messages"))
        .body(json!({ "body": "water the plants" }).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = sent["message_id"]
        .as_str()
        .expect("a message id")
        .to_owned();
    let item = until("for the worker to record the task", || async {
        let response = client()
            .get(nimbus.admin_url(&format!("/v1/tables/tasks/items/{id}")))
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => Some(response.json::<Value>().await.unwrap()),
            404 => None,
            status => panic!("reading the task answered {status}"),
        }
    })
    .await;
    assert_eq!(
        item["item"],
        json!({ "id": id, "body": "water the plants" }),
        "{item}"
    );
    nimbus
        .stderr
        .wait_for("with the worker's log line", |l| {
            l.contains(&format!("recorded task {id}: water the plants"))
        })
        .await;
}

#[tokio::test]
async fn rust_http_template_builds_and_answers_a_request() {
    let _one = ONE_AT_A_TIME.lock().await;
    let project = Project::new("rust-http");
    project.build(None);
    greets_world(&project.up().await).await;
}

#[tokio::test]
async fn rust_event_template_builds_and_records_a_queue_message() {
    let _one = ONE_AT_A_TIME.lock().await;
    let project = Project::new("rust-event");
    project.build(None);
    records_a_task(&project.up().await).await;
}

#[tokio::test]
async fn python_http_template_builds_and_answers_a_request() {
    let componentize_py = componentize_py_dir();
    let _one = ONE_AT_A_TIME.lock().await;
    let project = Project::new("python-http");
    project.build(Some(&componentize_py));
    greets_world(&project.up().await).await;
}

#[tokio::test]
async fn python_event_template_builds_and_records_a_queue_message() {
    let componentize_py = componentize_py_dir();
    let _one = ONE_AT_A_TIME.lock().await;
    let project = Project::new("python-event");
    project.build(Some(&componentize_py));
    records_a_task(&project.up().await).await;
}

#[tokio::test]
async fn js_http_template_builds_and_answers_a_request() {
    require_npm();
    let _one = ONE_AT_A_TIME.lock().await;
    let project = Project::new("js-http");
    project.build(None);
    greets_world(&project.up().await).await;
}

/// A Python function using every service `nimbus.py` wraps, each through
/// its grant, with a call outside its grants refused by name.
const EVERY_SERVICE_APP: &str = r#"
import json
from typing import List

import nimbus
from wit_world import exports
from wit_world.imports.types import Event


class Handler(exports.Handler):
    def handle(self, events: List[Event]) -> List[str]:
        seen = {}
        seen["sent"] = len(nimbus.send_message("out", "from python")) > 0
        seen["version"] = nimbus.put_item("tasks", {"id": "t1", "body": "one"})
        try:
            nimbus.put_item("tasks", {"id": "t1", "body": "two"}, if_absent=True)
        except nimbus.Conflict:
            seen["conflict"] = True
        seen["got"] = nimbus.get_item("tasks", "t1").document["body"]
        seen["queried"] = [item.document["id"] for item in nimbus.query_items("tasks", "t1")]
        seen["stored"] = nimbus.put_object("files", "notes/a.txt", "hello", "text/plain").size
        seen["read"] = nimbus.get_object("files", "notes/a.txt").decode()
        seen["listed"] = [info.key for info in nimbus.list_objects("files", "notes/")]
        try:
            nimbus.get_object("files", "notes/missing.txt")
        except nimbus.NotFound:
            seen["missing"] = True
        seen["secret"] = nimbus.get_secret_text("token")
        try:
            nimbus.send_message("elsewhere", "nope")
        except nimbus.AccessDenied as denied:
            seen["denied"] = str(denied)
        seen["removed_object"] = nimbus.delete_object("files", "notes/a.txt")
        seen["removed_item"] = nimbus.delete_item("tasks", "t1")
        nimbus.info("seen " + json.dumps(seen, sort_keys=True))
        return []
"#;

const EVERY_SERVICE_MANIFEST: &str = r#"
[app]
name = "my-app"

[function.worker]
component = "worker.wasm"
build = "componentize-py -d wit -w nimbus:function/event-function componentize app -o worker.wasm"
allow = [
    "queue:out:send", "table:tasks:read", "table:tasks:write",
    "bucket:files:read", "bucket:files:write", "secret:token:read",
]

[queue.tasks]
[queue.out]
[queue.elsewhere]

[table.tasks]
partition_key = "id"

[bucket.files]

[[trigger.queue]]
queue = "tasks"
function = "worker"
"#;

#[tokio::test]
async fn python_functions_reach_every_service_through_their_grants() {
    let componentize_py = componentize_py_dir();
    let _one = ONE_AT_A_TIME.lock().await;
    let project = Project::new("python-event");
    std::fs::write(project.dir.join("app.py"), EVERY_SERVICE_APP).unwrap();
    std::fs::write(project.manifest(), EVERY_SERVICE_MANIFEST).unwrap();
    project.build(Some(&componentize_py));
    let nimbus = project.up().await;
    let set = client()
        .put(nimbus.admin_url("/v1/secrets/token"))
        .body("s3cret")
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{set:?}");
    let sent = client()
        .post(nimbus.admin_url("/v1/queues/tasks/messages"))
        .body(json!({ "body": "go" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    let line = nimbus
        .stderr
        .wait_for("with what the function saw", |l| l.contains("seen {"))
        .await;
    let seen: Value =
        serde_json::from_str(&line[line.find("seen {").unwrap() + 5..line.rfind('}').unwrap() + 1])
            .unwrap();
    assert_eq!(
        seen,
        json!({
            "sent": true,
            "version": 1,
            "conflict": true,
            "got": "one",
            "queried": ["t1"],
            "stored": 5,
            "read": "hello",
            "listed": ["notes/a.txt"],
            "missing": true,
            "secret": "s3cret",
            "denied": seen["denied"],
            "removed_object": true,
            "removed_item": true,
        })
    );
    let denied = seen["denied"].as_str().unwrap();
    assert!(denied.contains("queue:elsewhere:send"), "{denied}");
    let out: Value = client()
        .get(nimbus.admin_url("/v1/queues/out"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(out["visible"], 1, "{out}");
}
