//! Threshold signatures made by two of three nodes' session engines (sealed messages
//! relayed as parents relay them) verify with independent implementations: ECDSA with
//! libsecp256k1 (Bitcoin Core's C library, through the `secp256k1` crate) and Python
//! eth-keys — the signer recovers to the group key's address —, BIP-340 with
//! libsecp256k1, Ed25519 with Python `cryptography` (OpenSSL). The group's CGGMP24
//! auxiliary information is a fixture (`threshold/tests/data/aux.hex`, made from the
//! fixture primes by `threshold/examples/aux.rs`); the protocol that makes it is tested in
//! `threshold/tests/ecdsa.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, PublicKey, XOnlyPublicKey, schnorr};
use sha3::{Digest, Keccak256};
use strongroom_e2e::{interop_script, recover_with_eth_keys};
use strongroom_threshold::Scheme;
use strongroom_threshold::channel::ChannelSecret;
use strongroom_threshold::engine::{Engine, Outcome, PartySpec};
use strongroom_threshold::local::run_local;
use strongroom_threshold::session::{Invitation, SessionKind};
use zeroize::Zeroizing;

const NOW: u64 = 1_800_000_000;

fn invitation(kind: SessionKind, participants: usize, nonce: u8) -> Invitation {
    Invitation {
        genesis: [0x6e; 32],
        kind,
        participants: (0..participants as u8).map(|b| [b + 1; 16]).collect(),
        request: None,
        nonce: [nonce; 32],
        issued_at: NOW,
    }
}

fn run(engines: &[&Engine], invitation: &Invitation, specs: Vec<PartySpec>) -> Vec<Outcome> {
    run_local(engines, invitation, specs, NOW)
        .into_iter()
        .map(|o| o.unwrap())
        .collect()
}

/// Key generation among all three: each node's share and the group key.
fn keygen(engines: &[Engine], scheme: Scheme, nonce: u8) -> (Vec<Zeroizing<Vec<u8>>>, Vec<u8>) {
    let all: Vec<&Engine> = engines.iter().collect();
    let specs = (0..3)
        .map(|_| PartySpec::Keygen {
            scheme,
            threshold: 2,
        })
        .collect();
    let mut key = None;
    let shares = run(
        &all,
        &invitation(
            SessionKind::Keygen {
                scheme,
                threshold: 2,
            },
            3,
            nonce,
        ),
        specs,
    )
    .into_iter()
    .map(|o| match o {
        Outcome::Share {
            share, group_key, ..
        } => {
            assert_eq!(key.get_or_insert(group_key.clone()), &group_key);
            share
        }
        other => panic!("{other:?}"),
    })
    .collect();
    (shares, key.unwrap())
}

fn sign_kind(presignature: Option<[u8; 16]>) -> SessionKind {
    SessionKind::Sign {
        key_id: "k".into(),
        presignature,
    }
}

fn ethereum_address(public_key: &[u8]) -> String {
    format!(
        "0x{}",
        hex::encode(&Keccak256::digest(&public_key[1..])[12..])
    )
}

/// libsecp256k1 recovers the group key, and eth-keys the group's address.
fn check_ecdsa(outcome: &Outcome, digest: [u8; 32], group_key: &[u8]) {
    let Outcome::Ecdsa(signature) = outcome else {
        panic!("{outcome:?}")
    };
    let message = Message::from_digest(digest);
    let id = RecoveryId::try_from(i32::from(signature.v)).unwrap();
    let recoverable = RecoverableSignature::from_compact(&signature.rs, id).unwrap();
    let recovered = recoverable.recover_ecdsa(message).unwrap();
    assert_eq!(recovered, PublicKey::from_slice(group_key).unwrap());
    recoverable
        .to_standard()
        .verify(message, &recovered)
        .unwrap();
    let mut sig65 = signature.rs.to_vec();
    sig65.push(signature.v);
    let python = recover_with_eth_keys(&hex::encode(digest), &hex::encode(&sig65));
    assert_eq!(
        python["address"].as_str().unwrap().to_lowercase(),
        ethereum_address(group_key)
    );
    assert_eq!(python["verifies"], true);
    assert_eq!(python["low_s"], true);
}

#[test]
fn two_of_three_signatures_verify_independently() {
    let engines: Vec<Engine> = (0..3)
        .map(|_| Engine::spawn(ChannelSecret::generate().unwrap()).unwrap())
        .collect();
    let aux: Vec<Zeroizing<Vec<u8>>> = include_str!("../../threshold/tests/data/aux.hex")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| Zeroizing::new(hex::decode(l).unwrap()))
        .collect();

    // ECDSA: a presignature by nodes 0 and 2, spent on a preimage; the full protocol on a
    // digest by nodes 1 and 2.
    let (shares, group_key) = keygen(&engines, Scheme::Secp256k1Ecdsa, 1);
    let pair = [&engines[0], &engines[2]];
    let specs = [0usize, 2]
        .iter()
        .map(|&n| PartySpec::Presign {
            key_id: "k".into(),
            share: shares[n].clone(),
            aux: aux[n].clone(),
            signers: vec![0, 2],
        })
        .collect();
    let Outcome::Presignature(id) = run(
        &pair,
        &invitation(SessionKind::Presign { key_id: "k".into() }, 2, 2),
        specs,
    )[0] else {
        panic!("a presignature");
    };
    let preimage = b"\x02\xf8\x6f an EIP-1559 signing payload".to_vec();
    let spec = || PartySpec::EcdsaPresigned {
        key_id: "k".into(),
        presignature: id,
        preimage: preimage.clone(),
    };
    let outcomes = run(
        &pair,
        &invitation(sign_kind(Some(id)), 2, 3),
        vec![spec(), spec()],
    );
    check_ecdsa(
        &outcomes[0],
        Keccak256::digest(&preimage).into(),
        &group_key,
    );
    let digest: [u8; 32] = Keccak256::digest(b"a raw digest").into();
    let pair = [&engines[1], &engines[2]];
    let specs = [1usize, 2]
        .iter()
        .map(|&n| PartySpec::EcdsaDigest {
            share: shares[n].clone(),
            aux: aux[n].clone(),
            signers: vec![1, 2],
            digest,
        })
        .collect();
    check_ecdsa(
        &run(&pair, &invitation(sign_kind(None), 2, 4), specs)[1],
        digest,
        &group_key,
    );

    // BIP-340 (Taproot key path): nodes 0 and 1; libsecp256k1 verifies under the x-only
    // group key, and not another message.
    let (shares, group_key) = keygen(&engines, Scheme::Secp256k1Schnorr, 5);
    let message = [0x5a; 32];
    let pair = [&engines[0], &engines[1]];
    let specs = [0usize, 1]
        .iter()
        .map(|&n| PartySpec::Schnorr {
            scheme: Scheme::Secp256k1Schnorr,
            key: shares[n].clone(),
            signers: vec![0, 1],
            message: message.to_vec(),
        })
        .collect();
    let Outcome::Schnorr(signature) = &run(&pair, &invitation(sign_kind(None), 2, 6), specs)[0]
    else {
        panic!("a signature");
    };
    let xonly = XOnlyPublicKey::from_byte_array(group_key.as_slice().try_into().unwrap()).unwrap();
    let sig = schnorr::Signature::from_byte_array(signature.as_slice().try_into().unwrap());
    sig.verify(&message, &xonly).unwrap();
    assert!(sig.verify(&[0x5b; 32], &xonly).is_err());

    // Ed25519: nodes 1 and 2; Python cryptography (OpenSSL) verifies, and refuses a
    // flipped bit.
    let (shares, group_key) = keygen(&engines, Scheme::Ed25519, 7);
    let message = b"a Solana message of any length".to_vec();
    let pair = [&engines[1], &engines[2]];
    let specs = [1usize, 2]
        .iter()
        .map(|&n| PartySpec::Schnorr {
            scheme: Scheme::Ed25519,
            key: shares[n].clone(),
            signers: vec![1, 2],
            message: message.clone(),
        })
        .collect();
    let Outcome::Schnorr(signature) = &run(&pair, &invitation(sign_kind(None), 2, 8), specs)[1]
    else {
        panic!("a signature");
    };
    let verify = |sig: &[u8]| -> bool {
        let out = interop_script(
            "ed25519_verify.py",
            &[
                &hex::encode(&group_key),
                &hex::encode(&message),
                &hex::encode(sig),
            ],
        );
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["verifies"] == true
    };
    assert!(verify(signature));
    let mut flipped = signature.clone();
    flipped[10] ^= 1;
    assert!(!verify(&flipped));
}
