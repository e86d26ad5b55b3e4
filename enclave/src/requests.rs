//! Signing requests that wait for approvals or a time-lock. Pure bookkeeping: the enclave
//! re-evaluates the policy (with the approvals gathered) whenever one might complete.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use strongroom_policy::{Action, Decision, Intent};

/// Most requests kept (waiting and recently finished).
pub const MAX_REQUESTS: usize = 256;
/// Most finished requests kept for their callers to collect.
pub const MAX_FINISHED: usize = 64;

/// Where a request is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Waiting for approvals or a time-lock.
    Pending,
    /// Signed; `result` is the answer the requester would have had.
    Signed {
        /// The signing answer (JSON).
        result: serde_json::Value,
    },
    /// Denied when re-evaluated (the policy or the velocity totals changed meanwhile).
    Denied,
    /// Cancelled.
    Cancelled {
        /// Key id of who cancelled.
        by: String,
    },
}

/// A signing request that could not be signed at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// Random id (16 hex characters).
    pub id: String,
    /// The requesting principal.
    pub principal: String,
    /// The key to sign with.
    pub key_id: String,
    /// The key's label.
    pub key_label: String,
    /// The request path it came on (decides how `body` decodes).
    pub action: Action,
    /// The exact request body, decoded again when the request is signed.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The decoded intent.
    #[serde(with = "intent_as_json")]
    pub intent: Intent,
    /// What approvers sign: [`Intent::digest`].
    #[serde(with = "serde_bytes")]
    pub intent_digest: Vec<u8>,
    /// When it was requested (enclave clock): time-locks count from here.
    pub requested_at: u64,
    /// Principal ids that approved.
    pub approvals: BTreeSet<String>,
    /// The latest decision about it.
    pub decision: Decision,
    /// Where it is.
    pub status: Status,
}

/// The intent is kept as its JSON inside the sealed state's CBOR: alloy's fixed-size byte
/// types (hashes, addresses) write bytes to a binary format but read back only hex text, so
/// a transaction intent would not survive a restart in plain CBOR.
mod intent_as_json {
    use serde::{Deserialize, Deserializer, Serializer};
    use strongroom_policy::Intent;

    pub fn serialize<S: Serializer>(intent: &Intent, s: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_vec(intent).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&json)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Intent, D::Error> {
        let json = serde_bytes::ByteBuf::deserialize(d)?;
        serde_json::from_slice(&json).map_err(serde::de::Error::custom)
    }
}

/// The requests book: bounded, oldest finished requests dropped first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requests {
    items: Vec<PendingRequest>,
}

/// The book is full of waiting requests.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{MAX_REQUESTS} requests are already waiting; approve or cancel some first")]
pub struct RequestsFull;

impl Requests {
    /// All requests, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &PendingRequest> {
        self.items.iter()
    }

    /// A request by id.
    pub fn get(&self, id: &str) -> Option<&PendingRequest> {
        self.items.iter().find(|r| r.id == id)
    }

    /// A request by id, to change it.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut PendingRequest> {
        self.items.iter_mut().find(|r| r.id == id)
    }

    /// Adds a request, dropping the oldest finished ones beyond [`MAX_FINISHED`].
    pub fn insert(&mut self, request: PendingRequest) -> Result<(), RequestsFull> {
        self.prune();
        if self.items.len() >= MAX_REQUESTS {
            return Err(RequestsFull);
        }
        self.items.push(request);
        Ok(())
    }

    /// Removes a request.
    pub fn remove(&mut self, id: &str) {
        self.items.retain(|r| r.id != id);
    }

    /// Drops the oldest finished requests beyond [`MAX_FINISHED`].
    pub fn prune(&mut self) {
        let finished = self
            .items
            .iter()
            .filter(|r| r.status != Status::Pending)
            .count();
        let mut excess = finished.saturating_sub(MAX_FINISHED);
        self.items.retain(|r| {
            if excess > 0 && r.status != Status::Pending {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Checks the invariants of a book read back from sealed state.
    pub fn is_well_formed(&self) -> bool {
        let ids: BTreeSet<&str> = self.items.iter().map(|r| r.id.as_str()).collect();
        self.items.len() <= MAX_REQUESTS && ids.len() == self.items.len()
    }
}
