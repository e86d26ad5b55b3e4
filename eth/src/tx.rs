//! Unsigned transactions: decoding from the request body (JSON or unsigned RLP), the
//! signing hash, the intent, and the signed encoding.

use alloy_consensus::transaction::{RlpEcdsaDecodableTx, RlpEcdsaEncodableTx};
use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256};
use alloy_rlp::{Decodable, Header};
use serde_json::Value;
use strongroom_policy::{AccessListEntry, TransactionIntent, TxType};

use crate::json::{
    address, field, hex_bytes, hex_fixed, object, parse_strict, quantity_u64, quantity_u128,
    quantity_u256,
};
use crate::{DecodeError, MAX_CALLDATA_LEN, MAX_TRANSACTION_BODY_LEN, calldata, erc20};

/// Longest unsigned encoding accepted by [`UnsignedTransaction::from_unsigned_rlp`]: nothing
/// larger could arrive hex-encoded inside a request body anyway.
pub const MAX_UNSIGNED_TRANSACTION_LEN: usize = MAX_TRANSACTION_BODY_LEN / 2;

/// Fields of the transaction object (eth_signTransaction). `gasLimit` is accepted as an
/// alias of `gas` (ethers' own transaction JSON uses it); `input` as an alias of `data`.
const TX_FIELDS: &[&str] = &[
    "type",
    "chainId",
    "nonce",
    "to",
    "from",
    "value",
    "gas",
    "gasLimit",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "data",
    "input",
    "accessList",
];

/// An unsigned transaction the enclave will sign: legacy with EIP-155 replay protection
/// (type 0), EIP-2930 (type 1) or EIP-1559 (type 2).
///
/// Every constructor checks the same invariants: a non-zero chain id, calldata within
/// [`MAX_CALLDATA_LEN`], and for type 2 a priority fee no larger than the max fee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedTransaction(Inner);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Inner {
    Legacy(TxLegacy),
    Eip2930(TxEip2930),
    Eip1559(TxEip1559),
}

/// A signed transaction, ready for `eth_sendRawTransaction`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The EIP-2718 encoding (legacy: the signed RLP list).
    pub raw: Vec<u8>,
    /// The transaction hash, keccak256 of `raw`.
    pub hash: B256,
}

/// The fields all three types share, for comparisons and the intent.
struct View<'a> {
    ty: TxType,
    chain_id: u64,
    nonce: u64,
    gas_price: Option<u128>,
    max_fee_per_gas: Option<u128>,
    max_priority_fee_per_gas: Option<u128>,
    gas_limit: u64,
    to: TxKind,
    value: U256,
    input: &'a Bytes,
    access_list: Option<&'a AccessList>,
}

impl UnsignedTransaction {
    /// Decodes the body of `POST /v1/keys/{id}/sign/transaction`:
    /// `{"transaction": {…}}` (the eth_signTransaction object, see [`Self::from_json`]),
    /// `{"unsigned": "0x…"}` (the unsigned encoding, see [`Self::from_unsigned_rlp`]), or
    /// both, which must then describe the identical transaction. Returns the transaction
    /// and the object's `from`, if given (the caller checks it is the key's address).
    pub fn from_request_body(body: &[u8]) -> Result<(Self, Option<Address>), DecodeError> {
        if body.len() > MAX_TRANSACTION_BODY_LEN {
            return Err(DecodeError::TooLarge {
                what: "request body",
                len: body.len(),
                max: MAX_TRANSACTION_BODY_LEN,
            });
        }
        let value = parse_strict(body)?;
        let map = object(
            &value,
            "request body",
            "request body",
            &["transaction", "unsigned"],
        )?;
        let from_json = field(map, "transaction")
            .map(parse_json_object)
            .transpose()?;
        let from_rlp = field(map, "unsigned")
            .map(|v| {
                let bytes = hex_bytes(
                    "unsigned",
                    "unsigned transaction",
                    v,
                    MAX_UNSIGNED_TRANSACTION_LEN,
                )?;
                Self::from_unsigned_rlp(&bytes)
            })
            .transpose()?;
        match (from_json, from_rlp) {
            (Some((tx, from)), Some(rlp)) => match tx.first_difference(&rlp) {
                Some(field) => Err(DecodeError::Mismatch { field }),
                None => Ok((tx, from)),
            },
            (Some(pair), None) => Ok(pair),
            (None, Some(rlp)) => Ok((rlp, None)),
            (None, None) => Err(DecodeError::MissingField("transaction` or `unsigned")),
        }
    }

    /// Decodes an eth_signTransaction object as geth, ethers v6 and web3.py send it.
    ///
    /// - Quantities are `0x` hex without leading zeros; `chainId`, `nonce`, `gas` and `type`
    ///   may also be JSON integers below 2^53. `chainId`, `nonce` and `gas` (or `gasLimit`)
    ///   are required; `value` defaults to 0; `to` absent or null creates a contract.
    /// - `type` is `0x0`, `0x1` or `0x2`; absent, it is 2 if `maxFeePerGas` or
    ///   `maxPriorityFeePerGas` is present, else 1 if `accessList` is, else 0.
    /// - Types 0 and 1 need `gasPrice` and refuse the 1559 fee fields; type 2 needs both
    ///   1559 fee fields and refuses `gasPrice`; type 0 refuses `accessList`.
    /// - `data` and `input` may both be given only if equal. `from` is checked as an
    ///   address and otherwise ignored here. Unknown fields are refused.
    pub fn from_json(value: &Value) -> Result<Self, DecodeError> {
        parse_json_object(value).map(|(tx, _)| tx)
    }

    /// Decodes the unsigned encoding: `type ‖ rlp([…])` for types 1 and 2, and for legacy
    /// the EIP-155 signing list `rlp([nonce, gasPrice, gas, to, value, data, chainId, 0, 0])`.
    /// Strict: canonical RLP, no extra fields, no trailing bytes; a six-field
    /// (pre-EIP-155) legacy list is refused.
    pub fn from_unsigned_rlp(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_UNSIGNED_TRANSACTION_LEN {
            return Err(DecodeError::TooLarge {
                what: "unsigned transaction",
                len: bytes.len(),
                max: MAX_UNSIGNED_TRANSACTION_LEN,
            });
        }
        let Some((&first, rest)) = bytes.split_first() else {
            return Err(rlp_err("transaction")(alloy_rlp::Error::InputTooShort));
        };
        let inner = match first {
            0x01 => Inner::Eip2930(decode_typed(rest, "EIP-2930 transaction")?),
            0x02 => Inner::Eip1559(decode_typed(rest, "EIP-1559 transaction")?),
            0xc0..=0xff => Inner::Legacy(decode_legacy(bytes)?),
            0x80..=0xbf => {
                return Err(rlp_err("transaction")(alloy_rlp::Error::UnexpectedString));
            }
            ty => return Err(unsupported_type(u64::from(ty))),
        };
        let tx = Self(inner);
        tx.validate()?;
        Ok(tx)
    }

    /// The envelope type.
    pub fn tx_type(&self) -> TxType {
        self.view().ty
    }

    /// The EIP-155 / EIP-2718 chain id.
    pub fn chain_id(&self) -> u64 {
        self.view().chain_id
    }

    /// The unsigned encoding (the preimage of [`Self::signing_hash`]), in the form
    /// [`Self::from_unsigned_rlp`] reads.
    pub fn unsigned_encoding(&self) -> Vec<u8> {
        match &self.0 {
            Inner::Legacy(tx) => tx.encoded_for_signing(),
            Inner::Eip2930(tx) => tx.encoded_for_signing(),
            Inner::Eip1559(tx) => tx.encoded_for_signing(),
        }
    }

    /// The hash the enclave signs: keccak256 of the unsigned encoding.
    pub fn signing_hash(&self) -> B256 {
        keccak256(self.unsigned_encoding())
    }

    /// What this transaction does, for the policy engine.
    pub fn intent(&self) -> TransactionIntent {
        let v = self.view();
        let data = v.input.as_ref();
        let selector = data.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok());
        // Checked when the transaction was decoded (`validate`): refused there if not
        // canonical, so an error cannot occur here.
        let erc20 = match v.to {
            TxKind::Call(token) => erc20::decode(token, data).ok().flatten(),
            TxKind::Create => None,
        };
        TransactionIntent {
            tx_type: v.ty,
            chain_id: v.chain_id,
            nonce: v.nonce,
            to: v.to.to().copied(),
            value: v.value,
            gas_limit: v.gas_limit,
            max_fee_per_gas: v.max_fee_per_gas.or(v.gas_price).unwrap_or_default(),
            max_priority_fee_per_gas: v.max_priority_fee_per_gas,
            selector,
            data_len: data.len(),
            erc20,
            data: v.input.clone(),
            access_list: v
                .access_list
                .map(|list| {
                    list.iter()
                        .map(|item| AccessListEntry {
                            address: item.address,
                            storage_keys: item.storage_keys.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            signing_hash: self.signing_hash(),
            call: calldata::decode(data).map(Box::new),
        }
    }

    /// The signed encoding for a signature `(r, s, y_parity)` over [`Self::signing_hash`].
    /// Legacy transactions get the EIP-155 `v = 35 + 2·chainId + y_parity`.
    pub fn encode_signed(&self, r: [u8; 32], s: [u8; 32], y_parity: bool) -> SignedTransaction {
        let signature = Signature::new(U256::from_be_bytes(r), U256::from_be_bytes(s), y_parity);
        let mut raw = Vec::new();
        match &self.0 {
            Inner::Legacy(tx) => tx.eip2718_encode(&signature, &mut raw),
            Inner::Eip2930(tx) => tx.eip2718_encode(&signature, &mut raw),
            Inner::Eip1559(tx) => tx.eip2718_encode(&signature, &mut raw),
        }
        let hash = keccak256(&raw);
        SignedTransaction { raw, hash }
    }

    fn view(&self) -> View<'_> {
        match &self.0 {
            Inner::Legacy(tx) => View {
                ty: TxType::Legacy,
                // Every constructor refuses a legacy transaction without a chain id.
                chain_id: tx.chain_id.unwrap_or_default(),
                nonce: tx.nonce,
                gas_price: Some(tx.gas_price),
                max_fee_per_gas: None,
                max_priority_fee_per_gas: None,
                gas_limit: tx.gas_limit,
                to: tx.to,
                value: tx.value,
                input: &tx.input,
                access_list: None,
            },
            Inner::Eip2930(tx) => View {
                ty: TxType::Eip2930,
                chain_id: tx.chain_id,
                nonce: tx.nonce,
                gas_price: Some(tx.gas_price),
                max_fee_per_gas: None,
                max_priority_fee_per_gas: None,
                gas_limit: tx.gas_limit,
                to: tx.to,
                value: tx.value,
                input: &tx.input,
                access_list: Some(&tx.access_list),
            },
            Inner::Eip1559(tx) => View {
                ty: TxType::Eip1559,
                chain_id: tx.chain_id,
                nonce: tx.nonce,
                gas_price: None,
                max_fee_per_gas: Some(tx.max_fee_per_gas),
                max_priority_fee_per_gas: Some(tx.max_priority_fee_per_gas),
                gas_limit: tx.gas_limit,
                to: tx.to,
                value: tx.value,
                input: &tx.input,
                access_list: Some(&tx.access_list),
            },
        }
    }

    /// The invariants every constructor enforces.
    fn validate(&self) -> Result<(), DecodeError> {
        if let Inner::Legacy(tx) = &self.0
            && tx.chain_id.is_none()
        {
            return Err(DecodeError::PreEip155);
        }
        let v = self.view();
        if v.chain_id == 0 {
            return Err(DecodeError::ZeroChainId);
        }
        if v.input.len() > MAX_CALLDATA_LEN {
            return Err(DecodeError::TooLarge {
                what: "calldata",
                len: v.input.len(),
                max: MAX_CALLDATA_LEN,
            });
        }
        if let (Some(max), Some(priority)) = (v.max_fee_per_gas, v.max_priority_fee_per_gas)
            && priority > max
        {
            return Err(DecodeError::PriorityFeeAboveMax { priority, max });
        }
        if let TxKind::Call(token) = v.to {
            erc20::decode(token, v.input.as_ref())?;
        }
        Ok(())
    }

    /// The first field (by its JSON name) in which two transactions differ.
    fn first_difference(&self, other: &Self) -> Option<&'static str> {
        let (a, b) = (self.view(), other.view());
        [
            ("type", a.ty == b.ty),
            ("chainId", a.chain_id == b.chain_id),
            ("nonce", a.nonce == b.nonce),
            ("gasPrice", a.gas_price == b.gas_price),
            ("maxFeePerGas", a.max_fee_per_gas == b.max_fee_per_gas),
            (
                "maxPriorityFeePerGas",
                a.max_priority_fee_per_gas == b.max_priority_fee_per_gas,
            ),
            ("gas", a.gas_limit == b.gas_limit),
            ("to", a.to == b.to),
            ("value", a.value == b.value),
            ("data", a.input == b.input),
            ("accessList", a.access_list == b.access_list),
        ]
        .into_iter()
        .find_map(|(name, same)| (!same).then_some(name))
        // Unreachable while View covers every field, but never call different
        // transactions equal.
        .or_else(|| (self != other).then_some("transaction"))
    }
}

fn rlp_err(context: &'static str) -> impl Fn(alloy_rlp::Error) -> DecodeError {
    move |source| DecodeError::Rlp { context, source }
}

fn unsupported_type(ty: u64) -> DecodeError {
    let name = match ty {
        3 => "EIP-4844 blob transaction",
        4 => "EIP-7702 set-code transaction",
        _ => "unknown type",
    };
    DecodeError::UnsupportedType { ty, name }
}

/// The payload of the RLP list that must make up all of `buf`.
fn list_payload<'a>(buf: &'a [u8], context: &'static str) -> Result<&'a [u8], DecodeError> {
    let mut rest = buf;
    let header = Header::decode(&mut rest).map_err(rlp_err(context))?;
    if !header.list {
        return Err(rlp_err(context)(alloy_rlp::Error::UnexpectedString));
    }
    if header.payload_length > rest.len() {
        return Err(rlp_err(context)(alloy_rlp::Error::InputTooShort));
    }
    let (payload, trailing) = rest.split_at(header.payload_length);
    if !trailing.is_empty() {
        return Err(DecodeError::TrailingBytes(trailing.len()));
    }
    Ok(payload)
}

/// A type 1 or 2 body: the fields must fill the list exactly (a signed transaction's
/// three extra fields are refused here).
fn decode_typed<T: RlpEcdsaDecodableTx>(
    buf: &[u8],
    context: &'static str,
) -> Result<T, DecodeError> {
    let mut payload = list_payload(buf, context)?;
    // Decoding reads only within `payload`, never past the declared list length.
    let tx = T::rlp_decode_fields(&mut payload).map_err(rlp_err(context))?;
    if !payload.is_empty() {
        return Err(rlp_err(context)(alloy_rlp::Error::UnexpectedLength));
    }
    Ok(tx)
}

/// The EIP-155 signing list. alloy's own `TxLegacy::decode` is deliberately permissive
/// (non-list headers, non-zero sentinels, reading past the list); this is not.
fn decode_legacy(buf: &[u8]) -> Result<TxLegacy, DecodeError> {
    const CONTEXT: &str = "legacy transaction";
    let mut payload = list_payload(buf, CONTEXT)?;
    let mut tx = TxLegacy::rlp_decode_fields(&mut payload).map_err(rlp_err(CONTEXT))?;
    if payload.is_empty() {
        return Err(DecodeError::PreEip155);
    }
    let chain_id = u64::decode(&mut payload).map_err(rlp_err("legacy transaction chainId"))?;
    let r = U256::decode(&mut payload).map_err(rlp_err(CONTEXT))?;
    let s = U256::decode(&mut payload).map_err(rlp_err(CONTEXT))?;
    if !r.is_zero() || !s.is_zero() {
        return Err(DecodeError::InvalidField {
            field: "unsigned".to_owned(),
            reason: "the two fields after the legacy chain id must be 0 (a signed transaction?)"
                .to_owned(),
        });
    }
    if !payload.is_empty() {
        return Err(rlp_err(CONTEXT)(alloy_rlp::Error::UnexpectedLength));
    }
    tx.chain_id = Some(chain_id);
    Ok(tx)
}

fn required<'a>(
    map: &'a serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<&'a Value, DecodeError> {
    field(map, name).ok_or(DecodeError::MissingField(name))
}

/// Parses the transaction object; see [`UnsignedTransaction::from_json`].
fn parse_json_object(value: &Value) -> Result<(UnsignedTransaction, Option<Address>), DecodeError> {
    let map = object(value, "transaction", "transaction", TX_FIELDS)?;
    let from = field(map, "from").map(|v| address("from", v)).transpose()?;

    let ty = match field(map, "type") {
        Some(v) => match quantity_u64("type", v)? {
            0 => TxType::Legacy,
            1 => TxType::Eip2930,
            2 => TxType::Eip1559,
            other => return Err(unsupported_type(other)),
        },
        None if field(map, "maxFeePerGas").is_some()
            || field(map, "maxPriorityFeePerGas").is_some() =>
        {
            TxType::Eip1559
        }
        None if field(map, "accessList").is_some() => TxType::Eip2930,
        None => TxType::Legacy,
    };

    let chain_id = quantity_u64("chainId", required(map, "chainId")?)?;
    let nonce = quantity_u64("nonce", required(map, "nonce")?)?;
    let gas_limit = match (field(map, "gas"), field(map, "gasLimit")) {
        (Some(gas), Some(limit)) => {
            let gas = quantity_u64("gas", gas)?;
            if gas != quantity_u64("gasLimit", limit)? {
                return Err(DecodeError::Conflict("gas", "gasLimit", "they differ"));
            }
            gas
        }
        (Some(gas), None) => quantity_u64("gas", gas)?,
        (None, Some(limit)) => quantity_u64("gasLimit", limit)?,
        (None, None) => return Err(DecodeError::MissingField("gas")),
    };
    let to = match field(map, "to") {
        Some(v) => TxKind::Call(address("to", v)?),
        None => TxKind::Create,
    };
    let value = field(map, "value")
        .map(|v| quantity_u256("value", v))
        .transpose()?;
    let value = value.unwrap_or_default();
    let calldata = |name: &str| {
        field(map, name)
            .map(|v| hex_bytes(name, "calldata", v, MAX_CALLDATA_LEN))
            .transpose()
    };
    let input = match (calldata("data")?, calldata("input")?) {
        (Some(data), Some(input)) if data != input => {
            return Err(DecodeError::Conflict("data", "input", "they differ"));
        }
        (Some(data), _) | (None, Some(data)) => Bytes::from(data),
        (None, None) => Bytes::new(),
    };
    let access_list = field(map, "accessList")
        .map(parse_access_list)
        .transpose()?;

    let fee = |name: &'static str| field(map, name).map(|v| quantity_u128(name, v)).transpose();
    let gas_price = fee("gasPrice")?;
    let max_fee = fee("maxFeePerGas")?;
    let max_priority = fee("maxPriorityFeePerGas")?;

    let inner = match ty {
        TxType::Legacy | TxType::Eip2930 => {
            if max_fee.is_some() {
                return Err(DecodeError::Conflict(
                    "maxFeePerGas",
                    "type",
                    "types 0 and 1 take gasPrice",
                ));
            }
            if max_priority.is_some() {
                return Err(DecodeError::Conflict(
                    "maxPriorityFeePerGas",
                    "type",
                    "types 0 and 1 take gasPrice",
                ));
            }
            let gas_price = gas_price.ok_or(DecodeError::MissingField("gasPrice"))?;
            if ty == TxType::Legacy {
                if access_list.is_some() {
                    return Err(DecodeError::Conflict(
                        "accessList",
                        "type",
                        "a legacy (type 0) transaction has no access list",
                    ));
                }
                Inner::Legacy(TxLegacy {
                    chain_id: Some(chain_id),
                    nonce,
                    gas_price,
                    gas_limit,
                    to,
                    value,
                    input,
                })
            } else {
                Inner::Eip2930(TxEip2930 {
                    chain_id,
                    nonce,
                    gas_price,
                    gas_limit,
                    to,
                    value,
                    input,
                    access_list: access_list.unwrap_or_default(),
                })
            }
        }
        TxType::Eip1559 => {
            if gas_price.is_some() {
                return Err(DecodeError::Conflict(
                    "gasPrice",
                    "maxFeePerGas",
                    "a type 2 transaction takes maxFeePerGas and maxPriorityFeePerGas",
                ));
            }
            Inner::Eip1559(TxEip1559 {
                chain_id,
                nonce,
                gas_limit,
                max_fee_per_gas: max_fee.ok_or(DecodeError::MissingField("maxFeePerGas"))?,
                max_priority_fee_per_gas: max_priority
                    .ok_or(DecodeError::MissingField("maxPriorityFeePerGas"))?,
                to,
                value,
                access_list: access_list.unwrap_or_default(),
                input,
            })
        }
    };
    let tx = UnsignedTransaction(inner);
    tx.validate()?;
    Ok((tx, from))
}

/// `[{"address": "0x…", "storageKeys": ["0x…32 bytes", …]}, …]`.
fn parse_access_list(value: &Value) -> Result<AccessList, DecodeError> {
    let items = value.as_array().ok_or_else(|| DecodeError::WrongShape {
        what: "accessList".to_owned(),
        expected: "a JSON array",
    })?;
    let mut list = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("accessList[{i}]");
        let map = object(item, &path, "accessList entry", &["address", "storageKeys"])?;
        let address = match field(map, "address") {
            Some(v) => address(&format!("{path}.address"), v)?,
            None => {
                return Err(DecodeError::InvalidField {
                    field: path,
                    reason: "missing `address`".to_owned(),
                });
            }
        };
        let keys = match field(map, "storageKeys") {
            Some(v) => v.as_array().ok_or_else(|| DecodeError::WrongShape {
                what: format!("{path}.storageKeys"),
                expected: "a JSON array",
            })?,
            // Required, as geth requires it: `[]` when there are none.
            None => {
                return Err(DecodeError::InvalidField {
                    field: path,
                    reason: "missing `storageKeys`".to_owned(),
                });
            }
        };
        let mut storage_keys = Vec::new();
        for (j, key) in keys.iter().enumerate() {
            let bytes: [u8; 32] = hex_fixed(&format!("{path}.storageKeys[{j}]"), key)?;
            storage_keys.push(B256::from(bytes));
        }
        list.push(AccessListItem {
            address,
            storage_keys,
        });
    }
    Ok(AccessList(list))
}
