//! Databases for tests: a real PostgreSQL server started on loopback in a temporary
//! directory ([`PgServer`]), fresh databases on it or in SQLite files ([`Database`]).
//!
//! The server is PostgreSQL's own `initdb` and `postgres` (Debian's `postgresql` package,
//! which `scripts/test-env.sh` installs; `STRONGROOM_PG_BIN` names another directory).
//! `initdb` refuses to run as root, so as root both run as the `postgres` user. The server
//! runs under a small shell that stops it when its standard input closes, so it stops with
//! the test process however that ends.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{PgOptions, PgStore, SqliteStore, Store, StoreError};

/// The superuser `initdb` creates (trust authentication, loopback only).
pub const PG_USER: &str = "strongroom";

/// A PostgreSQL server of its own, on a loopback port, for as long as this value lives.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Who runs the server: `Some("postgres")` when this process is root.
    run_as: Option<String>,
    port: u16,
    watchdog: Option<Child>,
}

impl std::fmt::Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgServer(127.0.0.1:{})", self.port)
    }
}

/// Where PostgreSQL's server programs are: `STRONGROOM_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
pub fn pg_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("STRONGROOM_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let version = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL's server programs (initdb, postgres) are not installed: run \
         scripts/test-env.sh (it installs Debian's postgresql package), or set \
         STRONGROOM_PG_BIN to the directory that holds them"
            .to_string()
    })
}

fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

impl PgServer {
    /// Makes a cluster in a temporary directory and starts its server.
    pub fn start() -> Result<Self, String> {
        let bin = pg_bin()?;
        let root = output(Command::new("id").arg("-u"))? == "0";
        let run_as = root.then(|| "postgres".to_string());
        let dir = tempfile::Builder::new()
            .prefix("strongroom-pg-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        if let Some(user) = &run_as {
            let uid = output(Command::new("id").args(["-u", user]))
                .map_err(|e| format!("as root the server runs as user {user}: {e}"))?;
            let gid = output(Command::new("id").args(["-g", user]))?;
            let (uid, gid) = (
                uid.parse().map_err(|_| format!("uid {uid:?}"))?,
                gid.parse().map_err(|_| format!("gid {gid:?}"))?,
            );
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.path().display()))?;
        }
        let mut server = Self {
            dir,
            bin,
            run_as,
            port: 0,
            watchdog: None,
        };
        let data = server.data();
        output(
            server
                .command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
                .args(["--no-sync", "--no-instructions"]),
        )?;
        let mut last = String::new();
        for _ in 0..3 {
            server.port = free_port()?;
            match server.run() {
                Ok(()) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command for one of PostgreSQL's programs, as the server's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// Starts the server on `self.port` and waits until it accepts connections.
    fn run(&mut self) -> Result<(), String> {
        let log = self.dir.path().join("server.log");
        // The shell stops the server (fast shutdown: connections are closed, everything
        // committed stays) when a line arrives on its standard input ([`stop`]), or when
        // that input closes without one — this process ended without dropping the server
        // (a static one) — and then removes the directory as well.
        let script = r#"postgres -D "$1" -p "$2" -k "$3" -c listen_addresses=127.0.0.1 \
            -c max_connections=300 >>"$4" 2>&1 &
            pid=$!
            if read -r _; then gone=no; else gone=yes; fi
            kill -INT "$pid" 2>/dev/null
            wait "$pid"
            if [ "$gone" = yes ]; then rm -rf "$3"; fi"#;
        let mut sh = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "sh"]);
                c
            }
            None => Command::new("sh"),
        };
        let path = std::env::var("PATH").unwrap_or_default();
        let child = sh
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(self.data())
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .arg(&log)
            .env("PATH", format!("{}:{path}", self.bin.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting postgres: {e}"))?;
        self.watchdog = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = self
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            let exited = self
                .watchdog
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || Instant::now() > deadline {
                self.stop();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("postgres did not start: {log}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Makes a fresh database with a unique name; returns its URL.
    pub fn create_database(&self) -> Result<String, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        output(self.command("createdb").args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            PG_USER,
            &name,
        ]))?;
        Ok(self.url(&name))
    }

    /// Stops the server (fast shutdown); [`restart`](Self::restart) starts it again with
    /// everything it had committed.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.watchdog.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let _ = child.wait();
        }
    }

    /// Starts a stopped server again on the same port.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.run()
    }

    /// Whether the server is running (this value started it and it has not exited).
    pub fn is_running(&mut self) -> bool {
        self.watchdog
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// The data directory (for a test that looks at the server's log or files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One database under test: open handles on it (each like another replica's), and make
/// it claim another layout.
#[async_trait]
pub trait Database: Send + Sync {
    /// A new handle on the database (migrating it on first open).
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError>;
    /// Makes the database claim layout `layout`, as if another release wrote it.
    async fn set_layout(&self, layout: i64) -> Result<(), StoreError>;
}

/// A SQLite file in a temporary directory.
#[derive(Debug)]
pub struct SqliteDatabase {
    dir: tempfile::TempDir,
}

impl SqliteDatabase {
    /// A fresh, empty file.
    pub fn fresh() -> Result<Self, String> {
        Ok(Self {
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        })
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("strongroom.sqlite")
    }
}

#[async_trait]
impl Database for SqliteDatabase {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        let path = self.path();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        Ok(Arc::new(store))
    }

    async fn set_layout(&self, layout: i64) -> Result<(), StoreError> {
        SqliteStore::set_layout(&self.path(), layout)
    }
}

/// A fresh database on a PostgreSQL server.
#[derive(Debug, Clone)]
pub struct PgDatabase {
    /// Its URL.
    pub url: String,
}

#[async_trait]
impl Database for PgDatabase {
    async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(Arc::new(
            PgStore::connect(PgOptions::from_url(&self.url)?).await?,
        ))
    }

    async fn set_layout(&self, layout: i64) -> Result<(), StoreError> {
        // A plain connection: a store refuses to open a database of a later layout.
        let (client, connection) =
            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        let running = tokio::spawn(connection);
        client
            .execute("UPDATE strongroom_layout SET layout = $1", &[&layout])
            .await?;
        drop(client);
        let _ = running.await;
        Ok(())
    }
}
