//! What a chain says, as an auditor reads it: [`Summary`] of the records of verified
//! entries.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use strongroom_policy::{Action, Decision, Outcome};

use crate::record::{By, Decided, KINDS, Record};

/// Decisions by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Allowed (for a signature: signed).
    pub allowed: u64,
    /// Denied.
    pub denied: u64,
    /// Held: waiting for approvals or a time-lock.
    pub held: u64,
}

impl Tally {
    fn add(&mut self, decision: &Decision) {
        match decision.outcome {
            Outcome::Allow => self.allowed += 1,
            Outcome::Deny => self.denied += 1,
            Outcome::NeedsApproval { .. } | Outcome::TimeLocked { .. } => self.held += 1,
        }
    }
}

/// A key created or destroyed, where the chain says so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyEvent {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's time (Unix seconds).
    pub time: u64,
    /// Hex key id.
    pub key: String,
    /// EIP-55 address.
    pub address: String,
    /// The key's label (a created key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The principal who asked; `None` for an admin key.
    pub principal: Option<String>,
    /// The key that stamped the call.
    pub stamp_key: String,
}

impl KeyEvent {
    fn new(seq: u64, time: u64, by: &By, key: &str, address: &str, label: Option<&str>) -> Self {
        Self {
            seq,
            time,
            key: key.to_owned(),
            address: address.to_owned(),
            label: label.map(str::to_owned),
            principal: by.principal.clone(),
            stamp_key: by.stamp_key.clone(),
        }
    }
}

/// A change of the policy or the admin set that took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyChange {
    /// The `policy_changed` entry's sequence number.
    pub seq: u64,
    /// Its time (Unix seconds).
    pub time: u64,
    /// The proposal that took effect.
    pub proposal: String,
    /// `policy` or `admins`.
    pub change: String,
    /// Hex digest of the policy in force after it.
    pub policy_digest: String,
    /// Hex digest of the admin set in force after it.
    pub admins_digest: String,
    /// Proposals discarded by it.
    pub discarded_proposals: Vec<String>,
}

/// What the records of a chain say: counts by kind, decisions by outcome, signatures made
/// per key, keys created and destroyed, policy changes. Add records in chain order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records added.
    pub records: u64,
    /// Records by kind (every kind of [`KINDS`], zero included).
    pub by_kind: BTreeMap<&'static str, u64>,
    /// `decision` records by outcome.
    pub decisions: Tally,
    /// `request_completed` records (held requests decided again) by outcome.
    pub requests_completed: Tally,
    /// Signatures made, by hex key id: allowed signing decisions and held signing
    /// requests completed as allowed.
    pub signatures: BTreeMap<String, u64>,
    /// Keys created, in chain order.
    pub keys_created: Vec<KeyEvent>,
    /// Keys destroyed, in chain order.
    pub keys_destroyed: Vec<KeyEvent>,
    /// Policy and admin-set changes that took effect, in chain order.
    pub policy_changes: Vec<PolicyChange>,
}

impl Default for Summary {
    fn default() -> Self {
        Self::new()
    }
}

impl Summary {
    /// Nothing added yet.
    pub fn new() -> Self {
        Self {
            records: 0,
            by_kind: KINDS.iter().map(|k| (*k, 0)).collect(),
            decisions: Tally::default(),
            requests_completed: Tally::default(),
            signatures: BTreeMap::new(),
            keys_created: Vec::new(),
            keys_destroyed: Vec::new(),
            policy_changes: Vec::new(),
        }
    }

    /// Adds the record of entry `seq`, written at `time`.
    pub fn add(&mut self, seq: u64, time: u64, record: &Record) {
        self.records += 1;
        *self.by_kind.entry(record.kind()).or_default() += 1;
        match record {
            Record::Decision(d) => {
                self.decisions.add(&d.decided.decision);
                self.count_signature(&d.decided);
            }
            Record::RequestCompleted(c) => {
                self.requests_completed.add(&c.decided.decision);
                self.count_signature(&c.decided);
            }
            Record::KeyCreated(k) => self.keys_created.push(KeyEvent::new(
                seq,
                time,
                &k.by,
                &k.key,
                &k.address,
                Some(&k.label),
            )),
            Record::KeyDestroyed(k) => self
                .keys_destroyed
                .push(KeyEvent::new(seq, time, &k.by, &k.key, &k.address, None)),
            Record::PolicyChanged(p) => self.policy_changes.push(PolicyChange {
                seq,
                time,
                proposal: p.proposal.clone(),
                change: p.change.clone(),
                policy_digest: p.policy_digest.clone(),
                admins_digest: p.admins_digest.clone(),
                discarded_proposals: p.discarded_proposals.clone(),
            }),
            Record::Boot(_)
            | Record::RequestApproved(_)
            | Record::RequestCancelled(_)
            | Record::Proposal(_)
            | Record::ProposalApproved(_)
            | Record::ProposalCancelled(_) => {}
        }
    }

    fn count_signature(&mut self, decided: &Decided) {
        let signing = matches!(
            decided.action,
            Action::SignTransaction
                | Action::SignTypedData
                | Action::SignMessage
                | Action::SignDigest
        );
        if signing
            && decided.decision.is_allow()
            && let Some(key) = &decided.key
        {
            *self.signatures.entry(key.clone()).or_default() += 1;
        }
    }

    /// Signatures made, all keys together.
    pub fn signatures_total(&self) -> u64 {
        self.signatures.values().sum()
    }

    /// The summary as JSON (the shape of its fields).
    pub fn to_json(&self) -> Value {
        // Cannot fail: strings, integers, lists and maps with string keys.
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
