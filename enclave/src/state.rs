//! The enclave's governed state: the admin set and genesis digest, the policy, the
//! velocity counters, open proposals, pending signing requests, the ids of destroyed keys —
//! and where in the log it stands.
//!
//! The state changes only in [`EnclaveState::apply`], one log record at a time (see
//! [`crate::record`]); live requests and the replay at boot call the same function. It is
//! sealed as a *snapshot* when the proxy asks (`Request::ReadSnapshot`: after every boot
//! and every `SNAPSHOT_EVERY` records it stores, and at a clean shutdown), never per request; a snapshot names the position it was taken at (the next
//! record's sequence number and the last record's hash) and the identities that sign the
//! records after it, so a boot verifies and replays exactly the records that follow.
//!
//! What freshness rests on: an older snapshot costs replay time, nothing else, because the
//! records after it are replayed. To make the enclave forget a change the parent must drop
//! its record and everything after it; the enclave then writes a *different* record under a
//! sequence number it has already issued, a fork that every client holding a later head
//! refuses and `strongroom audit verify --checkpoint` reports.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use strongroom_identity::Signers;
use strongroom_policy::{Engine, Policy, Velocity};
use zeroize::Zeroizing;

use crate::governance::{AdminSet, AdminSetDoc, Change, Proposal};
use crate::requests::Requests;
use crate::seal::{Curve, ObjectId, ObjectKind};

/// Most destroyed keys one state records.
pub const MAX_DESTROYED: usize = 16 * 1024;

/// The identity of the sealed snapshot object (version 4: the state as a log).
pub const STATE_OBJECT: ObjectId = ObjectId {
    kind: ObjectKind::EnclaveState,
    id: [0; 16],
    version: 4,
    curve: Curve::None,
};

/// Everything the enclave must remember between boots.
#[derive(Clone, Debug)]
pub struct EnclaveState {
    /// Governed changes applied (policy, approvals, requests, velocity, destroyed keys).
    pub seq: u64,
    /// Ids of destroyed keys.
    pub destroyed: BTreeSet<[u8; 16]>,
    /// Digest of the genesis document (fixed at first boot).
    pub genesis: [u8; 32],
    /// The admin set.
    pub admins: AdminSet,
    /// The policy and its velocity counters.
    pub engine: Engine,
    /// Open proposals.
    pub proposals: Vec<Proposal>,
    /// Pending and recently finished signing requests.
    pub requests: Requests,
    /// The sequence number of the next record: how many records the state reflects.
    pub audit_next: u64,
    /// The hash of the last record applied ([`GENESIS_PREV`](strongroom_identity::GENESIS_PREV)
    /// before the first).
    pub audit_head: [u8; 32],
    /// The identities that may sign the records from `audit_next` on, one per replica
    /// (set by the boot records).
    pub signers: Signers,
}

/// The sealed state's plaintext does not parse or breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("enclave state is malformed: {0}")]
pub struct StateMalformed(pub String);

#[derive(Serialize, Deserialize)]
struct StateDoc {
    seq: u64,
    destroyed: Vec<ByteBuf>,
    genesis: ByteBuf,
    admins: AdminSetDoc,
    policy: ByteBuf,
    velocity: ByteBuf,
    proposals: Vec<ProposalDoc>,
    requests: Requests,
    audit_next: u64,
    audit_head: ByteBuf,
    /// The latest boot's identity (all a snapshot named before replicas).
    identity: Option<ByteBuf>,
    #[serde(default)]
    signers: Option<Signers>,
}

#[derive(Serialize, Deserialize)]
struct ProposalDoc {
    id: String,
    kind: String,
    document: ByteBuf,
    digest: ByteBuf,
    base_admins: ByteBuf,
    base_policy: ByteBuf,
    proposed_by: String,
    proposed_at: u64,
    approvals: BTreeSet<String>,
}

fn malformed(what: impl std::fmt::Display) -> StateMalformed {
    StateMalformed(what.to_string())
}

impl EnclaveState {
    /// The state a first boot starts from: the genesis, nothing recorded yet.
    pub fn genesis(genesis: strongroom_policy::Genesis) -> Self {
        Self {
            seq: 0,
            destroyed: BTreeSet::new(),
            genesis: genesis.digest(),
            admins: genesis.admins,
            engine: Engine::new(genesis.policy, Velocity::default()),
            proposals: Vec::new(),
            requests: Requests::default(),
            audit_next: 0,
            audit_head: strongroom_identity::GENESIS_PREV,
            signers: Signers::default(),
        }
    }

    /// Serialises the state (CBOR).
    pub fn to_plaintext(&self) -> Result<Zeroizing<Vec<u8>>, StateMalformed> {
        let proposals = self
            .proposals
            .iter()
            .map(|p| {
                let document = match &p.change {
                    Change::Policy(policy) => policy.to_canonical_json(),
                    Change::Admins(admins) => {
                        serde_json::to_vec(&admins.to_doc()).map_err(malformed)?
                    }
                };
                Ok(ProposalDoc {
                    id: p.id.clone(),
                    kind: p.change.kind().to_string(),
                    document: document.into(),
                    digest: p.digest.to_vec().into(),
                    base_admins: p.base_admins.to_vec().into(),
                    base_policy: p.base_policy.to_vec().into(),
                    proposed_by: p.proposed_by.clone(),
                    proposed_at: p.proposed_at,
                    approvals: p.approvals.clone(),
                })
            })
            .collect::<Result<Vec<_>, StateMalformed>>()?;
        let doc = StateDoc {
            seq: self.seq,
            destroyed: self
                .destroyed
                .iter()
                .map(|id| ByteBuf::from(id.to_vec()))
                .collect(),
            genesis: self.genesis.to_vec().into(),
            admins: self.admins.to_doc(),
            policy: self.engine.policy().to_canonical_json().into(),
            velocity: self.engine.velocity().to_bytes().into(),
            proposals,
            requests: self.requests.clone(),
            audit_next: self.audit_next,
            audit_head: self.audit_head.to_vec().into(),
            identity: self.signers.latest().map(|s| s.identity.to_vec().into()),
            signers: Some(self.signers.clone()),
        };
        let mut out = Zeroizing::new(Vec::new());
        ciborium::into_writer(&doc, &mut *out).map_err(malformed)?;
        Ok(out)
    }

    /// Parses a plaintext and checks every invariant again (policy, admin set, bounds).
    pub fn from_plaintext(bytes: &[u8]) -> Result<Self, StateMalformed> {
        let doc: StateDoc = ciborium::from_reader(bytes).map_err(malformed)?;
        if doc.destroyed.len() > MAX_DESTROYED {
            return Err(malformed("too many destroyed keys"));
        }
        let mut destroyed = BTreeSet::new();
        for id in &doc.destroyed {
            let id: [u8; 16] = id
                .as_slice()
                .try_into()
                .map_err(|_| malformed("destroyed key id"))?;
            if !destroyed.insert(id) {
                return Err(malformed("destroyed key listed twice"));
            }
        }
        let genesis: [u8; 32] = doc
            .genesis
            .as_slice()
            .try_into()
            .map_err(|_| malformed("genesis digest"))?;
        let admins = AdminSet::from_doc(&doc.admins).map_err(malformed)?;
        let policy = Policy::from_json(&doc.policy).map_err(malformed)?;
        let velocity = Velocity::from_bytes(&doc.velocity).map_err(malformed)?;
        let mut proposals = Vec::with_capacity(doc.proposals.len().min(64));
        for p in doc.proposals {
            let change = match p.kind.as_str() {
                "policy" => Change::Policy(Policy::from_json(&p.document).map_err(malformed)?),
                "admins" => {
                    let d: AdminSetDoc = serde_json::from_slice(&p.document).map_err(malformed)?;
                    Change::Admins(AdminSet::from_doc(&d).map_err(malformed)?)
                }
                _ => return Err(malformed("proposal kind")),
            };
            proposals.push(Proposal {
                id: p.id,
                change,
                digest: p
                    .digest
                    .as_slice()
                    .try_into()
                    .map_err(|_| malformed("proposal digest"))?,
                base_admins: p
                    .base_admins
                    .as_slice()
                    .try_into()
                    .map_err(|_| malformed("proposal base"))?,
                base_policy: p
                    .base_policy
                    .as_slice()
                    .try_into()
                    .map_err(|_| malformed("proposal base"))?,
                proposed_by: p.proposed_by,
                proposed_at: p.proposed_at,
                approvals: p.approvals,
            });
        }
        if !doc.requests.is_well_formed() {
            return Err(malformed("requests"));
        }
        let signers = match doc.signers {
            Some(s) if s.is_well_formed() => s,
            Some(_) => return Err(malformed("signers")),
            // A snapshot from before replicas: the single enclave's identity.
            None => {
                let mut s = Signers::default();
                if let Some(identity) = doc.identity {
                    let identity: [u8; 32] = identity
                        .as_slice()
                        .try_into()
                        .map_err(|_| malformed("identity"))?;
                    let at = doc.audit_next.saturating_sub(1);
                    s.boot("", identity, at);
                }
                s
            }
        };
        Ok(Self {
            seq: doc.seq,
            destroyed,
            genesis,
            admins,
            engine: Engine::new(policy, velocity),
            proposals,
            requests: doc.requests,
            audit_next: doc.audit_next,
            audit_head: doc
                .audit_head
                .as_slice()
                .try_into()
                .map_err(|_| malformed("audit head"))?,
            signers,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::governance::{AdminSetDoc, proposal_digest};
    use strongroom_policy::KeySpec;

    fn state() -> EnclaveState {
        let admin = strongroom_auth::SigningKey::ed25519_from_seed(&[3; 32]).public();
        let principal = strongroom_auth::SigningKey::ed25519_from_seed(&[4; 32]).public();
        let policy = Policy::from_json(
            serde_json::json!({"version": 1,
                "principals": [{"id": "p", "roles": [], "keys": [KeySpec::from_key(&principal)]}],
                "rules": [{"name": "d", "effect": "allow", "actions": ["sign_digest"]}]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let admins = AdminSet::from_doc(&AdminSetDoc {
            threshold: 1,
            keys: vec![KeySpec::from_key(&admin)],
        })
        .unwrap();
        let change = Change::Policy(policy.clone());
        let (base_admins, base_policy) = (admins.digest(), policy.digest());
        let digest = proposal_digest(
            "ab",
            change.kind(),
            &change.content_digest(),
            &admins.digest(),
            &policy.digest(),
        );
        EnclaveState {
            seq: 3,
            destroyed: [[1; 16], [2; 16]].into_iter().collect(),
            genesis: [9; 32],
            admins,
            engine: Engine::new(policy, Velocity::default()),
            proposals: vec![Proposal {
                id: "ab".into(),
                change,
                digest,
                base_admins,
                base_policy,
                proposed_by: "k".into(),
                proposed_at: 5,
                approvals: BTreeSet::from(["x".to_string()]),
            }],
            requests: Requests::default(),
            audit_next: 12,
            audit_head: [6; 32],
            signers: {
                let mut s = Signers::default();
                s.boot("", [5; 32], 10);
                s.boot("b", [7; 32], 11);
                s
            },
        }
    }

    #[test]
    fn round_trip_keeps_everything() {
        let s = state();
        let bytes = s.to_plaintext().unwrap();
        let back = EnclaveState::from_plaintext(&bytes).unwrap();
        assert_eq!(back.seq, 3);
        assert_eq!((back.audit_next, back.audit_head), (12, [6; 32]));
        assert_eq!(back.signers, s.signers);
        assert_eq!(back.signers.latest().map(|l| l.identity), Some([7; 32]));
        assert_eq!(back.destroyed, s.destroyed);
        assert_eq!(back.genesis, s.genesis);
        assert_eq!(back.admins, s.admins);
        assert_eq!(back.engine.policy().digest(), s.engine.policy().digest());
        assert_eq!(back.proposals[0].digest, s.proposals[0].digest);
        assert_eq!(back.proposals[0].approvals, s.proposals[0].approvals);
        assert_eq!(*back.to_plaintext().unwrap(), *bytes, "deterministic");
    }

    #[test]
    fn malformed_states_are_refused() {
        let bytes = state().to_plaintext().unwrap();
        assert!(EnclaveState::from_plaintext(&bytes[..bytes.len() - 1]).is_err());
        assert!(EnclaveState::from_plaintext(b"").is_err());
        // Re-encode with a broken invariant each time.
        let value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
        let edit = |field: &str, v: ciborium::Value| {
            let mut map = value.as_map().unwrap().clone();
            for (k, slot) in map.iter_mut() {
                if k.as_text() == Some(field) {
                    *slot = v.clone();
                }
            }
            let mut out = Vec::new();
            ciborium::into_writer(&ciborium::Value::Map(map), &mut out).unwrap();
            EnclaveState::from_plaintext(&out).map(|_| ())
        };
        let id = ciborium::Value::Bytes(vec![1; 16]);
        assert!(edit("destroyed", ciborium::Value::Array(vec![id.clone(), id])).is_err());
        assert!(edit("genesis", ciborium::Value::Bytes(vec![0; 31])).is_err());
        assert!(edit("policy", ciborium::Value::Bytes(b"{}".to_vec())).is_err());
        assert!(edit("velocity", ciborium::Value::Bytes(b"junk".to_vec())).is_err());
    }
}
