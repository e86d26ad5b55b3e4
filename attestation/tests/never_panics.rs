//! Property tests: no input panics the verifier, and no single-bit change of a genuine
//! document is accepted.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use strongroom_attestation::{Expectations, from_millis, verify};

fn genuine() -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/aws-2022-10-13.cbor",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn at() -> Expectations {
    Expectations::new(from_millis(1_665_651_482_136) + Duration::from_secs(60))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..6000)) {
        let _ = verify(&bytes, &Expectations::new(SystemTime::now()));
    }

    #[test]
    fn any_single_bit_flip_is_refused(index in 0usize..4654, bit in 0u8..8) {
        let mut doc = genuine();
        prop_assume!(index < doc.len());
        doc[index] ^= 1 << bit;
        prop_assert!(verify(&doc, &at()).is_err());
    }

    #[test]
    fn truncations_and_extensions_are_refused(cut in 0usize..4654, tail in proptest::collection::vec(any::<u8>(), 1..16)) {
        let doc = genuine();
        prop_assert!(verify(&doc[..cut.min(doc.len() - 1)], &at()).is_err());
        let mut longer = doc.clone();
        longer.extend_from_slice(&tail);
        prop_assert!(verify(&longer, &at()).is_err());
    }
}
