//! secp256k1 signing keys: generation, the plaintext layout inside a sealed blob, and
//! signing of 32-byte digests (RFC 6979, low-S, recoverable).

use alloy_primitives::Address;
use k256::elliptic_curve::sec1::ToSec1Point;
use k256::{Secp256k1, SecretKey};
use strongroom_protocol::messages::{KeyInfo, MAX_LABEL_LEN, RecoverableSignature};
use zeroize::Zeroizing;

/// Format version of a key object (2: the public key is sealed beside the secret, so
/// signing does not recompute it: a scalar multiplication per request).
pub const KEY_OBJECT_VERSION: u32 = 2;

/// Length of a SEC1 uncompressed public key.
const PUBLIC_LEN: usize = 65;
/// Bytes before the label: secret, creation time, public key.
const FIXED_LEN: usize = 32 + 8 + PUBLIC_LEN;

/// Why key material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The label is empty, too long or holds control characters.
    #[error("label must be 1..={MAX_LABEL_LEN} bytes of printable UTF-8")]
    BadLabel,
    /// The unsealed plaintext does not have the key object layout.
    #[error("key object is malformed")]
    Malformed,
    /// The random source failed.
    #[error("random source failed")]
    Entropy,
}

/// Checks a label: non-empty, bounded, no control characters.
pub fn check_label(label: &str) -> Result<(), KeyError> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN || label.chars().any(char::is_control) {
        return Err(KeyError::BadLabel);
    }
    Ok(())
}

/// A signing key with its metadata. The secret is wiped on drop (k256's `SecretKey` zeroizes).
///
/// Kept as a bare secret scalar: building an `ecdsa::SigningKey` also derives the public
/// key (a scalar multiplication), which would double the cost of every signature.
pub struct KeyRecord {
    /// Key id.
    pub id: [u8; 16],
    /// Label.
    pub label: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// SEC1 uncompressed public key, computed once at generation.
    public: [u8; PUBLIC_LEN],
    secret: SecretKey,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &hex::encode(self.id))
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// Generates a key from 32 bytes of entropy per attempt (retrying the negligible case of
    /// a value outside the scalar field).
    pub fn generate(
        id: [u8; 16],
        label: String,
        created_at: u64,
        mut entropy: impl FnMut(&mut [u8; 32]) -> Result<(), KeyError>,
    ) -> Result<Self, KeyError> {
        check_label(&label)?;
        for _ in 0..16 {
            let mut bytes = Zeroizing::new([0u8; 32]);
            entropy(&mut bytes)?;
            if let Ok(secret) = SecretKey::from_slice(bytes.as_ref()) {
                let mut public = [0u8; PUBLIC_LEN];
                public.copy_from_slice(secret.public_key().to_sec1_point(false).as_bytes());
                return Ok(Self {
                    id,
                    label,
                    created_at,
                    public,
                    secret,
                });
            }
        }
        Err(KeyError::Entropy)
    }

    /// The plaintext sealed in a key blob: secret (32) ‖ created_at (8, BE) ‖ public key
    /// (65, SEC1 uncompressed) ‖ label.
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(FIXED_LEN + self.label.len()));
        out.extend_from_slice(&self.secret.to_bytes());
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.public);
        out.extend_from_slice(self.label.as_bytes());
        out
    }

    /// Rebuilds a key from an unsealed plaintext (authenticated, but checked all the same).
    ///
    /// The public key is taken as sealed: only this deployment's enclaves seal key blobs,
    /// and they computed it from the secret.
    pub fn from_plaintext(id: [u8; 16], plaintext: &[u8]) -> Result<Self, KeyError> {
        if plaintext.len() <= FIXED_LEN || plaintext.len() > FIXED_LEN + MAX_LABEL_LEN {
            return Err(KeyError::Malformed);
        }
        let secret = SecretKey::from_slice(&plaintext[..32]).map_err(|_| KeyError::Malformed)?;
        let created_at = u64::from_be_bytes(
            plaintext[32..40]
                .try_into()
                .map_err(|_| KeyError::Malformed)?,
        );
        let public: [u8; PUBLIC_LEN] = plaintext[40..FIXED_LEN]
            .try_into()
            .map_err(|_| KeyError::Malformed)?;
        if public[0] != 0x04 {
            return Err(KeyError::Malformed);
        }
        let label = std::str::from_utf8(&plaintext[FIXED_LEN..])
            .map_err(|_| KeyError::Malformed)?
            .to_string();
        check_label(&label).map_err(|_| KeyError::Malformed)?;
        Ok(Self {
            id,
            label,
            created_at,
            public,
            secret,
        })
    }

    /// SEC1 uncompressed public key (65 bytes).
    pub fn public_key(&self) -> Vec<u8> {
        self.public.to_vec()
    }

    /// The key's public description.
    pub fn info(&self) -> KeyInfo {
        let public_key = self.public_key();
        KeyInfo {
            id: hex::encode(self.id),
            label: self.label.clone(),
            curve: "secp256k1".into(),
            address: ethereum_address(&public_key),
            public_key: public_key.into(),
            created_at: self.created_at,
        }
    }

    /// Signs a 32-byte digest: RFC 6979 nonce, low-S, with the recovery id.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> RecoverableSignature {
        let (r, s, v) = self.sign_raw(digest);
        RecoverableSignature {
            r: r.to_vec().into(),
            s: s.to_vec().into(),
            v,
        }
    }

    /// Signs a 32-byte digest; returns r, s (low) and the recovery id (0 or 1).
    pub fn sign_raw(&self, digest: &[u8; 32]) -> ([u8; 32], [u8; 32], u8) {
        // The RFC 6979 signer that k256's `sign_prehash_recoverable` uses, on the bare
        // scalar. secp256k1 sets NORMALIZE_S: the signature comes back low-S with the
        // recovery id adjusted to match (checked by the tests below).
        let (sig, recid) = ecdsa::hazmat::sign_prehashed_rfc6979::<Secp256k1, sha2::Sha256>(
            &self.secret.to_nonzero_scalar(),
            digest,
            b"",
        );
        let (r, s) = sig.split_bytes();
        (r.into(), s.into(), recid.to_byte() & 1)
    }
}

/// EIP-55 checksummed address of a SEC1 uncompressed public key.
pub fn ethereum_address(uncompressed: &[u8]) -> String {
    let raw = uncompressed.get(1..).unwrap_or_default();
    Address::from_raw_public_key(raw).to_checksum(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(seed: u8) -> KeyRecord {
        KeyRecord::generate([seed; 16], "treasury".into(), 1_700_000_000, |b| {
            b.fill(seed);
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn plaintext_round_trip() {
        let k = key(7);
        let again = KeyRecord::from_plaintext(k.id, &k.to_plaintext()).unwrap();
        assert_eq!(again.info(), k.info());
        assert!(KeyRecord::from_plaintext(k.id, &k.to_plaintext()[..FIXED_LEN]).is_err());
        // The sealed public key is the secret's.
        let derived = k.secret.public_key().to_sec1_point(false);
        assert_eq!(again.public_key(), derived.as_bytes());
    }

    #[test]
    fn labels_are_checked() {
        for bad in ["", "a\nb", &"x".repeat(129)] {
            assert_eq!(check_label(bad), Err(KeyError::BadLabel), "{bad:?}");
        }
        assert!(check_label("Treasury hot wallet #1").is_ok());
    }

    #[test]
    fn known_address() {
        // Private key 1: the generator point; its address is well known.
        let mut one = [0u8; 32];
        one[31] = 1;
        let mut calls = 0;
        let k = KeyRecord::generate([0; 16], "g".into(), 0, |b| {
            calls += 1;
            b.copy_from_slice(&one);
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 1);
        let k = KeyRecord::from_plaintext([0; 16], &k.to_plaintext()).unwrap();
        assert_eq!(
            k.info().address,
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
    }

    #[test]
    fn signatures_are_low_s_and_recover_with_libsecp256k1() {
        let k = key(9);
        let pk = secp256k1::PublicKey::from_slice(&k.public_key()).unwrap();
        let half_n =
            hex::decode("7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")
                .unwrap();
        for i in 0..64u8 {
            let digest = [i; 32];
            let sig = k.sign_digest(&digest);
            assert!(sig.s.as_slice() <= half_n.as_slice(), "high s");
            let mut rs = [0u8; 64];
            rs[..32].copy_from_slice(&sig.r);
            rs[32..].copy_from_slice(&sig.s);
            let recid = secp256k1::ecdsa::RecoveryId::try_from(i32::from(sig.v)).unwrap();
            let rsig = secp256k1::ecdsa::RecoverableSignature::from_compact(&rs, recid).unwrap();
            let msg = secp256k1::Message::from_digest(digest);
            assert_eq!(rsig.recover_ecdsa(msg).unwrap(), pk);
            // RFC 6979: the same digest gives the same signature.
            assert_eq!(k.sign_digest(&digest), sig);
        }
    }
}
