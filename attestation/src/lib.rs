//! Nitro Enclaves attestation for Strongroom: the NSM interface, a faithful mock NSM, and
//! a verifier for attestation documents.
//!
//! # Verifying
//! [`verify`] follows AWS's documented procedure (nsm-api `docs/attestation_process.md`):
//! syntax checks of every field, the chain from the signing certificate through `cabundle`
//! (root first) to a root pinned by its SHA-256 fingerprint — the AWS Nitro Enclaves Root G1
//! unless the caller passes another root explicitly —, every certificate valid at a time the
//! caller chooses (auditors check old documents), the COSE_Sign1 ES384 signature, then the
//! caller's [`Expectations`]: PCR values at any index, nonce, public key, user data, maximum
//! age, and no debug-mode documents unless allowed. Each failure is its own [`VerifyError`].
//!
//! # Why not `attestation-doc-validation`
//! That crate verifies against the wall clock only (auditors need a chosen time), checks
//! PCRs 0/1/2/8 only, and brings a second copy of about 35 crates plus webpki 0.22. This
//! crate instead builds on `coset` (COSE), `p384` (ECDSA P-384) and `rustls-webpki` (X.509
//! path validation), as tkhq/qos does; nothing here hand-rolls COSE or path validation.
//!
//! # Providers
//! [`Nsm`] is what the enclave needs from the Nitro Security Module. `NitroNsm` (feature
//! `nitro`, Linux) talks to `/dev/nsm`; `MockNsm` (feature `mock`) signs with its own CA and
//! must never be compiled into a production enclave.

mod document;
mod error;
mod nsm;
mod pcrs;
mod root;
mod time_fmt;
mod verify;

#[cfg(feature = "mock")]
pub mod mock;
#[cfg(all(feature = "nitro", target_os = "linux"))]
pub mod nitro;

pub use document::{
    AttestationDocument, MAX_CABUNDLE_LEN, MAX_CERT_LEN, MAX_NONCE_LEN, MAX_PAYLOAD_LEN,
    MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN,
};
pub use error::VerifyError;
pub use nsm::{AttestationRequest, Nsm, NsmError, PcrDescription};
pub use pcrs::{PcrFileError, parse_pcr_file};
pub use root::{AWS_ROOT_G1_SHA256, TrustedRoot};
pub use time_fmt::{from_millis, rfc3339};
pub use verify::{
    CertificateInfo, Expectations, MAX_CLOCK_SKEW, MAX_DOCUMENT_LEN, VerifiedDocument,
    claimed_timestamp, verify,
};
