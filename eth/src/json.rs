//! Strict JSON and hex helpers shared by the decoders.

use std::fmt;

use alloy_primitives::{Address, U256};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::DecodeError;

/// Parses JSON, refusing duplicated object keys at any depth: the one JSON decoder for
/// every body that enters the enclave. serde_json keeps the last duplicate silently;
/// another parser (an approver's UI, a log viewer, the client that built the request) may
/// keep the first, so a document with duplicates could show one thing and sign another.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, DecodeError> {
    serde_json::from_slice::<StrictValue>(bytes)
        .map(|v| v.0)
        .map_err(|e| DecodeError::Json(e.to_string()))
}

/// [`parse_strict`], then into `T` (whose own rules, such as unknown fields, apply too).
pub fn from_slice_strict<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_value(parse_strict(bytes)?).map_err(|e| DecodeError::Json(e.to_string()))
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so this is always representable.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // No size hint: the length is attacker-controlled, growth is bounded by the input.
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// The object's fields, refusing any not in `allowed`.
pub(crate) fn object<'a>(
    value: &'a Value,
    what: &str,
    context: &'static str,
    allowed: &[&str],
) -> Result<&'a Map<String, Value>, DecodeError> {
    let map = value.as_object().ok_or_else(|| DecodeError::WrongShape {
        what: what.to_owned(),
        expected: "a JSON object",
    })?;
    if let Some(field) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(DecodeError::UnknownField {
            context,
            field: field.clone(),
        });
    }
    Ok(map)
}

/// A field's value; JSON `null` counts as absent (geth's optional fields work this way).
pub(crate) fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    map.get(name).filter(|v| !v.is_null())
}

fn invalid(field: &str, reason: impl Into<String>) -> DecodeError {
    DecodeError::InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn as_str<'a>(field: &str, value: &'a Value) -> Result<&'a str, DecodeError> {
    value
        .as_str()
        .ok_or_else(|| invalid(field, "must be a string"))
}

/// The digits after a mandatory lower-case `0x` prefix.
fn strip_0x<'a>(field: &str, s: &'a str) -> Result<&'a str, DecodeError> {
    s.strip_prefix("0x")
        .ok_or_else(|| invalid(field, "must start with \"0x\""))
}

/// An Ethereum JSON-RPC quantity: `0x` then hex digits without leading zeros (`0x0` for
/// zero), at most 256 bits. Geth refuses leading zeros and an empty `0x`; so do we.
pub(crate) fn quantity(field: &'static str, value: &Value) -> Result<U256, DecodeError> {
    let digits = strip_0x(field, as_str(field, value)?)?;
    if digits.is_empty() {
        return Err(invalid(field, "empty hex quantity \"0x\""));
    }
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(field, "not a hex quantity"));
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(invalid(field, "hex quantity has leading zeros"));
    }
    if digits.len() > 64 {
        return Err(DecodeError::Overflow { field, bits: 256 });
    }
    U256::from_str_radix(digits, 16).map_err(|_| DecodeError::Overflow { field, bits: 256 })
}

/// Largest integer a JavaScript number holds exactly; larger JSON numbers may already
/// have been rounded by the client that wrote them.
const MAX_SAFE_JSON_INTEGER: u64 = (1 << 53) - 1;

/// A 64-bit quantity: a hex quantity string, or a JSON integer up to 2^53 − 1 (some
/// clients, older web3.py among them, send `chainId` and `nonce` as numbers).
pub(crate) fn quantity_u64(field: &'static str, value: &Value) -> Result<u64, DecodeError> {
    if value.is_number() {
        return value
            .as_u64()
            .filter(|n| *n <= MAX_SAFE_JSON_INTEGER)
            .ok_or_else(|| {
                invalid(
                    field,
                    "a JSON number here must be a non-negative integer below 2^53",
                )
            });
    }
    u64::try_from(quantity(field, value)?).map_err(|_| DecodeError::Overflow { field, bits: 64 })
}

/// A 128-bit quantity (fees). Hex strings only: fees and values in wei routinely exceed
/// what a JSON number carries exactly.
pub(crate) fn quantity_u128(field: &'static str, value: &Value) -> Result<u128, DecodeError> {
    if value.is_number() {
        return Err(invalid(
            field,
            "must be a hex quantity string, not a JSON number",
        ));
    }
    u128::try_from(quantity(field, value)?).map_err(|_| DecodeError::Overflow { field, bits: 128 })
}

/// A 256-bit quantity (value). Hex strings only, as for fees.
pub(crate) fn quantity_u256(field: &'static str, value: &Value) -> Result<U256, DecodeError> {
    if value.is_number() {
        return Err(invalid(
            field,
            "must be a hex quantity string, not a JSON number",
        ));
    }
    quantity(field, value)
}

/// `0x`-prefixed hex bytes, at most `max` bytes; the length is checked before decoding.
pub(crate) fn hex_bytes(
    field: &str,
    what: &'static str,
    value: &Value,
    max: usize,
) -> Result<Vec<u8>, DecodeError> {
    let digits = strip_0x(field, as_str(field, value)?)?;
    let len = digits.len().div_ceil(2);
    if len > max {
        return Err(DecodeError::TooLarge { what, len, max });
    }
    decode_hex(field, digits)
}

/// Exactly `N` bytes of `0x`-prefixed hex.
pub(crate) fn hex_fixed<const N: usize>(
    field: &str,
    value: &Value,
) -> Result<[u8; N], DecodeError> {
    let digits = strip_0x(field, as_str(field, value)?)?;
    if digits.len() != 2 * N {
        return Err(invalid(
            field,
            format!("must be {N} bytes ({} hex digits)", 2 * N),
        ));
    }
    let bytes = decode_hex(field, digits)?;
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes);
    Ok(out)
}

fn decode_hex(field: &str, digits: &str) -> Result<Vec<u8>, DecodeError> {
    // Check the characters ourselves: the hex decoder would accept a second "0x" prefix.
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(field, "not hex"));
    }
    if !digits.len().is_multiple_of(2) {
        return Err(invalid(field, "odd number of hex digits"));
    }
    alloy_primitives::hex::decode(digits).map_err(|e| invalid(field, e.to_string()))
}

/// An address: `0x` and 40 hex digits. All-lower or all-upper case digits are taken as
/// written; mixed case must be a valid EIP-55 checksum, since a wrong checksum means a
/// mistyped address.
pub(crate) fn address(field: &str, value: &Value) -> Result<Address, DecodeError> {
    let s = as_str(field, value)?;
    let bytes: [u8; 20] = hex_fixed(field, value)?;
    let digits = &s[2..];
    let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper {
        Address::parse_checksummed(s, None)
            .map_err(|_| invalid(field, "mixed-case address with a wrong EIP-55 checksum"))
    } else {
        Ok(Address::from(bytes))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict(br#"{"x":[{"a":1,"a":1}]}"#).is_err());
        assert_eq!(
            parse_strict(br#"{"a":[1,"x",null,true]}"#).unwrap(),
            json!({"a":[1,"x",null,true]})
        );
    }

    #[test]
    fn quantities_are_strict() {
        assert_eq!(quantity("f", &json!("0x0")).unwrap(), U256::ZERO);
        assert_eq!(quantity("f", &json!("0xFf")).unwrap(), U256::from(255));
        for bad in ["0x", "0x01", "ff", "0X1", "0xg", "0x0x1", "-0x1", " 0x1"] {
            assert!(quantity("f", &json!(bad)).is_err(), "{bad}");
        }
        let max = format!("0x{}", "f".repeat(64));
        assert_eq!(quantity("f", &json!(max)).unwrap(), U256::MAX);
        let over = format!("0x1{}", "0".repeat(64));
        assert_eq!(
            quantity("f", &json!(over)),
            Err(DecodeError::Overflow {
                field: "f",
                bits: 256
            })
        );
    }

    #[test]
    fn json_numbers_only_for_small_u64_fields() {
        assert_eq!(quantity_u64("f", &json!(5)).unwrap(), 5);
        assert!(quantity_u64("f", &json!(1u64 << 53)).is_err());
        assert!(quantity_u64("f", &json!(-1)).is_err());
        assert!(quantity_u64("f", &json!(1.5)).is_err());
        assert!(quantity_u128("f", &json!(5)).is_err());
        assert!(quantity_u256("f", &json!(5)).is_err());
        assert_eq!(
            quantity_u64("f", &json!("0x10000000000000000")),
            Err(DecodeError::Overflow {
                field: "f",
                bits: 64
            })
        );
    }

    #[test]
    fn addresses_check_mixed_case_checksums() {
        let good = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert!(address("to", &json!(good)).is_ok());
        assert!(address("to", &json!(good.to_lowercase())).is_ok());
        assert!(address("to", &json!(format!("0x{}", good[2..].to_uppercase()))).is_ok());
        let bad = "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        assert!(address("to", &json!(bad)).is_err());
        assert!(address("to", &json!("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae")).is_err());
    }

    #[test]
    fn hex_bytes_checks_size_before_decoding() {
        let big = format!("0x{}", "zz".repeat(11));
        assert_eq!(
            hex_bytes("data", "calldata", &json!(big), 10),
            Err(DecodeError::TooLarge {
                what: "calldata",
                len: 11,
                max: 10
            })
        );
        assert_eq!(
            hex_bytes("data", "calldata", &json!("0x"), 10).unwrap(),
            Vec::<u8>::new()
        );
        assert!(hex_bytes("data", "calldata", &json!("0x123"), 10).is_err());
        assert!(hex_bytes("data", "calldata", &json!("0x0x12"), 10).is_err());
    }
}
