//! EIP-712 typed data (eth_signTypedData_v4): strict structural checks, then alloy's
//! resolver and encoder for the hash; permit detection for the intent.

use std::collections::HashMap;

use alloy_dyn_abi::{DynSolType, DynSolValue};
use alloy_primitives::{Address, B256, U256};
use serde_json::{Map, Value};
use strongroom_policy::{Permit, PermitScheme, TypedDataIntent};

use crate::json::{address, hex_fixed, object, parse_strict};
use crate::{DecodeError, MAX_TYPED_DATA_LEN};

/// Deepest nesting of struct types and array dimensions below the primary type. Real
/// documents (Permit2, Seaport) stay under ten.
pub const MAX_TYPE_DEPTH: usize = 24;

/// Most nodes in the primary type's expanded type tree. Types can reference a type twice
/// at each level, so a few hundred bytes of `types` can describe a tree of 2^30 nodes that
/// alloy's resolver would build in full; we count it first.
pub const MAX_TYPE_NODES: usize = 4096;

/// The standard `EIP712Domain` fields in the order EIP-712 (and alloy's domain
/// separator) uses, with their types.
const DOMAIN_FIELDS: [(&str, &str); 5] = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
];

/// Type definitions by name: each property's `(name, type)` in declaration order.
type Types<'a> = HashMap<&'a str, Vec<(&'a str, &'a str)>>;

/// An EIP-712 document (the eth_signTypedData_v4 JSON object: `types`, `primaryType`,
/// `domain`, `message`), validated and hashed at parse time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedData {
    inner: alloy_dyn_abi::TypedData,
    signing_hash: B256,
    chain_id: Option<u64>,
    permit: Option<Permit>,
}

fn err(msg: impl Into<String>) -> DecodeError {
    DecodeError::TypedData(msg.into())
}

impl TypedData {
    /// Parses and hashes the body of `/sign/typed-data`, which is the typed-data object
    /// itself. Beyond what alloy checks (types exist, values fit their types, no cycles):
    ///
    /// - the size limit first, then JSON without duplicate keys;
    /// - exactly the four top-level fields; `domain` holds only the five standard fields,
    ///   none null; `types.EIP712Domain` lists exactly the domain's fields, in the
    ///   standard order with the standard types (wallets that hash the declared type would
    ///   otherwise sign a different domain separator);
    /// - type definitions are `{name, type}` objects without duplicate names, without
    ///   tuple types, within [`MAX_TYPE_DEPTH`] and [`MAX_TYPE_NODES`];
    /// - message objects hold no field their type lacks (alloy would ignore it, so the
    ///   signer would be shown data the signature does not cover);
    /// - `primaryType` is not `EIP712Domain`; `domain.chainId` fits in 64 bits.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_TYPED_DATA_LEN {
            return Err(DecodeError::TooLarge {
                what: "typed data",
                len: bytes.len(),
                max: MAX_TYPED_DATA_LEN,
            });
        }
        let value = parse_strict(bytes)?;
        let top = object(
            &value,
            "typed data",
            "typed data",
            &["types", "primaryType", "domain", "message"],
        )?;
        for name in ["types", "primaryType", "domain", "message"] {
            if !top.contains_key(name) {
                return Err(DecodeError::MissingField(name));
            }
        }
        let primary = top
            .get("primaryType")
            .and_then(Value::as_str)
            .ok_or_else(|| err("primaryType must be a string"))?;
        if primary == "EIP712Domain" {
            return Err(err("primaryType EIP712Domain signs no message"));
        }
        let domain = check_domain(top.get("domain"))?;
        let types = check_types(top.get("types"))?;
        check_domain_type(&types, domain)?;
        check_expansion(&types, primary)?;

        let inner: alloy_dyn_abi::TypedData =
            serde_json::from_value(value.clone()).map_err(|e| err(e.to_string()))?;
        let ty = inner
            .resolver
            .resolve(&inner.primary_type)
            .map_err(|e| err(e.to_string()))?;
        check_message_fields(&ty, &inner.message, "message")?;
        let signing_hash = inner
            .eip712_signing_hash()
            .map_err(|e| err(e.to_string()))?;
        let chain_id = inner
            .domain
            .chain_id
            .map(|id| u64::try_from(id).map_err(|_| err("domain.chainId does not fit in 64 bits")))
            .transpose()?;
        let message = inner.coerce().map_err(|e| err(e.to_string()))?;
        let permit = detect_permit(&inner, &message);
        Ok(Self {
            inner,
            signing_hash,
            chain_id,
            permit,
        })
    }

    /// The EIP-712 signing hash, `keccak256(0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct)`,
    /// computed when the document was parsed.
    pub fn signing_hash(&self) -> B256 {
        self.signing_hash
    }

    /// The primary type's name.
    pub fn primary_type(&self) -> &str {
        &self.inner.primary_type
    }

    /// What signing this document would authorise, for the policy engine.
    pub fn intent(&self) -> TypedDataIntent {
        let domain = &self.inner.domain;
        TypedDataIntent {
            domain_name: domain.name.as_ref().map(|n| n.to_string()),
            domain_version: domain.version.as_ref().map(|v| v.to_string()),
            chain_id: self.chain_id,
            verifying_contract: domain.verifying_contract,
            primary_type: self.inner.primary_type.clone(),
            signing_hash: self.signing_hash,
            permit: self.permit.clone(),
        }
    }
}

/// The domain object: only standard fields, none null, addresses and salts well-formed.
fn check_domain(domain: Option<&Value>) -> Result<&Map<String, Value>, DecodeError> {
    let allowed = DOMAIN_FIELDS.map(|(name, _)| name);
    let map = object(domain.unwrap_or(&Value::Null), "domain", "domain", &allowed)?;
    for (key, value) in map {
        let path = format!("domain.{key}");
        match key.as_str() {
            _ if value.is_null() => return Err(err(format!("{path} is null"))),
            "name" | "version" if !value.is_string() => {
                return Err(err(format!("{path} must be a string")));
            }
            "verifyingContract" => {
                address(&path, value)?;
            }
            "salt" => {
                hex_fixed::<32>(&path, value)?;
            }
            // A float or negative number would reach alloy's integer parser; only exact
            // integers (or strings, which alloy parses strictly) are chain ids.
            "chainId" if value.is_number() && value.as_u64().is_none() => {
                return Err(err(format!("{path} must be a non-negative integer")));
            }
            "chainId" if !value.is_number() && !value.is_string() => {
                return Err(err(format!("{path} must be a number or a string")));
            }
            _ => {}
        }
    }
    Ok(map)
}

/// Type definitions: `{name: [{name, type}, …]}` with exactly those keys, unique
/// property names, and no tuple types (EIP-712 has none, and they would hide struct
/// references from the expansion count).
fn check_types(types: Option<&Value>) -> Result<Types<'_>, DecodeError> {
    let map = types
        .and_then(Value::as_object)
        .ok_or_else(|| err("types must be a JSON object"))?;
    let mut out = HashMap::new();
    for (type_name, props) in map {
        let props = props
            .as_array()
            .ok_or_else(|| err(format!("types.{type_name} must be an array")))?;
        let mut list: Vec<(&str, &str)> = Vec::new();
        for (i, prop) in props.iter().enumerate() {
            let path = format!("types.{type_name}[{i}]");
            let Some(prop) = prop.as_object().filter(|p| p.len() == 2) else {
                return Err(err(format!(
                    "{path} must be an object with `name` and `type` only"
                )));
            };
            let (Some(name), Some(ty)) = (
                prop.get("name").and_then(Value::as_str),
                prop.get("type").and_then(Value::as_str),
            ) else {
                return Err(err(format!("{path} must have string `name` and `type`")));
            };
            if ty.contains('(') {
                return Err(err(format!("{path}: tuple types are not EIP-712")));
            }
            if list.iter().any(|(n, _)| *n == name) {
                return Err(err(format!("types.{type_name} declares `{name}` twice")));
            }
            list.push((name, ty));
        }
        out.insert(type_name.as_str(), list);
    }
    Ok(out)
}

/// `types.EIP712Domain` must list exactly the domain's fields, in the standard order. alloy
/// hashes the domain from its fields in that order whatever the declaration says; a
/// wallet that follows the declaration would sign a different separator.
fn check_domain_type(types: &Types<'_>, domain: &Map<String, Value>) -> Result<(), DecodeError> {
    let declared = types
        .get("EIP712Domain")
        .ok_or_else(|| err("types.EIP712Domain is missing"))?;
    let expected: Vec<(&str, &str)> = DOMAIN_FIELDS
        .into_iter()
        .filter(|(name, _)| domain.contains_key(*name))
        .collect();
    if *declared != expected {
        let show = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(n, t)| format!("{t} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(err(format!(
            "types.EIP712Domain declares ({}) but the domain's fields need ({})",
            show(declared),
            show(&expected)
        )));
    }
    Ok(())
}

/// A property type's struct name (before any `[…]`) and its number of array dimensions.
fn split_array(ty: &str) -> (&str, usize) {
    let root = ty.split('[').next().unwrap_or(ty);
    (root, ty.matches('[').count())
}

/// Refuses a primary type whose expanded tree is too deep or too large (or recursive:
/// a cycle never ends, so it hits the depth limit).
fn check_expansion(types: &Types<'_>, primary: &str) -> Result<(), DecodeError> {
    fn visit<'a>(
        types: &Types<'a>,
        name: &'a str,
        depth: usize,
        memo: &mut HashMap<&'a str, (usize, usize)>,
    ) -> Result<(usize, usize), DecodeError> {
        let too_deep = || {
            err(format!(
                "types nest deeper than {MAX_TYPE_DEPTH} levels below the primary type (or are recursive)"
            ))
        };
        if let Some(&(nodes, height)) = memo.get(name) {
            return if depth + height > MAX_TYPE_DEPTH {
                Err(too_deep())
            } else {
                Ok((nodes, height))
            };
        }
        if depth > MAX_TYPE_DEPTH {
            return Err(too_deep());
        }
        let Some(props) = types.get(name) else {
            // Not a struct: alloy resolves or refuses it.
            return Ok((1, 0));
        };
        let (mut nodes, mut height) = (1usize, 0usize);
        for (_, ty) in props {
            let (root, dims) = split_array(ty);
            let (child_nodes, child_height) = visit(types, root, depth + 1 + dims, memo)?;
            nodes = nodes.saturating_add(child_nodes).saturating_add(dims);
            height = height.max(child_height + 1 + dims);
            if nodes > MAX_TYPE_NODES {
                return Err(err(format!(
                    "the primary type expands to more than {MAX_TYPE_NODES} type nodes"
                )));
            }
        }
        if depth + height > MAX_TYPE_DEPTH {
            return Err(too_deep());
        }
        memo.insert(name, (nodes, height));
        Ok((nodes, height))
    }
    visit(types, primary, 0, &mut HashMap::new()).map(|_| ())
}

/// Refuses message objects with fields their struct type does not declare. Recursion
/// follows the JSON, which serde_json already limits in depth.
fn check_message_fields(ty: &DynSolType, value: &Value, path: &str) -> Result<(), DecodeError> {
    match ty {
        DynSolType::CustomStruct {
            name,
            prop_names,
            tuple,
        } => {
            let Some(map) = value.as_object() else {
                return Ok(()); // alloy refuses the shape
            };
            if let Some(extra) = map.keys().find(|k| !prop_names.contains(k)) {
                return Err(err(format!("{path}.{extra} is not a field of type {name}")));
            }
            for (prop, ty) in prop_names.iter().zip(tuple) {
                if let Some(v) = map.get(prop) {
                    check_message_fields(ty, v, &format!("{path}.{prop}"))?;
                }
            }
            Ok(())
        }
        DynSolType::Array(inner) | DynSolType::FixedArray(inner, _) => {
            for (i, v) in value.as_array().into_iter().flatten().enumerate() {
                check_message_fields(inner, v, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A struct value's field.
fn member<'a>(value: &'a DynSolValue, name: &str) -> Option<&'a DynSolValue> {
    let (_, names, values) = value.as_custom_struct()?;
    names
        .iter()
        .position(|n| n == name)
        .and_then(|i| values.get(i))
}

/// The value-moving structure in the message, recognised by the shapes the contracts
/// verify (the registry: EIP-2612 and ERC-721 `Permit`, DAI's `Permit`, any Permit2
/// message, EIP-3009 `TransferWithAuthorization` / `ReceiveWithAuthorization`, Seaport's
/// `OrderComponents`, CoW Protocol's `Order`). Matched by primary type and the fields that
/// carry value, never by the domain's say-so alone: a structure with extra fields is
/// still treated as what its value fields make it. When the counterparty is known but the
/// amount is not, the amount is `U256::MAX`.
fn detect_permit(data: &alloy_dyn_abi::TypedData, message: &DynSolValue) -> Option<Permit> {
    let address = |name: &str| member(message, name).and_then(DynSolValue::as_address);
    let uint = |name: &str| {
        member(message, name)
            .and_then(DynSolValue::as_uint)
            .map(|(n, _)| n)
    };
    let contract = data.domain.verifying_contract;
    if data.domain.name.as_deref() == Some("Permit2") {
        let (tokens, amount) = permit2_entries(message);
        return Some(Permit {
            scheme: PermitScheme::Permit2,
            // A Permit2 message without a spender names none: no list can contain zero.
            spender: address("spender").unwrap_or(Address::ZERO),
            tokens,
            amount,
        });
    }
    let permit = |scheme, spender, tokens, amount| {
        Some(Permit {
            scheme,
            spender,
            tokens,
            amount,
        })
    };
    match data.primary_type.as_str() {
        "Permit" => {
            let spender = address("spender")?;
            let tokens = contract.into_iter().collect();
            match (uint("value"), member(message, "allowed")) {
                (Some(value), _) => permit(PermitScheme::Eip2612, spender, tokens, value),
                // DAI: `allowed: true` is an unlimited allowance, `false` revokes it.
                (None, Some(allowed)) => {
                    let amount = match allowed.as_bool() {
                        Some(false) => U256::ZERO,
                        _ => U256::MAX,
                    };
                    permit(PermitScheme::DaiPermit, spender, tokens, amount)
                }
                // ERC-721 permits (`tokenId`) and other shapes: the amount is unknown.
                (None, None) => permit(PermitScheme::Eip2612, spender, tokens, U256::MAX),
            }
        }
        "TransferWithAuthorization" | "ReceiveWithAuthorization" => permit(
            PermitScheme::Eip3009,
            address("to")?,
            contract.into_iter().collect(),
            uint("value").unwrap_or(U256::MAX),
        ),
        "OrderComponents" if member(message, "offer").is_some() => {
            let offer = member(message, "offer")?;
            let items: &[DynSolValue] = offer.as_array().unwrap_or_default();
            let mut tokens = Vec::new();
            let mut amount = U256::ZERO;
            for item in items {
                if let Some(token) = member(item, "token").and_then(DynSolValue::as_address) {
                    tokens.push(token);
                }
                for field in ["startAmount", "endAmount"] {
                    let n = member(item, field)
                        .and_then(DynSolValue::as_uint)
                        .map_or(U256::MAX, |(n, _)| n);
                    amount = amount.max(n);
                }
            }
            permit(
                PermitScheme::SeaportOrder,
                contract.unwrap_or(Address::ZERO),
                tokens,
                amount,
            )
        }
        "Order" if member(message, "sellToken").is_some() => permit(
            PermitScheme::CowOrder,
            contract.unwrap_or(Address::ZERO),
            address("sellToken").into_iter().collect(),
            uint("sellAmount").unwrap_or(U256::MAX),
        ),
        _ => None,
    }
}

/// Permit2's token entries: `details` (PermitSingle, PermitBatch) or `permitted`
/// (PermitTransferFrom, PermitBatchTransferFrom and their witness forms), a struct or an
/// array of `{token, amount, …}`. Returns the tokens and the largest amount; no entries
/// found means an unknown amount, `U256::MAX`.
fn permit2_entries(message: &DynSolValue) -> (Vec<Address>, U256) {
    let Some(entries) = member(message, "details").or_else(|| member(message, "permitted")) else {
        return (Vec::new(), U256::MAX);
    };
    let entries: &[DynSolValue] = match entries.as_array().or_else(|| entries.as_fixed_array()) {
        Some(list) => list,
        None => std::slice::from_ref(entries),
    };
    let mut tokens = Vec::new();
    let mut amount = U256::ZERO;
    for entry in entries {
        if let Some(token) = member(entry, "token").and_then(DynSolValue::as_address) {
            tokens.push(token);
        }
        let entry_amount = member(entry, "amount")
            .and_then(DynSolValue::as_uint)
            .map_or(U256::MAX, |(n, _)| n);
        amount = amount.max(entry_amount);
    }
    (tokens, amount)
}
