//! One test (or a few) per condition: passes, fails, and the reason text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use alloy_primitives::U256;
use common::*;
use serde_json::json;
use strongroom_policy::{
    BUCKETS_PER_WINDOW, Engine, Erc20Call, Intent, MAX_SUBJECT_LEN, Outcome, Permit, PermitScheme,
    SignatureRecord, TransactionIntent, TxType, TypedDataIntent, Velocity, VelocityScope,
};

fn allow_tx(conditions: serde_json::Value) -> strongroom_policy::Policy {
    policy(
        json!([{"name": "r", "effect": "allow", "actions": ["sign_transaction"], "conditions": conditions}]),
    )
}

#[test]
fn default_deny() {
    let p = policy(json!([]));
    let d = decide(&p, &Req::new(transfer(U256::ZERO)));
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(d.rule, None);
    assert_eq!(
        d.reason,
        r#"no rule allows sign_transaction for principal "alice" on key "treasury" (default deny)"#
    );
    let d = decide(
        &p,
        &Req::new(Intent::CreateKey {
            label: "hot".into(),
        }),
    );
    assert_eq!(
        d.reason,
        r#"no rule allows create_key for principal "alice" for new key "hot" (default deny)"#
    );
}

#[test]
fn unknown_principal_and_missing_key_are_denied() {
    let p = policy(json!([{"name": "any", "effect": "allow", "actions": ["sign_message"]}]));
    assert!(allowed(&p, &Req::new(message(3))));
    assert_eq!(
        denied(&p, &Req::new(message(3)).by("mallory")),
        r#"principal "mallory" is not in the policy (default deny)"#
    );
    let mut r = Req::new(message(3));
    r.key = None;
    assert_eq!(
        denied(&p, &r),
        "sign_message needs a key and the request names none"
    );
    // A key id is a velocity subject: it must fit a counter.
    assert_eq!(
        denied(&p, &Req::new(message(3)).key("", KEY_LABEL)),
        "the request names an empty key id"
    );
    let long = "k".repeat(MAX_SUBJECT_LEN + 1);
    assert_eq!(
        denied(&p, &Req::new(message(3)).key(&long, KEY_LABEL)),
        "key id is longer than 255 bytes"
    );
    assert!(allowed(
        &p,
        &Req::new(message(3)).key(&long[1..], KEY_LABEL)
    ));
}

#[test]
fn scope_principals_roles_and_keys() {
    let p = policy(json!([
        {"name": "by-id", "effect": "allow", "principals": ["dave"], "actions": ["sign_message"]},
        {"name": "by-role", "effect": "allow", "roles": ["approver"], "actions": ["sign_digest"]},
        {"name": "either", "effect": "allow", "principals": ["dave"], "roles": ["signer"], "actions": ["sign_typed_data"], "conditions": {"typed_data": {"allow_unknown_types": true}}},
        {"name": "keys", "effect": "allow", "keys": ["hot", "fedcba9876543210fedcba9876543210"], "actions": ["sign_transaction"]},
        {"name": "create", "effect": "allow", "keys": ["hot"], "actions": ["create_key"]}
    ]));
    assert!(allowed(&p, &Req::new(message(1)).by("dave")));
    assert!(!allowed(&p, &Req::new(message(1)).by("alice")));
    assert!(allowed(&p, &Req::new(digest()).by("bob")));
    assert!(allowed(&p, &Req::new(digest()).by("carol")));
    assert!(!allowed(&p, &Req::new(digest()).by("alice")));
    let td = Intent::TypedData(typed());
    assert!(allowed(&p, &Req::new(td.clone()).by("dave")));
    assert!(allowed(&p, &Req::new(td.clone()).by("alice")));
    assert!(!allowed(&p, &Req::new(td).by("bob")));
    let t = transfer(U256::ZERO);
    assert!(allowed(&p, &Req::new(t.clone()).key("aa", "hot")));
    assert!(allowed(
        &p,
        &Req::new(t.clone()).key("fedcba9876543210fedcba9876543210", "x")
    ));
    assert!(!allowed(&p, &Req::new(t.clone()).key("aa", "cold")));
    // A label shaped like a key id does not match a rule naming that id.
    assert!(!allowed(
        &p,
        &Req::new(t).key("aa", "fedcba9876543210fedcba9876543210")
    ));
    assert!(allowed(
        &p,
        &Req::new(Intent::CreateKey {
            label: "hot".into()
        })
    ));
    assert!(!allowed(
        &p,
        &Req::new(Intent::CreateKey {
            label: "cold".into()
        })
    ));
    // Naming an action is required: a digest rule does not cover destroy_key.
    assert!(!allowed(&p, &Req::new(Intent::DestroyKey).by("bob")));
}

#[test]
fn chain_ids() {
    let p = allow_tx(json!({"chain_ids": [1, 11155111]}));
    assert!(allowed(&p, &Req::new(transfer(U256::ZERO))));
    let t = Intent::Transaction(TransactionIntent {
        chain_id: 5,
        ..tx()
    });
    assert_eq!(
        denied(&p, &Req::new(t)),
        r#"chain id 5 is not allowed by rule "r""#
    );
    let p = policy(
        json!([{"name": "x", "effect": "allow", "actions": ["sign_typed_data"],
                "conditions": {"chain_ids": [1], "typed_data": {"allow_unknown_types": true}}}]),
    );
    assert!(allowed(&p, &Req::new(Intent::TypedData(typed()))));
    let no_chain = Intent::TypedData(TypedDataIntent {
        chain_id: None,
        ..typed()
    });
    assert_eq!(
        denied(&p, &Req::new(no_chain)),
        r#"typed data without a domain chain id is not allowed by rule "x""#
    );
}

#[test]
fn destinations_and_contract_creation() {
    let p = allow_tx(json!({"destinations": [a(0xaa)]}));
    assert!(allowed(&p, &Req::new(transfer(U256::ZERO))));
    let other = Intent::Transaction(TransactionIntent {
        to: Some(addr(0xbb)),
        ..tx()
    });
    assert_eq!(
        denied(&p, &Req::new(other)),
        format!(r#"destination {} is not allowed by rule "r""#, a(0xbb))
    );
    let create = Intent::Transaction(TransactionIntent {
        to: None,
        data_len: 500,
        ..tx()
    });
    assert_eq!(
        denied(&p, &Req::new(create.clone())),
        r#"contract creation is not allowed by rule "r""#
    );
    let p = allow_tx(json!({"allow_contract_creation": true}));
    assert!(allowed(&p, &Req::new(create)));
}

#[test]
fn denied_destinations() {
    let p = policy(
        json!([{"name": "r", "effect": "allow", "actions": ["sign_transaction", "sign_typed_data"],
        "conditions": {"denied_destinations": [a(0xbb)],
                       "erc20": [{"token": a(0x70), "max_amount": "1000", "spenders": [a(0xbb)]}],
                       "typed_data": {"permit_spenders": [a(0xbb)]}}}]),
    );
    assert!(allowed(&p, &Req::new(transfer(U256::ZERO))));
    let to_bb = Intent::Transaction(TransactionIntent {
        to: Some(addr(0xbb)),
        ..tx()
    });
    let reason = format!(r#"destination {} is denied by rule "r""#, a(0xbb));
    assert_eq!(denied(&p, &Req::new(to_bb)), reason);
    assert_eq!(denied(&p, &Req::new(token_transfer(0x70, 0xbb, 1))), reason);
    assert!(allowed(&p, &Req::new(token_transfer(0x70, 0xbc, 1))));
    let approve = erc20_tx(Erc20Call::Approve {
        token: addr(0x70),
        spender: addr(0xbb),
        amount: U256::from(1),
    });
    assert_eq!(denied(&p, &Req::new(approve)), reason);
    assert_eq!(denied(&p, &Req::new(permit(0xbb))), reason);
}

#[test]
fn max_value() {
    let p = policy(
        json!([{"name": "treasury-daily", "effect": "allow", "actions": ["sign_transaction"],
        "conditions": {"max_value": "1 ether"}}]),
    );
    assert!(allowed(&p, &Req::new(transfer(eth(1)))));
    let d = decide(&p, &Req::new(transfer(eth(2))));
    assert_eq!(d.rule.as_deref(), Some("treasury-daily"));
    assert_eq!(
        d.reason,
        r#"value 2 ETH exceeds cap 1 ETH of rule "treasury-daily""#
    );
    assert_eq!(
        denied(&p, &Req::new(transfer(eth_milli(1500)))),
        r#"value 1.5 ETH exceeds cap 1 ETH of rule "treasury-daily""#
    );
}

#[test]
fn calldata_needs_an_explicit_grant() {
    let call = Intent::Transaction(TransactionIntent {
        selector: Some([0x12, 0x34, 0x56, 0x78]),
        data_len: 36,
        ..tx()
    });
    let plain = allow_tx(json!({"max_value": "1 ether"}));
    assert_eq!(
        denied(&plain, &Req::new(call.clone())),
        format!(
            r#"calldata to {} (selector 0x12345678, 36 bytes) is not allowed by rule "r""#,
            a(0xaa)
        )
    );
    // Even a decoded ERC-20 transfer is calldata.
    assert!(!allowed(&plain, &Req::new(token_transfer(0xaa, 0xbb, 1))));
    let listed =
        allow_tx(json!({"contract_calls": [{"contract": a(0xaa), "selector": "0x12345678"}]}));
    assert!(allowed(&listed, &Req::new(call)));
    let other_selector = Intent::Transaction(TransactionIntent {
        selector: Some([0x12, 0x34, 0x56, 0x79]),
        data_len: 36,
        ..tx()
    });
    assert!(!allowed(&listed, &Req::new(other_selector)));
    let short = Intent::Transaction(TransactionIntent {
        selector: None,
        data_len: 2,
        ..tx()
    });
    assert!(!allowed(&listed, &Req::new(short)));
}

#[test]
fn erc20() {
    let p = allow_tx(json!({"erc20": [
        {"token": a(0x70), "max_amount": "1000000", "spenders": [a(0x5e)], "recipients": [a(0xbb)]},
        {"token": a(0x71), "max_amount": "0x10"}
    ]}));
    assert!(allowed(
        &p,
        &Req::new(token_transfer(0x70, 0xbb, 1_000_000))
    ));
    assert_eq!(
        denied(&p, &Req::new(token_transfer(0x70, 0xbb, 1_000_001))),
        format!(
            r#"token amount 1000001 exceeds cap 1000000 for token {} of rule "r""#,
            a(0x70)
        )
    );
    assert_eq!(
        denied(&p, &Req::new(token_transfer(0x70, 0xbc, 1))),
        format!(
            r#"token recipient {} is not allowed for token {} by rule "r""#,
            a(0xbc),
            a(0x70)
        )
    );
    // No recipients list: any recipient.
    assert!(allowed(&p, &Req::new(token_transfer(0x71, 0xbc, 16))));
    assert!(!allowed(&p, &Req::new(token_transfer(0x71, 0xbc, 17))));
    let from = erc20_tx(Erc20Call::TransferFrom {
        token: addr(0x70),
        from: addr(1),
        to: addr(0xbc),
        amount: U256::from(1),
    });
    assert!(!allowed(&p, &Req::new(from)));
    // Unlisted token: the calldata gate refuses it first.
    assert!(!allowed(&p, &Req::new(token_transfer(0x72, 0xbb, 1))));
    let approve = |token: u8, spender: u8| {
        erc20_tx(Erc20Call::Approve {
            token: addr(token),
            spender: addr(spender),
            amount: U256::from(5),
        })
    };
    assert!(allowed(&p, &Req::new(approve(0x70, 0x5e))));
    assert_eq!(
        denied(&p, &Req::new(approve(0x70, 0x5f))),
        format!(
            r#"approve spender {} is not allowed for token {} by rule "r""#,
            a(0x5f),
            a(0x70)
        )
    );
    assert_eq!(
        denied(&p, &Req::new(approve(0x71, 0x5e))),
        format!(
            r#"approve of token {} is not allowed by rule "r" (no spenders listed)"#,
            a(0x71)
        )
    );
    // Plain transfers are not ERC-20 calls; the erc20 condition does not concern them.
    assert!(allowed(&p, &Req::new(transfer(eth(1)))));
    // erc20 present: contract_calls cannot bypass its caps for a decoded ERC-20 call.
    let both = allow_tx(json!({
        "erc20": [{"token": a(0x70), "max_amount": "10"}],
        "contract_calls": [{"contract": a(0x71), "selector": "0xa9059cbb"}]
    }));
    assert_eq!(
        denied(&both, &Req::new(token_transfer(0x71, 0xbb, 1))),
        format!(r#"token {} is not allowed by rule "r""#, a(0x71))
    );
}

#[test]
fn gas_and_fees() {
    let p = allow_tx(
        json!({"max_gas_limit": 21000, "max_fee_per_gas": "30 gwei", "max_priority_fee_per_gas": "2 gwei"}),
    );
    assert!(allowed(&p, &Req::new(transfer(U256::ZERO))));
    let gas = Intent::Transaction(TransactionIntent {
        gas_limit: 21_001,
        ..tx()
    });
    assert_eq!(
        denied(&p, &Req::new(gas)),
        r#"gas limit 21001 exceeds cap 21000 of rule "r""#
    );
    let fee = Intent::Transaction(TransactionIntent {
        max_fee_per_gas: 30 * GWEI + GWEI / 2,
        ..tx()
    });
    assert_eq!(
        denied(&p, &Req::new(fee)),
        r#"max fee per gas 30.5 gwei exceeds cap 30 gwei of rule "r""#
    );
    let tip = Intent::Transaction(TransactionIntent {
        max_priority_fee_per_gas: Some(3 * GWEI),
        ..tx()
    });
    assert_eq!(
        denied(&p, &Req::new(tip)),
        r#"max priority fee per gas 3 gwei exceeds cap 2 gwei of rule "r""#
    );
    // Legacy: the whole gas price may go to the tip, so it counts as the priority fee.
    let legacy = Intent::Transaction(TransactionIntent {
        tx_type: TxType::Legacy,
        max_fee_per_gas: 20 * GWEI,
        max_priority_fee_per_gas: None,
        ..tx()
    });
    assert!(!allowed(&p, &Req::new(legacy)));
}

#[test]
fn time_window() {
    let p = policy(
        json!([{"name": "office", "effect": "allow", "actions": ["sign_message"],
        "conditions": {"time_window": {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": [9, 17]}}}]),
    );
    // NOW is Tuesday 22:13 UTC.
    assert_eq!(
        denied(&p, &Req::new(message(1))),
        r#"request at Tue 22:13 UTC is outside the time window of rule "office""#
    );
    let tue_10 = NOW - 12 * 3600;
    assert!(allowed(&p, &Req::new(message(1)).at(tue_10)));
    assert!(!allowed(&p, &Req::new(message(1)).at(tue_10 + 4 * 86_400))); // Saturday
    let p = policy(
        json!([{"name": "late", "effect": "allow", "actions": ["sign_message"],
        "conditions": {"time_window": {"hours": [22, 24]}}}]),
    );
    assert!(allowed(&p, &Req::new(message(1))));
}

fn velocity_engine(velocity: serde_json::Value) -> Engine {
    let p = policy(json!([
        {"name": "x", "effect": "allow", "actions": ["sign_transaction", "sign_message"],
         "conditions": {"velocity": velocity}},
        {"name": "y", "effect": "allow", "principals": ["carol"], "actions": ["sign_transaction"]}
    ]));
    Engine::new(p, Velocity::default())
}

#[test]
fn velocity_value_per_key() {
    let mut e = velocity_engine(json!([{"scope": "key", "window": "24h", "max_value": "5 ether"}]));
    for _ in 0..2 {
        assert!(
            e.decide_and_commit(&Req::new(transfer(eth(2))).ctx())
                .is_allow()
        );
    }
    // Signatures by another rule on the same key count too.
    assert!(
        e.decide_and_commit(&Req::new(transfer(eth_milli(500))).by("carol").ctx())
            .is_allow()
    );
    let d = e.decide_and_commit(&Req::new(transfer(eth(1))).ctx());
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(
        d.reason,
        r#"velocity: 5.5 ETH in the last 24h would exceed 5 ETH per key of rule "x""#
    );
    // Messages move no value and are not limited by max_value.
    assert!(e.decide_and_commit(&Req::new(message(1)).ctx()).is_allow());
    // Another key has its own budget.
    assert!(
        e.decide(&Req::new(transfer(eth(5))).key("k2", "other").ctx())
            .is_allow()
    );
    // 24h windows count in 24-minute buckets: the one holding NOW (from NOW - 800 to
    // NOW + 640) counts in full until a window has passed since its end.
    let bucket_end = NOW + 640;
    assert_eq!(bucket_end % 1_440, 0);
    for late in [NOW + 86_399, NOW + 86_400, bucket_end + 86_399] {
        assert!(
            !e.decide(&Req::new(transfer(eth(5))).at(late).ctx())
                .is_allow(),
            "at +{}",
            late - NOW
        );
    }
    assert!(
        e.decide(&Req::new(transfer(eth(5))).at(bucket_end + 86_400).ctx())
            .is_allow()
    );
}

#[test]
fn velocity_count_and_scopes() {
    let mut e = velocity_engine(json!([{"scope": "principal", "window": 3600, "max_count": 2}]));
    assert!(e.decide_and_commit(&Req::new(message(1)).ctx()).is_allow());
    assert!(
        e.decide_and_commit(&Req::new(message(1)).key("k2", "b").ctx())
            .is_allow()
    );
    assert_eq!(
        e.decide_and_commit(&Req::new(message(1)).key("k3", "c").ctx())
            .reason,
        r#"velocity: 3 signatures in the last 1h would exceed 2 per principal of rule "x""#
    );
    // A denial records nothing.
    assert_eq!(
        e.velocity()
            .totals(VelocityScope::Principal, "alice", 3_600, NOW),
        (2, U256::ZERO)
    );
    assert_eq!(e.velocity().counters(), 1);
    assert!(e.decide(&Req::new(message(1)).by("carol").ctx()).is_allow());

    let mut e = velocity_engine(json!([{"scope": "rule", "window": "1h", "max_count": 1}]));
    assert!(e.decide_and_commit(&Req::new(message(1)).ctx()).is_allow());
    assert!(
        !e.decide(&Req::new(message(1)).by("carol").key("k9", "z").ctx())
            .is_allow()
    );
    // Carol's transaction falls to rule "y", which has no limit.
    assert!(
        e.decide(&Req::new(transfer(eth(1))).by("carol").ctx())
            .is_allow()
    );
}

#[test]
fn approvals() {
    let p = policy(
        json!([{"name": "big", "effect": "allow", "actions": ["sign_transaction"],
        "conditions": {"approvals": {"threshold": 2, "approvers": ["alice", "bob", "carol"], "above_value": "1 ether"}}}]),
    );
    assert!(allowed(&p, &Req::new(transfer(eth(1)))));
    let d = decide(
        &p,
        &Req::new(transfer(eth(2))).approved_by(&["alice", "bob"]),
    );
    assert_eq!(
        d.outcome,
        Outcome::NeedsApproval {
            threshold: 2,
            approvers: vec!["alice".into(), "bob".into(), "carol".into()],
            approved: vec!["bob".into()],
        }
    );
    assert_eq!(d.rule.as_deref(), Some("big"));
    assert_eq!(d.reason, r#"rule "big" needs 2 of 3 approvals (1 so far)"#);
    assert!(allowed(
        &p,
        &Req::new(transfer(eth(2))).approved_by(&["bob", "carol", "mallory"])
    ));
}

#[test]
fn time_lock() {
    let p = policy(
        json!([{"name": "slow", "effect": "allow", "actions": ["destroy_key"],
        "conditions": {"time_lock": "1h"}}]),
    );
    let d = decide(&p, &Req::new(Intent::DestroyKey));
    assert_eq!(d.outcome, Outcome::TimeLocked { until: NOW + 3600 });
    let mut r = Req::new(Intent::DestroyKey).at(NOW + 3600);
    r.requested_at = NOW;
    assert!(allowed(&p, &r));
}

#[test]
fn approvals_then_time_lock() {
    let p = policy(
        json!([{"name": "both", "effect": "allow", "actions": ["sign_digest"],
        "conditions": {"approvals": {"threshold": 1, "approvers": ["bob"]}, "time_lock": 60}}]),
    );
    assert!(matches!(
        decide(&p, &Req::new(digest())).outcome,
        Outcome::NeedsApproval { .. }
    ));
    let r = Req::new(digest()).approved_by(&["bob"]);
    assert_eq!(
        decide(&p, &r).outcome,
        Outcome::TimeLocked { until: NOW + 60 }
    );
}

#[test]
fn typed_data() {
    let p = policy(
        json!([{"name": "t", "effect": "allow", "actions": ["sign_typed_data"],
        "conditions": {"typed_data": {
            "domains": [{"name": "Example", "chain_id": 1}, {"verifying_contract": a(0xdd)}],
            "primary_types": ["Order", "Permit"],
            "permit_spenders": [a(0x5e)]}}}]),
    );
    assert!(allowed(&p, &Req::new(Intent::TypedData(typed()))));
    let other = Intent::TypedData(TypedDataIntent {
        domain_name: Some("Evil".into()),
        ..typed()
    });
    assert_eq!(
        denied(&p, &Req::new(other)),
        format!(
            r#"typed-data domain (name "Evil", chain id 1, verifying contract {}) is not allowed by rule "t""#,
            a(0xcc)
        )
    );
    let by_contract = Intent::TypedData(TypedDataIntent {
        domain_name: None,
        verifying_contract: Some(addr(0xdd)),
        ..typed()
    });
    assert!(allowed(&p, &Req::new(by_contract)));
    let mail = Intent::TypedData(TypedDataIntent {
        primary_type: "Mail".into(),
        ..typed()
    });
    assert_eq!(
        denied(&p, &Req::new(mail)),
        r#"primary type "Mail" is not allowed by rule "t""#
    );
    assert!(allowed(&p, &Req::new(permit(0x5e))));
    assert_eq!(
        denied(&p, &Req::new(permit(0x5f))),
        format!(
            r#"EIP-2612 permit counterparty {} is not allowed by rule "t""#,
            a(0x5f)
        )
    );
    // Without permit_spenders, permits are refused, even where unknown types are allowed.
    let plain = policy(
        json!([{"name": "p", "effect": "allow", "actions": ["sign_typed_data"],
        "conditions": {"typed_data": {"allow_unknown_types": true}}}]),
    );
    assert!(allowed(&plain, &Req::new(Intent::TypedData(typed()))));
    assert_eq!(
        denied(&plain, &Req::new(permit(0x5e))),
        r#"EIP-2612 permit typed data is not allowed by rule "p" (no permit_spenders listed)"#
    );
    // A bare rule signs no typed data it cannot read the effect of.
    let bare = policy(json!([{"name": "b", "effect": "allow", "actions": ["sign_typed_data"]}]));
    let e = denied(&bare, &Req::new(Intent::TypedData(typed())));
    assert!(
        e.contains(r#"primary type "Order" is not one the enclave recognises"#)
            && e.contains("allow_unknown_types"),
        "{e}"
    );
}

/// Review finding F8: every value-moving scheme of the registry needs its counterparty
/// listed, its token listed where the rule lists tokens, and its amount within the cap.
#[test]
fn value_moving_typed_data_needs_its_counterparty_token_and_cap() {
    let open = policy(
        json!([{"name": "open", "effect": "allow", "actions": ["sign_typed_data"],
        "conditions": {"typed_data": {"allow_unknown_types": true}}}]),
    );
    let listed = policy(
        json!([{"name": "usdc", "effect": "allow", "actions": ["sign_typed_data"],
        "conditions": {"typed_data": {"permit_spenders": [a(0x5e)]},
                       "erc20": [{"token": a(0xcc), "max_amount": "1000"}]}}]),
    );
    for scheme in [
        PermitScheme::Eip2612,
        PermitScheme::DaiPermit,
        PermitScheme::Permit2,
        PermitScheme::Eip3009,
        PermitScheme::SeaportOrder,
        PermitScheme::CowOrder,
    ] {
        let moving = |counterparty: u8, token: u8, amount: u64| {
            Intent::TypedData(TypedDataIntent {
                permit: Some(Permit {
                    scheme,
                    spender: addr(counterparty),
                    tokens: vec![addr(token)],
                    amount: U256::from(amount),
                }),
                ..typed()
            })
        };
        let e = denied(&open, &Req::new(moving(0x5e, 0xcc, 1)));
        assert!(e.contains("no permit_spenders listed"), "{scheme:?}: {e}");
        assert!(
            allowed(&listed, &Req::new(moving(0x5e, 0xcc, 1000))),
            "{scheme:?}"
        );
        let e = denied(&listed, &Req::new(moving(0x5f, 0xcc, 1)));
        assert!(e.contains("counterparty"), "{scheme:?}: {e}");
        let e = denied(&listed, &Req::new(moving(0x5e, 0xcd, 1)));
        assert!(
            e.contains(&format!("token {} is not allowed", a(0xcd))),
            "{scheme:?}: {e}"
        );
        let e = denied(&listed, &Req::new(moving(0x5e, 0xcc, 1001)));
        assert!(e.contains("exceeds cap 1000"), "{scheme:?}: {e}");
    }
}

#[test]
fn message_length() {
    let p = policy(
        json!([{"name": "m", "effect": "allow", "actions": ["sign_message"], "conditions": {"message": {"max_len": 100}}}]),
    );
    assert!(allowed(&p, &Req::new(message(100))));
    assert_eq!(
        denied(&p, &Req::new(message(101))),
        r#"message of 101 bytes exceeds the 100-byte limit of rule "m""#
    );
}

#[test]
fn blind_digests_need_their_own_action() {
    let p = policy(json!([{"name": "all-but-digest", "effect": "allow",
        "actions": ["sign_transaction", "sign_typed_data", "sign_message", "create_key", "destroy_key"]}]));
    assert!(!allowed(&p, &Req::new(digest())));
    let p = policy(json!([{"name": "d", "effect": "allow", "actions": ["sign_digest"]}]));
    assert!(allowed(&p, &Req::new(digest())));
}

#[test]
fn deny_rules_come_first() {
    let p = policy(json!([
        {"name": "everything", "effect": "allow", "actions": ["sign_transaction", "sign_typed_data", "sign_digest"],
         "conditions": {"erc20": [{"token": a(0x70), "max_amount": "100"}], "typed_data": {"permit_spenders": [a(0xbb)]}}},
        {"name": "blocklist", "effect": "deny", "actions": ["sign_transaction", "sign_typed_data"],
         "conditions": {"destinations": [a(0xbb)]}},
        {"name": "no-goerli", "effect": "deny", "actions": ["sign_transaction"], "conditions": {"chain_ids": [5]}},
        {"name": "no-token", "effect": "deny", "actions": ["sign_transaction"], "conditions": {"erc20": [{"token": a(0x71)}]}}
    ]));
    assert!(allowed(&p, &Req::new(transfer(eth(1)))));
    let to_bb = Intent::Transaction(TransactionIntent {
        to: Some(addr(0xbb)),
        ..tx()
    });
    let d = decide(&p, &Req::new(to_bb));
    assert_eq!(d.rule.as_deref(), Some("blocklist"));
    assert_eq!(
        d.reason,
        format!(r#"destination {} is denied by rule "blocklist""#, a(0xbb))
    );
    assert!(!allowed(&p, &Req::new(token_transfer(0x70, 0xbb, 1))));
    assert!(allowed(&p, &Req::new(token_transfer(0x70, 0xbc, 1))));
    assert!(!allowed(&p, &Req::new(permit(0xbb))));
    let goerli = Intent::Transaction(TransactionIntent {
        chain_id: 5,
        ..tx()
    });
    assert_eq!(
        denied(&p, &Req::new(goerli)),
        r#"chain id 5 is denied by rule "no-goerli""#
    );
    let to_token = Intent::Transaction(TransactionIntent {
        to: Some(addr(0x71)),
        ..tx()
    });
    assert_eq!(
        denied(&p, &Req::new(to_token)),
        format!(r#"token {} is denied by rule "no-token""#, a(0x71))
    );
    // The blocklist does not concern digests (not in its actions).
    assert!(allowed(&p, &Req::new(digest())));
}

#[test]
fn deny_rules_fail_closed() {
    let p = policy(json!([
        {"name": "all", "effect": "allow", "actions": ["sign_typed_data", "sign_digest"], "conditions": {"typed_data": {"allow_unknown_types": true}}},
        {"name": "mainnet-off", "effect": "deny", "actions": ["sign_typed_data", "sign_digest"],
         "conditions": {"chain_ids": [1]}}
    ]));
    let polygon = Intent::TypedData(TypedDataIntent {
        chain_id: Some(137),
        ..typed()
    });
    assert!(allowed(&p, &Req::new(polygon)));
    assert!(!allowed(&p, &Req::new(Intent::TypedData(typed()))));
    let unbound = Intent::TypedData(TypedDataIntent {
        chain_id: None,
        ..typed()
    });
    assert_eq!(
        denied(&p, &Req::new(unbound)),
        r#"typed data without a domain chain id is denied by rule "mainnet-off""#
    );
    // A digest could be anything, on any chain.
    assert!(!allowed(&p, &Req::new(digest())));
    let p = policy(json!([
        {"name": "all", "effect": "allow", "actions": ["sign_message"]},
        {"name": "night", "effect": "deny", "actions": ["sign_message"], "conditions": {"time_window": {"hours": [22, 24]}}}
    ]));
    assert_eq!(
        denied(&p, &Req::new(message(1))),
        r#"requests at Tue 22:13 UTC are denied by rule "night""#
    );
    assert!(allowed(&p, &Req::new(message(1)).at(NOW - 3600)));
}

#[test]
fn any_allowing_rule_wins_over_a_pending_one() {
    let p = policy(json!([
        {"name": "careful", "effect": "allow", "actions": ["sign_transaction"],
         "conditions": {"approvals": {"threshold": 1, "approvers": ["bob"]}}},
        {"name": "small", "effect": "allow", "actions": ["sign_transaction"], "conditions": {"max_value": "1 ether"}}
    ]));
    let d = decide(&p, &Req::new(transfer(eth(1))));
    assert_eq!(
        (d.outcome, d.rule.as_deref()),
        (Outcome::Allow, Some("small"))
    );
    let d = decide(&p, &Req::new(transfer(eth(2))));
    assert!(matches!(d.outcome, Outcome::NeedsApproval { .. }));
    assert_eq!(d.rule.as_deref(), Some("careful"));
}

#[test]
fn first_failing_rule_is_reported() {
    let p = policy(json!([
        {"name": "a", "effect": "allow", "actions": ["sign_transaction"], "conditions": {"chain_ids": [137]}},
        {"name": "b", "effect": "allow", "actions": ["sign_transaction"], "conditions": {"max_value": "1 ether"}}
    ]));
    let d = decide(&p, &Req::new(transfer(eth(2))));
    assert_eq!(d.rule.as_deref(), Some("a"));
    assert_eq!(d.reason, r#"chain id 1 is not allowed by rule "a""#);
}

#[test]
fn decision_json_shape() {
    let p = policy(
        json!([{"name": "big", "effect": "allow", "actions": ["sign_transaction"],
        "conditions": {"approvals": {"threshold": 1, "approvers": ["bob"]}}}]),
    );
    let d = decide(&p, &Req::new(transfer(eth(2))));
    assert_eq!(
        d.to_json_value(),
        json!({"result": "needs_approval", "threshold": 1, "approvers": ["bob"], "approved": [],
               "rule": "big", "reason": "rule \"big\" needs 1 of 1 approvals (0 so far)"})
    );
    let back: strongroom_policy::Decision = serde_json::from_value(d.to_json_value()).unwrap();
    assert_eq!(back, d);
    let d = decide(&policy(json!([])), &Req::new(message(1)));
    assert_eq!(d.to_json_value()["result"], "deny");
    assert_eq!(d.to_json_value()["rule"], serde_json::Value::Null);
    let t = json!({"result": "time_locked", "until": 5, "rule": "x", "reason": "r"});
    let t: strongroom_policy::Decision = serde_json::from_value(t).unwrap();
    assert_eq!(t.outcome, Outcome::TimeLocked { until: 5 });
}

#[test]
fn replace_policy_keeps_the_counters() {
    let v = json!([{"scope": "key", "window": "24h", "max_value": "1 ether"}]);
    let mut e = velocity_engine(v);
    assert!(
        e.decide_and_commit(&Req::new(transfer(eth(1))).ctx())
            .is_allow()
    );
    e.replace_policy(policy(json!([{"name": "z", "effect": "allow", "actions": ["sign_transaction"],
        "conditions": {"velocity": [{"scope": "key", "window": "24h", "max_value": "1.5 ether"}]}}])));
    assert_eq!(e.velocity().counters(), 1);
    assert!(!e.decide(&Req::new(transfer(eth(1))).ctx()).is_allow());
    assert!(
        e.decide(&Req::new(transfer(eth_milli(500))).ctx())
            .is_allow()
    );
    // A (scope, window) no earlier rule had starts counting when it takes effect.
    e.replace_policy(policy(json!([{"name": "z", "effect": "allow", "actions": ["sign_transaction"],
        "conditions": {"velocity": [{"scope": "key", "window": "12h", "max_value": "1.5 ether"}]}}])));
    assert!(e.decide(&Req::new(transfer(eth(1))).ctx()).is_allow());
}

#[test]
fn mutex_engine_is_shareable() {
    let e = Arc::new(Mutex::new(velocity_engine(
        json!([{"scope": "key", "window": 60, "max_count": 1}]),
    )));
    let r = Req::new(message(1));
    assert!(e.lock().unwrap().decide_and_commit(&r.ctx()).is_allow());
    assert!(!e.lock().unwrap().decide_and_commit(&r.ctx()).is_allow());
}

#[test]
fn signatures_no_limit_counts_record_nothing() {
    // A value-only limit on transfers: a zero-value transfer or a message adds nothing to
    // it, so nothing is recorded (and the enclave has no state to re-seal).
    let p = policy(json!([
        {"name": "t", "effect": "allow", "actions": ["sign_transaction"],
         "conditions": {"velocity": [{"scope": "rule", "window": "1h", "max_value": "10 ether"}]}},
        {"name": "m", "effect": "allow", "actions": ["sign_message", "create_key"]}
    ]));
    let mut e = Engine::new(p, Velocity::default());
    let commit = |e: &mut Engine, r: &Req| {
        let d = e.decide(&r.ctx());
        assert!(d.is_allow(), "{d:?}");
        e.commit(&r.ctx(), &d)
    };
    assert!(commit(&mut e, &Req::new(transfer(eth(1)))));
    let before = e.velocity().clone();
    assert!(!commit(&mut e, &Req::new(transfer(U256::ZERO))));
    assert!(!commit(&mut e, &Req::new(message(1))));
    assert!(!commit(
        &mut e,
        &Req::new(Intent::CreateKey { label: "k".into() })
    ));
    assert_eq!(e.velocity(), &before);
    // Neither does a refusal.
    let r = Req::new(transfer(eth(10)));
    let d = e.decide(&r.ctx());
    assert_eq!(d.outcome, Outcome::Deny);
    assert!(!e.commit(&r.ctx(), &d));
    assert_eq!(e.velocity(), &before);
}

#[test]
fn record_replays_what_commit_recorded() {
    let p = policy(json!([
        {"name": "x", "effect": "allow", "principals": ["alice"],
         "actions": ["sign_transaction", "sign_message"],
         "conditions": {"velocity": [
             {"scope": "key", "window": "1h", "max_value": "3 ether", "max_count": 5},
             {"scope": "key", "window": "1h", "max_count": 4},
             {"scope": "principal", "window": "90s", "max_count": 3},
             {"scope": "rule", "window": "24h", "max_value": "9 ether"}]}},
        {"name": "y", "effect": "allow", "principals": ["carol"], "actions": ["sign_transaction"],
         "conditions": {"velocity": [{"scope": "rule", "window": "1h", "max_count": 9}]}}
    ]));
    let mut live = Engine::new(p.clone(), Velocity::default());
    let mut log = Vec::new();
    let reqs = [
        Req::new(transfer(eth(1))),
        Req::new(message(1)).at(NOW + 30),
        Req::new(transfer(eth(1))).by("carol").at(NOW + 61),
        Req::new(transfer(U256::ZERO)).key("k2", "b").at(NOW + 200),
        Req::new(transfer(eth(2))).at(NOW + 4_000),
    ];
    for r in &reqs {
        let d = live.decide_and_commit(&r.ctx());
        assert!(d.is_allow(), "{d:?}");
        if r.principal == "carol" {
            // Allowed by "y": x's key limits counted it, x's rule limit did not.
            assert_eq!(d.rule.as_deref(), Some("y"));
            let v = live.velocity();
            assert_eq!(
                v.totals(VelocityScope::Rule, "y", 3_600, r.now),
                (1, eth(1))
            );
            assert_eq!(
                v.totals(VelocityScope::Rule, "x", 86_400, r.now),
                (1, eth(1))
            );
            assert_eq!(
                v.totals(VelocityScope::Key, KEY_ID, 3_600, r.now),
                (3, eth(2))
            );
        }
        log.push((r.clone(), d.rule.unwrap()));
    }
    let mut replayed = Engine::new(p, Velocity::default());
    for (r, rule) in &log {
        assert!(replayed.record(&SignatureRecord {
            time: r.now,
            key: &r.key.as_ref().unwrap().0,
            principal: &r.principal,
            rule,
            value: r.intent.native_value(),
        }));
    }
    assert_eq!(replayed.velocity(), live.velocity());
    assert_eq!(replayed.velocity().to_bytes(), live.velocity().to_bytes());
    // The key limits share a (scope, window): one counter, counted once per signature.
    assert_eq!(
        live.velocity()
            .totals(VelocityScope::Key, KEY_ID, 3_600, NOW + 4_000),
        (1, eth(2))
    );
    // x's value-only rule limit counted only x's transfers moving value.
    assert_eq!(
        live.velocity()
            .totals(VelocityScope::Rule, "x", 86_400, NOW + 4_000),
        (2, eth(3))
    );
    // By then "y"'s counter had nothing a window could count, and was dropped.
    assert_eq!(live.velocity().counters(), 3);
}

#[test]
fn one_principal_cannot_fill_anything_for_another() {
    // 100,000 small transfers by alice, one every 2 s, under a per-principal limit: every
    // one is allowed (about 1,800 per hour against a limit of 2,000), bob's budget is
    // untouched, and memory stays at one counter of at most 61 buckets.
    let p = policy(
        json!([{"name": "p", "effect": "allow", "principals": ["alice", "bob"],
        "actions": ["sign_transaction"],
        "conditions": {"velocity": [
            {"scope": "principal", "window": "1h", "max_count": 2000, "max_value": "1 ether"}]}}]),
    );
    let mut e = Engine::new(p, Velocity::default());
    let small = transfer(U256::from(1_000u64));
    let mut now = NOW;
    for i in 0..100_000u64 {
        now = NOW + 2 * i;
        let r = Req::new(small.clone()).at(now);
        assert!(e.decide_and_commit(&r.ctx()).is_allow(), "transfer {i}");
        assert!(e.velocity().buckets() <= BUCKETS_PER_WINDOW + 1);
    }
    assert_eq!(e.velocity().counters(), 1);
    assert!(e.velocity().to_bytes().len() < 4_000);
    assert_eq!(
        e.velocity()
            .totals(VelocityScope::Principal, "bob", 3_600, now),
        (0, U256::ZERO)
    );
    // Bob can use his whole budget; his counter is his own.
    assert!(
        e.decide_and_commit(&Req::new(transfer(eth(1))).by("bob").at(now).ctx())
            .is_allow()
    );
    assert!(
        !e.decide(&Req::new(transfer(U256::from(1))).by("bob").at(now).ctx())
            .is_allow()
    );
    assert_eq!(e.velocity().counters(), 2);
    assert!(e.velocity().buckets() <= 2 * (BUCKETS_PER_WINDOW + 1));
    // And alice is still held to her own limit in a burst.
    let burst = (0..2_000)
        .take_while(|_| {
            e.decide_and_commit(&Req::new(small.clone()).at(now).ctx())
                .is_allow()
        })
        .count();
    assert!(burst < 2_000 - 1_700, "{burst} more allowed");
}
