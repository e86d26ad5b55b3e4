//! Fuzz `Envelope::parse` and `RecipientKey::open` with arbitrary bytes from the parent.
//!
//! The key is the fixed test key of the KMS sample (`envelope/tests/data/`), so inputs derived
//! from that sample reach RSA-OAEP and AES-CBC, not only the parser.

#![no_main]
#![allow(clippy::expect_used)]

use libfuzzer_sys::fuzz_target;
use strongroom_envelope::{Envelope, EnvelopeError, RecipientKey};

const KEY_PKCS8_DER: &[u8] = include_bytes!("../../envelope/tests/data/enclaver-recipient-key.der");

fuzz_target!(|data: &[u8]| {
    let parsed = Envelope::parse(data);
    // `open` parses again and then consumes the key, so a fresh key is loaded per input; only
    // when parsing succeeds, since otherwise `open` stops at the same error before the key.
    if let Ok(envelope) = parsed {
        let key = RecipientKey::from_pkcs8_der(KEY_PKCS8_DER).expect("the embedded test key loads");
        let addressed_to_us = envelope.recipient_id() == key.key_id().as_slice();
        match key.open(data) {
            Ok(_) => assert!(addressed_to_us),
            Err(EnvelopeError::RecipientMismatch) => assert!(!addressed_to_us),
            Err(EnvelopeError::Decryption) => assert!(addressed_to_us),
            Err(other) => panic!("parse accepted what open refused: {other}"),
        }
    }
});
