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
