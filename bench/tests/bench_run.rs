//! `strongroom-bench` run for real against a stand-in server in this process that checks
//! every POST's request stamp with `strongroom_auth::verify` (so a bench that forgets to
//! stamp, or stamps the wrong path or bytes, fails) and signs with k256 — honestly, with
//! the wrong key, failing some requests, or refusing transfers once its "ledger" is full —
//! so a pass means the figures are there and a fail is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

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
/// Transfers the LedgerFull stand-in signs before refusing.
const LEDGER_ROOM: u64 = 10;

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
    /// Refuses transfers with 403 "ledger is full" after [`LEDGER_ROOM`] of them.
    LedgerFull,
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
    if let Some(refusal) = check_stamp(&s, &method, &uri, &headers, &body) {
        return refusal;
    }
    assert_eq!(id, KEY_ID);
    let n = s.signed.fetch_add(1, Ordering::Relaxed);
    if s.mode == Mode::LedgerFull && n >= LEDGER_ROOM {
        return error(
            StatusCode::FORBIDDEN,
            "denied",
            "velocity ledger is full (4096 entries in the current window); refusing to sign \
             rather than forget",
        );
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
    assert_eq!(f["refused"], 0);
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
    assert_eq!(r["setup"]["max_requests"], 4000);
    let f = &r["full_stack"];
    let ok = f["requests_ok"].as_u64().unwrap();
    assert!(ok > 0);
    assert_eq!(f["signatures"]["checked"].as_u64().unwrap(), ok);
    assert_eq!(f["signatures"]["mismatches"], 0);
    assert!(shared.requests.load(Ordering::Relaxed) <= 4000);
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
fn a_full_ledger_is_an_expected_refusal_and_the_budget_holds() {
    let (key_file, public) = principal("ledger", Algorithm::Ed25519);
    let (url, shared) = spawn_server(Mode::LedgerFull, public, "");
    let path = temp_path("ledger", "json");
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
    let stdout = assert_success(&out);
    assert!(stdout.contains("expected refusals"), "{stdout}");
    let r = report(&path);
    assert_eq!(r["passed"], true);
    let f = &r["full_stack"];
    assert_eq!(f["requests_ok"], LEDGER_ROOM);
    assert_eq!(f["errors"], 0);
    assert_eq!(f["refused"], 40 - LEDGER_ROOM);
    assert_eq!(
        f["refused_by_kind"]["HTTP 403 velocity ledger full"],
        40 - LEDGER_ROOM
    );
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
