//! One record of every kind, for the tests.

use serde_json::json;
use strongroom_policy::{Action, Decision, Intent, Outcome};

use crate::record::{
    By, Decided, DecisionRecord, Held, KeyCreated, KeyDestroyed, PolicyChanged, ProposalApproved,
    ProposalCancelled, ProposalMade, Record, RequestApproved, RequestCancelled, RequestCompleted,
};
use strongroom_identity::{BootEntry, Resumed};

pub(crate) fn by() -> By {
    By {
        request: "ab".repeat(32),
        principal: Some("dev".into()),
        stamp_key: "k1".into(),
    }
}

pub(crate) fn admin() -> By {
    By {
        request: "cd".repeat(32),
        principal: None,
        stamp_key: "admin-1".into(),
    }
}

pub(crate) const KEY: &str = "00112233445566778899aabbccddeeff";

pub(crate) fn decided(action: Action, outcome: Outcome) -> Decided {
    let intent = match action {
        Action::CreateKey => Intent::CreateKey {
            label: "treasury".into(),
        },
        Action::DestroyKey => Intent::DestroyKey,
        _ => Intent::Digest {
            digest: [7u8; 32].into(),
        },
    };
    Decided {
        action,
        key: (action != Action::CreateKey).then(|| KEY.into()),
        intent,
        decision: Decision {
            outcome,
            rule: Some("r".into()),
            reason: "because".into(),
        },
        output: (action == Action::SignDigest).then(|| json!({"signature": "0x00"})),
    }
}

pub(crate) fn needs_one() -> Outcome {
    Outcome::NeedsApproval {
        threshold: 1,
        approvers: vec!["ops".into()],
        approved: vec![],
    }
}

/// One record of every kind, in the order of `KINDS`.
pub(crate) fn every_kind() -> Vec<Record> {
    vec![
        Record::Boot(BootEntry {
            identity: "11".repeat(32),
            attestation: "AAEC".into(),
            first_boot: false,
            replica: "i-0abc".into(),
            identity_tag: Some("22".repeat(32)),
            resumed: Some(Resumed {
                snapshot_next_seq: 3,
                snapshot_head: "33".repeat(32),
                replayed: 2,
            }),
        }),
        Record::Decision(DecisionRecord {
            by: by(),
            decided: decided(Action::SignDigest, needs_one()),
            request_id: Some("0011223344556677".into()),
            held: Some(Held {
                key_label: "treasury".into(),
                body: "e30=".into(),
                intent_digest: "cd".repeat(32),
            }),
        }),
        Record::KeyCreated(KeyCreated {
            by: by(),
            key: KEY.into(),
            address: "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf".into(),
            label: "treasury".into(),
        }),
        Record::KeyDestroyed(KeyDestroyed {
            by: admin(),
            key: KEY.into(),
            address: "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf".into(),
        }),
        Record::RequestApproved(RequestApproved {
            by: By {
                principal: Some("ops".into()),
                ..by()
            },
            request_id: "0011223344556677".into(),
            intent_digest: "cd".repeat(32),
        }),
        Record::RequestCompleted(RequestCompleted {
            by: by(),
            request_id: "0011223344556677".into(),
            decided: decided(Action::SignDigest, Outcome::Allow),
            signed: Some(json!({"status": 200})),
        }),
        Record::RequestCancelled(RequestCancelled {
            by: by(),
            request_id: "8899aabbccddeeff".into(),
        }),
        Record::Proposal(ProposalMade {
            by: admin(),
            proposal: "p1".into(),
            change: "policy".into(),
            digest: "44".repeat(32),
            document: json!({"rules": []}),
            base_admins_digest: "55".repeat(32),
            base_policy_digest: "66".repeat(32),
        }),
        Record::ProposalApproved(ProposalApproved {
            by: admin(),
            proposal: "p1".into(),
            change: "policy".into(),
            digest: "44".repeat(32),
            approvals: 2,
            applied: true,
        }),
        Record::ProposalCancelled(ProposalCancelled {
            by: admin(),
            proposal: "p2".into(),
        }),
        Record::PolicyChanged(PolicyChanged {
            proposal: "p1".into(),
            change: "policy".into(),
            policy_digest: "44".repeat(32),
            admins_digest: "55".repeat(32),
            discarded_proposals: vec!["p3".into()],
        }),
    ]
}
