//! `Recipient` handling: verify the attestation document and check its public key.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_lc_rs::rsa::PublicEncryptingKey;
use strongroom_attestation::{Expectations, TrustedRoot, verify};

use crate::error::{ApiError, Code};

/// The only key encryption algorithm KMS accepts in `Recipient`.
pub const KEY_ENCRYPTION_ALGORITHM: &str = "RSAES_OAEP_SHA_256";
/// Smallest RSA modulus accepted for the recipient key, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// A root certificate file larger than this is not a PEM certificate.
const MAX_ROOT_FILE_LEN: u64 = 64 * 1024;

/// Where the trusted attestation root comes from.
pub(crate) struct RootSource {
    /// `None`: the AWS Nitro Enclaves Root G1, as real KMS trusts.
    path: Option<PathBuf>,
    /// The file's last contents and the root parsed from them.
    cache: Mutex<Option<(Vec<u8>, TrustedRoot)>>,
}

impl RootSource {
    pub(crate) fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            cache: Mutex::new(None),
        }
    }

    /// The root to verify against now. The file is read on every call (it is small) so that
    /// a root written or replaced after start-up — the mock NSM may create it after the mock
    /// KMS starts — is picked up; it is parsed again only when its bytes change.
    fn current(&self) -> Result<TrustedRoot, String> {
        let Some(path) = &self.path else {
            return Ok(TrustedRoot::aws_nitro_g1());
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_ROOT_FILE_LEN + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("attestation root {}: {e}", path.display()))?;
        if bytes.len() as u64 > MAX_ROOT_FILE_LEN {
            return Err(format!(
                "attestation root {} is larger than {MAX_ROOT_FILE_LEN} bytes",
                path.display()
            ));
        }
        let mut cache = self
            .cache
            .lock()
            .map_err(|_| "attestation root cache lock poisoned".to_string())?;
        if let Some((cached, root)) = cache.as_ref()
            && *cached == bytes
        {
            return Ok(root.clone());
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| format!("attestation root {} is not text", path.display()))?;
        let root = TrustedRoot::from_pem(text)
            .map_err(|e| format!("attestation root {}: {e}", path.display()))?;
        tracing::info!(path = %path.display(), root = ?root, "loaded attestation root");
        *cache = Some((bytes, root.clone()));
        Ok(root)
    }
}

/// What a verified `Recipient` contributes to a request.
pub(crate) struct Recipient {
    /// DER `SubjectPublicKeyInfo` of an RSA key of at least [`MIN_RSA_BITS`].
    pub(crate) public_key: Vec<u8>,
    /// The document's PCRs, for the `kms:RecipientAttestation:*` condition keys.
    pub(crate) pcrs: BTreeMap<u8, Vec<u8>>,
}

/// Verifies a `Recipient` for `action` (`kms:Decrypt`, ...) on `resource`.
///
/// A document that does not verify (syntax, chain to the trusted root, signature, age) is
/// answered with `AccessDeniedException`. The KMS Developer Guide, "Condition keys for Nitro
/// Enclaves" (kms:RecipientAttestation:ImageSha384 and :PCR), says: "If the request doesn't
/// include a valid attestation document from an AWS Nitro enclave, permission is denied
/// because this condition is not satisfied." KMS does not document a distinct exception for
/// an invalid document, so the mock denies, naming the cause only in its own log.
pub(crate) fn verify_recipient(
    roots: &RootSource,
    key_encryption_algorithm: Option<&str>,
    document: Option<&[u8]>,
    max_age: Duration,
    action: &str,
    resource: &str,
) -> Result<Recipient, ApiError> {
    match key_encryption_algorithm {
        Some(KEY_ENCRYPTION_ALGORITHM) => {}
        Some(other) => {
            return Err(ApiError::validation(
                "recipient.keyEncryptionAlgorithm",
                other,
                "Member must satisfy enum value set: [RSAES_OAEP_SHA_256]",
            ));
        }
        None => return Err(ApiError::missing("recipient.keyEncryptionAlgorithm")),
    }
    let document = document.ok_or_else(|| ApiError::missing("recipient.attestationDocument"))?;
    let denied = || {
        ApiError::new(
            Code::AccessDenied,
            format!(
                "The caller is not authorized to perform: {action} on resource: {resource} because the attestation document in the Recipient parameter is not valid"
            ),
        )
    };
    let root = roots.current().map_err(|reason| {
        tracing::warn!(%reason, "no usable attestation root; refusing Recipient");
        denied()
    })?;
    // Debug-mode documents (PCRs all zero) are validly signed and KMS accepts them; it is
    // the PCR conditions of the key policy that keep them out.
    let expectations = Expectations::new(SystemTime::now())
        .root(root)
        .max_age(max_age)
        .allow_debug(true);
    let verified = verify(document, &expectations).map_err(|e| {
        tracing::warn!(error = %e, %action, "attestation document refused");
        denied()
    })?;
    let public_key = verified.document.public_key.ok_or_else(|| {
        ApiError::new(
            Code::Validation,
            "The attestation document in the Recipient parameter has no public_key",
        )
    })?;
    let bits = PublicEncryptingKey::from_der(&public_key)
        .map(|k| k.key_size_bits())
        .map_err(|_| {
            ApiError::new(
                Code::Validation,
                "The public_key of the attestation document is not a DER RSA SubjectPublicKeyInfo",
            )
        })?;
    if bits < MIN_RSA_BITS {
        return Err(ApiError::new(
            Code::Validation,
            format!(
                "The public_key of the attestation document is a {bits}-bit RSA key; at least {MIN_RSA_BITS} bits are required"
            ),
        ));
    }
    Ok(Recipient {
        public_key,
        pcrs: verified.document.pcrs,
    })
}
