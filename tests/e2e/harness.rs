//! Starts the whole system in mock mode the way `make run` does (through `scripts/run.sh`,
//! with the debug binaries the workspace build made) and drives it with the `strongroom`
//! CLI, as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub mod cluster;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where the workspace build put the binaries.
pub fn bin_dir() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
    let dir = target.join("debug");
    for b in [
        "strongroom",
        "strongroom-enclave",
        "strongroom-proxy",
        "strongroom-mock-kms",
    ] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: build the workspace first (`make test` does)",
            dir.join(b).display()
        );
    }
    dir
}

/// A fresh temporary data directory.
pub fn temp_data(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "strongroom-e2e-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `count` consecutive loopback ports nothing listens on, below Linux's ephemeral range
/// (32768 and up): a server that stops and starts again on one of them cannot find it
/// taken by some other process's outgoing connection or `free_port` meanwhile.
pub fn fixed_ports(count: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(31);
    loop {
        let offset = NEXT.fetch_add(count, Ordering::Relaxed).wrapping_add(seed) % 12_000;
        let first = 20_000 + offset;
        let all_free =
            (first..first + count).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return first;
        }
    }
}

/// A loopback port nothing listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running system; stopped (TERM to run.sh) on drop.
pub struct Stack {
    child: Option<Child>,
    /// Its data directory.
    pub data: PathBuf,
    /// The proxy's base URL.
    pub url: String,
}

impl Stack {
    /// Starts the system on `data` with extra environment, without waiting for readiness.
    pub fn start(data: &Path, env: &[(&str, &str)]) -> Self {
        let http = format!("127.0.0.1:{}", free_port());
        let kms = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(data.join("run.log")).unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("scripts/run.sh"))
            .env("STRONGROOM_SKIP_BUILD", "1")
            .env("STRONGROOM_PROFILE", "debug")
            .env("STRONGROOM_DATA_DIR", data)
            .env("STRONGROOM_HTTP_ADDR", &http)
            .env("STRONGROOM_KMS_ADDR", &kms)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
            cmd.env("CARGO_TARGET_DIR", t);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let _ = bin_dir();
        Self {
            child: Some(cmd.spawn().unwrap()),
            data: data.to_path_buf(),
            url: format!("http://{http}"),
        }
    }

    /// Starts the system and waits until the enclave is unsealed.
    pub fn start_ready(data: &Path) -> Self {
        let stack = Self::start(data, &[]);
        stack.wait_for(Duration::from_secs(60), |status, _, _| status == Some(0));
        stack
    }

    /// Polls `strongroom health` until `done(exit code, stdout JSON, stderr)` holds; panics
    /// with the log on timeout. Returns the last stderr.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(Option<i32>, &Value, &str) -> bool,
    ) -> String {
        let start = Instant::now();
        loop {
            let out = self.cli(&["health"]);
            let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if done(out.status.code(), &json, &stderr) {
                return stderr;
            }
            if start.elapsed() > timeout {
                panic!(
                    "system not as expected after {timeout:?}; last health: {} {}\nrun.log:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    std::fs::read_to_string(self.data.join("run.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs the `strongroom` CLI against this system, as the development principal (the
    /// CLI's default in mock mode: `DATA/dev/principal.key`).
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_input(args, None)
    }

    /// Runs the CLI with `input` on its standard input.
    pub fn cli_with_input(&self, args: &[&str], input: Option<&[u8]>) -> Output {
        use std::io::Write;
        let mut child = Command::new(bin_dir().join("strongroom"))
            .arg("--url")
            .arg(&self.url)
            .args(args)
            .env("STRONGROOM_DATA_DIR", &self.data)
            // The heads this stack's answers named, kept apart from every other test's.
            .env("STRONGROOM_STATE_FILE", self.data.join("client-heads.json"))
            .env_remove("STRONGROOM_PRINCIPAL_KEY")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(bytes) = input {
            stdin.write_all(bytes).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// A development key file under the data directory (`admin-1.key`, `principal.key`…).
    pub fn dev_key(&self, name: &str) -> String {
        self.data.join("dev").join(name).display().to_string()
    }

    /// Runs the CLI, expecting success, and parses its JSON.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "strongroom {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs the CLI, expecting failure, and returns stderr.
    pub fn cli_err(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            !out.status.success(),
            "strongroom {args:?} unexpectedly succeeded"
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Stops the system as Ctrl-C would (see [`terminate`]), and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Kills one component (`strongroom-enclave` or `strongroom-proxy`) of this stack with
    /// SIGKILL, then waits for run.sh to stop the rest and exit, as it does when a
    /// component dies.
    pub fn crash(mut self, program: &str) {
        let pattern = format!("{program} .*{}", self.data.display());
        let out = Command::new("pkill")
            .args(["-KILL", "-f", &pattern])
            .output()
            .unwrap();
        assert!(out.status.success(), "no {program} of this stack to kill");
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            terminate(&child);
            let _ = child.wait();
            panic!("run.sh did not stop within 30 s after {program} died");
        }
    }

    fn shutdown(&mut self) {
        if let Some(child) = self.child.take() {
            stop_script(child, "run.sh", Duration::from_secs(20));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.shutdown();
        } else if let Some(mut c) = self.child.take() {
            terminate(&c);
            let _ = c.wait();
        }
    }
}

/// Sends a run script TERM and waits `limit` for it to stop everything and exit; kills it
/// and panics if it does not.
pub fn stop_script(mut child: Child, name: &str, limit: Duration) {
    terminate(&child);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{name} did not stop on TERM within {limit:?}");
}

/// A file with a type-2 transfer of `wei` on chain 1 with nonce `nonce`, for `sign tx`.
pub fn transfer_file(dir: &Path, nonce: u64, wei: u128) -> PathBuf {
    let file = dir.join(format!("tx-{nonce}.json"));
    let tx = serde_json::json!({"transaction": {"type": "0x2", "chainId": "0x1",
        "nonce": format!("0x{nonce:x}"), "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "value": format!("0x{wei:x}"), "gas": "0x5208",
        "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00"}});
    std::fs::write(&file, tx.to_string()).unwrap();
    file
}

/// Sends run.sh TERM. It stops everything alike on INT and TERM; TERM, because a test
/// runner started in the background of a non-interactive shell hands its children SIGINT
/// ignored, and bash cannot trap a signal ignored on entry: run.sh and its components would
/// keep running.
pub fn terminate(run_sh: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(run_sh.id().to_string())
        .status();
}

/// Waits up to `timeout` for `child` (spawned with stderr piped) to exit; its exit code
/// (None if a signal ended it) and stderr. Panics if it is still running then.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        assert!(
            start.elapsed() < timeout,
            "process did not exit within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The test virtualenv's Python (cbor2, cryptography, eth-keys), made by scripts/test-env.sh.
pub fn python() -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/test-env.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/test-env.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs `tests/interop/SCRIPT ARGS` with the test virtualenv's Python, expecting success;
/// returns its standard output.
pub fn interop_script(script: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(python())
        .arg(repo().join("tests/interop").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Recovers a signature's signer with eth-keys (Python), independently of our code.
pub fn recover_with_eth_keys(digest_hex: &str, signature_hex: &str) -> Value {
    let out = interop_script("recover_signer.py", &[digest_hex, signature_hex]);
    serde_json::from_slice(&out).unwrap()
}

/// Runs `tests/interop/check_eth_signatures.py` (eth-account) on `request`; returns what it
/// computed: recovered signers, its own signing hashes, decoded transaction fields.
pub fn check_with_eth_account(request: &Value) -> Value {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(repo().join("tests/interop/check_eth_signatures.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(serde_json::to_vec(request).unwrap().as_slice())
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "check_eth_signatures.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
