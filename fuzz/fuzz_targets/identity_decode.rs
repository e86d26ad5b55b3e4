//! The decoders of what the enclave's identity signs, on arbitrary bytes: answer signature
//! headers, audit lines, attestation user data and checkpoints. Whatever parses must
//! encode back to something that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strongroom_identity::{AnswerSignature, AuditEntry, Checkpoint, UserData};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(sig) = AnswerSignature::parse(text)
            {
                assert_eq!(AnswerSignature::parse(&sig.to_header()), Ok(sig));
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && let Ok(entry) = AuditEntry::parse_line(text)
            {
                let again = AuditEntry::parse_line(&entry.to_line()).expect("own line");
                assert_eq!(again, entry);
                let _ = entry.header();
            }
        }
        2 => {
            if let Ok(user_data) = UserData::decode(rest) {
                assert_eq!(UserData::decode(&user_data.encode()), Ok(user_data));
            }
        }
        _ => {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest)
                && let Ok(checkpoint) = Checkpoint::from_json(&value)
            {
                assert_eq!(Checkpoint::from_json(&checkpoint.to_json()), Ok(checkpoint));
            }
        }
    }
});
