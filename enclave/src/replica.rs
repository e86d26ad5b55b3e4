//! A replica: one of several enclaves of a deployment sharing one log through the
//! database (`--database postgres://…` and a replica name at unseal).
//!
//! The log has one order, the database's. A replica decides a request on its state, as a
//! single enclave does, but keeps the records, the state they make and the answer to
//! itself ([`Awaiting`]) and hands the proxy only the records to append
//! (`Response::Append`): decide → append → release. Stored under their numbers (a number
//! is stored once: the database's unique key), they take effect and the answer is
//! released (`Request::Appended`). If another replica took a number first, the decision is
//! dropped ([`Pending::Lost`]), the replica verifies and applies the others' records
//! (`Request::CatchUp`: each linked to the one before and signed by an identity in force,
//! introduced by a boot record of this deployment) and decides the request again
//! (`Request::Redecide`). So velocity limits, destroyed keys, policy changes and approvals
//! hold across honest replicas exactly, and no answer is released whose records are not
//! stored.
//!
//! A request decided by another replica is refused here too: its digest, in the records
//! caught up, is remembered as long as its stamp could be valid.
//!
//! What this does not do: database order serialises honest replicas only. A parent that
//! lies (says `Appended` for records it did not store, or shows a replica another history)
//! forks the log; the fork is visible to clients and auditors (docs/threat-model.md).

use strongroom_protocol::messages::{Answer, Call};

use crate::audit::AuditLog;
use crate::state::EnclaveState;

/// The replay scope under which requests decided by other replicas are remembered.
pub const DECIDED_ELSEWHERE: &str = "\u{0}decided-elsewhere";

/// A replica's request between its decision and its release.
#[derive(Debug)]
pub enum Pending {
    /// Its records are out for appending.
    Awaiting(Box<Awaiting>),
    /// Another replica took its place: decide it again after catching up.
    Lost(Box<Call>),
}

/// A decision whose records are out for appending.
#[derive(Debug)]
pub struct Awaiting {
    /// The request, to decide again if it loses its place.
    pub call: Call,
    /// The state with the decision's records applied.
    pub state: EnclaveState,
    /// The log with them.
    pub audit: AuditLog,
    /// Whether they changed the policy or the admin set (the stamp keys are rebuilt).
    pub governance: bool,
    /// The answer, released once they are stored.
    pub answer: Answer,
    /// The digest the answer's signature names.
    pub request_digest: [u8; 32],
    /// The first record's sequence number.
    pub first_seq: u64,
}
