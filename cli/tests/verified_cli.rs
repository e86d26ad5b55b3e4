//! `strongroom --expect-pcrs …` and `strongroom attestation fetch` as a user runs them,
//! against a stand-in enclave-behind-a-proxy in this process that signs its answers with
//! an identity key and serves mock NSM attestation documents naming it. One path answers
//! with a body altered after signing, as a hostile parent instance would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{AttestationRequest, Nsm};
use strongroom_client::ANSWER_HEADER;
use strongroom_identity::{AnswerSignature, IdentityKey, UserData, answer_request_digest};

const GENESIS: [u8; 32] = [0x6e; 32];

struct Enclave {
    nsm: MockNsm,
    key: IdentityKey,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Enclave {
    fn user_data(&self) -> UserData {
        UserData {
            key_check: [0x0c; 16],
            genesis: GENESIS,
            admins: [0xad; 32],
            policy: [0x90; 32],
            identity: self.key.public(),
            boot_seq: 0,
            replica: strongroom_identity::ReplicaName::SINGLE,
        }
    }
}

async fn handle(State(enclave): State<Arc<Enclave>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap();
    let path = parts.uri.path_and_query().unwrap().as_str().to_string();
    match parts.uri.path() {
        "/v1/health" => return axum::Json(json!({"status": "ready"})).into_response(),
        "/v1/attestation" => {
            let nonce = parts
                .uri
                .query()
                .and_then(|q| q.strip_prefix("nonce="))
                .map(|n| hex::decode(n).unwrap());
            let request = AttestationRequest {
                user_data: Some(enclave.user_data().encode()),
                nonce,
                public_key: None,
            };
            let document = enclave.nsm.attestation(&request).unwrap();
            let b64 = base64::engine::general_purpose::STANDARD.encode(document);
            return axum::Json(json!({ "document": b64 })).into_response();
        }
        _ => {}
    }
    let (status, body) = match (parts.method.as_str(), parts.uri.path()) {
        ("GET", "/v1/keys") => (
            200,
            json!({"keys": [{"id": "k", "label": "alpha"}], "refused": [], "next_after": null}),
        ),
        ("GET", "/v1/keys/forged") => (200, json!({"id": "forged", "label": "genuine"})),
        ("POST", "/v1/keys") => (201, json!({"id": "k", "label": "new"})),
        _ => (
            404,
            json!({"error": {"code": "not_found", "message": "no such key"}}),
        ),
    };
    let body = serde_json::to_vec(&body).unwrap();
    let stamp = parts
        .headers
        .get("x-strongroom-stamp")
        .map(|v| v.to_str().unwrap().to_string());
    let digest = answer_request_digest(parts.method.as_str(), &path, &bytes, stamp.as_deref());
    let head = strongroom_identity::Head {
        seq: 1,
        hash: [1; 32],
    };
    let signature = AnswerSignature::sign(&enclave.key, &digest, status, now(), head, &body);
    // The parent relays the signature but changes the body.
    let body = if parts.uri.path() == "/v1/keys/forged" {
        serde_json::to_vec(&json!({"id": "forged", "label": "changed by the parent"})).unwrap()
    } else {
        body
    };
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response();
    response.headers_mut().insert(
        ANSWER_HEADER,
        HeaderValue::from_str(&signature.to_header()).unwrap(),
    );
    response
}

struct Server {
    url: String,
    /// Holds `pcrs.json` (the enclave's PCRs), `other-pcrs.json` and `root.pem`.
    dir: PathBuf,
    identity: String,
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "strongroom-verified-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pcr_file(pcrs: &BTreeMap<u16, Vec<u8>>) -> String {
    let map: serde_json::Map<String, Value> = pcrs
        .iter()
        .map(|(i, v)| (i.to_string(), Value::String(hex::encode(v))))
        .collect();
    Value::Object(map).to_string()
}

fn spawn(tag: &str) -> Server {
    let config = MockNsmConfig::default();
    let dir = temp_dir(tag);
    std::fs::write(dir.join("pcrs.json"), pcr_file(&config.pcrs)).unwrap();
    let mut other = config.pcrs.clone();
    other.insert(0, vec![0x77; 48]);
    std::fs::write(dir.join("other-pcrs.json"), pcr_file(&other)).unwrap();
    let nsm = MockNsm::ephemeral(config).unwrap();
    std::fs::write(dir.join("root.pem"), nsm.root_pem().unwrap()).unwrap();
    let key = IdentityKey::from_seed(&[0x1d; 32]);
    let identity = key.public().to_string();
    let enclave = Arc::new(Enclave { nsm, key });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(handle).with_state(enclave);
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
        dir,
        identity,
    }
}

/// `strongroom args --url url`, with nothing from the environment.
fn strongroom(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strongroom"));
    // Each stand-in server's heads apart from the others' (and from the user's).
    let port = url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    cmd.env(
        "STRONGROOM_STATE_FILE",
        std::env::temp_dir().join(format!(
            "strongroom-verified-cli-{}-{port}.json",
            std::process::id()
        )),
    );
    for var in [
        "STRONGROOM_URL",
        "STRONGROOM_PRINCIPAL_KEY",
        "STRONGROOM_DATA_DIR",
        "STRONGROOM_EXPECT_PCRS",
        "STRONGROOM_ATTESTATION_ROOT",
        "STRONGROOM_EXPECT_GENESIS",
        "STRONGROOM_EXPECT_KEY_CHECK",
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(["--url", url]).args(args);
    cmd
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `strongroom --expect-pcrs DIR/pcrs.json --attestation-root DIR/root.pem args`.
fn verified_command(server: &Server, args: &[&str]) -> Command {
    let mut cmd = strongroom(&server.url, &["--expect-pcrs"]);
    cmd.arg(server.dir.join("pcrs.json"))
        .arg("--attestation-root")
        .arg(server.dir.join("root.pem"))
        .args(args);
    cmd
}

fn verified(server: &Server, args: &[&str]) -> Output {
    verified_command(server, args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn success(out: &Output) -> Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn failure(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "exit 1: {}", stderr(out));
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    stderr(out)
}

#[test]
fn every_answer_is_verified_with_expect_pcrs() {
    let server = spawn("answers");
    let keys = success(&verified(&server, &["keys", "list"]));
    assert_eq!(keys["keys"][0]["id"], "k");
    // The proxy's own endpoint is not signed and needs no verification.
    assert_eq!(
        success(&verified(&server, &["health"])),
        json!({"status": "ready"})
    );
    // Stamped calls are verified too (the stamp is part of what the answer signs).
    let created = verified_command(&server, &["keys", "create", "--label", "new"])
        .env("STRONGROOM_PRINCIPAL_KEY", "ab".repeat(32))
        .output()
        .unwrap();
    assert_eq!(success(&created)["label"], "new");

    // A body the parent changed after the enclave signed it: refused, nothing printed.
    let err = failure(&verified(&server, &["keys", "show", "forged"]));
    assert!(err.contains("does not verify"), "{err}");
    // Without --expect-pcrs the same answer is taken as given: the flag is what protects.
    let out = strongroom(&server.url, &["keys", "show", "forged"])
        .output()
        .unwrap();
    assert_eq!(success(&out)["label"], "changed by the parent");

    // A signed error is still an error, shown as the API gave it.
    let err = failure(&verified(&server, &["keys", "show", "nothere"]));
    assert_eq!(err, "error: 404 not_found: no such key\n");
}

#[test]
fn the_wrong_enclave_or_pins_are_refused() {
    let server = spawn("pins");
    let other = strongroom(&server.url, &["keys", "list"])
        .env("STRONGROOM_EXPECT_PCRS", server.dir.join("other-pcrs.json"))
        .env("STRONGROOM_ATTESTATION_ROOT", server.dir.join("root.pem"))
        .output()
        .unwrap();
    let err = failure(&other);
    assert!(err.contains("PCR0 is"), "{err}");

    // The AWS root (the default) does not accept mock documents.
    let aws = strongroom(&server.url, &["keys", "list", "--expect-pcrs"])
        .arg(server.dir.join("pcrs.json"))
        .output()
        .unwrap();
    let err = failure(&aws);
    assert!(err.contains("expected the pinned root"), "{err}");

    let wrong = hex::encode([0x01; 32]);
    let err = failure(&verified(
        &server,
        &["--expect-genesis", &wrong, "keys", "list"],
    ));
    assert!(err.contains("genesis digest"), "{err}");
    let right = hex::encode(GENESIS);
    success(&verified(
        &server,
        &["--expect-genesis", &right, "keys", "list"],
    ));

    // A pin without --expect-pcrs would check nothing: refused before any request.
    let out = strongroom(&server.url, &["--expect-genesis", &right, "keys", "list"])
        .output()
        .unwrap();
    assert!(failure(&out).contains("only with --expect-pcrs"));
    let out = strongroom(&server.url, &["--expect-genesis", "abcd", "keys", "list"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&out)
    );
}

#[test]
fn fetched_documents_verify_with_attestation_verify() {
    let server = spawn("fetch");
    let doc = server.dir.join("doc.b64");
    let out = strongroom(&server.url, &["attestation", "fetch", "--out", path(&doc)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "written to the file");
    let err = stderr(&out);
    let nonce = err
        .lines()
        .find_map(|l| l.strip_prefix("nonce: "))
        .unwrap_or_else(|| panic!("a nonce on stderr: {err}"))
        .to_string();
    assert_eq!(nonce.len(), 64, "32 random bytes");

    let root = server.dir.join("root.pem");
    let check = |nonce: &str| {
        strongroom(&server.url, &["attestation", "verify", "--doc", path(&doc)])
            .args(["--nonce", nonce, "--root", path(&root)])
            .output()
            .unwrap()
    };
    let report = success(&check(&nonce));
    let user_data = hex::decode(report["user_data"].as_str().unwrap()).unwrap();
    assert_eq!(
        UserData::decode(&user_data).unwrap().identity.to_string(),
        server.identity
    );
    let mut other = nonce.clone();
    other.replace_range(0..2, if &nonce[0..2] == "00" { "01" } else { "00" });
    assert!(failure(&check(&other)).contains("nonce"));

    // A chosen nonce, printed on stdout; with --expect-pcrs it is verified on the spot.
    let chosen = "5a".repeat(16);
    let out = verified(&server, &["attestation", "fetch", "--nonce", &chosen]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("nonce:"), "{err}");
    assert!(
        err.contains(&format!("identity {}", server.identity)),
        "{err}"
    );
    std::fs::write(&doc, &out.stdout).unwrap();
    success(&check(&chosen));
}
