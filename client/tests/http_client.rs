//! The HTTP client against a stand-in enclave-behind-a-proxy in this process: it signs its
//! answers with an identity key as the enclave does, serves attestation documents from a
//! mock NSM, and can be told to misbehave as a hostile parent instance would (forge or
//! alter answers, sign with a key no document names, replay a document).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{AttestationRequest, Nsm, VerifyError};
use strongroom_auth::{PrincipalKey, ReplayCache, SigningKey};
use strongroom_client::{
    ANSWER_HEADER, Client, ClientError, Id, Method, ProxyRoute, Route, STAMP_HEADER,
    STAMP_VALIDITY_SECS, SignKind, StatusCode, Verification, Verifier,
};
use strongroom_identity::{AnswerSignature, IdentityKey, UserData, answer_request_digest};

/// A PCR value: 48 bytes, distinct per tag, never all zeros.
fn pcr(tag: u8) -> Vec<u8> {
    vec![tag.wrapping_add(0x10); 48]
}

/// How the stand-in misbehaves when answering a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Forgery {
    /// Answers as the enclave would.
    None,
    /// Flips one bit of the signature.
    FlippedSignature,
    /// Signs the enclave's 403 denial, sends a 200 "allow" with that header.
    DenialAsAllow,
    /// Signs the answer, then changes the signature value in the JSON body.
    ChangedSignatureValue,
    /// Signs a 202 (waiting for approval), sends it as 200.
    ChangedStatus,
    /// Signs with an identity key that no attestation document names.
    Unattested,
    /// Signs an answer for another request (a read of `/v1/keys`, unstamped).
    OtherRequest,
    /// Strips the signature header.
    Unsigned,
    /// Signs an hour ago.
    Stale,
}

struct Enclave {
    nsm: MockNsm,
    /// The identity the documents name and answers are signed with.
    key: IdentityKey,
    /// A key the documents never name.
    stranger: IdentityKey,
    forgery: Mutex<Forgery>,
    /// When set, documents carry this nonce instead of the one asked for (a replay).
    replayed_nonce: Mutex<Option<Vec<u8>>>,
    attestations: AtomicUsize,
    /// When set, the attestation endpoint answers as the proxy does with no enclave.
    attestation_down: AtomicBool,
    /// The nonces documents were asked for.
    asked_nonces: Mutex<Vec<Vec<u8>>>,
    /// The principal key whose stamps the stand-in accepts, and what it saw.
    principal: PrincipalKey,
    replay_cache: Mutex<ReplayCache>,
    seen: Mutex<Vec<Seen>>,
    /// How many times to refuse stamps as `stamp_before_boot` (unsigned if the flag says).
    before_boot: Mutex<(usize, bool)>,
}

#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    body: Vec<u8>,
    content_type: Option<String>,
    stamp: Option<strongroom_auth::Stamp>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn user_data(identity: &IdentityKey) -> UserData {
    UserData {
        key_check: [0x0c; 16],
        genesis: [0x6e; 32],
        admins: [0xad; 32],
        policy: [0x90; 32],
        identity: identity.public(),
        boot_seq: 0,
        replica: strongroom_identity::ReplicaName::SINGLE,
    }
}

/// The measurements of the stand-in's "good" enclave image.
fn good_pcrs() -> BTreeMap<u16, Vec<u8>> {
    BTreeMap::from([(0, pcr(0)), (1, pcr(1)), (2, pcr(2))])
}

/// The audit head the stand-in enclave names in its answers.
const HEAD: strongroom_identity::Head = strongroom_identity::Head {
    seq: 5,
    hash: [5; 32],
};
const ALLOW: &str = r#"{"signature":"0xaaaa","decision":{"result":"allow","rule":"r"}}"#;
const DENY: &str = r#"{"error":{"code":"denied","message":"value 2 ETH exceeds cap 1 ETH","decision":{"result":"deny","rule":"cap","reason":"value 2 ETH exceeds cap 1 ETH"}}}"#;
const PENDING: &str = r#"{"request":{"id":"r1","status":"pending"}}"#;
const KEYS: &str = r#"{"keys":[{"id":"k","label":"alpha"}]}"#;

/// What the enclave answers to a call.
fn canned(method: &str, path: &str) -> (u16, String) {
    match (method, path) {
        ("GET", "/v1/keys") => (200, KEYS.into()),
        ("GET", "/v1/policy") => (200, r#"{"policy":{"version":1}}"#.into()),
        ("POST", "/v1/keys") => (201, r#"{"id":"k","label":"alpha"}"#.into()),
        ("DELETE", "/v1/keys/k") => (200, r#"{"id":"k","destroyed":true}"#.into()),
        ("POST", "/v1/keys/k/sign/digest") => (200, ALLOW.into()),
        ("POST", "/v1/keys/denied/sign/digest") => (403, DENY.into()),
        ("POST", "/v1/keys/pending/sign/digest") => (202, PENDING.into()),
        _ => (
            404,
            r#"{"error":{"code":"not_found","message":"no such key"}}"#.into(),
        ),
    }
}

impl Enclave {
    fn attestation(&self, query: Option<&str>) -> Response {
        self.attestations.fetch_add(1, Ordering::SeqCst);
        let asked = query
            .and_then(|q| q.strip_prefix("nonce="))
            .map(|n| hex::decode(n).unwrap());
        if let Some(n) = &asked {
            self.asked_nonces.lock().unwrap().push(n.clone());
        }
        let nonce = self.replayed_nonce.lock().unwrap().clone().or(asked);
        let request = AttestationRequest {
            user_data: Some(user_data(&self.key).encode()),
            nonce,
            public_key: None,
        };
        let document = self.nsm.attestation(&request).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(document);
        axum::Json(json!({ "document": b64 })).into_response()
    }

    fn answer(&self, sent: &Seen, stamp_text: Option<&str>) -> Response {
        let route = sent.path.split('?').next().unwrap_or_default();
        let (status, body) = canned(&sent.method, route);
        let digest = answer_request_digest(&sent.method, &sent.path, &sent.body, stamp_text);
        let sign = |key: &IdentityKey, digest: &[u8; 32], status: u16, time: u64, body: &str| {
            AnswerSignature::sign(key, digest, status, time, HEAD, body.as_bytes())
        };
        let forgery = *self.forgery.lock().unwrap();
        let (status, body, signature) = match forgery {
            Forgery::None | Forgery::Unsigned => {
                let sig = sign(&self.key, &digest, status, now(), &body);
                (status, body, sig)
            }
            Forgery::FlippedSignature => {
                let mut sig = sign(&self.key, &digest, status, now(), &body);
                sig.signature[7] ^= 0x10;
                (status, body, sig)
            }
            Forgery::DenialAsAllow => {
                let sig = sign(&self.key, &digest, status, now(), &body);
                assert_eq!(status, 403, "only denials are turned into approvals");
                (200, ALLOW.to_string(), sig)
            }
            Forgery::ChangedSignatureValue => {
                let sig = sign(&self.key, &digest, status, now(), &body);
                (status, body.replace("0xaaaa", "0xbbbb"), sig)
            }
            Forgery::ChangedStatus => {
                let sig = sign(&self.key, &digest, status, now(), &body);
                assert_eq!(status, 202);
                (200, body, sig)
            }
            Forgery::Unattested => {
                let sig = sign(&self.stranger, &digest, status, now(), &body);
                (status, body, sig)
            }
            Forgery::OtherRequest => {
                let other = answer_request_digest("GET", "/v1/keys", b"", None);
                let sig = sign(&self.key, &other, status, now(), &body);
                (status, body, sig)
            }
            Forgery::Stale => {
                let sig = sign(&self.key, &digest, status, now() - 3600, &body);
                (status, body, sig)
            }
        };
        let mut response = (
            AxumStatus::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response();
        if forgery != Forgery::Unsigned {
            response.headers_mut().insert(
                ANSWER_HEADER,
                HeaderValue::from_str(&signature.to_header()).unwrap(),
            );
        }
        response
    }

    /// The enclave's refusal of a stamp right after a restart.
    fn before_boot(&self, sent: &Seen, stamp_text: Option<&str>, signed: bool) -> Response {
        let body = r#"{"error":{"code":"stamp_before_boot","message":"the enclave started moments ago","retry_after":0}}"#;
        let mut response = (
            AxumStatus::UNAUTHORIZED,
            [("content-type", "application/json")],
            body,
        )
            .into_response();
        if signed {
            let digest = answer_request_digest(&sent.method, &sent.path, &sent.body, stamp_text);
            let sig = AnswerSignature::sign(&self.key, &digest, 401, now(), HEAD, body.as_bytes());
            response.headers_mut().insert(
                ANSWER_HEADER,
                HeaderValue::from_str(&sig.to_header()).unwrap(),
            );
        }
        response
    }
}

/// The proxy's own answer when the enclave does not answer: never signed.
fn unreachable_enclave() -> Response {
    let body =
        json!({"error": {"code": "enclave_unavailable", "message": "no answer from the enclave"}});
    (AxumStatus::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn handle(State(enclave): State<Arc<Enclave>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap().to_vec();
    let path = parts.uri.path_and_query().unwrap().as_str().to_string();
    // Also under the prefix a proxy may be mounted at.
    if parts.uri.path().ends_with("/v1/attestation") {
        if enclave.attestation_down.load(Ordering::SeqCst) {
            return unreachable_enclave();
        }
        return enclave.attestation(parts.uri.query());
    }
    if parts.uri.path() == "/v1/health" {
        return axum::Json(json!({"status": "ready"})).into_response();
    }
    if parts.uri.path() == "/v1/unreachable" {
        return unreachable_enclave();
    }
    let stamp_text = parts
        .headers
        .get(STAMP_HEADER)
        .map(|v| v.to_str().unwrap().to_string());
    let mut stamp = None;
    if let Some(text) = &stamp_text {
        // Verified as the enclave does, over what arrived.
        let request = strongroom_auth::Request {
            method: parts.method.as_str(),
            path: &path,
            body: &bytes,
        };
        strongroom_auth::verify(
            Some(text),
            request,
            |id| (id == enclave.principal.id()).then_some(&enclave.principal),
            &mut enclave.replay_cache.lock().unwrap(),
            now(),
        )
        .unwrap();
        stamp = Some(strongroom_auth::Stamp::parse(text).unwrap());
    }
    let seen = Seen {
        method: parts.method.to_string(),
        path,
        body: bytes,
        content_type: parts
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string()),
        stamp,
    };
    enclave.seen.lock().unwrap().push(seen.clone());
    {
        let mut before_boot = enclave.before_boot.lock().unwrap();
        if before_boot.0 > 0 && stamp_text.is_some() {
            before_boot.0 -= 1;
            return enclave.before_boot(&seen, stamp_text.as_deref(), before_boot.1);
        }
    }
    enclave.answer(&seen, stamp_text.as_deref())
}

struct Server {
    url: String,
    enclave: Arc<Enclave>,
    root: strongroom_attestation::TrustedRoot,
}

impl Server {
    fn attestations(&self) -> usize {
        self.enclave.attestations.load(Ordering::SeqCst)
    }

    fn forge(&self, forgery: Forgery) {
        *self.enclave.forgery.lock().unwrap() = forgery;
    }

    fn seen(&self) -> Vec<Seen> {
        self.enclave.seen.lock().unwrap().clone()
    }
}

fn principal() -> SigningKey {
    SigningKey::ed25519_from_seed(&[42; 32])
}

/// A stand-in whose mock NSM reports `pcrs` (others zero).
fn spawn(pcrs: BTreeMap<u16, Vec<u8>>) -> Server {
    let nsm = MockNsm::ephemeral(MockNsmConfig {
        pcrs,
        ..MockNsmConfig::default()
    })
    .unwrap();
    let root = nsm.trusted_root();
    let enclave = Arc::new(Enclave {
        nsm,
        key: IdentityKey::from_seed(&[0x1d; 32]),
        stranger: IdentityKey::from_seed(&[0x57; 32]),
        forgery: Mutex::new(Forgery::None),
        replayed_nonce: Mutex::new(None),
        attestations: AtomicUsize::new(0),
        attestation_down: AtomicBool::new(false),
        asked_nonces: Mutex::new(Vec::new()),
        principal: principal().public(),
        replay_cache: Mutex::new(ReplayCache::new(1024)),
        seen: Mutex::new(Vec::new()),
        before_boot: Mutex::new((0, true)),
    });
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&enclave));
    Server {
        url: serve(app),
        enclave,
        root,
    }
}

/// Serves `app` on a loopback port from a thread of its own; its base URL.
fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
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
    format!("http://{addr}")
}

/// A verifier that trusts the stand-in's root and the good image.
fn verifier(server: &Server) -> Verifier {
    Verifier::new(good_pcrs())
        .unwrap()
        .with_root(server.root.clone())
}

fn client(server: &Server, verifier: Verifier) -> Client {
    Client::new(&server.url, Duration::from_secs(10))
        .unwrap()
        .with_verifier(Arc::new(verifier))
}

fn sign_digest(client: &Client, key_id: &str) -> Result<strongroom_client::Answer, ClientError> {
    let body = br#"{"digest":"0x00"}"#;
    let route = Route::Sign(Id::new(key_id).unwrap(), SignKind::Digest);
    client.stamped(&route, Some(body), &principal())
}

#[test]
fn genuine_answers_verify_and_the_identity_is_fetched_once() {
    let server = spawn(good_pcrs());
    let client = client(&server, verifier(&server));

    let keys = client.get(&Route::ListKeys).unwrap();
    assert_eq!(keys.body["keys"][0]["id"], "k");
    assert_eq!(keys.bytes, KEYS.as_bytes());
    let verified = keys.verified.expect("verified");
    assert_eq!(verified.identity.identity, server.enclave.key.public());
    assert_eq!(verified.identity.user_data, user_data(&server.enclave.key));
    assert_eq!(verified.status, 200);
    assert_eq!(server.attestations(), 1);
    // The document was asked for with a 32-byte nonce.
    let asked = server.enclave.asked_nonces.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].len(), 32);

    // The identity is cached: the next answers need no new document.
    client.get(&Route::GetPolicy).unwrap();
    let signed = sign_digest(&client, "k").unwrap();
    assert_eq!(signed.status, StatusCode::OK);
    assert!(signed.verified.is_some());
    let pending = sign_digest(&client, "pending").unwrap();
    assert_eq!(pending.status, StatusCode::ACCEPTED);
    assert_eq!(server.attestations(), 1);
    let identity = server.enclave.key.public();
    assert!(client.verifier().unwrap().identity(&identity).is_some());
    // The query is part of what the answer signs, exactly as sent.
    let mut url = client.url(&Route::ListKeys.path());
    url.query_pairs_mut().append_pair("label", "a b");
    let listed = client.request(Method::GET, &url, None, None).unwrap();
    assert!(listed.verified.is_some());
    assert_eq!(server.seen().last().unwrap().path, "/v1/keys?label=a+b");

    // A signed denial is an error, marked as verified.
    match sign_digest(&client, "denied") {
        Err(ClientError::Api {
            status: 403,
            code: Some(code),
            verification: Verification::Verified,
            summary,
            ..
        }) => {
            assert_eq!(code, "denied");
            assert_eq!(
                summary,
                "403 denied by rule \"cap\": value 2 ETH exceeds cap 1 ETH"
            );
        }
        other => panic!("expected a verified denial, got {other:?}"),
    }
}

#[test]
fn forged_or_altered_answers_are_refused() {
    let server = spawn(good_pcrs());
    let client = client(&server, verifier(&server));
    // Learn the genuine identity first, so every refusal below is about the answer.
    client.get(&Route::ListKeys).unwrap();

    server.forge(Forgery::FlippedSignature);
    let e = client.get(&Route::ListKeys).unwrap_err();
    assert!(matches!(e, ClientError::BadAnswerSignature(_)), "{e:?}");

    server.forge(Forgery::DenialAsAllow);
    let e = sign_digest(&client, "denied").unwrap_err();
    assert!(matches!(e, ClientError::BadAnswerSignature(_)), "{e:?}");

    server.forge(Forgery::ChangedSignatureValue);
    let e = sign_digest(&client, "k").unwrap_err();
    assert!(matches!(e, ClientError::BadAnswerSignature(_)), "{e:?}");

    server.forge(Forgery::ChangedStatus);
    let e = sign_digest(&client, "pending").unwrap_err();
    assert!(matches!(e, ClientError::BadAnswerSignature(_)), "{e:?}");

    // A genuine answer, but to another request: the stamp and path are not the same.
    server.forge(Forgery::OtherRequest);
    let e = sign_digest(&client, "k").unwrap_err();
    assert!(matches!(e, ClientError::BadAnswerSignature(_)), "{e:?}");
    let e = client.get(&Route::GetPolicy).unwrap_err();
    assert!(matches!(e, ClientError::BadAnswerSignature(_)), "{e:?}");

    server.forge(Forgery::Stale);
    let e = client.get(&Route::ListKeys).unwrap_err();
    assert!(matches!(e, ClientError::StaleAnswer { .. }), "{e:?}");

    server.forge(Forgery::Unsigned);
    let e = client.get(&Route::ListKeys).unwrap_err();
    assert!(
        matches!(e, ClientError::MissingAnswerSignature { status: 200 }),
        "{e:?}"
    );
    // An unsigned denial stays an error, reported as unverified.
    let e = sign_digest(&client, "denied").unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Api {
                status: 403,
                verification: Verification::Unsigned,
                ..
            }
        ),
        "{e:?}"
    );

    // None of these needed another document; the genuine answers still verify.
    assert_eq!(server.attestations(), 1);
    server.forge(Forgery::None);
    client.get(&Route::ListKeys).unwrap();
}

#[test]
fn an_identity_no_document_names_is_refused() {
    let server = spawn(good_pcrs());
    let client = client(&server, verifier(&server));
    server.forge(Forgery::Unattested);
    let e = client.get(&Route::ListKeys).unwrap_err();
    match e {
        ClientError::IdentityNotAttested { answered, attested } => {
            assert_eq!(answered, server.enclave.stranger.public());
            assert_eq!(attested, server.enclave.key.public());
        }
        other => panic!("expected IdentityNotAttested, got {other:?}"),
    }
    // It fetched documents to find out — nine: a document naming another identity may be
    // another replica's, behind a load balancer, so it asks again (eight times) — and
    // trusts only the identity the documents name.
    assert_eq!(server.attestations(), 9);
    let stranger = server.enclave.stranger.public();
    assert!(client.verifier().unwrap().identity(&stranger).is_none());
    let e = sign_digest(&client, "k").unwrap_err();
    assert!(
        matches!(e, ClientError::IdentityNotAttested { .. }),
        "{e:?}"
    );
}

#[test]
fn an_enclave_with_other_measurements_is_not_trusted() {
    // The parent runs another image: genuine NSM documents, other PCR0.
    let mut pcrs = good_pcrs();
    pcrs.insert(0, pcr(0x99));
    let server = spawn(pcrs);
    let client = client(&server, verifier(&server));
    let e = client.get(&Route::ListKeys).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Attestation(VerifyError::PcrMismatch { index: 0, .. })
        ),
        "{e:?}"
    );
    let e = sign_digest(&client, "k").unwrap_err();
    assert!(matches!(e, ClientError::Attestation(_)), "{e:?}");
    // Each answer asked for a document, and none was trusted.
    assert_eq!(server.attestations(), 2);
    let identity = server.enclave.key.public();
    assert!(client.verifier().unwrap().identity(&identity).is_none());
}

#[test]
fn a_replayed_attestation_document_is_refused() {
    let server = spawn(good_pcrs());
    *server.enclave.replayed_nonce.lock().unwrap() = Some(vec![0x0d; 32]);
    let client = client(&server, verifier(&server));
    let e = client.get(&Route::ListKeys).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Attestation(VerifyError::FieldMismatch { field: "nonce", .. })
        ),
        "{e:?}"
    );
    // Once the stand-in answers the client's own challenge, it passes.
    *server.enclave.replayed_nonce.lock().unwrap() = None;
    client.get(&Route::ListKeys).unwrap();
}

#[test]
fn a_debug_mode_enclave_is_refused_unless_allowed() {
    // PCR0 all zeros: nitro-cli --debug-mode, whose memory the parent can read.
    let mut pcrs = good_pcrs();
    pcrs.remove(&0);
    let server = spawn(pcrs.clone());
    let mut expected = pcrs;
    expected.insert(0, vec![0; 48]);
    let strict = Verifier::new(expected.clone())
        .unwrap()
        .with_root(server.root.clone());
    let e = client(&server, strict).get(&Route::ListKeys).unwrap_err();
    assert!(
        matches!(e, ClientError::Attestation(VerifyError::DebugMode)),
        "{e:?}"
    );
    // The same expectations with debug explicitly allowed: only debug mode was the reason.
    let lax = Verifier::new(expected)
        .unwrap()
        .with_root(server.root.clone())
        .allow_debug(true);
    client(&server, lax).get(&Route::ListKeys).unwrap();
}

#[test]
fn the_proxys_own_errors_are_unverified_and_unsigned_endpoints_are_not_checked() {
    let server = spawn(good_pcrs());
    let client = client(&server, verifier(&server));
    let url = client.url("/v1/unreachable");
    let e = client.request(Method::GET, &url, None, None).unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Api {
                status: 503,
                verification: Verification::Unsigned,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(
        "503 enclave_unavailable: no answer from the enclave (unverified: not signed by the enclave"
    ));
    assert_eq!(
        client.get_unsigned(ProxyRoute::Health).unwrap(),
        json!({"status": "ready"})
    );
    assert_eq!(server.attestations(), 0, "nothing needed an identity");
    // Without a verifier nothing is checked: an unsigned answer is returned as before.
    server.forge(Forgery::Unsigned);
    let plain = Client::new(&server.url, Duration::from_secs(10)).unwrap();
    let answer = plain.get(&Route::ListKeys).unwrap();
    assert!(answer.verified.is_none());
    let e = plain.request(Method::GET, &url, None, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "503 enclave_unavailable: no answer from the enclave"
    );
    assert!(matches!(
        client.get(&Route::ListKeys),
        Err(ClientError::MissingAnswerSignature { .. })
    ));
}

#[test]
fn attest_and_fetch_give_a_document_for_the_nonce() {
    let server = spawn(good_pcrs());
    let plain = Client::new(&server.url, Duration::from_secs(10)).unwrap();
    assert!(matches!(plain.attest(), Err(ClientError::NoVerifier)));
    let nonce = [0x42u8; 32];
    let document = plain.fetch_attestation(&nonce).unwrap();
    let v = verifier(&server);
    let identity = v.verify_attestation(&document, &nonce).unwrap();
    assert_eq!(identity.identity, server.enclave.key.public());
    let client = client(&server, verifier(&server));
    let identity = client.attest().unwrap();
    assert_eq!(identity.identity, server.enclave.key.public());
    assert_eq!(server.attestations(), 2);
    client.get(&Route::ListKeys).unwrap();
    assert_eq!(server.attestations(), 2, "attest() filled the cache");
}

#[test]
fn stamps_cover_the_exact_path_and_body_sent() {
    let server = spawn(good_pcrs());
    // A base path prefix is part of what the server sees, so the stamp covers it; the
    // stand-in serves every path, so the prefixed ones answer 404 (signed).
    let prefixed = Client::new(&format!("{}/prefix/", server.url), Duration::from_secs(5))
        .unwrap()
        .with_verifier(Arc::new(verifier(&server)));
    let key = principal();
    // Bytes as given, with odd spacing: signed and sent unchanged.
    let body = br#"{ "label" :"a b"}"#;
    let e = prefixed
        .stamped(&Route::CreateKey, Some(body), &key)
        .unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Api {
                status: 404,
                verification: Verification::Verified,
                ..
            }
        ),
        "{e:?}"
    );
    let first = server.seen().pop().unwrap();
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/prefix/v1/keys");
    assert_eq!(first.body, body);
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    let stamp = first.stamp.unwrap();
    let lead = stamp.expires_at - now();
    assert!(
        (STAMP_VALIDITY_SECS - 5..=STAMP_VALIDITY_SECS).contains(&lead),
        "{lead}"
    );
    assert_eq!(stamp.nonce.len(), strongroom_auth::STAMP_NONCE_LEN);

    // An id that needs escaping: the stamp and the answer cover the escaped form.
    let client = client(&server, verifier(&server));
    let e = client
        .stamped(&Route::DestroyKey(Id::new("a b/c").unwrap()), None, &key)
        .unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 404, .. }), "{e:?}");
    let second = server.seen().pop().unwrap();
    assert_eq!(second.method, "DELETE");
    assert_eq!(second.path, "/v1/keys/a%20b%2Fc");
    assert!(second.body.is_empty());
    assert_eq!(second.content_type, None);
    assert_ne!(stamp.nonce, second.stamp.unwrap().nonce, "a fresh nonce");

    let destroyed = client
        .stamped(&Route::DestroyKey(Id::new("k").unwrap()), None, &key)
        .unwrap();
    assert_eq!(destroyed.body["destroyed"], true);
    assert!(destroyed.verified.is_some());
}

#[test]
fn a_signed_stamp_before_boot_refusal_is_waited_out_once_an_unsigned_one_is_not() {
    let server = spawn(good_pcrs());
    let notices = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&notices);
    let client = client(&server, verifier(&server))
        .with_notices(move |n| sink.lock().unwrap().push(n.to_string()));

    *server.enclave.before_boot.lock().unwrap() = (1, true);
    let answer = sign_digest(&client, "k").unwrap();
    assert!(answer.verified.is_some());
    let stamps: Vec<_> = server
        .seen()
        .into_iter()
        .map(|s| s.stamp.unwrap().nonce)
        .collect();
    assert_eq!(stamps.len(), 2, "sent twice");
    assert_ne!(stamps[0], stamps[1], "stamped afresh");
    assert_eq!(
        notices.lock().unwrap().as_slice(),
        ["the enclave restarted moments ago; stamping again in 0 s"]
    );

    // Twice in a row: waited out only once.
    *server.enclave.before_boot.lock().unwrap() = (2, true);
    let e = sign_digest(&client, "k").unwrap_err();
    assert!(
        matches!(&e, ClientError::Api { status: 401, code: Some(c), .. } if c == "stamp_before_boot"),
        "{e:?}"
    );

    // Not signed by the enclave: not sent again (the parent could be hiding a request
    // that went through).
    *server.enclave.before_boot.lock().unwrap() = (1, false);
    let before = server.seen().len();
    let e = sign_digest(&client, "k").unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Api {
                status: 401,
                verification: Verification::Unsigned,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(server.seen().len(), before + 1);

    // Without a verifier the refusal is waited out as before.
    *server.enclave.before_boot.lock().unwrap() = (1, false);
    let plain = Client::new(&server.url, Duration::from_secs(10)).unwrap();
    sign_digest(&plain, "k").unwrap();
}

#[test]
fn pinned_genesis_mismatch_refuses_every_answer() {
    let server = spawn(good_pcrs());
    let pinned = verifier(&server).expect_genesis([0x01; 32]);
    let e = client(&server, pinned).get(&Route::ListKeys).unwrap_err();
    assert!(matches!(e, ClientError::GenesisMismatch { .. }), "{e:?}");
    let right = verifier(&server)
        .expect_genesis([0x6e; 32])
        .expect_key_check([0x0c; 16]);
    client(&server, right).get(&Route::ListKeys).unwrap();
}

#[test]
fn no_attestation_document_means_no_verified_answer() {
    let server = spawn(good_pcrs());
    server
        .enclave
        .attestation_down
        .store(true, Ordering::SeqCst);
    let client = client(&server, verifier(&server));
    let e = client.get(&Route::ListKeys).unwrap_err();
    match &e {
        ClientError::AttestationUnavailable(inner) => assert!(
            matches!(
                **inner,
                ClientError::Api {
                    status: 503,
                    verification: Verification::Unsigned,
                    ..
                }
            ),
            "{inner:?}"
        ),
        other => panic!("expected AttestationUnavailable, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("cannot fetch the enclave's attestation document: 503 "),
        "{e}"
    );
}

#[test]
fn a_replica_that_cannot_be_reached_or_is_unavailable_hands_over_to_the_next() {
    let server = spawn(good_pcrs());
    // A port nothing listens on, then a server answering 503 to everything, then the real one.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        format!("http://{addr}")
    };
    let down = serve(Router::new().fallback(|| async { unreachable_enclave() }));
    let client = Client::with_replicas(&[&closed, &down, &server.url], Duration::from_secs(10))
        .unwrap()
        .with_verifier(Arc::new(verifier(&server)));
    let answer = sign_digest(&client, "k").unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(client.base().as_str(), format!("{}/", server.url));
    // One stamp, sent on: the enclave saw it once.
    assert_eq!(server.seen().len(), 1);
    // Every replica down: the last one's answer is the error.
    let none = Client::with_replicas(&[&closed, &down], Duration::from_secs(10)).unwrap();
    let e = sign_digest(&none, "k").unwrap_err();
    assert_eq!(e.api_code(), None, "{e}");
    assert!(e.to_string().contains("503"), "{e}");
    // Replicas' URLs differ only in scheme, host and port.
    assert!(Client::with_replicas(&["http://a/x", "http://b/y"], Duration::from_secs(1)).is_err());
}
