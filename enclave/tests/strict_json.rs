//! Duplicate object keys, attacked (review finding F7): every JSON body that enters the
//! enclave goes through one strict decoder, so `{"to": A, "to": B}` is refused wherever it
//! appears — a JSON-RPC request, a batch member, a typed-data string inside JSON-RPC
//! params, a REST signing body, a proposed policy — and nothing is signed or recorded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use strongroom_protocol::messages::{Call, SealedKey};
use support::{Keys, Proxy, dev_rules, genesis, stamp};

const ROOT: [u8; 32] = [0x78; 32];
const A: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const B: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

/// A booted enclave with the development rules and one key: (keys, proxy, key id, address).
fn setup() -> (Keys, Proxy, String, String) {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    let key = proxy.create_key(&keys.dev, "hot");
    let id = key["id"].as_str().unwrap().to_string();
    let address = key["address"].as_str().unwrap().to_string();
    (keys, proxy, id, address)
}

/// `POST /rpc` with exactly `body`, stamped by the development principal, with the key's
/// blob attached as the proxy attaches it for a signing method.
fn rpc(proxy: &mut Proxy, keys: &Keys, id: &str, body: &str) -> support::Reply {
    let header = stamp(&keys.dev, "POST", "/rpc", body.as_bytes());
    let sealed = proxy.blobs[id].clone();
    let audit_stored = Some(proxy.audit.len() as u64);
    proxy.raw_call(Call {
        method: "POST".into(),
        path: "/rpc".into(),
        body: body.as_bytes().to_vec().into(),
        stamp: Some(header),
        key: None,
        keys: vec![SealedKey {
            id: id.to_string(),
            sealed: sealed.into(),
        }],
        audit_stored,
    })
}

/// `POST path` with exactly `body`, stamped by the development principal.
fn post(proxy: &mut Proxy, keys: &Keys, path: &str, body: &str) -> support::Reply {
    let header = stamp(&keys.dev, "POST", path, body.as_bytes());
    proxy.raw("POST", path, body.as_bytes(), Some(header))
}

/// A Sepolia transfer of 1 wei whose recipient fields are `to` (raw JSON members).
fn transaction(from: &str, to: &str) -> String {
    format!(
        r#"{{"from":"{from}","type":"0x2","chainId":"0xaa36a7","nonce":"0x0",{to},"value":"0x1","gas":"0x5208","maxFeePerGas":"0x4a817c800","maxPriorityFeePerGas":"0x3b9aca00"}}"#
    )
}

fn sign_transaction(tx: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_signTransaction","params":[{tx}]}}"#)
}

#[test]
fn a_json_rpc_transaction_with_two_recipients_is_refused_and_nothing_is_recorded() {
    let (keys, mut proxy, id, address) = setup();
    let before = proxy.audit.len();
    let twice = sign_transaction(&transaction(&address, &format!(r#""to":"{A}","to":"{B}""#)));
    let r = rpc(&mut proxy, &keys, &id, &twice);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["error"]["code"], -32700, "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("duplicate key `to`"), "{message}");
    assert!(r.body.get("result").is_none());
    assert_eq!(proxy.audit.len(), before, "no decision recorded");

    // The same request with one recipient signs: the refusal is the duplicate's.
    let once = sign_transaction(&transaction(&address, &format!(r#""to":"{B}""#)));
    let r = rpc(&mut proxy, &keys, &id, &once);
    assert!(r.body["result"].as_str().is_some(), "{:?}", r.body);
    assert_eq!(proxy.audit.len(), before + 1);
}

#[test]
fn a_batch_member_with_a_duplicate_key_refuses_the_whole_batch() {
    let (keys, mut proxy, id, _) = setup();
    let body = r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},
                   {"jsonrpc":"2.0","id":2,"method":"eth_chainId","method":"eth_accounts","params":[]}]"#;
    let r = rpc(&mut proxy, &keys, &id, body);
    assert_eq!(r.body["error"]["code"], -32700, "{:?}", r.body);
    assert!(
        r.body.as_array().is_none(),
        "no member answered: {:?}",
        r.body
    );
}

#[test]
fn typed_data_sent_as_a_json_string_is_decoded_strictly() {
    let (keys, mut proxy, id, address) = setup();
    let typed = r#"{"types":{"EIP712Domain":[{"name":"name","type":"string"}],"Mail":[{"name":"to","type":"address"}]},"primaryType":"Mail","domain":{"name":"x"},"message":{"to":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8","to":"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"}}"#;
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 7, "method": "eth_signTypedData_v4",
        "params": [address, typed],
    })
    .to_string();
    let before = proxy.audit.len();
    let r = rpc(&mut proxy, &keys, &id, &body);
    assert_eq!(r.body["error"]["code"], -32602, "{:?}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("duplicate key `to`"), "{message}");
    assert_eq!(proxy.audit.len(), before);
}

#[test]
fn rest_signing_and_proposal_bodies_with_duplicate_keys_are_refused() {
    let (keys, mut proxy, id, address) = setup();
    let before = proxy.audit.len();
    let tx = transaction(&address, &format!(r#""to":"{A}","to":"{B}""#));
    let body = format!(
        r#"{{"transaction":{}}}"#,
        tx.replace(&format!(r#""from":"{address}","#), "")
    );
    let path = format!("/v1/keys/{id}/sign/transaction");
    let r = post(&mut proxy, &keys, &path, &body);
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.message().contains("duplicate key `to`"),
        "{}",
        r.message()
    );

    let digest = format!(
        r#"{{"digest":"0x{}","digest":"0x{}"}}"#,
        "11".repeat(32),
        "22".repeat(32)
    );
    let path = format!("/v1/keys/{id}/sign/digest");
    let r = post(&mut proxy, &keys, &path, &digest);
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.message().contains("duplicate key `digest`"),
        "{}",
        r.message()
    );

    // A proposed policy whose rules appear twice: the last copy would have won before.
    let policy = proxy
        .call(&keys.dev, "GET", "/v1/policy", &Value::Null)
        .body["policy"]
        .clone();
    let text = serde_json::to_string(&policy).unwrap();
    let doubled = text.replacen(r#""rules":"#, r#""rules":[],"rules":"#, 1);
    assert_ne!(doubled, text);
    let body = format!(r#"{{"policy":{doubled}}}"#);
    let path = "/v1/policy/proposals";
    let r = post(&mut proxy, &keys, path, &body);
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.message().contains("duplicate key `rules`"),
        "{}",
        r.message()
    );
    assert_eq!(proxy.audit.len(), before, "nothing recorded");
}
