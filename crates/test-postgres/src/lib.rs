//! For tests: a private PostgreSQL server, started once per test process from
//! the installed packages (`initdb` in a temporary directory, `fsync=on`,
//! listening only on a unix socket in that directory), and a fresh empty
//! schema for every test that asks. The server stops and its directory goes
//! when the test process ends, however it ends: a watchdog shell waits for
//! the end of a pipe only this process holds.
//!
//! A second server, `tls_server()`, takes TLS connections only, on
//! 127.0.0.1 at a free port, with a certificate for `localhost` signed by a
//! CA made for it (`openssl` on the command line) and SCRAM passwords, for
//! the tests of TLS and of where the password comes from.
//!
//! PostgreSQL refuses to run as root; as root the server runs as the
//! `postgres` user the Debian package creates.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// What to install when the server cannot start.
pub const INSTALL_HINT: &str = "install PostgreSQL: apt-get install postgresql";
/// What to install when the certificates cannot be made.
const OPENSSL_HINT: &str = "install OpenSSL: apt-get install openssl";
/// Ports tried for the TLS server before giving up (another process may
/// take a free port between finding it and the server binding it).
const PORT_ATTEMPTS: usize = 5;

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
    /// The port of its sockets (the unix socket's name has it too).
    port: u16,
    /// Closing it (at process exit) stops the server.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

/// The server of this test process, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server::start().unwrap_or_else(|e| panic!("{e}")))
}

/// The TLS-only server of this test process, started on first use.
pub fn tls_server() -> &'static TlsServer {
    static SERVER: OnceLock<TlsServer> = OnceLock::new();
    SERVER.get_or_init(|| TlsServer::start().unwrap_or_else(|e| panic!("{e}")))
}

impl Server {
    fn start() -> Result<Server, String> {
        let server = Server::init()?;
        server.configure("listen_addresses = ''\n")?;
        server.start_server()?;
        server.psql(&format!("CREATE DATABASE {DATABASE}"), "postgres")?;
        Ok(server)
    }

    /// A new cluster, configured but not started, with a watchdog.
    fn init() -> Result<Server, String> {
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
            chown_to_postgres(&dir)?;
            ["runuser", "-u", "postgres", "--"]
                .map(str::to_owned)
                .to_vec()
        } else {
            Vec::new()
        };
        let data = dir.join("data");
        // The watchdog first, so a failed start still cleans up.
        let watchdog = spawn_watchdog(&dir, &bin, &as_postgres)?;
        let server = Server {
            dir: dir.clone(),
            bin,
            as_postgres,
            port: 5432,
            _watchdog: Mutex::new(watchdog),
        };
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
        server.configure(&format!(
            "fsync = on\nunix_socket_directories = '{}'\n\
             max_connections = 300\nshared_buffers = 128MB\n",
            dir.display()
        ))?;
        Ok(server)
    }

    /// Appends settings to `postgresql.conf` (a later line wins).
    fn configure(&self, settings: &str) -> Result<(), String> {
        append(
            &self.dir.join("data").join("postgresql.conf"),
            &format!("\n# nimbus tests\n{settings}"),
        )
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
        self.psql_output(sql, database).map(drop)
    }

    /// Runs one query in the tests' database and returns its rows, one a
    /// line, columns separated by `|`.
    pub fn query(&self, sql: &str) -> String {
        self.psql_output(sql, DATABASE)
            .unwrap_or_else(|e| panic!("{e}"))
            .trim_end()
            .to_owned()
    }

    fn psql_output(&self, sql: &str, database: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string()])
            .args(["-U", USER, "-d", database, "-c", sql])
            .output()
            .map_err(|e| format!("failed to run psql: {e}; {INSTALL_HINT}"))?;
        if !output.status.success() {
            return Err(format!(
                "psql `{sql}` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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

/// Hands a file to the `postgres` user (when this process is root).
fn chown_to_postgres(path: &Path) -> Result<(), String> {
    let uid = id("-u")?;
    let gid = id("-g")?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("failed to hand {} to postgres: {e}", path.display()))
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

/// A private server taking TLS connections only: on 127.0.0.1 at a free
/// port, `hostssl` with SCRAM passwords in `pg_hba.conf` (no plain TCP),
/// and a certificate naming only `localhost`, signed by a CA of its own.
/// Its unix socket stays for setting it up (`trust`).
#[derive(Debug)]
pub struct TlsServer {
    server: Server,
    password: String,
}

impl TlsServer {
    fn start() -> Result<TlsServer, String> {
        let server = Server::init()?;
        make_certificates(&server.dir, !server.as_postgres.is_empty())?;
        let dir = server.dir.display();
        server.configure(&format!(
            "listen_addresses = '127.0.0.1'\n\
             max_connections = 60\nshared_buffers = 16MB\n\
             ssl = on\nssl_cert_file = '{dir}/server.crt'\nssl_key_file = '{dir}/server.key'\n\
             password_encryption = 'scram-sha-256'\n"
        ))?;
        std::fs::write(
            server.dir.join("data").join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .map_err(|e| format!("failed to write pg_hba.conf: {e}"))?;
        let server = start_on_a_free_port(server)?;
        let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
        server.psql(
            &format!("ALTER ROLE {USER} PASSWORD '{password}'"),
            "postgres",
        )?;
        server.psql(&format!("CREATE DATABASE {DATABASE}"), "postgres")?;
        Ok(TlsServer { server, password })
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The password of the user every URL names.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.server.dir.join("ca.crt")
    }

    /// A CA that signed nothing this server holds (PEM).
    pub fn other_ca_file(&self) -> PathBuf {
        self.server.dir.join("other-ca.crt")
    }

    /// A new, empty schema.
    pub fn fresh_schema(&self) -> String {
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        self.server.sql(&format!("CREATE SCHEMA {schema}"));
        schema
    }

    /// `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE?hostaddr=127.0.0.1&...`
    /// on `schema`: `host` is the name TLS verifies, the connection goes to
    /// 127.0.0.1 whatever it is. Append `&sslmode=...` and the like.
    pub fn url(&self, host: &str, password: Option<&str>, schema: &str) -> String {
        let password = password.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "postgres://{USER}{password}@{host}:{}/{DATABASE}?hostaddr=127.0.0.1\
             &options=-c%20search_path%3D{schema}",
            self.port()
        )
    }

    /// The server itself, for SQL through its unix socket.
    pub fn server(&self) -> &Server {
        &self.server
    }
}

/// Starts `server` on a port free a moment ago, trying another if some
/// other process took it first.
fn start_on_a_free_port(mut server: Server) -> Result<Server, String> {
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("failed to find a free port: {e}"))?
            .port();
        server.port = port;
        server.configure(&format!("port = {port}\n"))?;
        match server.start_server() {
            Ok(()) => return Ok(server),
            Err(e) if e.contains("already in use") => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(format!(
        "no free port for PostgreSQL after {PORT_ATTEMPTS} attempts: {last}"
    ))
}

/// Writes `ca.crt`, `other-ca.crt`, and `server.crt` / `server.key` (for
/// `localhost` only, signed by `ca.crt`) into `dir`, with `openssl`.
fn make_certificates(dir: &Path, as_root: bool) -> Result<(), String> {
    let openssl = |args: &[&str]| -> Result<(), String> {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("failed to run openssl: {e}; {OPENSSL_HINT}"))?;
        if !output.status.success() {
            return Err(format!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    };
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    for (name, subject) in [
        ("ca", "/CN=Nimbus test CA"),
        ("other-ca", "/CN=Nimbus other test CA"),
    ] {
        let (crt, pem) = (format!("{name}.crt"), format!("{name}.key"));
        let mut args = vec!["req", "-x509"];
        args.extend(key);
        args.extend([
            "-nodes", "-keyout", &pem, "-out", &crt, "-days", "2", "-subj", subject,
        ]);
        openssl(&args)?;
    }
    let mut args = vec!["req", "-new"];
    args.extend(key);
    args.extend([
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&args)?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = DNS:localhost\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .map_err(|e| format!("failed to write server.ext: {e}"))?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-set_serial",
        "2",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ])?;
    // PostgreSQL wants its key readable by its own user only.
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("failed to protect {}: {e}", key.display()))?;
    if as_root {
        chown_to_postgres(&key)?;
    }
    Ok(())
}
