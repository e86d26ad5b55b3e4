//! Mock-KMS side: build a `CiphertextForRecipient` exactly as KMS lays it out.

use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::rand;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo, RecipientInfos,
};
use cms::x509_cert::ext::pkix::SubjectKeyIdentifier;
use der::asn1::OctetString;
use zeroize::Zeroizing;

use crate::algorithms::{
    AES_256_KEY_LEN, AES_BLOCK_LEN, ID_DATA, ID_ENVELOPED_DATA, aes256_cbc_identifier,
    rsaes_oaep_sha256_identifier, to_der,
};
use crate::{EnvelopeError, MAX_ENVELOPE_LEN, recipient_key_id};

/// Size of the `OCTET STRING` chunks the ciphertext is split into. Readers concatenate the
/// chunks, so the size carries no meaning; KMS's own is not visible in the sample (one chunk).
const CHUNK_LEN: usize = 1024;

/// BER: constructed `SEQUENCE`, indefinite length.
const SEQUENCE_INDEFINITE: [u8; 2] = [0x30, 0x80];
/// BER: constructed context-specific `[0]`, indefinite length.
const CONTEXT_0_INDEFINITE: [u8; 2] = [0xa0, 0x80];
/// BER end-of-contents octets.
const END_OF_CONTENTS: [u8; 2] = [0x00, 0x00];

/// Encrypt `plaintext` for the RSA key in `recipient_spki_der`, as KMS builds
/// `CiphertextForRecipient`.
///
/// Layout, matching a real KMS answer byte for byte in framing: indefinite-length
/// `ContentInfo`, `[0]`, `EnvelopedData` and `EncryptedContentInfo`; version 2; a definite-length
/// `SET` holding one `KeyTransRecipientInfo` v2 with `[0] subjectKeyIdentifier` = SHA-256 of
/// `recipient_spki_der`, RSAES-OAEP with explicit SHA-256 / MGF1-SHA-256 parameters (hash
/// parameters `NULL`); `id-data` under AES-256-CBC with a random 16-byte IV and random content
/// key; the ciphertext as an indefinite-length constructed `[0]` of `OCTET STRING` chunks.
///
/// # Errors
/// [`EnvelopeError::InvalidKey`] if the SPKI is not an acceptable RSA key,
/// [`EnvelopeError::TooLarge`] if the envelope would exceed [`MAX_ENVELOPE_LEN`],
/// [`EnvelopeError::Crypto`] or [`EnvelopeError::Encoding`] if the library fails.
pub fn seal_for_recipient(
    recipient_spki_der: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let public_key =
        PublicEncryptingKey::from_der(recipient_spki_der).map_err(|_| EnvelopeError::InvalidKey)?;
    let oaep = OaepPublicEncryptingKey::new(public_key).map_err(|_| EnvelopeError::Crypto)?;

    let mut content_key = Zeroizing::new([0u8; AES_256_KEY_LEN]);
    rand::fill(content_key.as_mut_slice()).map_err(|_| EnvelopeError::Crypto)?;

    let mut wrapped_key = vec![0u8; oaep.ciphertext_size()];
    let wrapped_len = oaep
        .encrypt(
            &OAEP_SHA256_MGF1SHA256,
            content_key.as_slice(),
            &mut wrapped_key,
            None,
        )
        .map_err(|_| EnvelopeError::Crypto)?
        .len();
    wrapped_key.truncate(wrapped_len);

    // `encrypt` draws a random IV itself and hands it back for the AlgorithmIdentifier.
    let mut ciphertext = plaintext.to_vec();
    let context = UnboundCipherKey::new(&AES_256, content_key.as_slice())
        .and_then(PaddedBlockEncryptingKey::cbc_pkcs7)
        .and_then(|key| key.encrypt(&mut ciphertext))
        .map_err(|_| EnvelopeError::Crypto)?;
    drop(content_key);
    let iv: [u8; AES_BLOCK_LEN] = match &context {
        DecryptionContext::Iv128(iv) => *iv.as_ref(),
        _ => return Err(EnvelopeError::Crypto),
    };

    let recipient = KeyTransRecipientInfo {
        version: CmsVersion::V2,
        rid: RecipientIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
            OctetString::new(recipient_key_id(recipient_spki_der))
                .map_err(EnvelopeError::Encoding)?,
        )),
        key_enc_alg: rsaes_oaep_sha256_identifier().map_err(EnvelopeError::Encoding)?,
        enc_key: OctetString::new(wrapped_key).map_err(EnvelopeError::Encoding)?,
    };
    let recipients = RecipientInfos::try_from(vec![RecipientInfo::Ktri(recipient)])
        .map_err(EnvelopeError::Encoding)?;
    let content_alg = aes256_cbc_identifier(&iv).map_err(EnvelopeError::Encoding)?;

    let mut out = Vec::with_capacity(ciphertext.len() + 512);
    out.extend_from_slice(&SEQUENCE_INDEFINITE); // ContentInfo
    out.extend(to_der(&ID_ENVELOPED_DATA)?);
    out.extend_from_slice(&CONTEXT_0_INDEFINITE); // [0] EXPLICIT content
    out.extend_from_slice(&SEQUENCE_INDEFINITE); // EnvelopedData
    out.extend(to_der(&CmsVersion::V2)?);
    out.extend(to_der(&recipients)?);
    out.extend_from_slice(&SEQUENCE_INDEFINITE); // EncryptedContentInfo
    out.extend(to_der(&ID_DATA)?);
    out.extend(to_der(&content_alg)?);
    out.extend_from_slice(&CONTEXT_0_INDEFINITE); // [0] IMPLICIT encryptedContent, constructed
    for chunk in ciphertext.chunks(CHUNK_LEN) {
        out.extend(to_der(
            &OctetString::new(chunk).map_err(EnvelopeError::Encoding)?,
        )?);
    }
    for _ in 0..5 {
        // Closes, innermost first: [0] content, EncryptedContentInfo, EnvelopedData,
        // [0] EXPLICIT, ContentInfo.
        out.extend_from_slice(&END_OF_CONTENTS);
    }

    if out.len() > MAX_ENVELOPE_LEN {
        return Err(EnvelopeError::TooLarge {
            len: out.len(),
            max: MAX_ENVELOPE_LEN,
        });
    }
    Ok(out)
}
