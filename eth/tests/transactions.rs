//! Transaction decoding: what is accepted, and a test for each refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy_primitives::{Address, U256, address, hex};
use serde_json::{Value, json};
use strongroom_eth::{
    DecodeError, MAX_CALLDATA_LEN, MAX_TRANSACTION_BODY_LEN, MAX_UNSIGNED_TRANSACTION_LEN,
    UnsignedTransaction,
};
use strongroom_policy::{Erc20Call, TxType};

const TO: &str = "0x3535353535353535353535353535353535353535";
const USDC: Address = address!("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48");

fn eip1559() -> Value {
    json!({
        "type": "0x2", "chainId": "0x1", "nonce": "0x2a", "to": TO, "value": "0x6f05b59d3b20000",
        "gas": "0x5208", "maxFeePerGas": "0x9502f9000", "maxPriorityFeePerGas": "0x77359400",
        "data": "0x", "accessList": [],
    })
}

fn eip2930() -> Value {
    json!({
        "type": "0x1", "chainId": "0x1", "nonce": "0x3", "to": TO, "value": "0x0",
        "gas": "0xc350", "gasPrice": "0x6fc23ac00", "data": "0xd0e30db0",
        "accessList": [{"address": TO, "storageKeys": [format!("0x{}", "ab".repeat(32))]}],
    })
}

fn legacy() -> Value {
    json!({
        "chainId": "0x1", "nonce": "0x9", "gasPrice": "0x4a817c800", "gas": "0x5208",
        "to": TO, "value": "0xde0b6b3a7640000", "data": "0x",
    })
}

fn with(mut tx: Value, key: &str, value: Value) -> Value {
    tx[key] = value;
    tx
}

fn without(mut tx: Value, key: &str) -> Value {
    tx.as_object_mut().unwrap().remove(key);
    tx
}

fn parse(tx: &Value) -> Result<UnsignedTransaction, DecodeError> {
    UnsignedTransaction::from_json(tx)
}

fn body(tx: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "transaction": tx })).unwrap()
}

fn invalid_field(result: Result<UnsignedTransaction, DecodeError>) -> String {
    match result {
        Err(DecodeError::InvalidField { field, .. }) => field,
        other => panic!("expected InvalidField, got {other:?}"),
    }
}

#[test]
fn the_three_types_parse() {
    assert_eq!(parse(&eip1559()).unwrap().tx_type(), TxType::Eip1559);
    assert_eq!(parse(&eip2930()).unwrap().tx_type(), TxType::Eip2930);
    assert_eq!(parse(&legacy()).unwrap().tx_type(), TxType::Legacy);
}

#[test]
fn type_is_inferred_from_fee_fields_and_access_list() {
    assert_eq!(
        parse(&without(eip1559(), "type")).unwrap().tx_type(),
        TxType::Eip1559
    );
    assert_eq!(
        parse(&without(eip2930(), "type")).unwrap().tx_type(),
        TxType::Eip2930
    );
    assert_eq!(
        parse(&without(legacy(), "type")).unwrap().tx_type(),
        TxType::Legacy
    );
    let legacy_typed = with(legacy(), "type", json!("0x0"));
    assert_eq!(parse(&legacy_typed).unwrap(), parse(&legacy()).unwrap());
}

#[test]
fn defaults_and_aliases() {
    let intent = parse(&without(without(eip1559(), "value"), "data"))
        .unwrap()
        .intent();
    assert_eq!((intent.value, intent.data_len), (U256::ZERO, 0));
    assert_eq!(
        parse(&with(eip1559(), "to", Value::Null))
            .unwrap()
            .intent()
            .to,
        None
    );
    assert_eq!(parse(&without(eip1559(), "to")).unwrap().intent().to, None);
    let input = with(without(eip1559(), "data"), "input", json!("0xabcdef01"));
    assert_eq!(parse(&input).unwrap().intent().data_len, 4);
    let both = with(input.clone(), "data", json!("0xabcdef01"));
    assert_eq!(parse(&both).unwrap(), parse(&input).unwrap());
    let gas_limit = with(without(eip1559(), "gas"), "gasLimit", json!("0x5208"));
    assert_eq!(parse(&gas_limit).unwrap(), parse(&eip1559()).unwrap());
    // Small JSON integers for the 64-bit fields, as some clients send them.
    let numbers = with(
        with(with(eip1559(), "chainId", json!(1)), "nonce", json!(42)),
        "type",
        json!(2),
    );
    assert_eq!(parse(&numbers).unwrap(), parse(&eip1559()).unwrap());
    // Checksummed, lower-case and upper-case addresses.
    let checksummed = with(
        eip1559(),
        "to",
        json!("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
    );
    let lower = with(
        eip1559(),
        "to",
        json!("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"),
    );
    assert_eq!(parse(&checksummed).unwrap(), parse(&lower).unwrap());
}

#[test]
fn request_body_returns_from() {
    let sender = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";
    let (tx, from) =
        UnsignedTransaction::from_request_body(&body(&with(eip1559(), "from", json!(sender))))
            .unwrap();
    assert_eq!(tx, parse(&eip1559()).unwrap());
    assert_eq!(from, Some(sender.parse().unwrap()));
    let (_, from) = UnsignedTransaction::from_request_body(&body(&eip1559())).unwrap();
    assert_eq!(from, None);
}

#[test]
fn intent_fields() {
    let intent = parse(&eip1559()).unwrap().intent();
    assert_eq!(intent.tx_type, TxType::Eip1559);
    assert_eq!(
        (intent.chain_id, intent.nonce, intent.gas_limit),
        (1, 42, 21000)
    );
    assert_eq!(intent.max_fee_per_gas, 40_000_000_000);
    assert_eq!(intent.max_priority_fee_per_gas, Some(2_000_000_000));
    assert_eq!(intent.to, Some(TO.parse().unwrap()));
    let intent = parse(&legacy()).unwrap().intent();
    assert_eq!(
        (intent.max_fee_per_gas, intent.max_priority_fee_per_gas),
        (20_000_000_000, None)
    );
}

fn erc20_tx(data: &str) -> Value {
    with(
        with(eip1559(), "to", json!(USDC.to_string())),
        "data",
        json!(data),
    )
}

#[test]
fn erc20_calls_in_intents() {
    let to = "1111111111111111111111111111111111111111";
    let amount = format!("{:064x}", 1_000_000u64);
    let data = format!("0xa9059cbb{to:0>64}{amount}");
    let transfer = Some(Erc20Call::Transfer {
        token: USDC,
        to: format!("0x{to}").parse().unwrap(),
        amount: U256::from(1_000_000u64),
    });
    let intent = parse(&erc20_tx(&data)).unwrap().intent();
    assert_eq!(intent.selector, Some([0xa9, 0x05, 0x9c, 0xbb]));
    assert_eq!(intent.erc20, transfer);
    // Truncated, or dirty high bytes in the address word: refused, never "other calldata"
    // that would escape the token rules.
    let err = parse(&erc20_tx(&data[..data.len() - 2]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ERC-20 calldata of 67 bytes"), "{err}");
    let dirty = format!("0xa9059cbbff{}{amount}", &format!("{to:0>64}")[2..]);
    let err = parse(&erc20_tx(&dirty)).unwrap_err().to_string();
    assert!(err.contains("not canonically encoded"), "{err}");
    // One byte or a word more: the token reads the same transfer, so the policy sees it.
    for extra in ["00", &"00".repeat(32)] {
        let long = format!("{data}{extra}");
        let intent = parse(&erc20_tx(&long)).unwrap().intent();
        assert_eq!(intent.erc20, transfer);
        assert_eq!(intent.data_len, 68 + extra.len() / 2);
    }
    // ERC-20 calldata in a contract creation is not a token call.
    let create = without(erc20_tx(&data), "to");
    assert_eq!(parse(&create).unwrap().intent().erc20, None);
    // Short calldata has no selector.
    let intent = parse(&erc20_tx("0xa9059c")).unwrap().intent();
    assert_eq!((intent.selector, intent.data_len), (None, 3));
}

#[test]
fn bad_hex_is_refused() {
    for (key, bad) in [
        ("nonce", json!("0xzz")),
        ("nonce", json!("0x")),
        ("nonce", json!("0x01")),
        ("nonce", json!("2a")),
        ("nonce", json!("42")),
        ("value", json!("0X1")),
        ("gas", json!(true)),
        ("data", json!("0x123")),
        ("data", json!("abcd")),
        ("data", json!("0x0xab")),
        ("to", json!("0x1234")),
        ("to", json!("")),
        ("to", json!("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")),
        ("from", json!("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")),
    ] {
        assert_eq!(
            invalid_field(parse(&with(eip1559(), key, bad.clone()))),
            key,
            "{key}: {bad}"
        );
    }
    assert_eq!(
        invalid_field(parse(&with(
            eip1559(),
            "accessList",
            json!([{"address": "0x12", "storageKeys": []}])
        ))),
        "accessList[0].address"
    );
    assert_eq!(
        invalid_field(parse(&with(
            eip1559(),
            "accessList",
            json!([{"address": TO, "storageKeys": ["0x01"]}])
        ))),
        "accessList[0].storageKeys[0]"
    );
    assert_eq!(
        invalid_field(parse(&with(
            eip1559(),
            "accessList",
            json!([{"address": TO}])
        ))),
        "accessList[0]"
    );
    assert!(matches!(
        parse(&with(eip1559(), "accessList", json!({}))),
        Err(DecodeError::WrongShape { .. })
    ));
    assert!(matches!(
        parse(&with(
            eip1559(),
            "accessList",
            json!([{"address": TO, "storageKeys": [], "x": 1}])
        )),
        Err(DecodeError::UnknownField { .. })
    ));
}

#[test]
fn overflow_is_refused() {
    let over = |bits: u32| json!(format!("0x1{}", "0".repeat(bits as usize / 4)));
    for (key, bits) in [("nonce", 64), ("gas", 64), ("chainId", 64)] {
        assert_eq!(
            parse(&with(eip1559(), key, over(bits))),
            Err(DecodeError::Overflow { field: key, bits }),
            "{key}"
        );
    }
    for key in ["maxFeePerGas", "maxPriorityFeePerGas"] {
        assert_eq!(
            parse(&with(eip1559(), key, over(128))),
            Err(DecodeError::Overflow {
                field: key,
                bits: 128
            })
        );
    }
    assert_eq!(
        parse(&with(legacy(), "gasPrice", over(128))),
        Err(DecodeError::Overflow {
            field: "gasPrice",
            bits: 128
        })
    );
    assert_eq!(
        parse(&with(eip1559(), "value", over(256))),
        Err(DecodeError::Overflow {
            field: "value",
            bits: 256
        })
    );
    let max = format!("0x{}", "f".repeat(64));
    assert_eq!(
        parse(&with(eip1559(), "value", json!(max)))
            .unwrap()
            .intent()
            .value,
        U256::MAX
    );
    // JSON numbers: not for fees or value, and not beyond 2^53 for the others.
    assert!(parse(&with(eip1559(), "value", json!(1))).is_err());
    assert!(parse(&with(eip1559(), "maxFeePerGas", json!(1))).is_err());
    assert!(parse(&with(eip1559(), "nonce", json!(1u64 << 53))).is_err());
    assert!(parse(&with(eip1559(), "nonce", json!(1.0))).is_err());
}

#[test]
fn missing_fields_are_named() {
    for key in [
        "chainId",
        "nonce",
        "gas",
        "maxFeePerGas",
        "maxPriorityFeePerGas",
    ] {
        let tx = without(eip1559(), key);
        assert_eq!(parse(&tx), Err(DecodeError::MissingField(key)), "{key}");
    }
    assert_eq!(
        parse(&without(legacy(), "gasPrice")),
        Err(DecodeError::MissingField("gasPrice"))
    );
    assert_eq!(
        parse(&without(eip2930(), "gasPrice")),
        Err(DecodeError::MissingField("gasPrice"))
    );
    assert_eq!(
        parse(&with(eip1559(), "chainId", Value::Null)),
        Err(DecodeError::MissingField("chainId"))
    );
    assert_eq!(
        UnsignedTransaction::from_request_body(b"{}"),
        Err(DecodeError::MissingField("transaction` or `unsigned"))
    );
}

#[test]
fn fee_field_conflicts_are_refused() {
    let both = with(eip1559(), "gasPrice", json!("0x1"));
    assert!(matches!(
        parse(&both),
        Err(DecodeError::Conflict("gasPrice", "maxFeePerGas", _))
    ));
    let untyped_both = without(both, "type");
    assert!(matches!(
        parse(&untyped_both),
        Err(DecodeError::Conflict("gasPrice", ..))
    ));
    let max_on_legacy = with(
        with(legacy(), "type", json!("0x0")),
        "maxFeePerGas",
        json!("0x1"),
    );
    assert!(matches!(
        parse(&max_on_legacy),
        Err(DecodeError::Conflict("maxFeePerGas", "type", _))
    ));
    let prio_on_2930 = with(eip2930(), "maxPriorityFeePerGas", json!("0x1"));
    assert!(matches!(
        parse(&prio_on_2930),
        Err(DecodeError::Conflict("maxPriorityFeePerGas", "type", _))
    ));
    let list_on_legacy = with(
        with(legacy(), "type", json!("0x0")),
        "accessList",
        json!([]),
    );
    assert!(matches!(
        parse(&list_on_legacy),
        Err(DecodeError::Conflict("accessList", "type", _))
    ));
    let priority_above = with(eip1559(), "maxPriorityFeePerGas", json!("0x9502f9001"));
    assert_eq!(
        parse(&priority_above),
        Err(DecodeError::PriorityFeeAboveMax {
            priority: 40_000_000_001,
            max: 40_000_000_000
        })
    );
    let data_input = with(eip1559(), "input", json!("0x01"));
    assert!(matches!(
        parse(&data_input),
        Err(DecodeError::Conflict("data", "input", _))
    ));
    let gas_limit = with(eip1559(), "gasLimit", json!("0x5209"));
    assert!(matches!(
        parse(&gas_limit),
        Err(DecodeError::Conflict("gas", "gasLimit", _))
    ));
}

#[test]
fn unsupported_types_are_refused() {
    for (ty, n) in [("0x3", 3), ("0x4", 4), ("0x5", 5), ("0x7e", 126)] {
        assert!(
            matches!(
                parse(&with(eip1559(), "type", json!(ty))),
                Err(DecodeError::UnsupportedType { ty, .. }) if ty == n
            ),
            "{ty}"
        );
    }
    let blob = with(eip1559(), "maxFeePerBlobGas", json!("0x1"));
    assert!(matches!(
        parse(&blob),
        Err(DecodeError::UnknownField { .. })
    ));
    for first in [0x03u8, 0x04, 0x00, 0x05, 0x7f] {
        let bytes = [first, 0xc0];
        assert!(
            matches!(
                UnsignedTransaction::from_unsigned_rlp(&bytes),
                Err(DecodeError::UnsupportedType { ty, .. }) if ty == u64::from(first)
            ),
            "{first:#x}"
        );
    }
}

#[test]
fn zero_chain_id_is_refused() {
    assert_eq!(
        parse(&with(eip1559(), "chainId", json!("0x0"))),
        Err(DecodeError::ZeroChainId)
    );
    assert_eq!(
        parse(&with(legacy(), "chainId", json!(0))),
        Err(DecodeError::ZeroChainId)
    );
}

#[test]
fn unknown_fields_are_refused() {
    assert!(matches!(
        parse(&with(eip1559(), "v", json!("0x1"))),
        Err(DecodeError::UnknownField {
            context: "transaction",
            ..
        })
    ));
    let body = serde_json::to_vec(&json!({"transaction": eip1559(), "key": "x"})).unwrap();
    assert!(matches!(
        UnsignedTransaction::from_request_body(&body),
        Err(DecodeError::UnknownField {
            context: "request body",
            ..
        })
    ));
    for bad in [&b"[]"[..], b"\"x\"", b"", b"{", br#"{"transaction": 5}"#] {
        assert!(UnsignedTransaction::from_request_body(bad).is_err());
    }
    let dup = br#"{"transaction": {"chainId":"0x1","chainId":"0x2"}}"#;
    assert!(matches!(
        UnsignedTransaction::from_request_body(dup),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn oversize_is_refused() {
    let big = with(
        eip1559(),
        "data",
        json!(format!("0x{}", "00".repeat(MAX_CALLDATA_LEN + 1))),
    );
    assert!(matches!(
        parse(&big),
        Err(DecodeError::TooLarge {
            what: "calldata",
            ..
        })
    ));
    let body = vec![b' '; MAX_TRANSACTION_BODY_LEN + 1];
    assert!(matches!(
        UnsignedTransaction::from_request_body(&body),
        Err(DecodeError::TooLarge {
            what: "request body",
            ..
        })
    ));
    let raw = vec![0u8; MAX_UNSIGNED_TRANSACTION_LEN + 1];
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&raw),
        Err(DecodeError::TooLarge {
            what: "unsigned transaction",
            ..
        })
    ));
    // Calldata within the limit is fine.
    let ok = with(
        eip1559(),
        "data",
        json!(format!("0x{}", "00".repeat(MAX_CALLDATA_LEN))),
    );
    assert_eq!(parse(&ok).unwrap().intent().data_len, MAX_CALLDATA_LEN);
}

// ---- unsigned RLP ----

fn unsigned(tx: &Value) -> Vec<u8> {
    parse(tx).unwrap().unsigned_encoding()
}

#[test]
fn unsigned_rlp_round_trips_for_each_type() {
    for tx in [eip1559(), eip2930(), legacy()] {
        let bytes = unsigned(&tx);
        assert_eq!(
            UnsignedTransaction::from_unsigned_rlp(&bytes).unwrap(),
            parse(&tx).unwrap()
        );
    }
    // The EIP-155 example's signing payload, from the EIP.
    let eip155 = hex::decode(
        "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080",
    )
    .unwrap();
    assert_eq!(unsigned(&legacy()), eip155);
}

#[test]
fn pre_eip155_legacy_is_refused() {
    // The same transaction without the chain id and the two zeros.
    let pre155 = hex::decode(
        "e9098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080",
    )
    .unwrap();
    assert_eq!(
        UnsignedTransaction::from_unsigned_rlp(&pre155),
        Err(DecodeError::PreEip155)
    );
    assert_eq!(
        parse(&without(legacy(), "chainId")),
        Err(DecodeError::MissingField("chainId"))
    );
}

#[test]
fn malformed_rlp_is_refused() {
    let ok = unsigned(&eip1559());
    // Trailing bytes after the list.
    let mut trailing = ok.clone();
    trailing.push(0x80);
    assert_eq!(
        UnsignedTransaction::from_unsigned_rlp(&trailing),
        Err(DecodeError::TrailingBytes(1))
    );
    let mut trailing = unsigned(&legacy());
    trailing.extend_from_slice(&[0, 0]);
    assert_eq!(
        UnsignedTransaction::from_unsigned_rlp(&trailing),
        Err(DecodeError::TrailingBytes(2))
    );
    // Truncated.
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&ok[..ok.len() - 1]),
        Err(DecodeError::Rlp { .. })
    ));
    // Empty; type byte alone; an RLP string.
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&[]),
        Err(DecodeError::Rlp { .. })
    ));
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&[2]),
        Err(DecodeError::Rlp { .. })
    ));
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&[0x82, 1, 2]),
        Err(DecodeError::Rlp { .. })
    ));
    // An extra field inside the list (as in a signed transaction).
    let mut fields = ok[1..].to_vec();
    let extra = 0x80u8;
    assert!(
        fields[0] >= 0xc0 && fields[0] < 0xf7,
        "short list in this fixture"
    );
    fields[0] += 1;
    fields.push(extra);
    let mut bytes = vec![2];
    bytes.extend(fields);
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&bytes),
        Err(DecodeError::Rlp { .. })
    ));
    // Non-canonical integer: nonce 0x2a written as a one-byte string with a leading zero.
    let legacy_bytes = unsigned(&legacy());
    let mut noncanonical = legacy_bytes.clone();
    assert_eq!(noncanonical[1], 0x09, "nonce byte in this fixture");
    noncanonical.splice(1..2, [0x82, 0x00, 0x09]);
    noncanonical[0] += 2;
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&noncanonical),
        Err(DecodeError::Rlp { .. })
    ));
    // Legacy with non-zero "r, s" sentinels (a signed legacy transaction).
    let mut signed = legacy_bytes.clone();
    let n = signed.len();
    signed[n - 1] = 0x01;
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&signed),
        Err(DecodeError::InvalidField { .. })
    ));
    // Legacy with chain id 0.
    let mut zero_chain = legacy_bytes;
    zero_chain[n - 3] = 0x80;
    assert_eq!(
        UnsignedTransaction::from_unsigned_rlp(&zero_chain),
        Err(DecodeError::ZeroChainId)
    );
}

#[test]
fn rlp_priority_fee_above_max_is_refused() {
    let tx = with(eip1559(), "maxPriorityFeePerGas", json!("0x1"));
    let mut bytes = unsigned(&tx);
    // Swap in a max fee of 0: field order is chainId, nonce, maxPriority, maxFee.
    let pos = bytes
        .windows(6)
        .position(|w| w == [0x85, 0x09, 0x50, 0x2f, 0x90, 0x00])
        .unwrap();
    bytes.splice(pos..pos + 6, [0x80]);
    bytes[1] -= 5;
    assert!(matches!(
        UnsignedTransaction::from_unsigned_rlp(&bytes),
        Err(DecodeError::PriorityFeeAboveMax {
            priority: 1,
            max: 0
        })
    ));
}

// ---- JSON and unsigned together ----

fn both(tx: &Value, rlp_of: &Value) -> Result<UnsignedTransaction, DecodeError> {
    let body = serde_json::to_vec(&json!({
        "transaction": tx,
        "unsigned": format!("0x{}", hex::encode(unsigned(rlp_of))),
    }))
    .unwrap();
    UnsignedTransaction::from_request_body(&body).map(|(tx, _)| tx)
}

#[test]
fn json_and_unsigned_must_agree() {
    assert_eq!(
        both(&eip1559(), &eip1559()).unwrap(),
        parse(&eip1559()).unwrap()
    );
    assert_eq!(
        both(&legacy(), &legacy()).unwrap(),
        parse(&legacy()).unwrap()
    );
    let mismatch = |tx: Value, rlp_of: Value| match both(&tx, &rlp_of) {
        Err(DecodeError::Mismatch { field }) => field,
        other => panic!("expected a mismatch, got {other:?}"),
    };
    let storage = json!([{"address": TO, "storageKeys": []}]);
    // eip2930()'s fields as a type 2 transaction.
    let as_1559 = with(
        with(
            with(without(eip2930(), "gasPrice"), "type", json!("0x2")),
            "maxFeePerGas",
            json!("0x6fc23ac00"),
        ),
        "maxPriorityFeePerGas",
        json!("0x1"),
    );
    let cases = [
        ("type", eip2930(), as_1559),
        (
            "chainId",
            eip1559(),
            with(eip1559(), "chainId", json!("0x5")),
        ),
        ("nonce", eip1559(), with(eip1559(), "nonce", json!("0x2b"))),
        (
            "gasPrice",
            legacy(),
            with(legacy(), "gasPrice", json!("0x1")),
        ),
        (
            "maxFeePerGas",
            eip1559(),
            with(eip1559(), "maxFeePerGas", json!("0x9502f9001")),
        ),
        (
            "maxPriorityFeePerGas",
            eip1559(),
            with(eip1559(), "maxPriorityFeePerGas", json!("0x1")),
        ),
        ("gas", eip1559(), with(eip1559(), "gas", json!("0x5209"))),
        (
            "to",
            eip1559(),
            with(
                eip1559(),
                "to",
                json!("0x3535353535353535353535353535353535353536"),
            ),
        ),
        ("to", eip1559(), without(eip1559(), "to")),
        ("value", eip1559(), with(eip1559(), "value", json!("0x1"))),
        ("data", eip1559(), with(eip1559(), "data", json!("0x00"))),
        ("data", legacy(), with(legacy(), "data", json!("0x00"))),
        (
            "accessList",
            eip1559(),
            with(eip1559(), "accessList", storage),
        ),
        (
            "accessList",
            eip2930(),
            with(eip2930(), "accessList", json!([])),
        ),
    ];
    for (field, tx, other) in cases {
        assert_eq!(mismatch(tx, other), field, "{field}");
    }
}

#[test]
fn unsigned_alone_has_no_from() {
    let body = serde_json::to_vec(
        &json!({"unsigned": format!("0x{}", hex::encode(unsigned(&eip2930())))}),
    )
    .unwrap();
    let (tx, from) = UnsignedTransaction::from_request_body(&body).unwrap();
    assert_eq!((tx, from), (parse(&eip2930()).unwrap(), None));
    for bad in [json!("0x"), json!("02c0"), json!(5), json!("0x02c")] {
        let body = serde_json::to_vec(&json!({ "unsigned": bad })).unwrap();
        assert!(
            UnsignedTransaction::from_request_body(&body).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn encode_signed_uses_eip155_v_for_legacy() {
    let tx = parse(&with(legacy(), "chainId", json!("0x89"))).unwrap(); // 137
    let signed = tx.encode_signed([1; 32], [2; 32], true);
    // v = 35 + 2·137 + 1 = 310 = 0x0136, encoded as 0x82 0x01 0x36 before r.
    let r_pos = signed.raw.len() - 66;
    assert_eq!(&signed.raw[r_pos - 3..r_pos], &[0x82, 0x01, 0x36]);
    assert_eq!(signed.hash, alloy_primitives::keccak256(&signed.raw));
    let typed = parse(&eip1559())
        .unwrap()
        .encode_signed([1; 32], [2; 32], false);
    assert_eq!(typed.raw[0], 0x02);
}
