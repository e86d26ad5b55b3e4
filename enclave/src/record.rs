//! The records of the enclave's log: the types live in `strongroom-log`, shared with the
//! auditors' tools (`strongroom audit verify` decodes every entry into them). Every change
//! of governed state is one [`Record`], kept as one entry of the audit chain, and carries
//! everything [`EnclaveState::apply`](crate::state::EnclaveState::apply) needs to make its
//! change, so the state is a sealed snapshot plus the records after it.

pub use strongroom_log::{
    BootEntry, By, Decided, DecisionRecord, Held, KINDS, KeyCreated, KeyDestroyed, PolicyChanged,
    Position, ProposalApproved, ProposalCancelled, ProposalMade, Record, RecordError,
    RequestApproved, RequestCancelled, RequestCompleted, Resumed, hex32, key_id,
};
