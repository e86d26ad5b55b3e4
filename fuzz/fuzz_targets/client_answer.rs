//! The client's reading of what a server (or anything between it and the enclave) sends
//! back: error answers of any status and body, answer-signature headers, the verifier's
//! check of an answer, attestation user data, and the state file of verified heads and
//! known deployments. No input may panic the client, and nothing unsigned verifies.
#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use strongroom_client::{HeadBook, Verification, Verifier, error_from_answer};
use strongroom_identity::{AnswerSignature, UserData, answer_request_digest};

static VERIFIER: LazyLock<Verifier> =
    LazyLock::new(|| Verifier::new(BTreeMap::from([(0u16, vec![0xab; 48])])).expect("a verifier"));

/// One file per fuzzing process for the state-file reader.
static STATE_FILE: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("strongroom-fuzz-heads-{}.json", std::process::id()))
});

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let status = u16::from_be_bytes([*a, *b]);
    let (header, body) = match rest.iter().position(|&c| c == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = String::from_utf8_lossy(header);

    let error = error_from_answer(status, body, Verification::Verified);
    let text = error.to_string();
    assert!(text.starts_with(&status.to_string()), "{text}");

    if let Ok(signature) = AnswerSignature::parse(&header) {
        let digest = answer_request_digest("POST", "/v1/keys", b"{}", None);
        let _ = signature.verify(&digest, status, body);
    }
    // No attested identity: whatever the header says, the answer is refused.
    let checked =
        VERIFIER.check_answer("POST", "/v1/keys", b"{}", None, status, Some(&header), body);
    assert!(
        checked.is_err(),
        "an answer verified without an attested identity"
    );

    let _ = UserData::decode(body);

    if std::fs::write(&*STATE_FILE, body).is_ok()
        && let Ok(book) = HeadBook::open(&*STATE_FILE)
    {
        let _ = book.known();
        let _ = book.forget(&header);
    }
});
