//! Parsing, validation, canonical form, TOML, and the example policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use alloy_primitives::U256;
use common::*;
use serde_json::json;
use strongroom_policy::{
    Action, Effect, Engine, Intent, KeySpec, MAX_POLICY_LEN, Outcome, Policy, PolicyError,
    TransactionIntent, Velocity,
};

const EXAMPLE: &str = include_str!("../examples/dev-genesis.json");

fn raw(doc: serde_json::Value) -> Result<Policy, PolicyError> {
    Policy::from_json(&serde_json::to_vec(&doc).unwrap())
}

#[test]
fn example_policy_loads_and_behaves() {
    let p = Policy::from_json(EXAMPLE.as_bytes()).unwrap();
    let dev_key = strongroom_auth::SigningKey::ed25519_from_seed(&[0x44; 32]).public();
    let (principal, key) = p.principal_for_key(dev_key.id()).unwrap();
    assert_eq!(principal.id(), "dev");
    assert_eq!(key, &dev_key);
    assert!(p.principal_for_key("00").is_none());
    let names: Vec<&str> = p.rules().iter().map(|r| r.name()).collect();
    assert_eq!(
        names,
        [
            "dev-create-keys",
            "dev-transactions",
            "dev-typed-data",
            "dev-messages",
            "dev-digests"
        ]
    );
    assert_eq!(p.longest_window(), 86_400);
    assert_eq!(
        p.rule("dev-transactions").unwrap().actions(),
        [Action::SignTransaction]
    );

    let mut e = Engine::new(p, Velocity::default());
    let dev = |i: Intent| Req::new(i).by("dev");
    assert!(
        e.decide(&dev(Intent::CreateKey { label: "k".into() }).ctx())
            .is_allow()
    );
    assert!(e.decide(&dev(message(10)).ctx()).is_allow());
    assert!(e.decide(&dev(digest()).ctx()).is_allow());
    assert!(e.decide(&dev(Intent::TypedData(typed())).ctx()).is_allow());
    assert!(!e.decide(&dev(Intent::DestroyKey).ctx()).is_allow());
    assert!(!e.decide(&dev(transfer(eth(2))).ctx()).is_allow());
    let sepolia = Intent::Transaction(TransactionIntent {
        chain_id: 11_155_111,
        ..tx()
    });
    assert!(e.decide(&dev(sepolia).ctx()).is_allow());
    // Plain transfers only: no calldata.
    assert!(
        !e.decide(&dev(token_transfer(0x70, 0xbb, 1)).ctx())
            .is_allow()
    );
    for _ in 0..5 {
        assert!(e.decide_and_commit(&dev(transfer(eth(1))).ctx()).is_allow());
    }
    let d = e.decide_and_commit(&dev(transfer(U256::from(1))).ctx());
    assert_eq!(
        d.reason,
        r#"velocity: 5.000000000000000001 ETH in the last 24h would exceed 5 ETH per key of rule "dev-transactions""#
    );
    assert!(
        !e.decide(&Req::new(message(1)).ctx()).is_allow(),
        "alice is not in this policy"
    );
}

#[test]
fn canonical_json_ignores_formatting_and_key_order() {
    let compact = r#"{"version":1,"principals":[{"id":"dev","roles":["signer"],"keys":[{"algorithm":"ed25519","public":"d759793bbc13a2819a827c76adb6fba8a49aee007f49f2d0992d99b825ad2c48"}]}],"rules":[{"name":"t","effect":"allow","actions":["sign_transaction"],"conditions":{"max_value":"1000000000000000000","chain_ids":[1],"destinations":["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"],"velocity":[{"window":86400,"scope":"key","max_count":3}]}}]}"#;
    let spaced = r#"
    {
      "rules": [ { "conditions": { "velocity": [ { "max_count": 3, "scope": "key", "window": "24h" } ],
                                   "destinations": [ "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed" ],
                                   "chain_ids": [ 1 ], "max_value": "1 ether" },
                   "actions": [ "sign_transaction" ], "effect": "allow", "name": "t" } ],
      "principals": [ { "keys": [ { "public": "0xD759793BBC13A2819A827C76ADB6FBA8A49AEE007F49F2D0992D99B825AD2C48", "algorithm": "ed25519" } ],
                        "roles": [ "signer" ], "id": "dev" } ],
      "version": 1
    }"#;
    let a = Policy::from_json(compact.as_bytes()).unwrap();
    let b = Policy::from_json(spaced.as_bytes()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_canonical_json(), b.to_canonical_json());
    assert_eq!(a.digest(), b.digest());
    let canonical = a.to_canonical_json();
    assert_eq!(
        String::from_utf8(canonical.clone()).unwrap(),
        r#"{"version":1,"principals":[{"id":"dev","roles":["signer"],"keys":[{"algorithm":"ed25519","public":"d759793bbc13a2819a827c76adb6fba8a49aee007f49f2d0992d99b825ad2c48"}]}],"rules":[{"name":"t","effect":"allow","actions":["sign_transaction"],"conditions":{"chain_ids":[1],"destinations":["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"],"max_value":"1 ether","velocity":[{"scope":"key","window":"24h","max_count":3}]}}]}"#
    );
    // Round trip and idempotence.
    let again = Policy::from_json(&canonical).unwrap();
    assert_eq!(again, a);
    assert_eq!(again.to_canonical_json(), canonical);
    // Serialize shows the canonical form.
    assert_eq!(serde_json::to_vec(&a).unwrap(), canonical);
    // A different policy has a different digest.
    let other = compact.replace("\"max_count\":3", "\"max_count\":4");
    assert_ne!(
        Policy::from_json(other.as_bytes()).unwrap().digest(),
        a.digest()
    );
}

#[test]
fn empty_sections_canonicalize_away() {
    let with = raw(document(
        json!([{"name": "m", "effect": "allow", "actions": ["sign_message", "sign_message"],
        "conditions": {}}]),
    ))
    .unwrap();
    let without = raw(document(
        json!([{"name": "m", "effect": "allow", "actions": ["sign_message"]}]),
    ))
    .unwrap();
    assert_eq!(with.digest(), without.digest());
}

#[test]
fn toml_and_json_give_the_same_digest() {
    let toml = r#"
version = 1
chain_id = 11155111

[[principals]]
id = "dev"
roles = ["signer"]
keys = [{ algorithm = "ed25519", public = "d759793bbc13a2819a827c76adb6fba8a49aee007f49f2d0992d99b825ad2c48" }]

[[rules]]
name = "dev-create-keys"
effect = "allow"
principals = ["dev"]
actions = ["create_key"]

[[rules]]
name = "dev-transactions"
effect = "allow"
principals = ["dev"]
actions = ["sign_transaction"]

[rules.conditions]
chain_ids = [1, 11155111]
max_value = "1 ether"
velocity = [{ scope = "key", window = "24h", max_value = "5 ether" }]

[[rules]]
name = "dev-typed-data"
effect = "allow"
principals = ["dev"]
actions = ["sign_typed_data"]
conditions = { typed_data = { allow_unknown_types = true } }

[[rules]]
name = "dev-messages"
effect = "allow"
principals = ["dev"]
actions = ["sign_message"]

[[rules]]
name = "dev-digests"
effect = "allow"
principals = ["dev"]
actions = ["sign_digest"]
"#;
    let from_toml = Policy::from_toml(toml).unwrap();
    let from_json = Policy::from_json(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(from_toml, from_json);
    assert_eq!(from_toml.digest(), from_json.digest());
    assert!(matches!(
        Policy::from_toml("version = 1\nprincipals = []\nrules = []\nextra = 1"),
        Err(PolicyError::Parse(_))
    ));
}

#[test]
fn eip55_checksum_is_enforced() {
    let bad = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
    let err = policy_err(
        json!([{"name": "r", "effect": "allow", "actions": ["sign_transaction"],
        "conditions": {"destinations": [bad]}}]),
    );
    assert_eq!(
        err,
        PolicyError::InvalidAddress {
            rule: "r".into(),
            field: "conditions.destinations".into(),
            address: bad.into(),
            reason: "mixed-case address with an invalid EIP-55 checksum",
        }
    );
    assert!(err.to_string().contains(bad), "{err}");
    for ok in [bad.to_lowercase(), format!("0x{}", bad[2..].to_uppercase())] {
        assert!(
            try_policy(
                json!([{"name": "r", "effect": "allow", "actions": ["sign_transaction"],
            "conditions": {"destinations": [ok]}}])
            )
            .is_ok()
        );
    }
}

fn rule_err(rule: serde_json::Value) -> PolicyError {
    policy_err(json!([rule]))
}

#[test]
fn validation_errors_are_specific() {
    let tx_rule = |conditions: serde_json::Value| json!({"name": "r", "effect": "allow", "actions": ["sign_transaction"], "conditions": conditions});
    assert_eq!(
        raw(json!({"version": 2, "principals": [], "rules": []})).unwrap_err(),
        PolicyError::UnsupportedVersion(2)
    );
    for doc in [
        json!({"version": 1, "principals": [], "rules": [], "extra": 1}),
        json!({"version": 1, "principals": [], "rules": [{"name": "r", "effect": "allow", "actions": ["sign_message"], "scope": 1}]}),
        json!({"version": 1, "principals": [], "rules": [{"name": "r", "effect": "allow", "actions": ["sign_message"], "conditions": {"max_vaule": "1"}}]}),
        json!({"version": 1, "rules": []}),
    ] {
        assert!(matches!(raw(doc), Err(PolicyError::Parse(_))));
    }
    let m = json!({"name": "m", "effect": "allow", "actions": ["sign_message"]});
    assert_eq!(
        policy_err(json!([m, m])),
        PolicyError::DuplicateRule("m".into())
    );
    let alice = json!({"id": "alice", "keys": [{"algorithm": "ed25519", "public": ALICE}]});
    let alice2 = json!({"id": "alice2", "keys": [{"algorithm": "ed25519", "public": ALICE}]});
    assert_eq!(
        raw(json!({"version": 1, "principals": [alice, alice], "rules": []})).unwrap_err(),
        PolicyError::DuplicatePrincipal("alice".into())
    );
    assert!(matches!(
        raw(json!({"version": 1, "principals": [alice, alice2], "rules": []})).unwrap_err(),
        PolicyError::DuplicateKey { principal, .. } if principal == "alice2"
    ));
    assert!(matches!(
        raw(json!({"version": 1, "principals": [{"id": "x", "keys": [{"algorithm": "ed25519", "public": "00"}]}], "rules": []})).unwrap_err(),
        PolicyError::InvalidKey { index: 0, .. }
    ));
    assert!(matches!(
        raw(json!({"version": 1, "principals": [{"id": "x", "keys": [{"algorithm": "rsa", "public": ALICE}]}], "rules": []})).unwrap_err(),
        PolicyError::InvalidKey { .. }
    ));
    assert!(matches!(
        raw(json!({"version": 1, "principals": [{"id": "bad id", "keys": []}], "rules": []}))
            .unwrap_err(),
        PolicyError::InvalidName {
            what: "principal id",
            ..
        }
    ));
    assert!(matches!(
        rule_err(json!({"name": "x".repeat(65), "effect": "allow", "actions": ["sign_message"]})),
        PolicyError::InvalidName {
            what: "rule name",
            ..
        }
    ));
    assert_eq!(
        rule_err(json!({"name": "r", "effect": "permit", "actions": ["sign_message"]})),
        PolicyError::InvalidEffect {
            rule: "r".into(),
            effect: "permit".into()
        }
    );
    assert_eq!(
        rule_err(
            json!({"name": "r", "effect": "allow", "principals": ["zed"], "actions": ["sign_message"]})
        ),
        PolicyError::UnknownPrincipal {
            rule: "r".into(),
            field: "principals",
            principal: "zed".into()
        }
    );
    assert_eq!(
        rule_err(
            json!({"name": "r", "effect": "allow", "roles": ["root"], "actions": ["sign_message"]})
        ),
        PolicyError::UnknownRole {
            rule: "r".into(),
            role: "root".into()
        }
    );
    assert_eq!(
        rule_err(json!({"name": "r", "effect": "allow", "actions": []})),
        PolicyError::EmptyActions("r".into())
    );
    assert_eq!(
        rule_err(json!({"name": "r", "effect": "allow", "actions": ["sign_everything"]})),
        PolicyError::UnknownAction {
            rule: "r".into(),
            action: "sign_everything".into()
        }
    );
    assert_eq!(
        rule_err(tx_rule(json!({"chain_ids": []}))),
        PolicyError::EmptyList {
            rule: "r".into(),
            field: "conditions.chain_ids".into()
        }
    );
    assert_eq!(
        rule_err(tx_rule(
            json!({"approvals": {"threshold": 0, "approvers": ["bob"]}})
        )),
        PolicyError::Threshold {
            rule: "r".into(),
            threshold: 0,
            approvers: 1
        }
    );
    assert_eq!(
        rule_err(tx_rule(
            json!({"approvals": {"threshold": 3, "approvers": ["bob", "carol"]}})
        )),
        PolicyError::Threshold {
            rule: "r".into(),
            threshold: 3,
            approvers: 2
        }
    );
    assert_eq!(
        rule_err(tx_rule(
            json!({"approvals": {"threshold": 1, "approvers": ["zed"]}})
        )),
        PolicyError::UnknownPrincipal {
            rule: "r".into(),
            field: "conditions.approvals.approvers",
            principal: "zed".into()
        }
    );
    for hours in [json!([9, 9]), json!([17, 9]), json!([0, 25]), json!([1])] {
        assert!(matches!(
            rule_err(tx_rule(json!({"time_window": {"hours": hours}}))),
            PolicyError::InvalidField { field, .. } if field == "conditions.time_window.hours"
        ));
    }
    assert!(matches!(
        rule_err(tx_rule(json!({"time_window": {"days": ["monday"]}}))),
        PolicyError::InvalidField { .. }
    ));
    assert_eq!(
        rule_err(tx_rule(json!({"max_value": "1.5 wei"}))),
        PolicyError::InvalidAmount {
            rule: "r".into(),
            field: "conditions.max_value".into(),
            value: "1.5 wei".into(),
            reason: "1 decimals, more than wei allows (0)".into(),
        }
    );
    assert!(matches!(
        rule_err(tx_rule(json!({"max_fee_per_gas": "0.0000000001 gwei"}))),
        PolicyError::InvalidAmount { .. }
    ));
    assert!(matches!(
        rule_err(tx_rule(
            json!({"erc20": [{"token": a(1), "max_amount": "1 ether"}]})
        )),
        PolicyError::InvalidAmount { .. }
    ));
    assert!(matches!(
        rule_err(tx_rule(json!({"erc20": [{"token": a(1)}]}))),
        PolicyError::InvalidField { .. }
    ));
    assert!(matches!(
        rule_err(tx_rule(
            json!({"contract_calls": [{"contract": a(1), "selector": "0xa9059c"}]})
        )),
        PolicyError::InvalidField { .. }
    ));
    assert!(matches!(
        rule_err(tx_rule(
            json!({"velocity": [{"scope": "key", "window": "32d", "max_count": 1}]})
        )),
        PolicyError::InvalidDuration { .. }
    ));
    assert!(matches!(
        rule_err(tx_rule(
            json!({"velocity": [{"scope": "key", "window": "1h"}]})
        )),
        PolicyError::InvalidField { .. }
    ));
    assert!(matches!(
        rule_err(tx_rule(
            json!({"velocity": [{"scope": "world", "window": "1h", "max_count": 1}]})
        )),
        PolicyError::InvalidField { .. }
    ));
    assert_eq!(
        rule_err(
            json!({"name": "d", "effect": "deny", "actions": ["sign_transaction"],
            "conditions": {"velocity": [{"scope": "key", "window": "1h", "max_count": 1}]}})
        ),
        PolicyError::DenyRuleCondition {
            rule: "d".into(),
            condition: "velocity".into()
        }
    );
    assert_eq!(
        rule_err(
            json!({"name": "d", "effect": "deny", "actions": ["sign_transaction"],
            "conditions": {"approvals": {"threshold": 1, "approvers": ["bob"]}}})
        ),
        PolicyError::DenyRuleCondition {
            rule: "d".into(),
            condition: "approvals".into()
        }
    );
    assert!(matches!(
        rule_err(
            json!({"name": "d", "effect": "deny", "actions": ["sign_transaction"],
            "conditions": {"erc20": [{"token": a(1), "max_amount": "5"}]}})
        ),
        PolicyError::InvalidField { .. }
    ));
    assert_eq!(
        rule_err(
            json!({"name": "r", "effect": "allow", "actions": ["sign_message"], "conditions": {"max_value": "1 ether"}})
        ),
        PolicyError::ConditionNotApplicable {
            rule: "r".into(),
            condition: "max_value".into()
        }
    );
    assert_eq!(
        rule_err(
            json!({"name": "r", "effect": "allow", "actions": ["create_key"],
            "conditions": {"velocity": [{"scope": "principal", "window": "1h", "max_count": 1}]}})
        ),
        PolicyError::ConditionNotApplicable {
            rule: "r".into(),
            condition: "velocity".into()
        }
    );
    assert_eq!(
        rule_err(
            json!({"name": "r", "effect": "allow", "actions": ["sign_message"],
            "conditions": {"velocity": [{"scope": "key", "window": "1h", "max_value": "1 ether"}]}})
        ),
        PolicyError::ConditionNotApplicable {
            rule: "r".into(),
            condition: "velocity.max_value".into()
        }
    );
    assert_eq!(
        rule_err(
            json!({"name": "r", "effect": "allow", "actions": ["sign_transaction"], "conditions": {"typed_data": {"primary_types": ["X"]}}})
        ),
        PolicyError::ConditionNotApplicable {
            rule: "r".into(),
            condition: "typed_data".into()
        }
    );
    assert!(matches!(
        rule_err(
            json!({"name": "r", "effect": "allow", "keys": [""], "actions": ["sign_message"]})
        ),
        PolicyError::InvalidField { .. }
    ));
}

#[test]
fn ed25519_and_p256_keys() {
    let p = policy(json!([]));
    let dave = p.principal("dave").unwrap();
    assert_eq!(
        dave.keys()[0].algorithm(),
        strongroom_policy::Algorithm::EcdsaP256
    );
    assert!(p.principal_for_key(dave.keys()[0].id()).is_some());
    // The same P-256 key uncompressed is the same key: a duplicate.
    let uncompressed = strongroom_auth::SigningKey::p256_from_bytes(&[0x45; 32]).unwrap();
    let id = uncompressed.public().id().to_owned();
    assert_eq!(id, dave.keys()[0].id());
    assert_eq!(p.principal("alice").unwrap().roles(), ["signer"]);
    assert_eq!(dave.id, "dave");
    let spec = KeySpec::from_key(&dave.keys[0]);
    assert_eq!(spec.public, DAVE_P256);
    assert_eq!(spec.to_key().unwrap(), dave.keys[0]);
    let json: KeySpec =
        serde_json::from_value(json!({"algorithm": "ed25519", "public": format!("0x{ALICE}")}))
            .unwrap();
    assert_eq!(
        json.to_key().unwrap().id(),
        p.principal("alice").unwrap().keys[0].id()
    );
    assert!(
        serde_json::from_value::<KeySpec>(json!({"algorithm": "ed25519", "public": ALICE, "x": 1}))
            .is_err()
    );
    for (algorithm, public) in [
        ("rsa", ALICE),
        ("ed25519", "zz"),
        ("ed25519", "00"),
        ("ecdsa-p256", ALICE),
    ] {
        let spec = KeySpec {
            algorithm: algorithm.into(),
            public: public.into(),
        };
        assert!(
            matches!(spec.to_key(), Err(PolicyError::KeySpec(_))),
            "{algorithm} {public}"
        );
    }
    assert_eq!(p.rules().len(), 0);
    assert_eq!(p.version(), 1);
}

#[test]
fn size_limits() {
    let huge = vec![b' '; MAX_POLICY_LEN + 1];
    assert_eq!(
        Policy::from_json(&huge).unwrap_err(),
        PolicyError::TooLarge {
            len: MAX_POLICY_LEN + 1,
            max: MAX_POLICY_LEN
        }
    );
    assert!(matches!(
        Policy::from_toml(&" ".repeat(MAX_POLICY_LEN + 1)),
        Err(PolicyError::TooLarge { .. })
    ));
    let rules: Vec<_> = (0..257)
        .map(|i| json!({"name": format!("r{i}"), "effect": "allow", "actions": ["sign_message"]}))
        .collect();
    assert!(matches!(
        policy_err(json!(rules)),
        PolicyError::TooMany { max: 256, .. }
    ));
    let keys: Vec<_> = (0..17)
        .map(|_| json!({"algorithm": "ed25519", "public": ALICE}))
        .collect();
    assert!(matches!(
        raw(json!({"version": 1, "principals": [{"id": "x", "keys": keys}], "rules": []})),
        Err(PolicyError::TooMany { max: 16, .. })
    ));
    let chains: Vec<u64> = (0..1025).collect();
    assert!(matches!(
        policy_err(
            json!([{"name": "r", "effect": "allow", "actions": ["sign_transaction"], "conditions": {"chain_ids": chains}}])
        ),
        PolicyError::TooMany { max: 1024, .. }
    ));
}

#[test]
fn accessors() {
    let p = policy(json!([{"name": "d", "effect": "deny", "actions": ["sign_digest"]}]));
    assert_eq!(p.rules()[0].effect(), Effect::Deny);
    assert_eq!(p.longest_window(), 0);
    let d = decide(&p, &Req::new(digest()));
    assert_eq!(d.outcome, Outcome::Deny);
    assert_eq!(d.reason, r#"sign_digest is denied by rule "d""#);
}

#[test]
fn readme_examples_are_valid() {
    // The schema is documented in the project README.
    let readme = include_str!("../../README.md");
    let start = readme
        .find("Examples (each a `conditions` object):")
        .unwrap();
    let block = &readme[start..];
    let block = &block[block.find("```json").unwrap() + 7..];
    let block = &block[..block.find("```").unwrap()];
    // One object per example; they may span lines.
    let mut examples = Vec::new();
    let mut depth = 0i32;
    let mut current = String::new();
    for ch in block.chars() {
        if depth > 0 || ch == '{' {
            current.push(ch);
        }
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    examples.push(std::mem::take(&mut current));
                }
            }
            _ => {}
        }
    }
    assert_eq!(examples.len(), 14);
    for (i, text) in examples.iter().enumerate() {
        let conditions: serde_json::Value = serde_json::from_str(text).unwrap();
        let rule = json!({"name": format!("e{i}"), "effect": "allow",
            "actions": ["sign_transaction", "sign_typed_data", "sign_message"], "conditions": conditions});
        try_policy(json!([rule])).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    let blocklist = r#"{"name": "blocklist", "effect": "deny", "actions": ["sign_transaction", "sign_typed_data"],
 "conditions": {"destinations": ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"]}}"#;
    assert!(readme.contains(blocklist));
    try_policy(json!([serde_json::from_str::<serde_json::Value>(
        blocklist
    )
    .unwrap()]))
    .unwrap();
}

#[test]
fn chain_id_is_optional_part_of_the_canonical_form() {
    let base = json!({"version": 1, "principals": [], "rules": []});
    let without = raw(base.clone()).unwrap();
    assert_eq!(without.chain_id(), None);
    assert!(
        !String::from_utf8(without.to_canonical_json())
            .unwrap()
            .contains("chain_id")
    );
    let mut with = base.clone();
    with["chain_id"] = json!(11155111);
    let with = raw(with).unwrap();
    assert_eq!(with.chain_id(), Some(11155111));
    assert_ne!(
        with.digest(),
        without.digest(),
        "the chain is part of what admins approve"
    );
    let mut zero = base;
    zero["chain_id"] = json!(0);
    assert!(matches!(raw(zero), Err(PolicyError::ZeroChainId)));
}

fn with_group(group: serde_json::Value) -> Result<Policy, PolicyError> {
    let mut doc: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    doc["signing_group"] = group;
    raw(doc)
}

#[test]
fn signing_group_is_validated_and_canonical() {
    let group = json!({"nodes": [
        {"name": "node-a", "key_check": "0x00112233445566778899AABBCCDDEEFF"},
        {"name": "node-b", "key_check": "ffeeddccbbaa99887766554433221100"},
        {"name": "node-c", "key_check": "0123456789abcdef0123456789abcdef"},
    ]});
    let p = with_group(group).unwrap();
    let g = p.signing_group().unwrap();
    assert_eq!(g.nodes.len(), 3);
    assert_eq!(g.nodes[0].key_check[0], 0x00);
    assert_eq!(
        g.node(&[
            0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22,
            0x11, 0x00
        ])
        .unwrap()
        .name,
        "node-b"
    );
    // Canonical: lowercase hex without 0x, and the digest changes with the group.
    let canonical = String::from_utf8(p.to_canonical_json()).unwrap();
    assert!(canonical.contains(r#""signing_group":{"nodes":[{"name":"node-a","key_check":"00112233445566778899aabbccddeeff"}"#), "{canonical}");
    assert_eq!(
        Policy::from_json(canonical.as_bytes()).unwrap().digest(),
        p.digest()
    );
    let without = Policy::from_json(EXAMPLE.as_bytes()).unwrap();
    assert!(without.signing_group().is_none());
    assert_ne!(without.digest(), p.digest());

    let refused = |group: serde_json::Value, why: &str| match with_group(group) {
        Err(PolicyError::SigningGroup(reason)) => assert!(reason.contains(why), "{why}: {reason}"),
        other => panic!("{why}: {other:?}"),
    };
    let node = |name: &str, kc: &str| json!({"name": name, "key_check": kc});
    let kc = |b: u8| hex::encode([b; 16]);
    refused(json!({"nodes": [node("a", &kc(1))]}), "2 to 16");
    refused(
        json!({"nodes": (0..17u8).map(|i| node(&format!("n{i}"), &kc(i))).collect::<Vec<_>>()}),
        "2 to 16",
    );
    refused(
        json!({"nodes": [node("a", &kc(1)), node("a", &kc(2))]}),
        "used twice",
    );
    refused(
        json!({"nodes": [node("a", &kc(1)), node("b", &kc(1))]}),
        "used twice",
    );
    refused(
        json!({"nodes": [node("a", &kc(1)), node("B", &kc(2))]}),
        "node name",
    );
    refused(
        json!({"nodes": [node("a", &kc(1)), node("b", "0011")]}),
        "16 bytes",
    );
    refused(
        json!({"nodes": [node("a", &kc(1)), node("b", &"zz".repeat(16))]}),
        "16 bytes",
    );
    assert!(matches!(
        with_group(json!({"nodes": [], "extra": 1})),
        Err(PolicyError::Parse(_))
    ));
}
