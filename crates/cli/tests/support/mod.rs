//! Test harness: writes an app's `nimbus.toml`, starts the real `nimbus up`
//! on 127.0.0.1:0, and watches what it prints.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod aws;
pub mod crash;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

/// How long a test waits for something the server should do promptly. A
/// bound on waiting, not a synchronisation sleep: waits end as soon as the
/// awaited line or response arrives.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The admin token test servers run with; `client()` and the CLI runner
/// present it.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// `XDG_CONFIG_HOME` for every `nimbus` the tests run, so default secret
/// key files land in the target directory, never in the user's home.
pub const CONFIG_HOME: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/config");

pub fn nimbus_bin() -> &'static str {
    env!("CARGO_BIN_EXE_nimbus")
}

/// An app directory with a manifest, built up function by function.
pub struct TestApp {
    pub dir: tempfile::TempDir,
    manifest: String,
}

impl TestApp {
    pub fn new(name: &str) -> Self {
        TestApp {
            dir: tempfile::tempdir().unwrap(),
            manifest: format!("[app]\nname = \"{name}\"\n"),
        }
    }

    /// Adds `[function.NAME]` for `component` with extra TOML lines.
    pub fn function(mut self, name: &str, component: &str, extra: &str) -> Self {
        self.manifest.push_str(&format!(
            "\n[function.{name}]\ncomponent = {component:?}\n{extra}\n"
        ));
        self
    }

    /// Adds a `[[trigger.http]]` table with extra TOML lines; the route is
    /// `auth = "public"` unless `extra` sets `auth`.
    pub fn route(mut self, route: &str, function: &str, extra: &str) -> Self {
        let auth = if extra.contains("auth =") {
            ""
        } else {
            "auth = \"public\"\n"
        };
        self.manifest.push_str(&format!(
            "\n[[trigger.http]]\nroute = {route:?}\nfunction = {function:?}\n{auth}{extra}\n"
        ));
        self
    }

    /// Adds a `[[trigger.KIND]]` table with the given TOML lines.
    pub fn route_kind(mut self, kind: &str, body: &str) -> Self {
        self.manifest
            .push_str(&format!("\n[[trigger.{kind}]]\n{body}\n"));
        self
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.path().join("nimbus.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn write(&self) -> PathBuf {
        let path = self.manifest_path();
        std::fs::write(&path, &self.manifest).unwrap();
        path
    }

    /// Writes the manifest and starts `nimbus up` on ephemeral ports.
    pub async fn start(&self) -> Nimbus {
        self.start_with(&[]).await
    }

    pub async fn start_with(&self, extra_args: &[&str]) -> Nimbus {
        let manifest = self.write();
        Nimbus::start(&manifest, &self.data_dir(), extra_args).await
    }
}

/// Lines a process printed, with a way to wait for one.
#[derive(Default)]
pub struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Notify,
}

impl Lines {
    pub fn snapshot(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.snapshot().join("\n")
    }

    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
        self.changed.notify_waiters();
    }

    /// Waits until a line satisfies `pred` and returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_until(what, |lines| lines.iter().find(|l| pred(l)).cloned())
            .await
    }

    /// Waits until `count` lines satisfy `pred`.
    pub async fn wait_for_count(&self, what: &str, count: usize, pred: impl Fn(&str) -> bool) {
        self.wait_until(what, |lines| {
            (lines.iter().filter(|l| pred(l)).count() >= count).then_some(())
        })
        .await
    }

    /// Waits until `check` finds what it looks for in the lines so far.
    pub async fn wait_until<T>(&self, what: &str, check: impl Fn(&[String]) -> Option<T>) -> T {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(found) = check(&self.lines.lock().unwrap()) {
                    return found;
                }
                notified.await;
            }
        };
        match tokio::time::timeout(PATIENCE, wait).await {
            Ok(found) => found,
            Err(_) => panic!("no line {what} within {PATIENCE:?}; got:\n{}", self.text()),
        }
    }
}

/// A running `nimbus up`.
pub struct Nimbus {
    pub child: Child,
    pub gateway: String,
    pub admin: String,
    pub stdout: Arc<Lines>,
    pub stderr: Arc<Lines>,
}

impl Nimbus {
    pub async fn start(manifest: &Path, data_dir: &Path, extra_args: &[&str]) -> Nimbus {
        let mut command = Command::new(nimbus_bin());
        command
            .arg("up")
            .arg(manifest)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--admin-token", ADMIN_TOKEN])
            .args(extra_args);
        Nimbus::spawn(command).await
    }

    /// Runs `command` (a `nimbus up` without listen addresses) on ephemeral
    /// ports and waits until it reports both listeners.
    pub async fn spawn(mut command: Command) -> Nimbus {
        if !command
            .as_std()
            .get_envs()
            .any(|(key, _)| key == "XDG_CONFIG_HOME")
        {
            command.env("XDG_CONFIG_HOME", CONFIG_HOME);
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .env("NIMBUS_LOG", "info,nimbus_engine=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("failed to start nimbus");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let started = async {
            let admin = stdout
                .wait_for("announcing the admin listener", |l| {
                    l.starts_with("admin listening on ")
                })
                .await;
            let gateway = stdout
                .wait_for("announcing the gateway", |l| {
                    l.starts_with("gateway listening on ")
                })
                .await;
            (gateway, admin)
        };
        let (gateway, admin) = tokio::select! {
            addrs = started => addrs,
            status = child.wait() => panic!("nimbus up exited early ({status:?}):\n{}", stderr.text()),
        };
        Nimbus {
            child,
            gateway: gateway
                .trim_start_matches("gateway listening on ")
                .to_owned(),
            admin: admin.trim_start_matches("admin listening on ").to_owned(),
            stdout,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    /// Sends SIGTERM, as a supervisor would.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("nimbus is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.unwrap().code(),
            Err(_) => panic!(
                "nimbus did not exit within {PATIENCE:?}:\n{}",
                self.stderr.text()
            ),
        }
    }
}

pub fn collect(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Lines> {
    let lines = Arc::new(Lines::default());
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.push(line);
        }
    });
    lines
}

/// An HTTP client that presents [`ADMIN_TOKEN`] (functions behind the
/// gateway just see one more header).
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Polls `check` until it finds what it looks for, within [`PATIENCE`]; for
/// state only visible through an API (a queue's counts, say). Each look is a
/// real request; the short pause between looks only spaces them out.
pub async fn until<T, F: Future<Output = Option<T>>>(what: &str, check: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The history's record of invocation `id` (`GET /v1/invocations/ID`),
/// once it is stored (records are written in batches after the invocation
/// answers).
pub async fn invocation_record(nimbus: &Nimbus, id: &str) -> serde_json::Value {
    let url = nimbus.admin_url(&format!("/v1/invocations/{id}"));
    until("for the invocation record", || async {
        let response = client().get(&url).send().await.unwrap();
        match response.status().as_u16() {
            200 => Some(response.json().await.unwrap()),
            404 => None,
            other => panic!("GET {url} answered {other}"),
        }
    })
    .await
}

/// GETs `url` (presenting the admin token) and parses the JSON answer.
pub async fn get_json(url: impl reqwest::IntoUrl) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Sends `request` as raw bytes on a fresh connection to `host` and returns
/// everything the server writes back before closing: for requests an HTTP
/// client would refuse to send or would normalise.
pub async fn raw_request(host: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// GETs `url` and returns the body text, whatever the status.
pub async fn get_text(url: String) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The invocation id Nimbus put on a function's response.
pub fn invocation_id(response: &reqwest::Response) -> String {
    response.headers()["x-nimbus-invocation-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Runs the nimbus binary to completion with `args`.
pub fn nimbus(args: &[&str], cwd: &Path) -> std::process::Output {
    std::process::Command::new(nimbus_bin())
        .args(args)
        .env("NIMBUS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("XDG_CONFIG_HOME", CONFIG_HOME)
        .current_dir(cwd)
        .output()
        .expect("failed to run nimbus")
}

/// Writes `app`'s manifest as `name` in `dir` (another version's
/// directory), so versions of one app share it.
pub fn version(dir: &Path, name: &str, app: &TestApp) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(app.write(), &path).unwrap();
    path
}

/// Runs `nimbus ARGS --admin ADMIN` against `nimbus`, off the async threads.
pub async fn cli(nimbus: &Nimbus, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--admin".to_owned(), nimbus.admin.clone()]);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = all.iter().map(String::as_str).collect();
        self::nimbus(&args, Path::new("/"))
    })
    .await
    .unwrap()
}

/// A self-signed certificate for 127.0.0.1, made with openssl.
pub fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test certificate: apt-get install openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (
        cert.to_str().unwrap().to_owned(),
        key.to_str().unwrap().to_owned(),
    )
}
