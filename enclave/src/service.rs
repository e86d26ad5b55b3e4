//! The enclave's request handler: an explicit phase machine, no I/O of its own beyond the
//! NSM. Every request is hostile input: sizes are checked first, errors are typed, and no
//! secret reaches an error message.
//!
//! | phase             | accepts                                                    |
//! |-------------------|------------------------------------------------------------|
//! | `AwaitingRootKey` | `BeginUnseal`, `CompleteUnseal`                            |
//! | `Loading`         | `SnapshotChunk` (later boots: the stored snapshot)         |
//! | `Replaying`       | `ReplayRecords`, `FinishBoot`                              |
//! | `Ready`           | `Call`, `DescribeKey`, `AuditBacklog`, `ReadSnapshot`      |
//!
//! `Status` and `GetAttestation` are answered in every phase. A boot that fails after the
//! root key was opened (a snapshot or record refused) goes back to `AwaitingRootKey`: the
//! proxy starts again with `BeginUnseal`.

use std::cell::RefCell;
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use base64::Engine as _;
use serde_bytes::ByteBuf;
use strongroom_api::ApiErrorCode;
use strongroom_attestation::{AttestationRequest, MAX_NONCE_LEN, Nsm};
use strongroom_envelope::RecipientKey;
use strongroom_identity::{
    AnswerSignature, Checkpoint, Head, IdentityKey, UserData, answer_request_digest,
};
use strongroom_protocol::messages::{
    AuditRecord, Call, CompleteUnseal, EnclaveError, ErrorCode, KEY_CHECK_LEN, KeyInfo,
    MAX_ENVELOPE_LEN, MAX_REPLAY_PAGE_BYTES, MAX_SEALED_LEN, MAX_SNAPSHOT_LEN, Phase, Request,
    Response, SNAPSHOT_CHUNK_LEN, SealedKey,
};
use zeroize::Zeroize;

use crate::apply::Applied;
use crate::audit::{AuditError, AuditLog};
use crate::boot::{IdentityTagKey, Replay};
use crate::call::{self, ApiError, Governed, GovernedLock, Host};
use crate::governance::Genesis;
use crate::keys::{KEY_OBJECT_VERSION, KeyRecord, check_label};
use crate::record::{BootEntry, Record};
use crate::rootkey::RootKey;
use crate::seal::{Curve, ObjectId, ObjectKind, Sealer};
use crate::state::{EnclaveState, STATE_OBJECT};

/// Live stamps the replay cache remembers, each until its expiry (at most 300 s): about
/// 52 MiB of enclave memory at most (26 bytes a stamp, `strongroom_auth::replay`), enough
/// for 6,990 stamped requests a second sustained with stamps of the full validity (more
/// with shorter ones); the memory follows the rate, flat under a steady one. A full cache
/// refuses rather than forgets.
pub const REPLAY_CAPACITY: usize = 1 << 21;

/// The one message for every failure to open KMS's envelope, so that a parent tampering
/// with it learns nothing from which step failed.
const UNSEAL_FAILED: &str = "the KMS envelope could not be opened; start again with BeginUnseal";

fn err(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error(EnclaveError::new(code, message))
}

/// What the root key gives: the sealing key, its check value, the identity-tag key.
struct Keys {
    sealer: Sealer,
    key_check: [u8; KEY_CHECK_LEN],
    tags: IdentityTagKey,
}

/// Later boot: the stored snapshot arriving in parts.
struct Loading {
    keys: Keys,
    replica: String,
    expected: usize,
    received: Vec<u8>,
}

/// The state being rebuilt from the snapshot and the records after it.
struct Booting {
    keys: Keys,
    /// The replica this enclave is (`""`: the single enclave).
    replica: String,
    replay: Replay,
    first_boot: bool,
}

/// Unsealed and serving.
struct Ready {
    keys: Keys,
    boot_time: u64,
    /// The sequence number of this boot's record.
    boot_seq: u64,
    /// This boot's identity: signs answers and audit entries.
    identity: IdentityKey,
    gov: GovernedLock,
    /// The snapshot being read by the proxy: its position and sealed bytes.
    snapshot: Mutex<Option<(u64, Vec<u8>)>>,
}

enum PhaseState {
    /// Waiting for KMS; holds the one ephemeral key of the outstanding challenge, if any.
    AwaitingRootKey {
        pending: Option<RecipientKey>,
    },
    Loading(Box<Loading>),
    Replaying(Box<Booting>),
    Ready(Box<Ready>),
}

/// The enclave: its NSM and its phase.
pub struct Enclave<N: Nsm> {
    nsm: N,
    phase: RwLock<PhaseState>,
    audit_backlog: usize,
}

impl<N: Nsm> std::fmt::Debug for Enclave<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enclave(..)")
    }
}

fn key_object(id: [u8; 16]) -> ObjectId {
    ObjectId {
        kind: ObjectKind::SigningKey,
        id,
        version: KEY_OBJECT_VERSION,
        curve: Curve::Secp256k1,
    }
}

/// Constant-time equality for check values.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn not_ready() -> Response {
    err(ErrorCode::NotReady, "the enclave is not unsealed yet")
}

fn wrong_phase(what: &str) -> Response {
    err(
        ErrorCode::WrongPhase,
        format!("{what} does not fit the enclave's phase"),
    )
}

impl<N: Nsm> Enclave<N> {
    /// A freshly booted enclave, waiting for its root key.
    pub fn new(nsm: N) -> Self {
        Self {
            nsm,
            phase: RwLock::new(PhaseState::AwaitingRootKey { pending: None }),
            audit_backlog: crate::audit::MAX_UNSTORED,
        }
    }

    /// The same enclave refusing new decisions once `limit` audit entries wait for the
    /// proxy to store them (default [`MAX_UNSTORED`](crate::audit::MAX_UNSTORED)).
    pub fn with_audit_backlog(mut self, limit: usize) -> Self {
        self.audit_backlog = limit;
        self
    }

    /// The enclave's phase.
    pub fn phase(&self) -> Phase {
        match self.phase.read().as_deref() {
            Ok(PhaseState::Ready(_)) => Phase::Ready,
            _ => Phase::AwaitingRootKey,
        }
    }

    /// Answers one request.
    pub fn handle(&self, request: Request) -> Response {
        match request {
            Request::Status => Response::Status(self.phase()),
            Request::BeginUnseal => self.begin_unseal(),
            Request::CompleteUnseal(c) => self.complete_unseal(c),
            Request::SnapshotChunk { bytes } => self.snapshot_chunk(&bytes),
            Request::ReplayRecords { records } => self.replay_records(&records),
            Request::FinishBoot => self.finish_boot(),
            Request::GetAttestation { nonce } => self.attestation(nonce),
            Request::DescribeKey { key_id, sealed } => {
                self.with_key(&key_id, &sealed, |k| Response::Key(k.info()))
            }
            Request::Call(call) => self.call(&call),
            Request::AuditBacklog { from } => self.audit_backlog(from),
            Request::ReadSnapshot { offset } => self.read_snapshot(offset),
            _ => err(ErrorCode::BadRequest, "unsupported request"),
        }
    }

    /// 32 bytes from the NSM mixed with 32 from the OS, so either source alone suffices.
    fn entropy(&self, out: &mut [u8; 32]) -> Result<(), EnclaveError> {
        let nsm = self
            .nsm
            .random(32)
            .map_err(|e| EnclaveError::new(ErrorCode::Internal, format!("NSM random: {e}")))?;
        let mut os = [0u8; 32];
        aws_lc_rs::rand::fill(&mut os)
            .map_err(|_| EnclaveError::new(ErrorCode::Internal, "OS random source failed"))?;
        for ((o, a), b) in out.iter_mut().zip(nsm.iter()).zip(os.iter()) {
            *o = a ^ b;
        }
        os.zeroize();
        Ok(())
    }

    fn begin_unseal(&self) -> Response {
        let Ok(mut phase) = self.phase.write() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        if matches!(*phase, PhaseState::Ready(_)) {
            return err(ErrorCode::WrongPhase, "already unsealed");
        }
        // Any earlier challenge's key, or half-done boot, is dropped here: one key, one
        // attempt.
        *phase = PhaseState::AwaitingRootKey { pending: None };
        let key = match RecipientKey::generate() {
            Ok(k) => k,
            Err(e) => return err(ErrorCode::Internal, format!("RSA key generation: {e}")),
        };
        let request = AttestationRequest {
            public_key: Some(key.public_key_spki_der().to_vec()),
            ..Default::default()
        };
        match self.nsm.attestation(&request) {
            Ok(document) => {
                *phase = PhaseState::AwaitingRootKey { pending: Some(key) };
                Response::UnsealChallenge {
                    attestation_document: document.into(),
                }
            }
            Err(e) => err(ErrorCode::Internal, format!("NSM attestation: {e}")),
        }
    }

    fn complete_unseal(&self, c: CompleteUnseal) -> Response {
        let Ok(mut phase) = self.phase.write() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let key = match &mut *phase {
            PhaseState::AwaitingRootKey { pending } => pending.take(),
            _ => return err(ErrorCode::WrongPhase, "already unsealed or booting"),
        };
        // From here the challenge key is gone whatever happens: a failed attempt means a new
        // attestation, so a parent cannot probe one RSA key with chosen ciphertexts.
        let Some(key) = key else {
            return err(
                ErrorCode::UnsealFailed,
                "no unseal challenge outstanding; send BeginUnseal",
            );
        };
        if c.ciphertext_for_recipient.len() > MAX_ENVELOPE_LEN {
            return err(ErrorCode::UnsealFailed, UNSEAL_FAILED);
        }
        let snapshot_len = match (&c.key_check, c.snapshot_len, &c.genesis) {
            (None, None, Some(_)) => None,
            (Some(k), Some(len), None) if k.len() == KEY_CHECK_LEN => match usize::try_from(len) {
                Ok(len) if (1..=MAX_SNAPSHOT_LEN).contains(&len) => Some(len),
                _ => {
                    return err(
                        ErrorCode::BadRequest,
                        format!("a snapshot is 1 to {MAX_SNAPSHOT_LEN} bytes"),
                    );
                }
            },
            (None, None, None) => {
                return err(
                    ErrorCode::BadRequest,
                    "a first boot needs a genesis document (admin set and first policy)",
                );
            }
            _ => {
                return err(
                    ErrorCode::BadRequest,
                    "key_check and snapshot_len must both be given (later boots) or a genesis \
                     document instead (first boot)",
                );
            }
        };
        let replica = c.replica.clone().unwrap_or_default();
        if !strongroom_identity::valid_replica_name(&replica) {
            return err(
                ErrorCode::BadRequest,
                format!(
                    "a replica name is up to {} ASCII letters, digits, '.', '_' or '-'",
                    strongroom_identity::MAX_REPLICA_NAME
                ),
            );
        }
        // The genesis document is checked before KMS's envelope is opened, so a bad one
        // costs the parent nothing but a new challenge.
        let genesis = match c.genesis.as_deref().map(|g| Genesis::from_json(g)) {
            Some(Ok(g)) => Some(g),
            Some(Err(e)) => return err(ErrorCode::BadRequest, format!("genesis: {e}")),
            None => None,
        };
        let Ok(mut plaintext) = key.open(&c.ciphertext_for_recipient) else {
            return err(ErrorCode::UnsealFailed, UNSEAL_FAILED);
        };
        let Some(root) = RootKey::from_bytes(&mut plaintext) else {
            return err(ErrorCode::UnsealFailed, UNSEAL_FAILED);
        };
        let working = root.working_keys();
        drop(root);
        // The parent states the check value it expects, so this comparison catches a
        // misconfigured KMS key early with a clear error; it is not a security check (the
        // parent chooses both sides). What refuses a root key the state was not sealed under
        // is opening the snapshot (below), before any of its plaintext is read; and whether
        // the root key is this deployment's at all only clients can tell, by pinning the
        // check value with the genesis (every attestation document carries both).
        if let Some(stored) = &c.key_check
            && !ct_eq(stored, &working.key_check)
        {
            return err(
                ErrorCode::WrongRootKey,
                "KMS released a root key whose check value differs from this deployment's",
            );
        }
        let Ok(sealer) = Sealer::new(&working.seal) else {
            return err(ErrorCode::Internal, "cannot initialise the sealing cipher");
        };
        let keys = Keys {
            sealer,
            key_check: working.key_check,
            tags: IdentityTagKey::new(&working.identity_tag),
        };
        match (genesis, snapshot_len) {
            (Some(genesis), _) => {
                *phase = PhaseState::Replaying(Box::new(Booting {
                    keys,
                    replica,
                    replay: Replay::new(EnclaveState::genesis(genesis)),
                    first_boot: true,
                }));
                Response::ReplayFrom { seq: 0 }
            }
            (None, Some(expected)) => {
                *phase = PhaseState::Loading(Box::new(Loading {
                    keys,
                    replica,
                    expected,
                    received: Vec::new(),
                }));
                Response::SnapshotReceived { received: 0 }
            }
            (None, None) => err(ErrorCode::Internal, "neither genesis nor snapshot"),
        }
    }

    fn snapshot_chunk(&self, bytes: &[u8]) -> Response {
        let Ok(mut phase) = self.phase.write() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Loading(loading) = &mut *phase else {
            return wrong_phase("a snapshot part");
        };
        if bytes.len() > SNAPSHOT_CHUNK_LEN
            || loading.received.len().saturating_add(bytes.len()) > loading.expected
        {
            *phase = PhaseState::AwaitingRootKey { pending: None };
            return err(
                ErrorCode::BadRequest,
                "snapshot part longer than announced; start again with BeginUnseal",
            );
        }
        loading.received.extend_from_slice(bytes);
        if loading.received.len() < loading.expected {
            return Response::SnapshotReceived {
                received: loading.received.len() as u64,
            };
        }
        let PhaseState::Loading(loading) =
            std::mem::replace(&mut *phase, PhaseState::AwaitingRootKey { pending: None })
        else {
            return err(ErrorCode::Internal, "phase changed under its lock");
        };
        let Loading {
            keys,
            received,
            replica,
            ..
        } = *loading;
        let state = match keys.sealer.open(&STATE_OBJECT, &received) {
            Ok(p) => match EnclaveState::from_plaintext(&p) {
                Ok(s) => s,
                Err(e) => {
                    // Authentic only to whoever holds the root key KMS released, which may be
                    // a key the parent created for this image with a state of its own
                    // choosing: the plaintext is parsed as hostile input (bounded, never
                    // trusted before it parses and its invariants hold), and refusing it
                    // here is either another release's format or such a forgery.
                    tracing::error!(error = %e, "sealed snapshot does not parse");
                    return err(
                        ErrorCode::BlobRejected,
                        "the snapshot opens under this root key but is not a state this \
                         release accepts; start again with BeginUnseal",
                    );
                }
            },
            Err(_) => {
                return err(
                    ErrorCode::BlobRejected,
                    "the snapshot is not authentic; start again with BeginUnseal",
                );
            }
        };
        if state.signers.is_empty() {
            return err(
                ErrorCode::BlobRejected,
                "the snapshot names no identity to check the records after it",
            );
        }
        let seq = state.audit_next;
        *phase = PhaseState::Replaying(Box::new(Booting {
            keys,
            replica,
            replay: Replay::new(state),
            first_boot: false,
        }));
        Response::ReplayFrom { seq }
    }

    fn replay_records(&self, records: &[AuditRecord]) -> Response {
        let Ok(mut phase) = self.phase.write() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Replaying(booting) = &mut *phase else {
            return wrong_phase("replayed records");
        };
        let bytes: usize = records.iter().map(|r| r.line.len()).sum();
        if bytes > MAX_REPLAY_PAGE_BYTES {
            return err(
                ErrorCode::BadRequest,
                format!("more than {MAX_REPLAY_PAGE_BYTES} bytes of records in one page"),
            );
        }
        if booting.first_boot && !records.is_empty() {
            return err(
                ErrorCode::BadRequest,
                "a first boot has no records to replay",
            );
        }
        let Booting { keys, replay, .. } = &mut **booting;
        match replay.push(records, &keys.tags) {
            Ok(()) => Response::ReplayFrom {
                seq: replay.next_seq(),
            },
            Err(e) => {
                tracing::error!(error = %e, "replay refused a record");
                *phase = PhaseState::AwaitingRootKey { pending: None };
                err(
                    ErrorCode::BlobRejected,
                    format!("{e}; start again with BeginUnseal"),
                )
            }
        }
    }

    fn finish_boot(&self) -> Response {
        let Ok(mut phase) = self.phase.write() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        if !matches!(*phase, PhaseState::Replaying(_)) {
            return wrong_phase("FinishBoot");
        }
        let PhaseState::Replaying(booting) =
            std::mem::replace(&mut *phase, PhaseState::AwaitingRootKey { pending: None })
        else {
            return err(ErrorCode::Internal, "phase changed under its lock");
        };
        let Booting {
            keys,
            replica,
            replay,
            first_boot,
        } = *booting;
        let (mut state, resumed) = replay.finish();
        let identity = match self.identity_key() {
            Ok(k) => k,
            Err(e) => return Response::Error(e),
        };
        let mut log =
            AuditLog::new(state.audit_next, state.audit_head).with_limit(self.audit_backlog);
        let boot = match self.boot_record(
            &identity,
            &state,
            &keys,
            replica,
            (!first_boot).then_some(resumed),
        ) {
            Ok(r) => r,
            Err(e) => return Response::Error(e),
        };
        let record = match boot
            .to_fields()
            .map_err(|e| e.to_string())
            .and_then(|(kind, fields)| {
                log.prepare(&identity, unix_now(), kind, fields)
                    .map_err(|e| e.to_string())
            })
            .and_then(|prepared| {
                state
                    .apply(&boot, prepared.position())
                    .map(|_| log.commit(prepared))
                    .map_err(|e| e.to_string())
            }) {
            Ok(r) => r,
            Err(e) => return err(ErrorCode::Internal, format!("boot record: {e}")),
        };
        tracing::info!(
            first_boot,
            identity = %identity.public(),
            audit_seq = record.seq,
            "unsealed"
        );
        let key_check = keys.key_check;
        *phase = PhaseState::Ready(Box::new(Ready {
            keys,
            boot_time: unix_now(),
            boot_seq: record.seq,
            identity,
            gov: Mutex::new(Governed::new(state, log, REPLAY_CAPACITY)),
            snapshot: Mutex::new(None),
        }));
        Response::Unsealed {
            key_check: key_check.to_vec().into(),
            audit: vec![record],
        }
    }

    /// A fresh identity key from the mixed entropy.
    fn identity_key(&self) -> Result<IdentityKey, EnclaveError> {
        let mut seed = [0u8; 32];
        self.entropy(&mut seed)?;
        let key = IdentityKey::from_seed(&seed);
        seed.zeroize();
        Ok(key)
    }

    /// The boot's record: the new identity with its tag, and an attestation document
    /// binding it (user data) to this point of the chain (nonce = the previous entry's
    /// hash) and to the measured image (PCRs), so auditors can follow the hand-over from
    /// one boot's identity to the next.
    fn boot_record(
        &self,
        identity: &IdentityKey,
        state: &EnclaveState,
        keys: &Keys,
        replica: String,
        resumed: Option<crate::record::Resumed>,
    ) -> Result<Record, EnclaveError> {
        let user_data = UserData {
            key_check: keys.key_check,
            genesis: state.genesis,
            admins: state.admins.digest(),
            policy: state.engine.policy().digest(),
            identity: identity.public(),
            boot_seq: state.audit_next,
        };
        let request = AttestationRequest {
            nonce: Some(state.audit_head.to_vec()),
            user_data: Some(user_data.encode()),
            ..Default::default()
        };
        let document = self
            .nsm
            .attestation(&request)
            .map_err(|e| EnclaveError::new(ErrorCode::Internal, format!("NSM attestation: {e}")))?;
        let public = identity.public().0;
        Ok(Record::Boot(BootEntry {
            identity: identity.public().to_string(),
            attestation: base64::engine::general_purpose::STANDARD.encode(&document),
            first_boot: resumed.is_none(),
            replica,
            identity_tag: Some(hex::encode(keys.tags.tag(&public))),
            resumed,
        }))
    }

    fn audit_backlog(&self, from: u64) -> Response {
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return not_ready();
        };
        match ready.gov.lock() {
            Ok(g) => Response::AuditEntries(g.audit.backlog(from)),
            Err(_) => err(ErrorCode::Internal, "state lock poisoned"),
        }
    }

    /// Offset 0 seals a snapshot of the state as it is now and keeps it for the reads of
    /// its other parts.
    fn read_snapshot(&self, offset: u64) -> Response {
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return not_ready();
        };
        let Ok(mut kept) = ready.snapshot.lock() else {
            return err(ErrorCode::Internal, "snapshot lock poisoned");
        };
        if offset == 0 {
            let sealed = match ready.gov.lock() {
                Ok(g) => seal_state(&ready.keys.sealer, &g.state).map(|s| (g.state.audit_next, s)),
                Err(_) => return err(ErrorCode::Internal, "state lock poisoned"),
            };
            match sealed {
                Ok(s) => *kept = Some(s),
                Err(e) => return Response::Error(e),
            }
        }
        let Some((seq, bytes)) = kept.as_ref() else {
            return err(ErrorCode::BadRequest, "read a snapshot from offset 0 first");
        };
        let Some(start) = usize::try_from(offset).ok().filter(|o| *o < bytes.len()) else {
            return err(ErrorCode::BadRequest, "offset past the snapshot's end");
        };
        let end = bytes.len().min(start.saturating_add(SNAPSHOT_CHUNK_LEN));
        Response::Snapshot {
            seq: *seq,
            total_len: bytes.len() as u64,
            offset,
            bytes: bytes[start..end].to_vec().into(),
        }
    }

    fn attestation(&self, nonce: Option<ByteBuf>) -> Response {
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
            return err(
                ErrorCode::BadRequest,
                format!("nonce longer than {MAX_NONCE_LEN} bytes"),
            );
        }
        let request = AttestationRequest {
            nonce: nonce.map(ByteBuf::into_vec),
            user_data: self.user_data(),
            ..Default::default()
        };
        match self.nsm.attestation(&request) {
            Ok(document) => Response::Attestation {
                document: document.into(),
            },
            Err(e) => err(ErrorCode::Internal, format!("NSM attestation: {e}")),
        }
    }

    /// Authenticates a key blob and runs `f` on the key.
    fn with_key(
        &self,
        key_id: &str,
        sealed: &[u8],
        f: impl FnOnce(&KeyRecord) -> Response,
    ) -> Response {
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return not_ready();
        };
        match open_key(ready, key_id, sealed) {
            Ok(record) => f(&record),
            Err(e) => Response::Error(e),
        }
    }

    fn call(&self, call: &Call) -> Response {
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return Response::Answer(
                ApiError::new(ApiErrorCode::NotReady, "the enclave is not unsealed yet")
                    .into_answer(),
            );
        };
        let host = CallHost {
            enclave: self,
            ready,
            request_digest: answer_request_digest(
                &call.method,
                &call.path,
                &call.body,
                call.stamp.as_deref(),
            ),
            trail: RefCell::new(Vec::new()),
        };
        let mut answer = call::handle(&host, &ready.gov, call);
        answer.effects.audit = host.trail.into_inner();
        // The head now: at or after this call's own records.
        let head = match ready.gov.lock() {
            Ok(g) => {
                let (next, hash) = g.audit.head();
                Head {
                    seq: next.saturating_sub(1),
                    hash,
                }
            }
            Err(_) => {
                return Response::Answer(ApiError::internal("state lock poisoned").into_answer());
            }
        };
        let signature = AnswerSignature::sign(
            &ready.identity,
            &host.request_digest,
            answer.status,
            unix_now(),
            head,
            &answer.body,
        );
        answer.signature = Some(signature.to_header());
        Response::Answer(answer)
    }

    fn user_data(&self) -> Option<Vec<u8>> {
        let phase = self.phase.read().ok()?;
        let PhaseState::Ready(ready) = &*phase else {
            return None;
        };
        let g = ready.gov.lock().ok()?;
        Some(
            UserData {
                key_check: ready.keys.key_check,
                genesis: g.state.genesis,
                admins: g.state.admins.digest(),
                policy: g.state.engine.policy().digest(),
                identity: ready.identity.public(),
                boot_seq: ready.boot_seq,
            }
            .encode(),
        )
    }

    /// The current root-key check value, once unsealed.
    pub fn key_check(&self) -> Option<[u8; KEY_CHECK_LEN]> {
        match self.phase.read().as_deref() {
            Ok(PhaseState::Ready(r)) => Some(r.keys.key_check),
            _ => None,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn seal_state(sealer: &Sealer, state: &EnclaveState) -> Result<Vec<u8>, EnclaveError> {
    let mut nonce = [0u8; 12];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| EnclaveError::new(ErrorCode::Internal, "OS random source failed"))?;
    let plaintext = state
        .to_plaintext()
        .map_err(|e| EnclaveError::new(ErrorCode::Internal, e.to_string()))?;
    if plaintext.len() + 64 > MAX_SNAPSHOT_LEN {
        return Err(EnclaveError::new(
            ErrorCode::Internal,
            format!(
                "the state would exceed {MAX_SNAPSHOT_LEN} bytes sealed; no snapshot (the log \
                 still holds every change)"
            ),
        ));
    }
    sealer
        .seal(&STATE_OBJECT, &plaintext, nonce)
        .map_err(|_| EnclaveError::new(ErrorCode::Internal, "sealing the state failed"))
}

/// The enclave's side of a call: randomness, keys, the log.
struct CallHost<'a, N: Nsm> {
    enclave: &'a Enclave<N>,
    ready: &'a Ready,
    request_digest: [u8; 32],
    /// The audit entries this call appended, for the answer's effects.
    trail: RefCell<Vec<AuditRecord>>,
}

impl<N: Nsm> Host for CallHost<'_, N> {
    fn now(&self) -> u64 {
        unix_now()
    }

    fn boot_time(&self) -> u64 {
        self.ready.boot_time
    }

    fn request_digest(&self) -> [u8; 32] {
        self.request_digest
    }

    fn append(&self, g: &mut Governed, record: Record, time: u64) -> Result<Applied, ApiError> {
        let (kind, fields) = record.to_fields()?;
        let prepared = g
            .audit
            .prepare(&self.ready.identity, time, kind, fields)
            .map_err(|e| match e {
                AuditError::Backlog(_) => ApiError::new(ApiErrorCode::AuditBacklog, e.to_string()),
                AuditError::Entry(_) => ApiError::internal(e.to_string()),
            })?;
        let applied = g.state.apply(&record, prepared.position())?;
        let entry = g.audit.commit(prepared);
        if applied == Applied::Governance {
            g.rebuild_keys();
        }
        self.trail.borrow_mut().push(entry);
        Ok(applied)
    }

    fn checkpoint(&self, g: &Governed) -> Option<Checkpoint> {
        g.audit.checkpoint(&self.ready.identity, unix_now())
    }

    fn random(&self, out: &mut [u8]) -> Result<(), ApiError> {
        aws_lc_rs::rand::fill(out).map_err(|_| ApiError::internal("OS random source failed"))
    }

    fn open_key(&self, key_id: &str, call: &Call) -> Result<KeyRecord, ApiError> {
        let sealed = call
            .key
            .as_ref()
            .filter(|k| k.id == key_id)
            .ok_or_else(|| ApiError::not_found(format!("no key {key_id:?}")))?;
        Ok(open_key(self.ready, key_id, &sealed.sealed)?)
    }

    fn open_sealed(&self, key: &SealedKey) -> Result<KeyRecord, ApiError> {
        Ok(open_key(self.ready, &key.id, &key.sealed)?)
    }

    fn create_key(&self, label: String) -> Result<(KeyInfo, Vec<u8>), ApiError> {
        if check_label(&label).is_err() {
            return Err(ApiError::bad_request(
                "label must be 1 to 128 bytes of UTF-8 without control characters",
            ));
        }
        let mut id = [0u8; 16];
        let mut nonce = [0u8; 12];
        self.random(&mut id)?;
        self.random(&mut nonce)?;
        let mut entropy_error = None;
        let record = KeyRecord::generate(id, label, unix_now(), |out| {
            self.enclave.entropy(out).map_err(|e| {
                entropy_error = Some(e);
                crate::keys::KeyError::Entropy
            })
        });
        let record = match (record, entropy_error) {
            (Ok(r), _) => r,
            (Err(_), Some(e)) => return Err(e.into()),
            (Err(e), None) => return Err(ApiError::internal(e.to_string())),
        };
        let sealed = self
            .ready
            .keys
            .sealer
            .seal(&key_object(id), &record.to_plaintext(), nonce)
            .map_err(|_| ApiError::internal("sealing the key failed"))?;
        tracing::info!(key_id = %hex::encode(id), "key created");
        Ok((record.info(), sealed))
    }
}

/// Checks a key blob: size, the requested key's, not destroyed, authentic, well-formed.
fn open_key(ready: &Ready, key_id: &str, sealed: &[u8]) -> Result<KeyRecord, EnclaveError> {
    if sealed.len() > MAX_SEALED_LEN {
        return Err(EnclaveError::new(
            ErrorCode::BadRequest,
            format!("sealed blob larger than {MAX_SEALED_LEN} bytes"),
        ));
    }
    let rejected =
        || EnclaveError::new(ErrorCode::BlobRejected, "sealed key blob is not authentic");
    let id = Sealer::peek_id(sealed).ok_or_else(rejected)?;
    // The id in the header is authenticated by the tag below (it is the associated data),
    // so a blob filed under another key's id by the parent is refused here or there.
    if hex::encode(id) != key_id {
        return Err(EnclaveError::new(
            ErrorCode::BlobRejected,
            "sealed blob belongs to another key than the one requested",
        ));
    }
    let destroyed = ready
        .gov
        .lock()
        .map_err(|_| EnclaveError::new(ErrorCode::Internal, "state lock poisoned"))?
        .state
        .destroyed
        .contains(&id);
    if destroyed {
        return Err(EnclaveError::new(
            ErrorCode::KeyDestroyed,
            format!("key {} was destroyed", hex::encode(id)),
        ));
    }
    let plaintext = ready
        .keys
        .sealer
        .open(&key_object(id), sealed)
        .map_err(|_| rejected())?;
    KeyRecord::from_plaintext(id, &plaintext).map_err(|_| rejected())
}
