//! The transaction payload: an EIP-1559 transfer of 1 wei on Sepolia, and the check of a
//! signed answer — the raw transaction is the one asked for, its hashes are right, and its
//! signature recovers to the key.

use anyhow::{Context, Result, bail, ensure};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use serde_json::{Value, json};
use sha3::{Digest, Keccak256};

/// Sepolia.
pub const CHAIN_ID: u64 = 11_155_111;
/// The recipient (a well-known development account).
pub const TO: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
/// Value moved, in wei.
pub const VALUE: u64 = 1;
/// A plain transfer's gas.
pub const GAS: u64 = 21_000;
/// 20 gwei.
pub const MAX_FEE_PER_GAS: u64 = 20_000_000_000;
/// 1 gwei.
pub const MAX_PRIORITY_FEE_PER_GAS: u64 = 1_000_000_000;
/// EIP-2718 type of an EIP-1559 transaction.
const TX_TYPE: u8 = 2;

/// The request body for the transfer with `nonce`, serialized once: these exact bytes are
/// stamped and sent.
pub fn body(nonce: u64) -> Vec<u8> {
    let tx = json!({
        "transaction": {
            "type": "0x2",
            "chainId": format!("{CHAIN_ID:#x}"),
            "nonce": format!("{nonce:#x}"),
            "to": TO,
            "value": format!("{VALUE:#x}"),
            "gas": format!("{GAS:#x}"),
            "maxFeePerGas": format!("{MAX_FEE_PER_GAS:#x}"),
            "maxPriorityFeePerGas": format!("{MAX_PRIORITY_FEE_PER_GAS:#x}"),
        }
    });
    // Serializing a json! value cannot fail.
    serde_json::to_vec(&tx).unwrap_or_default()
}

/// One decoded RLP item: its payload, its whole encoding, and whether it is a list.
struct Item<'a> {
    payload: &'a [u8],
    encoded: &'a [u8],
    list: bool,
}

fn be_len(bytes: &[u8]) -> Result<usize> {
    ensure!(
        bytes.len() <= 8 && bytes.first() != Some(&0),
        "bad RLP length"
    );
    Ok(bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b)))
}

/// The first RLP item of `input` and what follows it.
fn item(input: &[u8]) -> Result<(Item<'_>, &[u8])> {
    let &first = input.first().context("RLP ends early")?;
    let (header, len, list) = match first {
        0x00..=0x7f => (0, 1, false),
        0x80..=0xb7 => (1, usize::from(first - 0x80), false),
        0xb8..=0xbf => {
            let n = usize::from(first - 0xb7);
            (
                1 + n,
                be_len(input.get(1..1 + n).context("RLP ends early")?)?,
                false,
            )
        }
        0xc0..=0xf7 => (1, usize::from(first - 0xc0), true),
        0xf8..=0xff => {
            let n = usize::from(first - 0xf7);
            (
                1 + n,
                be_len(input.get(1..1 + n).context("RLP ends early")?)?,
                true,
            )
        }
    };
    let end = header.checked_add(len).context("RLP length overflows")?;
    ensure!(input.len() >= end, "RLP ends early");
    let start = if first < 0x80 { 0 } else { header };
    Ok((
        Item {
            payload: &input[start..end],
            encoded: &input[..end],
            list,
        },
        &input[end..],
    ))
}

/// The items of the RLP list that makes up all of `input`.
fn list(input: &[u8]) -> Result<Vec<Item<'_>>> {
    let (outer, rest) = item(input)?;
    ensure!(outer.list && rest.is_empty(), "not one RLP list");
    let mut items = Vec::new();
    let mut left = outer.payload;
    while !left.is_empty() {
        let (next, rest) = item(left)?;
        items.push(next);
        left = rest;
    }
    Ok(items)
}

/// A list header for a payload of `len` bytes.
fn list_header(len: usize) -> Vec<u8> {
    if len < 56 {
        // len < 56 fits in the byte.
        vec![0xc0 + len as u8]
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let mut header = vec![0xf7 + (bytes.len() - skip) as u8];
        header.extend_from_slice(&bytes[skip..]);
        header
    }
}

/// A quantity as RLP carries it: big-endian, no leading zeros (zero is empty).
fn quantity(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

fn hash_field(answer: &Value, name: &str) -> Result<[u8; 32]> {
    let text = answer[name]
        .as_str()
        .with_context(|| format!("no {name}"))?;
    let bytes = crate::load::hex_field(text)?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("{name} is not 32 bytes"))
}

/// Checks a signed-transaction answer for the transfer with `nonce` against `key`.
pub fn check(answer: &Value, nonce: u64, key: &VerifyingKey) -> Result<()> {
    let raw = crate::load::hex_field(answer["raw"].as_str().context("no raw")?)?;
    let hash = hash_field(answer, "hash")?;
    let signing_hash = hash_field(answer, "signing_hash")?;
    ensure!(
        raw.first() == Some(&TX_TYPE),
        "raw is not an EIP-1559 (0x02) transaction"
    );
    let items = list(&raw[1..]).context("raw")?;
    ensure!(items.len() == 12, "raw has {} fields, not 12", items.len());
    let to = crate::load::hex_field(TO)?;
    let expected: [(&str, Vec<u8>); 8] = [
        ("chainId", quantity(CHAIN_ID)),
        ("nonce", quantity(nonce)),
        ("maxPriorityFeePerGas", quantity(MAX_PRIORITY_FEE_PER_GAS)),
        ("maxFeePerGas", quantity(MAX_FEE_PER_GAS)),
        ("gas", quantity(GAS)),
        ("to", to),
        ("value", quantity(VALUE)),
        ("data", Vec::new()),
    ];
    for (item, (name, want)) in items.iter().zip(&expected) {
        ensure!(
            !item.list && item.payload == want.as_slice(),
            "raw {name} is not the one asked for"
        );
    }
    ensure!(
        items[8].list && items[8].payload.is_empty(),
        "raw has an access list"
    );
    let (parity, r, s) = (&items[9], &items[10], &items[11]);
    ensure!(!parity.list && !r.list && !s.list, "raw signature fields");
    let recovery_id = match parity.payload {
        [] => 0,
        [1] => 1,
        _ => bail!("yParity is not 0 or 1"),
    };

    let unsigned_fields: Vec<u8> = items[..9]
        .iter()
        .flat_map(|i| i.encoded.iter().copied())
        .collect();
    let mut unsigned = vec![TX_TYPE];
    unsigned.extend(list_header(unsigned_fields.len()));
    unsigned.extend(unsigned_fields);
    ensure!(
        Keccak256::digest(&unsigned).as_slice() == signing_hash,
        "signing_hash is not the hash of the unsigned transaction"
    );
    ensure!(
        Keccak256::digest(&raw).as_slice() == hash,
        "hash is not the hash of raw"
    );

    ensure!(
        r.payload.len() <= 32 && s.payload.len() <= 32,
        "r or s too long"
    );
    let mut rs = [0u8; 64];
    rs[32 - r.payload.len()..32].copy_from_slice(r.payload);
    rs[64 - s.payload.len()..].copy_from_slice(s.payload);
    let sig = Signature::from_slice(&rs).context("r or s out of range")?;
    ensure!(sig.normalize_s() == sig, "s is high");
    let recovery_id = RecoveryId::from_byte(recovery_id).context("yParity")?;
    let recovered = VerifyingKey::recover_from_prehash(&signing_hash, &sig, recovery_id)
        .context("no public key recovers from the signature")?;
    ensure!(
        recovered == *key,
        "the signature recovers to another public key"
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::baseline::random_key;

    fn string(bytes: &[u8]) -> Vec<u8> {
        match bytes {
            [b] if *b < 0x80 => vec![*b],
            _ => {
                assert!(bytes.len() < 56);
                let mut out = vec![0x80 + bytes.len() as u8];
                out.extend_from_slice(bytes);
                out
            }
        }
    }

    fn encode_list(items: &[Vec<u8>]) -> Vec<u8> {
        let payload: Vec<u8> = items.concat();
        let mut out = list_header(payload.len());
        out.extend(payload);
        out
    }

    /// Signs the transfer as a server would, with `nonce_signed` in the transaction.
    fn signed(key: &k256::ecdsa::SigningKey, nonce_signed: u64) -> Value {
        let to = hex::decode(&TO[2..]).unwrap();
        let mut fields = vec![
            string(&quantity(CHAIN_ID)),
            string(&quantity(nonce_signed)),
            string(&quantity(MAX_PRIORITY_FEE_PER_GAS)),
            string(&quantity(MAX_FEE_PER_GAS)),
            string(&quantity(GAS)),
            string(&to),
            string(&quantity(VALUE)),
            string(&[]),
            encode_list(&[]),
        ];
        let mut unsigned = vec![TX_TYPE];
        unsigned.extend(encode_list(&fields));
        let signing_hash: [u8; 32] = Keccak256::digest(&unsigned).into();
        let (sig, recid) = key.sign_prehash_recoverable(&signing_hash);
        let rs = sig.to_bytes();
        let trim = |b: &[u8]| b[b.iter().take_while(|x| **x == 0).count()..].to_vec();
        fields.push(string(&quantity(u64::from(recid.to_byte()))));
        fields.push(string(&trim(&rs[..32])));
        fields.push(string(&trim(&rs[32..])));
        let mut raw = vec![TX_TYPE];
        raw.extend(encode_list(&fields));
        json!({
            "raw": format!("0x{}", hex::encode(&raw)),
            "hash": format!("0x{}", hex::encode(Keccak256::digest(&raw))),
            "signing_hash": format!("0x{}", hex::encode(signing_hash)),
            "decision": {"effect": "allow"},
        })
    }

    #[test]
    fn body_is_the_documented_transfer() {
        let body: Value = serde_json::from_slice(&body(26)).unwrap();
        let tx = &body["transaction"];
        assert_eq!(tx["chainId"], "0xaa36a7");
        assert_eq!(tx["nonce"], "0x1a");
        assert_eq!(tx["maxFeePerGas"], "0x4a817c800");
        assert_eq!(tx["maxPriorityFeePerGas"], "0x3b9aca00");
        assert_eq!(tx["gas"], "0x5208");
        assert_eq!(tx["value"], "0x1");
        let first: Value = serde_json::from_slice(&super::body(0)).unwrap();
        assert_eq!(first["transaction"]["nonce"], "0x0");
    }

    #[test]
    fn check_accepts_only_the_transfer_asked_for_signed_by_the_key() {
        let key = random_key().unwrap();
        let other = random_key().unwrap();
        let vk = *key.verifying_key();
        for nonce in [0, 1, 127, 128, 300, 1 << 40] {
            check(&signed(&key, nonce), nonce, &vk).unwrap();
        }
        let good = signed(&key, 5);
        assert!(check(&good, 6, &vk).is_err(), "another nonce");
        assert!(check(&signed(&other, 5), 5, &vk).is_err(), "another key");
        let mut bad_hash = good.clone();
        bad_hash["signing_hash"] = json!(format!("0x{}", "00".repeat(32)));
        assert!(check(&bad_hash, 5, &vk).is_err());
        let mut bad_tx_hash = good.clone();
        bad_tx_hash["hash"] = good["signing_hash"].clone();
        assert!(check(&bad_tx_hash, 5, &vk).is_err());
        let mut legacy = good.clone();
        let raw = good["raw"].as_str().unwrap();
        legacy["raw"] = json!(format!("0x01{}", &raw[4..]));
        assert!(check(&legacy, 5, &vk).is_err());
        let mut truncated = good.clone();
        truncated["raw"] = json!(&raw[..raw.len() - 2]);
        assert!(check(&truncated, 5, &vk).is_err());
        assert!(check(&json!({"raw": "0x02"}), 5, &vk).is_err());
    }
}
