//! KMS key material and the mock's own `CiphertextBlob` format.
//!
//! Real KMS blobs are opaque and undocumented; the mock's are
//! `version (1) ‖ key-id length (1) ‖ key id (ASCII) ‖ nonce (12) ‖ AES-256-GCM(data key) ‖ tag (16)`,
//! with the associated data binding the format label, the key id and the canonical encryption
//! context, so a blob decrypts only under its own key and with exactly its own context.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::Error;

/// Length of a KMS key's material: AES-256.
pub(crate) const KEY_MATERIAL_LEN: usize = 32;
const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"strongroom-mock-kms ciphertext v1";

/// Secret key material of one KMS key: wiped on drop, never printed.
#[derive(Clone)]
pub(crate) struct KeyMaterial(Zeroizing<[u8; KEY_MATERIAL_LEN]>);

impl KeyMaterial {
    /// Fresh material from the operating system's RNG.
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut bytes = Zeroizing::new([0u8; KEY_MATERIAL_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|_| Error::Random)?;
        Ok(Self(bytes))
    }

    fn aead_key(&self) -> Result<LessSafeKey, Error> {
        UnboundKey::new(&AES_256_GCM, self.0.as_slice())
            .map(LessSafeKey::new)
            .map_err(|_| Error::Internal("AES-256-GCM key setup failed"))
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

impl Serialize for KeyMaterial {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(STANDARD.encode(self.0.as_slice()));
        serializer.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for KeyMaterial {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = KeyMaterial;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("32 bytes of key material, base64")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyMaterial, E> {
                if v.len() > 4 * KEY_MATERIAL_LEN {
                    return Err(E::custom("key material is too long"));
                }
                let decoded = Zeroizing::new(
                    STANDARD
                        .decode(v)
                        .map_err(|_| E::custom("key material is not base64"))?,
                );
                let mut bytes = Zeroizing::new([0u8; KEY_MATERIAL_LEN]);
                if decoded.len() != KEY_MATERIAL_LEN {
                    return Err(E::custom("key material is not 32 bytes"));
                }
                bytes.copy_from_slice(&decoded);
                Ok(KeyMaterial(bytes))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<KeyMaterial, E> {
                let v = Zeroizing::new(v);
                self.visit_str(&v)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// The associated data: label, key id and the encryption context in a canonical,
/// unambiguous encoding (sorted by key, every string length-prefixed).
fn associated_data(key_id: &str, context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(
        AAD_LABEL.len()
            + 8
            + key_id.len()
            + context
                .iter()
                .map(|(k, v)| 8 + k.len() + v.len())
                .sum::<usize>(),
    );
    aad.extend_from_slice(AAD_LABEL);
    let mut put = |bytes: &[u8]| {
        // Lengths are bounded by the request size limit, far below u32::MAX.
        aad.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(bytes);
    };
    put(key_id.as_bytes());
    for (k, v) in context {
        put(k.as_bytes());
        put(v.as_bytes());
    }
    aad
}

/// Encrypts a data key under a KMS key.
pub(crate) fn seal(
    key_id: &str,
    material: &KeyMaterial,
    context: &BTreeMap<String, String>,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let id_len =
        u8::try_from(key_id.len()).map_err(|_| Error::Internal("key id longer than 255 bytes"))?;
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| Error::Random)?;
    let mut sealed = Zeroizing::new(plaintext.to_vec());
    material
        .aead_key()?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data(key_id, context)),
            &mut *sealed,
        )
        .map_err(|_| Error::Internal("AES-256-GCM encryption failed"))?;
    let mut blob = Vec::with_capacity(2 + key_id.len() + NONCE_LEN + sealed.len());
    blob.push(VERSION);
    blob.push(id_len);
    blob.extend_from_slice(key_id.as_bytes());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// The parts of a blob, before authentication.
pub(crate) struct ParsedBlob<'a> {
    /// The key id the blob names (unauthenticated until [`open`] succeeds).
    pub(crate) key_id: &'a str,
    nonce: [u8; NONCE_LEN],
    sealed: &'a [u8],
}

/// Splits a blob; `None` if it is not in the mock's format.
pub(crate) fn parse(blob: &[u8]) -> Option<ParsedBlob<'_>> {
    let (&version, rest) = blob.split_first()?;
    if version != VERSION {
        return None;
    }
    let (&id_len, rest) = rest.split_first()?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN + TAG_LEN {
        return None;
    }
    let (id, rest) = rest.split_at(id_len);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    Some(ParsedBlob {
        key_id: std::str::from_utf8(id).ok()?,
        nonce: nonce.try_into().ok()?,
        sealed,
    })
}

/// Decrypts a parsed blob; `None` on any authentication failure.
pub(crate) fn open(
    blob: &ParsedBlob<'_>,
    material: &KeyMaterial,
    context: &BTreeMap<String, String>,
) -> Option<Zeroizing<Vec<u8>>> {
    let mut buffer = Zeroizing::new(blob.sealed.to_vec());
    let len = material
        .aead_key()
        .ok()?
        .open_in_place(
            Nonce::assume_unique_for_key(blob.nonce),
            Aad::from(associated_data(blob.key_id, context)),
            &mut buffer,
        )
        .ok()?
        .len();
    buffer.truncate(len);
    Some(buffer)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn round_trip_and_every_bit_flip_fails() {
        let key = KeyMaterial::generate().unwrap();
        let c = ctx(&[("purpose", "root"), ("app", "strongroom")]);
        let blob = seal("key-1", &key, &c, &[7u8; 32]).unwrap();
        let opened = open(&parse(&blob).unwrap(), &key, &c).unwrap();
        assert_eq!(opened.as_slice(), &[7u8; 32]);
        for i in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let reopened = parse(&bad).and_then(|p| open(&p, &key, &c));
            assert!(reopened.is_none(), "bit {i} flipped and still opened");
        }
    }

    #[test]
    fn context_and_key_are_bound() {
        let key = KeyMaterial::generate().unwrap();
        let other = KeyMaterial::generate().unwrap();
        let c = ctx(&[("a", "b")]);
        let blob = seal("key-1", &key, &c, b"secret").unwrap();
        let parsed = parse(&blob).unwrap();
        assert!(open(&parsed, &key, &ctx(&[])).is_none());
        assert!(open(&parsed, &key, &ctx(&[("a", "c")])).is_none());
        assert!(open(&parsed, &key, &ctx(&[("a", "b"), ("x", "y")])).is_none());
        assert!(open(&parsed, &other, &c).is_none());
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        let blob = seal("key-1", &key, &ctx(&[("ab", "c")]), b"s").unwrap();
        assert!(open(&parse(&blob).unwrap(), &key, &ctx(&[("a", "bc")])).is_none());
    }

    #[test]
    fn debug_and_serde_never_leak_in_debug() {
        let key = KeyMaterial::generate().unwrap();
        assert_eq!(format!("{key:?}"), "KeyMaterial(<redacted>)");
        let json = serde_json::to_string(&key).unwrap();
        let back: KeyMaterial = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0.as_slice(), key.0.as_slice());
        assert!(serde_json::from_str::<KeyMaterial>("\"AAAA\"").is_err());
    }

    #[test]
    fn truncated_blobs_do_not_parse() {
        let key = KeyMaterial::generate().unwrap();
        let blob = seal("k", &key, &BTreeMap::new(), b"").unwrap();
        for len in 0..blob.len() {
            assert!(parse(&blob[..len]).is_none(), "{len}");
        }
        assert!(parse(&blob).is_some());
    }
}
