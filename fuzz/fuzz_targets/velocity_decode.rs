//! Sealed velocity counters on arbitrary bytes (they come back from untrusted storage): no
//! input panics the decoder or makes it allocate beyond the input, and whatever decodes
//! is canonical: it encodes back to exactly the input bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_policy::Velocity;

fuzz_target!(|data: &[u8]| {
    if let Ok(velocity) = Velocity::from_bytes(data) {
        assert_eq!(velocity.to_bytes(), data, "decoded counters are not canonical");
    }
});
