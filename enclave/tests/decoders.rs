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
    fn state_round_trips(counter in any::<u64>(), ids in proptest::collection::btree_set(any::<[u8; 16]>(), 0..64)) {
        let state = EnclaveState { counter, destroyed: ids };
        prop_assert_eq!(EnclaveState::from_plaintext(&state.to_plaintext()).unwrap(), state);
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
