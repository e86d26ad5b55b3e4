//! The attestation document payload: syntax checks on decode, canonical field order on encode.
//!
//! Field rules follow section 3.2.2 of the nsm-api `docs/attestation_process.md`. The NSM
//! encodes absent optional fields as CBOR null, so null is accepted for those three and
//! treated as absent; mandatory fields may never be null.

use std::collections::BTreeMap;

use ciborium::Value;

use crate::VerifyError;

/// Largest `user_data` the NSM accepts and a document may carry.
pub const MAX_USER_DATA_LEN: usize = 512;
/// Largest `nonce` the NSM accepts and a document may carry.
pub const MAX_NONCE_LEN: usize = 512;
/// Largest `public_key` the NSM accepts and a document may carry.
pub const MAX_PUBLIC_KEY_LEN: usize = 1024;
/// Largest DER certificate a document may carry.
pub const MAX_CERT_LEN: usize = 1024;
/// Most certificates in `cabundle`; AWS uses four (root, regional, zonal, instance).
pub const MAX_CABUNDLE_LEN: usize = 8;
/// Largest COSE payload the specification allows.
pub const MAX_PAYLOAD_LEN: usize = 16384;

/// The decoded payload of an attestation document (not yet verified unless it came from
/// [`crate::verify`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationDocument {
    /// Issuing NSM module id.
    pub module_id: String,
    /// Digest function of the PCRs; always "SHA384".
    pub digest: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Locked PCRs by index.
    pub pcrs: BTreeMap<u8, Vec<u8>>,
    /// DER signing certificate.
    pub certificate: Vec<u8>,
    /// DER issuing CA bundle, root first.
    pub cabundle: Vec<Vec<u8>>,
    /// Optional DER public key chosen by the enclave.
    pub public_key: Option<Vec<u8>>,
    /// Optional user data chosen by the enclave.
    pub user_data: Option<Vec<u8>>,
    /// Optional nonce chosen by the consumer.
    pub nonce: Option<Vec<u8>>,
}

const FIELDS: [&str; 9] = [
    "module_id",
    "digest",
    "timestamp",
    "pcrs",
    "certificate",
    "cabundle",
    "public_key",
    "user_data",
    "nonce",
];

/// Decodes CBOR with ciborium's recursion limit kept small: a genuine document nests three deep.
pub(crate) fn decode_cbor(bytes: &[u8]) -> Result<Value, VerifyError> {
    ciborium::de::from_reader_with_recursion_limit(bytes, 16)
        .map_err(|e| VerifyError::MalformedPayload(e.to_string()))
}

fn bytes_field(
    field: &'static str,
    value: Value,
    min: usize,
    max: usize,
) -> Result<Vec<u8>, VerifyError> {
    let Value::Bytes(b) = value else {
        return Err(VerifyError::WrongType {
            field,
            expected: "a byte string",
        });
    };
    if b.len() < min || b.len() > max {
        return Err(VerifyError::FieldLength {
            field,
            len: b.len(),
            min,
            max,
        });
    }
    Ok(b)
}

fn optional_bytes(
    field: &'static str,
    value: Option<Value>,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, VerifyError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => bytes_field(field, v, min, max).map(Some),
    }
}

fn mandatory(
    fields: &mut BTreeMap<&'static str, Value>,
    name: &'static str,
) -> Result<Value, VerifyError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Err(VerifyError::MissingField(name)),
        Some(v) => Ok(v),
    }
}

fn decode_pcrs(value: Value) -> Result<BTreeMap<u8, Vec<u8>>, VerifyError> {
    let Value::Map(entries) = value else {
        return Err(VerifyError::WrongType {
            field: "pcrs",
            expected: "a map",
        });
    };
    if entries.is_empty() || entries.len() > 32 {
        return Err(VerifyError::PcrCount(entries.len()));
    }
    let mut pcrs = BTreeMap::new();
    for (key, value) in entries {
        let Value::Integer(i) = key else {
            return Err(VerifyError::WrongType {
                field: "pcrs",
                expected: "a map with integer keys",
            });
        };
        let index = i128::from(i);
        let idx = u8::try_from(index)
            .ok()
            .filter(|i| *i < 32)
            .ok_or(VerifyError::PcrIndex(index))?;
        let Value::Bytes(data) = value else {
            return Err(VerifyError::WrongType {
                field: "pcrs",
                expected: "a map with byte string values",
            });
        };
        if ![32, 48, 64].contains(&data.len()) {
            return Err(VerifyError::PcrLength {
                index: idx,
                len: data.len(),
            });
        }
        if pcrs.insert(idx, data).is_some() {
            return Err(VerifyError::DuplicateField(format!("pcrs[{idx}]")));
        }
    }
    Ok(pcrs)
}

impl AttestationDocument {
    /// Decodes and syntax-checks a payload (the COSE_Sign1 payload bytes).
    pub fn from_payload(payload: &[u8]) -> Result<Self, VerifyError> {
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(VerifyError::FieldLength {
                field: "payload",
                len: payload.len(),
                min: 1,
                max: MAX_PAYLOAD_LEN,
            });
        }
        let Value::Map(entries) = decode_cbor(payload)? else {
            return Err(VerifyError::PayloadNotMap);
        };
        let mut fields: BTreeMap<&'static str, Value> = BTreeMap::new();
        for (key, value) in entries {
            let Value::Text(name) = key else {
                return Err(VerifyError::WrongType {
                    field: "payload",
                    expected: "a map with text keys",
                });
            };
            let Some(known) = FIELDS.iter().find(|f| **f == name) else {
                return Err(VerifyError::UnknownField(name));
            };
            if fields.insert(known, value).is_some() {
                return Err(VerifyError::DuplicateField(name));
            }
        }

        let Value::Text(module_id) = mandatory(&mut fields, "module_id")? else {
            return Err(VerifyError::WrongType {
                field: "module_id",
                expected: "a text string",
            });
        };
        if module_id.is_empty() {
            return Err(VerifyError::EmptyModuleId);
        }
        let Value::Text(digest) = mandatory(&mut fields, "digest")? else {
            return Err(VerifyError::WrongType {
                field: "digest",
                expected: "a text string",
            });
        };
        if digest != "SHA384" {
            return Err(VerifyError::UnsupportedDigest(digest));
        }
        let timestamp = match mandatory(&mut fields, "timestamp")? {
            Value::Integer(i) => u64::try_from(i).map_err(|_| VerifyError::WrongType {
                field: "timestamp",
                expected: "an unsigned 64-bit integer",
            })?,
            _ => {
                return Err(VerifyError::WrongType {
                    field: "timestamp",
                    expected: "an unsigned 64-bit integer",
                });
            }
        };
        if timestamp == 0 {
            return Err(VerifyError::ZeroTimestamp);
        }
        let pcrs = decode_pcrs(mandatory(&mut fields, "pcrs")?)?;
        let certificate = bytes_field(
            "certificate",
            mandatory(&mut fields, "certificate")?,
            1,
            MAX_CERT_LEN,
        )?;
        let Value::Array(bundle) = mandatory(&mut fields, "cabundle")? else {
            return Err(VerifyError::WrongType {
                field: "cabundle",
                expected: "an array",
            });
        };
        if bundle.is_empty() {
            return Err(VerifyError::EmptyCabundle);
        }
        if bundle.len() > MAX_CABUNDLE_LEN {
            return Err(VerifyError::CabundleTooLong(bundle.len()));
        }
        let cabundle = bundle
            .into_iter()
            .map(|c| bytes_field("cabundle", c, 1, MAX_CERT_LEN))
            .collect::<Result<Vec<_>, _>>()?;
        let public_key = optional_bytes(
            "public_key",
            fields.remove("public_key"),
            1,
            MAX_PUBLIC_KEY_LEN,
        )?;
        let user_data = optional_bytes(
            "user_data",
            fields.remove("user_data"),
            0,
            MAX_USER_DATA_LEN,
        )?;
        let nonce = optional_bytes("nonce", fields.remove("nonce"), 0, MAX_NONCE_LEN)?;

        Ok(Self {
            module_id,
            digest,
            timestamp,
            pcrs,
            certificate,
            cabundle,
            public_key,
            user_data,
            nonce,
        })
    }

    /// Encodes the payload exactly as the NSM does: nine fields in this order, absent
    /// optional fields as null, PCRs by ascending index.
    pub fn to_payload(&self) -> Vec<u8> {
        let opt = |v: &Option<Vec<u8>>| v.clone().map_or(Value::Null, Value::Bytes);
        let map = Value::Map(vec![
            (
                Value::Text("module_id".into()),
                Value::Text(self.module_id.clone()),
            ),
            (
                Value::Text("digest".into()),
                Value::Text(self.digest.clone()),
            ),
            (
                Value::Text("timestamp".into()),
                Value::Integer(self.timestamp.into()),
            ),
            (
                Value::Text("pcrs".into()),
                Value::Map(
                    self.pcrs
                        .iter()
                        .map(|(i, v)| (Value::Integer((*i).into()), Value::Bytes(v.clone())))
                        .collect(),
                ),
            ),
            (
                Value::Text("certificate".into()),
                Value::Bytes(self.certificate.clone()),
            ),
            (
                Value::Text("cabundle".into()),
                Value::Array(self.cabundle.iter().cloned().map(Value::Bytes).collect()),
            ),
            (Value::Text("public_key".into()), opt(&self.public_key)),
            (Value::Text("user_data".into()), opt(&self.user_data)),
            (Value::Text("nonce".into()), opt(&self.nonce)),
        ]);
        let mut out = Vec::with_capacity(4096);
        // Writing a Value into a Vec cannot fail: the writer is infallible and every
        // Value variant used here is serialisable.
        if ciborium::ser::into_writer(&map, &mut out).is_err() {
            out.clear();
        }
        out
    }

    /// True when PCR0 is present and all zeros, the mark of a debug-mode enclave.
    pub fn is_debug_mode(&self) -> bool {
        self.pcrs.get(&0).is_some_and(|p| p.iter().all(|b| *b == 0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> AttestationDocument {
        AttestationDocument {
            module_id: "i-0123-enc01".into(),
            digest: "SHA384".into(),
            timestamp: 1_700_000_000_000,
            pcrs: (0..16u8).map(|i| (i, vec![i; 48])).collect(),
            certificate: vec![1; 10],
            cabundle: vec![vec![2; 10], vec![3; 10]],
            public_key: None,
            user_data: Some(b"hello".to_vec()),
            nonce: Some(vec![]),
        }
    }

    fn with_field(name: &str, value: Value) -> Vec<u8> {
        let Value::Map(mut entries) = decode_cbor(&sample().to_payload()).unwrap() else {
            panic!("not a map")
        };
        for (k, v) in entries.iter_mut() {
            if *k == Value::Text(name.into()) {
                *v = value.clone();
            }
        }
        let mut out = vec![];
        ciborium::ser::into_writer(&Value::Map(entries), &mut out).unwrap();
        out
    }

    #[test]
    fn round_trips() {
        let doc = sample();
        assert_eq!(
            AttestationDocument::from_payload(&doc.to_payload()).unwrap(),
            doc
        );
    }

    #[test]
    fn payload_starts_like_the_nsm() {
        // a9 = map of nine entries, then "module_id" first, as in every AWS document.
        let p = sample().to_payload();
        assert_eq!(&p[..11], b"\xa9\x69module_id");
    }

    #[test]
    fn each_syntax_rule_has_its_error() {
        use VerifyError as E;
        let cases: Vec<(Vec<u8>, E)> = vec![
            (
                with_field("module_id", Value::Text(String::new())),
                E::EmptyModuleId,
            ),
            (
                with_field("digest", Value::Text("SHA256".into())),
                E::UnsupportedDigest("SHA256".into()),
            ),
            (
                with_field("timestamp", Value::Integer(0.into())),
                E::ZeroTimestamp,
            ),
            (with_field("pcrs", Value::Map(vec![])), E::PcrCount(0)),
            (
                with_field(
                    "pcrs",
                    Value::Map(vec![(Value::Integer(32.into()), Value::Bytes(vec![0; 48]))]),
                ),
                E::PcrIndex(32),
            ),
            (
                with_field(
                    "pcrs",
                    Value::Map(vec![(Value::Integer(3.into()), Value::Bytes(vec![0; 47]))]),
                ),
                E::PcrLength { index: 3, len: 47 },
            ),
            (
                with_field("cabundle", Value::Array(vec![])),
                E::EmptyCabundle,
            ),
            (
                with_field("certificate", Value::Null),
                E::MissingField("certificate"),
            ),
            (
                with_field("certificate", Value::Bytes(vec![0; 1025])),
                E::FieldLength {
                    field: "certificate",
                    len: 1025,
                    min: 1,
                    max: 1024,
                },
            ),
            (
                with_field("public_key", Value::Bytes(vec![])),
                E::FieldLength {
                    field: "public_key",
                    len: 0,
                    min: 1,
                    max: 1024,
                },
            ),
            (
                with_field("user_data", Value::Bytes(vec![0; 513])),
                E::FieldLength {
                    field: "user_data",
                    len: 513,
                    min: 0,
                    max: 512,
                },
            ),
            (
                with_field("nonce", Value::Text("abc".into())),
                E::WrongType {
                    field: "nonce",
                    expected: "a byte string",
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(AttestationDocument::from_payload(&bytes), Err(expected));
        }
    }

    #[test]
    fn unknown_and_duplicate_fields_are_refused() {
        let mut entries = match decode_cbor(&sample().to_payload()).unwrap() {
            Value::Map(e) => e,
            _ => unreachable!(),
        };
        entries.push((Value::Text("extra".into()), Value::Null));
        let mut out = vec![];
        ciborium::ser::into_writer(&Value::Map(entries.clone()), &mut out).unwrap();
        assert_eq!(
            AttestationDocument::from_payload(&out),
            Err(VerifyError::UnknownField("extra".into()))
        );
        entries.pop();
        entries.push((Value::Text("nonce".into()), Value::Null));
        out.clear();
        ciborium::ser::into_writer(&Value::Map(entries), &mut out).unwrap();
        assert_eq!(
            AttestationDocument::from_payload(&out),
            Err(VerifyError::DuplicateField("nonce".into()))
        );
    }
}
