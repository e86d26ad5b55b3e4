//! KMS through the official AWS SDK: the only two calls the proxy makes, both with a
//! `Recipient`, so that KMS answers with an envelope only the enclave can open.

use std::sync::Arc;
use std::time::Instant;

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo};

use crate::metrics::Metrics;

/// A KMS failure, with the service's error code when there is one.
#[derive(Debug, thiserror::Error)]
#[error("KMS {operation} failed: {message}")]
pub struct KmsError {
    /// The operation.
    pub operation: &'static str,
    /// The service error code (e.g. `AccessDeniedException`) and message, or the SDK's error.
    pub message: String,
}

fn kms_error<E>(operation: &'static str, e: aws_sdk_kms::error::SdkError<E>) -> KmsError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_kms::error::ProvideErrorMetadata;
    let message = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => aws_sdk_kms::error::DisplayErrorContext(&e).to_string(),
    };
    KmsError { operation, message }
}

fn recipient(attestation_document: &[u8]) -> RecipientInfo {
    RecipientInfo::builder()
        .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
        .attestation_document(Blob::new(attestation_document))
        .build()
}

/// The KMS key that guards the root key.
#[derive(Clone, Debug)]
pub struct Kms {
    client: Client,
    key_id: String,
    metrics: Option<Arc<Metrics>>,
}

/// What `GenerateDataKey` returns with a recipient.
#[derive(Debug)]
pub struct NewRootKey {
    /// To store: KMS decrypts it on later boots.
    pub ciphertext_blob: Vec<u8>,
    /// For the enclave.
    pub ciphertext_for_recipient: Vec<u8>,
}

impl Kms {
    /// A client for `key_id` (key id, ARN or alias).
    pub fn new(client: Client, key_id: String) -> Self {
        Self {
            client,
            key_id,
            metrics: None,
        }
    }

    /// Records calls, outcomes and durations in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn record<T>(&self, operation: &'static str, start: Instant, outcome: &Result<T, KmsError>) {
        if let Some(m) = &self.metrics {
            m.observe_kms(operation, outcome.is_ok(), start.elapsed());
        }
    }

    /// The configured key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// First boot: a new AES-256 root key, wrapped for the attested enclave.
    pub async fn generate_root_key(
        &self,
        attestation_document: &[u8],
    ) -> Result<NewRootKey, KmsError> {
        let start = Instant::now();
        let outcome = self.generate(attestation_document).await;
        self.record("GenerateDataKey", start, &outcome);
        outcome
    }

    async fn generate(&self, attestation_document: &[u8]) -> Result<NewRootKey, KmsError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .recipient(recipient(attestation_document))
            .send()
            .await
            .map_err(|e| kms_error("GenerateDataKey", e))?;
        if out.plaintext().is_some() {
            // KMS never returns the plaintext with a recipient; a server that does is not KMS.
            return Err(KmsError {
                operation: "GenerateDataKey",
                message: "KMS returned a plaintext key despite the recipient; refusing it".into(),
            });
        }
        let ciphertext_blob = out.ciphertext_blob().map(|b| b.as_ref().to_vec());
        let for_recipient = out.ciphertext_for_recipient().map(|b| b.as_ref().to_vec());
        match (ciphertext_blob, for_recipient) {
            (Some(ciphertext_blob), Some(ciphertext_for_recipient)) => Ok(NewRootKey {
                ciphertext_blob,
                ciphertext_for_recipient,
            }),
            _ => Err(KmsError {
                operation: "GenerateDataKey",
                message: "response lacks CiphertextBlob or CiphertextForRecipient".into(),
            }),
        }
    }

    /// Later boots: the stored root key, re-wrapped for the attested enclave.
    pub async fn unwrap_root_key(
        &self,
        ciphertext_blob: &[u8],
        attestation_document: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let start = Instant::now();
        let outcome = self.decrypt(ciphertext_blob, attestation_document).await;
        self.record("Decrypt", start, &outcome);
        outcome
    }

    async fn decrypt(
        &self,
        ciphertext_blob: &[u8],
        attestation_document: &[u8],
    ) -> Result<Vec<u8>, KmsError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(ciphertext_blob))
            .recipient(recipient(attestation_document))
            .send()
            .await
            .map_err(|e| kms_error("Decrypt", e))?;
        out.ciphertext_for_recipient()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| KmsError {
                operation: "Decrypt",
                message: "response lacks CiphertextForRecipient".into(),
            })
    }
}
