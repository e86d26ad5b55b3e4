//! Helpers shared by the integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::process::Command;

use strongroom_envelope::{Envelope, EnvelopeError, RecipientKey};

/// The real KMS `CiphertextForRecipient` (see `tests/data/README.md`).
pub const KMS_SAMPLE: &[u8] = include_bytes!("../data/enclaver-ciphertext-for-recipient.der");
/// Its recipient key, PKCS#8 DER.
pub const KMS_SAMPLE_KEY: &[u8] = include_bytes!("../data/enclaver-recipient-key.der");

/// The sample's recipient key, freshly loaded (opening consumes it).
pub fn sample_key() -> RecipientKey {
    RecipientKey::from_pkcs8_der(KMS_SAMPLE_KEY).unwrap()
}

/// Position of `needle` in `haystack`; panics if absent or ambiguous, so tampering tests never
/// hit the wrong bytes silently.
pub fn find(haystack: &[u8], needle: &[u8]) -> usize {
    let mut hits = haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i);
    let first = hits.next().expect("needle not found");
    assert!(hits.next().is_none(), "needle found more than once");
    first
}

/// Byte ranges of the encrypted key, the IV and the (single-chunk) encrypted content.
pub struct Layout {
    pub recipient_id: std::ops::Range<usize>,
    pub encrypted_key: std::ops::Range<usize>,
    pub iv: std::ops::Range<usize>,
    pub encrypted_content: std::ops::Range<usize>,
}

/// Locate the variable fields of `envelope` by parsing it and finding each field's bytes.
pub fn layout(envelope: &[u8]) -> Layout {
    let parsed = Envelope::parse(envelope).unwrap();
    let range = |needle: &[u8]| {
        let at = find(envelope, needle);
        at..at + needle.len()
    };
    Layout {
        recipient_id: range(parsed.recipient_id()),
        encrypted_key: range(parsed.encrypted_key()),
        iv: range(parsed.iv()),
        encrypted_content: range(parsed.encrypted_content()),
    }
}

/// `envelope` with bit `bit` of byte `at` flipped.
pub fn flip(envelope: &[u8], at: usize, bit: u8) -> Vec<u8> {
    let mut out = envelope.to_vec();
    out[at] ^= 1 << bit;
    out
}

/// Assert that `result` is the single, detail-free decryption error.
pub fn assert_decryption_error(result: Result<zeroize::Zeroizing<Vec<u8>>, EnvelopeError>) {
    match result {
        Err(EnvelopeError::Decryption) => {}
        Err(other) => panic!("expected EnvelopeError::Decryption, got {other:?}"),
        Ok(plaintext) => panic!(
            "expected EnvelopeError::Decryption, got plaintext {:?}",
            &*plaintext
        ),
    }
}

/// `count` random bytes.
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut out = vec![0u8; count];
    aws_lc_rs::rand::fill(&mut out).unwrap();
    out
}

/// Lower-case hex, colon-separated, as OpenSSL's `subjectKeyIdentifier=` takes it.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Run the `openssl` command-line tool and return its standard output.
///
/// Panics with an explanation when OpenSSL is missing: these tests must not pass silently
/// without it.
pub fn openssl<I, S>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let output = Command::new("openssl")
        .args(&args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `openssl` ({e}): these tests need the OpenSSL 3 command-line tool on \
             PATH (Debian: apt-get install openssl)"
            )
        });
    assert!(
        output.status.success(),
        "`openssl {}` failed ({}): {}",
        shown.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
