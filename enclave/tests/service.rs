//! The enclave's request handler end to end, without sockets: the unseal exchange with a
//! mock NSM and real CMS envelopes, genesis, sealed keys, signing, and each attack on them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::SystemTime;

use serde_bytes::ByteBuf;
use serde_json::json;
use strongroom_attestation::{Expectations, verify};
use strongroom_envelope::seal_for_recipient;
use strongroom_protocol::messages::{CompleteUnseal, ErrorCode, Phase, Request, Response};
use support::{Keys, Proxy, Stored, boot, challenge, code, dev_rules, genesis};

fn recover(signature_hex: &str, digest: [u8; 32]) -> Vec<u8> {
    let bytes = hex::decode(signature_hex.trim_start_matches("0x")).unwrap();
    let recid = secp256k1::ecdsa::RecoveryId::try_from(i32::from(bytes[64])).unwrap();
    let rsig = secp256k1::ecdsa::RecoverableSignature::from_compact(&bytes[..64], recid).unwrap();
    let pk = rsig
        .recover_ecdsa(secp256k1::Message::from_digest(digest))
        .unwrap();
    pk.serialize_uncompressed().to_vec()
}

fn sign_digest(proxy: &mut Proxy, keys: &Keys, id: &str, digest: [u8; 32]) -> support::Reply {
    proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/keys/{id}/sign/digest"),
        &json!({"digest": format!("0x{}", hex::encode(digest))}),
    )
}

#[test]
fn unseal_create_sign_and_restart() {
    let root = [0x42u8; 32];
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&root, &genesis(&keys, dev_rules()));
    assert_eq!(
        proxy.enclave().handle(Request::Status),
        Response::Status(Phase::Ready)
    );
    let key = proxy.create_key(&keys.dev, "treasury");
    let id = key["id"].as_str().unwrap().to_string();
    assert_eq!(key["curve"], "secp256k1");
    assert!(key["address"].as_str().unwrap().starts_with("0x"));

    let digest = [7u8; 32];
    let r = sign_digest(&mut proxy, &keys, &id, digest);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["decision"]["rule"], "dev-digests");
    let public = hex::decode(key["public_key"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    assert_eq!(
        recover(r.body["signature"].as_str().unwrap(), digest),
        public
    );

    // A restart: a new enclave process (new NSM CA even), same KMS root and stored values.
    proxy.restart(&root);
    let Response::Key(again) = proxy.enclave().handle(Request::DescribeKey {
        key_id: id.clone(),
        sealed: proxy.blobs[&id].clone().into(),
    }) else {
        panic!()
    };
    assert_eq!(again.address, key["address"].as_str().unwrap());
    let r2 = sign_digest(&mut proxy, &keys, &id, digest);
    assert_eq!(
        r2.body["signature"], r.body["signature"],
        "RFC 6979: same key, same digest, same signature"
    );
}

#[test]
fn a_first_boot_needs_a_valid_genesis() {
    let keys = Keys::new();
    let booted = boot();
    // No genesis: refused before KMS's envelope is even looked at.
    assert_eq!(
        code(booted.unseal(&[1u8; 32], None, None)),
        ErrorCode::BadRequest
    );
    // A genesis whose admin threshold exceeds the admins: refused.
    let mut bad: serde_json::Value = serde_json::from_slice(&genesis(&keys, dev_rules())).unwrap();
    bad["admins"]["threshold"] = json!(4);
    let Response::Error(e) =
        booted.unseal(&[1u8; 32], None, Some(&serde_json::to_vec(&bad).unwrap()))
    else {
        panic!()
    };
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("threshold"), "{}", e.message);
    // A genesis with an invalid policy: refused, naming the problem.
    let rules = json!([{"name": "x", "effect": "allow", "actions": []}]);
    assert_eq!(
        code(booted.unseal(&[1u8; 32], None, Some(&genesis(&keys, rules)))),
        ErrorCode::BadRequest
    );
    assert_eq!(
        booted.enclave.handle(Request::Status),
        Response::Status(Phase::AwaitingRootKey)
    );
    // Calls before unsealing: 503.
    let r = booted
        .enclave
        .handle(Request::Call(strongroom_protocol::messages::Call {
            method: "GET".into(),
            path: "/v1/policy".into(),
            body: ByteBuf::new(),
            stamp: None,
            key: None,
            keys: Vec::new(),
            audit_stored: None,
        }));
    let Response::Answer(a) = r else { panic!() };
    assert_eq!(a.status, 503);
}

#[test]
fn one_decryption_attempt_per_challenge() {
    let keys = Keys::new();
    let g = genesis(&keys, dev_rules());
    let booted = boot();
    let envelope = challenge(&booted.enclave, &booted.trusted, &[1u8; 32]);
    let mut tampered = envelope.clone();
    let n = tampered.len();
    tampered[n - 20] ^= 0x01;
    let attempt = |env: &[u8]| {
        booted
            .enclave
            .handle(Request::CompleteUnseal(CompleteUnseal {
                ciphertext_for_recipient: env.to_vec().into(),
                key_check: None,
                snapshot_len: None,
                genesis: Some(g.clone().into()),
                replica: None,
            }))
    };
    let first = attempt(&tampered);
    assert_eq!(code(first.clone()), ErrorCode::UnsealFailed);
    // The genuine envelope no longer helps: its key was thrown away with the failed attempt.
    let second = attempt(&envelope);
    assert_eq!(code(second.clone()), ErrorCode::UnsealFailed);
    let (Response::Error(a), Response::Error(b)) = (first, second) else {
        panic!()
    };
    assert!(a.message.contains("could not be opened"), "{}", a.message);
    assert_eq!(code(attempt(b"not an envelope")), ErrorCode::UnsealFailed);
    assert!(b.message.contains("BeginUnseal"));
    // A new challenge works.
    assert!(matches!(
        booted.unseal(&[1u8; 32], None, Some(&g)),
        Response::Unsealed { .. }
    ));
    assert_eq!(
        code(booted.enclave.handle(Request::BeginUnseal)),
        ErrorCode::WrongPhase
    );
}

#[test]
fn tampered_envelope_errors_are_indistinguishable() {
    let keys = Keys::new();
    let g = genesis(&keys, dev_rules());
    let booted = boot();
    let mut messages = std::collections::BTreeSet::new();
    for mutate in [0usize, 1, 2] {
        let mut env = challenge(&booted.enclave, &booted.trusted, &[1u8; 32]);
        let n = env.len();
        match mutate {
            0 => env[n - 20] ^= 1, // content
            1 => env[n / 2] ^= 1,  // encrypted key / structure
            _ => {
                env = seal_for_recipient(&[0x30, 0x03, 0x02, 0x01, 0x00], b"x")
                    .unwrap_or_else(|_| b"junk".to_vec())
            }
        }
        let Response::Error(e) = booted
            .enclave
            .handle(Request::CompleteUnseal(CompleteUnseal {
                ciphertext_for_recipient: env.into(),
                key_check: None,
                snapshot_len: None,
                genesis: Some(g.clone().into()),
                replica: None,
            }))
        else {
            panic!("tampered envelope accepted")
        };
        assert_eq!(e.code, ErrorCode::UnsealFailed);
        messages.insert(e.message);
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
}

#[test]
fn a_root_key_of_the_wrong_length_is_refused() {
    let keys = Keys::new();
    let booted = boot();
    assert_eq!(
        code(booted.unseal(&[1u8; 16], None, Some(&genesis(&keys, dev_rules())))),
        ErrorCode::UnsealFailed
    );
}

#[test]
fn a_wrong_root_key_is_detected_not_used() {
    let keys = Keys::new();
    let proxy = Proxy::first_boot(&[1u8; 32], &genesis(&keys, dev_rules()));
    let other = boot();
    assert_eq!(
        code(other.unseal(&[2u8; 32], Some(&proxy.stored), None)),
        ErrorCode::WrongRootKey
    );
    assert_eq!(
        other.enclave.handle(Request::Status),
        Response::Status(Phase::AwaitingRootKey)
    );
}

#[test]
fn tampered_and_swapped_blobs_are_rejected() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&[3u8; 32], &genesis(&keys, dev_rules()));
    let a = proxy.create_key(&keys.dev, "a")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = proxy.create_key(&keys.dev, "b")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let blob_a = proxy.blobs[&a].clone();
    let blob_b = proxy.blobs[&b].clone();
    let try_blob = |proxy: &mut Proxy, filed_under: &str, blob: Vec<u8>| {
        proxy.blobs.insert(filed_under.to_string(), blob);
        let r = sign_digest(proxy, &keys, filed_under, [0; 32]);
        (r.status, r.error_code().to_string())
    };
    for i in [0usize, 5, 26, 40, blob_a.len() - 1] {
        let mut bad = blob_a.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            try_blob(&mut proxy, &a, bad),
            (502, "blob_rejected".into()),
            "byte {i}"
        );
    }
    // Key a's ciphertext under key b's header (id): refused.
    let mut swapped = blob_b[..26].to_vec();
    swapped.extend_from_slice(&blob_a[26..]);
    assert_eq!(
        try_blob(&mut proxy, &b, swapped),
        (502, "blob_rejected".into())
    );
    // Key a's genuine blob filed under key b's id: refused, not signed with a.
    assert_eq!(
        try_blob(&mut proxy, &b, blob_a.clone()),
        (502, "blob_rejected".into())
    );
    // A blob sealed under another root: refused.
    let mut other = Proxy::first_boot(&[4u8; 32], &genesis(&keys, dev_rules()));
    let f = other.create_key(&keys.dev, "foreign")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let foreign = other.blobs[&f].clone();
    assert_eq!(
        try_blob(&mut proxy, &f, foreign),
        (502, "blob_rejected".into())
    );
    // Limits.
    assert_eq!(try_blob(&mut proxy, &a, vec![0u8; 5000]).0, 400);
    proxy.blobs.insert(a.clone(), blob_a);
    let short = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/keys/{a}/sign/digest"),
        &json!({"digest": "0x00"}),
    );
    assert_eq!(short.status, 400);
    let bad_label = proxy.call(&keys.dev, "POST", "/v1/keys", &json!({"label": "bad\u{7}"}));
    assert_eq!(bad_label.status, 400, "{:?}", bad_label.body);
}

#[test]
fn a_destroyed_key_stays_refused_across_restarts() {
    let root = [5u8; 32];
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&root, &genesis(&keys, dev_rules()));
    let doomed = proxy.create_key(&keys.dev, "doomed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = proxy.create_key(&keys.dev, "kept")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doomed_blob = proxy.blobs[&doomed].clone();
    let r = proxy.call(
        &keys.dev,
        "DELETE",
        &format!("/v1/keys/{doomed}"),
        &json!(null),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.answer.effects.key_destroyed.as_deref(),
        Some(doomed.as_str())
    );
    // The parent puts the blob back: refused.
    proxy.blobs.insert(doomed.clone(), doomed_blob.clone());
    let again = sign_digest(&mut proxy, &keys, &doomed, [0; 32]);
    assert_eq!((again.status, again.error_code()), (410, "key_destroyed"));
    assert_eq!(sign_digest(&mut proxy, &keys, &kept, [0; 32]).status, 200);

    proxy.restart(&root);
    let after = sign_digest(&mut proxy, &keys, &doomed, [0; 32]);
    assert_eq!(after.status, 410, "{:?}", after.body);
    assert_eq!(sign_digest(&mut proxy, &keys, &kept, [0; 32]).status, 200);

    // A forged state (edited bytes) is refused at boot.
    let mut forged = proxy.stored.clone();
    let n = forged.snapshot.len();
    forged.snapshot[n - 1] ^= 1;
    let third = boot();
    assert_eq!(
        code(third.unseal(&root, Some(&forged), None)),
        ErrorCode::BlobRejected
    );
    // Half of the stored pair is a malformed request, not a first boot.
    let env = challenge(&third.enclave, &third.trusted, &root);
    let half = third
        .enclave
        .handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: env.into(),
            key_check: Some(proxy.stored.key_check.clone().into()),
            snapshot_len: None,
            genesis: None,
            replica: None,
        }));
    assert_eq!(code(half), ErrorCode::BadRequest);
    // A later boot cannot be passed off with a genesis beside the stored state either.
    let env = challenge(&third.enclave, &third.trusted, &root);
    let both = third
        .enclave
        .handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: env.into(),
            key_check: Some(proxy.stored.key_check.clone().into()),
            snapshot_len: Some(proxy.stored.snapshot.len() as u64),
            genesis: Some(genesis(&keys, dev_rules()).into()),
            replica: None,
        }));
    assert_eq!(code(both), ErrorCode::BadRequest);
    let _ = Stored::clone(&proxy.stored);
}

#[test]
fn attestation_requests_are_bounded() {
    let booted = boot();
    let Response::Attestation { document } = booted.enclave.handle(Request::GetAttestation {
        nonce: Some(vec![9; 32].into()),
    }) else {
        panic!()
    };
    let v = verify(
        &document,
        &Expectations::new(SystemTime::now())
            .root(booted.trusted.clone())
            .nonce(vec![9; 32]),
    )
    .unwrap();
    assert_eq!(v.document.nonce, Some(vec![9; 32]));
    assert_eq!(
        v.document.user_data, None,
        "nothing to publish before unsealing"
    );
    assert_eq!(
        code(booted.enclave.handle(Request::GetAttestation {
            nonce: Some(vec![0; 513].into())
        })),
        ErrorCode::BadRequest
    );
}

#[test]
fn unsealed_attestations_publish_key_check_genesis_and_policy() {
    let keys = Keys::new();
    let g = genesis(&keys, dev_rules());
    let mut proxy = Proxy::first_boot(&[6u8; 32], &g);
    let Response::Attestation { document } = proxy
        .enclave()
        .handle(Request::GetAttestation { nonce: None })
    else {
        panic!()
    };
    let v = verify(
        &document,
        &Expectations::new(SystemTime::now()).root(proxy.booted.trusted.clone()),
    )
    .unwrap();
    let user_data = v.document.user_data.unwrap();
    let map: ciborium::Value = ciborium::from_reader(user_data.as_slice()).unwrap();
    let entries = map.as_map().unwrap();
    let names: Vec<_> = entries.iter().map(|(k, _)| k.as_text().unwrap()).collect();
    assert_eq!(
        names,
        [
            "key_check",
            "genesis",
            "admins",
            "policy",
            "identity",
            "boot_seq"
        ]
    );
    // The identity is the one that signs this boot's answers and audit entries, and its
    // boot began at the boot record.
    assert_eq!(entries[4].1.as_bytes().unwrap(), &proxy.identity.0);
    assert_eq!(entries[5].1.as_integer(), Some(0.into()));
    proxy.create_key(&keys.dev, "k");
    proxy.restart(&[6u8; 32]);
    let Response::Attestation { document } = proxy
        .enclave()
        .handle(Request::GetAttestation { nonce: None })
    else {
        panic!()
    };
    let later = verify(
        &document,
        &Expectations::new(SystemTime::now()).root(proxy.booted.trusted.clone()),
    )
    .unwrap();
    let later = strongroom_identity::UserData::decode(&later.document.user_data.unwrap()).unwrap();
    assert_eq!(
        later.boot_seq,
        proxy.audit.len() as u64 - 1,
        "the restart's boot record"
    );
    assert_eq!(entries[0].1.as_bytes().unwrap(), &proxy.stored.key_check);
    // The digests are the ones the enclave reports for its policy.
    let p = proxy.raw("GET", "/v1/policy", b"", None);
    assert_eq!(p.status, 200);
    for (i, field) in [
        (1, "genesis_digest"),
        (2, "admins_digest"),
        (3, "policy_digest"),
    ] {
        assert_eq!(
            hex::encode(entries[i].1.as_bytes().unwrap()),
            p.body[field].as_str().unwrap(),
            "{field}"
        );
    }
}
