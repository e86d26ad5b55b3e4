//! The hostile-parent suite: the real enclave (its request handler, and its serving loop
//! on a real Unix socket) behind a scripted parent that lies — about blobs, snapshots, the
//! log it replays, the root key KMS released, stamps and approvals, framing, and what it
//! stored. Each named attack asserts the enclave's refusal and that nothing was signed (no
//! signature in the answer, no signing record in the chain).
//!
//! `make test` runs this file on its own with its output shown: it prints how many attacks
//! ran and how many were refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, SystemTime};

use serde_bytes::ByteBuf;
use serde_json::{Value, json};
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{Expectations, verify};
use strongroom_auth::{Request as StampedRequest, Stamp};
use strongroom_identity::AuditEntry;
use strongroom_protocol::messages::{CompleteUnseal, ErrorCode, Phase, Request, Response};
use support::{
    Keys, Proxy, Stored, boot, challenge, code, dev_rules, genesis, now, spec, stamp, stamp_at,
};

const ROOT: [u8; 32] = [0x48; 32];
const OTHER_ROOT: [u8; 32] = [0x49; 32];
const ETH: u128 = 1_000_000_000_000_000_000;

/// A deployment on the development rules with one key; returns the key id.
fn deployment() -> (Keys, Proxy, String) {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    let id = proxy.create_key_id(&keys.dev, "hot");
    (keys, proxy, id)
}

fn digest_path(id: &str) -> String {
    format!("/v1/keys/{id}/sign/digest")
}

fn digest_body(byte: u8) -> Value {
    json!({"digest": format!("0x{}", hex::encode([byte; 32]))})
}

fn transfer(nonce: u64, value: u128) -> Value {
    json!({"transaction": {"type": "0x2", "chainId": "0x1", "nonce": format!("0x{nonce:x}"),
        "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "value": format!("0x{value:x}"),
        "gas": "0x5208", "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00"}})
}

/// Whether a chain line records a signature (a decision or a completed request with its
/// output).
fn records_a_signature(line: &str) -> bool {
    let entry = AuditEntry::parse_line(line).unwrap();
    let fields = entry.fields().unwrap();
    fields.get("output").is_some_and(|o| !o.is_null())
}

/// The answer carries no signature and the chain grew by no signing record since `from`.
fn nothing_signed(proxy: &Proxy, from: usize, reply: &support::Reply) {
    for field in ["signature", "raw", "result"] {
        assert!(
            reply.body.get(field).is_none_or(Value::is_null),
            "the answer carries {field}: {:?}",
            reply.body
        );
    }
    for line in &proxy.audit[from..] {
        assert!(!records_a_signature(line), "signed: {line}");
    }
}

/// Refused with `status` (and, when given, `code`), nothing signed.
fn refused(proxy: &Proxy, from: usize, reply: &support::Reply, status: u16, code: Option<&str>) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    if let Some(code) = code {
        assert_eq!(reply.error_code(), code, "{:?}", reply.body);
    }
    nothing_signed(proxy, from, reply);
}

/// Signs a digest with the key under `id`, with whatever blob the parent now files there.
fn sign_with_blob(proxy: &mut Proxy, keys: &Keys, id: &str, blob: Option<Vec<u8>>) {
    match blob {
        Some(b) => proxy.blobs.insert(id.to_string(), b),
        None => proxy.blobs.remove(id),
    };
    let from = proxy.audit.len();
    let r = proxy.call(&keys.dev, "POST", &digest_path(id), &digest_body(1));
    assert!(r.status >= 400, "signed with a lying blob: {:?}", r.body);
    nothing_signed(proxy, from, &r);
}

// ---- Sealed key blobs ---------------------------------------------------------------

fn tampered_key_blob() {
    let (keys, mut proxy, id) = deployment();
    for i in [0usize, 10, 30, 60] {
        let mut bad = proxy.blobs[&id].clone();
        let i = i.min(bad.len() - 1);
        bad[i] ^= 0x01;
        let from = proxy.audit.len();
        proxy.blobs.insert(id.clone(), bad);
        let r = proxy.call(&keys.dev, "POST", &digest_path(&id), &digest_body(1));
        refused(&proxy, from, &r, 502, Some("blob_rejected"));
    }
}

fn key_blob_filed_under_another_key() {
    let (keys, mut proxy, a) = deployment();
    let b = proxy.create_key_id(&keys.dev, "cold");
    let blob_a = proxy.blobs[&a].clone();
    sign_with_blob(&mut proxy, &keys, &b, Some(blob_a));
}

fn truncated_key_blob() {
    let (keys, mut proxy, id) = deployment();
    let blob = proxy.blobs[&id].clone();
    for len in [0, 1, 26, blob.len() - 1] {
        sign_with_blob(&mut proxy, &keys, &id, Some(blob[..len].to_vec()));
    }
}

fn key_blob_of_another_deployment() {
    let (keys, mut proxy, _) = deployment();
    let mut other = Proxy::first_boot(&OTHER_ROOT, &genesis(&keys, dev_rules()));
    let foreign = other.create_key_id(&keys.dev, "foreign");
    let blob = other.blobs[&foreign].clone();
    sign_with_blob(&mut proxy, &keys, &foreign, Some(blob));
}

fn destroyed_key_blob_presented_again() {
    let (keys, mut proxy, id) = deployment();
    let blob = proxy.blobs[&id].clone();
    let r = proxy.call(&keys.dev, "DELETE", &format!("/v1/keys/{id}"), &Value::Null);
    assert_eq!(r.status, 200, "{:?}", r.body);
    sign_with_blob(&mut proxy, &keys, &id, Some(blob.clone()));
    // And after a restart, from the snapshot and the log.
    proxy.snapshot();
    proxy.restart(&ROOT);
    sign_with_blob(&mut proxy, &keys, &id, Some(blob));
}

fn key_blob_withheld() {
    let (keys, mut proxy, id) = deployment();
    sign_with_blob(&mut proxy, &keys, &id, None);
}

// ---- Snapshots, the replayed log, the root key --------------------------------------

/// A later boot of a fresh enclave from `stored` and `chain`; must be refused with `want`.
fn later_boot_refused(root: &[u8], stored: &Stored, chain: &[String], want: ErrorCode) {
    let booted = boot();
    let answer = booted.unseal_with(root, Some(stored), None, chain);
    assert_eq!(code(answer), want);
    assert_ne!(
        booted.enclave.handle(Request::Status),
        Response::Status(Phase::Ready),
        "unsealed after a refusal"
    );
}

/// A deployment whose log goes on past its snapshot: two keys made after it.
fn deployment_with_tail() -> (Keys, Proxy) {
    let (keys, mut proxy, _) = deployment();
    proxy.snapshot();
    proxy.create_key_id(&keys.dev, "after-1");
    proxy.create_key_id(&keys.dev, "after-2");
    assert!(proxy.audit.len() as u64 >= proxy.stored.snapshot_seq + 2);
    (keys, proxy)
}

fn tampered_snapshot() {
    let (_, proxy, _) = deployment();
    for i in [0usize, 12, proxy.stored.snapshot.len() / 2] {
        let mut stored = proxy.stored.clone();
        stored.snapshot[i] ^= 0x01;
        later_boot_refused(&ROOT, &stored, &proxy.audit, ErrorCode::BlobRejected);
    }
}

fn truncated_snapshot() {
    let (_, proxy, _) = deployment();
    let mut stored = proxy.stored.clone();
    stored.snapshot.truncate(stored.snapshot.len() - 16);
    later_boot_refused(&ROOT, &stored, &proxy.audit, ErrorCode::BlobRejected);
}

fn snapshot_longer_than_announced() {
    let (_, proxy, _) = deployment();
    let booted = boot();
    let envelope = challenge(&booted.enclave, &booted.trusted, &ROOT);
    let snapshot = &proxy.stored.snapshot;
    let answer = booted
        .enclave
        .handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: Some(ByteBuf::from(proxy.stored.key_check.clone())),
            snapshot_len: Some(snapshot.len() as u64 - 1),
            genesis: None,
            replica: None,
        }));
    assert!(matches!(answer, Response::SnapshotReceived { .. }));
    let answer = booted.enclave.handle(Request::SnapshotChunk {
        bytes: snapshot.clone().into(),
    });
    assert_eq!(code(answer), ErrorCode::BadRequest);
    assert_eq!(
        code(booted.enclave.handle(Request::FinishBoot)),
        ErrorCode::WrongPhase
    );
}

fn snapshot_of_another_deployment() {
    let (keys, proxy, _) = deployment();
    let other = Proxy::first_boot(&OTHER_ROOT, &genesis(&keys, dev_rules()));
    let stored = Stored {
        snapshot: other.stored.snapshot.clone(),
        ..proxy.stored.clone()
    };
    later_boot_refused(&ROOT, &stored, &proxy.audit, ErrorCode::BlobRejected);
}

/// Review finding F5 at the enclave: KMS releases a root key of the parent's (its own KMS
/// key for this image) and the parent states that key's check value; the state was sealed
/// under the deployment's root, so it is refused before any of it is read.
fn root_key_the_state_was_not_sealed_under() {
    let (keys, proxy, _) = deployment();
    let impostor = Proxy::first_boot(&OTHER_ROOT, &genesis(&keys, dev_rules()));
    let stored = Stored {
        key_check: impostor.stored.key_check.clone(),
        ..proxy.stored.clone()
    };
    later_boot_refused(&OTHER_ROOT, &stored, &proxy.audit, ErrorCode::BlobRejected);
}

fn wrong_root_key_check_value() {
    let (_, proxy, _) = deployment();
    let mut stored = proxy.stored.clone();
    stored.key_check[0] ^= 0x01;
    later_boot_refused(&ROOT, &stored, &proxy.audit, ErrorCode::WrongRootKey);
}

fn genesis_handed_to_a_later_boot() {
    let (keys, proxy, _) = deployment();
    let booted = boot();
    let envelope = challenge(&booted.enclave, &booted.trusted, &ROOT);
    let answer = booted
        .enclave
        .handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: Some(ByteBuf::from(proxy.stored.key_check.clone())),
            snapshot_len: Some(proxy.stored.snapshot.len() as u64),
            genesis: Some(ByteBuf::from(genesis(&keys, dev_rules()))),
            replica: None,
        }));
    assert_eq!(code(answer), ErrorCode::BadRequest);
}

fn records_offered_to_a_first_boot() {
    let (keys, proxy, _) = deployment();
    let booted = boot();
    let answer = booted.unseal_records(
        &ROOT,
        None,
        Some(&genesis(&keys, dev_rules())),
        &support::records(&proxy.audit),
    );
    assert_eq!(code(answer), ErrorCode::BadRequest);
}

fn tampered_record_in_the_replayed_tail() {
    let (_, proxy) = deployment_with_tail();
    let mut chain = proxy.audit.clone();
    let last = chain.len() - 1;
    chain[last] = chain[last].replacen("after-2", "after-3", 1);
    assert_ne!(chain[last], proxy.audit[last]);
    later_boot_refused(&ROOT, &proxy.stored, &chain, ErrorCode::BlobRejected);
}

fn replayed_records_reordered() {
    let (_, proxy) = deployment_with_tail();
    let mut chain = proxy.audit.clone();
    let n = chain.len();
    chain.swap(n - 1, n - 2);
    later_boot_refused(&ROOT, &proxy.stored, &chain, ErrorCode::BlobRejected);
}

fn record_dropped_from_the_tail() {
    let (_, proxy) = deployment_with_tail();
    let mut chain = proxy.audit.clone();
    let n = chain.len();
    chain.remove(n - 2);
    later_boot_refused(&ROOT, &proxy.stored, &chain, ErrorCode::BlobRejected);
}

fn tail_from_another_deployment() {
    let (keys, proxy) = deployment_with_tail();
    let mut other = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    other.create_key_id(&keys.dev, "x");
    other.create_key_id(&keys.dev, "y");
    other.create_key_id(&keys.dev, "z");
    let mut chain = proxy.audit.clone();
    let n = chain.len();
    chain[n - 1] = other.audit[n - 1].clone();
    later_boot_refused(&ROOT, &proxy.stored, &chain, ErrorCode::BlobRejected);
}

/// The enclave asks for the records from its snapshot on; the parent answers with a page
/// that starts elsewhere.
fn replay_page_from_another_position() {
    let (_, proxy) = deployment_with_tail();
    let booted = boot();
    let mut records = support::records(&proxy.audit);
    records.retain(|r| r.seq > proxy.stored.snapshot_seq);
    let answer = booted.unseal_records(&ROOT, Some(&proxy.stored), None, &records);
    assert!(
        matches!(answer, Response::Error(_)),
        "a page skipping the asked record was accepted: {answer:?}"
    );
}

/// The parent boots from an old snapshot to make the enclave forget transfers counted
/// against a velocity limit; the records after the snapshot are replayed, so the limit
/// holds.
fn old_snapshot_to_forget_velocity() {
    let (keys, mut proxy, id) = deployment();
    let old = proxy.stored.clone();
    let path = format!("/v1/keys/{id}/sign/transaction");
    for nonce in 0..5 {
        let r = proxy.call(&keys.dev, "POST", &path, &transfer(nonce, ETH));
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    proxy.stored = old;
    proxy.restart(&ROOT);
    let from = proxy.audit.len();
    let r = proxy.call(&keys.dev, "POST", &path, &transfer(5, ETH));
    refused(&proxy, from, &r, 403, None);
    assert!(r.message().contains("velocity"), "{}", r.message());
}

fn requests_out_of_phase() {
    let booted = boot();
    for request in [
        Request::FinishBoot,
        Request::SnapshotChunk {
            bytes: vec![1, 2, 3].into(),
        },
        Request::ReplayRecords { records: vec![] },
        Request::ReadSnapshot { offset: 0 },
    ] {
        let refusal = code(booted.enclave.handle(request));
        assert!(
            matches!(refusal, ErrorCode::WrongPhase | ErrorCode::NotReady),
            "{refusal:?}"
        );
    }
    let call = booted
        .enclave
        .handle(Request::Call(strongroom_protocol::messages::Call {
            method: "POST".into(),
            path: "/v1/keys".into(),
            body: b"{}".to_vec().into(),
            stamp: None,
            key: None,
            keys: Vec::new(),
            audit_stored: Some(0),
        }));
    // Answered 503 not_ready, unsigned (there is no identity yet), with no effects.
    let Response::Answer(answer) = call else {
        panic!("not an answer: {call:?}")
    };
    assert_eq!(answer.status, 503);
    assert!(answer.signature.is_none() && answer.effects.audit.is_empty());
    assert!(answer.effects.key_created.is_none());
}

// ---- KMS and attestation ------------------------------------------------------------

fn complete(booted: &support::Booted, envelope: Vec<u8>, keys: &Keys) -> Response {
    booted
        .enclave
        .handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: None,
            snapshot_len: None,
            genesis: Some(ByteBuf::from(genesis(keys, dev_rules()))),
            replica: None,
        }))
}

/// Tampered envelopes all fail alike, and each attempt burns its challenge: no padding
/// oracle to query.
fn kms_envelope_tampered_as_a_padding_oracle() {
    let keys = Keys::new();
    let booted = boot();
    let mut messages = std::collections::BTreeSet::new();
    for position in [0.95f64, 0.5, 0.75] {
        let mut envelope = challenge(&booted.enclave, &booted.trusted, &ROOT);
        let i = (envelope.len() as f64 * position) as usize;
        envelope[i] ^= 0x01;
        let Response::Error(e) = complete(&booted, envelope, &keys) else {
            panic!("a tampered envelope opened")
        };
        assert_eq!(e.code, ErrorCode::UnsealFailed);
        messages.insert(e.message);
    }
    assert_eq!(messages.len(), 1, "distinguishable failures: {messages:?}");
}

fn kms_envelope_replayed_after_a_failed_attempt() {
    let keys = Keys::new();
    let booted = boot();
    let envelope = challenge(&booted.enclave, &booted.trusted, &ROOT);
    assert_eq!(
        code(complete(&booted, b"junk".to_vec(), &keys)),
        ErrorCode::UnsealFailed
    );
    assert_eq!(
        code(complete(&booted, envelope, &keys)),
        ErrorCode::UnsealFailed
    );
}

fn kms_envelope_from_an_earlier_challenge() {
    let keys = Keys::new();
    let booted = boot();
    let first = challenge(&booted.enclave, &booted.trusted, &ROOT);
    let _second = challenge(&booted.enclave, &booted.trusted, &ROOT);
    assert_eq!(
        code(complete(&booted, first, &keys)),
        ErrorCode::UnsealFailed
    );
}

fn kms_envelope_over_the_limit() {
    let keys = Keys::new();
    let booted = boot();
    let _ = challenge(&booted.enclave, &booted.trusted, &ROOT);
    assert_eq!(
        code(complete(&booted, vec![0x30; 1 << 20], &keys)),
        ErrorCode::UnsealFailed
    );
}

/// The parent runs the image in debug mode (its memory open to the parent): the document
/// carries all-zero PCRs, which KMS's policy and every verifier refuse.
fn debug_mode_pcrs() {
    use strongroom_attestation::Nsm;
    let nsm = MockNsm::ephemeral(MockNsmConfig {
        pcrs: Default::default(),
        ..MockNsmConfig::default()
    })
    .unwrap();
    let booted = support::Booted {
        trusted: nsm.trusted_root(),
        enclave: strongroom_enclave::Enclave::new(nsm),
    };
    let Response::UnsealChallenge {
        attestation_document,
    } = booted.enclave.handle(Request::BeginUnseal)
    else {
        panic!("no challenge")
    };
    let refused = verify(
        &attestation_document,
        &Expectations::new(SystemTime::now()).root(booted.trusted.clone()),
    );
    assert!(
        refused.is_err(),
        "a debug-mode document verified: {refused:?}"
    );
    let e = format!("{:?}", refused.unwrap_err()).to_lowercase();
    assert!(e.contains("debug"), "{e}");
}

// ---- Stamps -------------------------------------------------------------------------

/// Sends `body` to `path` with this stamp header; must be refused, nothing signed.
fn stamped_refused(proxy: &mut Proxy, path: &str, body: &[u8], header: Option<String>) {
    let from = proxy.audit.len();
    let r = proxy.raw("POST", path, body, header);
    assert!(
        r.status == 401 || r.status == 403,
        "{}: {:?}",
        r.status,
        r.body
    );
    nothing_signed(proxy, from, &r);
}

fn forged_stamp_signature() {
    let (keys, mut proxy, id) = deployment();
    let path = digest_path(&id);
    let body = serde_json::to_vec(&digest_body(2)).unwrap();
    let header = stamp(&keys.dev, "POST", &path, &body);
    // Flip one character of the signature (the header's last field).
    let mut forged = header.into_bytes();
    let n = forged.len();
    forged[n - 2] = if forged[n - 2] == b'A' { b'B' } else { b'A' };
    stamped_refused(
        &mut proxy,
        &path,
        &body,
        Some(String::from_utf8(forged).unwrap()),
    );
}

fn replayed_stamp() {
    let (keys, mut proxy, id) = deployment();
    let path = digest_path(&id);
    let body = serde_json::to_vec(&digest_body(3)).unwrap();
    let header = stamp(&keys.dev, "POST", &path, &body);
    let r = proxy.raw("POST", &path, &body, Some(header.clone()));
    assert_eq!(r.status, 200, "{:?}", r.body);
    stamped_refused(&mut proxy, &path, &body, Some(header));
}

fn stamp_moved_to_another_key() {
    let (keys, mut proxy, a) = deployment();
    let b = proxy.create_key_id(&keys.dev, "cold");
    let body = serde_json::to_vec(&digest_body(4)).unwrap();
    let header = stamp(&keys.dev, "POST", &digest_path(&a), &body);
    stamped_refused(&mut proxy, &digest_path(&b), &body, Some(header));
}

fn body_changed_under_a_stamp() {
    let (keys, mut proxy, id) = deployment();
    let path = digest_path(&id);
    let body = serde_json::to_vec(&digest_body(5)).unwrap();
    let header = stamp(&keys.dev, "POST", &path, &body);
    let other = serde_json::to_vec(&digest_body(6)).unwrap();
    stamped_refused(&mut proxy, &path, &other, Some(header));
}

fn stamp_bound_to_another_deployment() {
    let (keys, mut proxy, id) = deployment();
    let path = digest_path(&id);
    let body = serde_json::to_vec(&digest_body(7)).unwrap();
    let header = Stamp::sign_for(
        &keys.dev,
        StampedRequest {
            method: "POST",
            path: &path,
            body: &body,
        },
        vec![7; 16],
        now() + 300,
        Some([0x77; 32]),
    )
    .to_header();
    stamped_refused(&mut proxy, &path, &body, Some(header));
}

fn expired_stamp() {
    let (keys, mut proxy, id) = deployment();
    let path = digest_path(&id);
    let body = serde_json::to_vec(&digest_body(8)).unwrap();
    let header = stamp_at(&keys.dev, "POST", &path, &body, now() - 600);
    stamped_refused(&mut proxy, &path, &body, Some(header));
}

fn stamp_by_a_key_no_principal_holds() {
    let (keys, mut proxy, id) = deployment();
    let path = digest_path(&id);
    let body = serde_json::to_vec(&digest_body(9)).unwrap();
    let header = stamp(&keys.stranger, "POST", &path, &body);
    stamped_refused(&mut proxy, &path, &body, Some(header));
}

fn stamp_stripped() {
    let (_, mut proxy, id) = deployment();
    let path = digest_path(&id);
    let body = serde_json::to_vec(&digest_body(10)).unwrap();
    stamped_refused(&mut proxy, &path, &body, None);
}

// ---- Approvals ----------------------------------------------------------------------

/// A deployment where 10-ETH transfers wait for two approvals from ops and ops-2 (the
/// stranger's key); returns the waiting request's id and intent digest.
fn waiting_request() -> (Keys, Proxy, String, String) {
    let keys = Keys::new();
    let genesis = serde_json::to_vec(&json!({
        "version": 1,
        "admins": {"threshold": 2, "keys": keys.admins.iter().map(spec).collect::<Vec<_>>()},
        "policy": {"version": 1,
            "principals": [
                {"id": "dev", "roles": ["signer"], "keys": [spec(&keys.dev)]},
                {"id": "ops", "roles": ["approver"], "keys": [spec(&keys.ops)]},
                {"id": "ops-2", "roles": ["approver"], "keys": [spec(&keys.stranger)]}],
            "rules": [
                {"name": "keys", "effect": "allow", "principals": ["dev"], "actions": ["create_key"]},
                {"name": "big", "effect": "allow", "principals": ["dev"], "actions": ["sign_transaction"],
                 "conditions": {"chain_ids": [1], "max_value": "100 ether",
                                "approvals": {"threshold": 2, "approvers": ["ops", "ops-2"]}}}]}}))
    .unwrap();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis);
    let id = proxy.create_key_id(&keys.dev, "treasury");
    let r = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/keys/{id}/sign/transaction"),
        &transfer(0, 10 * ETH),
    );
    assert_eq!(r.status, 202, "{:?}", r.body);
    let request = &r.body["request"];
    (
        keys,
        proxy,
        request["id"].as_str().unwrap().to_string(),
        request["intent_digest"].as_str().unwrap().to_string(),
    )
}

fn approval_of_another_digest() {
    let (keys, mut proxy, rid, _) = waiting_request();
    let from = proxy.audit.len();
    let r = proxy.call(
        &keys.ops,
        "POST",
        &format!("/v1/requests/{rid}/approve"),
        &json!({"intent_digest": "11".repeat(32)}),
    );
    refused(&proxy, from, &r, 400, None);
}

fn duplicated_approval() {
    let (keys, mut proxy, rid, digest) = waiting_request();
    let path = format!("/v1/requests/{rid}/approve");
    let from = proxy.audit.len();
    for _ in 0..3 {
        let r = proxy.call(&keys.ops, "POST", &path, &json!({"intent_digest": digest}));
        assert_ne!(r.body["request"]["status"], "signed", "{:?}", r.body);
        nothing_signed(&proxy, from, &r);
    }
    let seen = proxy.raw("GET", &format!("/v1/requests/{rid}"), b"", None);
    assert_eq!(seen.body["request"]["approvals"], json!(["ops"]));
    assert_eq!(seen.body["request"]["status"], "pending");
}

fn requester_approving_its_own_request() {
    let (keys, mut proxy, rid, digest) = waiting_request();
    let from = proxy.audit.len();
    let r = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/requests/{rid}/approve"),
        &json!({"intent_digest": digest}),
    );
    refused(&proxy, from, &r, 403, None);
}

fn approval_stamp_replayed() {
    let (keys, mut proxy, rid, digest) = waiting_request();
    let path = format!("/v1/requests/{rid}/approve");
    let body = serde_json::to_vec(&json!({"intent_digest": digest})).unwrap();
    let header = stamp(&keys.ops, "POST", &path, &body);
    let r = proxy.raw("POST", &path, &body, Some(header.clone()));
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The parent replays ops's approval as if it were a second approver's.
    stamped_refused(&mut proxy, &path, &body, Some(header));
    let seen = proxy.raw("GET", &format!("/v1/requests/{rid}"), b"", None);
    assert_eq!(seen.body["request"]["status"], "pending");
}

// ---- What the parent says it stored -------------------------------------------------

/// The parent stops storing the chain (and says so, or lies by omission): once the backlog
/// is full, the enclave decides nothing more, so nothing is signed that may go unrecorded.
fn audit_storage_withheld() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot_with(&ROOT, &genesis(&keys, dev_rules()), |e| {
        e.with_audit_backlog(3)
    });
    let id = proxy.create_key_id(&keys.dev, "k");
    proxy.frozen = Some(proxy.audit.len() as u64);
    let mut refusal = None;
    for n in 0..6u8 {
        let from = proxy.audit.len();
        let r = proxy.call(&keys.dev, "POST", &digest_path(&id), &digest_body(n));
        if r.status != 200 {
            refused(&proxy, from, &r, 503, Some("audit_backlog"));
            refusal = Some(n);
            break;
        }
    }
    assert_eq!(refusal, Some(3), "the backlog limit holds");
}

// ---- Framing, on the real serving loop ----------------------------------------------

mod frames {
    use std::sync::Arc;
    use std::time::Duration;

    use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
    use strongroom_enclave::{Enclave, server};
    use strongroom_protocol::messages::{ErrorCode, Phase, Request, Response};
    use strongroom_protocol::{Connection, UnixSocketListener};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    /// Runs `attack` against an enclave serving on a fresh socket, then checks that a
    /// well-behaved client is still served promptly.
    pub fn against_socket<F, Fut>(attack: F)
    where
        F: FnOnce(std::path::PathBuf) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = std::env::temp_dir().join(format!(
                "strongroom-hostile-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("enclave.sock");
            let listener = UnixSocketListener::bind(&path).unwrap();
            let enclave = Arc::new(Enclave::new(
                MockNsm::ephemeral(MockNsmConfig::default()).unwrap(),
            ));
            let server = tokio::spawn(server::serve(listener, enclave));
            attack(path.clone()).await;
            let served = tokio::time::timeout(Duration::from_secs(5), status(&path)).await;
            assert_eq!(
                served.expect("a well-behaved client was not served"),
                Response::Status(Phase::AwaitingRootKey)
            );
            assert!(!server.is_finished(), "the serving loop stopped");
            server.abort();
            let _ = std::fs::remove_dir_all(dir);
        });
    }

    async fn status(path: &std::path::Path) -> Response {
        let mut conn = Connection::new(UnixStream::connect(path).await.unwrap());
        conn.call::<Request, Response>(&Request::Status)
            .await
            .unwrap()
    }

    /// Whether the enclave closes the connection within 5 s.
    pub async fn closes(mut s: UnixStream) -> bool {
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    pub fn frame_over_the_limit() {
        against_socket(|path| async move {
            let mut s = UnixStream::connect(&path).await.unwrap();
            s.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
            assert!(closes(s).await, "a 4 GiB frame was not refused");
        });
    }

    pub fn half_written_frame() {
        against_socket(|path| async move {
            let mut s = UnixStream::connect(&path).await.unwrap();
            s.write_all(&100u32.to_be_bytes()).await.unwrap();
            s.write_all(&[0u8; 10]).await.unwrap();
            s.shutdown().await.unwrap();
            assert!(closes(s).await);
        });
    }

    /// Many connections that send two bytes of a length prefix and stall: each holds only
    /// its own task, so others are served.
    pub fn slow_loris_connections() {
        against_socket(|path| async move {
            let mut held = Vec::new();
            for _ in 0..64 {
                let mut s = UnixStream::connect(&path).await.unwrap();
                s.write_all(&[0, 0]).await.unwrap();
                held.push(s);
            }
            let served = tokio::time::timeout(Duration::from_secs(5), status(&path)).await;
            assert!(served.is_ok(), "stalled connections starved a client");
            drop(held);
        });
    }

    pub fn garbage_frame_body() {
        against_socket(|path| async move {
            let mut s = UnixStream::connect(&path).await.unwrap();
            let garbage = [0xffu8, 0x00, 0x13, 0x37, 0xbe, 0xef];
            s.write_all(&(garbage.len() as u32).to_be_bytes())
                .await
                .unwrap();
            s.write_all(&garbage).await.unwrap();
            let answer: strongroom_protocol::Envelope<Response> =
                strongroom_protocol::read_frame(&mut s, 1 << 20)
                    .await
                    .unwrap();
            match answer.body {
                Response::Error(e) => assert_eq!(e.code, ErrorCode::BadRequest),
                other => panic!("garbage was answered with {other:?}"),
            }
            // A well-framed body is not a broken framing: the connection goes on.
            let mut conn = Connection::new(s);
            let again: Response = conn.call(&Request::Status).await.unwrap();
            assert_eq!(again, Response::Status(Phase::AwaitingRootKey));
        });
    }
}

// ---- The suite ----------------------------------------------------------------------

/// Every attack, by name.
const ATTACKS: &[(&str, fn())] = &[
    ("tampered key blob", tampered_key_blob),
    (
        "key blob filed under another key",
        key_blob_filed_under_another_key,
    ),
    ("truncated key blob", truncated_key_blob),
    (
        "key blob of another deployment",
        key_blob_of_another_deployment,
    ),
    (
        "destroyed key's blob presented again",
        destroyed_key_blob_presented_again,
    ),
    ("key blob withheld", key_blob_withheld),
    ("tampered snapshot", tampered_snapshot),
    ("truncated snapshot", truncated_snapshot),
    (
        "snapshot longer than announced",
        snapshot_longer_than_announced,
    ),
    (
        "snapshot of another deployment",
        snapshot_of_another_deployment,
    ),
    (
        "root key the state was not sealed under, with its own check value",
        root_key_the_state_was_not_sealed_under,
    ),
    ("wrong root-key check value", wrong_root_key_check_value),
    (
        "genesis handed to a later boot",
        genesis_handed_to_a_later_boot,
    ),
    (
        "records offered to a first boot",
        records_offered_to_a_first_boot,
    ),
    (
        "tampered record in the replayed tail",
        tampered_record_in_the_replayed_tail,
    ),
    ("replayed records reordered", replayed_records_reordered),
    ("record dropped from the tail", record_dropped_from_the_tail),
    ("tail from another deployment", tail_from_another_deployment),
    (
        "replay page from another position than asked",
        replay_page_from_another_position,
    ),
    (
        "old snapshot to forget velocity",
        old_snapshot_to_forget_velocity,
    ),
    ("requests out of phase", requests_out_of_phase),
    (
        "KMS envelope tampered as a padding oracle",
        kms_envelope_tampered_as_a_padding_oracle,
    ),
    (
        "KMS envelope replayed after a failed attempt",
        kms_envelope_replayed_after_a_failed_attempt,
    ),
    (
        "KMS envelope from an earlier challenge",
        kms_envelope_from_an_earlier_challenge,
    ),
    ("KMS envelope over the limit", kms_envelope_over_the_limit),
    ("debug-mode PCRs", debug_mode_pcrs),
    ("forged stamp signature", forged_stamp_signature),
    ("replayed stamp", replayed_stamp),
    ("stamp moved to another key", stamp_moved_to_another_key),
    ("body changed under a stamp", body_changed_under_a_stamp),
    (
        "stamp bound to another deployment",
        stamp_bound_to_another_deployment,
    ),
    ("expired stamp", expired_stamp),
    (
        "stamp by a key no principal holds",
        stamp_by_a_key_no_principal_holds,
    ),
    ("stamp stripped", stamp_stripped),
    ("approval of another digest", approval_of_another_digest),
    ("duplicated approval", duplicated_approval),
    (
        "requester approving its own request",
        requester_approving_its_own_request,
    ),
    ("approval stamp replayed", approval_stamp_replayed),
    ("audit storage withheld", audit_storage_withheld),
    ("frame over the limit", frames::frame_over_the_limit),
    ("half-written frame", frames::half_written_frame),
    ("slow-loris connections", frames::slow_loris_connections),
    ("garbage frame body", frames::garbage_frame_body),
];

#[test]
fn hostile_parent() {
    let started = std::time::Instant::now();
    let mut failed = Vec::new();
    for (name, attack) in ATTACKS {
        let t = std::time::Instant::now();
        match catch_unwind(AssertUnwindSafe(attack)) {
            Ok(()) => println!("refused: {name} ({} ms)", t.elapsed().as_millis()),
            Err(e) => {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                println!("NOT REFUSED: {name}: {why}");
                failed.push(*name);
            }
        }
    }
    println!(
        "hostile parent: {} attacks run, {} refused, in {:.1} s",
        ATTACKS.len(),
        ATTACKS.len() - failed.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        ATTACKS.len() >= 30,
        "the suite promises at least 30 attacks"
    );
    assert!(failed.is_empty(), "attacks not refused: {failed:?}");
    let _ = Duration::ZERO;
}
