#![allow(clippy::unwrap_used)]

use super::*;
use crate::record::DecisionRecord;
use crate::samples::{KEY, by, decided, every_kind};

fn decision(action: Action, outcome: Outcome) -> Record {
    Record::Decision(DecisionRecord {
        by: by(),
        decided: decided(action, outcome),
        request_id: None,
        held: None,
    })
}

#[test]
fn a_summary_counts_kinds_outcomes_signatures_keys_and_changes() {
    let mut records = every_kind();
    records.extend([
        decision(Action::SignDigest, Outcome::Allow),
        decision(Action::SignDigest, Outcome::Allow),
        decision(Action::SignDigest, Outcome::Deny),
        decision(Action::SignDigest, Outcome::TimeLocked { until: 5 }),
        // Allowed, but not a signature.
        decision(Action::CreateKey, Outcome::Allow),
        decision(Action::DestroyKey, Outcome::Deny),
    ]);
    let mut summary = Summary::new();
    for (seq, record) in records.iter().enumerate() {
        summary.add(seq as u64, 100 + seq as u64, record);
    }
    assert_eq!(summary.records, 17);
    assert_eq!(summary.by_kind["decision"], 7);
    assert_eq!(summary.by_kind["boot"], 1);
    assert_eq!(summary.by_kind.len(), KINDS.len());
    assert_eq!(
        summary.decisions,
        Tally {
            allowed: 3,
            denied: 2,
            held: 2
        }
    );
    assert_eq!(
        summary.requests_completed,
        Tally {
            allowed: 1,
            denied: 0,
            held: 0
        }
    );
    // Two allowed digests and the completed held request.
    assert_eq!(summary.signatures[KEY], 3);
    assert_eq!(summary.signatures_total(), 3);
    assert_eq!(summary.keys_created.len(), 1);
    assert_eq!(summary.keys_created[0].seq, 2);
    assert_eq!(summary.keys_created[0].label.as_deref(), Some("treasury"));
    assert_eq!(summary.keys_destroyed[0].seq, 3);
    assert_eq!(summary.keys_destroyed[0].principal, None);
    assert_eq!(summary.policy_changes.len(), 1);
    assert_eq!(summary.policy_changes[0].proposal, "p1");
    assert_eq!(summary.policy_changes[0].seq, 10);

    let json = summary.to_json();
    assert_eq!(json["by_kind"]["policy_changed"], 1);
    assert_eq!(json["decisions"]["held"], 2);
    assert_eq!(json["signatures"][KEY], 3);
    assert_eq!(json["keys_created"][0]["key"], KEY);
    assert!(json["keys_destroyed"][0].get("label").is_none());
    assert_eq!(json["policy_changes"][0]["discarded_proposals"][0], "p3");
}

#[test]
fn an_empty_summary_names_every_kind_at_zero() {
    let json = Summary::new().to_json();
    assert_eq!(json["records"], 0);
    assert_eq!(json["by_kind"].as_object().unwrap().len(), KINDS.len());
    assert_eq!(json["signatures"], serde_json::json!({}));
}
