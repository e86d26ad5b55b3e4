//! `strongroom-bench` run for real against a stand-in server in this process that checks
//! every POST's request stamp with `strongroom_auth::verify` (so a bench that forgets to
//! stamp, or stamps the wrong path or bytes, fails) and signs with k256 — honestly, with
//! the wrong key, failing some requests, or refusing transfers after a few — so a pass
//! means the figures are there and a fail is reported. The stand-in notes when each
//! signing request arrived, so the rates the bench claims can be checked from its side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};
use strongroom_auth::{Algorithm, PrincipalKey, ReplayCache};

const KEY_ID: &str = "0123456789abcdef0123456789abcdef";
/// Transfers the Refusing stand-in signs before refusing.
const SIGNED_BEFORE_REFUSING: u64 = 10;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Signs with the key it announced.
    Honest,
    /// Signs with another key: well-formed answers that do not recover to the key.
    WrongKey,
    /// Answers 503 to one signing request in five.
    Flaky,
    /// Refuses the first key creation as an enclave just booted does (stamp_before_boot).
    JustBooted,
    /// Refuses transfers with 403 after [`SIGNED_BEFORE_REFUSING`] of them, as the old
    /// enclave did once its velocity ledger was full: now an error like any other.
    Refusing,
}

struct Shared {
    mode: Mode,
    /// The only principal whose stamps pass.
    principal: PrincipalKey,
    replay: Mutex<ReplayCache>,
    key: SigningKey,
    other: SigningKey,
    creations: Mutex<Vec<Instant>>,
    signed: AtomicU64,
    /// Signing requests answered, refused or failed: everything after key creation.
    requests: AtomicU64,
    /// When each signing request arrived.
    arrivals: Mutex<Vec<Instant>>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The enclave's stamp check: the header over exactly this method, path and body. The
/// refusal to answer with, if any.
fn check_stamp(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<Response> {
    let header = headers
        .get("x-strongroom-stamp")
        .map(|v| v.to_str().unwrap());
    let path = uri.path_and_query().unwrap().as_str();
    let request = strongroom_auth::Request {
        method: method.as_str(),
        path,
        body,
    };
    let principal = &s.principal;
    let lookup = |id: &str| (id == principal.id()).then_some(principal);
    let mut cache = s.replay.lock().unwrap();
    strongroom_auth::verify(header, request, lookup, &mut cache, now())
        .err()
        .map(|e| error(StatusCode::UNAUTHORIZED, "unauthenticated", &e.to_string()))
}

async fn health() -> Response {
    axum::Json(json!({ "status": "ready" })).into_response()
}

async fn create(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = check_stamp(&s, &method, &uri, &headers, &body) {
        return refusal;
    }
    let first = {
        let mut creations = s.creations.lock().unwrap();
        creations.push(Instant::now());
        creations.len() == 1
    };
    if s.mode == Mode::JustBooted && first {
        let body = json!({ "error": {
            "code": "stamp_before_boot", "message": "the enclave started moments ago",
            "retry_after": 0,
        }});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, json!({ "label": "bench" }));
    let public_key = s.key.verifying_key().to_sec1_point(false);
    let key = json!({
        "id": KEY_ID,
        "label": "bench",
        "curve": "secp256k1",
        "public_key": format!("0x{}", hex::encode(public_key.as_bytes())),
        "address": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",
        "created_at": "2026-01-02T03:04:05Z",
        "decision": { "effect": "allow", "rule": "dev-create-keys" },
    });
    (StatusCode::CREATED, axum::Json(key)).into_response()
}

fn signer(s: &Shared) -> &SigningKey {
    if s.mode == Mode::WrongKey {
        &s.other
    } else {
        &s.key
    }
}

async fn sign_digest(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    s.arrivals.lock().unwrap().push(Instant::now());
    if let Some(refusal) = check_stamp(&s, &method, &uri, &headers, &body) {
        return refusal;
    }
    assert_eq!(id, KEY_ID);
    let n = s.signed.fetch_add(1, Ordering::Relaxed);
    if s.mode == Mode::Flaky && n % 5 == 4 {
        return error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "flaky");
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let digest = hex::decode(body["digest"].as_str().unwrap().strip_prefix("0x").unwrap()).unwrap();
    assert_eq!(digest.len(), 32);
    let (sig, recid) = signer(&s).sign_prehash_recoverable(&digest);
    let rs = sig.to_bytes();
    let v = recid.to_byte();
    axum::Json(json!({
        "signature": format!("0x{}{:02x}", hex::encode(rs), v),
        "r": format!("0x{}", hex::encode(&rs[..32])),
        "s": format!("0x{}", hex::encode(&rs[32..])),
        "v": v,
        "decision": { "effect": "allow", "rule": "dev-digests" },
    }))
    .into_response()
}

/// RLP of a byte string.
fn rlp_bytes(bytes: &[u8]) -> Vec<u8> {
    match bytes {
        [b] if *b < 0x80 => vec![*b],
        _ => {
            assert!(bytes.len() < 56);
            [&[0x80 + bytes.len() as u8][..], bytes].concat()
        }
    }
}

/// RLP of a list of encoded items (short lists only, as a transfer's are).
fn rlp_list(items: &[Vec<u8>]) -> Vec<u8> {
    let payload = items.concat();
    assert!(payload.len() < 56 + 64);
    if payload.len() < 56 {
        [vec![0xc0 + payload.len() as u8], payload].concat()
    } else {
        [vec![0xf8, payload.len() as u8], payload].concat()
    }
}

/// A JSON quantity ("0x…") as RLP carries it.
fn quantity(tx: &Value, name: &str) -> Vec<u8> {
    let text = tx[name].as_str().unwrap().strip_prefix("0x").unwrap();
    let n = u64::from_str_radix(text, 16).unwrap();
    let bytes = n.to_be_bytes();
    bytes[bytes.iter().take_while(|b| **b == 0).count()..].to_vec()
}

fn trim(bytes: &[u8]) -> Vec<u8> {
    bytes[bytes.iter().take_while(|b| **b == 0).count()..].to_vec()
}

async fn sign_transaction(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.requests.fetch_add(1, Ordering::Relaxed);
    s.arrivals.lock().unwrap().push(Instant::now());
    if let Some(refusal) = check_stamp(&s, &method, &uri, &headers, &body) {
        return refusal;
    }
    assert_eq!(id, KEY_ID);
    let n = s.signed.fetch_add(1, Ordering::Relaxed);
    if s.mode == Mode::Refusing && n >= SIGNED_BEFORE_REFUSING {
        return error(StatusCode::FORBIDDEN, "denied", "velocity limit reached");
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let tx = &body["transaction"];
    assert_eq!(tx["type"], "0x2");
    let to = hex::decode(tx["to"].as_str().unwrap().strip_prefix("0x").unwrap()).unwrap();
    let mut fields = vec![
        rlp_bytes(&quantity(tx, "chainId")),
        rlp_bytes(&quantity(tx, "nonce")),
        rlp_bytes(&quantity(tx, "maxPriorityFeePerGas")),
        rlp_bytes(&quantity(tx, "maxFeePerGas")),
        rlp_bytes(&quantity(tx, "gas")),
        rlp_bytes(&to),
        rlp_bytes(&quantity(tx, "value")),
        rlp_bytes(&[]),
        rlp_list(&[]),
    ];
    let unsigned = [vec![2], rlp_list(&fields)].concat();
    let signing_hash: [u8; 32] = Keccak256::digest(&unsigned).into();
    let (sig, recid) = signer(&s).sign_prehash_recoverable(&signing_hash);
    let rs = sig.to_bytes();
    fields.push(rlp_bytes(&trim(&[recid.to_byte()])));
    fields.push(rlp_bytes(&trim(&rs[..32])));
    fields.push(rlp_bytes(&trim(&rs[32..])));
    let raw = [vec![2], rlp_list(&fields)].concat();
    axum::Json(json!({
        "raw": format!("0x{}", hex::encode(&raw)),
        "hash": format!("0x{}", hex::encode(Keccak256::digest(&raw))),
        "signing_hash": format!("0x{}", hex::encode(signing_hash)),
        "decision": { "effect": "allow", "rule": "dev-transactions" },
    }))
    .into_response()
}

/// A stand-in server under `prefix` (empty, or "/mount") accepting stamps by `principal`.
fn spawn_server(mode: Mode, principal: PrincipalKey, prefix: &str) -> (String, Arc<Shared>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Shared {
        mode,
        principal,
        replay: Mutex::new(ReplayCache::new(1 << 20)),
        key: SigningKey::from_slice(&[0x11; 32]).unwrap(),
        other: SigningKey::from_slice(&[0x22; 32]).unwrap(),
        creations: Mutex::new(Vec::new()),
        signed: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        arrivals: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route(&format!("{prefix}/v1/health"), get(health))
        .route(&format!("{prefix}/v1/keys"), post(create))
        .route(
            &format!("{prefix}/v1/keys/{{id}}/sign/digest"),
            post(sign_digest),
        )
        .route(
            &format!("{prefix}/v1/keys/{{id}}/sign/transaction"),
            post(sign_transaction),
        )
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
    (format!("http://{addr}{prefix}"), shared)
}

fn temp_path(tag: &str, ext: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "strongroom-bench-{tag}-{}-{nanos}.{ext}",
        std::process::id()
    ))
}

/// A fresh principal key, written to a key file as `strongroom dev init` does (PKCS#8
/// PEM); the file and the public key the stand-in accepts.
fn principal(tag: &str, algorithm: Algorithm) -> (PathBuf, PrincipalKey) {
    let key = strongroom_auth::SigningKey::generate(algorithm).unwrap();
    let path = temp_path(tag, "key");
    std::fs::write(&path, key.to_pkcs8_pem().as_bytes()).unwrap();
    (path, key.public())
}

/// A short run: 1 s baselines, no warm-up, 1 s measured (unless `extra` says), every
/// signature checked.
fn bench(url: &str, key: &FsPath, json: &FsPath, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strongroom-bench"));
    for var in [
        "STRONGROOM_URL",
        "STRONGROOM_PRINCIPAL_KEY",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    if !extra.contains(&"--duration") {
        cmd.args(["--duration", "1"]);
    }
    cmd.args(["--url", url, "--clients", "2", "--warmup", "0"])
        .args(["--baseline", "1", "--verify-every", "1", "--principal-key"])
        .arg(key)
        .arg("--json")
        .arg(json)
        .args(extra)
        .output()
        .unwrap()
}

fn report(path: &FsPath) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::remove_file(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn assert_success(out: &Output) -> String {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn honest_server_passes_with_every_figure() {
    let (key_file, public) = principal("honest", Algorithm::Ed25519);
    // Under a mount point: the stamp must cover the path as the server sees it.
    let (url, shared) = spawn_server(Mode::Honest, public.clone(), "/mount");
    let path = temp_path("honest", "json");
    let out = bench(&url, &key_file, &path, &[]);
    std::fs::remove_file(&key_file).unwrap();
    let stdout = assert_success(&out);
    // Shown with --nocapture.
    println!("{stdout}");
    for needle in [
        "cores",
        "ops/s",
        "stamp verify (ed25519)",
        "crypto floor: verify + open + sign + answer signature",
        "p50",
        "p99",
        "req/s",
        "stamp every request",
        "PASS",
    ] {
        assert!(stdout.contains(needle), "{needle} in\n{stdout}");
    }

    let r = report(&path);
    assert_eq!(r["passed"], true);
    assert!(r["setup"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(r["setup"]["payload"], "digest");
    assert_eq!(r["setup"]["principal_key_id"], public.id());
    assert_eq!(r["setup"]["principal_key_algorithm"], "ed25519");
    for floor in [
        "raw_sign",
        "stamp_sign",
        "stamp_verify",
        "crypto_floor",
        "enclave_path",
    ] {
        assert!(r["baseline"][floor]["ops_per_sec"].as_f64().unwrap() > 0.0);
        assert!(r["baseline"][floor]["mean_us"].as_f64().unwrap() > 0.0);
    }
    let b = |name: &str| r["baseline"][name]["mean_us"].as_f64().unwrap();
    // The floor now holds a stamp verification as well as the signature.
    assert!(b("crypto_floor") > b("stamp_verify"));
    let f = &r["full_stack"];
    let ok = f["requests_ok"].as_u64().unwrap();
    assert!(ok > 0);
    assert_eq!(f["errors"], 0);
    assert!(f.get("refused").is_none(), "no expected refusals any more");
    // Not asked for: no memory table, no half load; segments say why there are none.
    assert!(r["memory"].is_null() && r["half_load"].is_null());
    assert_eq!(r["segments"]["segment"], 100_000);
    assert!(r["segments"]["compared"].is_null());
    assert!(r["segments"]["note"].as_str().unwrap().contains("200000"));
    assert_eq!(f["signatures"]["checked"].as_u64().unwrap(), ok);
    assert_eq!(f["signatures"]["mismatches"], 0);
    let l = &f["latency"];
    let p = |name: &str| l[name].as_f64().unwrap();
    assert!(0.0 < p("p50_us") && p("p50_us") <= p("p90_us"));
    assert!(p("p90_us") <= p("p99_us") && p("p99_us") <= p("max_us"));
    assert!(f["throughput_rps"].as_f64().unwrap() > 0.0);
    for ratio in [
        "throughput_vs_raw_sign",
        "throughput_vs_crypto_floor",
        "p50_latency_vs_raw_sign",
    ] {
        assert!(r["ratios"][ratio].as_f64().unwrap() > 0.0, "{ratio}");
    }
    if cfg!(target_os = "linux") {
        assert!(r["ratios"]["machine_cpu_vs_crypto_floor"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(shared.creations.lock().unwrap().len(), 1);
}

#[test]
fn stamps_by_another_principal_are_refused_and_fail_the_run() {
    let (key_file, _) = principal("stranger", Algorithm::Ed25519);
    let (_, accepted) = principal("accepted", Algorithm::Ed25519);
    let (url, shared) = spawn_server(Mode::Honest, accepted, "");
    let path = temp_path("stranger", "json");
    let out = bench(&url, &key_file, &path, &[]);
    std::fs::remove_file(&key_file).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("401") && stderr.contains("not a principal key"),
        "{stderr}"
    );
    assert!(!path.exists(), "no report without a key");
    assert_eq!(shared.requests.load(Ordering::Relaxed), 0);
}

#[test]
fn a_missing_key_file_fails_before_anything_is_sent() {
    let (_, accepted) = principal("absent", Algorithm::Ed25519);
    let (url, shared) = spawn_server(Mode::Honest, accepted, "");
    let path = temp_path("absent", "json");
    let missing = temp_path("absent-file", "key");
    let out = bench(&url, &missing, &path, &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("principal key"), "{stderr}");
    assert!(shared.creations.lock().unwrap().is_empty());
}

#[test]
fn key_creation_waits_out_the_boot_horizon_once() {
    let (key_file, public) = principal("booted", Algorithm::Ed25519);
    let (url, shared) = spawn_server(Mode::JustBooted, public, "");
    let path = temp_path("booted", "json");
    let out = bench(&url, &key_file, &path, &[]);
    std::fs::remove_file(&key_file).unwrap();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("booted moments ago"));
    let creations = shared.creations.lock().unwrap();
    assert_eq!(creations.len(), 2);
    // retry_after 0: the second try comes one second later.
    assert!(creations[1] - creations[0] >= std::time::Duration::from_millis(900));
    assert_eq!(report(&path)["passed"], true);
}

#[test]
fn transactions_pass_with_every_signature_checked() {
    let (key_file, public) = principal("tx", Algorithm::EcdsaP256);
    let (url, shared) = spawn_server(Mode::Honest, public, "");
    let path = temp_path("tx", "json");
    let out = bench(&url, &key_file, &path, &["--payload", "transaction"]);
    std::fs::remove_file(&key_file).unwrap();
    let stdout = assert_success(&out);
    assert!(stdout.contains("stamp verify (ecdsa-p256)"), "{stdout}");
    let r = report(&path);
    assert_eq!(r["setup"]["payload"], "transaction");
    // No budget unless asked: the enclave has no capacity limit for transfers to hit.
    assert!(r["setup"]["max_requests"].is_null());
    let f = &r["full_stack"];
    let ok = f["requests_ok"].as_u64().unwrap();
    assert!(ok > 0);
    assert_eq!(f["budget_exhausted"], false);
    assert_eq!(f["signatures"]["checked"].as_u64().unwrap(), ok);
    assert_eq!(f["signatures"]["mismatches"], 0);
    assert_eq!(shared.requests.load(Ordering::Relaxed), ok);
}

#[test]
fn transactions_by_the_wrong_key_fail_the_run() {
    let (key_file, public) = principal("tx-wrong", Algorithm::Ed25519);
    let (url, _) = spawn_server(Mode::WrongKey, public, "");
    let path = temp_path("tx-wrong", "json");
    let out = bench(&url, &key_file, &path, &["--payload", "transaction"]);
    std::fs::remove_file(&key_file).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let r = report(&path);
    let checked = r["full_stack"]["signatures"]["checked"].as_u64().unwrap();
    assert!(checked > 0);
    assert_eq!(r["full_stack"]["signatures"]["mismatches"], checked);
    assert!(
        r["full_stack"]["signatures"]["first_mismatch"]
            .as_str()
            .unwrap()
            .contains("another public key")
    );
}

#[test]
fn refusals_are_errors_and_the_budget_holds() {
    let (key_file, public) = principal("refusing", Algorithm::Ed25519);
    let (url, shared) = spawn_server(Mode::Refusing, public, "");
    let path = temp_path("refusing", "json");
    // A budget small enough to be spent well within the run even on a slow machine.
    let extra = [
        "--payload",
        "transaction",
        "--max-requests",
        "40",
        "--duration",
        "5",
    ];
    let out = bench(&url, &key_file, &path, &extra);
    std::fs::remove_file(&key_file).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("FAIL") && stdout.contains("HTTP 403"),
        "{stdout}"
    );
    assert!(!stdout.contains("expected refusals"), "{stdout}");
    let r = report(&path);
    assert_eq!(r["passed"], false);
    let f = &r["full_stack"];
    assert_eq!(f["requests_ok"], SIGNED_BEFORE_REFUSING);
    assert_eq!(f["errors"], 40 - SIGNED_BEFORE_REFUSING);
    assert_eq!(f["errors_by_kind"]["HTTP 403"], 40 - SIGNED_BEFORE_REFUSING);
    assert_eq!(f["budget_exhausted"], true);
    assert!(f["seconds"].as_f64().unwrap() < 5.0);
    assert_eq!(shared.requests.load(Ordering::Relaxed), 40);
}

#[test]
fn wrong_signatures_fail_the_run() {
    let (key_file, public) = principal("wrong", Algorithm::Ed25519);
    let (url, _) = spawn_server(Mode::WrongKey, public, "");
    let path = temp_path("wrong", "json");
    let out = bench(&url, &key_file, &path, &[]);
    std::fs::remove_file(&key_file).unwrap();
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
    let (key_file, public) = principal("flaky", Algorithm::Ed25519);
    let (url, _) = spawn_server(Mode::Flaky, public, "");
    let path = temp_path("flaky", "json");
    let out = bench(&url, &key_file, &path, &[]);
    std::fs::remove_file(&key_file).unwrap();
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
    let (key_file, _) = principal("unreachable", Algorithm::Ed25519);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let path = temp_path("unreachable", "json");
    let out = bench(&url, &key_file, &path, &[]);
    std::fs::remove_file(&key_file).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&url), "{stderr}");
    assert!(!path.exists(), "no report without a server");
}

#[test]
fn segments_compare_the_first_and_last_n_of_a_budget() {
    let (key_file, public) = principal("segments-budget", Algorithm::Ed25519);
    let (url, shared) = spawn_server(Mode::Honest, public, "");
    let path = temp_path("segments-budget", "json");
    // No warm-up (see bench()): all 600 are measured, so the last segment is 401–600. The
    // duration only bounds a very slow machine.
    let extra = [
        "--max-requests",
        "600",
        "--segment",
        "200",
        "--duration",
        "60",
    ];
    let out = bench(&url, &key_file, &path, &extra);
    std::fs::remove_file(&key_file).unwrap();
    let stdout = assert_success(&out);
    assert!(stdout.contains("first and last 200 requests"), "{stdout}");
    let r = report(&path);
    assert_eq!(r["full_stack"]["budget_exhausted"], true);
    assert_eq!(shared.requests.load(Ordering::Relaxed), 600);
    let s = &r["segments"];
    assert_eq!(
        (s["segment"].as_u64(), s["completed"].as_u64()),
        (Some(200), Some(600))
    );
    if cfg!(target_os = "linux") {
        let c = &s["compared"];
        assert!(c.is_object(), "{s}");
        assert_eq!(c["last_basis"], "budget_total");
        let span = |w: &Value| (w["from_request"].as_u64(), w["to_request"].as_u64());
        assert_eq!(span(&c["first"]), (Some(1), Some(200)));
        assert_eq!(span(&c["last"]), (Some(401), Some(600)));
        for w in [&c["first"], &c["last"]] {
            assert!(w["seconds"].as_f64().unwrap() > 0.0);
            assert!(w["server_us_per_request"].as_f64().unwrap() >= 0.0);
        }
        assert!(stdout.contains("last / first"), "{stdout}");
    }
}

#[test]
fn segments_of_a_timed_run_use_the_last_complete_one() {
    let (key_file, public) = principal("segments-timed", Algorithm::Ed25519);
    let (url, _) = spawn_server(Mode::Honest, public, "");
    let path = temp_path("segments-timed", "json");
    let out = bench(
        &url,
        &key_file,
        &path,
        &["--segment", "50", "--duration", "2"],
    );
    std::fs::remove_file(&key_file).unwrap();
    assert_success(&out);
    let r = report(&path);
    let s = &r["segments"];
    let completed = s["completed"].as_u64().unwrap();
    assert_eq!(completed, r["full_stack"]["requests_ok"].as_u64().unwrap());
    // Even a slow machine signs 100 in 2 s against the stand-in.
    assert!(completed >= 100, "{completed}");
    if cfg!(target_os = "linux") {
        let c = &s["compared"];
        assert_eq!(c["last_basis"], "last_boundary", "{s}");
        let end = completed / 50 * 50;
        assert_eq!(c["last"]["to_request"], end);
        assert_eq!(c["last"]["from_request"], end - 49);
        assert_eq!(c["first"]["to_request"], 50);
        assert!(s["note"].as_str().unwrap().contains("last complete"));
    }
}

#[test]
fn watched_processes_memory_is_sampled() {
    let (key_file, public) = principal("watch", Algorithm::Ed25519);
    let (url, _) = spawn_server(Mode::Honest, public, "");
    let path = temp_path("watch", "json");
    // A process of our own to watch, alive for the whole run.
    let mut sleeper = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let watched = format!("sleeper={}", sleeper.id());
    let this = format!("tests={}", std::process::id());
    let extra = [
        "--watch",
        watched.as_str(),
        "--watch",
        this.as_str(),
        "--sample-every",
        "1",
        "--duration",
        "3",
    ];
    let out = bench(&url, &key_file, &path, &extra);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let stdout = assert_success(&out);
    // Shown with --nocapture.
    println!("{stdout}");
    assert!(stdout.contains("Resident memory"), "{stdout}");
    assert!(
        stdout.contains(&format!("sleeper ({})", sleeper.id())),
        "{stdout}"
    );
    let r = report(&path);
    let m = &r["memory"];
    let names: Vec<&str> = m["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sleeper", "tests"]);
    let samples = m["samples"].as_array().unwrap();
    // One at the start, about one a second, one at the end: at least 3 in 3 s.
    assert!(samples.len() >= 3, "{m}");
    assert_eq!(samples[0]["seconds"].as_f64().unwrap().round(), 0.0);
    let seconds: Vec<f64> = samples
        .iter()
        .map(|s| s["seconds"].as_f64().unwrap())
        .collect();
    assert!(seconds.windows(2).all(|w| w[0] <= w[1]), "{seconds:?}");
    for s in samples {
        for name in ["sleeper", "tests"] {
            let mib = s["rss_mib"][name].as_f64().unwrap();
            // `sleep` holds a few hundred KiB to a few MiB; this test binary more.
            assert!(mib > 0.0 && mib < 4096.0, "{name}: {mib}");
        }
    }
    let growth = m["growth"].as_array().unwrap();
    assert_eq!(growth.len(), 2);
    assert!(growth[0]["growth_mib"].as_f64().unwrap().abs() < 64.0);
}

#[test]
fn a_watch_of_no_process_fails_before_anything_is_sent() {
    let (key_file, public) = principal("watch-none", Algorithm::Ed25519);
    let (url, shared) = spawn_server(Mode::Honest, public, "");
    let path = temp_path("watch-none", "json");
    // Past the largest pid_max Linux allows (2^22).
    let out = bench(&url, &key_file, &path, &["--watch", "ghost=4194305"]);
    std::fs::remove_file(&key_file).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("ghost=4194305"), "{stderr}");
    assert!(shared.creations.lock().unwrap().is_empty());
    assert!(!path.exists());
}

/// Signing requests the stand-in saw in `[from, to)`, per second.
fn rate(arrivals: &[Instant], from: Instant, to: Instant) -> f64 {
    let n = arrivals.iter().filter(|t| **t >= from && **t < to).count();
    n as f64 / (to - from).as_secs_f64()
}

#[test]
fn half_load_sends_at_half_the_peak() {
    let (key_file, public) = principal("half", Algorithm::Ed25519);
    let (url, shared) = spawn_server(Mode::Honest, public, "");
    let path = temp_path("half", "json");
    let extra = ["--duration", "2", "--half-load", "3"];
    let out = bench(&url, &key_file, &path, &extra);
    std::fs::remove_file(&key_file).unwrap();
    let stdout = assert_success(&out);
    // Shown with --nocapture.
    println!("{stdout}");
    assert!(stdout.contains("Half load"), "{stdout}");
    let r = report(&path);
    let peak = r["full_stack"]["throughput_rps"].as_f64().unwrap();
    let h = &r["half_load"];
    assert_eq!(r["setup"]["half_load_seconds"], 3);
    assert!((h["target_rps"].as_f64().unwrap() - peak / 2.0).abs() < 1e-6 * peak);
    assert_eq!(h["errors"], 0);
    let half_ok = h["requests_ok"].as_u64().unwrap();
    assert!(h["latency"]["p99_us"].as_f64().unwrap() > 0.0);

    // From the stand-in's side: the first requests_ok arrivals are the peak's (no
    // warm-up), the rest the half load's.
    let arrivals = shared.arrivals.lock().unwrap().clone();
    let peak_ok = r["full_stack"]["requests_ok"].as_u64().unwrap() as usize;
    assert_eq!(arrivals.len(), peak_ok + half_ok as usize);
    let (peak_part, half_part) = arrivals.split_at(peak_ok);
    let peak_seen = rate(peak_part, peak_part[0], *peak_part.last().unwrap());
    let half_start = half_part[0];
    let half_seen = rate(half_part, half_start, half_start + Duration::from_secs(3));
    // An open loop sends no more than it is asked: at most the target (plus a request
    // for each of the 2 clients at the edges); a busy machine may make it send fewer,
    // never more.
    let target = h["target_rps"].as_f64().unwrap();
    assert!(
        (half_ok as f64) <= target * 3.0 + 2.0,
        "{half_ok} sent at {target}/s for 3 s"
    );
    assert!(
        half_seen < 0.75 * peak_seen,
        "half load {half_seen:.0}/s against a peak of {peak_seen:.0}/s"
    );
    // And it did send: well over a quarter of the peak rate, even on a loaded machine.
    assert!(
        half_seen > 0.25 * peak_seen,
        "half load {half_seen:.0}/s against a peak of {peak_seen:.0}/s"
    );
}

#[test]
fn boot_replay_times_a_boot_with_and_without_records() {
    let path = temp_path("boot-replay", "json");
    let out = Command::new(env!("CARGO_BIN_EXE_strongroom-bench"))
        .args(["boot-replay", "--records", "200", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = assert_success(&out);
    assert!(stdout.contains("records/s"), "{stdout}");
    let r = report(&path);
    assert_eq!(r["records"], 200);
    assert_eq!(r["with_records"]["records"], 200);
    assert_eq!(r["baseline"]["records"], 0);
    assert!(r["with_records"]["pages"].as_u64().unwrap() >= 1);
    assert!(r["replay_records_per_sec"].as_f64().unwrap() > 0.0);
    let t = |part: &str, name: &str| r[part][name].as_f64().unwrap();
    for part in ["baseline", "with_records"] {
        let sum = t(part, "complete_unseal_seconds")
            + t(part, "snapshot_seconds")
            + t(part, "replay_seconds")
            + t(part, "finish_seconds");
        assert!((sum - t(part, "boot_seconds")).abs() < 1e-6, "{part}");
    }
    assert!(r["record_bytes"].as_u64().unwrap() > 200 * 200);
}
