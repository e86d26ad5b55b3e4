//! Known answers from an independent implementation: eth-account (Python), vectors kept in
//! `tests/data/eth_account_vectors.json`. Regenerate with (from the repository root):
//! `$(bash scripts/test-env.sh) tests/interop/eth_vectors.py > eth/tests/data/eth_account_vectors.json`.
//!
//! Checks our signing hashes equal eth-account's, and that signing them with k256 0.14 (the
//! enclave's implementation; RFC 6979 with low s, as eth-account) and encoding with
//! `encode_signed` / `signature_hex` reproduces eth-account's output byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy_primitives::{Address, B256, hex};
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use strongroom_eth::{TypedData, UnsignedTransaction, message_from_request_body, signature_hex};
use strongroom_policy::{PermitScheme, TxType};

const VECTORS: &str = include_str!("data/eth_account_vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn b256(v: &Value) -> B256 {
    v.as_str().unwrap().parse().unwrap()
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn key(v: &Value) -> SigningKey {
    SigningKey::from_slice(&bytes(&v["private_key"])).unwrap()
}

/// (r, s, y_parity) as the enclave makes them.
fn sign(key: &SigningKey, hash: B256) -> ([u8; 32], [u8; 32], bool) {
    let (sig, recid) = key.sign_prehash_recoverable(hash.as_slice());
    let (r, s) = sig.split_bytes();
    (r.into(), s.into(), recid.is_y_odd())
}

#[test]
fn vector_file_covers_every_kind() {
    let v = vectors();
    assert!(v["transactions"].as_array().unwrap().len() >= 6);
    assert!(v["typed_data"].as_array().unwrap().len() >= 4);
    assert!(v["messages"].as_array().unwrap().len() >= 3);
}

#[test]
fn transactions_match_eth_account() {
    let v = vectors();
    let key = key(&v);
    let sender: Address = v["address"].as_str().unwrap().parse().unwrap();
    for case in v["transactions"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let body = serde_json::to_vec(&json!({ "transaction": case["transaction"] })).unwrap();
        let (tx, from) = UnsignedTransaction::from_request_body(&body).expect(name);
        assert_eq!(from, Some(sender), "{name}");
        assert_eq!(
            tx.signing_hash(),
            b256(&case["signing_hash"]),
            "{name}: signing hash"
        );

        // The unsigned encoding is the hash's preimage; it must decode back, alone and
        // together with the JSON.
        let unsigned = tx.unsigned_encoding();
        assert_eq!(
            UnsignedTransaction::from_unsigned_rlp(&unsigned).unwrap(),
            tx,
            "{name}"
        );
        let both = serde_json::to_vec(&json!({
            "transaction": case["transaction"],
            "unsigned": format!("0x{}", hex::encode(&unsigned)),
        }))
        .unwrap();
        assert_eq!(
            UnsignedTransaction::from_request_body(&both).unwrap().0,
            tx,
            "{name}"
        );

        let (r, s, y_parity) = sign(&key, tx.signing_hash());
        assert_eq!(r.to_vec(), bytes(&case["r"]), "{name}: r");
        assert_eq!(s.to_vec(), bytes(&case["s"]), "{name}: s");
        let signed = tx.encode_signed(r, s, y_parity);
        assert_eq!(
            hex::encode(&signed.raw),
            hex::encode(bytes(&case["raw"])),
            "{name}: raw"
        );
        assert_eq!(signed.hash, b256(&case["hash"]), "{name}: hash");

        // eth-account's v: 27/28 + EIP-155 for legacy, the bare parity for typed envelopes.
        let v_expected = case["v"].as_u64().unwrap();
        let v_ours = match tx.tx_type() {
            TxType::Legacy => 35 + 2 * tx.chain_id() + u64::from(y_parity),
            _ => u64::from(y_parity),
        };
        assert_eq!(v_ours, v_expected, "{name}: v");
    }
}

#[test]
fn intents_of_vector_transactions() {
    let v = vectors();
    let find = |name: &str| {
        let case = v["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"].as_str().unwrap().contains(name))
            .unwrap();
        UnsignedTransaction::from_json(&case["transaction"])
            .unwrap()
            .intent()
    };
    let transfer = find("ERC-20 transfer");
    let erc20 = transfer.erc20.expect("decoded ERC-20 transfer");
    assert_eq!(erc20.amount(), alloy_primitives::U256::from(2_500_000u64));
    assert_eq!(transfer.selector, Some([0xa9, 0x05, 0x9c, 0xbb]));
    let approve = find("approve");
    assert_eq!(approve.erc20.unwrap().amount(), alloy_primitives::U256::MAX);
    let creation = find("contract creation");
    assert_eq!(creation.to, None);
    assert_eq!(creation.erc20, None);
    let plain = find("plain transfer");
    assert_eq!((plain.selector, plain.data_len), (None, 0));
}

#[test]
fn typed_data_matches_eth_account() {
    let v = vectors();
    let key = key(&v);
    for case in v["typed_data"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let doc = serde_json::to_vec(&case["document"]).unwrap();
        let typed = TypedData::from_json(&doc).expect(name);
        assert_eq!(
            typed.signing_hash(),
            b256(&case["signing_hash"]),
            "{name}: signing hash"
        );
        let (r, s, y_parity) = sign(&key, typed.signing_hash());
        assert_eq!(
            signature_hex(r, s, y_parity),
            case["signature"].as_str().unwrap(),
            "{name}"
        );
        let intent = typed.intent();
        assert_eq!(intent.signing_hash, typed.signing_hash());
        let scheme = intent.permit.as_ref().map(|p| p.scheme);
        let expected = if name.starts_with("Permit2") {
            Some(PermitScheme::Permit2)
        } else if name.starts_with("EIP-2612") {
            Some(PermitScheme::Eip2612)
        } else {
            None
        };
        assert_eq!(scheme, expected, "{name}: permit");
    }
}

#[test]
fn messages_match_eth_account() {
    let v = vectors();
    let key = key(&v);
    for case in v["messages"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let body = serde_json::to_vec(&json!({ "message": case["message"] })).unwrap();
        let (message, intent) = message_from_request_body(&body).expect(name);
        assert_eq!(message, bytes(&case["message"]), "{name}");
        assert_eq!(
            intent.signing_hash,
            b256(&case["signing_hash"]),
            "{name}: signing hash"
        );
        let (r, s, y_parity) = sign(&key, intent.signing_hash);
        assert_eq!(
            signature_hex(r, s, y_parity),
            case["signature"].as_str().unwrap(),
            "{name}"
        );
    }
}
