//! A snapshot's plaintext on arbitrary bytes (a snapshot is sealed, so only the enclave's
//! own writes reach the decoder, but a bug in another release's writer must not panic
//! this one): no input panics it, and what decodes encodes to bytes that decode to the
//! same state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_enclave::state::EnclaveState;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = EnclaveState::from_plaintext(data) {
        let bytes = state.to_plaintext().expect("a decoded state encodes");
        let again = EnclaveState::from_plaintext(&bytes).expect("its encoding decodes");
        assert_eq!(*again.to_plaintext().expect("encodes"), *bytes);
    }
});
