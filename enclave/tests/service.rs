//! The enclave's request handler end to end, without sockets: the unseal exchange with a
//! mock NSM and real CMS envelopes, sealed keys, signing, and each attack on them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use serde_bytes::ByteBuf;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{Expectations, Nsm, verify};
use strongroom_enclave::Enclave;
use strongroom_envelope::seal_for_recipient;
use strongroom_protocol::messages::{
    CompleteUnseal, ErrorCode, KeyInfo, Phase, RecoverableSignature, Request, Response,
};

fn nsm() -> MockNsm {
    MockNsm::ephemeral(MockNsmConfig::default()).unwrap()
}

fn code(r: Response) -> ErrorCode {
    match r {
        Response::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Runs BeginUnseal and plays KMS: checks the document, wraps `root` for its public key.
fn challenge(
    enclave: &Enclave<MockNsm>,
    root_nsm_root: &strongroom_attestation::TrustedRoot,
    root: &[u8],
) -> Vec<u8> {
    let Response::UnsealChallenge {
        attestation_document,
    } = enclave.handle(Request::BeginUnseal)
    else {
        panic!("no challenge")
    };
    let doc = verify(
        &attestation_document,
        &Expectations::new(SystemTime::now()).root(root_nsm_root.clone()),
    )
    .unwrap();
    let spki = doc.document.public_key.expect("RSA key in the document");
    seal_for_recipient(&spki, root).unwrap()
}

struct Stored {
    key_check: Vec<u8>,
    state: Vec<u8>,
}

fn unseal(enclave: &Enclave<MockNsm>, root: &[u8], stored: Option<&Stored>) -> Response {
    let trusted = enclave_root(enclave);
    let envelope = challenge(enclave, &trusted, root);
    enclave.handle(Request::CompleteUnseal(CompleteUnseal {
        ciphertext_for_recipient: envelope.into(),
        key_check: stored.map(|s| ByteBuf::from(s.key_check.clone())),
        state: stored.map(|s| ByteBuf::from(s.state.clone())),
    }))
}

fn enclave_root(enclave: &Enclave<MockNsm>) -> strongroom_attestation::TrustedRoot {
    // The enclave's attestation documents chain to its NSM's root; ask for one and read it.
    let Response::Attestation { document } =
        enclave.handle(Request::GetAttestation { nonce: None })
    else {
        panic!("no attestation")
    };
    let parsed = strongroom_attestation::verify(&document, &Expectations::new(SystemTime::now()));
    match parsed {
        Err(strongroom_attestation::VerifyError::RootMismatch { .. }) => {}
        other => panic!("mock documents must not verify against AWS: {other:?}"),
    }
    ROOT.with(|r| r.borrow().clone().expect("root registered"))
}

thread_local! {
    static ROOT: std::cell::RefCell<Option<strongroom_attestation::TrustedRoot>> = const { std::cell::RefCell::new(None) };
}

fn new_enclave(nsm: MockNsm) -> Enclave<MockNsm> {
    ROOT.with(|r| *r.borrow_mut() = Some(nsm.trusted_root()));
    Enclave::new(nsm)
}

fn ready(root: &[u8]) -> (Enclave<MockNsm>, Stored) {
    let enclave = new_enclave(nsm());
    let Response::Unsealed { key_check, state } = unseal(&enclave, root, None) else {
        panic!("first boot failed")
    };
    (
        enclave,
        Stored {
            key_check: key_check.into_vec(),
            state: state.into_vec(),
        },
    )
}

fn create(enclave: &Enclave<MockNsm>, label: &str) -> (KeyInfo, Vec<u8>) {
    match enclave.handle(Request::CreateKey {
        label: label.into(),
    }) {
        Response::KeyCreated { key, sealed } => (key, sealed.into_vec()),
        other => panic!("create failed: {other:?}"),
    }
}

/// The id an honest proxy files a blob under: the one in its header.
fn id_of(sealed: &[u8]) -> String {
    hex::encode(&sealed[5..21])
}

fn sign(enclave: &Enclave<MockNsm>, sealed: &[u8], digest: [u8; 32]) -> Response {
    sign_as(enclave, &id_of(sealed), sealed, digest)
}

fn sign_as(enclave: &Enclave<MockNsm>, key_id: &str, sealed: &[u8], digest: [u8; 32]) -> Response {
    enclave.handle(Request::SignDigest {
        key_id: key_id.to_string(),
        sealed: sealed.to_vec().into(),
        digest: digest.to_vec().into(),
    })
}

fn recover(sig: &RecoverableSignature, digest: [u8; 32]) -> Vec<u8> {
    let mut rs = [0u8; 64];
    rs[..32].copy_from_slice(&sig.r);
    rs[32..].copy_from_slice(&sig.s);
    let recid = secp256k1::ecdsa::RecoveryId::try_from(i32::from(sig.v)).unwrap();
    let rsig = secp256k1::ecdsa::RecoverableSignature::from_compact(&rs, recid).unwrap();
    let pk = rsig
        .recover_ecdsa(secp256k1::Message::from_digest(digest))
        .unwrap();
    pk.serialize_uncompressed().to_vec()
}

#[test]
fn unseal_create_sign_and_restart() {
    let root = [0x42u8; 32];
    let (enclave, stored) = ready(&root);
    assert_eq!(
        enclave.handle(Request::Status),
        Response::Status(Phase::Ready)
    );
    let (info, sealed) = create(&enclave, "treasury");
    assert_eq!(info.curve, "secp256k1");
    assert_eq!(info.public_key.len(), 65);
    assert!(info.address.starts_with("0x") && info.address.len() == 42);

    let digest = [7u8; 32];
    let Response::Signature(sig) = sign(&enclave, &sealed, digest) else {
        panic!()
    };
    assert_eq!(recover(&sig, digest), info.public_key.to_vec());

    // A restart: a new enclave process (new NSM CA even), same KMS root and stored values.
    let restarted = new_enclave(nsm());
    assert_eq!(
        restarted.handle(Request::Status),
        Response::Status(Phase::AwaitingRootKey)
    );
    assert_eq!(code(sign(&restarted, &sealed, digest)), ErrorCode::NotReady);
    assert!(matches!(
        unseal(&restarted, &root, Some(&stored)),
        Response::Unsealed { .. }
    ));
    let Response::Key(again) = restarted.handle(Request::DescribeKey {
        key_id: info.id.clone(),
        sealed: sealed.clone().into(),
    }) else {
        panic!()
    };
    assert_eq!(again, info);
    let Response::Signature(sig2) = sign(&restarted, &sealed, digest) else {
        panic!()
    };
    assert_eq!(sig2, sig, "RFC 6979: same key, same digest, same signature");
}

#[test]
fn one_decryption_attempt_per_challenge() {
    let enclave = new_enclave(nsm());
    let trusted = enclave_root(&enclave);
    let envelope = challenge(&enclave, &trusted, &[1u8; 32]);
    let mut tampered = envelope.clone();
    let n = tampered.len();
    tampered[n - 20] ^= 0x01;
    let attempt = |env: &[u8]| {
        enclave.handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: env.to_vec().into(),
            key_check: None,
            state: None,
        }))
    };
    let first = attempt(&tampered);
    assert_eq!(code(first.clone()), ErrorCode::UnsealFailed);
    // The genuine envelope no longer helps: its key was thrown away with the failed attempt.
    let second = attempt(&envelope);
    assert_eq!(code(second.clone()), ErrorCode::UnsealFailed);
    // Both failures read the same, whatever failed.
    let (Response::Error(a), Response::Error(b)) = (first, second) else {
        panic!()
    };
    assert_ne!(a.message, "", "message present");
    let garbage = attempt(b"not an envelope");
    assert_eq!(code(garbage), ErrorCode::UnsealFailed);
    assert!(b.message.contains("BeginUnseal"));
    // A new challenge works.
    assert!(matches!(
        unseal(&enclave, &[1u8; 32], None),
        Response::Unsealed { .. }
    ));
    assert_eq!(
        code(enclave.handle(Request::BeginUnseal)),
        ErrorCode::WrongPhase
    );
}

#[test]
fn tampered_envelope_errors_are_indistinguishable() {
    let enclave = new_enclave(nsm());
    let trusted = enclave_root(&enclave);
    let mut messages = std::collections::BTreeSet::new();
    for mutate in [0usize, 1, 2] {
        let mut env = challenge(&enclave, &trusted, &[1u8; 32]);
        let n = env.len();
        match mutate {
            0 => env[n - 20] ^= 1, // content
            1 => env[n / 2] ^= 1,  // encrypted key / structure
            _ => {
                env = seal_for_recipient(&[0x30, 0x03, 0x02, 0x01, 0x00], b"x")
                    .unwrap_or_else(|_| b"junk".to_vec())
            }
        }
        let Response::Error(e) = enclave.handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: env.into(),
            key_check: None,
            state: None,
        })) else {
            panic!("tampered envelope accepted")
        };
        assert_eq!(e.code, ErrorCode::UnsealFailed);
        messages.insert(e.message);
    }
    assert_eq!(messages.len(), 1, "{messages:?}");
}

#[test]
fn a_root_key_of_the_wrong_length_is_refused() {
    let enclave = new_enclave(nsm());
    assert_eq!(
        code(unseal(&enclave, &[1u8; 16], None)),
        ErrorCode::UnsealFailed
    );
}

#[test]
fn a_wrong_root_key_is_detected_not_used() {
    let (_, stored) = ready(&[1u8; 32]);
    let other = new_enclave(nsm());
    assert_eq!(
        code(unseal(&other, &[2u8; 32], Some(&stored))),
        ErrorCode::WrongRootKey
    );
    assert_eq!(
        other.handle(Request::Status),
        Response::Status(Phase::AwaitingRootKey)
    );
}

#[test]
fn tampered_and_swapped_blobs_are_rejected() {
    let (enclave, _) = ready(&[3u8; 32]);
    let (_, a) = create(&enclave, "a");
    let (_, b) = create(&enclave, "b");
    for i in [0usize, 5, 26, 40, a.len() - 1] {
        let mut bad = a.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            code(sign(&enclave, &bad, [0; 32])),
            ErrorCode::BlobRejected,
            "byte {i}"
        );
    }
    // Key a's ciphertext under key b's header (id): refused.
    let mut swapped = b[..26].to_vec();
    swapped.extend_from_slice(&a[26..]);
    assert_eq!(
        code(sign(&enclave, &swapped, [0; 32])),
        ErrorCode::BlobRejected
    );
    // Key a's genuine blob filed under key b's id: refused, not signed with a.
    assert_eq!(
        code(sign_as(&enclave, &id_of(&b), &a, [0; 32])),
        ErrorCode::BlobRejected
    );
    // A blob sealed under another root: refused.
    let (other, _) = ready(&[4u8; 32]);
    let (_, foreign) = create(&other, "foreign");
    assert_eq!(
        code(sign(&enclave, &foreign, [0; 32])),
        ErrorCode::BlobRejected
    );
    // Limits.
    assert_eq!(
        code(sign(&enclave, &vec![0u8; 5000], [0; 32])),
        ErrorCode::BadRequest
    );
    let short = enclave.handle(Request::SignDigest {
        key_id: id_of(&a),
        sealed: a.into(),
        digest: vec![0; 31].into(),
    });
    assert_eq!(code(short), ErrorCode::BadRequest);
    assert_eq!(
        code(enclave.handle(Request::CreateKey {
            label: "bad\u{7}label".into()
        })),
        ErrorCode::BadRequest
    );
}

#[test]
fn a_destroyed_key_stays_refused_across_restarts() {
    let root = [5u8; 32];
    let (enclave, _) = ready(&root);
    let (info, sealed) = create(&enclave, "doomed");
    let (_, kept) = create(&enclave, "kept");
    let Response::KeyDestroyed { key_id, state } = enclave.handle(Request::DestroyKey {
        key_id: info.id.clone(),
        sealed: sealed.clone().into(),
    }) else {
        panic!()
    };
    assert_eq!(key_id, info.id);
    assert_eq!(
        code(sign(&enclave, &sealed, [0; 32])),
        ErrorCode::KeyDestroyed
    );
    assert!(matches!(
        sign(&enclave, &kept, [0; 32]),
        Response::Signature(_)
    ));
    assert_eq!(
        code(enclave.handle(Request::DestroyKey {
            key_id: info.id.clone(),
            sealed: sealed.clone().into()
        })),
        ErrorCode::KeyDestroyed
    );

    let key_check = enclave.key_check().unwrap().to_vec();
    let restarted = new_enclave(nsm());
    let stored = Stored {
        key_check,
        state: state.into_vec(),
    };
    assert!(matches!(
        unseal(&restarted, &root, Some(&stored)),
        Response::Unsealed { .. }
    ));
    assert_eq!(
        code(sign(&restarted, &sealed, [0; 32])),
        ErrorCode::KeyDestroyed
    );
    assert!(matches!(
        sign(&restarted, &kept, [0; 32]),
        Response::Signature(_)
    ));

    // A forged state (edited bytes) is refused at boot.
    let mut forged = stored.state.clone();
    let n = forged.len();
    forged[n - 1] ^= 1;
    let third = new_enclave(nsm());
    let bad = Stored {
        key_check: stored.key_check.clone(),
        state: forged,
    };
    assert_eq!(
        code(unseal(&third, &root, Some(&bad))),
        ErrorCode::BlobRejected
    );
    // Half of the stored pair is a malformed request, not a first boot.
    let trusted = enclave_root(&third);
    let env = challenge(&third, &trusted, &root);
    let half = third.handle(Request::CompleteUnseal(CompleteUnseal {
        ciphertext_for_recipient: env.into(),
        key_check: Some(stored.key_check.clone().into()),
        state: None,
    }));
    assert_eq!(code(half), ErrorCode::BadRequest);
}

#[test]
fn attestation_requests_are_bounded() {
    let enclave = new_enclave(nsm());
    let Response::Attestation { document } = enclave.handle(Request::GetAttestation {
        nonce: Some(vec![9; 32].into()),
    }) else {
        panic!()
    };
    let root = enclave_root(&enclave);
    let v = verify(
        &document,
        &Expectations::new(SystemTime::now())
            .root(root)
            .nonce(vec![9; 32]),
    )
    .unwrap();
    assert_eq!(v.document.nonce, Some(vec![9; 32]));
    assert_eq!(v.document.user_data, None, "no key check before unsealing");
    assert_eq!(
        code(enclave.handle(Request::GetAttestation {
            nonce: Some(vec![0; 513].into())
        })),
        ErrorCode::BadRequest
    );
}

#[test]
fn unsealed_attestations_publish_the_key_check() {
    let (enclave, stored) = ready(&[6u8; 32]);
    let Response::Attestation { document } =
        enclave.handle(Request::GetAttestation { nonce: None })
    else {
        panic!()
    };
    let root = enclave_root(&enclave);
    let v = verify(&document, &Expectations::new(SystemTime::now()).root(root)).unwrap();
    let user_data = v.document.user_data.unwrap();
    let map: ciborium::Value = ciborium::from_reader(user_data.as_slice()).unwrap();
    let entries = map.as_map().unwrap();
    assert_eq!(entries[0].0.as_text(), Some("key_check"));
    assert_eq!(entries[0].1.as_bytes().unwrap(), &stored.key_check);
}
