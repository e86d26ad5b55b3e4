//! The enclave's identity and what it signs.
//!
//! At every boot the enclave makes a fresh Ed25519 identity key and binds its public key
//! into its attestation documents (see [`UserData`]). With it the enclave signs:
//! - every answer to a call ([`AnswerSignature`], carried in the `X-Strongroom-Answer`
//!   header), over the request's digest, the status, the time and the body, so a client
//!   checks the answer without trusting the parent instance that relayed it;
//! - every entry of the audit chain ([`AuditEntry`]), each holding the previous entry's
//!   hash, and the chain's head ([`Checkpoint`]).
//!
//! Everything here is pure: no I/O, no clock, no randomness (the caller supplies seeds and
//! times), so the enclave, the client library and auditors' tools share one definition.

mod answer;
mod audit;
#[cfg(feature = "batch")]
mod chain;
mod error;
mod key;
mod signers;
mod user_data;

pub use answer::{
    ANSWER_DOMAIN, ANSWER_REQUEST_DOMAIN, AnswerSignature, Head, answer_message,
    answer_request_digest,
};
pub use audit::{
    AUDIT_DOMAIN, AuditEntry, BootEntry, CHECKPOINT_DOMAIN, Checkpoint, EntryHeader, GENESIS_PREV,
    MAX_ENTRY_LEN, Resumed, entry_hash,
};
#[cfg(feature = "batch")]
pub use chain::{
    AttestationCheck, BATCH, BootRecord, BreakKind, ChainBreak, ChainReport, ChainVerifier,
    LOOKAHEAD, MAX_LINE_LEN, verify_chain,
};
pub use error::IdentityError;
pub use key::{IdentityKey, IdentityPublic};
pub use signers::{
    MAX_REPLICA_NAME, MAX_REPLICAS, ReplicaName, Signer, Signers, valid_replica_name,
};
pub use user_data::UserData;
