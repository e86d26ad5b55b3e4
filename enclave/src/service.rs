//! The enclave's request handler: an explicit phase machine, no I/O of its own beyond the
//! NSM. Every request is hostile input: sizes are checked first, errors are typed, and no
//! secret reaches an error message.

use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use serde_bytes::ByteBuf;
use strongroom_attestation::{AttestationRequest, MAX_NONCE_LEN, Nsm};
use strongroom_envelope::RecipientKey;
use strongroom_protocol::messages::{
    CompleteUnseal, DIGEST_LEN, EnclaveError, ErrorCode, KEY_CHECK_LEN, MAX_ENVELOPE_LEN,
    MAX_SEALED_LEN, Phase, Request, Response,
};
use zeroize::Zeroize;

use crate::keys::{KEY_OBJECT_VERSION, KeyRecord, check_label};
use crate::rootkey::RootKey;
use crate::seal::{Curve, ObjectId, ObjectKind, Sealer};
use crate::state::{EnclaveState, MAX_DESTROYED, STATE_OBJECT};

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
    state: EnclaveState,
}

enum PhaseState {
    /// Waiting for KMS; holds the one ephemeral key of the outstanding challenge, if any.
    AwaitingRootKey {
        pending: Option<RecipientKey>,
    },
    Ready(Ready),
}

/// The enclave: its NSM and its phase.
pub struct Enclave<N: Nsm> {
    nsm: N,
    phase: RwLock<PhaseState>,
    /// Serialises state changes (destroy) so two never race on the counter.
    state_writer: Mutex<()>,
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
            state_writer: Mutex::new(()),
        }
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
            Request::CreateKey { label } => self.create_key(label),
            Request::DescribeKey { key_id, sealed } => {
                self.with_key(&key_id, &sealed, |k| Response::Key(k.info()))
            }
            Request::SignDigest {
                key_id,
                sealed,
                digest,
            } => self.sign_digest(&key_id, &sealed, &digest),
            Request::DestroyKey { key_id, sealed } => self.destroy_key(&key_id, &sealed),
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
        let first_boot = match (&c.key_check, &c.state) {
            (None, None) => true,
            (Some(k), Some(s)) if k.len() == KEY_CHECK_LEN && s.len() <= MAX_STATE_BLOB => false,
            _ => {
                return err(
                    ErrorCode::BadRequest,
                    "key_check and state must both be given (later boots) or both absent (first boot)",
                );
            }
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
        let state = if first_boot {
            EnclaveState::default()
        } else {
            let blob = c.state.as_deref().map(|b| b.as_slice()).unwrap_or_default();
            match sealer.open(&STATE_OBJECT, blob) {
                Ok(p) => match EnclaveState::from_plaintext(&p) {
                    Ok(s) => s,
                    Err(_) => return err(ErrorCode::BlobRejected, "enclave state is malformed"),
                },
                Err(_) => return err(ErrorCode::BlobRejected, "enclave state is not authentic"),
            }
        };
        let sealed_state = match self.seal_state(&sealer, &state) {
            Ok(s) => s,
            Err(e) => return Response::Error(e),
        };
        *phase = PhaseState::Ready(Ready {
            sealer,
            key_check: keys.key_check,
            state,
        });
        tracing::info!(first_boot, "unsealed");
        Response::Unsealed {
            key_check: keys.key_check.to_vec().into(),
            state: sealed_state.into(),
        }
    }

    fn seal_state(&self, sealer: &Sealer, state: &EnclaveState) -> Result<Vec<u8>, EnclaveError> {
        let mut nonce = [0u8; 12];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| EnclaveError::new(ErrorCode::Internal, "OS random source failed"))?;
        sealer
            .seal(&STATE_OBJECT, &state.to_plaintext(), nonce)
            .map_err(|_| EnclaveError::new(ErrorCode::Internal, "sealing the state failed"))
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
            user_data: self.key_check().map(|kcv| attestation_user_data(&kcv)),
            ..Default::default()
        };
        match self.nsm.attestation(&request) {
            Ok(document) => Response::Attestation {
                document: document.into(),
            },
            Err(e) => err(ErrorCode::Internal, format!("NSM attestation: {e}")),
        }
    }

    fn create_key(&self, label: String) -> Response {
        if check_label(&label).is_err() {
            return err(
                ErrorCode::BadRequest,
                "label must be 1 to 128 bytes of UTF-8 without control characters",
            );
        }
        let Ok(phase) = self.phase.read() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &*phase else {
            return err(ErrorCode::NotReady, "the enclave is not unsealed yet");
        };
        let mut id = [0u8; 16];
        let mut nonce = [0u8; 12];
        if aws_lc_rs::rand::fill(&mut id).is_err() || aws_lc_rs::rand::fill(&mut nonce).is_err() {
            return err(ErrorCode::Internal, "OS random source failed");
        }
        let created_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut entropy_error = None;
        let record = KeyRecord::generate(id, label, created_at, |out| {
            self.entropy(out).map_err(|e| {
                entropy_error = Some(e);
                crate::keys::KeyError::Entropy
            })
        });
        let record = match (record, entropy_error) {
            (Ok(r), _) => r,
            (Err(_), Some(e)) => return Response::Error(e),
            (Err(e), None) => return err(ErrorCode::Internal, e.to_string()),
        };
        match ready
            .sealer
            .seal(&key_object(id), &record.to_plaintext(), nonce)
        {
            Ok(sealed) => Response::KeyCreated {
                key: record.info(),
                sealed: sealed.into(),
            },
            Err(_) => err(ErrorCode::Internal, "sealing the key failed"),
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

    fn sign_digest(&self, key_id: &str, sealed: &[u8], digest: &[u8]) -> Response {
        let Ok(digest) = <[u8; DIGEST_LEN]>::try_from(digest) else {
            return err(ErrorCode::BadRequest, "digest must be exactly 32 bytes");
        };
        self.with_key(key_id, sealed, |k| {
            Response::Signature(k.sign_digest(&digest))
        })
    }

    fn destroy_key(&self, key_id: &str, sealed: &[u8]) -> Response {
        let Ok(_writer) = self.state_writer.lock() else {
            return err(ErrorCode::Internal, "state lock poisoned");
        };
        let Ok(mut phase) = self.phase.write() else {
            return err(ErrorCode::Internal, "phase lock poisoned");
        };
        let PhaseState::Ready(ready) = &mut *phase else {
            return err(ErrorCode::NotReady, "the enclave is not unsealed yet");
        };
        let record = match open_key(ready, key_id, sealed) {
            Ok(r) => r,
            Err(e) => return Response::Error(e),
        };
        if ready.state.destroyed.len() >= MAX_DESTROYED {
            return err(
                ErrorCode::Internal,
                "the enclave state holds the maximum number of destroyed keys",
            );
        }
        let mut next = ready.state.clone();
        next.counter += 1;
        next.destroyed.insert(record.id);
        let sealed_state = match self.seal_state(&ready.sealer, &next) {
            Ok(s) => s,
            Err(e) => return Response::Error(e),
        };
        ready.state = next;
        tracing::info!(key_id = %hex::encode(record.id), "key destroyed");
        Response::KeyDestroyed {
            key_id: hex::encode(record.id),
            state: sealed_state.into(),
        }
    }

    /// The current root-key check value, once unsealed.
    pub fn key_check(&self) -> Option<[u8; KEY_CHECK_LEN]> {
        match self.phase.read().as_deref() {
            Ok(PhaseState::Ready(r)) => Some(r.key_check),
            _ => None,
        }
    }
}

/// The `user_data` of an unsealed enclave's attestation documents: the CBOR map
/// `{"key_check": bstr}`. KMS's envelope is not authenticated, so on what the proxy calls a
/// first boot the enclave cannot tell KMS's root key from one the parent made up; publishing
/// the check value lets clients and auditors pin the deployment's root key (trust on first
/// use) and refuse an enclave whose root key changed.
pub fn attestation_user_data(key_check: &[u8; KEY_CHECK_LEN]) -> Vec<u8> {
    // Fixed layout of a one-entry map: a1, text(9) "key_check", bytes(16).
    let mut out = Vec::with_capacity(28);
    out.push(0xa1);
    out.push(0x69);
    out.extend_from_slice(b"key_check");
    out.push(0x50);
    out.extend_from_slice(key_check);
    out
}

/// Largest sealed state blob accepted (header, nonce, tag and the largest state).
pub const MAX_STATE_BLOB: usize = 64 + 12 + 16 * MAX_DESTROYED;

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
    if ready.state.destroyed.contains(&id) {
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
