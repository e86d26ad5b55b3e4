//! Transaction request bodies and unsigned encodings on arbitrary bytes: no input may
//! panic, and whatever decodes must re-encode to an unsigned encoding that decodes to the
//! same transaction (for the raw form: to exactly the input bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_eth::UnsignedTransaction;

fuzz_target!(|data: &[u8]| {
    if let Ok((tx, _from)) = UnsignedTransaction::from_request_body(data) {
        let unsigned = tx.unsigned_encoding();
        assert_eq!(UnsignedTransaction::from_unsigned_rlp(&unsigned).as_ref(), Ok(&tx));
        let _ = tx.intent();
        let _ = tx.encode_signed([1; 32], [2; 32], true);
    }
    if let Ok(tx) = UnsignedTransaction::from_unsigned_rlp(data) {
        assert_eq!(tx.unsigned_encoding(), data);
        let _ = tx.intent();
    }
});
