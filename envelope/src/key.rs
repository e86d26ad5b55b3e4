//! The enclave's ephemeral recipient key.

use core::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use sha2::{Digest, Sha256};

use crate::{EnvelopeError, RECIPIENT_ID_LEN};

/// SHA-256 of a DER `SubjectPublicKeyInfo`: the recipient identifier KMS writes in the envelope.
#[must_use]
pub fn recipient_key_id(spki_der: &[u8]) -> [u8; RECIPIENT_ID_LEN] {
    Sha256::digest(spki_der).into()
}

/// An RSA private key that can open one envelope addressed to it.
///
/// Not `Clone`, and [`RecipientKey::open`] consumes it: see there why.
pub struct RecipientKey {
    key: PrivateDecryptingKey,
    spki_der: Vec<u8>,
    id: [u8; RECIPIENT_ID_LEN],
}

impl RecipientKey {
    /// Generate a fresh RSA-2048 key.
    ///
    /// # Errors
    /// [`EnvelopeError::Crypto`] if key generation fails.
    pub fn generate() -> Result<Self, EnvelopeError> {
        let key =
            PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(|_| EnvelopeError::Crypto)?;
        Self::from_key(key)
    }

    /// Load an RSA private key (2048 to 8192 bits) from PKCS#8 v1 DER.
    ///
    /// # Errors
    /// [`EnvelopeError::InvalidKey`] if the bytes are not such a key.
    pub fn from_pkcs8_der(pkcs8_der: &[u8]) -> Result<Self, EnvelopeError> {
        let key =
            PrivateDecryptingKey::from_pkcs8(pkcs8_der).map_err(|_| EnvelopeError::InvalidKey)?;
        Self::from_key(key)
    }

    fn from_key(key: PrivateDecryptingKey) -> Result<Self, EnvelopeError> {
        let spki_der = key
            .public_key()
            .as_der()
            .map_err(|_| EnvelopeError::Crypto)?
            .as_ref()
            .to_vec();
        let id = recipient_key_id(&spki_der);
        Ok(Self { key, spki_der, id })
    }

    /// DER `SubjectPublicKeyInfo` of the public key: what the attestation document carries.
    #[must_use]
    pub fn public_key_spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// SHA-256 of [`Self::public_key_spki_der`]: the identifier an envelope for this key carries.
    #[must_use]
    pub fn key_id(&self) -> &[u8; RECIPIENT_ID_LEN] {
        &self.id
    }

    /// Modulus length in bytes: the length of an RSA ciphertext for this key.
    pub(crate) fn modulus_len(&self) -> usize {
        self.key.key_size_bytes()
    }

    /// Give up the private key for the single decryption [`RecipientKey::open`] performs.
    pub(crate) fn into_private_key(self) -> PrivateDecryptingKey {
        self.key
    }
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The identifier is public (it is in every envelope); the private key is never shown.
        struct Hex<'a>(&'a [u8]);
        impl fmt::Debug for Hex<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        f.debug_struct("RecipientKey")
            .field("key_id", &Hex(&self.id))
            .finish_non_exhaustive()
    }
}
