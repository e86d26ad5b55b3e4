//! ERC-20 calldata that tries to escape the token rules (review finding F8): a transfer
//! with bytes after its arguments is still the transfer a Solidity token executes, so the
//! token's cap and recipient list apply even where a rule also grants the selector under
//! `contract_calls`; arguments that are not canonically encoded are refused outright.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Keys, Proxy, genesis};

const ROOT: [u8; 32] = [0x79; 32];
const TOKEN: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
const LISTED: &str = "1111111111111111111111111111111111111111";
const STRANGER: &str = "2222222222222222222222222222222222222222";

/// Token transfers of at most 1,000 units to LISTED; the same rule also grants
/// `transfer(address,uint256)` on the token as a plain contract call.
fn rules() -> Value {
    json!([
        {"name": "dev-create-keys", "effect": "allow", "principals": ["dev"], "actions": ["create_key"]},
        {"name": "usdc", "effect": "allow", "principals": ["dev"], "actions": ["sign_transaction"],
         "conditions": {"chain_ids": [1],
                        "erc20": [{"token": TOKEN, "max_amount": "1000", "recipients": [format!("0x{LISTED}")]}],
                        "contract_calls": [{"contract": TOKEN, "selector": "0xa9059cbb"}]}}
    ])
}

fn transfer(to: &str, amount: u64, extra: &str) -> String {
    format!("0xa9059cbb{to:0>64}{amount:064x}{extra}")
}

fn tx(data: &str) -> Value {
    json!({"transaction": {
        "type": "0x2", "chainId": "0x1", "nonce": "0x0", "to": TOKEN, "value": "0x0",
        "gas": "0x186a0", "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00",
        "data": data,
    }})
}

#[test]
fn trailing_bytes_do_not_turn_an_erc20_transfer_into_other_calldata() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, rules()));
    let id = proxy.create_key_id(&keys.dev, "hot");
    let path = format!("/v1/keys/{id}/sign/transaction");
    let mut sign = |data: String| proxy.call(&keys.dev, "POST", &path, &tx(&data));

    // Within the token rules: signed, with or without a trailing byte.
    for extra in ["", "00"] {
        let r = sign(transfer(LISTED, 1000, extra));
        assert_eq!(r.status, 200, "{extra:?}: {:?}", r.body);
    }
    // Over the cap, or to a recipient not listed: one more byte changes nothing.
    for extra in ["", "00", &"00".repeat(32)] {
        let r = sign(transfer(LISTED, 1_000_000, extra));
        assert_eq!(r.status, 403, "{extra:?}: {:?}", r.body);
        assert!(r.body.get("raw").is_none());
        assert!(r.message().contains("1000"), "{}", r.message());
        let r = sign(transfer(STRANGER, 1, extra));
        assert_eq!(r.status, 403, "{extra:?}: {:?}", r.body);
        assert!(r.body.get("raw").is_none());
    }
    // Cut short, or an address word with bits above its 20 bytes: refused as malformed.
    let full = transfer(LISTED, 1000, "");
    let r = sign(full[..full.len() - 2].to_string());
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.message().contains("ERC-20 calldata of 67 bytes"),
        "{}",
        r.message()
    );
    let r = sign(transfer(&format!("ff{LISTED:0>62}"), 1000, ""));
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.message().contains("not canonically encoded"),
        "{}",
        r.message()
    );
}

mod abi {
    #![allow(missing_docs)]
    alloy_sol_types::sol! {
        function execute(bytes commands, bytes[] inputs, uint256 deadline);
        function execTransaction(address to, uint256 value, bytes data, uint8 operation,
            uint256 safeTxGas, uint256 baseGas, uint256 gasPrice, address gasToken,
            address refundReceiver, bytes signatures);
        function v3SwapExactIn(address recipient, uint256 amountIn, uint256 amountOutMin,
            bytes path, bool payerIsUser);
    }
}

const ROUTER: &str = "0x66a9893cC07D91D95644AEDD05D03f95e1dBA8Af";
const SAFE: &str = "0x4F2083f5fBede34C2714aFfb3105539775f7FE64";

/// Router and Safe calls wait for one approval from "ops".
fn approval_rules() -> Value {
    json!([
        {"name": "dev-create-keys", "effect": "allow", "principals": ["dev"], "actions": ["create_key"]},
        {"name": "swaps", "effect": "allow", "principals": ["dev"], "actions": ["sign_transaction"],
         "conditions": {"chain_ids": [1],
                        "contract_calls": [{"contract": ROUTER, "selector": "0x3593564c"},
                                           {"contract": SAFE, "selector": "0x6a761202"}],
                        "approvals": {"threshold": 1, "approvers": ["ops"]}}}
    ])
}

/// A universal-router swap of 1,000 units paying out to `recipient`.
fn swap(recipient: &str) -> String {
    use alloy_sol_types::{SolCall, SolValue};
    let recipient: alloy_primitives::Address = recipient.parse().unwrap();
    let input = (
        recipient,
        alloy_primitives::U256::from(1000),
        alloy_primitives::U256::from(990),
        alloy_primitives::Bytes::from(vec![0xab; 43]),
        true,
    )
        .abi_encode_params();
    let call = abi::executeCall {
        commands: vec![0x00].into(),
        inputs: vec![input.into()],
        deadline: alloy_primitives::U256::from(1_900_000_000u64),
    };
    format!("0x{}", hex::encode(call.abi_encode()))
}

fn call_to(to: &str, data: &str) -> Value {
    json!({"transaction": {
        "type": "0x2", "chainId": "0x1", "nonce": "0x0", "to": to, "value": "0x0",
        "gas": "0x186a0", "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00",
        "data": data,
    }})
}

/// Finding F6: two requests that differ only in a calldata argument (a swap's recipient)
/// wait under different intent digests, and each intent shows its arguments decoded; an
/// approval of one does not sign the other.
#[test]
fn requests_differing_only_in_a_calldata_argument_have_different_intents() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, approval_rules()));
    let id = proxy.create_key_id(&keys.dev, "desk");
    let path = format!("/v1/keys/{id}/sign/transaction");
    let mut pending = Vec::new();
    for recipient in [format!("0x{LISTED}"), format!("0x{STRANGER}")] {
        let r = proxy.call(
            &keys.dev,
            "POST",
            &path,
            &call_to(ROUTER, &swap(&recipient)),
        );
        assert_eq!(r.status, 202, "{:?}", r.body);
        let request = r.body["request"].clone();
        let intent = &request["intent"];
        assert_eq!(intent["call"]["standard"], "Uniswap universal router");
        let command = &intent["call"]["commands"][0];
        assert_eq!(command["command"], "V3_SWAP_EXACT_IN");
        assert_eq!(command["args"][0]["name"], "recipient");
        assert_eq!(
            command["args"][0]["value"].as_str().unwrap().to_lowercase(),
            recipient
        );
        assert_eq!(command["args"][1]["value"], "1000");
        assert_eq!(intent["data"], swap(&recipient));
        pending.push(request);
    }
    assert_ne!(pending[0]["intent_digest"], pending[1]["intent_digest"]);
    assert_ne!(
        pending[0]["intent"]["signing_hash"],
        pending[1]["intent"]["signing_hash"]
    );
    // Approving the first request's digest on the second is refused.
    let second = pending[1]["id"].as_str().unwrap();
    let r = proxy.call(
        &keys.ops,
        "POST",
        &format!("/v1/requests/{second}/approve"),
        &json!({"intent_digest": pending[0]["intent_digest"]}),
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(r.body.get("raw").is_none());

    // A Safe transaction: the call it makes is decoded too (an ERC-20 transfer).
    use alloy_sol_types::SolCall;
    let inner = hex::decode(&transfer(STRANGER, 5, "")[2..]).unwrap();
    let exec = abi::execTransactionCall {
        to: TOKEN.parse().unwrap(),
        value: alloy_primitives::U256::ZERO,
        data: inner.into(),
        operation: 0,
        safeTxGas: alloy_primitives::U256::ZERO,
        baseGas: alloy_primitives::U256::ZERO,
        gasPrice: alloy_primitives::U256::ZERO,
        gasToken: alloy_primitives::Address::ZERO,
        refundReceiver: alloy_primitives::Address::ZERO,
        signatures: vec![0x11; 65].into(),
    };
    let data = format!("0x{}", hex::encode(exec.abi_encode()));
    let r = proxy.call(&keys.dev, "POST", &path, &call_to(SAFE, &data));
    assert_eq!(r.status, 202, "{:?}", r.body);
    let call = &r.body["request"]["intent"]["call"];
    assert_eq!(call["standard"], "Safe");
    let inner = &call["calls"][0];
    assert_eq!(inner["operation"], "call");
    assert_eq!(
        inner["call"]["function"],
        "transfer(address to, uint256 amount)"
    );
    assert_eq!(
        inner["call"]["args"][0]["value"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        format!("0x{STRANGER}")
    );
    assert_eq!(inner["call"]["args"][1]["value"], "5");
}
