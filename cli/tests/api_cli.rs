//! `strongroom health|keys|sign` as a user runs them, against a stand-in API server in this
//! process that answers with canned, validly shaped bodies and records every request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The one key the stand-in server knows.
const KEY_ID: &str = "5f0c6a1e2b3d4c5e6f708192a3b4c5d6";
/// A key the stand-in server reports as destroyed.
const DESTROYED_ID: &str = "00112233445566778899aabbccddeeff";
/// A key whose requests the stand-in server answers only after [`SLOW`].
const SLOW_ID: &str = "slow";
const SLOW: Duration = Duration::from_secs(4);
/// The secp256k1 generator: the public key of secret 1, and its address.
const PUBLIC_KEY: &str = "0x0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";
const ADDRESS: &str = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
const R: &str = "0x1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100ffee";
const S: &str = "0x2e1f0d0c0b0a09080706050403020100f0e0d0c0b0a090807060504030201000";

/// One request as the stand-in server received it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: Option<String>,
    /// The body as JSON; `Null` when empty.
    body: Value,
}

struct Shared {
    ready: bool,
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

async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            Value::String(format!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        })
    };
    shared.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        content_type: parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string()),
        body,
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
    (StatusCode::CREATED, axum::Json(key(KEY_ID, label))).into_response()
}

async fn list() -> Response {
    axum::Json(json!({ "keys": [key(KEY_ID, "alpha")] })).into_response()
}

async fn show(Path(id): Path<String>) -> Response {
    if id == SLOW_ID {
        tokio::time::sleep(SLOW).await;
    }
    if id == KEY_ID || id == SLOW_ID {
        axum::Json(key(&id, "alpha")).into_response()
    } else {
        unknown(&id)
    }
}

async fn destroy(Path(id): Path<String>) -> Response {
    if id == KEY_ID {
        axum::Json(json!({ "id": id, "destroyed": true })).into_response()
    } else {
        unknown(&id)
    }
}

async fn sign(Path(id): Path<String>) -> Response {
    if id != KEY_ID {
        return unknown(&id);
    }
    let signature = format!("{R}{}01", &S[2..]);
    axum::Json(json!({ "signature": signature, "r": R, "s": S, "v": 1 })).into_response()
}

/// Starts the stand-in server on a free loopback port, in a thread of its own.
fn spawn_server(ready: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Shared {
        ready,
        seen: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/keys", post(create).get(list))
        .route("/v1/keys/{id}", get(show).delete(destroy))
        .route("/v1/keys/{id}/sign/digest", post(sign))
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

/// `strongroom` with `args`, with neither STRONGROOM_URL nor a proxy from the environment.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    // A proxy from the environment would swallow the loopback requests.
    for var in [
        "STRONGROOM_URL",
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

/// Runs `strongroom args --url url`.
fn strongroom(url: &str, args: &[&str]) -> Output {
    command(args).args(["--url", url]).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The JSON a successful command printed.
fn json_out(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(text.contains("\n  "), "pretty-printed: {text}");
    serde_json::from_str(&text).unwrap()
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

    let created = json_out(&strongroom(
        url,
        &["keys", "create", "--label", "hot wallet"],
    ));
    assert_eq!(created, key(KEY_ID, "hot wallet"));
    let seen = one_more(&server, 1);
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", "/v1/keys")
    );
    assert_eq!(seen.body, json!({ "label": "hot wallet" }));
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));

    let listed = json_out(&strongroom(url, &["keys", "list"]));
    assert_eq!(listed["keys"][0]["id"], KEY_ID);
    let seen = one_more(&server, 2);
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/v1/keys")
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
    }

    let destroyed = json_out(&strongroom(url, &["keys", "destroy", KEY_ID]));
    assert_eq!(destroyed, json!({ "id": KEY_ID, "destroyed": true }));
    let seen = one_more(&server, 6);
    assert_eq!(seen.method, "DELETE");
    assert_eq!(seen.path, format!("/v1/keys/{KEY_ID}"));
    assert_eq!(seen.body, Value::Null);
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
