//! The records of the enclave's log. Every change of governed state (policy, admin set,
//! velocity counters, proposals, pending requests, destroyed keys) is one [`Record`], kept
//! as one entry of the audit chain: the chain *is* the log. A record carries everything
//! the enclave's `EnclaveState::apply` needs to make its change, so the state is a sealed
//! snapshot plus the records after it, and the same `apply` serves live requests and the
//! replay at boot.
//!
//! The JSON of a record is the entry's fields: the record's kind is the entry's `kind`,
//! and its fields sit beside the entry's `seq`, `prev` and `time`. Decoding ignores those
//! three and is strict about the rest.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strongroom_identity::{BootEntry, EntryHeader};
use strongroom_policy::{Action, Decision, Intent};

/// Every record kind, as the entry's `kind` names it, in the order of [`Record`]'s variants.
pub const KINDS: [&str; 11] = [
    "boot",
    "decision",
    "key_created",
    "key_destroyed",
    "request_approved",
    "request_completed",
    "request_cancelled",
    "proposal",
    "proposal_approved",
    "proposal_cancelled",
    "policy_changed",
];

/// Who made the call a record is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct By {
    /// Hex digest of the call (method, path, body, stamp) that the answer's signature names.
    pub request: String,
    /// The principal whose key stamped the call; `None` for an admin key.
    pub principal: Option<String>,
    /// The id of the key that stamped the call.
    pub stamp_key: String,
}

/// One change of the enclave's state (or an event the chain records without a change).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A boot: the identity that signs from here on.
    Boot(BootEntry),
    /// A policy decision about a call (allowed signatures count in velocity; held requests
    /// start waiting).
    Decision(DecisionRecord),
    /// A key was created (its blob is stored by the proxy; nothing in the state changes).
    KeyCreated(KeyCreated),
    /// A key was destroyed: its blob is refused from here on.
    KeyDestroyed(KeyDestroyed),
    /// An approver approved a pending request.
    RequestApproved(RequestApproved),
    /// A pending request was decided again: signed, denied, or still waiting.
    RequestCompleted(RequestCompleted),
    /// A pending request was cancelled.
    RequestCancelled(RequestCancelled),
    /// A change of the policy or the admin set was proposed.
    Proposal(ProposalMade),
    /// An admin approved a proposal.
    ProposalApproved(ProposalApproved),
    /// An admin cancelled a proposal.
    ProposalCancelled(ProposalCancelled),
    /// An approved proposal took effect.
    PolicyChanged(PolicyChanged),
}

/// What was asked and what the policy decided: the part a `decision` and a
/// `request_completed` record share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// What was asked.
    pub action: Action,
    /// The key the request names (hex id), if any.
    pub key: Option<String>,
    /// The decoded request.
    pub intent: Intent,
    /// The decision: `result`, outcome details, `rule`, `reason`.
    #[serde(flatten)]
    pub decision: Decision,
    /// For a signature: hashes and the signature (never the raw transaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// `decision`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Who asked.
    #[serde(flatten)]
    pub by: By,
    /// What was asked and decided.
    #[serde(flatten)]
    pub decided: Decided,
    /// For a request that waits for approvals or a time-lock: its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// For a request that waits: what the state keeps of it until it finishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Held>,
}

/// What a waiting request needs to be signed later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The key's label.
    pub key_label: String,
    /// The exact request body, base64.
    pub body: String,
    /// Hex digest approvers sign ([`Intent::digest`]).
    pub intent_digest: String,
}

impl Held {
    /// The body's bytes.
    pub fn body_bytes(&self) -> Result<Vec<u8>, RecordError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.body)
            .map_err(|_| RecordError::field("held.body", "not base64"))
    }
}

/// `key_created`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCreated {
    /// Who asked.
    #[serde(flatten)]
    pub by: By,
    /// Hex key id.
    pub key: String,
    /// EIP-55 address.
    pub address: String,
    /// Label.
    pub label: String,
}

/// `key_destroyed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDestroyed {
    /// Who asked.
    #[serde(flatten)]
    pub by: By,
    /// Hex key id.
    pub key: String,
    /// EIP-55 address.
    pub address: String,
}

/// `request_approved`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestApproved {
    /// The approver (its `principal` is the approval).
    #[serde(flatten)]
    pub by: By,
    /// The pending request.
    pub request_id: String,
    /// Hex intent digest the approver signed.
    pub intent_digest: String,
}

/// `request_completed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCompleted {
    /// Who asked for the re-evaluation.
    #[serde(flatten)]
    pub by: By,
    /// The pending request.
    pub request_id: String,
    /// The request's action, key and intent, and the new decision.
    #[serde(flatten)]
    pub decided: Decided,
    /// For a signature: the signing answer the requester collects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Value>,
}

/// `request_cancelled`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCancelled {
    /// Who cancelled.
    #[serde(flatten)]
    pub by: By,
    /// The pending request.
    pub request_id: String,
}

/// `proposal`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalMade {
    /// Who proposed.
    #[serde(flatten)]
    pub by: By,
    /// The proposal's id.
    pub proposal: String,
    /// `policy` or `admins`.
    pub change: String,
    /// Hex digest admins approve.
    pub digest: String,
    /// The proposed document.
    pub document: Value,
    /// Hex digest of the admin set it was made against.
    pub base_admins_digest: String,
    /// Hex digest of the policy it was made against.
    pub base_policy_digest: String,
}

/// `proposal_approved`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalApproved {
    /// The approving admin (its `stamp_key` is the approval).
    #[serde(flatten)]
    pub by: By,
    /// The proposal's id.
    pub proposal: String,
    /// `policy` or `admins`.
    pub change: String,
    /// Hex digest approved.
    pub digest: String,
    /// Approvals after this one.
    pub approvals: u64,
    /// Whether the proposal took effect (a `policy_changed` record follows).
    pub applied: bool,
}

/// `proposal_cancelled`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalCancelled {
    /// The cancelling admin.
    #[serde(flatten)]
    pub by: By,
    /// The proposal's id.
    pub proposal: String,
}

/// `policy_changed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChanged {
    /// The proposal that took effect.
    pub proposal: String,
    /// `policy` or `admins`.
    pub change: String,
    /// Hex digest of the policy in force after the change.
    pub policy_digest: String,
    /// Hex digest of the admin set in force after the change.
    pub admins_digest: String,
    /// Proposals discarded because they were made against the rules just replaced.
    pub discarded_proposals: Vec<String>,
}

/// A record that cannot be encoded, decoded or applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The entry's kind is none of [`KINDS`]: written by a newer enclave than this code.
    #[error("unknown record kind {0:?}")]
    UnknownKind(String),
    /// The entry's fields do not decode as a record of its kind.
    #[error("record does not decode: {0}")]
    Decode(String),
    /// A field holds a value the record cannot have.
    #[error("record field {field}: {detail}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The record does not fit the state it is applied to (an unknown request or
    /// proposal, a digest that differs, a bound that would be exceeded).
    #[error("record does not apply: {0}")]
    Inconsistent(String),
}

impl RecordError {
    /// A field holds a value the record cannot have.
    pub fn field(field: &'static str, detail: impl Into<String>) -> Self {
        Self::Field {
            field,
            detail: detail.into(),
        }
    }

    /// The record does not fit the state it is applied to.
    pub fn inconsistent(detail: impl Into<String>) -> Self {
        Self::Inconsistent(detail.into())
    }
}

/// Where a record sits in the chain: what `apply` takes besides the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's hash (the next entry's `prev`).
    pub hash: [u8; 32],
    /// The entry's time (enclave clock, Unix seconds): velocity windows and time-locks
    /// count from it.
    pub time: u64,
    /// The identity that signed it, where the entry names it.
    pub signer: Option<[u8; 32]>,
}

impl Position {
    /// The position of an entry with this header and hash.
    pub fn of(header: &EntryHeader, hash: [u8; 32]) -> Self {
        Self {
            seq: header.seq,
            hash,
            time: header.time,
            signer: header.signer,
        }
    }
}

impl Record {
    /// The entry kind and fields for `AuditEntry::build`.
    pub fn to_fields(&self) -> Result<(&'static str, Map<String, Value>), RecordError> {
        let kind = self.kind();
        match serde_json::to_value(self) {
            Ok(Value::Object(mut fields)) => {
                fields.remove("kind");
                Ok((kind, fields))
            }
            Ok(_) => Err(RecordError::Decode("a record is not a JSON object".into())),
            Err(e) => Err(RecordError::Decode(e.to_string())),
        }
    }

    /// Reads a record from an entry's fields (the entry's own `seq`, `prev` and `time` are
    /// ignored).
    pub fn from_fields(fields: Map<String, Value>) -> Result<Self, RecordError> {
        if let Some(Value::String(kind)) = fields.get("kind")
            && !KINDS.contains(&kind.as_str())
        {
            return Err(RecordError::UnknownKind(kind.clone()));
        }
        serde_json::from_value(Value::Object(fields))
            .map_err(|e| RecordError::Decode(e.to_string()))
    }

    /// Reads a record from an entry's exact bytes. A kind none of [`KINDS`] is
    /// [`RecordError::UnknownKind`]; fields that do not decode are [`RecordError::Decode`].
    pub fn from_entry_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(|e| {
            /// Only the kind, to tell an unknown kind from fields that do not decode.
            #[derive(Deserialize)]
            struct KindOnly {
                kind: String,
            }
            match serde_json::from_slice::<KindOnly>(bytes) {
                Ok(k) if !KINDS.contains(&k.kind.as_str()) => RecordError::UnknownKind(k.kind),
                _ => RecordError::Decode(e.to_string()),
            }
        })
    }

    /// Who made the call the record is about (`None`: a boot, or a change no call made).
    pub fn by(&self) -> Option<&By> {
        match self {
            Record::Decision(r) => Some(&r.by),
            Record::KeyCreated(r) => Some(&r.by),
            Record::KeyDestroyed(r) => Some(&r.by),
            Record::RequestApproved(r) => Some(&r.by),
            Record::RequestCompleted(r) => Some(&r.by),
            Record::RequestCancelled(r) => Some(&r.by),
            Record::Proposal(r) => Some(&r.by),
            Record::ProposalApproved(r) => Some(&r.by),
            Record::ProposalCancelled(r) => Some(&r.by),
            Record::Boot(_) | Record::PolicyChanged(_) => None,
        }
    }

    /// The entry kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Boot(_) => "boot",
            Record::Decision(_) => "decision",
            Record::KeyCreated(_) => "key_created",
            Record::KeyDestroyed(_) => "key_destroyed",
            Record::RequestApproved(_) => "request_approved",
            Record::RequestCompleted(_) => "request_completed",
            Record::RequestCancelled(_) => "request_cancelled",
            Record::Proposal(_) => "proposal",
            Record::ProposalApproved(_) => "proposal_approved",
            Record::ProposalCancelled(_) => "proposal_cancelled",
            Record::PolicyChanged(_) => "policy_changed",
        }
    }
}

/// Decodes `0x`-less or `0x`-prefixed hex of exactly 32 bytes.
pub fn hex32(field: &'static str, text: &str) -> Result<[u8; 32], RecordError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.strip_prefix("0x").unwrap_or(text), &mut out)
        .map_err(|_| RecordError::field(field, "not 32 bytes of hex"))?;
    Ok(out)
}

/// Decodes a 16-byte key id from 32 hex digits.
pub fn key_id(field: &'static str, text: &str) -> Result<[u8; 16], RecordError> {
    let mut out = [0u8; 16];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| RecordError::field(field, "not a key id (32 hex digits)"))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
