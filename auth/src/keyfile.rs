//! Principal and admin key files: what operators have (OpenSSL PEM, or hex), read into a
//! [`SigningKey`]; and new keys, written as PKCS#8 PEM.
//!
//! Accepted forms (surrounding whitespace ignored):
//! - PEM `PRIVATE KEY` (PKCS#8) holding an Ed25519 key (OID 1.3.101.112) or a P-256 key
//!   (id-ecPublicKey with the prime256v1 curve), as `openssl genpkey` writes them;
//! - PEM `EC PRIVATE KEY` (SEC1) holding a P-256 key, as `openssl ecparam -genkey` writes
//!   it (an `EC PARAMETERS` block next to it is skipped);
//! - 64 hex digits, optionally `0x`-prefixed: an Ed25519 seed (`ed25519:` prefix allowed);
//! - `ecdsa-p256:` and 64 hex digits: a P-256 scalar.
//!
//! Errors say what is wrong with the text, never what the text is: it may be a key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pkcs8::der::asn1::ObjectIdentifier;
use pkcs8::{DecodePrivateKey, PrivateKeyInfoRef};
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{Algorithm, SigningKey};

/// Ed25519 (RFC 8410).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// id-ecPublicKey (RFC 5480).
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// prime256v1 / secp256r1 / P-256.
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// PKCS#8 v1 for Ed25519 (RFC 8410 §7), up to the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// PKCS#8 v1 for P-256 wrapping an RFC 5915 ECPrivateKey, up to the 32-byte scalar; the
/// layout `openssl genpkey -algorithm EC` writes.
const P256_PKCS8_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
/// Between the P-256 scalar and the 65-byte uncompressed public point: `[1] BIT STRING`.
const P256_PKCS8_PUBLIC_TAG: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];

/// Largest key text looked at; real key files are well under 1 KiB.
pub const MAX_KEY_TEXT_LEN: usize = 16 * 1024;

/// Why text is not a usable private key. No variant carries any of the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Not any accepted form.
    #[error(
        "not a private key: expected PEM (PRIVATE KEY or EC PRIVATE KEY), 64 hex digits (an \
         Ed25519 seed) or ecdsa-p256:<64 hex digits>"
    )]
    Unrecognised,
    /// Longer than [`MAX_KEY_TEXT_LEN`].
    #[error("key text longer than {MAX_KEY_TEXT_LEN} bytes")]
    TooLong,
    /// A PEM block that is not a private key (a public key, a certificate…).
    #[error("the PEM holds a {0}, not a private key (PRIVATE KEY or EC PRIVATE KEY)")]
    NotPrivate(String),
    /// A password-protected key.
    #[error(
        "the key is encrypted; decrypt it first (openssl pkey -in FILE -out PLAIN), as \
         Strongroom reads unencrypted keys from files you protect with permissions"
    )]
    Encrypted,
    /// More than one private key block.
    #[error("the PEM holds more than one private key")]
    Ambiguous,
    /// The PEM framing or its base64 is broken.
    #[error("malformed PEM: {0}")]
    Pem(&'static str),
    /// The DER inside does not parse.
    #[error("malformed {0} structure")]
    Der(&'static str),
    /// A PKCS#8 key of another algorithm.
    #[error("unsupported key algorithm {0}: Strongroom keys are Ed25519 or ECDSA P-256")]
    UnsupportedAlgorithm(String),
    /// An EC key on another curve.
    #[error("unsupported elliptic curve {0}: ECDSA keys must be on P-256 (prime256v1)")]
    UnsupportedCurve(String),
    /// Hex digits that do not decode.
    #[error("the key is not valid hex")]
    Hex,
    /// Key bytes of the wrong length.
    #[error("a {algorithm} private key is 32 bytes (64 hex digits), got {got} bytes")]
    Length {
        /// The algorithm's name.
        algorithm: &'static str,
        /// Bytes given.
        got: usize,
    },
    /// Bytes of the right shape that are not a valid key (a P-256 scalar of zero or ≥ n).
    #[error("the bytes are not a valid {0} private key")]
    Invalid(&'static str),
}

/// The operating system's random number generator failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessError(String);

impl RandomnessError {
    /// The random source failed, as `detail` says.
    pub fn new(detail: impl Into<String>) -> Self {
        Self(detail.into())
    }
}

impl Algorithm {
    /// The name policy documents use: `ed25519` or `ecdsa-p256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
        }
    }

    /// The algorithm with this policy-document name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ed25519" => Some(Self::Ed25519),
            "ecdsa-p256" => Some(Self::EcdsaP256),
            _ => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl SigningKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate(algorithm: Algorithm) -> Result<Self, RandomnessError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        // A P-256 scalar is refused only if zero or ≥ n, about 2^-32 of draws; a few tries
        // make failure impossible in practice without an unbounded loop.
        for _ in 0..8 {
            getrandom::fill(bytes.as_mut_slice()).map_err(|e| RandomnessError(e.to_string()))?;
            match algorithm {
                Algorithm::Ed25519 => return Ok(Self::ed25519_from_seed(&bytes)),
                Algorithm::EcdsaP256 => {
                    if let Ok(key) = Self::p256_from_bytes(bytes.as_slice()) {
                        return Ok(key);
                    }
                }
            }
        }
        Err(RandomnessError("no valid P-256 scalar in 8 draws".into()))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ed25519(_) => Algorithm::Ed25519,
            Self::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// Reads a key from key-file text (see the module documentation for the forms).
    pub fn from_text(text: &str) -> Result<Self, KeyFileError> {
        if text.len() > MAX_KEY_TEXT_LEN {
            return Err(KeyFileError::TooLong);
        }
        let text = text.trim();
        if text.contains("-----BEGIN ") {
            return from_pem(text);
        }
        if let Some(rest) = text.strip_prefix("ecdsa-p256:") {
            let bytes = hex_key(rest, "ecdsa-p256")?;
            return Self::p256_from_bytes(&bytes).map_err(|_| KeyFileError::Invalid("ecdsa-p256"));
        }
        let seed = text.strip_prefix("ed25519:").unwrap_or(text);
        if seed.is_empty() || !is_hex_key(seed) {
            return Err(KeyFileError::Unrecognised);
        }
        let bytes = hex_key(seed, "ed25519")?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes);
        Ok(Self::ed25519_from_seed(&seed))
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the form OpenSSL writes and
    /// reads; [`SigningKey::from_text`] reads it back.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let mut der = Zeroizing::new(Vec::with_capacity(160));
        match self {
            Self::Ed25519(k) => {
                let seed = Zeroizing::new(k.to_bytes());
                der.extend_from_slice(&ED25519_PKCS8_PREFIX);
                der.extend_from_slice(seed.as_slice());
            }
            Self::EcdsaP256(k) => {
                let mut scalar = k.to_bytes();
                der.extend_from_slice(&P256_PKCS8_PREFIX);
                der.extend_from_slice(&scalar);
                scalar.zeroize();
                der.extend_from_slice(&P256_PKCS8_PUBLIC_TAG);
                der.extend_from_slice(k.verifying_key().to_sec1_point(false).as_bytes());
            }
        }
        let b64 = Zeroizing::new(STANDARD.encode(der.as_slice()));
        let mut pem = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
        pem.push_str("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            // Base64 output is ASCII, so every 64-byte chunk is whole characters.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }
}

/// True if `s` looks like a hex key (digits only, optional 0x), so other text gets the
/// general "not a private key" answer rather than a hex complaint.
fn is_hex_key(s: &str) -> bool {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Decodes 32 bytes of hex (optional 0x) into a wiped buffer.
fn hex_key(s: &str, algorithm: &'static str) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let digits = s.trim().strip_prefix("0x").unwrap_or(s.trim());
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) || !digits.len().is_multiple_of(2) {
        return Err(KeyFileError::Hex);
    }
    let bytes = Zeroizing::new(hex::decode(digits).map_err(|_| KeyFileError::Hex)?);
    if bytes.len() != 32 {
        return Err(KeyFileError::Length {
            algorithm,
            got: bytes.len(),
        });
    }
    Ok(bytes)
}

/// One `-----BEGIN L-----` … `-----END L-----` block: its label and the text between.
struct PemBlock<'a> {
    label: &'a str,
    body: &'a str,
}

/// Splits text into PEM blocks; text between blocks (OpenSSL's "explanatory text") is
/// ignored.
fn pem_blocks(mut text: &str) -> Result<Vec<PemBlock<'_>>, KeyFileError> {
    let mut blocks = Vec::new();
    while let Some(start) = text.find("-----BEGIN ") {
        let after = &text[start + "-----BEGIN ".len()..];
        let end_of_label = after
            .find("-----")
            .ok_or(KeyFileError::Pem("unterminated BEGIN line"))?;
        let label = &after[..end_of_label];
        if label.contains(['\n', '\r']) {
            return Err(KeyFileError::Pem("unterminated BEGIN line"));
        }
        let after = &after[end_of_label + "-----".len()..];
        let end_marker = format!("-----END {label}-----");
        let body_len = after
            .find(&end_marker)
            .ok_or(KeyFileError::Pem("no END line matching the BEGIN line"))?;
        blocks.push(PemBlock {
            label,
            body: &after[..body_len],
        });
        text = &after[body_len + end_marker.len()..];
    }
    Ok(blocks)
}

fn from_pem(text: &str) -> Result<SigningKey, KeyFileError> {
    let blocks = pem_blocks(text)?;
    let mut private = blocks
        .iter()
        .filter(|b| matches!(b.label, "PRIVATE KEY" | "EC PRIVATE KEY"));
    let Some(block) = private.next() else {
        if blocks.iter().any(|b| b.label == "ENCRYPTED PRIVATE KEY") {
            return Err(KeyFileError::Encrypted);
        }
        return Err(match blocks.first() {
            Some(b) => KeyFileError::NotPrivate(printable_label(b.label)),
            None => KeyFileError::Pem("no PEM block"),
        });
    };
    if private.next().is_some() {
        return Err(KeyFileError::Ambiguous);
    }
    // RFC 1421 headers inside a block mean OpenSSL's legacy password encryption.
    if block.body.contains("Proc-Type:") || block.body.contains("DEK-Info:") {
        return Err(KeyFileError::Encrypted);
    }
    let der = base64_body(block.body)?;
    if block.label == "EC PRIVATE KEY" {
        return from_sec1_der(&der);
    }
    from_pkcs8_der(&der)
}

/// Reads a SEC1 ECPrivateKey, refusing curves other than P-256 by name.
fn from_sec1_der(der: &[u8]) -> Result<SigningKey, KeyFileError> {
    let parsed = sec1::EcPrivateKey::try_from(der).map_err(|_| KeyFileError::Der("SEC1"))?;
    if let Some(curve) = parsed.parameters.and_then(|p| p.named_curve())
        && curve != OID_P256
    {
        return Err(KeyFileError::UnsupportedCurve(curve.to_string()));
    }
    let secret =
        p256::SecretKey::from_sec1_der(der).map_err(|_| KeyFileError::Der("SEC1 P-256"))?;
    Ok(SigningKey::EcdsaP256(p256::ecdsa::SigningKey::from(
        &secret,
    )))
}

/// Reads a PKCS#8 document, choosing the algorithm by its OID.
fn from_pkcs8_der(der: &[u8]) -> Result<SigningKey, KeyFileError> {
    let info = PrivateKeyInfoRef::try_from(der).map_err(|_| KeyFileError::Der("PKCS#8"))?;
    let oid = info.algorithm.oid;
    if oid == OID_ED25519 {
        return ed25519_dalek::SigningKey::from_pkcs8_der(der)
            .map(SigningKey::Ed25519)
            .map_err(|_| KeyFileError::Der("PKCS#8 Ed25519"));
    }
    if oid == OID_EC_PUBLIC_KEY {
        let curve = info
            .algorithm
            .parameters_oid()
            .map_err(|_| KeyFileError::Der("PKCS#8 EC parameters"))?;
        if curve != OID_P256 {
            return Err(KeyFileError::UnsupportedCurve(curve.to_string()));
        }
        return p256::ecdsa::SigningKey::from_pkcs8_der(der)
            .map(SigningKey::EcdsaP256)
            .map_err(|_| KeyFileError::Der("PKCS#8 P-256"));
    }
    Err(KeyFileError::UnsupportedAlgorithm(oid.to_string()))
}

/// Decodes a PEM body's base64 (any line width, CRLF or LF) into a wiped buffer.
fn base64_body(body: &str) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let mut compact = Zeroizing::new(String::with_capacity(body.len()));
    compact.extend(body.chars().filter(|c| !c.is_ascii_whitespace()));
    let mut der = Zeroizing::new(vec![0u8; compact.len().div_ceil(4) * 3]);
    let n = STANDARD
        .decode_slice(compact.as_bytes(), der.as_mut_slice())
        .map_err(|_| KeyFileError::Pem("the body is not base64"))?;
    der.truncate(n);
    Ok(der)
}

/// A PEM label fit to quote: labels are public, but bound their size and characters.
fn printable_label(label: &str) -> String {
    label
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
        .take(40)
        .collect()
}
