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

use std::cell::Cell;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
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
    Answer, AuditRecord, Call, CompleteUnseal, Effects, EnclaveError, ErrorCode, KEY_CHECK_LEN,
    KeyInfo, MAX_ENVELOPE_LEN, MAX_REPLAY_PAGE_BYTES, MAX_SEALED_LEN, MAX_SNAPSHOT_LEN, Phase,
    Request, Response, SNAPSHOT_CHUNK_LEN, SealedKey,
};
use zeroize::Zeroize;

use crate::apply::Applied;
use crate::audit::{AuditError, AuditLog};
use crate::boot::{IdentityTagKey, Replay};
use crate::call::{self, ApiError, Governed, GovernedLock, Host};
use crate::governance::Genesis;
use crate::keys::{KEY_OBJECT_VERSION, KeyRecord, check_label};
use crate::record::{BootEntry, Record};
use crate::replica::{Awaiting, DECIDED_ELSEWHERE, Pending};
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
    replica: Option<String>,
    expected: usize,
    received: Vec<u8>,
}

/// The state being rebuilt from the snapshot and the records after it.
struct Booting {
    keys: Keys,
    /// The replica this enclave is (`None`: the deployment's single enclave).
    replica: Option<String>,
    replay: Replay,
    first_boot: bool,
    /// A replica's identity for this boot, made at its first `FinishBoot`.
    identity: Option<IdentityKey>,
    /// A replica's boot record, out for appending.
    prepared: Option<PreparedBoot>,
}

/// A replica's boot record, prepared at the state's head and out for appending.
struct PreparedBoot {
    record: Record,
    entry: AuditRecord,
    position: crate::record::Position,
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
    /// One of several replicas sharing a log: decisions are released only once their
    /// records are appended ([`crate::replica`]).
    replicated: bool,
    /// Its name (in the user data of its attestation documents).
    replica: strongroom_identity::ReplicaName,
    /// A replica's request between decision and release; held while a call is decided.
    pending: Mutex<Option<Pending>>,
    /// A replica whose identity another boot of its name replaced: it serves no more and
    /// boots again.
    retired: AtomicBool,
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
            Ok(PhaseState::Ready(r)) if !r.retired.load(Ordering::SeqCst) => Phase::Ready,
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
            Request::Appended { seq } => self.appended(seq),
            Request::CatchUp { records } => self.catch_up(&records),
            Request::Redecide => self.redecide(),
            Request::Abandon => self.abandon(),
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
        if matches!(&*phase, PhaseState::Ready(r) if !r.retired.load(Ordering::SeqCst)) {
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
        let replica = c.replica.clone();
        if !replica
            .as_deref()
            .is_none_or(strongroom_identity::valid_replica_name)
        {
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
                    identity: None,
                    prepared: None,
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
            identity: None,
            prepared: None,
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
        let Booting {
            keys,
            replay,
            prepared,
            ..
        } = &mut **booting;
        // A replica's boot record lost its place to the records now arriving.
        *prepared = None;
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
        let PhaseState::Replaying(booting) = &mut *phase else {
            return wrong_phase("FinishBoot");
        };
        if booting.replica.is_some() {
            return self.prepare_replica_boot(booting);
        }
        let PhaseState::Replaying(booting) =
            std::mem::replace(&mut *phase, PhaseState::AwaitingRootKey { pending: None })
        else {
            return err(ErrorCode::Internal, "phase changed under its lock");
        };
        let Booting {
            keys,
            replay,
            first_boot,
            ..
        } = *booting;
        let (mut state, resumed) = replay.finish();
        let identity = match self.identity_key() {
            Ok(k) => k,
            Err(e) => return Response::Error(e),
        };
        let resumed = (!first_boot).then_some(resumed);
        let (boot, entry, position) =
            match self.boot_entry(&identity, &state, &keys, String::new(), resumed) {
                Ok(b) => b,
                Err(e) => return Response::Error(e),
            };
        if let Err(e) = state.apply(&boot, position) {
            return err(ErrorCode::Internal, format!("boot record: {e}"));
        }
        *phase = self.ready(keys, identity, state, None);
        self.unsealed(&phase, entry)
    }

    /// A replica's `FinishBoot`: its boot record at the head of what it replayed, out for
    /// appending (the state takes it on `Appended`; records that took its place arrive as
    /// `ReplayRecords`, and the next `FinishBoot` makes it again there).
    fn prepare_replica_boot(&self, booting: &mut Booting) -> Response {
        let identity = match booting.identity.take() {
            Some(k) => k,
            None => match self.identity_key() {
                Ok(k) => k,
                Err(e) => return Response::Error(e),
            },
        };
        let resumed = (!booting.first_boot).then(|| booting.replay.resumed());
        let replica = booting.replica.clone().unwrap_or_default();
        let made = self.boot_entry(
            &identity,
            booting.replay.state(),
            &booting.keys,
            replica,
            resumed,
        );
        booting.identity = Some(identity);
        match made {
            Ok((record, entry, position)) => {
                booting.prepared = Some(PreparedBoot {
                    record,
                    entry: entry.clone(),
                    position,
                });
                Response::Append(Effects {
                    audit: vec![entry],
                    ..Effects::default()
                })
            }
            Err(e) => Response::Error(e),
        }
    }

    /// A replica's boot record is stored: it serves from here.
    fn finish_replica_boot(&self, phase: &mut PhaseState, seq: u64) -> Response {
        let PhaseState::Replaying(booting) = &*phase else {
            return wrong_phase("Appended");
        };
        if booting.prepared.as_ref().is_none_or(|p| p.entry.seq != seq) {
            return err(
                ErrorCode::WrongPhase,
                format!("no boot record {seq} awaits its append"),
            );
        }
        let PhaseState::Replaying(booting) =
            std::mem::replace(phase, PhaseState::AwaitingRootKey { pending: None })
        else {
            return err(ErrorCode::Internal, "phase changed under its lock");
        };
        let Booting {
            keys,
            replica,
            replay,
            identity,
            prepared,
            ..
        } = *booting;
        let (Some(identity), Some(prepared)) = (identity, prepared) else {
            return err(ErrorCode::Internal, "a prepared boot without its identity");
        };
        let (mut state, _) = replay.finish();
        if let Err(e) = state.apply(&prepared.record, prepared.position) {
            return err(ErrorCode::Internal, format!("boot record: {e}"));
        }
        *phase = self.ready(keys, identity, state, replica);
        self.unsealed(phase, prepared.entry)
    }

    /// The serving phase after a boot record at the state's head was applied.
    fn ready(
        &self,
        keys: Keys,
        identity: IdentityKey,
        state: EnclaveState,
        replica: Option<String>,
    ) -> PhaseState {
        let log = AuditLog::new(state.audit_next, state.audit_head).with_limit(self.audit_backlog);
        let boot_seq = state.audit_next.saturating_sub(1);
        let mut gov = Governed::new(state, log, REPLAY_CAPACITY);
        if replica.is_some() {
            gov = gov.replica(REPLAY_CAPACITY);
        }
        PhaseState::Ready(Box::new(Ready {
            keys,
            boot_time: unix_now(),
            boot_seq,
            identity,
            gov: Mutex::new(gov),
            snapshot: Mutex::new(None),
            replicated: replica.is_some(),
            replica: replica
                .as_deref()
                .and_then(strongroom_identity::ReplicaName::new)
                .unwrap_or_default(),
            pending: Mutex::new(None),
            retired: AtomicBool::new(false),
        }))
    }

    /// `Unsealed`, with the boot's record (which a single enclave's proxy stores now; a
    /// replica's is stored already).
    fn unsealed(&self, phase: &PhaseState, entry: AuditRecord) -> Response {
        let PhaseState::Ready(ready) = phase else {
            return err(ErrorCode::Internal, "not ready after the boot");
        };
        tracing::info!(
            identity = %ready.identity.public(),
            audit_seq = entry.seq,
            replicated = ready.replicated,
            "unsealed"
        );
        Response::Unsealed {
            key_check: ready.keys.key_check.to_vec().into(),
            audit: vec![entry],
        }
    }

    /// The boot's record at the head of `state`, signed, with its position (not applied).
    fn boot_entry(
        &self,
        identity: &IdentityKey,
        state: &EnclaveState,
        keys: &Keys,
        replica: String,
        resumed: Option<crate::record::Resumed>,
    ) -> Result<(Record, AuditRecord, crate::record::Position), EnclaveError> {
        let boot = self.boot_record(identity, state, keys, replica, resumed)?;
        let mut log = AuditLog::new(state.audit_next, state.audit_head);
        let prepared = boot
            .to_fields()
            .map_err(|e| e.to_string())
            .and_then(|(kind, fields)| {
                log.prepare(identity, unix_now(), kind, fields)
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| EnclaveError::new(ErrorCode::Internal, format!("boot record: {e}")))?;
        let position = prepared.position();
        let entry = log.commit(prepared);
        Ok((boot, entry, position))
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
            replica: strongroom_identity::ReplicaName::new(&replica).unwrap_or_default(),
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
        if !ready.replicated {
            let host = CallHost::new(self, ready, call, false);
            let mut answer = call::handle(&host, &ready.gov, call);
            answer.effects.audit = host.trail.into_inner();
            return self.release(ready, &host.request_digest, answer);
        }
        if ready.retired.load(Ordering::SeqCst) {
            return Response::Answer(retired().into_answer());
        }
        let Ok(mut slot) = ready.pending.lock() else {
            return err(ErrorCode::Internal, "decision lock poisoned");
        };
        let stamped =
            strongroom_api::Route::parse(&call.method, &call.path).is_some_and(|r| r.needs_stamp());
        if stamped && slot.is_some() {
            return Response::Answer(
                ApiError::new(
                    ApiErrorCode::NotReady,
                    "another decision of this replica awaits its append; try again",
                )
                .into_answer(),
            );
        }
        self.decide(ready, &mut slot, call.clone(), false)
    }

    /// A replica decides `call` on its state. Without records the answer is released
    /// now; with records, the state returns to what it was, the records go out for
    /// appending and the rest waits in `slot` ([`crate::replica`]).
    fn decide(
        &self,
        ready: &Ready,
        slot: &mut Option<Pending>,
        call: Call,
        redeciding: bool,
    ) -> Response {
        let before = match ready.gov.lock() {
            Ok(g) => (g.state.clone(), g.audit.clone()),
            Err(_) => return err(ErrorCode::Internal, "state lock poisoned"),
        };
        let host = CallHost::new(self, ready, &call, redeciding);
        let mut answer = call::handle(&host, &ready.gov, &call);
        let trail = host.trail.into_inner();
        let Some(first_seq) = trail.first().map(|r| r.seq) else {
            return self.release(ready, &host.request_digest, answer);
        };
        let (state, audit) = match ready.gov.lock() {
            Ok(mut g) => {
                let state = std::mem::replace(&mut g.state, before.0);
                let audit = std::mem::replace(&mut g.audit, before.1);
                if host.governance.get() {
                    g.rebuild_keys();
                }
                (state, audit)
            }
            Err(_) => return err(ErrorCode::Internal, "state lock poisoned"),
        };
        answer.effects.audit = trail;
        let effects = std::mem::take(&mut answer.effects);
        *slot = Some(Pending::Awaiting(Box::new(Awaiting {
            call,
            state,
            audit,
            governance: host.governance.get(),
            answer,
            request_digest: host.request_digest,
            first_seq,
        })));
        Response::Append(effects)
    }

    /// Signs an answer, naming the log's head now (at or after the call's own records).
    fn release(&self, ready: &Ready, request_digest: &[u8; 32], mut answer: Answer) -> Response {
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
            request_digest,
            answer.status,
            unix_now(),
            head,
            &answer.body,
        );
        answer.signature = Some(signature.to_header());
        Response::Answer(answer)
    }

    /// `Appended`: a replica's boot record, or its decision's records, are stored.
    fn appended(&self, seq: u64) -> Response {
        let Ok(mut phase) = self.phase.write() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let ready = match &*phase {
            PhaseState::Replaying(_) => return self.finish_replica_boot(&mut phase, seq),
            PhaseState::Ready(ready) => ready,
            _ => return wrong_phase("Appended"),
        };
        let Ok(mut slot) = ready.pending.lock() else {
            return err(ErrorCode::Internal, "decision lock poisoned");
        };
        let awaiting = match slot.take() {
            Some(Pending::Awaiting(a)) if a.first_seq == seq => a,
            other => {
                *slot = other;
                return err(
                    ErrorCode::WrongPhase,
                    format!("no decision whose records begin at {seq} awaits its append"),
                );
            }
        };
        let Awaiting {
            state,
            audit,
            governance,
            answer,
            request_digest,
            ..
        } = *awaiting;
        match ready.gov.lock() {
            Ok(mut g) => {
                g.state = state;
                g.audit = audit;
                let next = g.audit.head().0;
                g.audit.acknowledge(next);
                if governance {
                    g.rebuild_keys();
                }
            }
            Err(_) => return err(ErrorCode::Internal, "state lock poisoned"),
        }
        self.release(ready, &request_digest, answer)
    }

    /// `CatchUp`: the records other replicas wrote, verified and applied; a decision
    /// awaiting its append lost its place.
    fn catch_up(&self, records: &[AuditRecord]) -> Response {
        let bytes: usize = records.iter().map(|r| r.line.len()).sum();
        if bytes > MAX_REPLAY_PAGE_BYTES {
            return err(
                ErrorCode::BadRequest,
                format!("more than {MAX_REPLAY_PAGE_BYTES} bytes of records in one page"),
            );
        }
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return not_ready();
        };
        if !ready.replicated {
            return err(
                ErrorCode::WrongPhase,
                "only a replica catches up; a single enclave's log is its own",
            );
        }
        let Ok(mut slot) = ready.pending.lock() else {
            return err(ErrorCode::Internal, "decision lock poisoned");
        };
        // (Checked before taking: a request already Lost stays Lost for Redecide.)
        if !records.is_empty()
            && matches!(*slot, Some(Pending::Awaiting(_)))
            && let Some(Pending::Awaiting(a)) = slot.take()
        {
            *slot = Some(Pending::Lost(Box::new(a.call)));
        }
        let Ok(mut g) = ready.gov.lock() else {
            return err(ErrorCode::Internal, "state lock poisoned");
        };
        let now = unix_now();
        let mut outcome = Ok(());
        let mut governance = false;
        for r in records {
            match crate::boot::verify_and_apply(&mut g.state, r, &ready.keys.tags) {
                Ok(record) => {
                    governance |= matches!(record, Record::PolicyChanged(_));
                    if let Some(digest) = record.by().and_then(|b| hex::decode(&b.request).ok())
                        && let Some(elsewhere) = g.decided_elsewhere.as_mut()
                    {
                        // Remembered as long as its stamp could still be valid; a full
                        // memory refuses the next stamps rather than forget one.
                        let until = now.saturating_add(strongroom_auth::MAX_VALIDITY_SECS);
                        let _ = elsewhere.check_and_insert(DECIDED_ELSEWHERE, &digest, until, now);
                    }
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        let (next, head) = (g.state.audit_next, g.state.audit_head);
        g.audit = AuditLog::new(next, head).with_limit(self.audit_backlog);
        if governance {
            g.rebuild_keys();
        }
        let in_force = g.state.signers.find(&ready.identity.public().0).is_some();
        drop(g);
        if let Err(e) = outcome {
            tracing::error!(error = %e, "a record caught up from the database was refused");
            return err(
                ErrorCode::BlobRejected,
                format!("{e}; the replica stays at record {next}"),
            );
        }
        if !in_force {
            ready.retired.store(true, Ordering::SeqCst);
            *slot = None;
            tracing::warn!("another boot of this replica's name replaced its identity");
            return err(ErrorCode::NotReady, retired().message);
        }
        Response::CaughtUp { next_seq: next }
    }

    /// `Redecide`: the request that lost its place, decided again on the state now.
    fn redecide(&self) -> Response {
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return not_ready();
        };
        let Ok(mut slot) = ready.pending.lock() else {
            return err(ErrorCode::Internal, "decision lock poisoned");
        };
        match slot.take() {
            Some(Pending::Lost(call)) => self.decide(ready, &mut slot, *call, true),
            other => {
                *slot = other;
                err(
                    ErrorCode::WrongPhase,
                    "no request lost its place to decide again",
                )
            }
        }
    }

    /// `Abandon`: the proxy could not store the records; the decision is dropped and its
    /// answer never released.
    fn abandon(&self) -> Response {
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return not_ready();
        };
        let Ok(mut slot) = ready.pending.lock() else {
            return err(ErrorCode::Internal, "decision lock poisoned");
        };
        *slot = None;
        match ready.gov.lock() {
            Ok(g) => Response::CaughtUp {
                next_seq: g.state.audit_next,
            },
            Err(_) => err(ErrorCode::Internal, "state lock poisoned"),
        }
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
                replica: ready.replica,
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
    /// A replica deciding a request again (its nonce is recorded already).
    redeciding: bool,
    /// Whether a record changed the policy or the admin set.
    governance: Cell<bool>,
}

impl<'a, N: Nsm> CallHost<'a, N> {
    fn new(enclave: &'a Enclave<N>, ready: &'a Ready, call: &Call, redeciding: bool) -> Self {
        Self {
            enclave,
            ready,
            request_digest: answer_request_digest(
                &call.method,
                &call.path,
                &call.body,
                call.stamp.as_deref(),
            ),
            trail: RefCell::new(Vec::new()),
            redeciding,
            governance: Cell::new(false),
        }
    }
}

/// The refusal of a replica another boot of its name replaced.
fn retired() -> ApiError {
    ApiError::new(
        ApiErrorCode::NotReady,
        "this replica's identity was replaced by a later boot of its name; it boots again",
    )
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
            self.governance.set(true);
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

    fn redeciding(&self) -> bool {
        self.redeciding
    }

    fn replicated(&self) -> bool {
        self.ready.replicated
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
