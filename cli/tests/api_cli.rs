//! `strongroom health|keys|sign|policy|requests|dev` as a user runs them, against a stand-in
//! API server in this process that verifies request stamps as the enclave does (over the
//! exact method, path and body it received), answers with canned, validly shaped bodies
//! and records every request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use strongroom_auth::{PrincipalKey, ReplayCache, SigningKey};

/// The one key the stand-in server knows.
const KEY_ID: &str = "5f0c6a1e2b3d4c5e6f708192a3b4c5d6";
/// A key the stand-in server reports as destroyed.
const DESTROYED_ID: &str = "00112233445566778899aabbccddeeff";
/// A key whose signing requests wait for approvals (202).
const PENDING_ID: &str = "aaaabbbbccccddddeeeeffff00001111";
/// A key whose signing requests the policy denies (403).
const DENIED_ID: &str = "ddddeeeeffff00001111222233334444";
/// A key whose requests the stand-in server answers only after [`SLOW`].
const SLOW_ID: &str = "slow";
const SLOW: Duration = Duration::from_secs(4);
/// The secp256k1 generator: the public key of secret 1, and its address.
const PUBLIC_KEY: &str = "0x0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
const ADDRESS: &str = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
const R: &str = "0x1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100ffee";
const S: &str = "0x2e1f0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000";
/// The open proposal and pending request the stand-in server knows.
const PROPOSAL_ID: &str = "0123456789abcdef";
/// A proposal the stand-in shows with a document that does not match its digest.
const ALTERED_PROPOSAL_ID: &str = "a17e4ed000000000";

/// The policy document of the stand-in's open proposal: the mock-mode development policy.
fn shown_policy() -> Value {
    serde_json::from_str(include_str!("../../policy/examples/dev-genesis.json")).unwrap()
}

/// The proposal digest the enclave would give for [`shown_policy`] against the stand-in's
/// base digests.
fn proposal_digest() -> String {
    let policy =
        strongroom_policy::Policy::from_json(&serde_json::to_vec(&shown_policy()).unwrap())
            .unwrap();
    hex::encode(strongroom_policy::proposal_digest(
        PROPOSAL_ID,
        "policy",
        &policy.digest(),
        &[0x11; 32],
        &[0x12; 32],
    ))
}
const REQUEST_ID: &str = "fedcba9876543210";
/// The pending request's decoded intent: 2 ETH on mainnet to ADDRESS.
fn intent() -> strongroom_policy::Intent {
    use strongroom_policy::{Intent, TransactionIntent, TxType};
    Intent::Transaction(TransactionIntent {
        tx_type: TxType::Eip1559,
        chain_id: 1,
        nonce: 0,
        to: Some(ADDRESS.parse().unwrap()),
        value: alloy_primitives::U256::from(2_000_000_000_000_000_000u128),
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: Some(1_000_000_000),
        selector: None,
        data_len: 0,
        erc20: None,
        data: Default::default(),
        access_list: Vec::new(),
        signing_hash: Default::default(),
        call: None,
    })
}

/// What the enclave would give as its intent digest.
fn intent_digest() -> String {
    hex::encode(intent().digest(PENDING_ID))
}

/// One request as the stand-in server received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: Option<String>,
    /// The body as JSON; `Null` when empty.
    body: Value,
    /// The key id of a stamp that verified; `None` when unstamped.
    stamped_by: Option<String>,
}

struct Shared {
    ready: bool,
    /// Keys whose stamps the server accepts: the dev principal and the dev admins.
    keys: Vec<PrincipalKey>,
    replay: Mutex<ReplayCache>,
    seen: Mutex<Vec<Seen>>,
}

struct Server {
    url: String,
    shared: Arc<Shared>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "strongroom-api-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A data directory with development keys, made once with `strongroom dev init`.
fn dev_data() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = temp_dir("dev");
        let out = command(&["dev", "init", "--dir", dir.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success(), "dev init: {}", stderr(&out));
        dir
    })
}

fn dev_key(name: &str) -> PathBuf {
    dev_data().join("dev").join(name)
}

fn public_of(path: &Path) -> PrincipalKey {
    SigningKey::from_text(&std::fs::read_to_string(path).unwrap())
        .unwrap()
        .public()
}

fn key(id: &str, label: &str) -> Value {
    json!({
        "id": id,
        "label": label,
        "curve": "secp256k1",
        "public_key": PUBLIC_KEY,
        "address": ADDRESS,
        "created_at": "2026-01-02T03:04:05Z",
    })
}

fn allow(rule: &str) -> Value {
    json!({"result": "allow", "rule": rule, "reason": format!("allowed by rule {rule:?}")})
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let body = json!({ "error": { "code": code, "message": message } });
    (status, axum::Json(body)).into_response()
}

/// 404 or 410 for ids other than [`KEY_ID`].
fn unknown(id: &str) -> Response {
    if id == DESTROYED_ID {
        error(
            StatusCode::GONE,
            "key_destroyed",
            format!("key {id} was destroyed"),
        )
    } else {
        error(StatusCode::NOT_FOUND, "not_found", format!("no key {id}"))
    }
}

/// Records every request and, like the enclave, verifies the stamp of every request that
/// changes something over the method, path with query, and body exactly as received.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap();
    let stamp = parts
        .headers
        .get("x-strongroom-stamp")
        .map(|v| v.to_str().unwrap().to_string());
    let path = parts.uri.path_and_query().unwrap().as_str().to_string();
    let mut stamped_by = None;
    if parts.method != axum::http::Method::GET {
        let request = strongroom_auth::Request {
            method: parts.method.as_str(),
            path: &path,
            body: &bytes,
        };
        let lookup = |id: &str| shared.keys.iter().find(|k| k.id() == id);
        let verified = strongroom_auth::verify(
            stamp.as_deref(),
            request,
            lookup,
            &mut shared.replay.lock().unwrap(),
            now(),
        );
        match verified {
            Ok(key) => stamped_by = Some(key.id().to_string()),
            Err(e) => {
                return error(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string());
            }
        }
    }
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(format!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        })
    };
    shared.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path,
        content_type: parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string()),
        body,
        stamped_by,
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

async fn health(State(shared): State<Arc<Shared>>) -> Response {
    if shared.ready {
        axum::Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "starting", "detail": "waiting for KMS" })),
        )
            .into_response()
    }
}

async fn create(axum::Json(body): axum::Json<Value>) -> Response {
    let label = body["label"].as_str().unwrap_or_default();
    let mut answer = key(KEY_ID, label);
    answer["decision"] = allow("dev-create-keys");
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// `GET /v1/keys?after=&limit=` over three stored blobs in id order, the destroyed one
/// refused. With `limit=3` it misbehaves as a lying parent could: the first page again,
/// whatever `after` says.
async fn list(uri: axum::http::Uri) -> Response {
    let param = |name: &str| {
        uri.query()?
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let limit: usize = param("limit").map_or(256, |n| n.parse().unwrap());
    let after = param("after").filter(|_| limit != 3);
    let page: Vec<&str> = [DESTROYED_ID, KEY_ID, PENDING_ID]
        .into_iter()
        .filter(|id| after.is_none_or(|after| *id > after))
        .take(limit)
        .collect();
    let (refused, keys): (Vec<&str>, Vec<&str>) = page.iter().partition(|id| **id == DESTROYED_ID);
    let next_after = (page.len() == limit).then(|| page.last());
    axum::Json(json!({
        "keys": keys.iter().map(|id| key(id, "alpha")).collect::<Vec<_>>(),
        "refused": refused.iter().map(|id| json!({"id": id, "reason": "key_destroyed"})).collect::<Vec<_>>(),
        "next_after": next_after,
    }))
    .into_response()
}

async fn show(UrlPath(id): UrlPath<String>) -> Response {
    if id == SLOW_ID {
        tokio::time::sleep(SLOW).await;
    }
    if id == KEY_ID || id == SLOW_ID {
        axum::Json(key(&id, "alpha")).into_response()
    } else {
        unknown(&id)
    }
}

async fn destroy(UrlPath(id): UrlPath<String>) -> Response {
    if id == KEY_ID {
        axum::Json(json!({ "id": id, "destroyed": true, "decision": allow("dev-destroy") }))
            .into_response()
    } else {
        unknown(&id)
    }
}

fn pending_request(status: &str) -> Value {
    json!({
        "id": REQUEST_ID,
        "principal": "dev",
        "key_id": PENDING_ID,
        "key_label": "treasury",
        "action": "sign_transaction",
        "intent": intent(),
        "intent_digest": intent_digest(),
        "requested_at": 1_800_000_000u64,
        "approvals": [],
        "decision": {"result": "needs_approval", "threshold": 1, "approvers": ["alice"],
                     "approved": [], "rule": "big-transfers",
                     "reason": "needs 1 approval of alice"},
        "status": status,
    })
}

async fn sign(UrlPath((id, kind)): UrlPath<(String, String)>) -> Response {
    if !["transaction", "typed-data", "message", "digest"].contains(&kind.as_str()) {
        return error(StatusCode::NOT_FOUND, "not_found", "no such route".into());
    }
    match id.as_str() {
        KEY_ID => {
            let signature = format!("{R}{}01", &S[2..]);
            axum::Json(json!({ "signature": signature, "r": R, "s": S, "v": 1,
                               "decision": allow("dev-digests") }))
            .into_response()
        }
        PENDING_ID => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "request": pending_request("pending") })),
        )
            .into_response(),
        DENIED_ID => {
            let reason = "value 2 ETH exceeds cap 1 ETH of rule \"dev-transactions\"";
            let body = json!({"error": {"code": "denied", "message": reason,
                "decision": {"result": "deny", "rule": "dev-transactions", "reason": reason}}});
            (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
        }
        _ => unknown(&id),
    }
}

async fn policy() -> Response {
    axum::Json(json!({
        "policy": {"version": 1, "principals": [], "rules": []},
        "policy_digest": "00".repeat(32),
        "admins": {"threshold": 2, "keys": []},
        "admin_key_ids": [],
        "admins_digest": "11".repeat(32),
        "genesis_digest": "22".repeat(32),
        "state_seq": 3,
    }))
    .into_response()
}

fn proposal(document: Value) -> Value {
    json!({
        "id": PROPOSAL_ID, "kind": "policy", "digest": proposal_digest(), "document": document,
        "content_digest": "33".repeat(32), "base_admins_digest": "11".repeat(32),
        "base_policy_digest": "12".repeat(32), "proposed_by": "k", "proposed_at": 1_800_000_000u64,
        "approvals": [],
    })
}

async fn propose(axum::Json(body): axum::Json<Value>) -> Response {
    let (kind, document) = match (&body["policy"], &body["admins"]) {
        (Value::Null, admins) => ("admins", admins.clone()),
        (policy, _) => ("policy", policy.clone()),
    };
    let mut p = proposal(document);
    p["kind"] = kind.into();
    (StatusCode::CREATED, axum::Json(json!({ "proposal": p }))).into_response()
}

async fn proposals() -> Response {
    axum::Json(json!({ "proposals": [proposal(shown_policy())] })).into_response()
}

async fn show_proposal(UrlPath(id): UrlPath<String>) -> Response {
    if id == PROPOSAL_ID {
        axum::Json(json!({ "proposal": proposal(shown_policy()) })).into_response()
    } else if id == ALTERED_PROPOSAL_ID {
        // The real proposal's digest over a document with one more action granted.
        let mut document = shown_policy();
        document["rules"][0]["actions"]
            .as_array_mut()
            .unwrap()
            .push(json!("destroy_key"));
        let mut p = proposal(document);
        p["id"] = json!(ALTERED_PROPOSAL_ID);
        axum::Json(json!({ "proposal": p })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no open proposal {id:?}"),
        )
    }
}

async fn proposal_verb(
    UrlPath((id, verb)): UrlPath<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if id != PROPOSAL_ID {
        return error(StatusCode::NOT_FOUND, "not_found", "no proposal".into());
    }
    match verb.as_str() {
        "approve" if body["digest"] == proposal_digest().as_str() => axum::Json(json!({
            "proposal": proposal(shown_policy()), "approvals": 2, "threshold": 2, "applied": true,
            "discarded_proposals": [], "policy_digest": "44".repeat(32),
        }))
        .into_response(),
        "approve" => error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "wrong digest".into(),
        ),
        "cancel" => axum::Json(json!({"id": id, "cancelled": true})).into_response(),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route".into()),
    }
}

async fn show_request(UrlPath(id): UrlPath<String>) -> Response {
    if id == REQUEST_ID {
        axum::Json(json!({ "request": pending_request("pending") })).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no request {id:?}"),
        )
    }
}

async fn request_verb(
    UrlPath((id, verb)): UrlPath<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if id != REQUEST_ID {
        return error(StatusCode::NOT_FOUND, "not_found", "no request".into());
    }
    match verb.as_str() {
        "approve" if body["intent_digest"] == intent_digest().as_str() => {
            let mut request = pending_request("signed");
            request["result"] = json!({"signature": "0x00"});
            axum::Json(json!({ "request": request, "result": {"signature": "0x00"} }))
                .into_response()
        }
        "approve" => error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "wrong digest".into(),
        ),
        "execute" => axum::Json(json!({ "request": pending_request("pending"), "result": null }))
            .into_response(),
        "cancel" => {
            let mut request = pending_request("cancelled");
            request["by"] = "k".into();
            axum::Json(json!({ "request": request })).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such route".into()),
    }
}

/// Starts the stand-in server on a free loopback port, in a thread of its own.
fn spawn_server(ready: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = ["principal.key", "admin-1.key", "admin-2.key", "admin-3.key"]
        .iter()
        .map(|k| public_of(&dev_key(k)))
        .collect();
    let shared = Arc::new(Shared {
        ready,
        keys,
        replay: Mutex::new(ReplayCache::new(1024)),
        seen: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/keys", post(create).get(list))
        .route("/v1/keys/{id}", get(show).delete(destroy))
        .route("/v1/keys/{id}/sign/{kind}", post(sign))
        .route("/v1/policy", get(policy))
        .route("/v1/policy/proposals", get(proposals).post(propose))
        .route("/v1/policy/proposals/{id}", get(show_proposal))
        .route("/v1/policy/proposals/{id}/{verb}", post(proposal_verb))
        .route("/v1/requests/{id}", get(show_request))
        .route("/v1/requests/{id}/{verb}", post(request_verb))
        .layer(middleware::from_fn_with_state(shared.clone(), record))
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
    Server {
        url: format!("http://{addr}"),
        shared,
    }
}

/// `strongroom` with `args`, with no server, key or data directory from the environment.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    cmd.env(
        "STRONGROOM_STATE_FILE",
        std::env::temp_dir().join(format!("strongroom-api-cli-{}.json", std::process::id())),
    );
    // A proxy from the environment would swallow the loopback requests.
    for var in [
        "STRONGROOM_URL",
        "STRONGROOM_PRINCIPAL_KEY",
        "STRONGROOM_DATA_DIR",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(args);
    cmd
}

/// Runs `strongroom args --url url`, with the development keys' data directory.
fn strongroom(url: &str, args: &[&str]) -> Output {
    command(args)
        .args(["--url", url])
        .env("STRONGROOM_DATA_DIR", dev_data())
        .output()
        .unwrap()
}

/// Runs `strongroom args --url url` with `input` on standard input.
fn strongroom_stdin(url: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = command(args)
        .args(["--url", url])
        .env("STRONGROOM_DATA_DIR", dev_data())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The JSON a successful command printed.
fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    let text = stdout(out);
    assert!(text.contains("\n  "), "pretty-printed: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The `key: value` lines a command printed before its JSON, and the JSON.
fn lines_and_json(out: &Output) -> (Vec<String>, Value) {
    assert!(out.status.success(), "failed: {}", stderr(out));
    let text = stdout(out);
    let start = text.find('{').unwrap();
    let lines = text[..start].lines().map(str::to_string).collect();
    (lines, serde_json::from_str(&text[start..]).unwrap())
}

/// The stderr of a command that failed with exit 1 and printed nothing on stdout.
fn failure(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "exit 1: {}", stderr(out));
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    stderr(out)
}

/// Asserts that the server saw exactly one more request, and returns it.
fn one_more(server: &Server, before: usize) -> Seen {
    let seen = server.seen();
    assert_eq!(seen.len(), before + 1, "one request per command: {seen:?}");
    seen[before].clone()
}

fn principal_id() -> String {
    public_of(&dev_key("principal.key")).id().to_string()
}

#[test]
fn keys_list_follows_every_page_and_refuses_a_page_served_again() {
    let server = spawn_server(true);
    let url = server.url.as_str();
    let all = json!({
        "keys": [key(KEY_ID, "alpha"), key(PENDING_ID, "alpha")],
        "refused": [{"id": DESTROYED_ID, "reason": "key_destroyed"}],
    });
    assert_eq!(json_out(&strongroom(url, &["keys", "list"])), all);

    // One key per request: three full pages, then an empty one.
    let listed = json_out(&strongroom(url, &["keys", "list", "--page-size", "1"]));
    assert_eq!(listed, all);
    let paths: Vec<String> = server.seen()[1..].iter().map(|s| s.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v1/keys?limit=1".to_string(),
            format!("/v1/keys?after={DESTROYED_ID}&limit=1"),
            format!("/v1/keys?after={KEY_ID}&limit=1"),
            format!("/v1/keys?after={PENDING_ID}&limit=1"),
        ]
    );

    let rest = json_out(&strongroom(url, &["keys", "list", "--after", KEY_ID]));
    assert_eq!(
        rest,
        json!({"keys": [key(PENDING_ID, "alpha")], "refused": []})
    );

    // A parent serving the first page again, whatever `after` asks, would loop forever.
    let err = failure(&strongroom(
        url,
        &["keys", "list", "--page-size", "3", "--after", KEY_ID],
    ));
    assert!(err.contains("the key listing went backwards"), "{err}");
    for bad in ["0", "257", "x"] {
        let out = strongroom(url, &["keys", "list", "--page-size", bad]);
        assert_eq!(out.status.code(), Some(2), "--page-size {bad}");
    }
}

#[test]
fn commands_send_the_api_requests_and_print_the_answers() {
    let server = spawn_server(true);
    let url = server.url.as_str();

    // STRONGROOM_URL stands in for --url.
    let out = command(&["health"])
        .env("STRONGROOM_URL", &server.url)
        .output()
        .unwrap();
    assert_eq!(json_out(&out), json!({ "status": "ready" }));
    let seen = one_more(&server, 0);
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/v1/health")
    );
    assert_eq!(seen.body, Value::Null);
    assert_eq!(seen.stamped_by, None);

    // Stamped with the development principal key from the data directory.
    let created = json_out(&strongroom(
        url,
        &["keys", "create", "--label", "hot wallet"],
    ));
    assert_eq!(created["id"], KEY_ID);
    assert_eq!(created["label"], "hot wallet");
    assert_eq!(created["decision"]["result"], "allow");
    let seen = one_more(&server, 1);
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v1/keys")
    );
    assert_eq!(seen.body, json!({ "label": "hot wallet" }));
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(seen.stamped_by, Some(principal_id()));

    let listed = json_out(&strongroom(url, &["keys", "list"]));
    assert_eq!(listed["keys"][0]["id"], KEY_ID);
    let seen = one_more(&server, 2);
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/v1/keys?limit=256")
    );

    let shown = json_out(&strongroom(url, &["keys", "show", KEY_ID]));
    assert_eq!(shown["public_key"], PUBLIC_KEY);
    let seen = one_more(&server, 3);
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, format!("/v1/keys/{KEY_ID}"));

    let digest = "ab".repeat(32);
    // Upper case with 0x and lower case without: both go out as 0x-prefixed lower case.
    for (n, given) in [format!("0x{}", digest.to_uppercase()), digest.clone()]
        .iter()
        .enumerate()
    {
        let signed = json_out(&strongroom(
            url,
            &["sign", "digest", "--key", KEY_ID, "--digest", given],
        ));
        assert_eq!(signed["v"], 1);
        assert_eq!(signed["r"], R);
        let seen = one_more(&server, 4 + n);
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path, format!("/v1/keys/{KEY_ID}/sign/digest"));
        assert_eq!(seen.body, json!({ "digest": format!("0x{digest}") }));
        assert_eq!(seen.content_type.as_deref(), Some("application/json"));
        assert_eq!(seen.stamped_by, Some(principal_id()));
    }

    let destroyed = json_out(&strongroom(url, &["keys", "destroy", KEY_ID]));
    assert_eq!(destroyed["destroyed"], true);
    let seen = one_more(&server, 6);
    assert_eq!(seen.method, "DELETE");
    assert_eq!(seen.path, format!("/v1/keys/{KEY_ID}"));
    assert_eq!(seen.body, Value::Null);
    assert_eq!(seen.stamped_by, Some(principal_id()));
}

#[test]
fn payload_signing_sends_the_file_verbatim() {
    let server = spawn_server(true);
    let url = server.url.as_str();
    let dir = temp_dir("payloads");
    // Odd spacing and key order: what is sent (and stamped) is the file, byte for byte.
    let tx = br#"{"transaction": {"chainId": "0x1", "to": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf",   "value": "0x0", "nonce": "0x0", "gas": "0x5208", "maxFeePerGas": "0x1", "maxPriorityFeePerGas": "0x1"}}"#;
    let tx_file = dir.join("tx.json");
    std::fs::write(&tx_file, tx).unwrap();
    let signed = json_out(&strongroom(
        url,
        &[
            "sign",
            "tx",
            "--key",
            KEY_ID,
            "--file",
            tx_file.to_str().unwrap(),
        ],
    ));
    assert_eq!(signed["r"], R);
    let seen = one_more(&server, 0);
    assert_eq!(seen.path, format!("/v1/keys/{KEY_ID}/sign/transaction"));
    assert_eq!(seen.body, serde_json::from_slice::<Value>(tx).unwrap());
    assert_eq!(seen.stamped_by, Some(principal_id()));

    // Typed data from standard input.
    let typed = br#"{"types": {"EIP712Domain": []}, "primaryType": "EIP712Domain", "domain": {}, "message": {}}"#;
    let out = strongroom_stdin(
        url,
        &["sign", "typed-data", "--key", KEY_ID, "--file", "-"],
        typed,
    );
    json_out(&out);
    let seen = one_more(&server, 1);
    assert_eq!(seen.path, format!("/v1/keys/{KEY_ID}/sign/typed-data"));
    assert_eq!(seen.body, serde_json::from_slice::<Value>(typed).unwrap());

    // A message given as text goes out hex-encoded.
    json_out(&strongroom(
        url,
        &["sign", "message", "--key", KEY_ID, "--text", "hello"],
    ));
    let seen = one_more(&server, 2);
    assert_eq!(seen.path, format!("/v1/keys/{KEY_ID}/sign/message"));
    assert_eq!(seen.body, json!({ "message": "0x68656c6c6f" }));

    // Not JSON: refused before anything is sent.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "not json").unwrap();
    let err = failure(&strongroom(
        url,
        &[
            "sign",
            "message",
            "--key",
            KEY_ID,
            "--file",
            bad.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("is not JSON"), "{err}");
    // --file and --text together, or neither: usage errors.
    for args in [
        vec!["sign", "message", "--key", KEY_ID],
        vec![
            "sign", "message", "--key", KEY_ID, "--text", "a", "--file", "x",
        ],
    ] {
        assert_eq!(strongroom(url, &args).status.code(), Some(2), "{args:?}");
    }
    assert_eq!(server.seen().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pending_and_denied_signing_requests() {
    let server = spawn_server(true);
    let url = server.url.as_str();
    let digest = "00".repeat(32);

    // 202: the request is printed, exit 0, and stderr says what to do next.
    let out = strongroom(
        url,
        &["sign", "digest", "--key", PENDING_ID, "--digest", &digest],
    );
    let answer = json_out(&out);
    assert_eq!(answer["request"]["id"], REQUEST_ID);
    assert_eq!(answer["request"]["status"], "pending");
    let note = stderr(&out);
    assert!(
        note.contains(&format!("request {REQUEST_ID} is pending")),
        "{note}"
    );
    assert!(note.contains("strongroom requests approve"), "{note}");

    // 403: the rule and the reason, exit 1.
    let err = failure(&strongroom(
        url,
        &["sign", "digest", "--key", DENIED_ID, "--digest", &digest],
    ));
    assert_eq!(
        err.trim_end(),
        "error: 403 denied by rule \"dev-transactions\": value 2 ETH exceeds cap 1 ETH of rule \
         \"dev-transactions\""
    );
}

#[test]
fn governance_commands() {
    let server = spawn_server(true);
    let url = server.url.as_str();
    let admin = dev_key("admin-1.key");
    let admin = admin.to_str().unwrap();
    let admin_id = public_of(&dev_key("admin-1.key")).id().to_string();

    let shown = json_out(&strongroom(url, &["policy", "show"]));
    assert_eq!(shown["state_seq"], 3);
    assert_eq!(server.seen()[0].stamped_by, None);

    // A TOML policy goes out as JSON under "policy"; id and digest lead the output.
    let dir = temp_dir("governance");
    let toml_file = dir.join("policy.toml");
    std::fs::write(
        &toml_file,
        "version = 1\n[[principals]]\nid = \"p\"\nkeys = []\n[[rules]]\nname = \"r\"\n\
         effect = \"allow\"\nactions = [\"create_key\"]\n",
    )
    .unwrap();
    let out = strongroom(url, &["policy", "propose", toml_file.to_str().unwrap()]);
    let (lines, answer) = lines_and_json(&out);
    assert_eq!(
        lines,
        [
            format!("id: {PROPOSAL_ID}"),
            format!("digest: {}", proposal_digest())
        ]
    );
    assert_eq!(answer["proposal"]["kind"], "policy");
    let seen = one_more(&server, 1);
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v1/policy/proposals")
    );
    assert_eq!(
        seen.body,
        json!({"policy": {"version": 1, "principals": [{"id": "p", "keys": []}],
                          "rules": [{"name": "r", "effect": "allow", "actions": ["create_key"]}]}})
    );
    assert_eq!(seen.stamped_by, Some(principal_id()));

    // An admin set, proposed with an admin key.
    let admins_file = dir.join("admins.json");
    std::fs::write(&admins_file, r#"{"threshold": 1, "keys": []}"#).unwrap();
    let out = strongroom(
        url,
        &[
            "policy",
            "propose-admins",
            admins_file.to_str().unwrap(),
            "--admin-key",
            admin,
        ],
    );
    let (_, answer) = lines_and_json(&out);
    assert_eq!(answer["proposal"]["kind"], "admins");
    let seen = one_more(&server, 2);
    assert_eq!(seen.body, json!({"admins": {"threshold": 1, "keys": []}}));
    assert_eq!(seen.stamped_by, Some(admin_id.clone()));

    json_out(&strongroom(url, &["policy", "proposals"]));
    json_out(&strongroom(url, &["policy", "proposals", PROPOSAL_ID]));
    assert_eq!(
        server.seen()[4].path,
        format!("/v1/policy/proposals/{PROPOSAL_ID}")
    );

    // Approve: look up the digest, approve it with the admin key.
    let out = strongroom(
        url,
        &["policy", "approve", PROPOSAL_ID, "--admin-key", admin],
    );
    let (lines, answer) = lines_and_json(&out);
    assert_eq!(lines[..2], ["applied: true", "approvals: 2/2"]);
    assert_eq!(answer["applied"], true);
    let seen = server.seen();
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[5].method, "GET");
    assert_eq!(
        seen[6].path,
        format!("/v1/policy/proposals/{PROPOSAL_ID}/approve")
    );
    assert_eq!(seen[6].body, json!({ "digest": proposal_digest() }));
    assert_eq!(seen[6].stamped_by, Some(admin_id.clone()));

    // With the digest reviewed out of band: a different one on the server is refused.
    let err = failure(&strongroom(
        url,
        &[
            "policy",
            "approve",
            PROPOSAL_ID,
            "--admin-key",
            admin,
            "--digest",
            &"ee".repeat(32),
        ],
    ));
    assert!(err.contains("not approving"), "{err}");
    assert_eq!(server.seen().len(), 8, "only the GET");
    let out = strongroom(
        url,
        &[
            "policy",
            "approve",
            PROPOSAL_ID,
            "--admin-key",
            admin,
            "--digest",
            &proposal_digest(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // A document altered on the way (the proxy shows more than what was proposed, under
    // the real digest): refused before anything is sent.
    let before = server.seen().len();
    let err = failure(&strongroom(
        url,
        &[
            "policy",
            "approve",
            ALTERED_PROPOSAL_ID,
            "--admin-key",
            admin,
        ],
    ));
    assert!(err.contains("altered"), "{err}");
    assert_eq!(server.seen().len(), before + 1, "only the GET");

    // --admin-key is required.
    assert_eq!(
        strongroom(url, &["policy", "approve", PROPOSAL_ID])
            .status
            .code(),
        Some(2)
    );

    json_out(&strongroom(
        url,
        &["policy", "cancel", PROPOSAL_ID, "--admin-key", admin],
    ));
    let seen = server.seen().last().unwrap().clone();
    assert_eq!(
        seen.path,
        format!("/v1/policy/proposals/{PROPOSAL_ID}/cancel")
    );
    assert_eq!(seen.body, json!({}));
    assert_eq!(seen.stamped_by, Some(admin_id));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn request_commands() {
    let server = spawn_server(true);
    let url = server.url.as_str();

    let out = strongroom(url, &["requests", "show", REQUEST_ID]);
    let shown = json_out(&out);
    assert_eq!(shown["request"]["intent_digest"], intent_digest().as_str());
    assert!(
        stderr(&out).contains("2 ETH to 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"),
        "{}",
        stderr(&out)
    );

    // Approve: the intent is shown, then its digest approved with the principal key.
    let out = strongroom(url, &["requests", "approve", REQUEST_ID]);
    let answer = json_out(&out);
    assert_eq!(answer["request"]["status"], "signed");
    let note = stderr(&out);
    assert!(
        note.contains(
            "Eip1559 transaction on chain 1, nonce 0: 2 ETH to \
             0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        ),
        "the intent, decoded: {note}"
    );
    assert!(note.contains(&intent_digest()), "{note}");
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].path, format!("/v1/requests/{REQUEST_ID}/approve"));
    assert_eq!(seen[2].body, json!({ "intent_digest": intent_digest() }));
    assert_eq!(seen[2].stamped_by, Some(principal_id()));

    let err = failure(&strongroom(
        url,
        &[
            "requests",
            "approve",
            REQUEST_ID,
            "--digest",
            &"ee".repeat(32),
        ],
    ));
    assert!(err.contains("not approving"), "{err}");
    assert_eq!(server.seen().len(), 4, "only the GET");

    let out = strongroom(url, &["requests", "execute", REQUEST_ID]);
    json_out(&out);
    assert!(stderr(&out).contains("is pending"), "{}", stderr(&out));
    let seen = server.seen().last().unwrap().clone();
    assert_eq!(seen.path, format!("/v1/requests/{REQUEST_ID}/execute"));
    assert_eq!(seen.body, json!({}));

    let admin = dev_key("admin-2.key");
    let out = strongroom(
        url,
        &[
            "requests",
            "cancel",
            REQUEST_ID,
            "--admin-key",
            admin.to_str().unwrap(),
        ],
    );
    assert_eq!(json_out(&out)["request"]["status"], "cancelled");
    let seen = server.seen().last().unwrap().clone();
    assert_eq!(seen.path, format!("/v1/requests/{REQUEST_ID}/cancel"));
    assert_eq!(seen.stamped_by, Some(public_of(&admin).id().to_string()));
}

#[test]
fn key_sources() {
    let server = spawn_server(true);
    let url = server.url.as_str();
    let empty = temp_dir("nokey");
    let digest = "00".repeat(32);
    let sign = [
        "sign",
        "digest",
        "--key",
        KEY_ID,
        "--digest",
        digest.as_str(),
    ];

    // No key anywhere: a clear error naming the three ways, and nothing sent; reads work.
    let out = command(&sign)
        .args(["--url", url, "--data-dir", empty.to_str().unwrap()])
        .output()
        .unwrap();
    let err = failure(&out);
    for way in [
        "--principal-key",
        "STRONGROOM_PRINCIPAL_KEY",
        "strongroom dev init",
    ] {
        assert!(err.contains(way), "{err}");
    }
    assert!(server.seen().is_empty());
    let out = command(&[
        "keys",
        "list",
        "--url",
        url,
        "--data-dir",
        empty.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    json_out(&out);

    // --principal-key, and STRONGROOM_PRINCIPAL_KEY as a path and as the key text.
    let principal = dev_key("principal.key");
    let text = std::fs::read_to_string(&principal).unwrap();
    for (flag, env) in [
        (Some(principal.to_str().unwrap()), None),
        (None, Some(principal.to_str().unwrap())),
        (None, Some(text.as_str())),
    ] {
        let mut cmd = command(&sign);
        cmd.args(["--url", url, "--data-dir", empty.to_str().unwrap()]);
        if let Some(flag) = flag {
            cmd.args(["--principal-key", flag]);
        }
        if let Some(env) = env {
            cmd.env("STRONGROOM_PRINCIPAL_KEY", env);
        }
        json_out(&cmd.output().unwrap());
        assert_eq!(
            server.seen().last().unwrap().stamped_by,
            Some(principal_id())
        );
    }

    // A key the server does not know: 401, naming the key used and where it came from.
    let stranger = empty.join("stranger.pem");
    let out = command(&["dev", "key", "--out", stranger.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = command(&sign)
        .args(["--url", url, "--principal-key", stranger.to_str().unwrap()])
        .output()
        .unwrap();
    let err = failure(&out);
    assert!(err.starts_with("error: 401 unauthenticated: "), "{err}");
    assert!(
        err.contains(&format!("from --principal-key {}", stranger.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&empty).unwrap();
}

#[test]
fn dev_commands() {
    let dir = temp_dir("devcmd");
    let d = dir.to_str().unwrap();
    let out = command(&["dev", "init", "--dir", d]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    for name in [
        "admin-1.key",
        "admin-2.key",
        "admin-3.key",
        "principal.key",
        "genesis.json",
    ] {
        assert!(report.contains(&format!("wrote {}", dir.join("dev").join(name).display())));
    }
    let genesis: Value =
        serde_json::from_slice(&std::fs::read(dir.join("dev/genesis.json")).unwrap()).unwrap();
    assert_eq!(genesis["admins"]["keys"].as_array().unwrap().len(), 3);

    // Again: kept. STRONGROOM_DATA_DIR stands in for --dir.
    let out = command(&["dev", "init"])
        .env("STRONGROOM_DATA_DIR", d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("wrote"), "{}", stdout(&out));

    // dev pubkey prints the id and the spec listed in the genesis.
    let out = command(&[
        "dev",
        "pubkey",
        "--key",
        dir.join("dev/principal.key").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let text = stdout(&out);
    let mut lines = text.lines();
    let id = lines
        .next()
        .unwrap()
        .strip_prefix("id: ")
        .unwrap()
        .to_string();
    assert_eq!(id, public_of(&dir.join("dev/principal.key")).id());
    let spec: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(spec, genesis["policy"]["principals"][0]["keys"][0]);

    // dev key: a P-256 key, readable by its owner only, not overwritten without --force.
    let p256 = dir.join("p256.pem");
    let out = command(&[
        "dev",
        "key",
        "--out",
        p256.to_str().unwrap(),
        "--algorithm",
        "ecdsa-p256",
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: Value = serde_json::from_str(stdout(&out).lines().nth(1).unwrap()).unwrap();
    assert_eq!(spec["algorithm"], "ecdsa-p256");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&p256).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let out = command(&["dev", "key", "--out", p256.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(failure(&out).contains("--force"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn error_answers_exit_1_with_status_code_and_message() {
    let server = spawn_server(true);
    let url = server.url.as_str();

    let err = failure(&strongroom(url, &["keys", "show", "feedface"]));
    assert_eq!(err.trim_end(), "error: 404 not_found: no key feedface");

    let digest = "00".repeat(32);
    let err = failure(&strongroom(
        url,
        &["sign", "digest", "--key", DESTROYED_ID, "--digest", &digest],
    ));
    assert_eq!(
        err.trim_end(),
        format!("error: 410 key_destroyed: key {DESTROYED_ID} was destroyed")
    );

    let err = failure(&strongroom(url, &["keys", "destroy", DESTROYED_ID]));
    assert!(err.starts_with("error: 410 key_destroyed: "), "{err}");

    // An id with a slash stays one path segment, so it cannot reach another route.
    let err = failure(&strongroom(url, &["keys", "show", "a/../../health"]));
    assert!(err.starts_with("error: 404 not_found: "), "{err}");
    assert_eq!(server.seen()[3].path, "/v1/keys/a%2F..%2F..%2Fhealth");

    let starting = spawn_server(false);
    let err = failure(&strongroom(&starting.url, &["health"]));
    assert_eq!(err.trim_end(), "error: 503 starting: waiting for KMS");
}

#[test]
fn bad_digests_and_key_ids_are_refused_before_any_request() {
    let server = spawn_server(true);
    let url = server.url.as_str();
    let bad_digests = [
        "ab".repeat(31),
        "ab".repeat(33),
        format!("0x{}", "ab".repeat(31)),
        format!("{}a", "ab".repeat(32)),
        "zz".repeat(32),
        String::new(),
        "0x".to_string(),
    ];
    for digest in &bad_digests {
        let out = strongroom(
            url,
            &["sign", "digest", "--key", KEY_ID, "--digest", digest],
        );
        // Argument errors are clap's usage errors: exit 2.
        assert_eq!(out.status.code(), Some(2), "{digest:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--digest"), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let out = strongroom(
        url,
        &[
            "sign",
            "digest",
            "--key",
            KEY_ID,
            "--digest",
            &"ab".repeat(31),
        ],
    );
    assert!(
        stderr(&out).contains("a digest is 32 bytes"),
        "{}",
        stderr(&out)
    );

    for id in ["", ".", ".."] {
        let out = strongroom(url, &["keys", "show", id]);
        assert_eq!(out.status.code(), Some(2), "{id:?}: {}", stderr(&out));
    }
    assert!(server.seen().is_empty(), "{:?}", server.seen());
}

#[test]
fn unreachable_server_is_named_in_the_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for scheme in ["http", "https"] {
        let url = format!("{scheme}://127.0.0.1:{port}");
        let err = failure(&strongroom(&url, &["keys", "list"]));
        assert!(err.starts_with("error: cannot connect"), "{err}");
        assert!(err.contains(&format!("{url}/v1/keys")), "{err}");
    }

    let err = failure(&strongroom("ftp://127.0.0.1/", &["health"]));
    assert!(err.contains("ftp://127.0.0.1/"), "{err}");
}

#[test]
fn slow_answers_time_out() {
    let server = spawn_server(true);
    let start = Instant::now();
    let out = strongroom(&server.url, &["--timeout", "1", "keys", "show", SLOW_ID]);
    let err = failure(&out);
    assert!(start.elapsed() < SLOW, "gave up before the answer came");
    assert!(err.contains("no answer from"), "{err}");
    assert!(err.contains("within 1 s"), "{err}");
    assert!(err.contains(&server.url), "{err}");
}
