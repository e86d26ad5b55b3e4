#![allow(clippy::unwrap_used)]

use super::*;
use strongroom_identity::{AuditEntry, IdentityKey};
use strongroom_policy::Outcome;

fn by() -> By {
    By {
        request: "ab".repeat(32),
        principal: Some("dev".into()),
        stamp_key: "k1".into(),
    }
}

#[test]
fn a_record_survives_the_audit_entry_it_is_kept_in() {
    let record = Record::Decision(DecisionRecord {
        by: by(),
        decided: Decided {
            action: Action::SignDigest,
            key: Some("00".repeat(16)),
            intent: Intent::Digest {
                digest: [7u8; 32].into(),
            },
            decision: Decision {
                outcome: Outcome::NeedsApproval {
                    threshold: 1,
                    approvers: vec!["ops".into()],
                    approved: vec![],
                },
                rule: Some("r".into()),
                reason: "needs 1".into(),
            },
            output: None,
        },
        request_id: Some("0011223344556677".into()),
        held: Some(Held {
            key_label: "treasury".into(),
            body: "e30=".into(),
            intent_digest: "cd".repeat(32),
        }),
    });
    let (kind, fields) = record.to_fields().unwrap();
    assert_eq!(kind, "decision");
    assert_eq!(fields["result"], "needs_approval", "the decision is flat");
    assert_eq!(fields["principal"], "dev", "so is who asked");
    let key = IdentityKey::from_seed(&[1; 32]);
    let (entry, _) = AuditEntry::build(&key, 4, &[0; 32], 9, kind, fields).unwrap();
    let back = Record::from_entry_bytes(&entry.bytes).unwrap();
    assert_eq!(back, record);
    let back = Record::from_fields(entry.fields().unwrap()).unwrap();
    assert_eq!(back, record);
}

#[test]
fn unknown_kinds_and_missing_fields_are_refused() {
    let bad = |v: Value| Record::from_fields(v.as_object().unwrap().clone());
    assert!(bad(serde_json::json!({"kind": "teleport"})).is_err());
    assert!(bad(serde_json::json!({"kind": "key_destroyed", "key": "00"})).is_err());
    assert!(
        bad(serde_json::json!({"kind": "request_cancelled",
        "request": "x", "principal": null, "stamp_key": "k"}))
        .is_err()
    );
    assert!(Record::from_entry_bytes(b"[]").is_err());
}

#[test]
fn every_kind_round_trips_through_its_fields_and_its_entry() {
    let records = crate::samples::every_kind();
    let kinds: Vec<&str> = records.iter().map(Record::kind).collect();
    assert_eq!(kinds, KINDS, "one sample of every kind, in order");
    let key = IdentityKey::from_seed(&[2; 32]);
    for (seq, record) in records.into_iter().enumerate() {
        let (kind, fields) = record.to_fields().unwrap();
        assert_eq!(kind, record.kind());
        assert!(
            !fields.contains_key("kind"),
            "{kind}: the entry holds the kind"
        );
        let mut with_kind = fields.clone();
        with_kind.insert("kind".into(), kind.into());
        let back = Record::from_fields(with_kind).unwrap();
        assert_eq!(back, record, "{kind} from its fields and kind");
        let (entry, _) = AuditEntry::build(&key, seq as u64, &[0; 32], 9, kind, fields).unwrap();
        assert_eq!(
            Record::from_entry_bytes(&entry.bytes).unwrap(),
            record,
            "{kind}"
        );
        assert_eq!(
            Record::from_fields(entry.fields().unwrap()).unwrap(),
            record
        );
    }
}

#[test]
fn an_unknown_kind_is_told_from_fields_that_do_not_decode() {
    let key = IdentityKey::from_seed(&[2; 32]);
    let entry = |kind: &str, fields: Value| {
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        AuditEntry::build(&key, 1, &[0; 32], 9, kind, fields)
            .unwrap()
            .0
    };
    let newer = entry("teleport", serde_json::json!({"to": "mars"}));
    assert_eq!(
        Record::from_entry_bytes(&newer.bytes),
        Err(RecordError::UnknownKind("teleport".into()))
    );
    assert_eq!(
        Record::from_fields(newer.fields().unwrap()),
        Err(RecordError::UnknownKind("teleport".into()))
    );
    let short = entry("key_destroyed", serde_json::json!({"key": "00"}));
    let err = Record::from_entry_bytes(&short.bytes).unwrap_err();
    assert!(
        matches!(&err, RecordError::Decode(e) if e.contains("missing field")),
        "{err}"
    );
    let wrong = entry(
        "policy_changed",
        serde_json::json!({"proposal": "p", "change": "policy", "policy_digest": "00",
            "admins_digest": "00", "discarded_proposals": "none"}),
    );
    assert!(matches!(
        Record::from_entry_bytes(&wrong.bytes),
        Err(RecordError::Decode(_))
    ));
}
