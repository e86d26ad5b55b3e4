//! Starts one deployment as replicas the way `make run-cluster` does (through
//! `scripts/run-cluster.sh`, with the debug binaries): PostgreSQL, the mock KMS, three
//! replicas (enclave and proxy each, started again when they die) and HAProxy in front.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bin_dir, fixed_ports, free_port, repo, stop_script, terminate};

/// How many replicas a test cluster has.
pub const REPLICAS: usize = 3;

/// A running cluster; stopped (TERM to run-cluster.sh) on drop.
pub struct Cluster {
    child: Option<Child>,
    /// Its data directory.
    pub data: PathBuf,
    /// HAProxy's base URL: the one URL clients use.
    pub url: String,
    /// Each replica's own base URL (replica `i` is named `r{i+1}`).
    pub replicas: Vec<String>,
}

impl Cluster {
    /// Starts the cluster on `data` and waits until every replica is ready.
    pub fn start(data: &Path) -> Self {
        let http = format!("127.0.0.1:{}", free_port());
        let kms = format!("127.0.0.1:{}", free_port());
        // Replicas and the database restart on their ports: ports no one else takes.
        let first = fixed_ports(REPLICAS as u16);
        let pg = fixed_ports(1);
        let log = std::fs::File::create(data.join("run.log")).unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("scripts/run-cluster.sh"))
            .env("STRONGROOM_SKIP_BUILD", "1")
            .env("STRONGROOM_PROFILE", "debug")
            .env("STRONGROOM_DATA_DIR", data)
            .env("STRONGROOM_HTTP_ADDR", &http)
            .env("STRONGROOM_KMS_ADDR", &kms)
            .env("STRONGROOM_REPLICA_PORT", first.to_string())
            .env("STRONGROOM_REPLICAS", REPLICAS.to_string())
            .env("STRONGROOM_PG_PORT", pg.to_string())
            .env_remove("STRONGROOM_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
            cmd.env("CARGO_TARGET_DIR", t);
        }
        let _ = bin_dir();
        let cluster = Self {
            child: Some(cmd.spawn().unwrap()),
            data: data.to_path_buf(),
            url: format!("http://{http}"),
            replicas: (0..REPLICAS)
                .map(|i| format!("http://127.0.0.1:{}", first + i as u16))
                .collect(),
        };
        cluster.wait_ready(Duration::from_secs(120));
        cluster
    }

    /// Waits until every replica and HAProxy answer `/v1/health` with 200.
    pub fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            let all = self
                .replicas
                .iter()
                .chain([&self.url])
                .all(|u| http_get(u, "/v1/health").is_some_and(|(status, _)| status == 200));
            if all {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "the cluster is not ready after {timeout:?}; run.log:\n{}",
                std::fs::read_to_string(self.data.join("run.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The CLI with `urls` (tried in turn) and the heads kept in `state`, as the
    /// development principal, verifying every answer against the mock image and root.
    pub fn cli(&self, urls: &[&str], state: &Path, args: &[&str]) -> Output {
        let pcrs = self.data.join("mock-pcrs.json");
        let root = self.data.join("mock-nsm/root.pem");
        let mut cmd = Command::new(bin_dir().join("strongroom"));
        for u in urls {
            cmd.arg("--url").arg(u);
        }
        cmd.arg("--expect-pcrs")
            .arg(pcrs)
            .arg("--attestation-root")
            .arg(root)
            .arg("--state-file")
            .arg(state)
            .args(args)
            .env("STRONGROOM_DATA_DIR", &self.data)
            .env_remove("STRONGROOM_PRINCIPAL_KEY")
            .env_remove("STRONGROOM_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// [`Cluster::cli`], expecting success; its JSON.
    pub fn cli_json(&self, urls: &[&str], state: &Path, args: &[&str]) -> Value {
        let out = self.cli(urls, state, args);
        assert!(
            out.status.success(),
            "strongroom {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// SIGKILL to replica `i`'s `strongroom-enclave` or `strongroom-proxy` (run-cluster.sh
    /// starts it again a second later).
    pub fn kill(&self, i: usize, program: &str) {
        let pattern = match program {
            "strongroom-enclave" => format!(
                "strongroom-enclave --listen unix:{}/r{}.sock",
                self.data.display(),
                i + 1
            ),
            _ => format!(
                "strongroom-proxy --listen {}",
                self.replicas[i].trim_start_matches("http://")
            ),
        };
        let out = Command::new("pkill")
            .args(["-KILL", "-f", &pattern])
            .output()
            .unwrap();
        assert!(out.status.success(), "no {program} of replica {i} to kill");
    }

    /// `scripts/pg.sh` on the cluster's database server (`stop`, `start`, `restart`).
    pub fn pg(&self, command: &str) {
        self.pg_sh(&[command]);
    }

    /// Runs SQL on the cluster's database as its superuser (a hostile database's hand).
    pub fn sql(&self, sql: &str) -> String {
        self.pg_sh(&["psql", sql])
    }

    fn pg_sh(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(repo().join("scripts/pg.sh"))
            .arg(self.data.join("pg"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A counter or gauge from replica `i`'s `/metrics`.
    pub fn metric(&self, i: usize, name: &str) -> f64 {
        let (_, body) = http_get(&self.replicas[i], "/metrics").expect("metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in replica {i}'s metrics"))
    }

    fn shutdown(&mut self) {
        if let Some(child) = self.child.take() {
            stop_script(child, "run-cluster.sh", Duration::from_secs(30));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(c) = self.child.take() {
                terminate(&c);
            }
        } else {
            self.shutdown();
        }
    }
}

/// A plain HTTP/1.0 GET on loopback: the status and body, or None if nothing answers.
pub fn http_get(base: &str, path: &str) -> Option<(u16, String)> {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Some((status, body))
}
