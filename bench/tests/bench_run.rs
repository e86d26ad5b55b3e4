//! `strongroom-bench` run for real against a stand-in server in this process that signs
//! with k256 — honestly, with the wrong key, or failing some requests — so a pass means
//! the figures are there and a fail is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};

const KEY_ID: &str = "0123456789abcdef0123456789abcdef";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Signs with the key it announced.
    Honest,
    /// Signs with another key: well-formed answers that do not recover to the key.
    WrongKey,
    /// Answers 503 to one signing request in five.
    Flaky,
}

struct Shared {
    mode: Mode,
    key: SigningKey,
    other: SigningKey,
    signed: AtomicU64,
    destroyed: Mutex<Vec<String>>,
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ready" })).into_response()
}

async fn create(State(s): State<Arc<Shared>>, axum::Json(body): axum::Json<Value>) -> Response {
    assert_eq!(body, json!({ "label": "bench" }));
    let public_key = s.key.verifying_key().to_sec1_point(false);
    let key = json!({
        "id": KEY_ID,
        "label": "bench",
        "curve": "secp256k1",
        "public_key": format!("0x{}", hex::encode(public_key.as_bytes())),
        "address": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
        "created_at": "2026-01-02T03:04:05Z",
    });
    (StatusCode::CREATED, axum::Json(key)).into_response()
}

async fn sign(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    assert_eq!(id, KEY_ID);
    let n = s.signed.fetch_add(1, Ordering::Relaxed);
    if s.mode == Mode::Flaky && n % 5 == 4 {
        let error = json!({ "error": { "code": "not_ready", "message": "flaky" } });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(error)).into_response();
    }
    let digest = hex::decode(body["digest"].as_str().unwrap().strip_prefix("0x").unwrap()).unwrap();
    assert_eq!(digest.len(), 32);
    let signer = if s.mode == Mode::WrongKey {
        &s.other
    } else {
        &s.key
    };
    let (sig, recid) = signer.sign_prehash_recoverable(&digest);
    let rs = sig.to_bytes();
    let v = recid.to_byte();
    axum::Json(json!({
        "signature": format!("0x{}{:02x}", hex::encode(rs), v),
        "r": format!("0x{}", hex::encode(&rs[..32])),
        "s": format!("0x{}", hex::encode(&rs[32..])),
        "v": v,
    }))
    .into_response()
}

async fn destroy(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    s.destroyed.lock().unwrap().push(id.clone());
    axum::Json(json!({ "id": id, "destroyed": true })).into_response()
}

fn spawn_server(mode: Mode) -> (String, Arc<Shared>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Shared {
        mode,
        key: SigningKey::from_slice(&[0x11; 32]).unwrap(),
        other: SigningKey::from_slice(&[0x22; 32]).unwrap(),
        signed: AtomicU64::new(0),
        destroyed: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/keys", post(create))
        .route("/v1/keys/{id}", delete(destroy))
        .route("/v1/keys/{id}/sign/digest", post(sign))
        .with_state(shared.clone());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (format!("http://{addr}"), shared)
}

fn temp_json(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "strongroom-bench-{tag}-{}-{nanos}.json",
        std::process::id()
    ))
}

/// A short run: 1 s baselines, no warm-up, 1 s measured, every signature checked.
fn bench(url: &str, json: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strongroom-bench"));
    for var in [
        "STRONGROOM_URL",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.args([
        "--url",
        url,
        "--clients",
        "2",
        "--duration",
        "1",
        "--warmup",
        "0",
    ])
    .args(["--baseline", "1", "--verify-every", "1", "--json"])
    .arg(json)
    .output()
    .unwrap()
}

fn report(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::remove_file(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn honest_server_passes_with_every_figure() {
    let (url, shared) = spawn_server(Mode::Honest);
    let path = temp_json("honest");
    let out = bench(&url, &path);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Shown with --nocapture.
    println!("{stdout}");
    for needle in ["cores", "ops/s", "p50", "p99", "req/s", "PASS"] {
        assert!(stdout.contains(needle), "{needle} in\n{stdout}");
    }

    let r = report(&path);
    assert_eq!(r["passed"], true);
    assert!(r["setup"]["cores"].as_u64().unwrap() >= 1);
    for floor in ["raw_sign", "crypto_floor", "enclave_path"] {
        assert!(r["baseline"][floor]["ops_per_sec"].as_f64().unwrap() > 0.0);
        assert!(r["baseline"][floor]["mean_us"].as_f64().unwrap() > 0.0);
    }
    let f = &r["full_stack"];
    let ok = f["requests_ok"].as_u64().unwrap();
    assert!(ok > 0);
    assert_eq!(f["errors"], 0);
    assert_eq!(f["signatures"]["checked"].as_u64().unwrap(), ok);
    assert_eq!(f["signatures"]["mismatches"], 0);
    let l = &f["latency"];
    let p = |name: &str| l[name].as_f64().unwrap();
    assert!(0.0 < p("p50_us") && p("p50_us") <= p("p90_us"));
    assert!(p("p90_us") <= p("p99_us") && p("p99_us") <= p("max_us"));
    assert!(f["throughput_rps"].as_f64().unwrap() > 0.0);
    for ratio in ["throughput_vs_raw_sign", "p50_latency_vs_raw_sign"] {
        assert!(r["ratios"][ratio].as_f64().unwrap() > 0.0, "{ratio}");
    }
    if cfg!(target_os = "linux") {
        assert!(r["ratios"]["machine_cpu_vs_crypto_floor"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(*shared.destroyed.lock().unwrap(), vec![KEY_ID.to_string()]);
}

#[test]
fn wrong_signatures_fail_the_run() {
    let (url, _) = spawn_server(Mode::WrongKey);
    let path = temp_json("wrong");
    let out = bench(&url, &path);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stdout).unwrap().contains("FAIL"));
    let r = report(&path);
    assert_eq!(r["passed"], false);
    let checked = r["full_stack"]["signatures"]["checked"].as_u64().unwrap();
    assert!(checked > 0);
    assert_eq!(r["full_stack"]["signatures"]["mismatches"], checked);
    assert_eq!(r["full_stack"]["errors"], checked);
}

#[test]
fn error_answers_fail_the_run() {
    let (url, _) = spawn_server(Mode::Flaky);
    let path = temp_json("flaky");
    let out = bench(&url, &path);
    assert_eq!(out.status.code(), Some(1));
    let r = report(&path);
    assert_eq!(r["passed"], false);
    let failed = r["full_stack"]["errors_by_kind"]["HTTP 503"]
        .as_u64()
        .unwrap();
    assert!(failed > 0);
    assert!(r["full_stack"]["error_rate"].as_f64().unwrap() > 0.0);
    assert!(
        r["full_stack"]["error_examples"]["HTTP 503"]
            .as_str()
            .unwrap()
            .contains("flaky")
    );
}

#[test]
fn unreachable_server_fails_before_measuring() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let path = temp_json("unreachable");
    let out = bench(&url, &path);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&url), "{stderr}");
    assert!(!path.exists(), "no report without a server");
}
