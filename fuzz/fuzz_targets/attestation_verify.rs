//! Whole-document verification on arbitrary bytes, against the AWS root at a time when the
//! seed documents' certificates are valid, so mutations reach every check.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use strongroom_attestation::{Expectations, verify};

fuzz_target!(|data: &[u8]| {
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_665_651_540);
    let exp = Expectations::new(at).pcr(0, vec![0; 48]).nonce(vec![1; 8]);
    let _ = verify(data, &exp);
});
