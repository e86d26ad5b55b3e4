//! What an unsealed enclave binds into the `user_data` of its attestation documents.

use ciborium::Value;

use crate::error::IdentityError;
use crate::key::IdentityPublic;
use crate::signers::ReplicaName;

/// Length of the root-key check value.
const KEY_CHECK_LEN: usize = 16;

/// The `user_data` of an unsealed enclave's attestation documents: the CBOR map
/// `{"key_check": bstr16, "genesis": bstr32, "admins": bstr32, "policy": bstr32,
/// "identity": bstr32, "boot_seq": uint}`, keys in this order, `boot_seq` always in the
/// 8-byte form.
///
/// KMS's envelope is not authenticated, so on what the proxy calls a first boot the
/// enclave cannot tell KMS's root key from one the parent made up, nor the deployment's
/// genesis document from one the parent wrote. Publishing the check value and the genesis
/// digest lets clients and auditors pin both; the admin-set and policy digests say which
/// rules the enclave enforces now; `identity` is the key that signs its answers and audit
/// entries for this boot; `boot_seq` is the sequence number of this boot's record in the
/// audit chain, so a client that has seen a later point of the chain from an earlier boot
/// knows this boot forked it (a rollback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserData {
    /// The root-key check value.
    pub key_check: [u8; KEY_CHECK_LEN],
    /// The genesis digest (admin set and first policy), fixed at first boot.
    pub genesis: [u8; 32],
    /// The current admin set's digest.
    pub admins: [u8; 32],
    /// The current policy's digest.
    pub policy: [u8; 32],
    /// This boot's identity key.
    pub identity: IdentityPublic,
    /// The sequence number of this boot's record in the audit chain.
    pub boot_seq: u64,
    /// The replica this boot is of, where several share the log (a 7th field,
    /// `"replica": tstr`, present only then).
    pub replica: ReplicaName,
}

const FIELDS: [&str; 6] = [
    "key_check",
    "genesis",
    "admins",
    "policy",
    "identity",
    "boot_seq",
];
/// The optional seventh field.
const REPLICA: &str = "replica";
/// Length of the encoding (without a replica name).
const ENCODED_LEN: usize = 213;

impl UserData {
    /// The CBOR encoding (fixed layout, 213 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCODED_LEN);
        out.push(0xa0 | FIELDS.len() as u8);
        let values: [&[u8]; 5] = [
            &self.key_check,
            &self.genesis,
            &self.admins,
            &self.policy,
            &self.identity.0,
        ];
        for (name, value) in FIELDS.iter().zip(values) {
            out.push(0x60 | name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            if value.len() < 24 {
                out.push(0x40 | value.len() as u8);
            } else {
                out.push(0x58);
                out.push(value.len() as u8);
            }
            out.extend_from_slice(value);
        }
        out.push(0x60 | FIELDS[5].len() as u8);
        out.extend_from_slice(FIELDS[5].as_bytes());
        out.push(0x1b);
        out.extend_from_slice(&self.boot_seq.to_be_bytes());
        if !self.replica.is_single() {
            out[0] += 1;
            out.push(0x60 | REPLICA.len() as u8);
            out.extend_from_slice(REPLICA.as_bytes());
            let name = self.replica.as_str();
            // At most 64 bytes: a one-byte length after 0x78.
            out.push(0x78);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
        out
    }

    /// Reads the encoding back: exactly these six fields, in this order, of these lengths.
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentityError> {
        const WHAT: &str = "attestation user data";
        if bytes.len() > 512 {
            return Err(IdentityError::TooLarge {
                what: WHAT,
                len: bytes.len(),
                max: 512,
            });
        }
        let value: Value = ciborium::from_reader(bytes)
            .map_err(|e| IdentityError::malformed(WHAT, format!("not CBOR: {e}")))?;
        let Value::Map(entries) = value else {
            return Err(IdentityError::malformed(WHAT, "not a CBOR map"));
        };
        let replica = match entries.get(FIELDS.len()) {
            _ if entries.len() > FIELDS.len() + 1 || entries.len() < FIELDS.len() => {
                return Err(IdentityError::malformed(
                    WHAT,
                    format!("{} fields, expected {}", entries.len(), FIELDS.len()),
                ));
            }
            None => ReplicaName::SINGLE,
            Some((k, v)) => {
                if k.as_text() != Some(REPLICA) {
                    return Err(IdentityError::malformed(WHAT, "field 6 is not \"replica\""));
                }
                v.as_text()
                    .and_then(ReplicaName::new)
                    .filter(|r| !r.is_single())
                    .ok_or_else(|| {
                        IdentityError::malformed(WHAT, "replica is not a replica name")
                    })?
            }
        };
        let mut out = [[0u8; 32]; 5];
        let mut key_check = [0u8; KEY_CHECK_LEN];
        for (i, (k, name)) in entries.iter().map(|(k, _)| k).zip(FIELDS).enumerate() {
            if k.as_text() != Some(name) {
                return Err(IdentityError::malformed(
                    WHAT,
                    format!("field {i} is not {name:?}"),
                ));
            }
        }
        let boot_seq = entries[5]
            .1
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| IdentityError::malformed(WHAT, "boot_seq is not a u64"))?;
        for (i, ((_, v), name)) in entries.iter().take(5).zip(FIELDS).enumerate() {
            let Some(b) = v.as_bytes() else {
                return Err(IdentityError::malformed(
                    WHAT,
                    format!("{name} is not bytes"),
                ));
            };
            let ok = if i == 0 {
                b.len() == KEY_CHECK_LEN && {
                    key_check.copy_from_slice(b);
                    true
                }
            } else {
                b.len() == 32 && {
                    out[i].copy_from_slice(b);
                    true
                }
            };
            if !ok {
                return Err(IdentityError::malformed(
                    WHAT,
                    format!("{name} has {} bytes", b.len()),
                ));
            }
        }
        Ok(Self {
            key_check,
            genesis: out[1],
            admins: out[2],
            policy: out[3],
            identity: IdentityPublic(out[4]),
            boot_seq,
            replica,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> UserData {
        UserData {
            key_check: [1; 16],
            genesis: [2; 32],
            admins: [3; 32],
            policy: [4; 32],
            identity: IdentityPublic([5; 32]),
            boot_seq: 7,
            replica: crate::ReplicaName::SINGLE,
        }
    }

    #[test]
    fn round_trips_and_is_valid_cbor_for_another_decoder() {
        let d = sample();
        let bytes = d.encode();
        assert_eq!(bytes.len(), ENCODED_LEN);
        assert_eq!(UserData::decode(&bytes).unwrap(), d);
        // ciborium reads it as the documented map.
        let v: Value = ciborium::from_reader(bytes.as_slice()).unwrap();
        let map = v.as_map().unwrap();
        assert_eq!(map[4].0.as_text(), Some("identity"));
        assert_eq!(map[4].1.as_bytes().unwrap().as_slice(), &[5u8; 32]);
        assert_eq!(map[5].0.as_text(), Some("boot_seq"));
        assert_eq!(map[5].1.as_integer(), Some(7.into()));
        let far = UserData {
            boot_seq: u64::MAX,
            replica: crate::ReplicaName::SINGLE,
            ..d
        };
        assert_eq!(UserData::decode(&far.encode()).unwrap(), far);
    }

    #[test]
    fn a_replica_name_is_a_seventh_field() {
        let d = UserData {
            replica: ReplicaName::new("i-0123456789abcdef0").unwrap(),
            ..sample()
        };
        let bytes = d.encode();
        assert_eq!(UserData::decode(&bytes).unwrap(), d);
        let v: Value = ciborium::from_reader(bytes.as_slice()).unwrap();
        let map = v.as_map().unwrap();
        assert_eq!(map[6].0.as_text(), Some("replica"));
        assert_eq!(map[6].1.as_text(), Some("i-0123456789abcdef0"));
        // The longest name, and a name that is not one.
        let long = UserData {
            replica: ReplicaName::new(&"x".repeat(64)).unwrap(),
            ..sample()
        };
        assert_eq!(UserData::decode(&long.encode()).unwrap(), long);
        let mut bad = bytes.clone();
        let at = bad.windows(2).position(|w| w == b"i-").unwrap();
        bad[at] = b' ';
        assert!(UserData::decode(&bad).is_err());
    }

    #[test]
    fn other_shapes_are_refused() {
        let good = sample().encode();
        // A field renamed, a length changed, a field missing.
        let renamed = {
            let mut b = good.clone();
            let at = b.windows(8).position(|w| w == b"identity").unwrap();
            b[at] = b'I';
            b
        };
        let mut four = Vec::new();
        ciborium::into_writer(
            &Value::Map(vec![(
                Value::Text("key_check".into()),
                Value::Bytes(vec![0; 16]),
            )]),
            &mut four,
        )
        .unwrap();
        let negative = {
            let mut b = good.clone();
            let n = b.len();
            b[n - 9] = 0x3b; // major type 1: a negative integer
            b
        };
        for bad in [renamed, four, negative, vec![0xa6], good[..100].to_vec()] {
            assert!(UserData::decode(&bad).is_err());
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = UserData::decode(&bytes);
        }
    }
}
