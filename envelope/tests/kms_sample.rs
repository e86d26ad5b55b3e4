//! The real KMS `CiphertextForRecipient`: opening it, and every way of spoiling it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{KMS_SAMPLE, assert_decryption_error, flip, layout, sample_key};
use strongroom_envelope::{
    Envelope, EnvelopeError, MAX_ENVELOPE_LEN, RecipientKey, recipient_key_id,
};

#[test]
fn kms_sample_opens_to_hello_world() {
    let plaintext = sample_key().open(KMS_SAMPLE).unwrap();
    assert_eq!(plaintext.as_slice(), b"Hello, World");
}

#[test]
fn kms_recipient_id_is_sha256_of_our_spki() {
    // KMS computed this identifier from the SPKI in the attestation document; ours must agree.
    let key = sample_key();
    let envelope = Envelope::parse(KMS_SAMPLE).unwrap();
    assert_eq!(envelope.recipient_id(), key.key_id());
    assert_eq!(key.key_id(), &recipient_key_id(key.public_key_spki_der()));
}

#[test]
fn parse_reports_the_sample_fields() {
    let envelope = Envelope::parse(KMS_SAMPLE).unwrap();
    assert_eq!(envelope.encrypted_key().len(), 256);
    assert_eq!(
        hex::encode(envelope.iv()),
        "2c2ff1116ae6f8573fd58fd44f980624"
    );
    assert_eq!(
        hex::encode(envelope.encrypted_content()),
        "263a97b73a5ef0ad5db0274af9fc290c"
    );
}

#[test]
fn flipped_bits_in_encrypted_key_fail_as_decryption() {
    let at = layout(KMS_SAMPLE).encrypted_key;
    // A spread of positions over the whole RSA block, first and last bytes included.
    let positions = at.clone().step_by(17).chain([at.end - 1]);
    for (n, position) in positions.enumerate() {
        let bit = u8::try_from(n % 8).unwrap();
        assert_decryption_error(sample_key().open(&flip(KMS_SAMPLE, position, bit)));
    }
}

#[test]
fn flipped_bits_in_iv_over_the_padding_fail_as_decryption() {
    // The plaintext is 12 bytes, so the block ends in 4 padding bytes `04`; an IV bit flip
    // there changes a padding byte, which the PKCS#7 check must catch. Every such bit.
    let iv = layout(KMS_SAMPLE).iv;
    for position in iv.end - 4..iv.end {
        for bit in 0..8 {
            assert_decryption_error(sample_key().open(&flip(KMS_SAMPLE, position, bit)));
        }
    }
}

#[test]
fn flipped_bit_in_iv_over_the_text_is_not_detected_cbc_is_malleable() {
    // Not a wish, a fact to keep in view: CMS EnvelopedData has no integrity. Flipping IV bit 0
    // of byte 0 flips plaintext bit 0 of byte 0 ('H' ^ 1 = 'I'), and `open` cannot notice.
    // Callers must authenticate the plaintext themselves (see the crate documentation).
    let iv = layout(KMS_SAMPLE).iv;
    let plaintext = sample_key().open(&flip(KMS_SAMPLE, iv.start, 0)).unwrap();
    assert_eq!(plaintext.as_slice(), b"Iello, World");
}

#[test]
fn flipped_bit_in_encrypted_content_fails_as_decryption() {
    // The sample's ciphertext is one block: any flip garbles the whole block, padding included.
    let content = layout(KMS_SAMPLE).encrypted_content;
    assert_decryption_error(sample_key().open(&flip(KMS_SAMPLE, content.start + 3, 5)));
    assert_decryption_error(sample_key().open(&flip(KMS_SAMPLE, content.end - 1, 0)));
}

#[test]
fn changed_last_ciphertext_block_fails_as_decryption() {
    let content = layout(KMS_SAMPLE).encrypted_content;
    let last_block = content.end - 16..content.end;
    let mut zeroed = KMS_SAMPLE.to_vec();
    zeroed[last_block.clone()].fill(0);
    assert_decryption_error(sample_key().open(&zeroed));

    let mut inverted = KMS_SAMPLE.to_vec();
    inverted[last_block].iter_mut().for_each(|b| *b ^= 0xff);
    assert_decryption_error(sample_key().open(&inverted));
}

#[test]
fn wrong_recipient_key_is_refused_by_identifier() {
    let other = RecipientKey::generate().unwrap();
    assert!(matches!(
        other.open(KMS_SAMPLE),
        Err(EnvelopeError::RecipientMismatch)
    ));
}

#[test]
fn wrong_recipient_key_with_forged_identifier_fails_as_decryption() {
    // The parent can rewrite the identifier; then the RSA unwrap itself must fail.
    let other = RecipientKey::generate().unwrap();
    let mut forged = KMS_SAMPLE.to_vec();
    forged[layout(KMS_SAMPLE).recipient_id].copy_from_slice(other.key_id());
    assert_eq!(
        Envelope::parse(&forged).unwrap().recipient_id(),
        other.key_id()
    );
    assert_decryption_error(other.open(&forged));
}

#[test]
fn changed_recipient_identifier_is_a_typed_mismatch() {
    let id = layout(KMS_SAMPLE).recipient_id;
    assert!(matches!(
        sample_key().open(&flip(KMS_SAMPLE, id.start + 7, 2)),
        Err(EnvelopeError::RecipientMismatch)
    ));
}

#[test]
fn every_truncation_is_a_typed_malformed_error() {
    for len in 0..KMS_SAMPLE.len() {
        match sample_key().open(&KMS_SAMPLE[..len]) {
            Err(EnvelopeError::Malformed(_)) => {}
            other => panic!("truncated to {len}: expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn trailing_bytes_are_a_typed_malformed_error() {
    let mut longer = KMS_SAMPLE.to_vec();
    longer.extend_from_slice(&[0x05, 0x00]);
    assert!(matches!(
        sample_key().open(&longer),
        Err(EnvelopeError::Malformed(_))
    ));
}

#[test]
fn garbage_is_a_typed_malformed_error() {
    for garbage in [
        &b""[..],
        b"not a CMS envelope at all",
        &[0x30, 0x80],
        &[0x30, 0x03, 0x02, 0x01, 0x00],
        &[0xff; 300],
    ] {
        assert!(
            matches!(sample_key().open(garbage), Err(EnvelopeError::Malformed(_))),
            "{garbage:02x?}"
        );
    }
}

#[test]
fn other_content_type_is_refused() {
    // ContentInfo { id-data, [0] OCTET STRING "hi" }: valid CMS, not an envelope.
    let data = [
        0x30, 0x11, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01, 0xa0, 0x04,
        0x04, 0x02, b'h', b'i',
    ];
    assert!(matches!(
        sample_key().open(&data),
        Err(EnvelopeError::UnexpectedContentType(_))
    ));
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    // A valid envelope plus trailing bytes: parsed, it would be `Malformed` (trailing data);
    // `TooLarge` shows the size check ran first.
    let mut oversized = KMS_SAMPLE.to_vec();
    oversized.resize(MAX_ENVELOPE_LEN + 1, 0);
    match sample_key().open(&oversized) {
        Err(EnvelopeError::TooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_ENVELOPE_LEN + 1, MAX_ENVELOPE_LEN));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        Envelope::parse(&oversized),
        Err(EnvelopeError::TooLarge { .. })
    ));

    // At the limit exactly, the same bytes are parsed (and refused for what they are).
    oversized.truncate(MAX_ENVELOPE_LEN);
    assert!(matches!(
        sample_key().open(&oversized),
        Err(EnvelopeError::Malformed(_))
    ));
}

#[test]
fn debug_shows_identifier_and_no_secret() {
    let key = sample_key();
    let shown = format!("{key:?}");
    assert_eq!(
        shown,
        format!(
            "RecipientKey {{ key_id: {}, .. }}",
            hex::encode(key.key_id())
        )
    );
    // No run of the private key's bytes appears, in hex or raw.
    let pkcs8_hex = hex::encode(common::KMS_SAMPLE_KEY);
    for window in pkcs8_hex.as_bytes().chunks(16) {
        let window = std::str::from_utf8(window).unwrap();
        if window.len() == 16 {
            assert!(!shown.contains(window));
        }
    }
}
