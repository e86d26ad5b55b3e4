//! Enclave side: parse and open a `CiphertextForRecipient`.

use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use der::EncodingRules;
use zeroize::Zeroizing;

use crate::algorithms::{
    AES_256_KEY_LEN, AES_BLOCK_LEN, ID_DATA, ID_ENVELOPED_DATA, check_content_encryption,
    check_key_encryption, from_ber,
};
use crate::{EnvelopeError, MAX_ENVELOPE_LEN, RecipientKey};

/// A `CiphertextForRecipient` whose structure has been checked; nothing is decrypted.
///
/// Everything in it is public: the parent saw the same bytes.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Envelope {
    recipient_id: Vec<u8>,
    encrypted_key: Vec<u8>,
    iv: [u8; AES_BLOCK_LEN],
    encrypted_content: Vec<u8>,
}

impl Envelope {
    /// Parse and check the structure of a BER `CiphertextForRecipient`.
    ///
    /// The size limit is checked before anything is read; then the shape KMS produces is
    /// required: `ContentInfo(id-envelopedData)`, `EnvelopedData` v2 without originator info or
    /// unprotected attributes, exactly one `KeyTransRecipientInfo` v2 identified by
    /// `subjectKeyIdentifier`, RSAES-OAEP(SHA-256, MGF1-SHA-256), `id-data` encrypted with
    /// AES-256-CBC, and ciphertext present as a whole number of blocks.
    ///
    /// # Errors
    /// A typed [`EnvelopeError`] naming the first structural problem; never
    /// [`EnvelopeError::Decryption`].
    pub fn parse(ber: &[u8]) -> Result<Self, EnvelopeError> {
        if ber.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::TooLarge {
                len: ber.len(),
                max: MAX_ENVELOPE_LEN,
            });
        }
        let content_info: ContentInfo = from_ber(ber)?;
        if content_info.content_type != ID_ENVELOPED_DATA {
            return Err(EnvelopeError::UnexpectedContentType(
                content_info.content_type,
            ));
        }
        let enveloped: EnvelopedData = content_info
            .content
            .decode_as_encoding(EncodingRules::Ber)
            .map_err(EnvelopeError::Malformed)?;

        // RFC 5652 § 6.1: v2 is what a lone v2 (subjectKeyIdentifier) KeyTransRecipientInfo
        // without originatorInfo or unprotectedAttrs implies.
        if enveloped.version != CmsVersion::V2 {
            return Err(EnvelopeError::UnsupportedStructure(
                "EnvelopedData version is not 2",
            ));
        }
        if enveloped.originator_info.is_some() {
            return Err(EnvelopeError::UnsupportedStructure(
                "EnvelopedData has originatorInfo",
            ));
        }
        if enveloped.unprotected_attrs.is_some() {
            return Err(EnvelopeError::UnsupportedStructure(
                "EnvelopedData has unprotectedAttrs",
            ));
        }

        let recipients = enveloped.recip_infos.0.as_slice();
        let [recipient] = recipients else {
            return Err(EnvelopeError::RecipientCount(recipients.len()));
        };
        let RecipientInfo::Ktri(ktri) = recipient else {
            return Err(EnvelopeError::UnsupportedStructure(
                "recipient is not a KeyTransRecipientInfo",
            ));
        };
        if ktri.version != CmsVersion::V2 {
            return Err(EnvelopeError::UnsupportedStructure(
                "KeyTransRecipientInfo version is not 2",
            ));
        }
        let RecipientIdentifier::SubjectKeyIdentifier(ski) = &ktri.rid else {
            return Err(EnvelopeError::UnsupportedStructure(
                "recipient is not identified by subjectKeyIdentifier",
            ));
        };
        check_key_encryption(&ktri.key_enc_alg)?;

        let content = &enveloped.encrypted_content;
        if content.content_type != ID_DATA {
            return Err(EnvelopeError::UnexpectedContentType(content.content_type));
        }
        let iv = check_content_encryption(&content.content_enc_alg)?;
        let encrypted_content = content
            .encrypted_content
            .as_ref()
            .map(|c| c.as_bytes())
            .ok_or(EnvelopeError::UnsupportedStructure(
                "encryptedContent absent (detached content)",
            ))?;
        // Public property of the ciphertext: refusing it here leaks nothing.
        if encrypted_content.is_empty() || encrypted_content.len() % AES_BLOCK_LEN != 0 {
            return Err(EnvelopeError::ContentLength(encrypted_content.len()));
        }

        Ok(Self {
            recipient_id: ski.0.as_bytes().to_vec(),
            encrypted_key: ktri.enc_key.as_bytes().to_vec(),
            iv,
            encrypted_content: encrypted_content.to_vec(),
        })
    }

    /// The recipient identifier (`subjectKeyIdentifier`) the envelope is addressed to.
    #[must_use]
    pub fn recipient_id(&self) -> &[u8] {
        &self.recipient_id
    }

    /// The RSA-OAEP-encrypted content key.
    #[must_use]
    pub fn encrypted_key(&self) -> &[u8] {
        &self.encrypted_key
    }

    /// The AES-256-CBC initialization vector.
    #[must_use]
    pub fn iv(&self) -> &[u8; AES_BLOCK_LEN] {
        &self.iv
    }

    /// The AES-256-CBC ciphertext, chunks concatenated.
    #[must_use]
    pub fn encrypted_content(&self) -> &[u8] {
        &self.encrypted_content
    }
}

impl RecipientKey {
    /// Open a `CiphertextForRecipient` addressed to this key and return the plaintext.
    ///
    /// Consumes the key: each ephemeral key makes at most one decryption attempt. The parent
    /// relays the envelope and can substitute ciphertexts of its choosing; with a reusable key
    /// every failed attempt would be one more oracle query (Bleichenbacher/Manger-style attacks
    /// on RSA, padding-oracle attacks on CBC). With a single attempt there is no oracle to query:
    /// on failure, generate a new key and a new attestation document.
    ///
    /// # Errors
    /// Typed [`EnvelopeError`]s for what depends only on public bytes (size, structure,
    /// algorithms, recipient identifier, which is checked against SHA-256 of this key's SPKI).
    /// Anything that touches secrets — RSA unwrap, content-key length, AES-CBC, padding —
    /// returns [`EnvelopeError::Decryption`] and nothing else.
    pub fn open(self, envelope: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let envelope = Envelope::parse(envelope)?;
        if envelope.recipient_id.as_slice() != self.key_id().as_slice() {
            return Err(EnvelopeError::RecipientMismatch);
        }
        // RFC 3218 § 2.3.2: if the unwrap fails, carry on with a random content key so that a
        // failed unwrap and a failed CBC padding check take the same path and similar time.
        let mut fallback_key = Zeroizing::new([0u8; AES_256_KEY_LEN]);
        rand::fill(fallback_key.as_mut_slice()).map_err(|_| EnvelopeError::Crypto)?;
        let modulus_len = self.modulus_len();
        decrypt(
            self.into_private_key(),
            modulus_len,
            &envelope,
            &mut fallback_key,
        )
    }
}

/// RSA-OAEP unwrap, then AES-256-CBC; every failure is [`EnvelopeError::Decryption`].
///
/// `content_key` holds the random fallback and is overwritten by a successful unwrap; it is
/// borrowed, not moved, so that the only copy stays in the caller's `Zeroizing`.
fn decrypt(
    private_key: aws_lc_rs::rsa::PrivateDecryptingKey,
    modulus_len: usize,
    envelope: &Envelope,
    content_key: &mut [u8; AES_256_KEY_LEN],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let oaep = OaepPrivateDecryptingKey::new(private_key).map_err(|_| EnvelopeError::Crypto)?;
    let mut unwrapped = Zeroizing::new(vec![0u8; modulus_len]);
    let unwrap_ok = match oaep.decrypt(
        &OAEP_SHA256_MGF1SHA256,
        &envelope.encrypted_key,
        unwrapped.as_mut_slice(),
        None,
    ) {
        Ok(key) if key.len() == AES_256_KEY_LEN => {
            content_key.copy_from_slice(key);
            true
        }
        _ => false,
    };
    drop(unwrapped);
    drop(oaep);

    let mut buffer = Zeroizing::new(envelope.encrypted_content.clone());
    let plaintext_len = UnboundCipherKey::new(&AES_256, content_key.as_slice())
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .and_then(|key| {
            let iv = DecryptionContext::Iv128(FixedLength::from(envelope.iv));
            key.decrypt(buffer.as_mut_slice(), iv).map(|p| p.len())
        });

    match plaintext_len {
        Ok(len) if unwrap_ok => {
            buffer.truncate(len);
            Ok(buffer)
        }
        _ => Err(EnvelopeError::Decryption),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use aws_lc_rs::cipher::PaddedBlockEncryptingKey;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{
        KeySize, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    };

    use super::*;

    const CONTENT_KEY: [u8; AES_256_KEY_LEN] = [0x42; AES_256_KEY_LEN];
    const IV: [u8; AES_BLOCK_LEN] = [0x24; AES_BLOCK_LEN];

    fn cbc_encrypt(key: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let key =
            PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, key).unwrap())
                .unwrap();
        let mut buffer = plaintext.to_vec();
        key.less_safe_encrypt(
            &mut buffer,
            aws_lc_rs::cipher::EncryptionContext::Iv128(FixedLength::from(IV)),
        )
        .unwrap();
        buffer
    }

    fn wrap(private_key: &PrivateDecryptingKey, content_key: &[u8]) -> Vec<u8> {
        let public =
            PublicEncryptingKey::from_der(private_key.public_key().as_der().unwrap().as_ref())
                .unwrap();
        let oaep = OaepPublicEncryptingKey::new(public).unwrap();
        let mut out = vec![0u8; oaep.ciphertext_size()];
        let len = oaep
            .encrypt(&OAEP_SHA256_MGF1SHA256, content_key, &mut out, None)
            .unwrap()
            .len();
        out.truncate(len);
        out
    }

    fn envelope(encrypted_key: Vec<u8>, encrypted_content: Vec<u8>) -> Envelope {
        Envelope {
            recipient_id: Vec::new(),
            encrypted_key,
            iv: IV,
            encrypted_content,
        }
    }

    fn run(
        key: &PrivateDecryptingKey,
        envelope: &Envelope,
        fallback: [u8; 32],
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let mut fallback = Zeroizing::new(fallback);
        decrypt(key.clone(), key.key_size_bytes(), envelope, &mut fallback)
    }

    #[test]
    fn unwrapped_key_decrypts() {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let envelope = envelope(
            wrap(&key, &CONTENT_KEY),
            cbc_encrypt(&CONTENT_KEY, b"secret"),
        );
        assert_eq!(run(&key, &envelope, [0; 32]).unwrap().as_slice(), b"secret");
    }

    #[test]
    fn failed_unwrap_is_decryption_error_even_if_the_fallback_key_would_decrypt() {
        // The fallback key only equalizes the work done; its output must never be returned.
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let mut wrapped = wrap(&key, &CONTENT_KEY);
        wrapped[10] ^= 1;
        let envelope = envelope(wrapped, cbc_encrypt(&CONTENT_KEY, b"secret"));
        assert!(matches!(
            run(&key, &envelope, CONTENT_KEY),
            Err(EnvelopeError::Decryption)
        ));
    }

    #[test]
    fn content_key_of_wrong_length_is_decryption_error() {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        for len in [0, 16, 24, 31, 33, 64] {
            let short = vec![0x42; len];
            // Content under the fallback key: only the length check can refuse it.
            let envelope = envelope(wrap(&key, &short), cbc_encrypt(&CONTENT_KEY, b"secret"));
            assert!(
                matches!(
                    run(&key, &envelope, CONTENT_KEY),
                    Err(EnvelopeError::Decryption)
                ),
                "content key of {len} bytes"
            );
        }
    }

    #[test]
    fn bad_padding_is_decryption_error() {
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        // One block: "secret" and ten padding bytes 0x0a. Flipping IV bit 0 of byte 15 turns
        // the last padding byte into 0x0b, which PKCS#7 must refuse.
        let mut envelope = envelope(
            wrap(&key, &CONTENT_KEY),
            cbc_encrypt(&CONTENT_KEY, b"secret"),
        );
        assert!(run(&key, &envelope, [0; 32]).is_ok());
        envelope.iv[15] ^= 0x01;
        assert!(matches!(
            run(&key, &envelope, [0; 32]),
            Err(EnvelopeError::Decryption)
        ));
    }
}
