//! `open` and `Envelope::parse` never panic, whatever the parent sends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use common::{KMS_SAMPLE, sample_key};
use proptest::prelude::*;
use strongroom_envelope::{Envelope, EnvelopeError, seal_for_recipient};

/// A sealed envelope with several content chunks, to mutate besides the KMS sample.
fn chunked_envelope() -> &'static [u8] {
    static SEALED: OnceLock<Vec<u8>> = OnceLock::new();
    SEALED.get_or_init(|| {
        let spki = sample_key().public_key_spki_der().to_vec();
        seal_for_recipient(&spki, &[0x5a; 2500]).unwrap()
    })
}

/// Run both entry points; a panic fails the property. The result must be consistent: whatever
/// `parse` refuses, `open` refuses with the same kind of error.
fn exercise(bytes: &[u8]) {
    let parsed = Envelope::parse(bytes);
    let opened = sample_key().open(bytes);
    if let Err(parse_error) = parsed {
        let open_error = opened.err().unwrap();
        assert_eq!(
            std::mem::discriminant(&parse_error),
            std::mem::discriminant(&open_error)
        );
        assert!(!matches!(parse_error, EnvelopeError::Decryption));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes);
    }

    #[test]
    fn random_bytes_behind_a_valid_prefix_never_panic(
        cut in 0..KMS_SAMPLE.len(),
        tail in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = KMS_SAMPLE[..cut].to_vec();
        bytes.extend(tail);
        exercise(&bytes);
    }

    #[test]
    fn single_byte_mutations_of_the_kms_sample_never_panic(
        index in any::<proptest::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut bytes = KMS_SAMPLE.to_vec();
        bytes[index.index(KMS_SAMPLE.len())] = value;
        exercise(&bytes);
    }

    #[test]
    fn single_byte_mutations_of_a_chunked_envelope_never_panic(
        index in any::<proptest::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut bytes = chunked_envelope().to_vec();
        let index = index.index(bytes.len());
        bytes[index] = value;
        exercise(&bytes);
    }
}
