//! The audit chain's entry format.
//!
//! Every decision the enclave makes appends one entry. An entry is a compact JSON object
//! whose keys are sorted, always holding
//! `{"kind": str, "prev": hex32, "seq": u64, "time": u64, …}`: `seq` counts from 0 (the
//! first boot), `prev` is the previous entry's [`entry_hash`] (32 zero bytes for entry 0),
//! `time` the enclave's clock in Unix seconds. The signature is the identity key's Ed25519
//! signature over [`entry_hash`] of the exact entry bytes.
//!
//! Entries are stored and streamed as one JSON line each,
//! `{"entry":<the entry bytes, verbatim>,"signature":"<128 hex>"}`; a verifier hashes the
//! entry exactly as it appears in the line, so any change to it (even whitespace) shows.
//!
//! Kinds and their fields (the enclave's log records: each carries what the enclave needs
//! to apply its change again at boot). Their types are `strongroom_log::Record`, one struct
//! a kind, shared by the enclave and `strongroom audit verify`, which reads every entry it
//! verifies as one; this crate does not depend on them, and checks only what every entry
//! has and the `boot` entry ([`BootEntry`]). In short:
//! - `boot` ([`BootEntry`]): `identity` (hex public key of the identity that signs from
//!   here on), `attestation` (base64 attestation document whose nonce is this entry's
//!   `prev` and whose user data carries `identity` and `boot_seq`: the hand-over from one
//!   boot's identity to the next is signed by the Nitro hypervisor's attestation, checked
//!   against the expected PCRs), `first_boot` (bool), `identity_tag` (HMAC of the identity
//!   under a key derived from the root key), `resumed` (later boots: the snapshot position
//!   and how many records were replayed on it).
//! - `decision`: `request` (hex answer-request digest of the call), `principal`,
//!   `stamp_key`, `action`, `key` (key id or null), `intent` (the decoded intent),
//!   `result` (`allow` | `deny` | `needs_approval` | `time_locked`), `rule`, `reason`, and
//!   `output` (signature, transaction hash) for signatures, `request_id` and `held`
//!   (`key_label`, base64 `body`, `intent_digest`) for requests that wait.
//! - `request_approved`, `request_completed`, `request_cancelled`: `request_id`, who, and
//!   for completion the request's `action`, `key`, `intent`, the new `result`, `rule`,
//!   `reason`, and for a signature `output` and `signed` (the answer kept for collection).
//! - `proposal` (with the proposed `document` and the `base_admins_digest` and
//!   `base_policy_digest` it was made against), `proposal_approved`, `proposal_cancelled`,
//!   `policy_changed`: `proposal` (id), `change`, `digest`, who, and for a change the new
//!   `policy_digest`, `admins_digest` and `discarded_proposals`.
//! - `key_created`, `key_destroyed`: `key`, `address`, `label`, who.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::IdentityError;
use crate::key::{IdentityKey, IdentityPublic};

/// Domain tag of [`entry_hash`].
pub const AUDIT_DOMAIN: &[u8] = b"strongroom/v1/audit-entry";
/// Domain tag of a [`Checkpoint`]'s signed message.
pub const CHECKPOINT_DOMAIN: &[u8] = b"strongroom/v1/audit-checkpoint";
/// The `prev` of entry 0.
pub const GENESIS_PREV: [u8; 32] = [0; 32];
/// Largest entry (the JSON object) accepted. Most are a few hundred bytes and a boot entry
/// with its attestation document ~7 KB; the largest is a signing request held for
/// approvals, which carries the request body (at most 256 KiB, base64) so the log alone
/// can rebuild the enclave's state.
pub const MAX_ENTRY_LEN: usize = 512 * 1024;

const RESERVED: [&str; 5] = ["kind", "prev", "seq", "signer", "time"];

/// The fields of a `boot` entry, shared by the enclave that writes and replays them and the
/// chain verifier that checks them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootEntry {
    /// Hex public key of the identity that signs this entry and the ones after it.
    pub identity: String,
    /// Base64 attestation document binding the identity (user data) to this point of the
    /// chain (nonce: the previous entry's hash) and to the measured image.
    pub attestation: String,
    /// Whether this is the deployment's first boot.
    pub first_boot: bool,
    /// The replica this boot is of (`""`, left out: the deployment's single enclave). Its
    /// identity replaces the replica's earlier one only ([`crate::Signers`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub replica: String,
    /// Hex HMAC-SHA256 of the identity under a key derived from the root key: proof, for a
    /// later boot replaying this entry, that the identity belongs to the deployment (only
    /// the enclave can check it; verifiers rely on the attestation document instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_tag: Option<String>,
    /// Where this boot's state came from (later boots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed: Option<Resumed>,
}

/// What a later boot started from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    /// The snapshot's position: the sequence number of the first record after it.
    pub snapshot_next_seq: u64,
    /// Hex hash of the entry the snapshot ends with.
    pub snapshot_head: String,
    /// How many records were replayed on top of the snapshot.
    pub replayed: u64,
}

/// SHA-256(len‖domain ‖ entry bytes), the length a u64 big-endian.
pub fn entry_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((AUDIT_DOMAIN.len() as u64).to_be_bytes());
    h.update(AUDIT_DOMAIN);
    h.update(bytes);
    h.finalize().into()
}

/// One signed entry: the exact JSON bytes and the signature over their hash.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The entry, a compact JSON object.
    pub bytes: Vec<u8>,
    /// Ed25519 signature over [`entry_hash`]`(bytes)`.
    pub signature: [u8; 64],
}

impl std::fmt::Debug for AuditEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditEntry({})", String::from_utf8_lossy(&self.bytes))
    }
}

/// The fields every entry has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Position in the chain, from 0.
    pub seq: u64,
    /// The previous entry's hash.
    pub prev: [u8; 32],
    /// Enclave time, Unix seconds.
    pub time: u64,
    /// What happened.
    pub kind: String,
    /// The identity that signed it (absent from entries written before entries named
    /// their signer: those are the latest boot's).
    pub signer: Option<[u8; 32]>,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    seq: u64,
    #[serde(borrow)]
    prev: &'a str,
    time: u64,
    #[serde(borrow)]
    kind: &'a str,
    #[serde(borrow, default)]
    signer: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    entry: &'a RawValue,
    #[serde(borrow)]
    signature: &'a str,
}

fn hex32(what: &'static str, text: &str) -> Result<[u8; 32], IdentityError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out)
        .map_err(|_| IdentityError::malformed(what, "not 64 hex digits"))?;
    Ok(out)
}

impl AuditEntry {
    /// Builds and signs entry `seq` after the entry whose hash is `prev`. `fields` must
    /// not use the reserved names `kind`, `prev`, `seq`, `signer`, `time`. Returns the entry and
    /// its hash (the next entry's `prev`).
    pub fn build(
        key: &IdentityKey,
        seq: u64,
        prev: &[u8; 32],
        time: u64,
        kind: &str,
        mut fields: Map<String, Value>,
    ) -> Result<(Self, [u8; 32]), IdentityError> {
        if let Some(name) = RESERVED.iter().find(|n| fields.contains_key(**n)) {
            return Err(IdentityError::malformed(
                "audit entry",
                format!("field {name:?} is reserved"),
            ));
        }
        fields.insert("kind".into(), kind.into());
        fields.insert("prev".into(), hex::encode(prev).into());
        fields.insert("seq".into(), seq.into());
        fields.insert("signer".into(), key.public().to_string().into());
        fields.insert("time".into(), time.into());
        // serde_json's map is ordered by key, so the bytes are canonical for the content.
        let bytes = serde_json::to_vec(&Value::Object(fields))
            .map_err(|e| IdentityError::malformed("audit entry", e.to_string()))?;
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(IdentityError::TooLarge {
                what: "audit entry",
                len: bytes.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        let hash = entry_hash(&bytes);
        let signature = key.sign(&hash);
        Ok((Self { bytes, signature }, hash))
    }

    /// This entry's hash.
    pub fn hash(&self) -> [u8; 32] {
        entry_hash(&self.bytes)
    }

    /// Reads the common fields.
    pub fn header(&self) -> Result<EntryHeader, IdentityError> {
        let raw: RawHeader<'_> = serde_json::from_slice(&self.bytes)
            .map_err(|e| IdentityError::malformed("audit entry", e.to_string()))?;
        Ok(EntryHeader {
            seq: raw.seq,
            prev: hex32("audit entry prev", raw.prev)?,
            time: raw.time,
            kind: raw.kind.to_string(),
            signer: raw
                .signer
                .map(|s| hex32("audit entry signer", s))
                .transpose()?,
        })
    }

    /// The whole entry as JSON.
    pub fn fields(&self) -> Result<Map<String, Value>, IdentityError> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| IdentityError::malformed("audit entry", e.to_string()))
    }

    /// Checks the signature under `identity`.
    pub fn verify(&self, identity: &IdentityPublic) -> Result<(), IdentityError> {
        identity.verify("audit entry", &self.hash(), &self.signature)
    }

    /// The stored and streamed form: one line of JSON (no newline).
    pub fn to_line(&self) -> String {
        let mut line = String::with_capacity(self.bytes.len() + 160);
        line.push_str("{\"entry\":");
        line.push_str(&String::from_utf8_lossy(&self.bytes));
        line.push_str(",\"signature\":\"");
        line.push_str(&hex::encode(self.signature));
        line.push_str("\"}");
        line
    }

    /// Reads one line of [`to_line`](Self::to_line)'s form; the entry bytes are kept
    /// exactly as they appear in the line.
    pub fn parse_line(line: &str) -> Result<Self, IdentityError> {
        if line.len() > MAX_ENTRY_LEN + 256 {
            return Err(IdentityError::TooLarge {
                what: "audit line",
                len: line.len(),
                max: MAX_ENTRY_LEN + 256,
            });
        }
        let parsed: Line<'_> = serde_json::from_str(line)
            .map_err(|e| IdentityError::malformed("audit line", e.to_string()))?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(parsed.signature, &mut signature).map_err(|_| {
            IdentityError::malformed("audit line", "signature is not 128 hex digits")
        })?;
        Ok(Self {
            bytes: parsed.entry.get().as_bytes().to_vec(),
            signature,
        })
    }
}

/// A signed statement of the chain's head: entries `0..=seq` exist and entry `seq` has
/// hash `hash`. An auditor who keeps checkpoints detects a chain later cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The head entry's sequence number.
    pub seq: u64,
    /// The head entry's hash.
    pub hash: [u8; 32],
    /// Enclave time of the checkpoint.
    pub time: u64,
    /// The identity that signed it.
    pub identity: IdentityPublic,
    /// Ed25519 signature over [`Checkpoint::message`].
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// SHA-256(len‖domain ‖ seq u64 BE ‖ hash ‖ time u64 BE).
    pub fn message(seq: u64, hash: &[u8; 32], time: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update((CHECKPOINT_DOMAIN.len() as u64).to_be_bytes());
        h.update(CHECKPOINT_DOMAIN);
        h.update(seq.to_be_bytes());
        h.update(hash);
        h.update(time.to_be_bytes());
        h.finalize().into()
    }

    /// Signs a checkpoint.
    pub fn sign(key: &IdentityKey, seq: u64, hash: [u8; 32], time: u64) -> Self {
        Self {
            seq,
            hash,
            time,
            identity: key.public(),
            signature: key.sign(&Self::message(seq, &hash, time)),
        }
    }

    /// Checks the signature (under the identity it names; whether that identity is
    /// trusted is the caller's check).
    pub fn verify(&self) -> Result<(), IdentityError> {
        self.identity.verify(
            "checkpoint",
            &Self::message(self.seq, &self.hash, self.time),
            &self.signature,
        )
    }

    /// `{"seq", "hash", "time", "identity", "signature"}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "seq": self.seq,
            "hash": hex::encode(self.hash),
            "time": self.time,
            "identity": self.identity.to_string(),
            "signature": hex::encode(self.signature),
        })
    }

    /// Reads [`to_json`](Self::to_json)'s form.
    pub fn from_json(v: &Value) -> Result<Self, IdentityError> {
        const WHAT: &str = "checkpoint";
        let text = |name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| IdentityError::malformed(WHAT, format!("{name} missing")))
        };
        let number = |name: &str| {
            v.get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| IdentityError::malformed(WHAT, format!("{name} missing")))
        };
        let mut signature = [0u8; 64];
        hex::decode_to_slice(text("signature")?, &mut signature)
            .map_err(|_| IdentityError::malformed(WHAT, "signature is not 128 hex digits"))?;
        Ok(Self {
            seq: number("seq")?,
            hash: hex32("checkpoint hash", text("hash")?)?,
            time: number("time")?,
            identity: IdentityPublic::from_hex(text("identity")?)?,
            signature,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn entry(seq: u64, prev: &[u8; 32]) -> (AuditEntry, [u8; 32]) {
        let key = IdentityKey::from_seed(&[9; 32]);
        let Value::Object(fields) = json!({"principal": "desk", "result": "allowed"}) else {
            unreachable!()
        };
        AuditEntry::build(&key, seq, prev, 1_700_000_000 + seq, "decision", fields).unwrap()
    }

    #[test]
    fn builds_sorted_compact_json_and_verifies() {
        let (e, hash) = entry(0, &GENESIS_PREV);
        let text = String::from_utf8(e.bytes.clone()).unwrap();
        assert!(
            text.starts_with("{\"kind\":\"decision\",\"prev\":\"0000"),
            "{text}"
        );
        assert_eq!(e.hash(), hash);
        e.verify(&IdentityKey::from_seed(&[9; 32]).public())
            .unwrap();
        let h = e.header().unwrap();
        assert_eq!(
            (h.seq, h.prev, h.kind.as_str()),
            (0, GENESIS_PREV, "decision")
        );
    }

    #[test]
    fn line_round_trip_keeps_the_exact_bytes() {
        let (e, _) = entry(5, &[1; 32]);
        let line = e.to_line();
        assert_eq!(AuditEntry::parse_line(&line).unwrap(), e);
        // Reformatting the entry inside the line changes its bytes, so its hash.
        let spaced = line.replacen("\"kind\":", "\"kind\": ", 1);
        let reread = AuditEntry::parse_line(&spaced).unwrap();
        assert_ne!(reread.hash(), e.hash());
        assert!(
            reread
                .verify(&IdentityKey::from_seed(&[9; 32]).public())
                .is_err()
        );
    }

    #[test]
    fn an_edited_entry_fails_its_signature() {
        let (e, _) = entry(1, &[1; 32]);
        let edited = AuditEntry::parse_line(&e.to_line().replace("allowed", "denied!")).unwrap();
        assert!(
            edited
                .verify(&IdentityKey::from_seed(&[9; 32]).public())
                .is_err()
        );
    }

    #[test]
    fn reserved_fields_are_refused() {
        let key = IdentityKey::from_seed(&[9; 32]);
        let Value::Object(fields) = json!({"seq": 7}) else {
            unreachable!()
        };
        assert!(AuditEntry::build(&key, 0, &GENESIS_PREV, 0, "x", fields).is_err());
    }

    #[test]
    fn checkpoint_round_trip_and_tamper() {
        let key = IdentityKey::from_seed(&[9; 32]);
        let c = Checkpoint::sign(&key, 41, [7; 32], 1_700_000_000);
        let back = Checkpoint::from_json(&c.to_json()).unwrap();
        assert_eq!(back, c);
        back.verify().unwrap();
        let mut moved = back;
        moved.seq = 40;
        assert!(moved.verify().is_err());
    }

    #[test]
    fn known_answer() {
        // Recomputed independently in tests/interop/identity_vectors.py.
        let expected = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/audit_vectors.txt"
        ))
        .unwrap();
        let got = format!(
            "entry_hash={}\ncheckpoint_message={}\n",
            hex::encode(entry_hash(b"{\"kind\":\"boot\"}")),
            hex::encode(Checkpoint::message(3, &[0xab; 32], 1_700_000_000))
        );
        assert_eq!(got, expected);
    }

    proptest! {
        #[test]
        fn parse_line_never_panics(s in ".{0,400}") {
            let _ = AuditEntry::parse_line(&s);
        }
    }
}
