//! Review finding F8, typed data: value-moving structures beyond EIP-2612 and Permit2 —
//! EIP-3009 transfers by authorisation and DAI's permit — are refused under a rule that
//! lists no spender (the development rules: any typed data, `allow_unknown_types`), while
//! typed data that moves nothing still signs there; and a bare `sign_typed_data` rule signs
//! no typed data it cannot read the effect of.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{Keys, Proxy, dev_rules, genesis};

const ROOT: [u8; 32] = [0x7a; 32];
const USDC: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
const DAI: &str = "0x6B175474E89094C44Da98b954EedeAC495271d0F";
const OWNER: &str = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
const THIEF: &str = "0x3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD";

fn fields(list: &[(&str, &str)]) -> Value {
    list.iter()
        .map(|(n, t)| json!({"name": n, "type": t}))
        .collect()
}

fn domain(name: &str, version: &str, contract: &str) -> (Value, Value) {
    (
        fields(&[
            ("name", "string"),
            ("version", "string"),
            ("chainId", "uint256"),
            ("verifyingContract", "address"),
        ]),
        json!({"name": name, "version": version, "chainId": 1, "verifyingContract": contract}),
    )
}

fn eip3009() -> Value {
    let (ty, domain) = domain("USD Coin", "2", USDC);
    json!({"types": {"EIP712Domain": ty, "TransferWithAuthorization": fields(&[
            ("from", "address"), ("to", "address"), ("value", "uint256"),
            ("validAfter", "uint256"), ("validBefore", "uint256"), ("nonce", "bytes32")])},
        "primaryType": "TransferWithAuthorization", "domain": domain,
        "message": {"from": OWNER, "to": THIEF, "value": "1000000000000", "validAfter": 0,
                    "validBefore": "1893456000", "nonce": format!("0x{}", "ab".repeat(32))}})
}

fn dai_permit() -> Value {
    let (ty, domain) = domain("Dai Stablecoin", "1", DAI);
    json!({"types": {"EIP712Domain": ty, "Permit": fields(&[
            ("holder", "address"), ("spender", "address"), ("nonce", "uint256"),
            ("expiry", "uint256"), ("allowed", "bool")])},
        "primaryType": "Permit", "domain": domain,
        "message": {"holder": OWNER, "spender": THIEF, "nonce": 0, "expiry": 0, "allowed": true}})
}

fn mail() -> Value {
    let (ty, domain) = domain(
        "Ether Mail",
        "1",
        "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    );
    json!({"types": {"EIP712Domain": ty, "Mail": fields(&[("contents", "string")])},
        "primaryType": "Mail", "domain": domain, "message": {"contents": "Hello, Bob!"}})
}

#[test]
fn eip3009_and_dai_permits_are_refused_without_a_listed_spender() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    let id = proxy.create_key_id(&keys.dev, "hot");
    let path = format!("/v1/keys/{id}/sign/typed-data");
    for (name, doc, scheme) in [
        ("EIP-3009", eip3009(), "EIP-3009 transfer authorisation"),
        ("DAI", dai_permit(), "DAI permit"),
    ] {
        let r = proxy.call(&keys.dev, "POST", &path, &doc);
        assert_eq!(r.status, 403, "{name}: {:?}", r.body);
        assert!(r.body.get("signature").is_none(), "{name}: signed");
        assert!(
            r.message().contains(scheme) && r.message().contains("no permit_spenders"),
            "{name}: {}",
            r.message()
        );
    }
    let r = proxy.call(&keys.dev, "POST", &path, &mail());
    assert_eq!(r.status, 200, "{:?}", r.body);

    // The same key under a rule with no typed-data conditions: nothing it cannot read.
    let bare = json!([
        {"name": "keys", "effect": "allow", "principals": ["dev"], "actions": ["create_key"]},
        {"name": "typed", "effect": "allow", "principals": ["dev"], "actions": ["sign_typed_data"]}
    ]);
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, bare));
    let id = proxy.create_key_id(&keys.dev, "hot");
    let r = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/keys/{id}/sign/typed-data"),
        &mail(),
    );
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(
        r.message().contains("allow_unknown_types"),
        "{}",
        r.message()
    );
}
