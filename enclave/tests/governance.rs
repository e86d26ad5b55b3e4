//! Principals, policy and approvals, attacked: stamps that are missing, unknown, tampered,
//! replayed, expired or older than the enclave; policy changes without a quorum; approvals
//! by non-admins or twice; signing requests that wait for approvers; velocity limits that
//! survive restarts. Nothing is signed on any refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use strongroom_identity::AuditEntry;
use strongroom_protocol::messages::{ErrorCode, Request};
use support::{Keys, Proxy, code, dev_rules, genesis, now, policy, stamp, stamp_at};

const ROOT: [u8; 32] = [0x77; 32];
const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

fn setup() -> (Keys, Proxy, String) {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    let id = proxy.create_key(&keys.dev, "treasury")["id"]
        .as_str()
        .unwrap()
        .to_string();
    (keys, proxy, id)
}

fn digest_body() -> Vec<u8> {
    serde_json::to_vec(&json!({"digest": format!("0x{}", "11".repeat(32))})).unwrap()
}

fn tx(chain_id: u64, nonce: u64, value_wei: u128) -> Value {
    json!({"transaction": {
        "type": "0x2",
        "chainId": format!("0x{chain_id:x}"),
        "nonce": format!("0x{nonce:x}"),
        "to": RECIPIENT,
        "value": format!("0x{value_wei:x}"),
        "gas": "0x5208",
        "maxFeePerGas": "0x4a817c800",
        "maxPriorityFeePerGas": "0x3b9aca00",
    }})
}

const ETH: u128 = 1_000_000_000_000_000_000;

#[test]
fn stamps_missing_unknown_tampered_replayed_expired_or_pre_boot_are_refused() {
    let (keys, mut proxy, id) = setup();
    let path = format!("/v1/keys/{id}/sign/digest");
    let body = digest_body();
    let refused = |r: &support::Reply| {
        assert_eq!(r.status, 401, "{:?}", r.body);
        assert!(r.body.get("signature").is_none());
        r.message().to_string()
    };

    let m = refused(&proxy.raw("POST", &path, &body, None));
    assert!(m.contains("no stamp"), "{m}");

    let m = refused(&proxy.raw(
        "POST",
        &path,
        &body,
        Some(stamp(&keys.stranger, "POST", &path, &body)),
    ));
    assert!(m.contains("not a principal key"), "{m}");

    // Stamped for one digest, sent with another.
    let header = stamp(&keys.dev, "POST", &path, &body);
    let other = serde_json::to_vec(&json!({"digest": format!("0x{}", "22".repeat(32))})).unwrap();
    let m = refused(&proxy.raw("POST", &path, &other, Some(header.clone())));
    assert!(m.contains("signature does not match"), "{m}");
    // Stamped for one key's path, sent to another's.
    let other_key = proxy.create_key(&keys.dev, "other")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let m = refused(&proxy.raw(
        "POST",
        &format!("/v1/keys/{other_key}/sign/digest"),
        &body,
        Some(header.clone()),
    ));
    assert!(m.contains("signature does not match"), "{m}");
    // The tampered attempts did not burn the nonce: the genuine request goes through once…
    let ok = proxy.raw("POST", &path, &body, Some(header.clone()));
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    // …and only once.
    let m = refused(&proxy.raw("POST", &path, &body, Some(header)));
    assert!(m.contains("replay"), "{m}");

    let m = refused(&proxy.raw(
        "POST",
        &path,
        &body,
        Some(stamp_at(&keys.dev, "POST", &path, &body, now() - 1)),
    ));
    assert!(m.contains("expired"), "{m}");
    let m = refused(&proxy.raw(
        "POST",
        &path,
        &body,
        Some(stamp_at(&keys.dev, "POST", &path, &body, now() + 3600)),
    ));
    assert!(m.contains("more than 300"), "{m}");

    // A stamp that could have been used before this enclave started is refused after a
    // restart, whatever state the parent hands back.
    let early = stamp_at(&keys.dev, "POST", &path, &body, now() + 200);
    proxy.restart(&ROOT);
    let r = proxy.raw("POST", &path, &body, Some(early));
    assert_eq!(r.error_code(), "stamp_before_boot", "{:?}", r.body);
    assert!(r.body["error"]["retry_after"].as_u64().unwrap() >= 100);

    // A stamp bound to another deployment is refused; one bound to this one is not.
    let policy = proxy.raw("GET", "/v1/policy", b"", None);
    let ours: [u8; 32] = hex::decode(policy.body["genesis_digest"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let bound = |deployment: [u8; 32], n: u8| {
        strongroom_auth::Stamp::sign_for(
            &keys.dev,
            strongroom_auth::Request {
                method: "POST",
                path: &path,
                body: &body,
            },
            vec![n; 16],
            now() + 300,
            Some(deployment),
        )
        .to_header()
    };
    let m = refused(&proxy.raw("POST", &path, &body, Some(bound([0xee; 32], 0xa1))));
    assert!(m.contains("not this one"), "{m}");
    let r = proxy.raw("POST", &path, &body, Some(bound(ours, 0xa2)));
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[test]
fn a_denial_names_the_rule_and_signs_nothing() {
    let (keys, mut proxy, id) = setup();
    let path = format!("/v1/keys/{id}/sign/transaction");
    // 2 ETH on mainnet: over the 1 ETH cap of "dev-transactions".
    let r = proxy.call(&keys.dev, "POST", &path, &tx(1, 0, 2 * ETH));
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.error_code(), "denied");
    let decision = &r.body["error"]["decision"];
    assert_eq!(decision["result"], "deny");
    assert_eq!(decision["rule"], "dev-transactions");
    assert!(
        r.message().contains("exceeds") && r.message().contains("1 ETH"),
        "{}",
        r.message()
    );
    assert!(r.body.get("raw").is_none());
    // A chain id no rule allows.
    let r = proxy.call(&keys.dev, "POST", &path, &tx(5, 0, 1));
    assert_eq!(r.status, 403, "{:?}", r.body);
    // Within the caps: signed, and the decision says by which rule.
    let r = proxy.call(&keys.dev, "POST", &path, &tx(1, 0, ETH / 2));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["raw"].as_str().unwrap().starts_with("0x02"));
    assert_eq!(r.body["decision"]["rule"], "dev-transactions");
    // A principal without a rule for the action: default deny.
    let r = proxy.call(&keys.ops, "POST", &path, &tx(1, 1, 1));
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(r.message().contains("default deny"), "{}", r.message());
    // An admin key is not a principal.
    let r = proxy.call(&keys.admins[0], "POST", &path, &tx(1, 1, 1));
    assert_eq!(r.status, 403, "{:?}", r.body);
}

#[test]
fn velocity_totals_hold_across_restarts() {
    let (keys, mut proxy, id) = setup();
    let path = format!("/v1/keys/{id}/sign/transaction");
    for nonce in 0..4 {
        let r = proxy.call(&keys.dev, "POST", &path, &tx(1, nonce, ETH));
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.answer.effects.audit.len(),
            1,
            "a counted signature is one record, nothing else"
        );
    }
    proxy.restart(&ROOT);
    let r = proxy.call(&keys.dev, "POST", &path, &tx(1, 4, ETH));
    assert_eq!(r.status, 200, "{:?}", r.body);
    // 5 ETH in 24 h for this key: the sixth is refused, after a restart too.
    let r = proxy.call(&keys.dev, "POST", &path, &tx(1, 5, 1));
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(r.message().contains("velocity"), "{}", r.message());
    proxy.restart(&ROOT);
    let r = proxy.call(&keys.dev, "POST", &path, &tx(1, 5, 1));
    assert_eq!(r.status, 403, "{:?}", r.body);
}

fn propose(proxy: &mut Proxy, keys: &Keys, new_policy: Value) -> (String, String) {
    let r = proxy.call(
        &keys.dev,
        "POST",
        "/v1/policy/proposals",
        &json!({ "policy": new_policy }),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    (
        r.body["proposal"]["id"].as_str().unwrap().to_string(),
        r.body["proposal"]["digest"].as_str().unwrap().to_string(),
    )
}

fn approve(
    proxy: &mut Proxy,
    key: &strongroom_auth::SigningKey,
    id: &str,
    digest: &str,
) -> support::Reply {
    proxy.call(
        key,
        "POST",
        &format!("/v1/policy/proposals/{id}/approve"),
        &json!({ "digest": digest }),
    )
}

#[test]
fn policy_changes_need_a_quorum_of_distinct_admins_approving_the_exact_digest() {
    let (keys, mut proxy, id) = setup();
    let before = proxy.raw("GET", "/v1/policy", b"", None).body;
    // A looser policy: digests for anyone, including "ops".
    let loose = policy(
        &keys,
        json!([{"name": "anyone-digests", "effect": "allow", "actions": ["sign_digest"]}]),
    );
    let (pid, digest) = propose(&mut proxy, &keys, loose);
    let ops_sign = |proxy: &mut Proxy| {
        let path = format!("/v1/keys/{id}/sign/digest");
        proxy
            .call(
                &keys.ops,
                "POST",
                &path,
                &serde_json::from_slice(&digest_body()).unwrap(),
            )
            .status
    };
    assert_eq!(ops_sign(&mut proxy), 403);

    // A principal (not an admin) approving: refused.
    let r = approve(&mut proxy, &keys.dev, &pid, &digest);
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(
        r.message().contains("not in the admin set"),
        "{}",
        r.message()
    );
    // An admin approving another digest: refused.
    let r = approve(&mut proxy, &keys.admins[0], &pid, &"00".repeat(32));
    assert_eq!(r.status, 400, "{:?}", r.body);
    // M-1 = 1 approval: recorded, not applied.
    let r = approve(&mut proxy, &keys.admins[0], &pid, &digest);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["applied"], false);
    // The same admin again: refused, still not applied.
    let r = approve(&mut proxy, &keys.admins[0], &pid, &digest);
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(
        ops_sign(&mut proxy),
        403,
        "one admin cannot loosen the policy"
    );
    let mid = proxy.raw("GET", "/v1/policy", b"", None).body;
    assert_eq!(mid["policy_digest"], before["policy_digest"]);
    // A forged approval: the stamp of admin 2 on admin 1's request body is refused.
    let path = format!("/v1/policy/proposals/{pid}/approve");
    let body = serde_json::to_vec(&json!({"digest": digest})).unwrap();
    let header = stamp(&keys.admins[1], "POST", &path, b"{}");
    let r = proxy.raw("POST", &path, &body, Some(header));
    assert_eq!(r.status, 401);
    // The second distinct admin (a P-256 key): applied.
    let r = approve(&mut proxy, &keys.admins[2], &pid, &digest);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["applied"], true);
    assert_eq!(ops_sign(&mut proxy), 200);
    let after = proxy.raw("GET", "/v1/policy", b"", None).body;
    assert_ne!(after["policy_digest"], before["policy_digest"]);
    assert_eq!(after["genesis_digest"], before["genesis_digest"]);
    // The new policy survives a restart.
    proxy.restart(&ROOT);
    assert_eq!(ops_sign(&mut proxy), 200);
    // An applied proposal is gone.
    let r = approve(&mut proxy, &keys.admins[1], &pid, &digest);
    assert_eq!(r.status, 404);
}

#[test]
fn the_admin_set_changes_only_by_its_own_quorum() {
    let (keys, mut proxy, _) = setup();
    // Replace the admins with the stranger alone (threshold 1).
    let r = proxy.call(
        &keys.admins[0],
        "POST",
        "/v1/policy/proposals",
        &json!({"admins": {"threshold": 1, "keys": [support::spec(&keys.stranger)]}}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    let pid = r.body["proposal"]["id"].as_str().unwrap().to_string();
    let digest = r.body["proposal"]["digest"].as_str().unwrap().to_string();
    // The future admin cannot approve its own admission.
    assert_eq!(
        approve(&mut proxy, &keys.stranger, &pid, &digest).status,
        401
    );
    assert_eq!(
        approve(&mut proxy, &keys.admins[1], &pid, &digest).status,
        200
    );
    let r = approve(&mut proxy, &keys.admins[2], &pid, &digest);
    assert_eq!(r.body["applied"], true, "{:?}", r.body);
    // Now the old admins are not admins, and the new one alone is a quorum.
    let (pid, digest) = propose(&mut proxy, &keys, policy(&keys, dev_rules()));
    assert_eq!(
        approve(&mut proxy, &keys.admins[0], &pid, &digest).status,
        401
    );
    let r = approve(&mut proxy, &keys.stranger, &pid, &digest);
    assert_eq!(r.body["applied"], true, "{:?}", r.body);
}

#[test]
fn big_transfers_wait_for_an_approver_who_signs_the_decoded_intent() {
    let (keys, mut proxy, id) = setup();
    let path = format!("/v1/keys/{id}/sign/transaction");
    // 10 ETH on Sepolia: over "dev-transactions" caps, allowed by "big-sepolia" with one
    // approval from "ops".
    let r = proxy.call(&keys.dev, "POST", &path, &tx(11155111, 0, 10 * ETH));
    assert_eq!(r.status, 202, "{:?}", r.body);
    let request = r.body["request"].clone();
    assert_eq!(request["status"], "pending");
    assert_eq!(request["decision"]["rule"], "big-sepolia");
    assert_eq!(request["intent"]["kind"], "transaction");
    let rid = request["id"].as_str().unwrap().to_string();
    let intent_digest = request["intent_digest"].as_str().unwrap().to_string();
    let approve_path = format!("/v1/requests/{rid}/approve");

    // The requester cannot approve its own request.
    let r = proxy.call(
        &keys.dev,
        "POST",
        &approve_path,
        &json!({"intent_digest": intent_digest}),
    );
    assert_eq!(r.status, 403, "{:?}", r.body);
    // An admin is not an approver of signing requests unless the rule says so.
    let r = proxy.call(
        &keys.admins[0],
        "POST",
        &approve_path,
        &json!({"intent_digest": intent_digest}),
    );
    assert_eq!(r.status, 403, "{:?}", r.body);
    // The approver approving something else: refused.
    let r = proxy.call(
        &keys.ops,
        "POST",
        &approve_path,
        &json!({"intent_digest": "00".repeat(32)}),
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    // The approver approving the intent: signed.
    let r = proxy.call(
        &keys.ops,
        "POST",
        &approve_path,
        &json!({"intent_digest": intent_digest}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["request"]["status"], "signed");
    assert!(
        r.body["result"]["raw"]
            .as_str()
            .unwrap()
            .starts_with("0x02")
    );
    // The requester collects it.
    let got = proxy.raw("GET", &format!("/v1/requests/{rid}"), b"", None);
    assert_eq!(
        got.body["request"]["result"]["raw"],
        r.body["result"]["raw"]
    );
    // Approving again: the request is no longer pending.
    let r = proxy.call(
        &keys.ops,
        "POST",
        &approve_path,
        &json!({"intent_digest": intent_digest}),
    );
    assert_eq!(r.status, 409, "{:?}", r.body);
}

#[test]
fn a_pending_request_can_be_cancelled_and_then_never_signs() {
    let (keys, mut proxy, id) = setup();
    let path = format!("/v1/keys/{id}/sign/transaction");
    let r = proxy.call(&keys.dev, "POST", &path, &tx(11155111, 0, 10 * ETH));
    let rid = r.body["request"]["id"].as_str().unwrap().to_string();
    let digest = r.body["request"]["intent_digest"]
        .as_str()
        .unwrap()
        .to_string();
    let r = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/requests/{rid}/cancel"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["request"]["status"], "cancelled");
    let r = proxy.call(
        &keys.ops,
        "POST",
        &format!("/v1/requests/{rid}/approve"),
        &json!({"intent_digest": digest}),
    );
    assert_eq!(r.status, 409, "{:?}", r.body);
}

#[test]
fn a_running_enclave_never_takes_state_back_from_the_parent() {
    let (_keys, proxy, _) = setup();
    // The only way state enters the enclave is CompleteUnseal, which a running enclave
    // refuses: the parent cannot roll a running enclave back.
    assert_eq!(
        code(proxy.enclave().handle(Request::BeginUnseal)),
        ErrorCode::WrongPhase
    );
}

#[test]
fn a_transaction_whose_json_and_rlp_disagree_is_refused() {
    let (keys, mut proxy, id) = setup();
    let path = format!("/v1/keys/{id}/sign/transaction");
    // The unsigned encoding of the same transaction, as the enclave would sign it.
    let json_tx = tx(1, 7, ETH / 10);
    let decoded = strongroom_eth::UnsignedTransaction::from_json(&json_tx["transaction"]).unwrap();
    let unsigned = format!("0x{}", hex::encode(decoded.unsigned_encoding()));
    // Both forms agreeing: signed.
    let mut both = json_tx.clone();
    both["unsigned"] = json!(unsigned);
    let r = proxy.call(&keys.dev, "POST", &path, &both);
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The JSON says 0.1 ETH to the usual recipient; the RLP (what would be signed) differs
    // in the value: refused, nothing signed.
    let other =
        strongroom_eth::UnsignedTransaction::from_json(&tx(1, 7, ETH)["transaction"]).unwrap();
    let mut lying = json_tx.clone();
    lying["unsigned"] = json!(format!("0x{}", hex::encode(other.unsigned_encoding())));
    let r = proxy.call(&keys.dev, "POST", &path, &lying);
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(r.body.get("raw").is_none());
    assert!(r.message().contains("value"), "{}", r.message());
}

#[test]
fn a_time_locked_request_signs_only_after_its_delay_and_can_be_cancelled_before() {
    let keys = Keys::new();
    let mut rules = dev_rules();
    rules.as_array_mut().unwrap().push(json!(
        {"name": "slow-messages", "effect": "allow", "principals": ["dev"],
         "actions": ["sign_message"], "conditions": {"time_lock": 2}}));
    // Only the time-locked rule grants messages.
    rules
        .as_array_mut()
        .unwrap()
        .retain(|r| r["name"] != "dev-messages");
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, rules));
    let id = proxy.create_key(&keys.dev, "k")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/keys/{id}/sign/message");
    let message = |text: &str| json!({"message": format!("0x{}", hex::encode(text))});

    let r = proxy.call(&keys.dev, "POST", &path, &message("later"));
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["request"]["decision"]["result"], "time_locked");
    let rid = r.body["request"]["id"].as_str().unwrap().to_string();
    let execute = format!("/v1/requests/{rid}/execute");
    // Too early: still pending, nothing signed.
    let r = proxy.call(&keys.dev, "POST", &execute, &json!({}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["request"]["status"], "pending");
    assert!(r.body["result"].is_null());
    // A stranger to the request cannot execute it.
    let r = proxy.call(&keys.ops, "POST", &execute, &json!({}));
    assert_eq!(r.status, 403, "{:?}", r.body);

    // A second one, cancelled during its delay, never signs.
    let r = proxy.call(&keys.dev, "POST", &path, &message("never"));
    let cancelled = r.body["request"]["id"].as_str().unwrap().to_string();
    let r = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/requests/{cancelled}/cancel"),
        &json!({}),
    );
    assert_eq!(r.body["request"]["status"], "cancelled", "{:?}", r.body);

    std::thread::sleep(std::time::Duration::from_millis(3100));
    let r = proxy.call(&keys.dev, "POST", &execute, &json!({}));
    assert_eq!(r.body["request"]["status"], "signed", "{:?}", r.body);
    assert!(
        r.body["result"]["signature"]
            .as_str()
            .unwrap()
            .starts_with("0x")
    );
    let r = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/requests/{cancelled}/execute"),
        &json!({}),
    );
    assert_eq!(r.status, 409, "{:?}", r.body);
}

/// Appends failing at every step of approve → complete: with the proxy's storage stopped,
/// the enclave's backlog fills, and whichever record cannot be appended, what it would
/// have recorded (an approval, a signature) is nowhere to be seen: not in the answer, not
/// in `GET /v1/requests/{id}`.
#[test]
fn no_signature_is_readable_without_its_record() {
    const LIMIT: usize = 6;
    for room in [0usize, 1, 2] {
        let keys = Keys::new();
        let mut proxy = support::Proxy::first_boot_with(&ROOT, &genesis(&keys, dev_rules()), |e| {
            e.with_audit_backlog(LIMIT)
        });
        let id = proxy.create_key(&keys.dev, "k")["id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = proxy.call(
            &keys.dev,
            "POST",
            &format!("/v1/keys/{id}/sign/transaction"),
            &tx(11155111, 0, 10 * ETH),
        );
        assert_eq!(r.status, 202, "{:?}", r.body);
        let rid = r.body["request"]["id"].as_str().unwrap().to_string();
        let digest = r.body["request"]["intent_digest"]
            .as_str()
            .unwrap()
            .to_string();
        // Storage stops; fill the backlog up to `room` appends short of the limit.
        proxy.frozen = Some(proxy.audit.len() as u64);
        for n in 0..(LIMIT - room) {
            let body = json!({"digest": format!("0x{}", format!("{n:02x}").repeat(32))});
            let r = proxy.call(
                &keys.dev,
                "POST",
                &format!("/v1/keys/{id}/sign/digest"),
                &body,
            );
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
        let before = proxy.audit.len();
        let r = proxy.call(
            &keys.ops,
            "POST",
            &format!("/v1/requests/{rid}/approve"),
            &json!({"intent_digest": digest}),
        );
        let made: Vec<String> = proxy.audit[before..]
            .iter()
            .map(|l| {
                let e = AuditEntry::parse_line(l).unwrap();
                e.header().unwrap().kind
            })
            .collect();
        let seen = proxy.raw("GET", &format!("/v1/requests/{rid}"), b"", None);
        let request = &seen.body["request"];
        match room {
            // Nothing could be appended: refused before deciding.
            0 => {
                assert_eq!(
                    (r.status, r.error_code()),
                    (503, "audit_backlog"),
                    "{:?}",
                    r.body
                );
                assert!(made.is_empty());
                assert_eq!(request["approvals"], json!([]));
            }
            // The approval is recorded; the signature's record could not be: no signature.
            1 => {
                assert_eq!(
                    (r.status, r.error_code()),
                    (503, "audit_backlog"),
                    "{:?}",
                    r.body
                );
                assert_eq!(made, ["request_approved"]);
                assert_eq!(request["approvals"], json!(["ops"]));
            }
            // Both fit: signed, and the signature's record is in the chain.
            _ => {
                assert_eq!(r.status, 200, "{:?}", r.body);
                assert_eq!(made, ["request_approved", "request_completed"]);
                assert_eq!(request["status"], "signed");
                let hash = r.body["result"]["hash"].as_str().unwrap();
                assert!(proxy.audit.last().unwrap().contains(hash));
                continue;
            }
        }
        assert_eq!(request["status"], "pending", "{request}");
        assert!(request["result"].is_null(), "{request}");
        assert!(
            r.body.get("result").is_none_or(Value::is_null),
            "{:?}",
            r.body
        );
        // Storage comes back: the request completes, with its record.
        proxy.frozen = None;
        let r = if room == 0 {
            proxy.call(
                &keys.ops,
                "POST",
                &format!("/v1/requests/{rid}/approve"),
                &json!({"intent_digest": digest}),
            )
        } else {
            proxy.call(
                &keys.dev,
                "POST",
                &format!("/v1/requests/{rid}/execute"),
                &json!({}),
            )
        };
        assert_eq!(r.status, 200, "{:?}", r.body);
        let hash = r.body["result"]["hash"].as_str().unwrap();
        assert!(proxy.audit.last().unwrap().contains(hash));
    }
}

/// One principal at every quota — waiting requests, open proposals, its velocity limit —
/// and another principal and the admins go on unaffected.
#[test]
fn one_principal_at_its_quotas_blocks_nobody_else() {
    use strongroom_enclave::call::proposals::MAX_OPEN_PROPOSALS_PER_KEY;
    use strongroom_enclave::requests::MAX_PENDING_PER_PRINCIPAL;
    let keys = Keys::new();
    // Both principals sign transfers: small ones counted per principal (at most 3 a day),
    // big ones held for the other's approval.
    let rules = json!([
        {"name": "keys", "effect": "allow", "principals": ["dev", "ops"], "actions": ["create_key"]},
        {"name": "small", "effect": "allow", "principals": ["dev", "ops"], "actions": ["sign_transaction"],
         "conditions": {"chain_ids": [1], "max_value": "1 ether",
                        "velocity": [{"scope": "principal", "window": "24h", "max_count": 3}]}},
        {"name": "big", "effect": "allow", "principals": ["dev", "ops"], "actions": ["sign_transaction"],
         "conditions": {"chain_ids": [11155111], "approvals": {"threshold": 1, "approvers": ["dev", "ops"]}}}
    ]);
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, rules.clone()));
    let mine = proxy.create_key(&keys.dev, "dev")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let theirs = proxy.create_key(&keys.ops, "ops")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sign = |proxy: &mut Proxy, who: &strongroom_auth::SigningKey, key: &str, body: &Value| {
        proxy.call(
            who,
            "POST",
            &format!("/v1/keys/{key}/sign/transaction"),
            body,
        )
    };

    // Waiting requests: the quota, then a clear refusal.
    for n in 0..MAX_PENDING_PER_PRINCIPAL as u64 {
        let r = sign(&mut proxy, &keys.dev, &mine, &tx(11155111, n, 10 * ETH));
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    let r = sign(&mut proxy, &keys.dev, &mine, &tx(11155111, 99, 10 * ETH));
    assert_eq!(
        (r.status, r.error_code()),
        (429, "quota_exceeded"),
        "{:?}",
        r.body
    );
    assert!(
        r.message().contains("\"dev\" has 16 requests waiting"),
        "{}",
        r.message()
    );
    // Velocity: dev's three small transfers, then refused.
    for n in 0..3 {
        assert_eq!(
            sign(&mut proxy, &keys.dev, &mine, &tx(1, 100 + n, 1)).status,
            200
        );
    }
    let r = sign(&mut proxy, &keys.dev, &mine, &tx(1, 200, 1));
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(r.message().contains("velocity"), "{}", r.message());
    // Proposals: dev's key at its quota.
    for _ in 0..MAX_OPEN_PROPOSALS_PER_KEY {
        let r = proxy.call(
            &keys.dev,
            "POST",
            "/v1/policy/proposals",
            &json!({"policy": policy(&keys, rules.clone())}),
        );
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let r = proxy.call(
        &keys.dev,
        "POST",
        "/v1/policy/proposals",
        &json!({"policy": policy(&keys, rules.clone())}),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (429, "quota_exceeded"),
        "{:?}",
        r.body
    );

    // The other principal: its own requests, signatures and proposals go through.
    let r = sign(&mut proxy, &keys.ops, &theirs, &tx(11155111, 0, 10 * ETH));
    assert_eq!(r.status, 202, "{:?}", r.body);
    for n in 0..3 {
        assert_eq!(
            sign(&mut proxy, &keys.ops, &theirs, &tx(1, 10 + n, 1)).status,
            200
        );
    }
    let r = proxy.call(
        &keys.ops,
        "POST",
        "/v1/policy/proposals",
        &json!({"policy": policy(&keys, rules.clone())}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    // The admins: cancel one of dev's proposals, and change the policy.
    let open = proxy.raw("GET", "/v1/policy/proposals", b"", None);
    let first = open.body["proposals"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = proxy.call(
        &keys.admins[0],
        "POST",
        &format!("/v1/policy/proposals/{first}/cancel"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = proxy.call(
        &keys.admins[2],
        "POST",
        "/v1/policy/proposals",
        &json!({"policy": policy(&keys, dev_rules())}),
    );
    assert_eq!(
        r.status, 201,
        "an admin proposes whatever principals hold: {:?}",
        r.body
    );
    let pid = r.body["proposal"]["id"].as_str().unwrap().to_string();
    let digest = r.body["proposal"]["digest"].as_str().unwrap().to_string();
    assert_eq!(
        approve(&mut proxy, &keys.admins[0], &pid, &digest).status,
        200
    );
    let r = approve(&mut proxy, &keys.admins[1], &pid, &digest);
    assert_eq!(r.body["applied"], true, "{:?}", r.body);
    // dev's quota frees up as requests finish: cancelling one makes room for one.
    let list = proxy.raw("GET", "/v1/requests", b"", None);
    let waiting = list.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["principal"] == "dev" && r["status"] == "pending")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/requests/{waiting}/cancel"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["request"].get("body").is_none());
}
