//! Property tests for the enclave's decoders of stored bytes (which the parent controls):
//! no input panics them, and what they encode they decode.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use strongroom_enclave::keys::KeyRecord;
use strongroom_enclave::seal::{Curve, ObjectId, ObjectKind, Sealer};
use strongroom_enclave::state::EnclaveState;

fn key_object(id: [u8; 16]) -> ObjectId {
    ObjectId {
        kind: ObjectKind::SigningKey,
        id,
        version: 1,
        curve: Curve::Secp256k1,
    }
}

/// A state made from a genesis with one admin, one principal and a velocity rule, with a
/// velocity counter in it.
fn sample_state() -> EnclaveState {
    use strongroom_policy::{Context, Engine, Intent, KeyRef, TransactionIntent, TxType, Velocity};
    let spec = |seed: u8| {
        let key = strongroom_auth::SigningKey::ed25519_from_seed(&[seed; 32]).public();
        serde_json::json!({"algorithm": "ed25519", "public": hex::encode(key.public_bytes())})
    };
    let genesis = serde_json::json!({"version": 1,
        "admins": {"threshold": 1, "keys": [spec(1)]},
        "policy": {"version": 1,
            "principals": [{"id": "p", "roles": [], "keys": [spec(2)]}],
            "rules": [{"name": "t", "effect": "allow", "actions": ["sign_transaction"],
                       "conditions": {"velocity": [{"scope": "key", "window": "1h", "max_count": 5}]}}]}});
    let genesis =
        strongroom_enclave::governance::Genesis::from_json(genesis.to_string().as_bytes()).unwrap();
    let mut engine = Engine::new(genesis.policy.clone(), Velocity::default());
    let intent = Intent::Transaction(TransactionIntent {
        tx_type: TxType::Eip1559,
        chain_id: 1,
        nonce: 0,
        to: None,
        value: Default::default(),
        gas_limit: 21_000,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: Some(1),
        selector: None,
        data_len: 0,
        erc20: None,
        data: Default::default(),
        access_list: Vec::new(),
        signing_hash: Default::default(),
        call: None,
    });
    let approvals = Default::default();
    let _ = engine.decide_and_commit(&Context {
        principal: "p",
        key: Some(KeyRef {
            id: "00112233445566778899aabbccddeeff",
            label: "k",
        }),
        intent: &intent,
        now: 1_000,
        requested_at: 1_000,
        approvals: &approvals,
    });
    EnclaveState {
        seq: 1,
        destroyed: [[1; 16]].into_iter().collect(),
        genesis: genesis.digest(),
        admins: genesis.admins,
        engine,
        proposals: Vec::new(),
        requests: Default::default(),
        audit_next: 0,
        audit_head: [0; 32],
        signers: Default::default(),
    }
}

proptest! {
    #[test]
    fn stored_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = EnclaveState::from_plaintext(&bytes);
        let _ = KeyRecord::from_plaintext([0; 16], &bytes);
        let _ = Sealer::peek_id(&bytes);
        let sealer = Sealer::new(&[7; 32]).unwrap();
        prop_assert!(sealer.open(&key_object([0; 16]), &bytes).is_err());
    }

    #[test]
    fn mutated_state_plaintexts_never_panic(index in 0usize..4096, xor in 1u8..=255, cut in 0usize..4096) {
        let bytes = sample_state().to_plaintext().unwrap();
        let mut bad = bytes.to_vec();
        let i = index % bad.len();
        bad[i] ^= xor;
        let _ = EnclaveState::from_plaintext(&bad);
        let _ = EnclaveState::from_plaintext(&bytes[..cut % bytes.len()]);
    }

    #[test]
    fn key_records_round_trip(seed in any::<[u8; 32]>(), label in "[a-zA-Z0-9 #_-]{1,128}", created in any::<u64>()) {
        let mut first = true;
        let generated = KeyRecord::generate([1; 16], label, created, |b| {
            if first { b.copy_from_slice(&seed); first = false; } else { b.fill(1); }
            Ok(())
        }).unwrap();
        let again = KeyRecord::from_plaintext([1; 16], &generated.to_plaintext()).unwrap();
        prop_assert_eq!(again.info(), generated.info());
    }

    #[test]
    fn mutated_blobs_are_refused(index in 0usize..200, xor in 1u8..=255) {
        let sealer = Sealer::new(&[7; 32]).unwrap();
        let blob = sealer.seal(&key_object([3; 16]), &[5u8; 60], [9; 12]).unwrap();
        let mut bad = blob.clone();
        let i = index % bad.len();
        bad[i] ^= xor;
        prop_assert!(sealer.open(&key_object([3; 16]), &bad).is_err());
    }
}
