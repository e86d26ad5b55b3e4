//! The enclave's request handler: an explicit phase machine, no I/O of its own beyond the
//! NSM. Every request is hostile input: sizes are checked first, errors are typed, and no
//! secret reaches an error message.

use std::sync::RwLock;
use std::time::SystemTime;

use std::cell::RefCell;

use base64::Engine as _;
use serde_bytes::ByteBuf;
use serde_json::{Map, Value};
use strongroom_attestation::{AttestationRequest, MAX_NONCE_LEN, Nsm};
use strongroom_envelope::RecipientKey;
use strongroom_identity::{
    AnswerSignature, AuditEntry, Checkpoint, IdentityKey, IdentityPublic, UserData,
    answer_request_digest,
};
use strongroom_protocol::messages::{
    AuditRecord, Call, CompleteUnseal, EnclaveError, ErrorCode, KEY_CHECK_LEN, KeyInfo,
    MAX_ENVELOPE_LEN, MAX_SEALED_LEN, MAX_STATE_LEN, Phase, Request, Response, SealedKey,
    SealedState,
};
use zeroize::Zeroize;

use crate::api::{self, ApiError, Governed, GovernedLock, Host};
use crate::audit::AuditLog;
use crate::governance::Genesis;
use crate::keys::{KEY_OBJECT_VERSION, KeyRecord, check_label};
use crate::requests::Requests;
use crate::rootkey::RootKey;
use crate::seal::{Curve, ObjectId, ObjectKind, Sealer};
use crate::state::{EnclaveState, STATE_OBJECT};

/// Live stamps the replay cache remembers, each until its expiry (at most 300 s): about
/// 50 MiB of enclave memory, and 1,700 requests per second sustained with stamps of the
/// full validity (more with shorter ones). A full cache refuses rather than forgets.
pub const REPLAY_CAPACITY: usize = 1 << 19;

/// The one message for every failure to open KMS's envelope, so that a parent tampering
/// with it learns nothing from which step failed.
const UNSEAL_FAILED: &str = "the KMS envelope could not be opened; start again with BeginUnseal";

fn err(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error(EnclaveError::new(code, message))
}

/// Unsealed: the keys derived from the root and the state.
struct Ready {
    sealer: Sealer,
    key_check: [u8; KEY_CHECK_LEN],
    boot_time: u64,
    /// This boot's identity: signs answers and audit entries.
    identity: IdentityKey,
    gov: GovernedLock,
}

enum PhaseState {
    /// Waiting for KMS; holds the one ephemeral key of the outstanding challenge, if any.
    AwaitingRootKey {
        pending: Option<RecipientKey>,
    },
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
            Request::GetAttestation { nonce } => self.attestation(nonce),
            Request::DescribeKey { key_id, sealed } => {
                self.with_key(&key_id, &sealed, |k| Response::Key(k.info()))
            }
            Request::Call(call) => self.call(&call),
            Request::AuditBacklog { from } => self.audit_backlog(from),
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
        // Any earlier challenge's key is dropped here: one key, one attempt.
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
            PhaseState::Ready(_) => return err(ErrorCode::WrongPhase, "already unsealed"),
            PhaseState::AwaitingRootKey { pending } => pending.take(),
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
        let first_boot = match (&c.key_check, &c.state, &c.genesis) {
            (None, None, Some(_)) if c.audit_tail.is_none() => true,
            (Some(k), Some(s), None) if k.len() == KEY_CHECK_LEN && s.len() <= MAX_STATE_LEN => {
                false
            }
            (None, None, None) => {
                return err(
                    ErrorCode::BadRequest,
                    "a first boot needs a genesis document (admin set and first policy)",
                );
            }
            _ => {
                return err(
                    ErrorCode::BadRequest,
                    "key_check and state must both be given (later boots) or a genesis \
                     document instead (first boot)",
                );
            }
        };
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
        let keys = root.working_keys();
        drop(root);
        if let Some(stored) = &c.key_check
            && !ct_eq(stored, &keys.key_check)
        {
            return err(
                ErrorCode::WrongRootKey,
                "KMS released a root key whose check value differs from this deployment's",
            );
        }
        let Ok(sealer) = Sealer::new(&keys.seal) else {
            return err(ErrorCode::Internal, "cannot initialise the sealing cipher");
        };
        let mut state = match genesis {
            Some(genesis) => EnclaveState {
                seq: 0,
                destroyed: Default::default(),
                genesis: genesis.digest(),
                admins: genesis.admins,
                engine: strongroom_policy::Engine::new(
                    genesis.policy,
                    strongroom_policy::Ledger::default(),
                ),
                proposals: Vec::new(),
                requests: Requests::default(),
                audit_next: 0,
                audit_head: strongroom_identity::GENESIS_PREV,
                identity: None,
            },
            None => {
                let blob = c.state.as_deref().map(|b| b.as_slice()).unwrap_or_default();
                match sealer.open(&STATE_OBJECT, blob) {
                    Ok(p) => match EnclaveState::from_plaintext(&p) {
                        Ok(s) => s,
                        Err(e) => {
                            // Authentic but unreadable: a bug, not an attack; the detail is
                            // for the operator's log.
                            tracing::error!(error = %e, "sealed state does not parse");
                            return err(ErrorCode::BlobRejected, "enclave state is malformed");
                        }
                    },
                    Err(_) => {
                        return err(ErrorCode::BlobRejected, "enclave state is not authentic");
                    }
                }
            }
        };
        // Where the chain goes on: after the proxy's last stored entry, or, when the proxy
        // holds less than the state says was made (entries lost in a crash, or withheld),
        // from the state's own head, the boot entry saying so, so the gap stays visible.
        let mut gap = None;
        match c.audit_tail.as_deref().map(|t| continue_after(&state, t)) {
            Some(Ok(Some((next, head)))) => (state.audit_next, state.audit_head) = (next, head),
            Some(Ok(None)) | None if !first_boot && state.audit_next > 0 => {
                gap = Some(c.audit_tail.as_deref().and_then(tail_seq));
            }
            Some(Err(e)) => return err(ErrorCode::BadRequest, e),
            _ => {}
        }
        let identity = match self.identity_key() {
            Ok(k) => k,
            Err(e) => return Response::Error(e),
        };
        let (log, boot) = match self.boot_entry(&identity, &state, &keys.key_check, first_boot, gap)
        {
            Ok(b) => b,
            Err(e) => return Response::Error(e),
        };
        (state.audit_next, state.audit_head) = log.head();
        state.identity = Some(identity.public().0);
        let sealed_state = match seal_state(&sealer, &state) {
            Ok(s) => s,
            Err(e) => return Response::Error(e),
        };
        let seq = state.seq;
        let mut governed = Governed::new(state, REPLAY_CAPACITY);
        governed.audit = log;
        tracing::info!(first_boot, identity = %identity.public(), audit_seq = boot.seq, "unsealed");
        *phase = PhaseState::Ready(Box::new(Ready {
            sealer,
            key_check: keys.key_check,
            boot_time: unix_now(),
            identity,
            gov: std::sync::Mutex::new(governed),
        }));
        Response::Unsealed {
            key_check: keys.key_check.to_vec().into(),
            state: SealedState {
                seq,
                sealed: sealed_state.into(),
            },
            audit: vec![boot],
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

    /// The boot's audit entry: the new identity, and an attestation document binding it
    /// (user data) to this point of the chain (nonce = the previous entry's hash) and to
    /// the measured image (PCRs), so auditors can follow the hand-over from one boot's
    /// identity to the next.
    fn boot_entry(
        &self,
        identity: &IdentityKey,
        state: &EnclaveState,
        key_check: &[u8; KEY_CHECK_LEN],
        first_boot: bool,
        gap: Option<Option<u64>>,
    ) -> Result<(AuditLog, AuditRecord), EnclaveError> {
        let user_data = UserData {
            key_check: *key_check,
            genesis: state.genesis,
            admins: state.admins.digest(),
            policy: state.engine.policy().digest(),
            identity: identity.public(),
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
        let mut fields = Map::new();
        fields.insert("identity".into(), identity.public().to_string().into());
        fields.insert(
            "attestation".into(),
            base64::engine::general_purpose::STANDARD
                .encode(&document)
                .into(),
        );
        fields.insert("first_boot".into(), first_boot.into());
        if let Some(stored_through) = gap {
            // Entries before this one that the proxy did not hand back: the chain has a
            // gap here, which this entry records rather than hides.
            fields.insert(
                "unstored".into(),
                serde_json::json!({"proxy_last_seq": stored_through, "state_next_seq": state.audit_next}),
            );
        }
        let mut log =
            AuditLog::new(state.audit_next, state.audit_head).with_limit(self.audit_backlog);
        let record = log
            .append(identity, unix_now(), "boot", fields)
            .map_err(|e| EnclaveError::new(ErrorCode::Internal, format!("audit: {e}")))?;
        Ok((log, record))
    }

    fn audit_backlog(&self, from: u64) -> Response {
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return err(ErrorCode::NotReady, "the enclave is not unsealed yet");
        };
        match ready.gov.lock() {
            Ok(g) => Response::AuditEntries(g.audit.backlog(from)),
            Err(_) => err(ErrorCode::Internal, "state lock poisoned"),
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
            return err(ErrorCode::NotReady, "the enclave is not unsealed yet");
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
                ApiError::from(EnclaveError::new(
                    ErrorCode::NotReady,
                    "the enclave is not unsealed yet",
                ))
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
        let mut answer = api::handle(&host, &ready.gov, call);
        answer.effects.audit = host.trail.into_inner();
        let signature = AnswerSignature::sign(
            &ready.identity,
            &host.request_digest,
            answer.status,
            unix_now(),
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
                key_check: ready.key_check,
                genesis: g.state.genesis,
                admins: g.state.admins.digest(),
                policy: g.state.engine.policy().digest(),
                identity: ready.identity.public(),
            }
            .encode(),
        )
    }

    /// The current root-key check value, once unsealed.
    pub fn key_check(&self) -> Option<[u8; KEY_CHECK_LEN]> {
        match self.phase.read().as_deref() {
            Ok(PhaseState::Ready(r)) => Some(r.key_check),
            _ => None,
        }
    }
}

/// Where the chain goes on after a reboot: after the last entry the proxy stored, which
/// the identity that sealed the state must have signed and which cannot be older than the
/// state's own record of the head.
/// The sequence number of a stored line, if it parses.
fn tail_seq(tail: &str) -> Option<u64> {
    AuditEntry::parse_line(tail)
        .ok()?
        .header()
        .ok()
        .map(|h| h.seq)
}

/// `None` when the tail is authentic but older than the state's head: entries were made
/// that the proxy does not hold.
fn continue_after(state: &EnclaveState, tail: &str) -> Result<Option<(u64, [u8; 32])>, String> {
    let entry = AuditEntry::parse_line(tail).map_err(|e| format!("audit tail: {e}"))?;
    let header = entry.header().map_err(|e| format!("audit tail: {e}"))?;
    let identity = state
        .identity
        .ok_or("audit tail given, but the state names no identity to check it against")?;
    entry.verify(&IdentityPublic(identity)).map_err(|_| {
        "audit tail: the last stored entry is not signed by the identity that sealed the state"
            .to_string()
    })?;
    let next = header
        .seq
        .checked_add(1)
        .ok_or("audit tail: sequence number out of range")?;
    if next < state.audit_next {
        return Ok(None);
    }
    if next == state.audit_next && entry.hash() != state.audit_head {
        return Err(format!(
            "audit tail: entry {} differs from the chain's head recorded in the state",
            header.seq
        ));
    }
    Ok(Some((next, entry.hash())))
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
    if plaintext.len() + 64 > MAX_STATE_LEN {
        return Err(EnclaveError::new(
            ErrorCode::Internal,
            format!("the enclave state would exceed {MAX_STATE_LEN} bytes; change refused"),
        ));
    }
    sealer
        .seal(&STATE_OBJECT, &plaintext, nonce)
        .map_err(|_| EnclaveError::new(ErrorCode::Internal, "sealing the state failed"))
}

/// The enclave's side of a call: sealing, randomness, keys, the audit trail.
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

    fn seal_state(&self, state: &EnclaveState) -> Result<Vec<u8>, ApiError> {
        seal_state(&self.ready.sealer, state).map_err(ApiError::from)
    }

    fn request_digest(&self) -> [u8; 32] {
        self.request_digest
    }

    fn audit(
        &self,
        g: &mut Governed,
        kind: &str,
        fields: Map<String, Value>,
    ) -> Result<(), ApiError> {
        let record = g
            .audit
            .append(&self.ready.identity, unix_now(), kind, fields)
            .map_err(|e| ApiError::internal(format!("audit: {e}")))?;
        self.trail.borrow_mut().push(record);
        Ok(())
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
        .sealer
        .open(&key_object(id), sealed)
        .map_err(|_| rejected())?;
    KeyRecord::from_plaintext(id, &plaintext).map_err(|_| rejected())
}
