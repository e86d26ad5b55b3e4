//! Arbitrary JSON-RPC bodies, validly stamped by a principal, answered by an unsealed
//! enclave that holds one key: parsing, batches, parameters and the signing paths behind
//! them. No input may panic it, and every answer is JSON-RPC (or empty for notifications).
#![no_main]

mod support;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_auth::{Request as StampedRequest, SigningKey, Stamp};
use strongroom_enclave::Enclave;
use strongroom_protocol::messages::{Call, Request, Response, SealedKey};

/// RFC 8032 test 2's key: the principal `p`, who may create keys and sign anything up to
/// 1 ETH on chain 1.
const SECRET: [u8; 32] = [
    0x4c, 0xcd, 0x08, 0x9b, 0x28, 0xff, 0x96, 0xda, 0x9d, 0xb6, 0xc3, 0x46, 0xec, 0x11, 0x4e,
    0x0f, 0x5b, 0x8a, 0x31, 0x9f, 0x35, 0xab, 0xa6, 0x24, 0xda, 0x8c, 0xf6, 0xed, 0x4f, 0xb8,
    0xa6, 0xfb,
];
const GENESIS: &str = r#"{"version": 1,
  "admins": {"threshold": 1, "keys": [{"algorithm": "ed25519", "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}]},
  "policy": {"version": 1, "chain_id": 1,
    "principals": [{"id": "p", "roles": [], "keys": [{"algorithm": "ed25519", "public": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"}]}],
    "rules": [{"name": "keys", "effect": "allow", "actions": ["create_key"]},
              {"name": "small", "effect": "allow", "actions": ["sign_transaction"],
               "conditions": {"chain_ids": [1], "max_value": "1 ether"}},
              {"name": "rest", "effect": "allow", "actions": ["sign_typed_data", "sign_message"]}]}}"#;

static NONCE: AtomicU64 = AtomicU64::new(1);

fn call(path: &str, body: &[u8], keys: Vec<SealedKey>) -> Call {
    let key = SigningKey::ed25519_from_seed(&SECRET);
    let mut nonce = vec![0u8; 16];
    nonce[..8].copy_from_slice(&NONCE.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 300;
    let stamp = Stamp::sign(&key, StampedRequest { method: "POST", path, body }, nonce, expires);
    Call {
        method: "POST".into(),
        path: path.into(),
        body: body.to_vec().into(),
        stamp: Some(stamp.to_header()),
        key: None,
        keys,
        audit_stored: None,
    }
}

/// An unsealed enclave and the one key it made.
static SETUP: LazyLock<(Enclave<MockNsm>, SealedKey)> = LazyLock::new(|| {
    let nsm = MockNsm::ephemeral(MockNsmConfig::default()).expect("mock NSM");
    // A large backlog: the fuzzer never confirms storing entries.
    let enclave = Enclave::new(nsm).with_audit_backlog(usize::MAX);
    support::unseal_first_boot(&enclave, GENESIS);
    let Response::Answer(created) =
        enclave.handle(Request::Call(call("/v1/keys", br#"{"label":"k"}"#, Vec::new())))
    else {
        panic!("no answer")
    };
    let created = created.effects.key_created.expect("key created");
    let key = SealedKey {
        id: created.info.id,
        sealed: created.sealed,
    };
    (enclave, key)
});

fuzz_target!(|data: &[u8]| {
    if data.len() > 64 * 1024 {
        return;
    }
    let (enclave, key) = &*SETUP;
    let Response::Answer(answer) = enclave.handle(Request::Call(call("/rpc", data, vec![key.clone()])))
    else {
        panic!("a call is always answered");
    };
    assert!(answer.signature.is_some(), "every answer is signed");
    if answer.status == 204 {
        assert!(answer.body.is_empty());
    } else {
        let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON answer");
        let first = body.as_array().and_then(|a| a.first()).unwrap_or(&body);
        assert_eq!(first["jsonrpc"], "2.0", "{body}");
    }
});
