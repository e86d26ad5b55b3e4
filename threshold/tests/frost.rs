//! FROST key generation and signing among three parties, 2-of-3, for both suites; the
//! echo round catches a party that broadcast different commitments; a bad signature share
//! is blamed on its sender.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::network;

use strongroom_threshold::frost::{Dkg, Ed25519Sha512, FrostKey, Secp256K1Sha256TR, Sign, Suite};
use strongroom_threshold::{Message, Party, ProtocolError, Recipient, ThresholdError};

fn dkg<C: Suite + 'static>() -> Vec<FrostKey<C>> {
    let parties: Vec<Box<dyn Party<Output = FrostKey<C>>>> = (0..3)
        .map(|i| Box::new(Dkg::<C>::new(i, 3, 2).unwrap()) as Box<dyn Party<Output = _>>)
        .collect();
    network::run(parties)
}

/// Every node's public key package agrees; any two sign; the signature verifies under the
/// group key (checked inside with k256 / ed25519-dalek, and again here).
fn two_of_three<C: Suite + 'static>(message: &[u8]) {
    let keys = dkg::<C>();
    let digests: Vec<[u8; 32]> = keys.iter().map(|k| k.public_digest().unwrap()).collect();
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "public key packages differ"
    );
    let chain_key = keys[0].chain_key().unwrap();
    assert_eq!(chain_key.len(), 32);
    let stored: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| k.to_bytes().unwrap().to_vec())
        .collect();
    for signers in [[0u16, 1], [0, 2], [1, 2]] {
        let parties: Vec<Box<dyn Party<Output = Vec<u8>>>> = signers
            .iter()
            .enumerate()
            .map(|(me, &node)| {
                let key = FrostKey::<C>::from_bytes(&stored[usize::from(node)]).unwrap();
                Box::new(Sign::new(me as u16, &signers, key, message.to_vec()).unwrap())
                    as Box<dyn Party<Output = _>>
            })
            .collect();
        let signatures = network::run(parties);
        assert_eq!(signatures[0], signatures[1]);
        assert!(C::verify(&chain_key, message, &signatures[0]));
        assert!(!C::verify(&chain_key, b"another message", &signatures[0]));
    }
}

#[test]
fn taproot_two_of_three() {
    two_of_three::<Secp256K1Sha256TR>(&[0x42; 32]);
}

#[test]
fn ed25519_two_of_three() {
    two_of_three::<Ed25519Sha512>(b"a Solana message, any length");
}

#[test]
fn one_share_cannot_sign_alone() {
    let keys = dkg::<Ed25519Sha512>();
    let stored = keys[0].to_bytes().unwrap();
    let key = FrostKey::<Ed25519Sha512>::from_bytes(&stored).unwrap();
    // A run of one signer is refused: the key needs two.
    assert!(matches!(
        Sign::new(0, &[0], key, b"m".to_vec()),
        Err(ThresholdError::Material {
            what: "signer set",
            ..
        })
    ));
}

#[test]
fn dkg_equivocation_is_caught_by_the_echo() {
    // Party 0's round-1 broadcast reaches party 2 as a different (valid) package from
    // another run: party 2 and party 1 no longer agree on round 1.
    let mut other = Dkg::<Secp256K1Sha256TR>::new(0, 3, 2).unwrap();
    let forged: Message = other.step(Vec::new()).unwrap().outgoing.remove(0);
    let parties: Vec<Box<dyn Party<Output = FrostKey<Secp256K1Sha256TR>>>> = (0..3)
        .map(|i| {
            Box::new(Dkg::<Secp256K1Sha256TR>::new(i, 3, 2).unwrap()) as Box<dyn Party<Output = _>>
        })
        .collect();
    let results = network::run_clear(parties, &mut |to, m| {
        if to == 2 && m.from == 0 && m.to == Recipient::All {
            Some(forged.clone())
        } else {
            Some(m)
        }
    });
    let aborted = results.iter().filter(|r| {
        matches!(r, Err(ThresholdError::Protocol(ProtocolError::Aborted { reason, .. })) if reason.contains("other round-1 messages"))
    });
    assert!(
        aborted.count() >= 1,
        "{results:?}",
        results = results.iter().map(|r| r.as_ref().err()).collect::<Vec<_>>()
    );
    assert!(
        results.iter().all(Result::is_err),
        "no party may finish with a key"
    );
}

#[test]
fn a_bad_signature_share_is_blamed() {
    let keys = dkg::<Ed25519Sha512>();
    let stored: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| k.to_bytes().unwrap().to_vec())
        .collect();
    let signers = [0u16, 1];
    let parties: Vec<Box<dyn Party<Output = Vec<u8>>>> = signers
        .iter()
        .enumerate()
        .map(|(me, &node)| {
            let key = FrostKey::<Ed25519Sha512>::from_bytes(&stored[usize::from(node)]).unwrap();
            Box::new(Sign::new(me as u16, &signers, key, b"m".to_vec()).unwrap())
                as Box<dyn Party<Output = _>>
        })
        .collect();
    let mut seen = 0;
    // Party 1's second message (its share) loses a bit on its way to party 0.
    let results = network::run_clear(parties, &mut |to, mut m| {
        if to == 0 && m.from == 1 {
            seen += 1;
            if seen == 2 {
                let last = m.body.len() - 5;
                m.body[last] ^= 1;
            }
        }
        Some(m)
    });
    match &results[0] {
        Err(ThresholdError::Protocol(ProtocolError::Aborted { blame, .. })) => {
            assert_eq!(blame, &vec![1])
        }
        Err(ThresholdError::Protocol(ProtocolError::Undecodable { from: 1 })) => {}
        other => panic!(
            "party 0 must refuse party 1's share: {:?}",
            other.as_ref().err()
        ),
    }
}
