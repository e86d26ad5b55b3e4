//! Ethereum payloads through the whole system in mock mode (CLI → proxy → enclave), checked
//! by an independent implementation: Python's eth-account recovers the key's address from
//! the signed transactions, typed data and messages, and computes the same signing hashes
//! from the same fields. Denials name their rule and sign nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use strongroom_e2e::{Stack, check_with_eth_account, temp_data};

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

fn transactions() -> Vec<Value> {
    vec![
        // EIP-1559 on mainnet, 0.5 ETH.
        json!({"type": "0x2", "chainId": "0x1", "nonce": "0x0", "to": RECIPIENT,
               "value": "0x6f05b59d3b20000", "gas": "0x5208",
               "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00"}),
        // Legacy EIP-155 on Sepolia.
        json!({"chainId": "0xaa36a7", "nonce": "0x7", "to": RECIPIENT, "value": "0x2386f26fc10000",
               "gas": "0x5208", "gasPrice": "0x3b9aca00"}),
        // EIP-2930 with an access list, on mainnet.
        json!({"type": "0x1", "chainId": "0x1", "nonce": "0x2", "to": RECIPIENT, "value": "0x1",
               "gas": "0x7530", "gasPrice": "0x3b9aca00",
               "accessList": [{"address": RECIPIENT,
                               "storageKeys": ["0x0000000000000000000000000000000000000000000000000000000000000001"]}]}),
    ]
}

fn mail() -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
            "Mail": [{"name": "from", "type": "Person"}, {"name": "to", "type": "Person"},
                     {"name": "contents", "type": "string"}]
        },
        "primaryType": "Mail",
        "domain": {"name": "Ether Mail", "version": "1", "chainId": 1,
                   "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"},
        "message": {
            "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
            "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
            "contents": "Hello, Bob!"
        }
    })
}

fn permit() -> Value {
    json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                       {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                       {"name": "deadline", "type": "uint256"}]
        },
        "primaryType": "Permit",
        "domain": {"name": "USD Coin", "version": "2", "chainId": 1,
                   "verifyingContract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"},
        "message": {"owner": RECIPIENT, "spender": "0x3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD",
                    "value": "115792089237316195423570985008687907853269984665640564039457584007913129639935",
                    "nonce": 0, "deadline": 4102444800u64}
    })
}

fn write(stack: &Stack, name: &str, body: &Value) -> String {
    let path = stack.data.join(name);
    std::fs::write(&path, serde_json::to_vec(body).unwrap()).unwrap();
    path.display().to_string()
}

#[test]
fn transactions_typed_data_and_messages_verify_with_eth_account() {
    let data = temp_data("ethereum");
    let stack = Stack::start_ready(&data);
    let key = stack.cli_json(&["keys", "create", "--label", "hot"]);
    let id = key["id"].as_str().unwrap().to_string();
    let address = key["address"].as_str().unwrap().to_string();

    let mut request =
        json!({"address": address, "transactions": [], "typed_data": [], "messages": []});
    for (i, fields) in transactions().into_iter().enumerate() {
        let file = write(
            &stack,
            &format!("tx{i}.json"),
            &json!({ "transaction": fields }),
        );
        let answer = stack.cli_json(&["sign", "tx", "--key", &id, "--file", &file]);
        assert_eq!(answer["decision"]["rule"], "dev-transactions", "{answer}");
        request["transactions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"fields": fields, "answer": answer}));
    }
    let file = write(&stack, "mail.json", &mail());
    let answer = stack.cli_json(&["sign", "typed-data", "--key", &id, "--file", &file]);
    request["typed_data"]
        .as_array_mut()
        .unwrap()
        .push(json!({"document": mail(), "answer": answer}));
    let message = format!("0x{}", hex::encode("I approve the Strongroom walk-through"));
    let file = write(&stack, "message.json", &json!({ "message": message }));
    let answer = stack.cli_json(&["sign", "message", "--key", &id, "--file", &file]);
    request["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"message": message, "answer": answer}));

    let checked = check_with_eth_account(&request);
    for (i, (ours, theirs)) in request["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(checked["transactions"].as_array().unwrap())
        .enumerate()
    {
        assert_eq!(
            theirs["signer"],
            address.as_str(),
            "transaction {i}: signer"
        );
        assert_eq!(
            theirs["signing_hash"], ours["answer"]["signing_hash"],
            "transaction {i}"
        );
        assert_eq!(
            theirs["hash"], ours["answer"]["hash"],
            "transaction {i}: hash"
        );
        if let Some(decoded) = theirs.get("decoded") {
            assert_eq!(decoded["to"], RECIPIENT, "transaction {i}: to");
            assert_eq!(
                format!("0x{:x}", decoded["nonce"].as_u64().unwrap()),
                ours["fields"]["nonce"],
                "transaction {i}: nonce"
            );
        }
    }
    for kind in ["typed_data", "messages"] {
        let ours = &request[kind][0]["answer"];
        let theirs = &checked[kind][0];
        assert_eq!(theirs["signer"], address.as_str(), "{kind}: signer");
        assert_eq!(
            theirs["signing_hash"], ours["signing_hash"],
            "{kind}: signing hash"
        );
    }
    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn denials_name_the_rule_and_sign_nothing() {
    let data = temp_data("denials");
    let stack = Stack::start_ready(&data);
    let id = stack.cli_json(&["keys", "create", "--label", "hot"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // 2 ETH: over the development cap.
    let mut fields = transactions()[0].clone();
    fields["value"] = json!("0x1bc16d674ec80000");
    let file = write(&stack, "big.json", &json!({ "transaction": fields }));
    let out = stack.cli(&["sign", "tx", "--key", &id, "--file", &file]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dev-transactions") && err.contains("2 ETH exceeds cap 1 ETH"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing printed, nothing signed");
    // Chain 137 is not in the policy.
    let mut fields = transactions()[0].clone();
    fields["chainId"] = json!("0x89");
    let file = write(&stack, "polygon.json", &json!({ "transaction": fields }));
    let err = stack.cli_err(&["sign", "tx", "--key", &id, "--file", &file]);
    assert!(err.contains("chain id 137"), "{err}");
    // An unlimited USDC permit to a router: permits need a listed spender.
    let file = write(&stack, "permit.json", &permit());
    let err = stack.cli_err(&["sign", "typed-data", "--key", &id, "--file", &file]);
    assert!(err.contains("denied") && err.contains("permit"), "{err}");
    // Without the principal key (another key in the environment): unknown key, 401.
    let stranger = stack.data.join("stranger.key");
    let out = std::process::Command::new(strongroom_e2e::bin_dir().join("strongroom"))
        .args(["--url", &stack.url, "dev", "key", "--out"])
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = stack.cli(&[
        "--principal-key",
        stranger.to_str().unwrap(),
        "sign",
        "digest",
        "--key",
        &id,
        "--digest",
        &format!("0x{}", "00".repeat(32)),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("not a principal key"),
        "{err}"
    );
    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}
