//! `ChainVerifier::push_lines`, what `strongroom audit verify` runs on a chain read from a
//! file or a server: a valid chain made here (a first boot, decisions, a second boot of
//! another identity, more decisions) changed as the input says — a byte of a line
//! replaced, a line dropped, repeated or moved — or the input's own lines; fed in chunks
//! of the sizes the input chooses. The verifier must answer with a report or a break and
//! never panic; the chain as made must verify.
//!
//! The attestation check stands in for AWS's: a "document" is the nonce (32 bytes)
//! followed by the encoded user data, so boots the fuzzer builds can pass it.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use strongroom_identity::{AuditEntry, ChainVerifier, GENESIS_PREV, IdentityKey, UserData};

/// The stand-in attestation check: nonce ‖ user data.
fn check(doc: &[u8], nonce: &[u8; 32], _time: u64) -> Result<UserData, String> {
    let (claimed, user_data) = doc.split_at_checked(32).ok_or("document too short")?;
    if claimed != nonce {
        return Err("nonce differs".into());
    }
    UserData::decode(user_data).map_err(|e| e.to_string())
}

fn fields(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The valid chain's lines.
fn chain() -> &'static [String] {
    static CHAIN: OnceLock<Vec<String>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let mut lines = Vec::new();
        let mut prev = GENESIS_PREV;
        let mut seq = 0;
        for (boot, seed) in [[1u8; 32], [2u8; 32]].iter().enumerate() {
            let key = IdentityKey::from_seed(seed);
            let user_data = UserData {
                key_check: [7; 16],
                genesis: [8; 32],
                admins: [9; 32],
                policy: [10; 32],
                identity: key.public(),
                boot_seq: seq,
                replica: strongroom_identity::ReplicaName::SINGLE,
            };
            let mut doc = prev.to_vec();
            doc.extend_from_slice(&user_data.encode());
            let boot_fields = fields(json!({
                "identity": key.public().to_string(),
                "attestation": base64::engine::general_purpose::STANDARD.encode(doc),
                "first_boot": boot == 0,
            }));
            let mut push = |kind: &str, f: Map<String, Value>, seq: &mut u64| {
                let (entry, hash) =
                    AuditEntry::build(&key, *seq, &prev, 1_800_000_000 + *seq, kind, f)
                        .expect("a valid entry");
                lines.push(entry.to_line());
                prev = hash;
                *seq += 1;
            };
            push("boot", boot_fields, &mut seq);
            for i in 0..3 {
                push("decision", fields(json!({"n": i})), &mut seq);
            }
        }
        lines
    })
}

/// Feeds `lines` in chunks of the sizes `sizes` names (1–4 lines each, cycling).
fn verify(lines: &[Vec<u8>], sizes: &[u8]) -> bool {
    let mut verifier = ChainVerifier::new(check);
    let mut at = 0;
    let mut i = 0;
    while at < lines.len() {
        let size = usize::from(sizes.get(i % sizes.len().max(1)).copied().unwrap_or(0) % 4) + 1;
        let end = (at + size).min(lines.len());
        if verifier.push_lines(&lines[at..end]).is_err() {
            return false;
        }
        at = end;
        i += 1;
    }
    verifier.finish().is_ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (sizes, rest) = rest.split_at(rest.len().min(4));
    let mut lines: Vec<Vec<u8>> = chain().iter().map(|l| l.clone().into_bytes()).collect();
    match mode % 5 {
        0 => assert!(verify(&lines, sizes), "the chain as made verifies"),
        1 => {
            // Replace bytes: (line, offset, value) triples.
            for t in rest.chunks_exact(3) {
                let line = usize::from(t[0]) % lines.len();
                let offset = usize::from(t[1]) % lines[line].len();
                lines[line][offset] = t[2];
            }
            verify(&lines, sizes);
        }
        2 => {
            // Drop, repeat or move lines: (op, from, to) triples.
            for t in rest.chunks_exact(3) {
                if lines.is_empty() {
                    break;
                }
                let from = usize::from(t[1]) % lines.len();
                let to = usize::from(t[2]) % lines.len();
                match t[0] % 3 {
                    0 => {
                        lines.remove(from);
                    }
                    1 => {
                        let line = lines[from].clone();
                        lines.insert(to, line);
                    }
                    _ => lines.swap(from, to),
                }
            }
            verify(&lines, sizes);
        }
        3 => {
            // The valid chain, then the input's lines after it.
            lines.extend(rest.split(|b| *b == b'\n').map(<[u8]>::to_vec));
            verify(&lines, sizes);
        }
        _ => {
            let own: Vec<Vec<u8>> = rest.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
            verify(&own, sizes);
        }
    }
});
