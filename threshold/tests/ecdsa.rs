//! CGGMP24 among three parties: auxiliary information, 2-of-3 key generation, full signing
//! on a digest and one-round signing with a presignature; every signature recovers to the
//! group key with k256 (and, in the whole-system tests, with eth-account). The primes are
//! test fixtures (`tests/data/primes.hex`, made by `examples/primes.rs`): safe-prime
//! generation takes tens of seconds per node and is measured by `make bench` instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{engines, network};

use std::sync::OnceLock;
use std::time::Instant;

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha3::{Digest, Keccak256};
use strongroom_threshold::ecdsa::{
    self, AuxInfo, KeyShare, Presignature, Primes, RecoverableSignature,
};
use strongroom_threshold::{Message, Party, ProtocolError, ThresholdError};

fn primes() -> Vec<Primes> {
    include_str!("data/primes.hex")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| Primes::from_bytes(&hex::decode(l).unwrap()).unwrap())
        .collect()
}

struct Group {
    aux: Vec<Vec<u8>>,
    shares: Vec<Vec<u8>>,
}

/// The group every test uses, set up once per test binary.
fn setup() -> &'static Group {
    static GROUP: OnceLock<Group> = OnceLock::new();
    GROUP.get_or_init(make_group)
}

fn make_group() -> Group {
    let started = Instant::now();
    let parties: Vec<Box<dyn Party<Output = AuxInfo>>> = primes()
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            Box::new(ecdsa::aux_info([1; 32], i as u16, 3, p)) as Box<dyn Party<Output = _>>
        })
        .collect();
    let aux: Vec<Vec<u8>> = network::run(parties)
        .iter()
        .map(|a| a.to_bytes().unwrap().to_vec())
        .collect();
    eprintln!(
        "aux info, 3 parties: {:?}, {} bytes each, largest message {} bytes",
        started.elapsed(),
        aux[0].len(),
        network::LARGEST.load(std::sync::atomic::Ordering::Relaxed)
    );
    let started = Instant::now();
    let parties: Vec<Box<dyn Party<Output = KeyShare>>> = (0..3)
        .map(|i| Box::new(ecdsa::keygen([2; 32], i, 3, 2).unwrap()) as Box<dyn Party<Output = _>>)
        .collect();
    let shares: Vec<Vec<u8>> = network::run(parties)
        .iter()
        .map(|s| s.to_bytes().unwrap().to_vec())
        .collect();
    eprintln!("keygen 2-of-3: {:?}", started.elapsed());
    Group { aux, shares }
}

fn share(group: &Group, node: u16) -> (KeyShare, AuxInfo) {
    (
        KeyShare::from_bytes(&group.shares[usize::from(node)]).unwrap(),
        AuxInfo::from_bytes(&group.aux[usize::from(node)]).unwrap(),
    )
}

/// A presignature made by the nodes `signers` (group indices, in run order).
fn presign(group: &Group, eid: [u8; 32], signers: &[u16]) -> Vec<Presignature> {
    let parties: Vec<Box<dyn Party<Output = Presignature>>> = signers
        .iter()
        .enumerate()
        .map(|(me, &node)| {
            let (k, a) = share(group, node);
            Box::new(ecdsa::presign(eid, me as u16, signers.to_vec(), &k, &a).unwrap())
                as Box<dyn Party<Output = _>>
        })
        .collect();
    network::run(parties)
}

fn recovers(signature: &RecoverableSignature, digest: &[u8; 32], public_key: &[u8; 65]) {
    let sig = Signature::from_slice(&signature.rs).unwrap();
    let id = RecoveryId::from_byte(signature.v).unwrap();
    let recovered = VerifyingKey::recover_from_prehash(digest, &sig, id).unwrap();
    assert_eq!(recovered.to_sec1_point(false).as_bytes(), public_key);
}

#[test]
fn cggmp24_two_of_three() {
    let group = setup();
    let keys: Vec<KeyShare> = (0..3).map(|i| share(group, i).0).collect();
    let public_key = keys[0].public_key();
    assert!(
        keys.iter()
            .all(|k| k.public_key() == public_key && k.threshold() == 2 && k.parties() == 3)
    );
    assert_eq!(
        keys.iter().map(KeyShare::index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );

    // Full signing on a digest, by nodes 0 and 2.
    let digest: [u8; 32] =
        Keccak256::digest(b"a digest whose preimage the signers never see").into();
    let signers = vec![0u16, 2];
    let started = Instant::now();
    let parties: Vec<Box<dyn Party<Output = RecoverableSignature>>> = signers
        .iter()
        .enumerate()
        .map(|(me, &node)| {
            let (k, a) = share(group, node);
            Box::new(ecdsa::sign([3; 32], me as u16, signers.clone(), &k, &a, digest).unwrap())
                as Box<dyn Party<Output = _>>
        })
        .collect();
    let signatures = network::run(parties);
    eprintln!("full signing 2-of-3: {:?}", started.elapsed());
    assert_eq!(signatures[0], signatures[1]);
    recovers(&signatures[0], &digest, &public_key);

    // A presignature by nodes 1 and 2, then one round on a preimage.
    let started = Instant::now();
    let presignatures = presign(group, [4; 32], &[1, 2]);
    eprintln!("presignature 2-of-3: {:?}", started.elapsed());
    assert!(presignatures.iter().all(|p| p.signers() == [1, 2]));
    let preimage = b"\x02\xf0 an RLP transaction the enclave decoded";
    let started = Instant::now();
    let parties: Vec<Box<dyn Party<Output = RecoverableSignature>>> = presignatures
        .into_iter()
        .map(|p| Box::new(ecdsa::sign_presigned(p, preimage)) as Box<dyn Party<Output = _>>)
        .collect();
    let signatures = network::run(parties);
    eprintln!("presigned signing: {:?}", started.elapsed());
    assert_eq!(signatures[0], signatures[1]);
    recovers(
        &signatures[0],
        &Keccak256::digest(preimage).into(),
        &public_key,
    );
}

#[test]
fn a_forged_partial_signature_aborts() {
    let group = setup();
    let mut presignatures = presign(group, [5; 32], &[0, 1]);
    let second = presignatures.pop().unwrap();
    let first = presignatures.pop().unwrap();
    // Party 1's partial signature is for another message than party 0's.
    let mut p0 = ecdsa::sign_presigned(first, b"pay 1 ETH to Alice");
    let mut p1 = ecdsa::sign_presigned(second, b"pay 100 ETH to Mallory");
    let m0: Vec<Message> = p0.step(Vec::new()).unwrap().outgoing;
    let m1: Vec<Message> = p1.step(Vec::new()).unwrap().outgoing;
    let r0 = p0.step(m1);
    let r1 = p1.step(m0);
    assert!(matches!(r0, Err(ProtocolError::Aborted { .. })), "{r0:?}");
    assert!(matches!(r1, Err(ProtocolError::Aborted { .. })), "{r1:?}");
}

#[test]
fn a_share_and_the_wrong_aux_info_are_refused() {
    let group = setup();
    let (k, _) = share(group, 0);
    let (_, a1) = share(group, 1);
    assert!(matches!(
        ecdsa::sign([6; 32], 0, vec![0, 1], &k, &a1, [0; 32]),
        Err(ThresholdError::Material { .. })
    ));
    assert!(matches!(
        ecdsa::sign([6; 32], 0, vec![0], &k, &share(group, 0).1, [0; 32]),
        Err(ThresholdError::Material {
            what: "signer set",
            ..
        })
    ));
}

/// Through the engines: a presignature made by nodes 0 and 1 is held by both under one id
/// and spent once; a second session naming it, or a replay of the first, is refused.
#[test]
fn presignatures_are_held_in_memory_and_spent_once() {
    use serde_bytes::ByteBuf;
    use strongroom_threshold::engine::{Outcome, PartySpec};
    use strongroom_threshold::session::{Invitation, SessionKind};
    use zeroize::Zeroizing;

    let group = setup();
    let engines = engines::engines(2);
    let nodes = vec![[1u8; 16], [2; 16]];
    let presign = Invitation {
        genesis: engines::GENESIS,
        kind: SessionKind::Presign { key_id: "k".into() },
        participants: nodes.clone(),
        request: None,
        nonce: [1; 32],
        issued_at: engines::NOW,
    };
    let specs = (0..2)
        .map(|node| PartySpec::Presign {
            key_id: "k".into(),
            share: Zeroizing::new(group.shares[node].clone()),
            aux: Zeroizing::new(group.aux[node].clone()),
            signers: vec![0, 1],
        })
        .collect();
    let outcomes = engines::run(&engines, &[0, 1], &presign, specs, engines::NOW);
    let ids: Vec<[u8; 16]> = outcomes
        .into_iter()
        .map(|o| match o.unwrap() {
            Outcome::Presignature(id) => id,
            other => panic!("a presignature: {other:?}"),
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(engines[0].held("k"), vec![(ids[0], nodes.clone())]);
    assert!(engines[0].held("other").is_empty());

    let preimage = b"an EIP-1559 transaction's signing payload".to_vec();
    let sign = |nonce: u8| Invitation {
        genesis: engines::GENESIS,
        kind: SessionKind::Sign {
            key_id: "k".into(),
            presignature: Some(ids[0]),
        },
        participants: nodes.clone(),
        request: Some(ByteBuf::from(preimage.clone())),
        nonce: [nonce; 32],
        issued_at: engines::NOW,
    };
    let spec = || PartySpec::EcdsaPresigned {
        key_id: "k".into(),
        presignature: ids[0],
        preimage: preimage.clone(),
    };
    let public_key = share(group, 0).0.public_key();
    let outcomes = engines::run(
        &engines,
        &[0, 1],
        &sign(2),
        vec![spec(), spec()],
        engines::NOW + 1,
    );
    for o in outcomes {
        let Outcome::Ecdsa(signature) = o.unwrap() else {
            panic!("a signature")
        };
        recovers(
            &signature,
            &Keccak256::digest(&preimage).into(),
            &public_key,
        );
    }
    assert!(engines[0].held("k").is_empty(), "spent");
    // Another session naming the same presignature, and a replay of the first: refused.
    for invitation in [sign(3), sign(2)] {
        let outcomes = engines::run(
            &engines,
            &[0, 1],
            &invitation,
            vec![spec(), spec()],
            engines::NOW + 2,
        );
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Err(ThresholdError::Material { .. }))),
            "{outcomes:?}"
        );
    }
}
