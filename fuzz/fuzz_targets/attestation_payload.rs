//! The payload decoder and its syntax checks on arbitrary bytes; whatever decodes must
//! re-encode to a payload that decodes to the same document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_attestation::AttestationDocument;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = AttestationDocument::from_payload(data) {
        let encoded = doc.to_payload();
        // Absent optional fields are re-encoded as nulls, which can push a payload that was
        // just under the limit over it; that refusal is correct, not a round-trip failure.
        if encoded.len() <= strongroom_attestation::MAX_PAYLOAD_LEN {
            let again = AttestationDocument::from_payload(&encoded);
            assert_eq!(again.as_ref(), Ok(&doc));
        }
    }
});
