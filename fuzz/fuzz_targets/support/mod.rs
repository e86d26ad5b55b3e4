//! What several fuzz targets share: an enclave unsealed through the real exchange, and a
//! short history of stamped calls.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use strongroom_attestation::AttestationDocument;
use strongroom_attestation::mock::MockNsm;
use strongroom_auth::{Request as StampedRequest, SigningKey, Stamp};
use strongroom_enclave::Enclave;
use strongroom_protocol::messages::{
    AuditRecord, Call, CompleteUnseal, Request, Response, SealedKey,
};

/// The root key every target's KMS releases.
pub const ROOT: [u8; 32] = [9u8; 32];

/// Plays KMS for a fresh challenge: the root key sealed for its RSA key.
pub fn envelope_for_challenge(enclave: &Enclave<MockNsm>) -> Vec<u8> {
    let Response::UnsealChallenge {
        attestation_document,
    } = enclave.handle(Request::BeginUnseal)
    else {
        panic!("no challenge")
    };
    // The document's payload is the third element of the COSE_Sign1 array.
    let sign1: ciborium::Value =
        ciborium::from_reader(attestation_document.as_slice()).expect("cbor");
    let payload = sign1
        .as_array()
        .and_then(|a| a[2].as_bytes())
        .expect("payload")
        .clone();
    let doc = AttestationDocument::from_payload(&payload).expect("payload");
    strongroom_envelope::seal_for_recipient(&doc.public_key.expect("key"), &ROOT).expect("envelope")
}

/// Unseals `enclave` on its first boot with `genesis`; returns the root-key check value
/// and the boot record.
pub fn unseal_first_boot_records(
    enclave: &Enclave<MockNsm>,
    genesis: &str,
) -> (Vec<u8>, Vec<AuditRecord>) {
    let envelope = envelope_for_challenge(enclave);
    let answer = enclave.handle(Request::CompleteUnseal(CompleteUnseal {
        ciphertext_for_recipient: envelope.into(),
        key_check: None,
        snapshot_len: None,
        genesis: Some(genesis.as_bytes().to_vec().into()),
        replica: None,
    }));
    assert!(matches!(answer, Response::ReplayFrom { seq: 0 }));
    match enclave.handle(Request::FinishBoot) {
        Response::Unsealed { key_check, audit } => (key_check.into_vec(), audit),
        other => panic!("no Unsealed answer: {other:?}"),
    }
}

/// Unseals `enclave` on its first boot with `genesis` and a fixed root key.
pub fn unseal_first_boot(enclave: &Enclave<MockNsm>, genesis: &str) {
    unseal_first_boot_records(enclave, genesis);
}

/// Reads a whole snapshot; returns its position and sealed bytes.
pub fn read_snapshot(enclave: &Enclave<MockNsm>) -> (u64, Vec<u8>) {
    let mut bytes = Vec::new();
    loop {
        match enclave.handle(Request::ReadSnapshot {
            offset: bytes.len() as u64,
        }) {
            Response::Snapshot {
                seq,
                total_len,
                bytes: part,
                ..
            } => {
                bytes.extend_from_slice(&part);
                if bytes.len() as u64 >= total_len {
                    return (seq, bytes);
                }
            }
            other => panic!("no snapshot: {other:?}"),
        }
    }
}

/// The principal of [`signer_genesis`].
pub fn signer() -> SigningKey {
    SigningKey::ed25519_from_seed(&[0x42; 32])
}

/// A genesis with one admin and principal `p` (the [`signer`]), who may create keys and
/// sign digests.
pub fn signer_genesis() -> String {
    let public = hex::encode(signer().public().public_bytes());
    format!(
        r#"{{"version": 1,
  "admins": {{"threshold": 1, "keys": [{{"algorithm": "ed25519", "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"}}]}},
  "policy": {{"version": 1,
    "principals": [{{"id": "p", "roles": [], "keys": [{{"algorithm": "ed25519", "public": "{public}"}}]}}],
    "rules": [{{"name": "keys", "effect": "allow", "actions": ["create_key", "sign_digest"]}}]}}}}"#
    )
}

/// Relays one call stamped by [`signer`] (nonce from `n`); returns the answer.
fn stamped(
    enclave: &Enclave<MockNsm>,
    method: &str,
    path: &str,
    body: &[u8],
    key: Option<SealedKey>,
    n: u64,
) -> strongroom_protocol::messages::Answer {
    stamped_by(enclave, &signer(), method, path, body, key, n, 300).0
}

/// Relays one call stamped by `by` (nonce from `n`, valid `validity` seconds), as the proxy
/// relays it (with the key blob the path needs, every audit entry acknowledged); returns
/// the answer and the stamp header.
#[allow(clippy::too_many_arguments)]
pub fn stamped_by(
    enclave: &Enclave<MockNsm>,
    by: &SigningKey,
    method: &str,
    path: &str,
    body: &[u8],
    key: Option<SealedKey>,
    n: u64,
    validity: u64,
) -> (strongroom_protocol::messages::Answer, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    let stamp = Stamp::sign(
        by,
        StampedRequest { method, path, body },
        nonce.to_vec(),
        now + validity,
    )
    .to_header();
    match enclave.handle(Request::Call(Call {
        method: method.into(),
        path: path.into(),
        body: body.to_vec().into(),
        stamp: Some(stamp.clone()),
        key,
        keys: Vec::new(),
        audit_stored: Some(u64::MAX),
    })) {
        Response::Answer(answer) => (answer, stamp),
        other => panic!("no answer: {other:?}"),
    }
}

/// Creates a key and signs `n` digests as [`signer`]; returns the records they appended.
pub fn sign_some(enclave: &Enclave<MockNsm>, n: u64) -> Vec<AuditRecord> {
    let created = stamped(enclave, "POST", "/v1/keys", br#"{"label":"fuzz"}"#, None, 0);
    let mut records = created.effects.audit;
    let key = created.effects.key_created.expect("a key");
    let sealed = SealedKey {
        id: key.info.id.clone(),
        sealed: key.sealed,
    };
    let path = format!("/v1/keys/{}/sign/digest", key.info.id);
    for i in 0..n {
        let body = format!(r#"{{"digest":"0x{}"}}"#, format!("{:02x}", i).repeat(32));
        let answer = stamped(
            enclave,
            "POST",
            &path,
            body.as_bytes(),
            Some(sealed.clone()),
            i + 1,
        );
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        records.extend(answer.effects.audit);
    }
    records
}
