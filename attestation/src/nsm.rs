//! What the enclave needs from the Nitro Security Module, as a trait with two providers.

use zeroize::Zeroizing;

use crate::TrustedRoot;
use crate::document::{MAX_NONCE_LEN, MAX_PUBLIC_KEY_LEN, MAX_USER_DATA_LEN};

/// Inputs of an attestation request; each is optional, as in the NSM API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttestationRequest {
    /// Data the enclave binds into the document (at most 512 bytes).
    pub user_data: Option<Vec<u8>>,
    /// A consumer's challenge (at most 512 bytes).
    pub nonce: Option<Vec<u8>>,
    /// A DER public key consumers may encrypt to (1 to 1024 bytes).
    pub public_key: Option<Vec<u8>>,
}

impl AttestationRequest {
    /// Applies the NSM's size limits, so both providers refuse the same requests.
    pub fn check_limits(&self) -> Result<(), NsmError> {
        let check = |field: &'static str, v: &Option<Vec<u8>>, min: usize, max: usize| match v {
            Some(b) if b.len() < min || b.len() > max => Err(NsmError::InputSize {
                field,
                len: b.len(),
                min,
                max,
            }),
            _ => Ok(()),
        };
        check("user_data", &self.user_data, 0, MAX_USER_DATA_LEN)?;
        check("nonce", &self.nonce, 0, MAX_NONCE_LEN)?;
        check("public_key", &self.public_key, 1, MAX_PUBLIC_KEY_LEN)
    }
}

/// A PCR's current value and whether it is locked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrDescription {
    /// True if the PCR can no longer be extended.
    pub locked: bool,
    /// The PCR value.
    pub data: Vec<u8>,
}

/// Errors from an NSM provider.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NsmError {
    /// A request field exceeds the NSM's limit.
    #[error("{field} is {len} bytes; the NSM accepts {min}..={max}")]
    InputSize {
        /// Field name.
        field: &'static str,
        /// Length given.
        len: usize,
        /// Minimum length.
        min: usize,
        /// Maximum length.
        max: usize,
    },
    /// A PCR index the NSM does not have.
    #[error("PCR index {0} is out of range")]
    InvalidPcrIndex(u16),
    /// The NSM device could not be opened or answered with an error.
    #[error("NSM device error: {0}")]
    Device(String),
    /// The NSM answered with a response of the wrong kind.
    #[error("NSM returned an unexpected response to {0}")]
    UnexpectedResponse(&'static str),
    /// Mock NSM state could not be read, written or parsed.
    #[error("mock NSM state: {0}")]
    State(String),
}

/// The Nitro Security Module operations Strongroom uses.
pub trait Nsm: Send + Sync {
    /// A signed attestation document (COSE_Sign1 bytes) binding the request's fields.
    fn attestation(&self, request: &AttestationRequest) -> Result<Vec<u8>, NsmError>;

    /// Fills `out` with random bytes from the NSM.
    fn fill_random(&self, out: &mut [u8]) -> Result<(), NsmError>;

    /// The value and lock state of PCR `index`.
    fn describe_pcr(&self, index: u16) -> Result<PcrDescription, NsmError>;

    /// The root that this provider's documents chain to. The trust anchor follows the
    /// provider, so code that verifies its own documents cannot trust the wrong root.
    fn trusted_root(&self) -> TrustedRoot;

    /// `len` random bytes in a buffer that is wiped on drop.
    fn random(&self, len: usize) -> Result<Zeroizing<Vec<u8>>, NsmError> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        self.fill_random(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_match_the_nsm() {
        let ok = AttestationRequest {
            user_data: Some(vec![0; 512]),
            nonce: Some(vec![0; 512]),
            public_key: Some(vec![0; 1024]),
        };
        assert!(ok.check_limits().is_ok());
        for (req, field) in [
            (
                AttestationRequest {
                    user_data: Some(vec![0; 513]),
                    ..Default::default()
                },
                "user_data",
            ),
            (
                AttestationRequest {
                    nonce: Some(vec![0; 513]),
                    ..Default::default()
                },
                "nonce",
            ),
            (
                AttestationRequest {
                    public_key: Some(vec![0; 1025]),
                    ..Default::default()
                },
                "public_key",
            ),
            (
                AttestationRequest {
                    public_key: Some(vec![]),
                    ..Default::default()
                },
                "public_key",
            ),
        ] {
            match req.check_limits() {
                Err(NsmError::InputSize { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected InputSize for {field}, got {other:?}"),
            }
        }
    }
}
