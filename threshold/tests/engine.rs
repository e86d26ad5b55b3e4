//! The session engine with FROST: three nodes make a key and two sign, each on its own
//! thread, through sealed relays; a replayed or stale invitation is refused; sessions are
//! bounded in number and in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::engines;

use engines::{GENESIS, NOW, run};
use serde_bytes::ByteBuf;
use strongroom_threshold::engine::{MAX_SESSIONS, Outcome, PartySpec, SESSION_LIFETIME};
use strongroom_threshold::frost::{Ed25519Sha512, Secp256K1Sha256TR, Suite};
use strongroom_threshold::session::{Invitation, Relayed, SessionKind};
use strongroom_threshold::{Scheme, ThresholdError};
use zeroize::Zeroizing;

fn invitation(kind: SessionKind, participants: usize, nonce: u8) -> Invitation {
    Invitation {
        genesis: GENESIS,
        kind,
        participants: (0..participants as u8).map(|b| [b + 1; 16]).collect(),
        request: Some(ByteBuf::from(vec![nonce])),
        nonce: [nonce; 32],
        issued_at: NOW,
    }
}

fn keygen_and_sign<C: Suite>(scheme: Scheme, message: &[u8]) {
    let engines = engines::engines(3);
    let keygen = invitation(
        SessionKind::Keygen {
            scheme,
            threshold: 2,
        },
        3,
        1,
    );
    let specs = (0..3)
        .map(|_| PartySpec::Keygen {
            scheme,
            threshold: 2,
        })
        .collect();
    let outcomes = run(&engines, &[0, 1, 2], &keygen, specs, NOW);
    let mut shares = Vec::new();
    let mut group = None;
    for outcome in outcomes {
        let Outcome::Share {
            scheme: s,
            share,
            group_key,
            public_digest,
        } = outcome.unwrap()
        else {
            panic!("key generation gives a share");
        };
        assert_eq!(s, scheme);
        let this = (group_key, public_digest);
        assert!(
            group.get_or_insert(this.clone()) == &this,
            "every node agrees on the key"
        );
        shares.push(share);
    }
    let (group_key, _) = group.unwrap();
    // Nodes 0 and 2 sign; in the session they are indices 0 and 1.
    let mut sign = invitation(
        SessionKind::Sign {
            key_id: "k".into(),
            presignature: None,
        },
        2,
        2,
    );
    sign.participants = vec![[1; 16], [3; 16]];
    let specs = [0usize, 2]
        .iter()
        .map(|&node| PartySpec::Schnorr {
            scheme,
            key: Zeroizing::new(shares[node].to_vec()),
            signers: vec![0, 2],
            message: message.to_vec(),
        })
        .collect();
    let outcomes = run(&engines, &[0, 2], &sign, specs, NOW + 1);
    for outcome in outcomes {
        let Outcome::Schnorr(signature) = outcome.unwrap() else {
            panic!("signing gives a signature");
        };
        assert!(C::verify(&group_key, message, &signature));
    }
}

#[test]
fn frost_taproot_through_engines() {
    keygen_and_sign::<Secp256K1Sha256TR>(Scheme::Secp256k1Schnorr, &[0x42; 32]);
}

#[test]
fn frost_ed25519_through_engines() {
    keygen_and_sign::<Ed25519Sha512>(Scheme::Ed25519, b"a Solana message");
}

fn refused(result: Result<impl std::fmt::Debug, ThresholdError>, why: &str) {
    match result {
        Err(ThresholdError::Material { reason, .. }) => {
            assert!(reason.contains(why), "{why}: {reason}")
        }
        other => panic!("{why}: {other:?}"),
    }
}

#[test]
fn replayed_and_stale_invitations_are_refused() {
    let engines = engines::engines(1);
    let keys = vec![engines[0].channel_key(), [9; 32]];
    let spec = || PartySpec::Keygen {
        scheme: Scheme::Ed25519,
        threshold: 2,
    };
    let first = invitation(
        SessionKind::Keygen {
            scheme: Scheme::Ed25519,
            threshold: 2,
        },
        2,
        1,
    );
    assert!(
        engines[0]
            .start(first.clone(), 0, keys.clone(), spec(), NOW)
            .is_ok()
    );
    // The same invitation again, even after its session ended, would reuse its channel
    // keys and execution id.
    refused(
        engines[0].start(first.clone(), 0, keys.clone(), spec(), NOW + 5),
        "already started",
    );
    engines[0].end(first.session_id().unwrap());
    refused(
        engines[0].start(first.clone(), 0, keys.clone(), spec(), NOW + 10),
        "already started",
    );
    let stale = invitation(
        SessionKind::Keygen {
            scheme: Scheme::Ed25519,
            threshold: 2,
        },
        2,
        2,
    );
    refused(
        engines[0].start(stale, 0, keys, spec(), NOW + 61),
        "not fresh",
    );
}

#[test]
fn sessions_are_bounded_in_number_and_time() {
    let engines = engines::engines(1);
    let keys = vec![engines[0].channel_key(), [9; 32]];
    let spec = || PartySpec::Keygen {
        scheme: Scheme::Ed25519,
        threshold: 2,
    };
    let kind = || SessionKind::Keygen {
        scheme: Scheme::Ed25519,
        threshold: 2,
    };
    let mut ids = Vec::new();
    for i in 0..MAX_SESSIONS {
        let mut inv = invitation(kind(), 2, 1);
        inv.nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        ids.push(inv.session_id().unwrap());
        engines[0].start(inv, 0, keys.clone(), spec(), NOW).unwrap();
    }
    let mut one_more = invitation(kind(), 2, 1);
    one_more.nonce = [0xee; 32];
    refused(
        engines[0].start(one_more.clone(), 0, keys.clone(), spec(), NOW),
        "too many",
    );
    // Past their lifetime the sessions are gone, and room is made.
    let later = NOW + SESSION_LIFETIME + 1;
    refused(
        engines[0].receive(
            Relayed {
                session: ids[0],
                messages: Vec::new(),
            },
            later,
        ),
        "no such session",
    );
    one_more.issued_at = later;
    assert!(engines[0].start(one_more, 0, keys, spec(), later).is_ok());
}
