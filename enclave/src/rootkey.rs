//! The root key KMS releases, and the working keys derived from it with HKDF-SHA256.
//!
//! Each use gets its own label, so a key derived for one purpose is never valid for
//! another, and the root key itself is used for nothing but derivation.

use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
use zeroize::{Zeroize, Zeroizing};

/// Label of the key that seals stored objects (key blobs, enclave state).
const SEAL_LABEL: &[u8] = b"strongroom/v1/seal";
/// Label of the check value that identifies a root key without revealing it.
const KEY_CHECK_LABEL: &[u8] = b"strongroom/v1/key-check";
/// Label of the key that tags each boot's identity as this deployment's.
const IDENTITY_TAG_LABEL: &[u8] = b"strongroom/v1/identity-tag";

/// Length of the root key (KMS `GenerateDataKey` with `KeySpec=AES_256`).
pub const ROOT_KEY_LEN: usize = 32;

/// The KMS-released root key. Wiped on drop; never printed.
pub struct RootKey(Zeroizing<[u8; ROOT_KEY_LEN]>);

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Keys derived from the root key.
pub struct WorkingKeys {
    /// AES-256-GCM key for sealed objects.
    pub seal: Zeroizing<[u8; 32]>,
    /// Check value of the root key (safe to store outside).
    pub key_check: [u8; 16],
    /// HMAC-SHA256 key that tags boot identities (see [`crate::boot::IdentityTagKey`]).
    pub identity_tag: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for WorkingKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WorkingKeys {{ key_check: {} }}",
            hex::encode(self.key_check)
        )
    }
}

impl RootKey {
    /// Takes a root key from bytes of exactly [`ROOT_KEY_LEN`]; the input is wiped.
    pub fn from_bytes(bytes: &mut [u8]) -> Option<Self> {
        if bytes.len() != ROOT_KEY_LEN {
            bytes.zeroize();
            return None;
        }
        let mut key = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        key.copy_from_slice(bytes);
        bytes.zeroize();
        Some(Self(key))
    }

    fn derive<const N: usize>(&self, label: &[u8]) -> Zeroizing<[u8; N]> {
        let mut out = Zeroizing::new([0u8; N]);
        let prk = Salt::new(HKDF_SHA256, b"strongroom").extract(self.0.as_ref());
        // HKDF-Expand fails only if N exceeds 255 * 32 bytes; our lengths are 16 and 32.
        if let Ok(okm) = prk.expand(&[label], Len(N)) {
            let _ = okm.fill(out.as_mut());
        }
        out
    }

    /// Derives the working keys.
    pub fn working_keys(&self) -> WorkingKeys {
        WorkingKeys {
            seal: self.derive::<32>(SEAL_LABEL),
            key_check: *self.derive::<16>(KEY_CHECK_LABEL),
            identity_tag: self.derive::<32>(IDENTITY_TAG_LABEL),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn labels_separate_the_derived_keys() {
        let root = RootKey::from_bytes(&mut [7u8; 32]).unwrap();
        let k = root.working_keys();
        assert_ne!(k.seal[..16], k.key_check[..]);
        assert_ne!(*k.seal, *k.identity_tag);
        let other = RootKey::from_bytes(&mut [8u8; 32]).unwrap().working_keys();
        assert_ne!(k.key_check, other.key_check);
        assert_ne!(*k.seal, *other.seal);
        // Deterministic: the same root gives the same keys on every boot.
        let again = RootKey::from_bytes(&mut [7u8; 32]).unwrap().working_keys();
        assert_eq!(k.key_check, again.key_check);
    }

    #[test]
    fn known_answer() {
        // HKDF-SHA256(salt="strongroom", ikm=0x00*32, info=label), checked with Python's
        // `cryptography` HKDF.
        let k = RootKey::from_bytes(&mut [0u8; 32]).unwrap().working_keys();
        assert_eq!(hex::encode(k.key_check), KEY_CHECK_KAT);
    }

    const KEY_CHECK_KAT: &str = "c7dc66c6bd681c9e95f802249a5adfda";

    #[test]
    fn wrong_lengths_are_refused_and_wiped() {
        let mut short = [9u8; 31];
        assert!(RootKey::from_bytes(&mut short).is_none());
        assert_eq!(short, [0u8; 31]);
        let mut input = [5u8; 32];
        let _key = RootKey::from_bytes(&mut input).unwrap();
        assert_eq!(input, [0u8; 32]);
    }

    #[test]
    fn debug_shows_no_secret() {
        let root = RootKey::from_bytes(&mut [0xabu8; 32]).unwrap();
        assert!(!format!("{root:?}").contains("ab"));
        assert!(
            !format!("{:?}", root.working_keys()).contains(&hex::encode(*root.working_keys().seal))
        );
    }
}
