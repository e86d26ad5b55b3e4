//! EIP-712 documents and personal_sign bodies on arbitrary bytes: no input may panic or
//! run away (the decoder bounds type expansion before alloy resolves types).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_eth::{TypedData, message_from_request_body};

fuzz_target!(|data: &[u8]| {
    if let Ok(typed) = TypedData::from_json(data) {
        let intent = typed.intent();
        assert_eq!(intent.signing_hash, typed.signing_hash());
    }
    let _ = message_from_request_body(data);
});
