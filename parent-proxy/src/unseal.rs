//! Keeps the enclave unsealed: whenever it reports `AwaitingRootKey` (first start, or a
//! restarted enclave), run the exchange with KMS, hand back the newest snapshot and the
//! stored records after it, and store the boot record; on failure, say why on
//! `/v1/health` and in the log, and try again with backoff. While the enclave serves, take
//! a snapshot after every [`SNAPSHOT_EVERY`] stored records, so a boot replays few.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::AuditTracker;
use serde_bytes::ByteBuf;
use strongroom_protocol::messages::{
    AuditRecord, CompleteUnseal, EnclaveError, MAX_REPLAY_PAGE_BYTES, Phase, Request, Response,
    SNAPSHOT_CHUNK_LEN, SNAPSHOT_EVERY,
};

use crate::enclave_client::{EnclaveCallError, EnclaveClient};
use crate::kms::{Kms, KmsError};
use crate::replica::Replica;
use strongroom_store::{Store, StoreError};

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

/// One exchange with the enclave; its refusal is an error.
pub(crate) async fn call(
    enclave: &EnclaveClient,
    request: Request,
) -> Result<Response, UnsealError> {
    match enclave.call(&request).await? {
        Response::Error(e) => Err(UnsealError::Refused(e)),
        other => Ok(other),
    }
}

/// Records per database read while replaying the log into a booting enclave.
const REPLAY_BATCH: usize = 1000;

/// How often a replica's boot record may lose its place to other replicas' records before
/// the boot starts over.
const MAX_BOOT_ATTEMPTS: u32 = 100;

/// One unseal exchange: challenge, KMS, completion, the snapshot and the records after
/// it, storage of the boot record, then a fresh snapshot.
pub async fn unseal_once(
    enclave: &EnclaveClient,
    kms: &Kms,
    store: &dyn Store,
    audit: &AuditTracker,
    genesis: Option<&[u8]>,
    replica: Option<&Replica>,
) -> Result<(), UnsealError> {
    let Response::UnsealChallenge {
        attestation_document,
    } = call(enclave, Request::BeginUnseal).await?
    else {
        return Err(UnsealError::Unexpected(
            "no challenge to BeginUnseal".into(),
        ));
    };
    let (envelope, key_check, snapshot) = match store.root().await? {
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
            match (root.key_check, root.snapshot) {
                (Some(k), Some(s)) => (envelope, Some(k), Some(s)),
                // A first boot that stopped before its answer was stored: still a first boot.
                _ => (envelope, None, None),
            }
        }
        None => {
            let new = kms.generate_root_key(&attestation_document).await?;
            // Stored before the enclave sees the key, so a crash cannot lose the root key.
            store
                .put_root_blob(kms.key_id(), &new.ciphertext_blob)
                .await?;
            (new.ciphertext_for_recipient, None, None)
        }
    };
    let first_boot = key_check.is_none();
    let genesis = if first_boot {
        Some(genesis.ok_or(UnsealError::NoGenesis)?.to_vec().into())
    } else {
        None
    };
    let mut answer = call(
        enclave,
        Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: key_check.map(ByteBuf::from),
            snapshot_len: snapshot.as_ref().map(|s| s.len() as u64),
            genesis,
            replica: replica.map(|r| r.name.clone()),
        }),
    )
    .await?;
    for part in snapshot
        .as_deref()
        .unwrap_or_default()
        .chunks(SNAPSHOT_CHUNK_LEN)
    {
        if !matches!(answer, Response::SnapshotReceived { .. }) {
            break;
        }
        answer = call(
            enclave,
            Request::SnapshotChunk {
                bytes: part.to_vec().into(),
            },
        )
        .await?;
    }
    let Response::ReplayFrom { seq } = answer else {
        return Err(UnsealError::Unexpected(format!(
            "expected ReplayFrom after the snapshot, got {answer:?}"
        )));
    };
    let mut next = send_records(enclave, store, seq, false).await?;
    let mut attempts = 0;
    let key_check = loop {
        match call(enclave, Request::FinishBoot).await? {
            Response::Unsealed {
                key_check,
                audit: boot,
            } => {
                store.put_unsealed(&key_check, &boot).await?;
                break key_check;
            }
            // A replica's boot record goes out for appending first, and if another
            // replica appended there meanwhile, the records before it are replayed and the
            // boot record made again after them.
            Response::Append(effects) => {
                let at = effects.audit.first().map_or(next, |r| r.seq);
                match store.put_audit(&effects.audit).await {
                    Ok(()) => {
                        let Response::Unsealed { key_check, .. } =
                            call(enclave, Request::Appended { seq: at }).await?
                        else {
                            return Err(UnsealError::Unexpected("no Unsealed answer".into()));
                        };
                        store.put_unsealed(&key_check, &[]).await?;
                        break key_check;
                    }
                    Err(StoreError::AuditConflict { .. }) if attempts < MAX_BOOT_ATTEMPTS => {
                        attempts += 1;
                        next = send_records(enclave, store, next, false).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            other => {
                return Err(UnsealError::Unexpected(format!(
                    "expected Unsealed or Append after FinishBoot, got {other:?}"
                )));
            }
        }
    };
    let replayed = next - seq;
    audit.reset(store.audit_stored().await?);
    if let Some(replica) = replica {
        replica.booted(next + 1);
    }
    tracing::info!(
        first_boot,
        replayed,
        from = seq,
        key_check = %hex::encode(&key_check),
        "enclave unsealed"
    );
    take_snapshot(enclave, store).await?;
    Ok(())
}

/// Sends the stored records from `from` on, in pages that fit a frame, as `ReplayRecords`
/// (boot) or `CatchUp` (a replica); returns the enclave's next sequence number.
pub async fn send_records(
    enclave: &EnclaveClient,
    store: &dyn Store,
    from: u64,
    catch_up: bool,
) -> Result<u64, UnsealError> {
    let mut next = from;
    loop {
        let rows = store.audit_range(next, REPLAY_BATCH).await?;
        let mut page: Vec<AuditRecord> = Vec::new();
        let mut bytes = 0usize;
        for (seq, line) in rows {
            // Stop at a gap: the records after it cannot follow.
            if seq != next + page.len() as u64 {
                break;
            }
            if !page.is_empty() && bytes + line.len() > MAX_REPLAY_PAGE_BYTES {
                break;
            }
            bytes += line.len();
            page.push(AuditRecord { seq, line });
        }
        if page.is_empty() {
            return Ok(next);
        }
        let sent = page.len() as u64;
        let request = if catch_up {
            Request::CatchUp { records: page }
        } else {
            Request::ReplayRecords { records: page }
        };
        match call(enclave, request).await? {
            Response::ReplayFrom { seq } | Response::CaughtUp { next_seq: seq }
                if seq == next + sent =>
            {
                next = seq
            }
            other => {
                return Err(UnsealError::Unexpected(format!(
                    "expected the enclave at {} after the records, got {other:?}",
                    next + sent
                )));
            }
        }
    }
}

/// Reads a snapshot of the enclave's state in parts and stores it (if it is newer than the
/// stored one); returns its position.
pub async fn take_snapshot(enclave: &EnclaveClient, store: &dyn Store) -> Result<u64, UnsealError> {
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        let offset = bytes.len() as u64;
        match call(enclave, Request::ReadSnapshot { offset }).await? {
            Response::Snapshot {
                seq,
                total_len,
                offset: at,
                bytes: part,
            } if at == offset && !part.is_empty() => {
                bytes.extend_from_slice(&part);
                if bytes.len() as u64 >= total_len {
                    store.put_snapshot(seq, &bytes).await?;
                    tracing::info!(seq, bytes = bytes.len(), "snapshot stored");
                    return Ok(seq);
                }
            }
            other => {
                return Err(UnsealError::Unexpected(format!(
                    "expected a snapshot part at {offset}, got {other:?}"
                )));
            }
        }
    }
}

/// Watches the enclave forever, unsealing it whenever it needs its root key.
pub async fn supervise(
    enclave: Arc<EnclaveClient>,
    kms: Kms,
    store: Arc<dyn Store>,
    health: Arc<Health>,
    audit: Arc<AuditTracker>,
    genesis: Option<Vec<u8>>,
    replica: Option<Arc<Replica>>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let outcome = match call(&enclave, Request::Status).await {
            Ok(Response::Status(Phase::Ready)) => {
                let due = store.root().await.ok().flatten().is_some_and(|r| {
                    let stored = replica.as_ref().map_or(audit.stored(), |r| r.next());
                    stored >= r.snapshot_seq + SNAPSHOT_EVERY
                });
                if due && let Err(e) = take_snapshot(&enclave, store.as_ref()).await {
                    // Only the next boot's replay grows; nothing is lost.
                    tracing::warn!(error = %e, "snapshot failed; will try again");
                }
                Ok(())
            }
            Ok(Response::Status(Phase::AwaitingRootKey)) => {
                tracing::info!("enclave awaits its root key; asking KMS");
                unseal_once(
                    &enclave,
                    &kms,
                    store.as_ref(),
                    &audit,
                    genesis.as_deref(),
                    replica.as_deref(),
                )
                .await
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
