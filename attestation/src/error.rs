//! The one error type of document verification.

use std::time::SystemTime;

use crate::time_fmt::rfc3339;

/// Why an attestation document was refused. Every variant says what did not match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The input is larger than any genuine document; refused before parsing.
    #[error("document is {len} bytes, more than the {max}-byte maximum")]
    TooLarge {
        /// Input length.
        len: usize,
        /// Accepted maximum.
        max: usize,
    },
    /// The bytes are not a COSE_Sign1 structure.
    #[error("not a COSE_Sign1 structure: {0}")]
    MalformedCose(String),
    /// The protected header does not name ES384.
    #[error("COSE algorithm is {found}, expected ES384")]
    UnexpectedAlgorithm {
        /// The algorithm found, as text.
        found: String,
    },
    /// A COSE header carries something a Nitro document never has.
    #[error("unexpected COSE header content: {0}")]
    UnexpectedHeader(&'static str),
    /// The COSE_Sign1 carries no payload.
    #[error("COSE_Sign1 has no payload")]
    MissingPayload,
    /// The signature is not the 96 bytes of an ES384 signature.
    #[error("COSE signature is {len} bytes, expected 96 (ES384 r||s)")]
    SignatureLength {
        /// Length found.
        len: usize,
    },
    /// The payload is not well-formed CBOR.
    #[error("payload is not valid CBOR: {0}")]
    MalformedPayload(String),
    /// The payload is CBOR but not a map.
    #[error("payload is not a CBOR map")]
    PayloadNotMap,
    /// A mandatory field is absent (or null).
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    /// A field that the specification does not define.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// A field appears twice.
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    /// A field has the wrong CBOR type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// Field name.
        field: &'static str,
        /// Expected CBOR type.
        expected: &'static str,
    },
    /// A field's length is outside the specification's bounds.
    #[error("field `{field}` is {len} bytes, allowed {min}..={max}")]
    FieldLength {
        /// Field name.
        field: &'static str,
        /// Length found.
        len: usize,
        /// Minimum length.
        min: usize,
        /// Maximum length.
        max: usize,
    },
    /// `module_id` is empty.
    #[error("field `module_id` is empty")]
    EmptyModuleId,
    /// `digest` is not "SHA384".
    #[error("digest is {0:?}, expected \"SHA384\"")]
    UnsupportedDigest(String),
    /// `timestamp` is zero.
    #[error("timestamp is zero")]
    ZeroTimestamp,
    /// `pcrs` has no entry or more than 32.
    #[error("pcrs has {0} entries, allowed 1..=32")]
    PcrCount(usize),
    /// A PCR index outside 0..32.
    #[error("PCR index {0} is outside 0..32")]
    PcrIndex(i128),
    /// A PCR whose length is not 32, 48 or 64.
    #[error("PCR{index} is {len} bytes, allowed 32, 48 or 64")]
    PcrLength {
        /// PCR index.
        index: u8,
        /// Length found.
        len: usize,
    },
    /// `cabundle` is empty.
    #[error("cabundle is empty")]
    EmptyCabundle,
    /// `cabundle` holds more certificates than any path allows.
    #[error("cabundle has {0} certificates, more than the 8 allowed")]
    CabundleTooLong(usize),
    /// A certificate does not parse.
    #[error("certificate {which} is malformed: {reason}")]
    MalformedCertificate {
        /// `certificate` or `cabundle[i]`.
        which: String,
        /// Parser message.
        reason: String,
    },
    /// The leaf key is not an ECDSA P-384 key.
    #[error("signing certificate key is not ECDSA P-384")]
    LeafKeyNotP384,
    /// `cabundle[0]` is not the pinned root.
    #[error("cabundle[0] has SHA-256 fingerprint {found}, expected the pinned root {expected}")]
    RootMismatch {
        /// Pinned fingerprint, hex.
        expected: String,
        /// Fingerprint found, hex.
        found: String,
    },
    /// A certificate in the chain had expired at the verification time.
    #[error("certificate {which} ({subject}) expired at {}, verification time {}", rfc3339(*not_after), rfc3339(*at))]
    CertificateExpired {
        /// Which certificate.
        which: String,
        /// Its subject.
        subject: String,
        /// Its notAfter.
        not_after: SystemTime,
        /// The verification time.
        at: SystemTime,
    },
    /// A certificate in the chain was not yet valid at the verification time.
    #[error("certificate {which} ({subject}) is valid only from {}, verification time {}", rfc3339(*not_before), rfc3339(*at))]
    CertificateNotYetValid {
        /// Which certificate.
        which: String,
        /// Its subject.
        subject: String,
        /// Its notBefore.
        not_before: SystemTime,
        /// The verification time.
        at: SystemTime,
    },
    /// The chain from the leaf through `cabundle` to the root does not verify.
    #[error("certificate chain does not verify: {0}")]
    ChainInvalid(String),
    /// The chain verifies but not in the order `cabundle` lists (root first).
    #[error("cabundle is not ordered root first down to the signing certificate's issuer")]
    CabundleOrder,
    /// The COSE signature does not verify under the leaf certificate's key.
    #[error("COSE_Sign1 signature does not verify under the signing certificate")]
    BadSignature,
    /// The document timestamp lies outside its signing certificate's validity.
    #[error("document timestamp {} is outside its signing certificate's validity", rfc3339(*timestamp))]
    TimestampOutsideCertificate {
        /// Document timestamp.
        timestamp: SystemTime,
    },
    /// The document was made after the verification time.
    #[error("document timestamp {} is later than the verification time {}", rfc3339(*timestamp), rfc3339(*at))]
    TimestampInFuture {
        /// Document timestamp.
        timestamp: SystemTime,
        /// Verification time.
        at: SystemTime,
    },
    /// The document is older than the caller accepts.
    #[error("document is {age_secs} s old, more than the {max_secs} s allowed")]
    TooOld {
        /// Age in seconds.
        age_secs: u64,
        /// Maximum age in seconds.
        max_secs: u64,
    },
    /// A debug-mode document (PCR0 all zeros) when debug was not allowed.
    #[error(
        "document comes from an enclave in debug mode (PCR0 is all zeros); debug documents are refused unless explicitly allowed"
    )]
    DebugMode,
    /// An expected PCR is absent.
    #[error("PCR{0} is expected but absent from the document")]
    PcrMissing(u8),
    /// A PCR differs from the expected value.
    #[error("PCR{index} is {found}, expected {expected}")]
    PcrMismatch {
        /// PCR index.
        index: u8,
        /// Expected value, hex.
        expected: String,
        /// Value found, hex.
        found: String,
    },
    /// The document's PCRs match none of several trusted releases (PCR sets): for each
    /// release, in the order given, the first PCR that differs or is absent.
    #[error(
        "the document's PCRs match none of the {} trusted releases ({})",
        .0.len(),
        .0.iter().enumerate().map(|(i, e)| format!("release {}: {e}", i + 1)).collect::<Vec<_>>().join("; ")
    )]
    NoTrustedRelease(Vec<VerifyError>),
    /// An optional field that the caller expects is absent.
    #[error("field `{0}` is expected but absent from the document")]
    ExpectedFieldMissing(&'static str),
    /// An optional field differs from the expected value.
    #[error("{field} is {found}, expected {expected}")]
    FieldMismatch {
        /// Field name.
        field: &'static str,
        /// Expected value, hex.
        expected: String,
        /// Value found, hex.
        found: String,
    },
    /// A trusted root given by the caller cannot be used.
    #[error("trusted root is unusable: {0}")]
    BadRoot(String),
}
