//! The crate's error type.

/// Why an envelope could not be opened or built.
///
/// Every variant except [`EnvelopeError::Decryption`] depends only on public bytes (what the
/// parent sent, or the public key). Everything that touches secret material — RSA unwrap,
/// content-key length, AES-CBC and its padding — ends in the single, detail-free
/// [`EnvelopeError::Decryption`], so a tampering parent cannot tell which step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The input is larger than [`crate::MAX_ENVELOPE_LEN`]; nothing was parsed.
    #[error("envelope is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit it exceeds.
        max: usize,
    },
    /// The input is not BER, or does not follow the CMS `ContentInfo`/`EnvelopedData` schema.
    #[error("envelope is not a well-formed CMS structure: {0}")]
    Malformed(#[source] der::Error),
    /// The `ContentInfo` is not `id-envelopedData`, or the encrypted content is not `id-data`.
    #[error("unexpected CMS content type {0}")]
    UnexpectedContentType(der::asn1::ObjectIdentifier),
    /// The structure is valid CMS but not the shape KMS sends (versions, optional fields, ...).
    #[error("unsupported envelope structure: {0}")]
    UnsupportedStructure(&'static str),
    /// The envelope does not have exactly one recipient.
    #[error("envelope has {0} recipients, expected exactly one")]
    RecipientCount(usize),
    /// The recipient identifier is not SHA-256 of this key's `SubjectPublicKeyInfo`.
    #[error("envelope is addressed to another recipient key")]
    RecipientMismatch,
    /// The key encryption algorithm is not RSAES-OAEP with SHA-256 and MGF1(SHA-256).
    #[error("unsupported key encryption algorithm: {0}")]
    UnsupportedKeyEncryption(&'static str),
    /// The content encryption algorithm is not AES-256-CBC with a 16-byte IV.
    #[error("unsupported content encryption algorithm: {0}")]
    UnsupportedContentEncryption(&'static str),
    /// The encrypted content is empty or not a whole number of AES blocks.
    #[error("encrypted content is {0} bytes, not a positive multiple of 16")]
    ContentLength(usize),
    /// Decryption failed; deliberately says nothing about which step.
    #[error("decryption failed")]
    Decryption,
    /// A key could not be loaded: not an acceptable RSA key in the expected encoding.
    #[error("invalid RSA key")]
    InvalidKey,
    /// The envelope could not be encoded (a piece exceeds what DER can express).
    #[error("could not encode the envelope: {0}")]
    Encoding(#[source] der::Error),
    /// The cryptographic library failed (random generator, key generation, encryption).
    #[error("cryptographic operation failed")]
    Crypto,
}
