//! The enclave's log: the typed records its audit chain holds.
//!
//! Every change of the enclave's governed state, and every decision, is one [`Record`]
//! kept as one entry of the audit chain (`strongroom_identity::AuditEntry`). The enclave
//! builds records, signs them into entries and applies them (live and in the replay at
//! boot); auditors decode the same entries into the same types and read what the chain
//! says ([`Summary`]). One definition, so a field the enclave writes is a field the
//! auditor reads.
//!
//! This crate is pure: no I/O, no clock. It depends on `strongroom-identity` (the entry
//! format and the boot entry) and `strongroom-policy` (actions, intents, decisions), never
//! the other way round.

mod record;
#[cfg(test)]
mod samples;
mod summary;

pub use record::{
    By, Decided, DecisionRecord, Held, KINDS, KeyCreated, KeyDestroyed, PolicyChanged, Position,
    ProposalApproved, ProposalCancelled, ProposalMade, Record, RecordError, RequestApproved,
    RequestCancelled, RequestCompleted, hex32, key_id,
};
pub use strongroom_identity::{BootEntry, Resumed};
pub use summary::{KeyEvent, PolicyChange, Summary, Tally};
