//! Trust anchors: the pinned AWS Nitro Enclaves Root G1, or a root the caller names.

use sha2::{Digest, Sha256};

use crate::VerifyError;

const AWS_ROOT_G1_PEM: &str = include_str!("../roots/aws-nitro-enclaves-root-g1.pem");

/// SHA-256 of the DER AWS Nitro Enclaves Root G1 certificate, as published by AWS.
pub const AWS_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// The root certificate a document's chain must end in, pinned by its SHA-256 fingerprint.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedRoot {
    der: Vec<u8>,
    fingerprint: [u8; 32],
    name: &'static str,
}

impl std::fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TrustedRoot({}, sha256={})",
            self.name,
            hex::encode(self.fingerprint)
        )
    }
}

impl Default for TrustedRoot {
    fn default() -> Self {
        Self::aws_nitro_g1()
    }
}

impl TrustedRoot {
    /// The AWS Nitro Enclaves Root G1. The fingerprint is the published constant, not a hash
    /// of the embedded file, so a swapped file fails verification instead of being trusted.
    pub fn aws_nitro_g1() -> Self {
        let der = pem::parse(AWS_ROOT_G1_PEM)
            .map(|p| p.into_contents())
            .unwrap_or_default();
        Self {
            der,
            fingerprint: AWS_ROOT_G1_SHA256,
            name: "AWS Nitro Enclaves Root G1",
        }
    }

    /// A root the caller trusts explicitly (a mock root in development), from DER.
    pub fn from_der(der: Vec<u8>) -> Self {
        let fingerprint = Sha256::digest(&der).into();
        Self {
            der,
            fingerprint,
            name: "caller-supplied root",
        }
    }

    /// A root the caller trusts explicitly, from a PEM `CERTIFICATE` block.
    pub fn from_pem(pem_text: &str) -> Result<Self, VerifyError> {
        let block = pem::parse(pem_text).map_err(|e| VerifyError::BadRoot(e.to_string()))?;
        if block.tag() != "CERTIFICATE" {
            return Err(VerifyError::BadRoot(format!(
                "PEM block is {:?}, expected CERTIFICATE",
                block.tag()
            )));
        }
        Ok(Self::from_der(block.into_contents()))
    }

    /// DER bytes of the root certificate.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Pinned SHA-256 fingerprint.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Checks the pin: the embedded certificate and `cabundle[0]` must both hash to it.
    pub(crate) fn check_pin(&self, cabundle_root: &[u8]) -> Result<(), VerifyError> {
        let embedded: [u8; 32] = Sha256::digest(&self.der).into();
        if embedded != self.fingerprint {
            return Err(VerifyError::BadRoot(format!(
                "embedded root hashes to {}, pinned {}",
                hex::encode(embedded),
                hex::encode(self.fingerprint)
            )));
        }
        let found: [u8; 32] = Sha256::digest(cabundle_root).into();
        if found != self.fingerprint {
            return Err(VerifyError::RootMismatch {
                expected: hex::encode(self.fingerprint),
                found: hex::encode(found),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_aws_root_matches_its_pin() {
        let root = TrustedRoot::aws_nitro_g1();
        let hash: [u8; 32] = Sha256::digest(root.der()).into();
        assert_eq!(hash, AWS_ROOT_G1_SHA256);
        assert!(root.check_pin(root.der()).is_ok());
    }

    #[test]
    fn a_different_root_is_a_mismatch() {
        let root = TrustedRoot::aws_nitro_g1();
        assert!(matches!(
            root.check_pin(b"not the root"),
            Err(VerifyError::RootMismatch { .. })
        ));
    }

    #[test]
    fn pem_of_the_wrong_kind_is_refused() {
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            TrustedRoot::from_pem(key),
            Err(VerifyError::BadRoot(_))
        ));
    }
}
