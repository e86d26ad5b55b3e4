//! The production transport, AF_VSOCK, as far as a machine without a Nitro hypervisor lets
//! us go, with the real binaries.
//!
//! What runs here: the enclave binds a vsock port (`vsock:any:PORT`, as in the EIF's
//! command) and holds it; the proxy, pointed at an enclave CID nobody answers on, reports
//! that on `/v1/health` and keeps trying, instead of failing or hanging.
//!
//! What cannot run here: a vsock *connection* between two processes. A Nitro parent reaches
//! its enclave through the hypervisor; this kernel has no vsock loopback transport, so a
//! process cannot connect to a port on its own machine. Everything after `connect`/`accept`
//! is the code every other test runs over Unix sockets: both transports sit behind
//! `strongroom_protocol::transport::AnyStream`, with one frame codec, one set of limits and
//! one set of error paths (`protocol/tests/unix_server.rs`, and each end-to-end test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strongroom_e2e::{bin_dir, temp_data, wait_exit};

/// Whether this kernel offers AF_VSOCK (its device node exists only then).
fn vsock_available() -> bool {
    Path::new("/dev/vsock").exists()
}

/// A port unlikely to be taken by another test run at the same time.
fn vsock_port() -> u32 {
    40_000 + std::process::id() % 20_000
}

fn spawn_enclave(listen: &str, data: &Path) -> Child {
    Command::new(bin_dir().join("strongroom-enclave"))
        .args(["--listen", listen, "--nsm"])
        .arg(format!("mock:{}", data.join("nsm").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first stdout line, or None if the process closed stdout (exited) first.
fn first_line(child: &mut Child, timeout: Duration) -> Option<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let n = BufReader::new(stdout).read_line(&mut line).unwrap_or(0);
        let _ = tx.send((n > 0).then_some(line));
    });
    rx.recv_timeout(timeout).expect("no output in time")
}

#[test]
fn enclave_holds_its_vsock_port_or_says_why_not() {
    let data = temp_data("vsock-enclave");
    let listen = format!("vsock:any:{}", vsock_port());
    let mut first = spawn_enclave(&listen, &data);
    let line = first_line(&mut first, Duration::from_secs(20));
    if vsock_available() {
        assert_eq!(
            line.as_deref().map(str::trim),
            Some(format!("enclave listening on {listen}").as_str()),
            "the enclave should listen on {listen}"
        );
        // The port is really held: a second enclave cannot bind it, and says so.
        let mut second = spawn_enclave(&listen, &data);
        let (code, err) = wait_exit(&mut second, Duration::from_secs(20));
        assert_ne!(code, Some(0));
        assert!(err.contains(&format!("listening on {listen}")), "{err}");
        assert!(err.to_lowercase().contains("in use"), "{err}");
        first.kill().unwrap();
        first.wait().unwrap();
    } else {
        // No AF_VSOCK: a clear error naming the address, not a hang or a panic.
        assert_eq!(line, None);
        let (code, err) = wait_exit(&mut first, Duration::from_secs(20));
        assert_ne!(code, Some(0));
        assert!(err.contains(&format!("listening on {listen}")), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn proxy_reports_an_unreachable_vsock_enclave_and_keeps_trying() {
    let data = temp_data("vsock-proxy");
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // CID 16 is what docs/deploy.md gives the enclave; no enclave runs there on this machine.
    let enclave = format!("vsock:16:{}", vsock_port());
    // A first boot needs a genesis document before it tries the enclave.
    let init = Command::new(bin_dir().join("strongroom"))
        .args(["dev", "init", "--dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let mut proxy = Command::new(bin_dir().join("strongroom-proxy"))
        .arg("--listen")
        .arg(http.to_string())
        .args(["--enclave", &enclave, "--db"])
        .arg(data.join("strongroom.sqlite"))
        .arg("--genesis")
        .arg(data.join("dev/genesis.json"))
        // Never reached: the proxy calls KMS only once the enclave answers.
        .args(["--kms-endpoint", "http://127.0.0.1:9"])
        .env("AWS_ACCESS_KEY_ID", "unused")
        .env("AWS_SECRET_ACCESS_KEY", "unused")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{http}");
    let start = Instant::now();
    let detail = loop {
        let out = Command::new(bin_dir().join("strongroom"))
            .args(["--url", &url, "--timeout", "5", "health"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if text.contains(&enclave) {
            assert!(!out.status.success(), "health must fail: {text}");
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the proxy never named the enclave's address: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(detail.contains("cannot connect to the enclave"), "{detail}");
    // Still serving (it retries with backoff) rather than exiting.
    std::thread::sleep(Duration::from_secs(1));
    assert!(proxy.try_wait().unwrap().is_none(), "the proxy exited");
    proxy.kill().unwrap();
    proxy.wait().unwrap();
    std::fs::remove_dir_all(&data).unwrap();
}
