//! Who may change the rules: the admin set fixed at genesis, and proposals that take effect
//! only when a quorum of that set has approved their exact digest. Pure logic, no I/O.
//!
//! The genesis document comes from the parent on the first boot, so the parent chooses it;
//! what stops a parent from choosing its own admins is that the genesis digest is published
//! in every attestation document, where clients and auditors compare it with the one they
//! expect (see `strongroom_identity::UserData`).

use std::collections::BTreeSet;

use serde::Deserialize;
use strongroom_policy::Policy;
pub use strongroom_policy::{AdminSet, AdminSetDoc, Genesis, MAX_GENESIS_LEN, proposal_digest};

/// Most open proposals at once.
pub const MAX_PROPOSALS: usize = 32;

/// Why a governance document or action was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GovernanceError {
    /// The document does not parse or breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The policy inside does not validate.
    #[error("policy: {0}")]
    Policy(String),
}

/// What a proposal changes.
#[derive(Clone, Debug)]
pub enum Change {
    /// Replace the policy.
    Policy(Policy),
    /// Replace the admin set.
    Admins(AdminSet),
}

impl Change {
    /// `policy` or `admins`.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::Policy(_) => "policy",
            Change::Admins(_) => "admins",
        }
    }

    /// The digest of the new content.
    pub fn content_digest(&self) -> [u8; 32] {
        match self {
            Change::Policy(p) => p.digest(),
            Change::Admins(a) => a.digest(),
        }
    }

    /// The proposed document, as JSON.
    pub fn document(&self) -> serde_json::Value {
        match self {
            Change::Policy(p) => {
                serde_json::from_slice(&p.to_canonical_json()).unwrap_or(serde_json::Value::Null)
            }
            Change::Admins(a) => serde_json::to_value(a.to_doc()).unwrap_or_default(),
        }
    }
}

/// The body of `POST /v1/policy/proposals`: exactly one of the two.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalBody {
    /// A new policy document.
    pub policy: Option<serde_json::Value>,
    /// A new admin set.
    pub admins: Option<AdminSetDoc>,
}

impl ProposalBody {
    /// Parses and validates the proposed change.
    pub fn parse(bytes: &[u8]) -> Result<Change, GovernanceError> {
        let body: ProposalBody = strongroom_eth::from_slice_strict(bytes)
            .map_err(|e| GovernanceError::Invalid(format!("proposal body: {e}")))?;
        match (body.policy, body.admins) {
            (Some(policy), None) => {
                let bytes = serde_json::to_vec(&policy)
                    .map_err(|e| GovernanceError::Invalid(format!("policy: {e}")))?;
                Policy::from_json(&bytes)
                    .map(Change::Policy)
                    .map_err(|e| GovernanceError::Policy(e.to_string()))
            }
            (None, Some(admins)) => AdminSet::from_doc(&admins)
                .map(Change::Admins)
                .map_err(|e| GovernanceError::Invalid(e.to_string())),
            _ => Err(GovernanceError::Invalid(
                "a proposal body holds exactly one of \"policy\" and \"admins\"".into(),
            )),
        }
    }
}

/// A change waiting for admin approvals.
#[derive(Clone, Debug)]
pub struct Proposal {
    /// Random id (16 hex characters).
    pub id: String,
    /// The change.
    pub change: Change,
    /// What admins approve: see [`proposal_digest`].
    pub digest: [u8; 32],
    /// The admin-set digest it was proposed against.
    pub base_admins: [u8; 32],
    /// The policy digest it was proposed against.
    pub base_policy: [u8; 32],
    /// Key id of whoever proposed it.
    pub proposed_by: String,
    /// When, enclave clock.
    pub proposed_at: u64,
    /// Admin key ids that approved.
    pub approvals: BTreeSet<String>,
}

/// Why an approval was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    /// The key that signed is not an admin.
    #[error("key {0} is not in the admin set; only admins approve changes")]
    NotAdmin(String),
    /// The digest in the approval is not this proposal's.
    #[error("the approved digest is not this proposal's digest {expected}")]
    WrongDigest {
        /// The proposal's digest, hex.
        expected: String,
    },
    /// This admin approved already.
    #[error("admin {0} has already approved this proposal")]
    Duplicate(String),
}

impl Proposal {
    /// Checks an admin's approval of `digest` without recording it; returns the number of
    /// approvals it would make.
    pub fn check_approval(
        &self,
        admins: &AdminSet,
        admin_key_id: &str,
        digest: &[u8; 32],
    ) -> Result<usize, ApprovalError> {
        if admins.key(admin_key_id).is_none() {
            return Err(ApprovalError::NotAdmin(admin_key_id.to_string()));
        }
        if digest != &self.digest {
            return Err(ApprovalError::WrongDigest {
                expected: hex::encode(self.digest),
            });
        }
        if self.approvals.contains(admin_key_id) {
            return Err(ApprovalError::Duplicate(admin_key_id.to_string()));
        }
        Ok(self.approvals.len() + 1)
    }

    /// Whether `approvals` of these admins reach the threshold.
    pub fn would_apply(&self, admins: &AdminSet, with: &str) -> bool {
        self.approvals
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(with))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|id| admins.key(id).is_some())
            .count()
            >= admins.threshold() as usize
    }

    /// True once `admins.threshold()` distinct admins approved.
    pub fn is_approved(&self, admins: &AdminSet) -> bool {
        self.approvals
            .iter()
            .filter(|id| admins.key(id).is_some())
            .count()
            >= admins.threshold() as usize
    }
}
