//! The identity key pair.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use crate::error::IdentityError;

/// The enclave's per-boot identity key (Ed25519). Never leaves the enclave; wiped on drop
/// (ed25519-dalek's `zeroize` feature); `Debug` shows only the public key.
pub struct IdentityKey {
    key: SigningKey,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.public())
    }
}

impl IdentityKey {
    /// The key for a 32-byte seed from the enclave's entropy (the seed is copied; the
    /// caller wipes its copy).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// The public half.
    pub fn public(&self) -> IdentityPublic {
        IdentityPublic(self.key.verifying_key().to_bytes())
    }

    /// Signs a 32-byte message digest (every message this crate defines is one).
    pub fn sign(&self, digest: &[u8; 32]) -> [u8; 64] {
        self.key.sign(digest).to_bytes()
    }
}

/// An identity's public key: 32 bytes of Ed25519 public key, shown as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityPublic(pub [u8; 32]);

impl fmt::Display for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for IdentityPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublic({self})")
    }
}

impl IdentityPublic {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, IdentityError> {
        let bytes =
            hex::decode(text).map_err(|_| IdentityError::malformed("identity", "not hex"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| IdentityError::malformed("identity", "not 32 bytes"))?;
        Ok(Self(bytes))
    }

    /// The Ed25519 verifying key, if these bytes are a valid point.
    pub fn verifying_key(&self) -> Result<VerifyingKey, IdentityError> {
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| IdentityError::malformed("identity", "not an Ed25519 public key"))
    }

    /// Checks `signature` over `digest` (strict verification: no malleable or small-order
    /// signatures).
    pub fn verify(
        &self,
        what: &'static str,
        digest: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<(), IdentityError> {
        let key = self.verifying_key()?;
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        key.verify_strict(digest, &sig)
            .map_err(|_| IdentityError::BadSignature {
                what,
                identity: self.to_string(),
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_a_flipped_bit() {
        let key = IdentityKey::from_seed(&[7; 32]);
        let digest = [1u8; 32];
        let mut sig = key.sign(&digest);
        key.public().verify("test", &digest, &sig).unwrap();
        sig[10] ^= 1;
        assert!(matches!(
            key.public().verify("test", &digest, &sig),
            Err(IdentityError::BadSignature { .. })
        ));
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 section 7.1, TEST 1: the empty message is not a 32-byte digest, so only
        // the public key derivation is checked here.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        assert_eq!(
            IdentityKey::from_seed(&seed).public().to_string(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let key = IdentityKey::from_seed(&[0x42; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode([0x42u8; 32])));
        assert!(shown.contains(&key.public().to_string()));
    }
}
