//! Property tests: hostile bytes never panic; valid transactions round-trip between the
//! JSON form, the unsigned RLP and back; whatever RLP is accepted is canonical.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy_primitives::{Address, U256, hex};
use proptest::prelude::*;
use serde_json::{Value, json};
use strongroom_eth::{TypedData, UnsignedTransaction, message_from_request_body};
use strongroom_policy::TxType;

#[derive(Clone, Debug)]
struct Fields {
    ty: u8,
    chain_id: u64,
    nonce: u64,
    gas: u64,
    fee: u128,
    priority: u128,
    to: Option<[u8; 20]>,
    value: [u8; 32],
    data: Vec<u8>,
    access_list: Vec<([u8; 20], Vec<[u8; 32]>)>,
}

fn fields() -> impl Strategy<Value = Fields> {
    (
        0u8..3,
        1u64..,
        any::<u64>(),
        any::<u64>(),
        any::<u128>(),
        any::<u128>(),
        proptest::option::of(any::<[u8; 20]>()),
        prop_oneof![
            any::<[u8; 32]>(),
            (0u64..1000).prop_map(|n| U256::from(n).to_be_bytes())
        ],
        proptest::collection::vec(any::<u8>(), 0..100),
        proptest::collection::vec(
            (
                any::<[u8; 20]>(),
                proptest::collection::vec(any::<[u8; 32]>(), 0..3),
            ),
            0..3,
        ),
    )
        .prop_map(
            |(ty, chain_id, nonce, gas, a, b, to, value, data, access_list)| Fields {
                ty,
                chain_id,
                nonce,
                gas,
                fee: a.max(b),
                priority: a.min(b),
                to,
                value,
                data,
                access_list: if ty == 0 { Vec::new() } else { access_list },
            },
        )
}

fn quantity<T: std::fmt::LowerHex>(n: T) -> Value {
    json!(format!("{n:#x}"))
}

fn to_json(f: &Fields) -> Value {
    let mut tx = json!({
        "type": quantity(f.ty),
        "chainId": quantity(f.chain_id),
        "nonce": quantity(f.nonce),
        "gas": quantity(f.gas),
        "value": quantity(U256::from_be_bytes(f.value)),
        "data": format!("0x{}", hex::encode(&f.data)),
    });
    if let Some(to) = f.to {
        tx["to"] = json!(Address::from(to).to_checksum(None));
    }
    if f.ty == 2 {
        tx["maxFeePerGas"] = quantity(f.fee);
        tx["maxPriorityFeePerGas"] = quantity(f.priority);
    } else {
        tx["gasPrice"] = quantity(f.fee);
    }
    if f.ty != 0 {
        tx["accessList"] = f
            .access_list
            .iter()
            .map(|(a, keys)| {
                json!({
                    "address": format!("0x{}", hex::encode(a)),
                    "storageKeys": keys.iter().map(|k| format!("0x{}", hex::encode(k))).collect::<Vec<_>>(),
                })
            })
            .collect();
    }
    tx
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = UnsignedTransaction::from_unsigned_rlp(&bytes);
        let _ = UnsignedTransaction::from_request_body(&bytes);
        let _ = TypedData::from_json(&bytes);
        let _ = message_from_request_body(&bytes);
    }

    #[test]
    fn typed_prefixes_with_random_tails_never_panic(
        prefix in prop_oneof![Just(vec![]), Just(vec![1u8]), Just(vec![2u8]), Just(vec![0xf8u8])],
        tail in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = prefix;
        bytes.extend(tail);
        let _ = UnsignedTransaction::from_unsigned_rlp(&bytes);
    }

    /// Review finding F6: any two different signing payloads have different intent
    /// digests, so an approval of one never covers the other; and the intent carries the
    /// calldata and access list whole.
    #[test]
    fn different_transactions_have_different_intent_digests(a in fields(), b in fields()) {
        let ta = UnsignedTransaction::from_json(&to_json(&a)).unwrap();
        let tb = UnsignedTransaction::from_json(&to_json(&b)).unwrap();
        let (ia, ib) = (ta.intent(), tb.intent());
        prop_assert_eq!(ia.data.as_ref(), a.data.as_slice());
        prop_assert_eq!(ia.access_list.len(), a.access_list.len());
        let (da, db) = (
            strongroom_policy::Intent::Transaction(ia).digest("k"),
            strongroom_policy::Intent::Transaction(ib).digest("k"),
        );
        prop_assert_eq!(ta.signing_hash() == tb.signing_hash(), da == db);
        // One byte of calldata, or one storage key, changed: another digest.
        let mut c = a.clone();
        c.data.push(0);
        let tc = UnsignedTransaction::from_json(&to_json(&c)).unwrap();
        prop_assert_ne!(strongroom_policy::Intent::Transaction(tc.intent()).digest("k"), da);
        if let Some((_, keys)) = a.access_list.first() {
            let mut d = a.clone();
            let mut extra = keys.clone();
            extra.push([0x5a; 32]);
            d.access_list[0].1 = extra;
            let td = UnsignedTransaction::from_json(&to_json(&d)).unwrap();
            prop_assert_ne!(strongroom_policy::Intent::Transaction(td.intent()).digest("k"), da);
        }
    }

    #[test]
    fn json_and_rlp_round_trip(f in fields()) {
        let json = to_json(&f);
        let tx = UnsignedTransaction::from_json(&json).unwrap();
        let expected_type = [TxType::Legacy, TxType::Eip2930, TxType::Eip1559][usize::from(f.ty)];
        prop_assert_eq!(tx.tx_type(), expected_type);
        let intent = tx.intent();
        prop_assert_eq!(intent.chain_id, f.chain_id);
        prop_assert_eq!(intent.nonce, f.nonce);
        prop_assert_eq!(intent.gas_limit, f.gas);
        prop_assert_eq!(intent.max_fee_per_gas, f.fee);
        prop_assert_eq!(intent.to, f.to.map(Address::from));
        prop_assert_eq!(intent.value, U256::from_be_bytes(f.value));
        prop_assert_eq!(intent.data_len, f.data.len());

        // The unsigned encoding re-decodes to the same transaction and re-encodes to the
        // same bytes.
        let unsigned = tx.unsigned_encoding();
        let decoded = UnsignedTransaction::from_unsigned_rlp(&unsigned).unwrap();
        prop_assert_eq!(&decoded, &tx);
        prop_assert_eq!(decoded.unsigned_encoding(), unsigned.clone());
        prop_assert_eq!(decoded.signing_hash(), tx.signing_hash());

        // Both forms in one body agree.
        let body = serde_json::to_vec(&json!({
            "transaction": json,
            "unsigned": format!("0x{}", hex::encode(&unsigned)),
        })).unwrap();
        prop_assert_eq!(UnsignedTransaction::from_request_body(&body).unwrap().0, tx);
    }

    #[test]
    fn accepted_rlp_is_canonical(f in fields(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        // Mutate one byte of a valid encoding: anything still accepted must re-encode to
        // exactly the input, so no two encodings mean the same transaction.
        let mut bytes = UnsignedTransaction::from_json(&to_json(&f)).unwrap().unsigned_encoding();
        let i = pos.index(bytes.len());
        bytes[i] = byte;
        if let Ok(tx) = UnsignedTransaction::from_unsigned_rlp(&bytes) {
            prop_assert_eq!(tx.unsigned_encoding(), bytes);
        }
    }

    #[test]
    fn mutated_json_never_panics(f in fields(), key in "[a-zA-Z]{1,12}", value in prop_oneof![
        Just(json!(null)), Just(json!("0x")), Just(json!("0x0")), Just(json!(-1)),
        Just(json!(1.5)), Just(json!([])), Just(json!({})), any::<u64>().prop_map(|n| json!(n)),
        "0x[0-9a-fA-F]{0,70}".prop_map(|s| json!(s)),
    ]) {
        let mut tx = to_json(&f);
        let keys = ["type", "chainId", "nonce", "to", "value", "gas", "gasPrice", "maxFeePerGas",
                    "maxPriorityFeePerGas", "data", "input", "accessList", "from"];
        let k = keys.iter().find(|k| k.eq_ignore_ascii_case(&key)).map_or(key.clone(), |k| (*k).to_owned());
        tx[k] = value;
        let _ = UnsignedTransaction::from_json(&tx);
    }

    #[test]
    fn mutated_typed_data_never_panics(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut doc = br#"{"types":{"EIP712Domain":[{"name":"name","type":"string"},{"name":"chainId","type":"uint256"}],"P":[{"name":"a","type":"uint8[2]"},{"name":"b","type":"bytes"},{"name":"c","type":"Q[]"}],"Q":[{"name":"x","type":"int16"},{"name":"y","type":"bytes3"}]},"primaryType":"P","domain":{"name":"n","chainId":1},"message":{"a":[1,2],"b":"0x00","c":[{"x":-3,"y":"0x010203"}]}}"#.to_vec();
        prop_assert!(TypedData::from_json(&doc).is_ok());
        let i = pos.index(doc.len());
        doc[i] = byte;
        let _ = TypedData::from_json(&doc);
    }
}
