//! The format of sealed objects: AES-256-GCM under the derived seal key, with the object's
//! identity in the associated data so a blob cannot be swapped for another or edited.
//!
//! Blob layout: `"SRS1"` ‖ kind (1) ‖ id (16) ‖ version (4, BE) ‖ curve (1) ‖ nonce (12) ‖
//! ciphertext ‖ tag (16). The header is in the clear (the proxy needs the id) and is also
//! the associated data, so changing any header byte breaks the tag.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"SRS1";
/// Header length: magic, kind, id, version, curve.
pub const HEADER_LEN: usize = 4 + 1 + 16 + 4 + 1;
const TAG_LEN: usize = 16;

/// What a sealed object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    /// A signing key's secret and metadata.
    SigningKey = 1,
    /// The enclave's state (destroyed keys, counter).
    EnclaveState = 2,
}

/// Which curve a key object is for (0 for objects that are not keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Curve {
    /// Not a key.
    None = 0,
    /// secp256k1.
    Secp256k1 = 1,
}

/// The identity of a sealed object, bound into its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectId {
    /// Kind of object.
    pub kind: ObjectKind,
    /// Object id (a key id; zero for the enclave state).
    pub id: [u8; 16],
    /// Object format version.
    pub version: u32,
    /// Curve of a key object.
    pub curve: Curve,
}

impl ObjectId {
    fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(MAGIC);
        h[4] = self.kind as u8;
        h[5..21].copy_from_slice(&self.id);
        h[21..25].copy_from_slice(&self.version.to_be_bytes());
        h[25] = self.curve as u8;
        h
    }
}

/// Why a blob was refused. Deliberately coarse: a forger learns nothing from the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The blob is not authentic for the expected identity.
    #[error("sealed object is not authentic")]
    NotAuthentic,
    /// Sealing failed (random source or cipher).
    #[error("sealing failed")]
    SealFailed,
}

/// Seals and opens objects under one derived key.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer for the derived seal key.
    pub fn new(key: &[u8; 32]) -> Result<Self, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| SealError::SealFailed)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `plaintext` as object `id` with a fresh random nonce from `nonce`.
    pub fn seal(
        &self,
        id: &ObjectId,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Vec<u8>, SealError> {
        let header = id.header();
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header),
                &mut body,
            )
            .map_err(|_| SealError::SealFailed)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Reads the identity a blob claims, without authenticating it.
    pub fn peek_id(blob: &[u8]) -> Option<[u8; 16]> {
        if blob.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || &blob[..4] != MAGIC {
            return None;
        }
        blob[5..21].try_into().ok()
    }

    /// Opens a blob that must be object `expected`; any mismatch is [`SealError::NotAuthentic`].
    pub fn open(&self, expected: &ObjectId, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if blob.len() < HEADER_LEN + NONCE_LEN + TAG_LEN {
            return Err(SealError::NotAuthentic);
        }
        let header = expected.header();
        // Compared for a clear refusal; the tag check below would catch it anyway since the
        // expected header, not the blob's, is the associated data.
        if blob[..HEADER_LEN] != header {
            return Err(SealError::NotAuthentic);
        }
        let nonce: [u8; NONCE_LEN] = blob[HEADER_LEN..HEADER_LEN + NONCE_LEN]
            .try_into()
            .map_err(|_| SealError::NotAuthentic)?;
        let mut body = Zeroizing::new(blob[HEADER_LEN + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&header),
                body.as_mut_slice(),
            )
            .map_err(|_| SealError::NotAuthentic)?
            .len();
        body.truncate(len);
        Ok(body)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key_id(n: u8) -> ObjectId {
        ObjectId {
            kind: ObjectKind::SigningKey,
            id: [n; 16],
            version: 1,
            curve: Curve::Secp256k1,
        }
    }

    #[test]
    fn round_trip() {
        let s = Sealer::new(&[1; 32]).unwrap();
        let blob = s.seal(&key_id(1), b"secret", [3; 12]).unwrap();
        assert_eq!(&s.open(&key_id(1), &blob).unwrap()[..], b"secret");
        assert_eq!(Sealer::peek_id(&blob), Some([1; 16]));
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let s = Sealer::new(&[1; 32]).unwrap();
        let blob = s.seal(&key_id(1), b"secret key bytes", [3; 12]).unwrap();
        for i in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                s.open(&key_id(1), &bad),
                Err(SealError::NotAuthentic),
                "bit {i}"
            );
        }
    }

    #[test]
    fn identity_is_bound() {
        let s = Sealer::new(&[1; 32]).unwrap();
        let blob = s.seal(&key_id(1), b"k", [3; 12]).unwrap();
        // Another id, version, kind or curve: refused.
        assert!(s.open(&key_id(2), &blob).is_err());
        assert!(
            s.open(
                &ObjectId {
                    version: 2,
                    ..key_id(1)
                },
                &blob
            )
            .is_err()
        );
        assert!(
            s.open(
                &ObjectId {
                    kind: ObjectKind::EnclaveState,
                    ..key_id(1)
                },
                &blob
            )
            .is_err()
        );
        assert!(
            s.open(
                &ObjectId {
                    curve: Curve::None,
                    ..key_id(1)
                },
                &blob
            )
            .is_err()
        );
        // A blob re-labelled with another id in its header still fails the tag.
        let mut relabelled = blob.clone();
        relabelled[5..21].copy_from_slice(&[2; 16]);
        assert!(s.open(&key_id(2), &relabelled).is_err());
        // Another root key: refused.
        assert!(
            Sealer::new(&[2; 32])
                .unwrap()
                .open(&key_id(1), &blob)
                .is_err()
        );
        // Truncated: refused.
        assert!(s.open(&key_id(1), &blob[..20]).is_err());
    }
}
