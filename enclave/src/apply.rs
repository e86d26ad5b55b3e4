//! [`EnclaveState::apply`]: the one place the enclave's state changes. A live request
//! builds a record, appends it to the chain, then applies it; a boot replays the records
//! after its snapshot through the same function, so a replayed state equals the live one.
//!
//! `apply` checks that a record fits the state (the request or proposal it names exists
//! and is open, digests agree, bounds hold) and leaves the state as it was when it does
//! not; records come from this deployment's enclaves (the replay checks their signatures
//! and chain links first), so a refusal here means a bug, which stops the boot rather
//! than guess.

use std::collections::BTreeSet;

use strongroom_policy::{Action, AdminSet, AdminSetDoc, Outcome, Policy, SignatureRecord};

use crate::governance::{Change, MAX_PROPOSALS, Proposal, proposal_digest};
use crate::record::{Position, Record, RecordError, hex32, key_id};
use crate::requests::{PendingRequest, Status};
use crate::state::{EnclaveState, MAX_DESTROYED};

/// What applying a record changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing governed (an event the chain records: a denial, a created key).
    Nothing,
    /// Governed state changed.
    State,
    /// The policy or the admin set changed: the keys that may stamp calls changed too.
    Governance,
}

/// Whether an action signs (and so may count in velocity and wait for approvals).
pub(crate) fn is_signing(action: Action) -> bool {
    matches!(
        action,
        Action::SignTransaction | Action::SignTypedData | Action::SignMessage | Action::SignDigest
    )
}

impl EnclaveState {
    /// Applies record `record` found at `at`; the record must be the next one
    /// (`at.seq == self.audit_next`). On error nothing changed.
    pub fn apply(&mut self, record: &Record, at: Position) -> Result<Applied, RecordError> {
        if at.seq != self.audit_next {
            return Err(RecordError::inconsistent(format!(
                "record {} applied where record {} is due",
                at.seq, self.audit_next
            )));
        }
        let applied = self.change(record, at)?;
        if applied != Applied::Nothing {
            self.seq += 1;
        }
        // Who signed when: the least recent signer is the one a new replica displaces.
        if let Some(signer) = at
            .signer
            .or_else(|| self.signers.latest().map(|s| s.identity))
        {
            self.signers.signed(&signer, at.seq);
        }
        self.audit_next = at.seq.saturating_add(1);
        self.audit_head = at.hash;
        Ok(applied)
    }

    fn change(&mut self, record: &Record, at: Position) -> Result<Applied, RecordError> {
        match record {
            Record::Boot(b) => {
                if b.first_boot != (at.seq == 0) {
                    return Err(RecordError::inconsistent(
                        "only record 0 is a first boot, and it must be one",
                    ));
                }
                let identity = hex32("identity", &b.identity)?;
                if !strongroom_identity::valid_replica_name(&b.replica) {
                    return Err(RecordError::inconsistent("a boot record's replica name"));
                }
                if self.signers.find(&identity).is_some() {
                    return Err(RecordError::inconsistent(
                        "a boot record names an identity already in force",
                    ));
                }
                self.signers.boot(&b.replica, identity, at.seq);
                Ok(Applied::Nothing)
            }
            Record::KeyCreated(_) => Ok(Applied::Nothing),
            Record::KeyDestroyed(d) => {
                let id = key_id("key", &d.key)?;
                if self.destroyed.contains(&id) {
                    return Err(RecordError::inconsistent("key destroyed twice"));
                }
                if self.destroyed.len() >= MAX_DESTROYED {
                    return Err(RecordError::inconsistent("too many destroyed keys"));
                }
                self.destroyed.insert(id);
                Ok(Applied::State)
            }
            Record::Decision(d) => match &d.decided.decision.outcome {
                Outcome::Allow if is_signing(d.decided.action) => {
                    let recorded = self.engine.record(&SignatureRecord {
                        time: at.time,
                        key: d.decided.key.as_deref().unwrap_or_default(),
                        principal: d.by.principal.as_deref().unwrap_or_default(),
                        rule: d.decided.decision.rule.as_deref().unwrap_or_default(),
                        value: d.decided.intent.native_value(),
                    });
                    Ok(if recorded {
                        Applied::State
                    } else {
                        Applied::Nothing
                    })
                }
                Outcome::NeedsApproval { .. } | Outcome::TimeLocked { .. } => {
                    let (Some(id), Some(held)) = (&d.request_id, &d.held) else {
                        // A held create/destroy is refused, not kept.
                        return Ok(Applied::Nothing);
                    };
                    let (Some(principal), Some(key)) = (&d.by.principal, &d.decided.key) else {
                        return Err(RecordError::field(
                            "principal",
                            "a held request names its principal and key",
                        ));
                    };
                    if self.requests.get(id).is_some() {
                        return Err(RecordError::inconsistent(format!(
                            "request {id} exists already"
                        )));
                    }
                    let request = PendingRequest {
                        id: id.clone(),
                        principal: principal.clone(),
                        key_id: key.clone(),
                        key_label: held.key_label.clone(),
                        action: d.decided.action,
                        body: held.body_bytes()?,
                        intent: d.decided.intent.clone(),
                        intent_digest: hex32("held.intent_digest", &held.intent_digest)?.to_vec(),
                        requested_at: at.time,
                        approvals: BTreeSet::new(),
                        decision: d.decided.decision.clone(),
                        status: Status::Pending,
                    };
                    self.requests
                        .insert(request)
                        .map_err(|e| RecordError::inconsistent(e.to_string()))?;
                    Ok(Applied::State)
                }
                _ => Ok(Applied::Nothing),
            },
            Record::RequestApproved(a) => {
                let principal =
                    a.by.principal.clone().ok_or_else(|| {
                        RecordError::field("principal", "an approver is a principal")
                    })?;
                let request = self.pending_mut(&a.request_id)?;
                if !request.approvals.insert(principal) {
                    return Err(RecordError::inconsistent("approved twice"));
                }
                Ok(Applied::State)
            }
            Record::RequestCompleted(c) => {
                let request = self.pending_mut(&c.request_id)?;
                let signature = match &c.decided.decision.outcome {
                    Outcome::Allow => {
                        let signed = c.signed.clone().ok_or_else(|| {
                            RecordError::field("signed", "an allowed request carries its answer")
                        })?;
                        request.status = Status::Signed { result: signed };
                        Some((
                            request.key_id.clone(),
                            request.principal.clone(),
                            request.intent.native_value(),
                        ))
                    }
                    Outcome::Deny => {
                        request.status = Status::Denied;
                        None
                    }
                    _ => None,
                };
                request.decision = c.decided.decision.clone();
                // Finished: the body is not needed any more — except by a replica's signed
                // request whose result is withheld, signed again from it when read (up to
                // MAX_KEPT_RESULT_LEN; a longer one is read as its commitment only).
                let resign = matches!(&request.status, Status::Signed { result }
                    if result.get("withheld").and_then(serde_json::Value::as_bool) == Some(true))
                    && request.body.len() <= crate::requests::MAX_KEPT_RESULT_LEN;
                if request.status != Status::Pending && !resign {
                    request.body = Vec::new();
                }
                let owner = request.principal.clone();
                if let Some((key, principal, value)) = signature {
                    self.engine.record(&SignatureRecord {
                        time: at.time,
                        key: &key,
                        principal: &principal,
                        rule: c.decided.decision.rule.as_deref().unwrap_or_default(),
                        value,
                    });
                }
                self.requests.prune(&owner);
                Ok(Applied::State)
            }
            Record::RequestCancelled(c) => {
                let request = self.pending_mut(&c.request_id)?;
                request.status = Status::Cancelled {
                    by: c.by.stamp_key.clone(),
                };
                request.body = Vec::new();
                let owner = request.principal.clone();
                self.requests.prune(&owner);
                Ok(Applied::State)
            }
            Record::Proposal(p) => {
                if self.proposals.len() >= MAX_PROPOSALS {
                    return Err(RecordError::inconsistent("too many open proposals"));
                }
                if self.proposals.iter().any(|q| q.id == p.proposal) {
                    return Err(RecordError::inconsistent("proposal id reused"));
                }
                let change = match p.change.as_str() {
                    "policy" => {
                        let bytes = serde_json::to_vec(&p.document)
                            .map_err(|e| RecordError::field("document", e.to_string()))?;
                        Change::Policy(
                            Policy::from_json(&bytes)
                                .map_err(|e| RecordError::field("document", e.to_string()))?,
                        )
                    }
                    "admins" => {
                        let doc: AdminSetDoc = serde_json::from_value(p.document.clone())
                            .map_err(|e| RecordError::field("document", e.to_string()))?;
                        Change::Admins(
                            AdminSet::from_doc(&doc)
                                .map_err(|e| RecordError::field("document", e.to_string()))?,
                        )
                    }
                    other => {
                        return Err(RecordError::field("change", format!("unknown {other:?}")));
                    }
                };
                let base_admins = hex32("base_admins_digest", &p.base_admins_digest)?;
                let base_policy = hex32("base_policy_digest", &p.base_policy_digest)?;
                let digest = proposal_digest(
                    &p.proposal,
                    change.kind(),
                    &change.content_digest(),
                    &base_admins,
                    &base_policy,
                );
                if hex::encode(digest) != p.digest {
                    return Err(RecordError::inconsistent(
                        "the proposal's digest does not match its document",
                    ));
                }
                self.proposals.push(Proposal {
                    id: p.proposal.clone(),
                    change,
                    digest,
                    base_admins,
                    base_policy,
                    proposed_by: p.by.stamp_key.clone(),
                    proposed_at: at.time,
                    approvals: BTreeSet::new(),
                });
                Ok(Applied::State)
            }
            Record::ProposalApproved(a) => {
                let proposal = self.proposal_mut(&a.proposal)?;
                if !proposal.approvals.insert(a.by.stamp_key.clone()) {
                    return Err(RecordError::inconsistent(
                        "proposal approved twice by one key",
                    ));
                }
                Ok(Applied::State)
            }
            Record::ProposalCancelled(c) => {
                self.proposal_mut(&c.proposal)?;
                self.proposals.retain(|p| p.id != c.proposal);
                Ok(Applied::State)
            }
            Record::PolicyChanged(c) => {
                let index = self
                    .proposals
                    .iter()
                    .position(|p| p.id == c.proposal)
                    .ok_or_else(|| {
                        RecordError::inconsistent(format!("no open proposal {}", c.proposal))
                    })?;
                if !self.proposals[index].is_approved(&self.admins) {
                    return Err(RecordError::inconsistent(
                        "the proposal has not reached the admins' threshold",
                    ));
                }
                let (mut policy, mut admins) = (None, None);
                match &self.proposals[index].change {
                    Change::Policy(p) => policy = Some(p.clone()),
                    Change::Admins(a) => admins = Some(a.clone()),
                }
                let policy_digest = policy
                    .as_ref()
                    .map_or(self.engine.policy().digest(), Policy::digest);
                let admins_digest = admins
                    .as_ref()
                    .map_or(self.admins.digest(), AdminSet::digest);
                if hex::encode(policy_digest) != c.policy_digest
                    || hex::encode(admins_digest) != c.admins_digest
                {
                    return Err(RecordError::inconsistent(
                        "the recorded digests differ from the approved change",
                    ));
                }
                if let Some(policy) = policy {
                    self.engine.replace_policy(policy);
                }
                if let Some(admins) = admins {
                    self.admins = admins;
                }
                // Every other open proposal was made against the rules just replaced.
                self.proposals.clear();
                Ok(Applied::Governance)
            }
        }
    }

    fn pending_mut(&mut self, id: &str) -> Result<&mut PendingRequest, RecordError> {
        let request = self
            .requests
            .get_mut(id)
            .ok_or_else(|| RecordError::inconsistent(format!("no request {id}")))?;
        if request.status != Status::Pending {
            return Err(RecordError::inconsistent(format!(
                "request {id} is no longer pending"
            )));
        }
        Ok(request)
    }

    fn proposal_mut(&mut self, id: &str) -> Result<&mut Proposal, RecordError> {
        self.proposals
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| RecordError::inconsistent(format!("no open proposal {id}")))
    }
}
