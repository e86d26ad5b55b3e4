//! Principal keys: Ed25519 and ECDSA P-256 (SHA-256), identified by a hash of the key.

use ed25519_dalek::{Signer as _, Verifier as _};
use sha2::{Digest, Sha256};

/// A principal key's algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032), 32-byte public key, 64-byte signature.
    Ed25519,
    /// ECDSA over P-256 with SHA-256; SEC1 public key, 64-byte r‖s signature.
    EcdsaP256,
}

impl Algorithm {
    fn tag(self) -> &'static [u8] {
        match self {
            Self::Ed25519 => b"ed25519",
            Self::EcdsaP256 => b"ecdsa-p256",
        }
    }
}

/// A principal's public key, as listed in the policy. It keeps the key parsed, so checking
/// a stamp does not decompress the point again (a field exponentiation per request).
#[derive(Clone)]
pub struct PrincipalKey {
    algorithm: Algorithm,
    public: Vec<u8>,
    id: String,
    parsed: Parsed,
}

/// A public key ready to verify with.
#[derive(Clone)]
enum Parsed {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

impl PartialEq for PrincipalKey {
    fn eq(&self, other: &Self) -> bool {
        self.algorithm == other.algorithm && self.public == other.public
    }
}

impl Eq for PrincipalKey {}

impl std::fmt::Debug for PrincipalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalKey")
            .field("algorithm", &self.algorithm)
            .field("public", &hex::encode(&self.public))
            .field("id", &self.id)
            .finish()
    }
}

/// The key bytes do not form a valid public key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {0:?} public key")]
pub struct InvalidKey(pub Algorithm);

fn key_id(algorithm: Algorithm, public: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(algorithm.tag());
    h.update([0]);
    h.update(public);
    // 16 bytes: collision-resistant enough for ids that the policy lists explicitly.
    hex::encode(&h.finalize()[..16])
}

impl PrincipalKey {
    /// A key from its algorithm and public bytes (Ed25519: 32 bytes; P-256: SEC1, either
    /// form, stored compressed so one key has one id).
    pub fn new(algorithm: Algorithm, public: &[u8]) -> Result<Self, InvalidKey> {
        let (public, parsed) = match algorithm {
            Algorithm::Ed25519 => {
                let bytes: [u8; 32] = public.try_into().map_err(|_| InvalidKey(algorithm))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                    .map_err(|_| InvalidKey(algorithm))?;
                (bytes.to_vec(), Parsed::Ed25519(key))
            }
            Algorithm::EcdsaP256 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(public)
                    .map_err(|_| InvalidKey(algorithm))?;
                (
                    key.to_sec1_point(true).as_bytes().to_vec(),
                    Parsed::EcdsaP256(key),
                )
            }
        };
        Ok(Self {
            id: key_id(algorithm, &public),
            algorithm,
            public,
            parsed,
        })
    }

    /// The key id a stamp names.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public key bytes (Ed25519 raw, P-256 SEC1 compressed).
    pub fn public_bytes(&self) -> &[u8] {
        &self.public
    }

    /// The public key as lower-case hex: the `public` field of a policy key spec
    /// (`{"algorithm": "ed25519" | "ecdsa-p256", "public": "<hex>"}`).
    pub fn public_hex(&self) -> String {
        hex::encode(&self.public)
    }

    /// Verifies `signature` over `digest`.
    pub fn verify(&self, digest: &[u8; 32], signature: &[u8]) -> bool {
        match &self.parsed {
            Parsed::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(digest, &sig).is_ok()),
            Parsed::EcdsaP256(key) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(digest, &sig).is_ok()),
        }
    }
}

/// A principal's private key, for clients (the CLI) that make stamps. Wiped on drop.
pub enum SigningKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// ECDSA P-256.
    EcdsaP256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().id())
    }
}

impl SigningKey {
    /// An Ed25519 key from its 32-byte seed.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// A P-256 key from its 32-byte scalar.
    pub fn p256_from_bytes(scalar: &[u8]) -> Result<Self, InvalidKey> {
        p256::ecdsa::SigningKey::from_slice(scalar)
            .map(Self::EcdsaP256)
            .map_err(|_| InvalidKey(Algorithm::EcdsaP256))
    }

    /// The matching public key.
    pub fn public(&self) -> PrincipalKey {
        let (algorithm, bytes, parsed) = match self {
            Self::Ed25519(k) => (
                Algorithm::Ed25519,
                k.verifying_key().to_bytes().to_vec(),
                Parsed::Ed25519(k.verifying_key()),
            ),
            Self::EcdsaP256(k) => (
                Algorithm::EcdsaP256,
                k.verifying_key().to_sec1_point(true).as_bytes().to_vec(),
                Parsed::EcdsaP256(*k.verifying_key()),
            ),
        };
        // Our own public key is always valid.
        PrincipalKey {
            id: key_id(algorithm, &bytes),
            algorithm,
            public: bytes,
            parsed,
        }
    }

    /// Signs a stamp digest.
    pub fn sign(&self, digest: &[u8; 32]) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.sign(digest).to_bytes().to_vec(),
            Self::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(digest);
                sig.to_bytes().to_vec()
            }
        }
    }
}
