//! For tests: a private PostgreSQL server, started once per test process from
//! the installed packages (`initdb` in a temporary directory, `fsync=on`,
//! listening only on a unix socket in that directory), and a fresh empty
//! schema for every test that asks. The server stops and its directory goes
//! when the test process ends, however it ends: a watchdog shell waits for
//! the end of a pipe only this process holds.
//!
//! PostgreSQL refuses to run as root; as root the server runs as the
//! `postgres` user the Debian package creates.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// What to install when the server cannot start.
pub const INSTALL_HINT: &str = "install PostgreSQL: apt-get install postgresql";

/// The database every test URL names (schemas keep tests apart).
const DATABASE: &str = "nimbus";
/// The superuser `initdb` creates.
const USER: &str = "nimbus";

/// A schema of its own for one test.
#[derive(Debug, Clone)]
pub struct Fresh {
    pub url: String,
    pub schema: String,
}

/// A running private server.
#[derive(Debug)]
pub struct Server {
    dir: PathBuf,
    bin: PathBuf,
    /// `runuser -u postgres --` when this process is root.
    as_postgres: Vec<String>,
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
        let bin = find_bin_dir().ok_or_else(|| {
            format!(
                "PostgreSQL is not installed (initdb is neither on PATH nor in \
                 /usr/lib/postgresql/*/bin): {INSTALL_HINT}"
            )
        })?;
        let dir = tempfile::Builder::new()
            .prefix("nimbus-pg-")
            .tempdir()
            .map_err(|e| format!("failed to create a directory for PostgreSQL: {e}"))?
            .keep();
        let as_postgres = if is_root(&dir)? {
            let uid = id("-u")?;
            let gid = id("-g")?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("failed to hand {} to postgres: {e}", dir.display()))?;
            ["runuser", "-u", "postgres", "--"]
                .map(str::to_owned)
                .to_vec()
        } else {
            Vec::new()
        };
        let data = dir.join("data");
        let server = |watchdog| Server {
            dir: dir.clone(),
            bin: bin.clone(),
            as_postgres: as_postgres.clone(),
            _watchdog: Mutex::new(watchdog),
        };
        // The watchdog first, so a failed start still cleans up.
        let watchdog = spawn_watchdog(&dir, &bin, &as_postgres)?;
        let server = server(watchdog);
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        let conf = format!(
            "\n# nimbus tests\nfsync = on\nlisten_addresses = ''\nunix_socket_directories = '{}'\n\
             max_connections = 300\nshared_buffers = 128MB\n",
            dir.display()
        );
        append(&data.join("postgresql.conf"), &conf)?;
        server.start_server()?;
        server.psql(&format!("CREATE DATABASE {DATABASE}"), "postgres")?;
        Ok(server)
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_server(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_immediately(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &["-D", path_str(&data)?, "-m", "immediate", "-w", "stop"],
        )
    }

    /// The directory holding the server's unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A URL on a new, empty schema of its own (through `search_path`), so
    /// tests sharing the server never see each other's tables.
    pub fn fresh_url(&self) -> String {
        self.fresh().url
    }

    /// A new, empty schema and a URL whose connections use it.
    pub fn fresh(&self) -> Fresh {
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        self.psql(&format!("CREATE SCHEMA {schema}"), DATABASE)
            .unwrap_or_else(|e| panic!("{e}"));
        let url = format!(
            "postgres:///{DATABASE}?host={}&user={USER}&options=-c%20search_path%3D{schema}",
            self.dir.display()
        );
        Fresh { url, schema }
    }

    /// Runs `sql` in the tests' database.
    pub fn sql(&self, sql: &str) {
        self.psql(sql, DATABASE).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs one SQL statement as the superuser.
    pub fn psql(&self, sql: &str, database: &str) -> Result<(), String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-U", USER, "-d", database, "-c", sql])
            .output()
            .map_err(|e| format!("failed to run psql: {e}; {INSTALL_HINT}"))?;
        if !output.status.success() {
            return Err(format!(
                "psql `{sql}` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    /// Runs a server program from the installation, as `postgres` if root.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let program = self.bin.join(program);
        let mut command = match self.as_postgres.split_first() {
            Some((runuser, rest)) => {
                let mut c = Command::new(runuser);
                c.args(rest).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("failed to run {}: {e}; {INSTALL_HINT}", program.display()))?;
        if !output.status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            return Err(format!(
                "{} {} failed: {}{}\n{log}",
                program.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
            ));
        }
        Ok(())
    }
}

/// Debian keeps the server programs off PATH, under the major version.
fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        // psql sits beside initdb in every layout this looks at.
        return Some(
            std::fs::canonicalize(dir.join("initdb"))
                .ok()?
                .parent()?
                .to_owned(),
        );
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root(dir: &Path) -> Result<bool, String> {
    use std::os::unix::fs::MetadataExt as _;
    // A directory this process just made is owned by its effective user.
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    Ok(meta.uid() == 0)
}

fn id(flag: &str) -> Result<u32, String> {
    let output = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| {
            format!("running as root needs the `postgres` user to run PostgreSQL: {INSTALL_HINT}")
        })
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("failed to configure {}: {e}", path.display()))
}

/// A shell that waits for its stdin to close (this process ended), then
/// stops the server and removes its directory.
fn spawn_watchdog(
    dir: &Path,
    bin: &Path,
    as_postgres: &[String],
) -> Result<(Child, ChildStdin), String> {
    let data = dir.join("data");
    let script = format!(
        "cat >/dev/null; {} '{}' -D '{}' -m immediate stop >/dev/null 2>&1; rm -rf '{}'",
        as_postgres.join(" "),
        bin.join("pg_ctl").display(),
        data.display(),
        dir.display(),
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("failed to start the PostgreSQL watchdog: {e}"))?;
    let stdin = child.stdin.take().ok_or("the watchdog has no stdin")?;
    Ok((child, stdin))
}
