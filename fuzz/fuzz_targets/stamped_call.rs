//! Every stamped REST handler on generated requests, stamped with a principal's, an
//! approver's or the admin's real key, as the proxy relays them (with the key blob the
//! path needs): the input chooses the route, who stamps, whether the id is a real one, and
//! the body. No input may panic the enclave, every answer is signed by its identity, and a
//! signature is only ever returned with its record in the chain.
#![no_main]

mod support;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use strongroom_api::{Id, Route, SignKind};
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_auth::SigningKey;
use strongroom_enclave::Enclave;
use strongroom_identity::{AnswerSignature, answer_request_digest};
use strongroom_protocol::messages::SealedKey;

/// The admin of the genesis: RFC 8032's first test key, whose secret is public.
fn admin() -> SigningKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        &mut seed,
    )
    .expect("hex");
    SigningKey::ed25519_from_seed(&seed)
}

/// The approver `q`.
fn approver() -> SigningKey {
    SigningKey::ed25519_from_seed(&[0x43; 32])
}

/// `p` may do everything within limits; transfers over 1 ETH wait for `q`.
fn genesis() -> String {
    let key = |k: &SigningKey| {
        format!(
            r#"{{"algorithm": "ed25519", "public": "{}"}}"#,
            hex::encode(k.public().public_bytes())
        )
    };
    format!(
        r#"{{"version": 1,
  "admins": {{"threshold": 1, "keys": [{admin}]}},
  "policy": {{"version": 1,
    "principals": [{{"id": "p", "roles": [], "keys": [{p}]}}, {{"id": "q", "roles": [], "keys": [{q}]}}],
    "rules": [
      {{"name": "keys", "effect": "allow", "principals": ["p"], "actions": ["create_key", "destroy_key"]}},
      {{"name": "small", "effect": "allow", "principals": ["p"], "actions": ["sign_transaction"],
        "conditions": {{"chain_ids": [1], "max_value": "1 ether", "allow_contract_creation": true,
                        "erc20": [{{"token": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "max_amount": "1000",
                                    "spenders": ["0x3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD"]}}],
                        "velocity": [{{"scope": "key", "window": "1h", "max_count": 1000000}}]}}}},
      {{"name": "big", "effect": "allow", "principals": ["p"], "actions": ["sign_transaction"],
        "conditions": {{"chain_ids": [1], "max_value": "100 ether",
                        "approvals": {{"threshold": 1, "approvers": ["q"]}}}}}},
      {{"name": "typed", "effect": "allow", "principals": ["p"], "actions": ["sign_typed_data"],
        "conditions": {{"typed_data": {{"allow_unknown_types": true,
                        "permit_spenders": ["0x3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD"]}}}}}},
      {{"name": "rest", "effect": "allow", "principals": ["p"], "actions": ["sign_message", "sign_digest"]}}]}}}}"#,
        admin = key(&admin()),
        p = key(&support::signer()),
        q = key(&approver()),
    )
}

/// An unsealed enclave with a signing key, a key to destroy, and a request waiting for
/// `q`.
struct Fixture {
    enclave: Enclave<MockNsm>,
    key: SealedKey,
    doomed: SealedKey,
    request: String,
}

static NONCE: AtomicU64 = AtomicU64::new(1 << 40);

/// One stamped call; checks that the answer is signed over exactly this request.
fn call(
    enclave: &Enclave<MockNsm>,
    by: &SigningKey,
    route: &Route,
    body: &[u8],
    key: Option<SealedKey>,
) -> strongroom_protocol::messages::Answer {
    let n = NONCE.fetch_add(1, Ordering::Relaxed);
    let (method, path) = (route.method(), route.path());
    // The longest validity the enclave accepts, and the only one a process this young
    // takes (a stamp must outlive the enclave's start by 300 s).
    let (answer, stamp) = support::stamped_by(enclave, by, method, &path, body, key, n, 300);
    let header = answer
        .signature
        .as_deref()
        .expect("every answer of an unsealed enclave is signed");
    let signature = AnswerSignature::parse(header).expect("a well-formed answer signature");
    let digest = answer_request_digest(method, &path, body, Some(&stamp));
    signature
        .verify(&digest, answer.status, &answer.body)
        .expect("the answer's signature covers this request, its status and body");
    answer
}

fn create_key(enclave: &Enclave<MockNsm>, label: &str) -> SealedKey {
    let body = format!(r#"{{"label":"{label}"}}"#);
    let answer = call(
        enclave,
        &support::signer(),
        &Route::CreateKey,
        body.as_bytes(),
        None,
    );
    let created = answer
        .effects
        .key_created
        .unwrap_or_else(|| panic!("no key: {}", String::from_utf8_lossy(&answer.body)));
    SealedKey {
        id: created.info.id,
        sealed: created.sealed,
    }
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let enclave = Enclave::new(MockNsm::ephemeral(MockNsmConfig::default()).expect("NSM"));
    support::unseal_first_boot(&enclave, &genesis());
    let key = create_key(&enclave, "hot");
    let doomed = create_key(&enclave, "doomed");
    let route = Route::Sign(Id::new(key.id.clone()).expect("id"), SignKind::Transaction);
    let body = br#"{"transaction": {"type": "0x2", "chainId": "0x1", "nonce": "0x0",
        "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "value": "0x8ac7230489e80000",
        "gas": "0x5208", "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00"}}"#;
    let answer = call(
        &enclave,
        &support::signer(),
        &route,
        body,
        Some(key.clone()),
    );
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let pending = answer.effects.pending_request.expect("a waiting request");
    Fixture {
        enclave,
        key,
        doomed,
        request: pending.request_id,
    }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let [route, who, body @ ..] = data else {
        return;
    };
    let real = who & 0x80 == 0;
    let id = |real_id: &str| Id::new(if real { real_id } else { "0123456789abcdef" }).expect("id");
    let key_id = id(&f.key.id);
    let (route, key) = match route % 14 {
        0 => (Route::CreateKey, None),
        1 => (Route::DestroyKey(id(&f.doomed.id)), Some(f.doomed.clone())),
        2 => (
            Route::Sign(key_id, SignKind::Transaction),
            Some(f.key.clone()),
        ),
        3 => (
            Route::Sign(key_id, SignKind::TypedData),
            Some(f.key.clone()),
        ),
        4 => (Route::Sign(key_id, SignKind::Message), Some(f.key.clone())),
        5 => (Route::Sign(key_id, SignKind::Digest), Some(f.key.clone())),
        6 => (Route::Propose, None),
        7 => (Route::ApproveProposal(id("0123456789abcdef")), None),
        8 => (Route::CancelProposal(id("0123456789abcdef")), None),
        9 => (Route::ApproveRequest(id(&f.request)), Some(f.key.clone())),
        10 => (Route::ExecuteRequest(id(&f.request)), Some(f.key.clone())),
        11 => (Route::CancelRequest(id(&f.request)), Some(f.key.clone())),
        12 => (Route::Rpc, None),
        _ => (Route::Sign(key_id, SignKind::Digest), None),
    };
    let by = match who % 3 {
        0 => support::signer(),
        1 => approver(),
        _ => admin(),
    };
    let answer = call(&f.enclave, &by, &route, body, key);
    assert!(answer.body.len() <= 4 << 20, "an answer beyond any frame");
    // A signature returned means its record is in the chain.
    if answer.body.is_empty() {
        // JSON-RPC notifications are answered with nothing.
        assert!(matches!(route, Route::Rpc), "an empty answer to {route:?}");
        return;
    }
    let json: serde_json::Value = serde_json::from_slice(&answer.body).expect("answers are JSON");
    let signed = json.get("signature").is_some_and(|s| !s.is_null())
        || json.get("raw").is_some_and(|s| !s.is_null());
    if answer.status == 200 && signed {
        assert!(
            answer
                .effects
                .audit
                .iter()
                .any(|r| r.line.contains("\"output\"")),
            "a signature without its record"
        );
    }
});
