//! Keeps the enclave unsealed: whenever it reports `AwaitingRootKey` (first start, or a
//! restarted enclave), run the exchange with KMS; on failure, say why on `/v1/health` and in
//! the log, and try again with backoff.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::AuditTracker;
use serde_bytes::ByteBuf;
use strongroom_protocol::messages::{CompleteUnseal, EnclaveError, Phase, Request, Response};

use crate::enclave_client::{EnclaveCallError, EnclaveClient};
use crate::kms::{Kms, KmsError};
use crate::store::{Store, StoreError};

/// Why an unseal attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    /// The enclave could not be reached.
    #[error(transparent)]
    Enclave(#[from] EnclaveCallError),
    /// The enclave refused.
    #[error("the enclave refused: {0}")]
    Refused(EnclaveError),
    /// The enclave answered out of turn.
    #[error("unexpected answer from the enclave: {0}")]
    Unexpected(String),
    /// KMS refused or failed.
    #[error(transparent)]
    Kms(#[from] KmsError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A first boot without a genesis document.
    #[error(
        "this is a first boot and no genesis document was given: start the proxy with --genesis FILE"
    )]
    NoGenesis,
    /// The stored root key belongs to another KMS key than the configured one.
    #[error(
        "the stored root key was made with KMS key {stored}, but the proxy is configured with {configured}"
    )]
    KeyMismatch {
        /// Key in the database.
        stored: String,
        /// Key in the configuration.
        configured: String,
    },
}

/// What `/v1/health` reports.
#[derive(Debug, Default)]
pub struct Health {
    inner: Mutex<(bool, Option<String>)>,
}

impl Health {
    /// True once the enclave is unsealed.
    pub fn is_ready(&self) -> bool {
        self.inner.lock().map(|g| g.0).unwrap_or(false)
    }

    /// The last failure, while not ready.
    pub fn detail(&self) -> Option<String> {
        self.inner.lock().ok().and_then(|g| g.1.clone())
    }

    fn set(&self, ready: bool, detail: Option<String>) {
        if let Ok(mut g) = self.inner.lock() {
            *g = (ready, detail);
        }
    }
}

async fn call(enclave: &EnclaveClient, request: Request) -> Result<Response, UnsealError> {
    match enclave.call(&request).await? {
        Response::Error(e) => Err(UnsealError::Refused(e)),
        other => Ok(other),
    }
}

/// One unseal exchange: challenge, KMS, completion, storage.
pub async fn unseal_once(
    enclave: &EnclaveClient,
    kms: &Kms,
    store: &dyn Store,
    audit: &AuditTracker,
    genesis: Option<&[u8]>,
) -> Result<(), UnsealError> {
    let Response::UnsealChallenge {
        attestation_document,
    } = call(enclave, Request::BeginUnseal).await?
    else {
        return Err(UnsealError::Unexpected(
            "no challenge to BeginUnseal".into(),
        ));
    };
    let (envelope, key_check, state) = match store.root()? {
        Some(root) => {
            if root.kms_key_id != kms.key_id() {
                return Err(UnsealError::KeyMismatch {
                    stored: root.kms_key_id,
                    configured: kms.key_id().to_string(),
                });
            }
            let envelope = kms
                .unwrap_root_key(&root.ciphertext_blob, &attestation_document)
                .await?;
            match (root.key_check, root.state) {
                (Some(k), Some(s)) => (envelope, Some(k), Some(s)),
                // A first boot that stopped before its answer was stored: still a first boot.
                _ => (envelope, None, None),
            }
        }
        None => {
            let new = kms.generate_root_key(&attestation_document).await?;
            // Stored before the enclave sees the key, so a crash cannot lose the root key.
            store.put_root_blob(kms.key_id(), &new.ciphertext_blob)?;
            (new.ciphertext_for_recipient, None, None)
        }
    };
    let first_boot = key_check.is_none();
    let (genesis, audit_tail) = if first_boot {
        (
            Some(genesis.ok_or(UnsealError::NoGenesis)?.to_vec().into()),
            None,
        )
    } else {
        (None, store.audit_tail()?)
    };
    let answer = call(
        enclave,
        Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: key_check.map(ByteBuf::from),
            state: state.map(ByteBuf::from),
            genesis,
            audit_tail,
        }),
    )
    .await?;
    let Response::Unsealed {
        key_check,
        state,
        audit: boot,
    } = answer
    else {
        return Err(UnsealError::Unexpected("no Unsealed answer".into()));
    };
    store.put_unsealed(&key_check, state.seq, &state.sealed, &boot)?;
    audit.reset(store.audit_stored()?);
    tracing::info!(first_boot, key_check = %hex::encode(&key_check), "enclave unsealed");
    Ok(())
}

/// Watches the enclave forever, unsealing it whenever it needs its root key.
pub async fn supervise(
    enclave: Arc<EnclaveClient>,
    kms: Kms,
    store: Arc<dyn Store>,
    health: Arc<Health>,
    audit: Arc<AuditTracker>,
    genesis: Option<Vec<u8>>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = match call(&enclave, Request::Status).await {
            Ok(Response::Status(Phase::Ready)) => Ok(()),
            Ok(Response::Status(Phase::AwaitingRootKey)) => {
                tracing::info!("enclave awaits its root key; asking KMS");
                unseal_once(&enclave, &kms, store.as_ref(), &audit, genesis.as_deref()).await
            }
            Ok(other) => Err(UnsealError::Unexpected(format!("{other:?}"))),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                if !health.is_ready() {
                    tracing::info!("ready");
                }
                health.set(true, None);
                backoff = Duration::from_millis(500);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => {
                let hint = match &e {
                    UnsealError::Kms(k) if k.message.contains("AccessDenied") => {
                        " (does the KMS key policy's kms:RecipientAttestation PCR condition match this enclave's measurements?)"
                    }
                    _ => "",
                };
                tracing::error!(error = %e, "unseal failed{hint}; nothing can be signed until it succeeds");
                health.set(false, Some(format!("{e}{hint}")));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
