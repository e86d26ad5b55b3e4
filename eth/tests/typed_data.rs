//! EIP-712 typed data: permit detection and a test for each refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use alloy_primitives::{Address, U256, address};
use serde_json::{Value, json};
use strongroom_eth::{DecodeError, MAX_TYPE_NODES, MAX_TYPED_DATA_LEN, TypedData};
use strongroom_policy::{Permit, PermitScheme};

const USDC: Address = address!("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48");
const WETH: Address = address!("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2");
const PERMIT2: Address = address!("0x000000000022D473030F116dDEE9F6B43aC78BA3");
const SPENDER: Address = address!("0x3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD");
const OWNER: Address = address!("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");

fn domain_type(domain: &Value) -> Value {
    let order = [
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
        ("salt", "bytes32"),
    ];
    order
        .iter()
        .filter(|(n, _)| domain.get(n).is_some())
        .map(|(n, t)| json!({"name": n, "type": t}))
        .collect()
}

fn doc(primary: &str, mut types: Value, domain: Value, message: Value) -> Value {
    types["EIP712Domain"] = domain_type(&domain);
    json!({"types": types, "primaryType": primary, "domain": domain, "message": message})
}

fn props(list: &[(&str, &str)]) -> Value {
    list.iter()
        .map(|(n, t)| json!({"name": n, "type": t}))
        .collect()
}

fn parse(doc: &Value) -> Result<TypedData, DecodeError> {
    TypedData::from_json(&serde_json::to_vec(doc).unwrap())
}

fn permit(doc: &Value) -> Option<Permit> {
    parse(doc).unwrap().intent().permit
}

fn mail() -> Value {
    doc(
        "Mail",
        json!({
            "Person": props(&[("name", "string"), ("wallet", "address")]),
            "Mail": props(&[("from", "Person"), ("to", "Person"), ("contents", "string")]),
        }),
        json!({"name": "Ether Mail", "version": "1", "chainId": 1,
               "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"}),
        json!({"from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
               "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
               "contents": "Hello, Bob!"}),
    )
}

fn eip2612(value: Value) -> Value {
    doc(
        "Permit",
        json!({"Permit": props(&[("owner", "address"), ("spender", "address"), ("value", "uint256"),
                                 ("nonce", "uint256"), ("deadline", "uint256")])}),
        json!({"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC}),
        json!({"owner": OWNER, "spender": SPENDER, "value": value, "nonce": 0, "deadline": "1893456000"}),
    )
}

fn permit2_domain() -> Value {
    json!({"name": "Permit2", "chainId": 1, "verifyingContract": PERMIT2})
}

fn details() -> Value {
    props(&[
        ("token", "address"),
        ("amount", "uint160"),
        ("expiration", "uint48"),
        ("nonce", "uint48"),
    ])
}

fn token_permissions() -> Value {
    props(&[("token", "address"), ("amount", "uint256")])
}

#[test]
fn mail_example_has_the_known_hash_and_no_permit() {
    // The hash given in EIP-712's own example.
    let typed = parse(&mail()).unwrap();
    assert_eq!(
        typed.signing_hash().to_string(),
        "0xbe609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    );
    let intent = typed.intent();
    assert_eq!(intent.domain_name.as_deref(), Some("Ether Mail"));
    assert_eq!(intent.domain_version.as_deref(), Some("1"));
    assert_eq!(intent.chain_id, Some(1));
    assert_eq!(intent.primary_type, "Mail");
    assert_eq!(intent.permit, None);
}

#[test]
fn eip2612_permit_is_detected() {
    assert_eq!(
        permit(&eip2612(json!("1000000000"))),
        Some(Permit {
            scheme: PermitScheme::Eip2612,
            spender: SPENDER,
            tokens: vec![USDC],
            amount: U256::from(1_000_000_000u64),
        })
    );
    // No verifying contract: the token is unknown.
    let mut doc = eip2612(json!(5));
    doc["domain"]
        .as_object_mut()
        .unwrap()
        .remove("verifyingContract");
    doc["types"]["EIP712Domain"] = domain_type(&doc["domain"]);
    let p = permit(&doc).unwrap();
    assert_eq!((p.tokens, p.amount), (vec![], U256::from(5)));
}

#[test]
fn dai_style_permit_is_detected() {
    let dai = |allowed: bool| {
        doc(
            "Permit",
            json!({"Permit": props(&[("holder", "address"), ("spender", "address"), ("nonce", "uint256"),
                                     ("expiry", "uint256"), ("allowed", "bool")])}),
            json!({"name": "Dai Stablecoin", "version": "1", "chainId": 1,
                   "verifyingContract": "0x6B175474E89094C44Da98b954EedeAC495271d0F"}),
            json!({"holder": OWNER, "spender": SPENDER, "nonce": 0, "expiry": 0, "allowed": allowed}),
        )
    };
    assert_eq!(permit(&dai(true)).unwrap().amount, U256::MAX);
    assert_eq!(permit(&dai(false)).unwrap().amount, U256::ZERO);
    assert_eq!(permit(&dai(true)).unwrap().scheme, PermitScheme::DaiPermit);
    assert_eq!(permit(&dai(true)).unwrap().spender, SPENDER);
}

/// USDC's EIP-3009 transfer by authorisation: the tokens go to `to`.
fn eip3009(primary: &str) -> Value {
    doc(
        primary,
        json!({primary: props(&[("from", "address"), ("to", "address"), ("value", "uint256"),
                                ("validAfter", "uint256"), ("validBefore", "uint256"),
                                ("nonce", "bytes32")])}),
        json!({"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC}),
        json!({"from": OWNER, "to": SPENDER, "value": "2500000", "validAfter": 0,
               "validBefore": "1893456000", "nonce": format!("0x{}", "ab".repeat(32))}),
    )
}

#[test]
fn eip3009_transfers_by_authorisation_are_detected() {
    for primary in ["TransferWithAuthorization", "ReceiveWithAuthorization"] {
        assert_eq!(
            permit(&eip3009(primary)),
            Some(Permit {
                scheme: PermitScheme::Eip3009,
                spender: SPENDER,
                tokens: vec![USDC],
                amount: U256::from(2_500_000u64),
            }),
            "{primary}"
        );
    }
    // Not value-moving: EIP-3009's CancelAuthorization.
    let cancel = doc(
        "CancelAuthorization",
        json!({"CancelAuthorization": props(&[("authorizer", "address"), ("nonce", "bytes32")])}),
        json!({"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC}),
        json!({"authorizer": OWNER, "nonce": format!("0x{}", "ab".repeat(32))}),
    );
    assert_eq!(permit(&cancel), None);
}

#[test]
fn seaport_and_cow_orders_are_detected() {
    const SEAPORT: Address = address!("0x0000000000000068F116a894984e2DB1123eB395");
    let item = props(&[
        ("itemType", "uint8"),
        ("token", "address"),
        ("identifierOrCriteria", "uint256"),
        ("startAmount", "uint256"),
        ("endAmount", "uint256"),
    ]);
    let consideration = props(&[
        ("itemType", "uint8"),
        ("token", "address"),
        ("identifierOrCriteria", "uint256"),
        ("startAmount", "uint256"),
        ("endAmount", "uint256"),
        ("recipient", "address"),
    ]);
    let order = doc(
        "OrderComponents",
        json!({"OfferItem": item, "ConsiderationItem": consideration,
               "OrderComponents": props(&[("offerer", "address"), ("zone", "address"),
                   ("offer", "OfferItem[]"), ("consideration", "ConsiderationItem[]"),
                   ("orderType", "uint8"), ("startTime", "uint256"), ("endTime", "uint256"),
                   ("zoneHash", "bytes32"), ("salt", "uint256"), ("conduitKey", "bytes32"),
                   ("counter", "uint256")])}),
        json!({"name": "Seaport", "version": "1.6", "chainId": 1, "verifyingContract": SEAPORT}),
        json!({"offerer": OWNER, "zone": Address::ZERO,
               "offer": [{"itemType": 1, "token": WETH, "identifierOrCriteria": 0,
                          "startAmount": "5", "endAmount": "7"}],
               "consideration": [{"itemType": 0, "token": Address::ZERO, "identifierOrCriteria": 0,
                                  "startAmount": "1", "endAmount": "1", "recipient": OWNER}],
               "orderType": 0, "startTime": 0, "endTime": "1893456000",
               "zoneHash": format!("0x{}", "00".repeat(32)), "salt": 1,
               "conduitKey": format!("0x{}", "00".repeat(32)), "counter": 0}),
    );
    assert_eq!(
        permit(&order),
        Some(Permit {
            scheme: PermitScheme::SeaportOrder,
            spender: SEAPORT,
            tokens: vec![WETH],
            amount: U256::from(7),
        })
    );
    const SETTLEMENT: Address = address!("0x9008D19f58AAbD9eD0D60971565AA8510560ab41");
    let cow = doc(
        "Order",
        json!({"Order": props(&[("sellToken", "address"), ("buyToken", "address"),
            ("receiver", "address"), ("sellAmount", "uint256"), ("buyAmount", "uint256"),
            ("validTo", "uint32"), ("appData", "bytes32"), ("feeAmount", "uint256"),
            ("kind", "string"), ("partiallyFillable", "bool"), ("sellTokenBalance", "string"),
            ("buyTokenBalance", "string")])}),
        json!({"name": "Gnosis Protocol", "version": "v2", "chainId": 1,
               "verifyingContract": SETTLEMENT}),
        json!({"sellToken": USDC, "buyToken": WETH, "receiver": OWNER, "sellAmount": "1000",
               "buyAmount": "1", "validTo": 1893456000u32,
               "appData": format!("0x{}", "00".repeat(32)), "feeAmount": "0", "kind": "sell",
               "partiallyFillable": false, "sellTokenBalance": "erc20",
               "buyTokenBalance": "erc20"}),
    );
    assert_eq!(
        permit(&cow),
        Some(Permit {
            scheme: PermitScheme::CowOrder,
            spender: SETTLEMENT,
            tokens: vec![USDC],
            amount: U256::from(1000),
        })
    );
}

#[test]
fn permit2_permit_single() {
    let doc = doc(
        "PermitSingle",
        json!({"PermitDetails": details(),
               "PermitSingle": props(&[("details", "PermitDetails"), ("spender", "address"), ("sigDeadline", "uint256")])}),
        permit2_domain(),
        json!({"details": {"token": USDC, "amount": "1461501637330902918203684832716283019655932542975",
                           "expiration": 1900000000, "nonce": 0},
               "spender": SPENDER, "sigDeadline": "1893456000"}),
    );
    assert_eq!(
        permit(&doc),
        Some(Permit {
            scheme: PermitScheme::Permit2,
            spender: SPENDER,
            tokens: vec![USDC],
            amount: (U256::from(1) << 160) - U256::from(1),
        })
    );
}

#[test]
fn permit2_permit_batch() {
    let doc = doc(
        "PermitBatch",
        json!({"PermitDetails": details(),
               "PermitBatch": props(&[("details", "PermitDetails[]"), ("spender", "address"), ("sigDeadline", "uint256")])}),
        permit2_domain(),
        json!({"details": [
                   {"token": USDC, "amount": "5000000", "expiration": 1900000000, "nonce": 1},
                   {"token": WETH, "amount": "2000000000000000000", "expiration": 1900000000, "nonce": 0}],
               "spender": SPENDER, "sigDeadline": "1893456000"}),
    );
    let p = permit(&doc).unwrap();
    assert_eq!(p.scheme, PermitScheme::Permit2);
    assert_eq!(p.tokens, vec![USDC, WETH]);
    assert_eq!(p.amount, U256::from(2_000_000_000_000_000_000u64));
}

#[test]
fn permit2_permit_transfer_from() {
    let doc = doc(
        "PermitTransferFrom",
        json!({"TokenPermissions": token_permissions(),
               "PermitTransferFrom": props(&[("permitted", "TokenPermissions"), ("spender", "address"),
                                             ("nonce", "uint256"), ("deadline", "uint256")])}),
        permit2_domain(),
        json!({"permitted": {"token": WETH, "amount": "42"}, "spender": SPENDER, "nonce": 1, "deadline": 2}),
    );
    let p = permit(&doc).unwrap();
    assert_eq!(
        (p.tokens, p.amount, p.spender),
        (vec![WETH], U256::from(42), SPENDER)
    );
}

#[test]
fn permit2_permit_batch_transfer_from_and_witness_form() {
    let batch = doc(
        "PermitBatchTransferFrom",
        json!({"TokenPermissions": token_permissions(),
               "PermitBatchTransferFrom": props(&[("permitted", "TokenPermissions[]"), ("spender", "address"),
                                                  ("nonce", "uint256"), ("deadline", "uint256")])}),
        permit2_domain(),
        json!({"permitted": [{"token": USDC, "amount": "9"}, {"token": WETH, "amount": "7"}],
               "spender": SPENDER, "nonce": 1, "deadline": 2}),
    );
    let p = permit(&batch).unwrap();
    assert_eq!((p.tokens, p.amount), (vec![USDC, WETH], U256::from(9)));

    let witness = doc_with_witness();
    let p = permit(&witness).unwrap();
    assert_eq!(
        (p.scheme, p.tokens, p.amount),
        (PermitScheme::Permit2, vec![USDC], U256::from(3))
    );
}

fn doc_with_witness() -> Value {
    doc(
        "PermitWitnessTransferFrom",
        json!({"TokenPermissions": token_permissions(),
               "Order": props(&[("id", "uint256")]),
               "PermitWitnessTransferFrom": props(&[("permitted", "TokenPermissions"), ("spender", "address"),
                                                    ("nonce", "uint256"), ("deadline", "uint256"),
                                                    ("witness", "Order")])}),
        permit2_domain(),
        json!({"permitted": {"token": USDC, "amount": "3"}, "spender": SPENDER, "nonce": 1,
               "deadline": 2, "witness": {"id": 7}}),
    )
}

#[test]
fn non_permits_are_not_permits() {
    // A struct named Permit without a spender is not an EIP-2612 permit.
    let no_spender = doc(
        "Permit",
        json!({"Permit": props(&[("operator", "address")])}),
        json!({"name": "X", "chainId": 1}),
        json!({"operator": SPENDER}),
    );
    assert_eq!(permit(&no_spender), None);
    // A spender outside a Permit or the Permit2 domain.
    let order = doc(
        "Order",
        json!({"Order": props(&[("spender", "address")])}),
        json!({"name": "Exchange"}),
        json!({"spender": SPENDER}),
    );
    assert_eq!(permit(&order), None);
}

fn assert_refused(doc: &Value, needle: &str) {
    match parse(doc) {
        Err(e) => assert!(e.to_string().contains(needle), "{e} (wanted {needle:?})"),
        Ok(_) => panic!("accepted, wanted a refusal containing {needle:?}"),
    }
}

#[test]
fn structural_refusals() {
    let mut m = mail();
    m["extra"] = json!(1);
    assert!(matches!(parse(&m), Err(DecodeError::UnknownField { field, .. }) if field == "extra"));
    for key in ["types", "primaryType", "domain", "message"] {
        let mut m = mail();
        m.as_object_mut().unwrap().remove(key);
        assert!(
            matches!(parse(&m), Err(DecodeError::MissingField(k)) if k == key),
            "{key}"
        );
    }
    let mut m = mail();
    m["domain"]["foo"] = json!("bar");
    assert!(matches!(
        parse(&m),
        Err(DecodeError::UnknownField {
            context: "domain",
            ..
        })
    ));
    let mut m = mail();
    m["domain"]["version"] = Value::Null;
    assert_refused(&m, "domain.version is null");
    let mut m = mail();
    m["primaryType"] = json!("EIP712Domain");
    assert_refused(&m, "EIP712Domain signs no message");
    let mut m = mail();
    m["primaryType"] = json!("Nope");
    assert!(matches!(parse(&m), Err(DecodeError::TypedData(_))));
    let mut m = mail();
    m["types"]["Person"] = json!([{"name": "name", "type": "string", "x": 1}]);
    assert_refused(&m, "must be an object with `name` and `type` only");
    let mut m = mail();
    m["types"]["Person"] = props(&[("name", "string"), ("name", "address")]);
    assert_refused(&m, "declares `name` twice");
    let mut m = mail();
    m["types"]["Person"] = props(&[("name", "(string,address)")]);
    assert_refused(&m, "tuple types");
}

#[test]
fn eip712_domain_type_must_match_the_domain() {
    let mut m = mail();
    m["types"].as_object_mut().unwrap().remove("EIP712Domain");
    assert_refused(&m, "types.EIP712Domain is missing");
    // Wrong order.
    let mut m = mail();
    m["types"]["EIP712Domain"] = props(&[
        ("version", "string"),
        ("name", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
    ]);
    assert_refused(&m, "types.EIP712Domain declares");
    // Wrong type.
    let mut m = mail();
    m["types"]["EIP712Domain"] = props(&[
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint64"),
        ("verifyingContract", "address"),
    ]);
    assert_refused(&m, "types.EIP712Domain declares");
    // Declares a field the domain lacks.
    let mut m = mail();
    m["domain"].as_object_mut().unwrap().remove("version");
    assert_refused(&m, "types.EIP712Domain declares");
    // Bad domain values.
    let mut m = mail();
    m["domain"]["verifyingContract"] = json!("0xCCCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC");
    assert!(matches!(parse(&m), Err(DecodeError::InvalidField { .. })));
    let mut m = mail();
    m["domain"]["chainId"] = json!("18446744073709551616");
    assert_refused(&m, "domain.chainId does not fit in 64 bits");
    let mut m = mail();
    m["domain"]["chainId"] = json!(1.5);
    assert_refused(&m, "domain.chainId must be a non-negative integer");
    let mut m = mail();
    m["domain"]["name"] = json!(5);
    assert_refused(&m, "domain.name must be a string");
}

#[test]
fn message_fields_must_be_declared() {
    let mut m = mail();
    m["message"]["bcc"] = json!("eve");
    assert_refused(&m, "message.bcc is not a field of type Mail");
    let mut m = mail();
    m["message"]["to"]["note"] = json!("x");
    assert_refused(&m, "message.to.note is not a field of type Person");
    let mut w = doc_with_witness();
    w["message"]["witness"]["extra"] = json!(1);
    assert_refused(&w, "message.witness.extra");
    // Missing fields and ill-typed values: alloy refuses them.
    let mut m = mail();
    m["message"].as_object_mut().unwrap().remove("contents");
    assert!(matches!(parse(&m), Err(DecodeError::TypedData(_))));
    let mut m = mail();
    m["message"]["to"]["wallet"] = json!("0x1234");
    assert!(matches!(parse(&m), Err(DecodeError::TypedData(_))));
    let too_big = eip2612(json!(format!("0x1{}", "0".repeat(64))));
    assert!(matches!(parse(&too_big), Err(DecodeError::TypedData(_))));
    let float = eip2612(json!(1.5));
    assert!(matches!(parse(&float), Err(DecodeError::TypedData(_))));
}

#[test]
fn type_bombs_are_refused() {
    // 20 levels (within the depth limit), each referencing the next twice: 2^20 nodes.
    let mut types = serde_json::Map::new();
    for i in 0..20 {
        let next = format!("T{}", i + 1);
        types.insert(format!("T{i}"), props(&[("a", &next), ("b", &next)]));
    }
    types.insert("T20".into(), props(&[("x", "uint256")]));
    let bomb = doc("T0", Value::Object(types), json!({"name": "x"}), json!({}));
    assert_refused(&bomb, &format!("more than {MAX_TYPE_NODES} type nodes"));

    // A long chain.
    let mut types = serde_json::Map::new();
    for i in 0..100 {
        types.insert(format!("T{i}"), props(&[("a", &format!("T{}", i + 1))]));
    }
    types.insert("T100".into(), props(&[("x", "uint256")]));
    let deep = doc("T0", Value::Object(types), json!({"name": "x"}), json!({}));
    assert_refused(&deep, "nest deeper than");

    // Deep array dimensions.
    let dims = "[]".repeat(100);
    let arrays = doc(
        "A",
        json!({"A": props(&[("x", &format!("uint256{dims}"))])}),
        json!({"name": "x"}),
        json!({"x": []}),
    );
    assert_refused(&arrays, "nest deeper than");

    // Recursive types.
    let cyclic = doc(
        "A",
        json!({"A": props(&[("b", "B")]), "B": props(&[("a", "A")])}),
        json!({"name": "x"}),
        json!({"b": {"a": {}}}),
    );
    assert!(parse(&cyclic).is_err());
    let self_ref = doc(
        "A",
        json!({"A": props(&[("a", "A[]")])}),
        json!({"name": "x"}),
        json!({"a": []}),
    );
    assert!(parse(&self_ref).is_err());
}

#[test]
fn size_and_json_refusals() {
    let big = vec![b' '; MAX_TYPED_DATA_LEN + 1];
    assert!(matches!(
        TypedData::from_json(&big),
        Err(DecodeError::TooLarge {
            what: "typed data",
            ..
        })
    ));
    let dup = br#"{"types":{},"types":{},"primaryType":"A","domain":{},"message":{}}"#;
    assert!(matches!(
        TypedData::from_json(dup),
        Err(DecodeError::Json(_))
    ));
    // A JSON string holding the document (alloy would accept it) is not the document.
    let as_string = serde_json::to_vec(&Value::String(mail().to_string())).unwrap();
    assert!(TypedData::from_json(&as_string).is_err());
    for bad in [&b""[..], b"[]", b"null", b"{\"types\":"] {
        assert!(TypedData::from_json(bad).is_err());
    }
}
