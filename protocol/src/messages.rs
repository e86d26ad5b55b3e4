//! The messages between the parent proxy and the enclave.
//!
//! The proxy asks, the enclave answers: every frame from the proxy carries a [`Request`],
//! every frame from the enclave a [`Response`] with the same request id. The parent is not
//! trusted, so the enclave treats every field here as hostile input and checks the limits
//! below before use. The proxy cannot forge answers to calls: the enclave signs each with
//! its identity key ([`Answer::signature`]) and clients check it.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use strongroom_api::ApiErrorCode;

/// Longest key label, in bytes of UTF-8.
pub const MAX_LABEL_LEN: usize = 128;
/// Largest sealed object the enclave accepts.
pub const MAX_SEALED_LEN: usize = 4096;
/// Largest sealed snapshot of the enclave's state (policy, admin set, proposals, pending
/// requests, velocity counters, destroyed keys). Every part is bounded per principal or per
/// key, so this is reached only with hundreds of principals each at every quota; a state
/// that would not fit is not snapshotted (the log still holds it: boots replay longer).
pub const MAX_SNAPSHOT_LEN: usize = 256 * 1024 * 1024;
/// Records the proxy stores between the snapshots it takes: a boot replays at most about
/// this many records (more only if a snapshot failed).
pub const SNAPSHOT_EVERY: u64 = 10_000;
/// Largest part of a snapshot in one frame.
pub const SNAPSHOT_CHUNK_LEN: usize = 1024 * 1024;
/// Most bytes of record lines one [`Request::ReplayRecords`] carries.
pub const MAX_REPLAY_PAGE_BYTES: usize = 1024 * 1024;
/// Largest KMS `CiphertextForRecipient` the enclave accepts.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;
/// Length of a signing digest.
pub const DIGEST_LEN: usize = 32;
/// Length of a root-key check value.
pub const KEY_CHECK_LEN: usize = 16;

/// A request from the proxy to the enclave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Where the enclave is in its life.
    Status,
    /// Start (or restart) unsealing: the enclave makes a fresh ephemeral RSA key and
    /// answers [`Response::UnsealChallenge`] with an attestation document carrying it.
    BeginUnseal,
    /// Finish unsealing with what KMS returned for the last challenge.
    CompleteUnseal(CompleteUnseal),
    /// An attestation document for a client-chosen nonce.
    GetAttestation {
        /// The client's nonce (at most 512 bytes, the NSM's limit).
        nonce: Option<ByteBuf>,
    },
    /// Unseal a key blob and describe the key (never its secret).
    DescribeKey {
        /// The key the caller asked for; the enclave refuses a blob of any other key.
        key_id: String,
        /// The sealed key blob as stored by the proxy.
        sealed: ByteBuf,
    },
    /// A principal's request, relayed as the client sent it: the enclave checks the stamp
    /// over exactly these method, path and body bytes, decodes the body itself and answers
    /// with the HTTP status and JSON body the proxy returns unchanged.
    Call(Call),
    /// The audit entries from `from` on that the enclave still holds because the proxy has
    /// not confirmed storing them (after a storage failure): answered with
    /// [`Response::AuditEntries`], a page of at most 1 MiB of lines; ask again from after
    /// the last one.
    AuditBacklog {
        /// First sequence number wanted.
        from: u64,
    },
    /// Boot: the next part of the stored snapshot whose length [`CompleteUnseal`] named.
    SnapshotChunk {
        /// At most [`SNAPSHOT_CHUNK_LEN`] bytes.
        bytes: ByteBuf,
    },
    /// Boot: stored records after the snapshot, in order from the sequence number the
    /// enclave asked for ([`Response::ReplayFrom`]).
    ReplayRecords {
        /// At most [`MAX_REPLAY_PAGE_BYTES`] of lines.
        records: Vec<AuditRecord>,
    },
    /// Boot: no more records; the enclave writes its boot record and serves.
    FinishBoot,
    /// A sealed snapshot of the current state, in parts: `offset` 0 takes a new snapshot,
    /// later offsets read the rest of it. Answered with [`Response::Snapshot`].
    ReadSnapshot {
        /// Where to read from.
        offset: u64,
    },
    /// A replica (one of several sharing a log): the records of the last
    /// [`Response::Append`] are stored under their numbers, first `seq`. The enclave takes
    /// the decision into its state and releases its answer ([`Response::Answer`]; while
    /// booting, [`Response::Unsealed`]).
    Appended {
        /// The first record's sequence number.
        seq: u64,
    },
    /// A replica: records other replicas wrote, in order from the enclave's next sequence
    /// number. A decision awaiting its append lost its place (its numbers were taken) and
    /// is dropped until [`Request::Redecide`]. Answered with [`Response::CaughtUp`].
    CatchUp {
        /// At most [`MAX_REPLAY_PAGE_BYTES`] of lines.
        records: Vec<AuditRecord>,
    },
    /// A replica, after catching up: decide the dropped request again on the state as it
    /// now is. Answered like the [`Request::Call`] it was.
    Redecide,
    /// A replica: the records of the last [`Response::Append`] could not be stored (the
    /// database failed); the decision is dropped and its answer never released.
    Abandon,
}

/// KMS's answer to the unseal challenge, with what the proxy stored on earlier boots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteUnseal {
    /// KMS `CiphertextForRecipient`: CMS EnvelopedData for the challenge's RSA key.
    pub ciphertext_for_recipient: ByteBuf,
    /// The root-key check value the enclave returned on first boot; None on first boot.
    pub key_check: Option<ByteBuf>,
    /// The length of the newest stored snapshot, sent next in [`Request::SnapshotChunk`]s;
    /// None on first boot.
    pub snapshot_len: Option<u64>,
    /// The genesis document (admin set and first policy, JSON) on first boot; None later.
    pub genesis: Option<ByteBuf>,
    /// The replica this enclave is, where several share one log (`strongroom_identity::
    /// valid_replica_name`); None: the deployment's single enclave. Its boot record
    /// replaces only this replica's earlier identity.
    #[serde(default)]
    pub replica: Option<String>,
}

/// Longest method name in a [`Call`].
pub const MAX_METHOD_LEN: usize = 8;
/// Longest path in a [`Call`].
pub const MAX_PATH_LEN: usize = 512;
/// Largest body in a [`Call`].
pub const MAX_CALL_BODY_LEN: usize = 256 * 1024;
/// Most key blobs one [`Call`] carries (a page of a key listing).
pub const MAX_CALL_KEYS: usize = 256;

/// A principal's HTTP request as relayed by the proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// HTTP method, upper case.
    pub method: String,
    /// Path with query, as the client sent it.
    pub path: String,
    /// The exact body bytes.
    pub body: ByteBuf,
    /// The `X-Strongroom-Stamp` header, if any.
    pub stamp: Option<String>,
    /// The sealed blob of the key the path (or the pending request it names) is about.
    pub key: Option<SealedKey>,
    /// More key blobs: a page of the key listing, or the keys a JSON-RPC call names (at
    /// most [`MAX_CALL_KEYS`]).
    #[serde(default)]
    pub keys: Vec<SealedKey>,
    /// How many audit entries the proxy has stored, all of them from entry 0 on: the
    /// enclave forgets the entries below and refuses new decisions once too many above are
    /// unconfirmed.
    #[serde(default)]
    pub audit_stored: Option<u64>,
}

/// A sealed key blob with the id the proxy filed it under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// Key id (32 hex characters).
    pub id: String,
    /// The sealed blob.
    pub sealed: ByteBuf,
}

/// The enclave's answer to a [`Call`] and what the proxy must store because of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// HTTP status for the client.
    pub status: u16,
    /// JSON body for the client.
    pub body: ByteBuf,
    /// What the proxy must store.
    pub effects: Effects,
    /// The enclave identity's signature over the request, status and body: the
    /// `X-Strongroom-Answer` header value (see `strongroom-identity`).
    #[serde(default)]
    pub signature: Option<String>,
}

/// Storage side effects of a call; the proxy applies them before answering the client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effects {
    /// A key was created: store its blob.
    pub key_created: Option<CreatedKey>,
    /// A key was destroyed: delete its blob.
    pub key_destroyed: Option<String>,
    /// A request now waits for approvals or a time-lock: remember which key it is for, so
    /// the key's blob can come with the call that completes it.
    pub pending_request: Option<PendingRef>,
    /// Audit entries to append, in order.
    #[serde(default)]
    pub audit: Vec<AuditRecord>,
}

/// One audit entry to store: its sequence number and its line
/// (`{"entry":…,"signature":…}`, see `strongroom-identity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain.
    pub seq: u64,
    /// The signed entry as one line of JSON.
    pub line: String,
}

/// A key created by a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The key's public description.
    pub info: KeyInfo,
    /// The sealed key blob.
    pub sealed: ByteBuf,
}

/// A pending request and its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRef {
    /// The pending request's id.
    pub request_id: String,
    /// The key it will sign with.
    pub key_id: String,
}

/// The enclave's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
// One response per frame, decoded once and consumed: boxing the call answer would save
// nothing worth an indirection.
#[allow(clippy::large_enum_variant)]
pub enum Response {
    /// The enclave's phase.
    Status(Phase),
    /// An attestation document whose `public_key` is the ephemeral RSA key (DER SPKI).
    UnsealChallenge {
        /// The COSE_Sign1 attestation document.
        attestation_document: ByteBuf,
    },
    /// Boot: the part of the snapshot received so far; send the next.
    SnapshotReceived {
        /// Bytes received.
        received: u64,
    },
    /// Boot: the state is in place up to record `seq` (exclusive); send the stored records
    /// from `seq` on, then [`Request::FinishBoot`].
    ReplayFrom {
        /// The next record wanted.
        seq: u64,
    },
    /// The boot is done; the proxy stores the check value (first boot) and the boot record
    /// before serving, then takes a snapshot ([`Request::ReadSnapshot`]).
    Unsealed {
        /// The root-key check value (store it on first boot, send it on later boots).
        key_check: ByteBuf,
        /// The boot's audit entry.
        audit: Vec<AuditRecord>,
    },
    /// A part of a sealed snapshot.
    Snapshot {
        /// The snapshot's position: the sequence number of the first record after it
        /// (higher is newer).
        seq: u64,
        /// The whole snapshot's length.
        total_len: u64,
        /// Where this part starts.
        offset: u64,
        /// At most [`SNAPSHOT_CHUNK_LEN`] bytes.
        bytes: ByteBuf,
    },
    /// An attestation document.
    Attestation {
        /// The COSE_Sign1 attestation document.
        document: ByteBuf,
    },
    /// A key's public description.
    Key(KeyInfo),
    /// The answer to a [`Request::Call`].
    Answer(Answer),
    /// Audit entries the proxy asked for again ([`Request::AuditBacklog`]).
    AuditEntries(Vec<AuditRecord>),
    /// A replica's decision, held until its records are stored: append `effects` (its
    /// records under their numbers, only where none is stored, with the blobs it names) in
    /// one transaction, then send [`Request::Appended`]; if another replica took a number,
    /// [`Request::CatchUp`] and [`Request::Redecide`]; if storing failed,
    /// [`Request::Abandon`].
    Append(Effects),
    /// A replica caught up: its next record is `next_seq`.
    CaughtUp {
        /// The sequence number of the enclave's next record.
        next_seq: u64,
    },
    /// The request failed.
    Error(EnclaveError),
}

/// The enclave's phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// No root key yet: the proxy must run the unseal exchange.
    AwaitingRootKey,
    /// Unsealed and serving.
    Ready,
}

/// What a client may know about a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Key id (32 hex characters).
    pub id: String,
    /// Label given at creation.
    pub label: String,
    /// Curve name, `secp256k1`.
    pub curve: String,
    /// SEC1 uncompressed public key (65 bytes).
    pub public_key: ByteBuf,
    /// EIP-55 Ethereum address.
    pub address: String,
    /// Creation time, seconds since the Unix epoch (enclave clock).
    pub created_at: u64,
}

impl KeyInfo {
    /// The REST API's key object: id, label, curve, `0x` public key, address and the
    /// creation time in RFC 3339 (UTC).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "label": self.label,
            "curve": self.curve,
            "public_key": format!("0x{}", hex::encode(&self.public_key)),
            "address": self.address,
            "created_at": rfc3339(self.created_at),
        })
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An ECDSA secp256k1 signature with its recovery id; `s` is low.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverableSignature {
    /// r, 32 bytes big-endian.
    pub r: ByteBuf,
    /// s, 32 bytes big-endian, at most n/2.
    pub s: ByteBuf,
    /// Recovery id, 0 or 1.
    pub v: u8,
}

/// A typed failure from the enclave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct EnclaveError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Human-readable detail (never secret material).
    pub message: String,
}

/// Kinds of enclave failure; [`ErrorCode::api_code`] gives the API code (and so the HTTP
/// status) each answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The enclave is not unsealed yet.
    NotReady,
    /// The request is malformed or breaks a limit.
    BadRequest,
    /// Unsealing failed; the proxy must start again with [`Request::BeginUnseal`].
    UnsealFailed,
    /// KMS released a root key that is not this enclave's.
    WrongRootKey,
    /// A sealed blob is not authentic (edited, swapped, or sealed under another root).
    BlobRejected,
    /// The key was destroyed.
    KeyDestroyed,
    /// The request does not fit the enclave's phase.
    WrongPhase,
    /// The NSM or another enclave component failed.
    Internal,
}

impl ErrorCode {
    /// The API's code for a call refused with this code. `None` for a failure inside the
    /// enclave (unsealing, phase, NSM), which the enclave answers as
    /// [`ApiErrorCode::Internal`] and the proxy, receiving it, as
    /// [`ApiErrorCode::EnclaveError`]. The HTTP status is the code's
    /// ([`ApiErrorCode::status`]).
    pub fn api_code(self) -> Option<ApiErrorCode> {
        match self {
            ErrorCode::NotReady => Some(ApiErrorCode::NotReady),
            ErrorCode::BadRequest => Some(ApiErrorCode::BadRequest),
            ErrorCode::KeyDestroyed => Some(ApiErrorCode::KeyDestroyed),
            ErrorCode::BlobRejected => Some(ApiErrorCode::BlobRejected),
            ErrorCode::UnsealFailed
            | ErrorCode::WrongRootKey
            | ErrorCode::WrongPhase
            | ErrorCode::Internal => None,
        }
    }
}

impl EnclaveError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_known_answers() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_996_799), "2026-11-29T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
