//! Replicas at the enclave's boundary: two enclaves of one deployment (one root key, one
//! genesis) over one log kept here as the database keeps it (each number taken once),
//! driven through decide → append → release in the interleavings the tests choose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_bytes::ByteBuf;
use serde_json::{Value, json};
use sha2::Digest as _;
use strongroom_identity::{AnswerSignature, AuditEntry, IdentityKey, answer_request_digest};
use strongroom_protocol::messages::{
    AuditRecord, Call, CompleteUnseal, Effects, ErrorCode, Phase, Request, Response, SealedKey,
};
use support::{Booted, Keys, boot, challenge, code, dev_rules, genesis, read_snapshot, stamp};

const ROOT: [u8; 32] = [0x6b; 32];
const ETH: u128 = 1_000_000_000_000_000_000;

/// The shared log: line `i` is record `i`.
#[derive(Default)]
struct Log(Vec<String>);

impl Log {
    /// Stores a batch if its numbers are the next free ones; false if one is taken.
    fn append(&mut self, records: &[AuditRecord]) -> bool {
        if records.first().map(|r| r.seq) != Some(self.0.len() as u64) {
            return false;
        }
        self.0.extend(records.iter().map(|r| r.line.clone()));
        true
    }

    fn from(&self, seq: u64) -> Vec<AuditRecord> {
        support::records(&self.0)
            .into_iter()
            .filter(|r| r.seq >= seq)
            .collect()
    }
}

/// Boots a replica named `name`: a first boot with the genesis if the log is empty, else
/// from a snapshot of `from` and the log's records after it.
fn join(log: &mut Log, name: &str, from: Option<&Booted>, genesis: &[u8]) -> Booted {
    let booted = boot();
    let envelope = challenge(&booted.enclave, &booted.trusted, &ROOT);
    let snapshot = from.map(|f| read_snapshot(&f.enclave));
    let key_check = from.map(|f| f.enclave.key_check().unwrap().to_vec());
    let mut answer = booted
        .enclave
        .handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: key_check.map(ByteBuf::from),
            snapshot_len: snapshot.as_ref().map(|(_, s)| s.len() as u64),
            genesis: from.is_none().then(|| ByteBuf::from(genesis.to_vec())),
            replica: Some(name.into()),
        }));
    if let Some((_, bytes)) = &snapshot {
        answer = booted.enclave.handle(Request::SnapshotChunk {
            bytes: bytes.clone().into(),
        });
    }
    let Response::ReplayFrom { seq } = answer else {
        panic!("{answer:?}")
    };
    let after = log.from(seq);
    if !after.is_empty() {
        let r = booted
            .enclave
            .handle(Request::ReplayRecords { records: after });
        assert!(matches!(r, Response::ReplayFrom { .. }), "{r:?}");
    }
    // The boot record goes out for appending, and the enclave serves once it is stored.
    let Response::Append(effects) = booted.enclave.handle(Request::FinishBoot) else {
        panic!("a replica's boot record is appended first")
    };
    assert_ne!(booted.enclave.phase(), Phase::Ready);
    let seq = effects.audit[0].seq;
    assert!(log.append(&effects.audit));
    let r = booted.enclave.handle(Request::Appended { seq });
    assert!(matches!(r, Response::Unsealed { .. }), "{r:?}");
    assert_eq!(booted.enclave.phase(), Phase::Ready);
    booted
}

/// A stamped call as a replica's proxy relays it.
fn call(key: &SigningKey, path: &str, body: &Value, blob: Option<&SealedKey>) -> Call {
    let bytes = serde_json::to_vec(body).unwrap();
    Call {
        method: "POST".into(),
        stamp: Some(stamp(key, "POST", path, &bytes)),
        path: path.into(),
        body: bytes.into(),
        key: blob.cloned(),
        keys: Vec::new(),
        audit_stored: None,
    }
}

use strongroom_auth::SigningKey;

/// What a replica's proxy does with a decision: append, or catch up and decide again.
fn see_through(e: &Booted, log: &mut Log, first: Response) -> (u16, Value, Effects) {
    let mut response = first;
    loop {
        match response {
            Response::Answer(a) => {
                let body = serde_json::from_slice(&a.body).unwrap();
                return (a.status, body, a.effects);
            }
            Response::Append(effects) => {
                let seq = effects.audit[0].seq;
                if log.append(&effects.audit) {
                    let Response::Answer(mut a) = e.enclave.handle(Request::Appended { seq })
                    else {
                        panic!("no answer after the append")
                    };
                    a.effects = effects;
                    response = Response::Answer(a);
                } else {
                    let caught = e.enclave.handle(Request::CatchUp {
                        records: log.from(seq),
                    });
                    assert!(matches!(caught, Response::CaughtUp { .. }), "{caught:?}");
                    response = e.enclave.handle(Request::Redecide);
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Feeds a replica the records after where it stands; its position after.
fn catch_up(e: &Booted, log: &Log) -> Response {
    let Response::CaughtUp { next_seq } = e.enclave.handle(Request::CatchUp {
        records: Vec::new(),
    }) else {
        panic!("no position")
    };
    e.enclave.handle(Request::CatchUp {
        records: log.from(next_seq),
    })
}

fn tx(nonce: u64, value: u128) -> Value {
    json!({"transaction": {
        "type": "0x2", "chainId": "0x1", "nonce": format!("0x{nonce:x}"),
        "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "value": format!("0x{value:x}"),
        "gas": "0x5208", "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00",
    }})
}

/// Two replicas and a key made on the first, its blob as the database holds it.
fn two_replicas(keys: &Keys) -> (Log, Booted, Booted, SealedKey) {
    let g = genesis(keys, dev_rules());
    let mut log = Log::default();
    let a = join(&mut log, "a", None, &g);
    let b = join(&mut log, "b", Some(&a), &g);
    let created = a.enclave.handle(Request::Call(call(
        &keys.dev,
        "/v1/keys",
        &json!({"label": "k"}),
        None,
    )));
    let (status, body, effects) = see_through(&a, &mut log, created);
    assert_eq!(status, 201, "{body}");
    let blob = SealedKey {
        id: body["id"].as_str().unwrap().into(),
        sealed: effects.key_created.unwrap().sealed,
    };
    (log, a, b, blob)
}

#[test]
fn interleaved_replicas_keep_velocity_exact_and_decide_a_request_once() {
    let keys = Keys::new();
    let (mut log, a, b, blob) = two_replicas(&keys);
    let path = format!("/v1/keys/{}/sign/transaction", blob.id);
    let mut allowed = 0;
    let mut denied = 0;
    // 1 ETH each under 5 ETH a day: both replicas hold a decision at once every round, and
    // the one that appends second decides again on what the first spent.
    for round in 0..5u64 {
        let from_a = a.enclave.handle(Request::Call(call(
            &keys.dev,
            &path,
            &tx(2 * round, ETH),
            Some(&blob),
        )));
        let from_b = b.enclave.handle(Request::Call(call(
            &keys.dev,
            &path,
            &tx(2 * round + 1, ETH),
            Some(&blob),
        )));
        assert!(matches!(from_a, Response::Append(_)) && matches!(from_b, Response::Append(_)));
        let (first, second) = if round % 2 == 0 {
            ((&a, from_a), (&b, from_b))
        } else {
            ((&b, from_b), (&a, from_a))
        };
        for (replica, response) in [first, second] {
            match see_through(replica, &mut log, response).0 {
                200 => allowed += 1,
                403 => denied += 1,
                s => panic!("status {s}"),
            }
        }
    }
    assert_eq!(
        (allowed, denied),
        (5, 5),
        "exactly the limit across both replicas"
    );

    // A request one replica decided is refused by the other, once it has the record.
    let request = call(
        &keys.dev,
        &format!("/v1/keys/{}/sign/digest", blob.id),
        &json!({"digest": format!("0x{}", "ab".repeat(32))}),
        Some(&blob),
    );
    let (status, _, _) = see_through(
        &a,
        &mut log,
        a.enclave.handle(Request::Call(request.clone())),
    );
    assert_eq!(status, 200);
    let next = log.0.len() as u64;
    catch_up(&b, &log);
    let (status, body, _) = see_through(&b, &mut log, b.enclave.handle(Request::Call(request)));
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another replica"),
        "{body}"
    );
    assert_eq!(log.0.len() as u64, next, "the refusal decided nothing");
}

#[test]
fn nothing_is_released_before_its_append() {
    let keys = Keys::new();
    let (mut log, a, _b, blob) = two_replicas(&keys);
    let path = format!("/v1/keys/{}/sign/digest", blob.id);
    let request = call(
        &keys.dev,
        &path,
        &json!({"digest": format!("0x{}", "cd".repeat(32))}),
        Some(&blob),
    );
    let digest = answer_request_digest(
        &request.method,
        &request.path,
        &request.body,
        request.stamp.as_deref(),
    );
    let Response::Append(effects) = a.enclave.handle(Request::Call(request)) else {
        panic!("a decision goes out for appending first")
    };
    // No signature in what leaves the enclave before the append: its record names the
    // signature's SHA-256 instead.
    let entry = AuditEntry::parse_line(&effects.audit[0].line).unwrap();
    let output = entry.fields().unwrap()["output"].clone();
    assert!(output.get("signature").is_none(), "{output}");
    let committed = output["signature_sha256"].as_str().unwrap().to_string();
    let seq = effects.audit[0].seq;
    // While it waits, another decision of this replica is refused, not stacked.
    let other = call(
        &keys.dev,
        &path,
        &json!({"digest": format!("0x{}", "ce".repeat(32))}),
        Some(&blob),
    );
    let Response::Answer(busy) = a.enclave.handle(Request::Call(other)) else {
        panic!()
    };
    assert_eq!(busy.status, 503);
    assert_eq!(
        code(a.enclave.handle(Request::Appended { seq: seq + 1 })),
        ErrorCode::WrongPhase
    );
    assert_eq!(
        code(a.enclave.handle(Request::Redecide)),
        ErrorCode::WrongPhase
    );
    // Appended: the answer, signed, naming the head at its own record.
    assert!(log.append(&effects.audit));
    let Response::Answer(answer) = a.enclave.handle(Request::Appended { seq }) else {
        panic!()
    };
    let signature = AnswerSignature::parse(answer.signature.as_deref().unwrap()).unwrap();
    signature
        .verify(&digest, answer.status, &answer.body)
        .unwrap();
    assert_eq!(signature.head.seq, seq);
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    let released = body["signature"].as_str().unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(released.as_bytes())),
        committed
    );
    assert_eq!(
        code(a.enclave.handle(Request::Appended { seq })),
        ErrorCode::WrongPhase,
        "released once"
    );
    // Abandoned: never released.
    let third = call(
        &keys.dev,
        &path,
        &json!({"digest": format!("0x{}", "cf".repeat(32))}),
        Some(&blob),
    );
    let Response::Append(effects) = a.enclave.handle(Request::Call(third)) else {
        panic!()
    };
    assert!(matches!(
        a.enclave.handle(Request::Abandon),
        Response::CaughtUp { .. }
    ));
    assert_eq!(
        code(a.enclave.handle(Request::Appended {
            seq: effects.audit[0].seq
        })),
        ErrorCode::WrongPhase
    );
}

#[test]
fn a_record_no_identity_in_force_signed_is_refused_in_catch_up() {
    let keys = Keys::new();
    let (log, a, _b, _) = two_replicas(&keys);
    let next = log.0.len() as u64;
    let last = AuditEntry::parse_line(log.0.last().unwrap()).unwrap();
    let stranger = IdentityKey::from_seed(&[0x77; 32]);
    let (entry, _) = AuditEntry::build(
        &stranger,
        next,
        &last.hash(),
        support::now(),
        "key_destroyed",
        serde_json::Map::new(),
    )
    .unwrap();
    let forged = AuditRecord {
        seq: next,
        line: entry.to_line(),
    };
    assert_eq!(
        code(a.enclave.handle(Request::CatchUp {
            records: vec![forged]
        })),
        ErrorCode::BlobRejected
    );
    let Response::CaughtUp { next_seq } = a.enclave.handle(Request::CatchUp {
        records: Vec::new(),
    }) else {
        panic!()
    };
    assert_eq!(next_seq, next, "the replica stays where it was");
}

#[test]
fn a_later_boot_of_a_replica_name_retires_the_earlier_one() {
    let keys = Keys::new();
    let (mut log, a, b, _) = two_replicas(&keys);
    let g = genesis(&keys, dev_rules());
    let a2 = join(&mut log, "a", Some(&b), &g);
    let Response::CaughtUp { next_seq } = a.enclave.handle(Request::CatchUp {
        records: Vec::new(),
    }) else {
        panic!()
    };
    assert_eq!(
        code(a.enclave.handle(Request::CatchUp {
            records: log.from(next_seq)
        })),
        ErrorCode::NotReady
    );
    assert_eq!(
        a.enclave.phase(),
        Phase::AwaitingRootKey,
        "the replaced enclave boots again"
    );
    assert_eq!(a2.enclave.phase(), Phase::Ready);
    // The other replica keeps serving with both in view.
    let Response::CaughtUp { next_seq } = b.enclave.handle(Request::CatchUp {
        records: Vec::new(),
    }) else {
        panic!()
    };
    assert!(matches!(
        b.enclave.handle(Request::CatchUp {
            records: log.from(next_seq)
        }),
        Response::CaughtUp { .. }
    ));
}

#[test]
fn an_approved_request_completed_by_a_replica_keeps_only_a_commitment_until_read_with_its_key() {
    let keys = Keys::new();
    let (mut log, a, b, blob) = two_replicas(&keys);
    // 10 ETH on Sepolia waits for an approver (the development policy's big-sepolia rule).
    let path = format!("/v1/keys/{}/sign/transaction", blob.id);
    let mut big = tx(7, 10 * ETH);
    big["transaction"]["chainId"] = json!("0xaa36a7");
    let held = a
        .enclave
        .handle(Request::Call(call(&keys.dev, &path, &big, Some(&blob))));
    let (status, body, _) = see_through(&a, &mut log, held);
    assert_eq!(status, 202, "{body}");
    let rid = body["request"]["id"].as_str().unwrap().to_string();
    let digest = body["request"]["intent_digest"].clone();
    // The approver uses the other replica, which completes and signs it.
    let approve = call(
        &keys.ops,
        &format!("/v1/requests/{rid}/approve"),
        &json!({ "intent_digest": digest }),
        Some(&blob),
    );
    catch_up(&b, &log);
    let Response::Append(effects) = b.enclave.handle(Request::Call(approve)) else {
        panic!("the approval goes out for appending")
    };
    // What leaves before the append holds no signed transaction, only its hash.
    let completed = effects
        .audit
        .iter()
        .map(|r| AuditEntry::parse_line(&r.line).unwrap().fields().unwrap())
        .find(|f| f["kind"] == "request_completed")
        .expect("a request_completed record");
    assert_eq!(completed["signed"]["withheld"], true, "{completed:?}");
    assert!(completed["signed"].get("raw").is_none(), "{completed:?}");
    let seq = effects.audit[0].seq;
    assert!(log.append(&effects.audit));
    let Response::Answer(answer) = b.enclave.handle(Request::Appended { seq }) else {
        panic!()
    };
    let approved: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(answer.status, 200, "{approved}");
    let raw = approved["result"]["raw"].as_str().unwrap().to_string();
    // The requester reads it on the first replica: with the key's blob, the same signed
    // transaction (signed again, checked against the record); without, the commitment.
    let Response::CaughtUp { next_seq } = a.enclave.handle(Request::CatchUp {
        records: Vec::new(),
    }) else {
        panic!()
    };
    a.enclave.handle(Request::CatchUp {
        records: log.from(next_seq),
    });
    let read = |key: Option<&SealedKey>| {
        let Response::Answer(r) = a.enclave.handle(Request::Call(Call {
            method: "GET".into(),
            path: format!("/v1/requests/{rid}"),
            body: Vec::new().into(),
            stamp: None,
            key: key.cloned(),
            keys: Vec::new(),
            audit_stored: None,
        })) else {
            panic!()
        };
        let body = serde_json::from_slice::<Value>(&r.body).unwrap();
        assert_eq!(r.status, 200, "{body}");
        body
    };
    let whole = read(Some(&blob));
    assert_eq!(whole["request"]["result"]["raw"], raw.as_str(), "{whole}");
    let committed = read(None);
    assert_eq!(
        committed["request"]["result"]["withheld"], true,
        "{committed}"
    );
    assert!(committed["request"]["result"].get("raw").is_none());
}
