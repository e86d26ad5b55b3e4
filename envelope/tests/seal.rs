//! The mock-KMS builder: round trips, the KMS layout, and tampering with what it builds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{KMS_SAMPLE, assert_decryption_error, find, flip, layout, random_bytes, sample_key};
use strongroom_envelope::{
    Envelope, EnvelopeError, MAX_ENVELOPE_LEN, RecipientKey, seal_for_recipient,
};

fn sample_spki() -> Vec<u8> {
    sample_key().public_key_spki_der().to_vec()
}

#[test]
fn sealed_envelopes_open_for_many_lengths() {
    let spki = sample_spki();
    // Around block and chunk (1024-byte) boundaries.
    for len in [0, 1, 15, 16, 17, 1023, 1024, 1025, 2048, 4096, 5000] {
        let plaintext = random_bytes(len);
        let envelope = seal_for_recipient(&spki, &plaintext).unwrap();
        let opened = sample_key().open(&envelope).unwrap();
        assert_eq!(opened.as_slice(), plaintext.as_slice(), "length {len}");
    }
}

#[test]
fn generated_key_round_trip() {
    let key = RecipientKey::generate().unwrap();
    let envelope = seal_for_recipient(key.public_key_spki_der(), b"root key material").unwrap();
    assert_eq!(
        key.open(&envelope).unwrap().as_slice(),
        b"root key material"
    );
}

#[test]
fn sealed_envelope_matches_the_kms_layout_byte_for_byte() {
    // Same recipient and plaintext length as the KMS sample: once the random fields (wrapped
    // key, IV, ciphertext) are blanked, the two encodings must be identical.
    let sealed = seal_for_recipient(&sample_spki(), b"Hello, World").unwrap();
    assert_eq!(sealed.len(), KMS_SAMPLE.len());
    let blank = |bytes: &[u8]| {
        let fields = layout(bytes);
        let mut out = bytes.to_vec();
        for range in [fields.encrypted_key, fields.iv, fields.encrypted_content] {
            out[range].fill(0);
        }
        out
    };
    assert_eq!(hex::encode(blank(&sealed)), hex::encode(blank(KMS_SAMPLE)));
    // And the random fields really are fresh.
    assert_ne!(
        Envelope::parse(&sealed).unwrap().iv(),
        Envelope::parse(KMS_SAMPLE).unwrap().iv()
    );
}

#[test]
fn long_content_is_split_into_octet_string_chunks() {
    let sealed = seal_for_recipient(&sample_spki(), &random_bytes(3000)).unwrap();
    let parsed = Envelope::parse(&sealed).unwrap();
    // 3000 bytes pad to 3008: chunks of 1024, 1024 and 960, each a DER OCTET STRING.
    assert_eq!(parsed.encrypted_content().len(), 3008);
    let content = parsed.encrypted_content();
    let first = find(&sealed, &content[..1024]);
    assert_eq!(
        &sealed[first - 6..first],
        &[0xa0, 0x80, 0x04, 0x82, 0x04, 0x00]
    );
    let second = find(&sealed, &content[1024..2048]);
    assert_eq!(second, first + 1024 + 4);
    let third = find(&sealed, &content[2048..]);
    assert_eq!(&sealed[third - 4..third], &[0x04, 0x82, 0x03, 0xc0]);
    assert_eq!(&sealed[third + 960..], &[0u8; 10]);
}

#[test]
fn two_seals_of_the_same_plaintext_differ() {
    let spki = sample_spki();
    let a = Envelope::parse(&seal_for_recipient(&spki, b"same").unwrap()).unwrap();
    let b = Envelope::parse(&seal_for_recipient(&spki, b"same").unwrap()).unwrap();
    assert_ne!(a.encrypted_key(), b.encrypted_key());
    assert_ne!(a.iv(), b.iv());
}

#[test]
fn sealed_for_another_key_is_a_typed_mismatch() {
    let other = RecipientKey::generate().unwrap();
    let sealed = seal_for_recipient(other.public_key_spki_der(), b"x").unwrap();
    assert!(matches!(
        sample_key().open(&sealed),
        Err(EnvelopeError::RecipientMismatch)
    ));
}

#[test]
fn tampered_sealed_envelopes_fail_as_decryption() {
    // 40 bytes: three blocks, the last ending in 8 padding bytes `08`.
    let plaintext = random_bytes(40);
    let sealed = seal_for_recipient(&sample_spki(), &plaintext).unwrap();
    let fields = layout(&sealed);

    // Encrypted key: OAEP's integrity check refuses any change.
    assert_decryption_error(sample_key().open(&flip(&sealed, fields.encrypted_key.start + 100, 3)));
    // Last byte of the second-to-last block: flips the final padding byte (08 -> 09).
    let penultimate_last_byte = fields.encrypted_content.end - 17;
    assert_decryption_error(sample_key().open(&flip(&sealed, penultimate_last_byte, 0)));
    // Untouched, it still opens: the failures above come from the tampering.
    assert_eq!(
        sample_key().open(&sealed).unwrap().as_slice(),
        plaintext.as_slice()
    );
}

#[test]
fn tampered_iv_over_padding_fails_as_decryption() {
    // One block of 10 bytes + 6 padding bytes: IV flips in the last 6 bytes hit the padding.
    let sealed = seal_for_recipient(&sample_spki(), b"0123456789").unwrap();
    let iv = layout(&sealed).iv;
    for position in iv.end - 6..iv.end {
        assert_decryption_error(sample_key().open(&flip(&sealed, position, 4)));
    }
}

#[test]
fn invalid_recipient_spki_is_refused() {
    assert!(matches!(
        seal_for_recipient(b"not a key", b"x"),
        Err(EnvelopeError::InvalidKey)
    ));
    let mut spki = sample_spki();
    spki.truncate(spki.len() - 1);
    assert!(matches!(
        seal_for_recipient(&spki, b"x"),
        Err(EnvelopeError::InvalidKey)
    ));
}

#[test]
fn plaintext_that_would_exceed_the_limit_is_refused() {
    let spki = sample_spki();
    assert!(matches!(
        seal_for_recipient(&spki, &vec![0u8; MAX_ENVELOPE_LEN]),
        Err(EnvelopeError::TooLarge { .. })
    ));
    // Comfortably below the limit still works, and opens.
    let plaintext = vec![7u8; MAX_ENVELOPE_LEN - 1024];
    let sealed = seal_for_recipient(&spki, &plaintext).unwrap();
    assert!(sealed.len() <= MAX_ENVELOPE_LEN);
    assert_eq!(
        sample_key().open(&sealed).unwrap().as_slice(),
        plaintext.as_slice()
    );
}
