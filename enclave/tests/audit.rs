//! The audit chain as the enclave writes it: every decision appended in order, signed by
//! the boot's identity, linked by hashes across reboots, each boot handing over to its new
//! identity with an attestation document bound to the chain; and the enclave refuses to go
//! on deciding when the proxy stops storing entries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};
use strongroom_attestation::{Expectations, verify};
use strongroom_identity::{
    AnswerSignature, AuditEntry, Checkpoint, GENESIS_PREV, IdentityPublic, UserData,
    answer_request_digest,
};
use strongroom_protocol::messages::{Call, ErrorCode, Request, Response, SealedKey};
use support::{Keys, Proxy, code, dev_rules, genesis, policy, stamp};

const ROOT: [u8; 32] = [0x5a; 32];
const ETH: u128 = 1_000_000_000_000_000_000;

fn tx(chain_id: u64, nonce: u64, value_wei: u128) -> Value {
    json!({"transaction": {
        "type": "0x2", "chainId": format!("0x{chain_id:x}"), "nonce": format!("0x{nonce:x}"),
        "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "value": format!("0x{value_wei:x}"),
        "gas": "0x5208", "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00",
    }})
}

fn digest_body(byte: u8) -> Value {
    json!({"digest": format!("0x{}", format!("{byte:02x}").repeat(32))})
}

/// Checks the whole chain the way an auditor would, with nothing but the lines and the
/// boots' attestation roots: sequence, hash links, signatures, and each boot's hand-over.
/// Returns the entries' JSON.
fn check_chain(proxy: &Proxy) -> Vec<serde_json::Map<String, Value>> {
    let mut prev = GENESIS_PREV;
    let mut identity: Option<IdentityPublic> = None;
    let mut boots = 0;
    let mut pinned: Option<([u8; 16], [u8; 32])> = None;
    let mut out = Vec::new();
    for (i, line) in proxy.audit.iter().enumerate() {
        let entry = AuditEntry::parse_line(line).unwrap();
        let header = entry.header().unwrap();
        assert_eq!(header.seq, i as u64);
        assert_eq!(header.prev, prev, "entry {i} links to its predecessor");
        let fields = entry.fields().unwrap();
        if header.kind == "boot" {
            let named = IdentityPublic::from_hex(fields["identity"].as_str().unwrap()).unwrap();
            let document = base64::engine::general_purpose::STANDARD
                .decode(fields["attestation"].as_str().unwrap())
                .unwrap();
            let verified = verify(
                &document,
                &Expectations::new(SystemTime::now())
                    .root(proxy.roots[boots].clone())
                    .nonce(prev.to_vec())
                    .max_age(Duration::from_secs(600)),
            )
            .unwrap();
            let user_data = UserData::decode(&verified.document.user_data.unwrap()).unwrap();
            assert_eq!(
                user_data.identity, named,
                "the document hands over to this identity"
            );
            let deployment = (user_data.key_check, user_data.genesis);
            assert_eq!(*pinned.get_or_insert(deployment), deployment);
            assert_eq!(fields["first_boot"], boots == 0);
            identity = Some(named);
            boots += 1;
        }
        entry
            .verify(&identity.expect("entry 0 is a boot"))
            .unwrap_or_else(|e| panic!("entry {i}: {e}"));
        prev = entry.hash();
        out.push(fields);
    }
    assert_eq!(boots, proxy.roots.len());
    out
}

#[test]
fn every_decision_is_recorded_in_order_across_three_boots() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    let id = proxy.create_key(&keys.dev, "treasury")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let signed = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/keys/{id}/sign/digest"),
        &digest_body(0x11),
    );
    assert_eq!(signed.status, 200);
    let tx_path = format!("/v1/keys/{id}/sign/transaction");
    let denied = proxy.call(&keys.dev, "POST", &tx_path, &tx(1, 0, 2 * ETH));
    assert_eq!(denied.status, 403);
    let pending = proxy.call(&keys.dev, "POST", &tx_path, &tx(11155111, 1, 10 * ETH));
    assert_eq!(pending.status, 202);
    let rid = pending.body["request"]["id"].as_str().unwrap().to_string();
    let intent_digest = pending.body["request"]["intent_digest"].clone();
    let approved = proxy.call(
        &keys.ops,
        "POST",
        &format!("/v1/requests/{rid}/approve"),
        &json!({ "intent_digest": intent_digest }),
    );
    assert_eq!(approved.status, 200, "{:?}", approved.body);

    proxy.restart(&ROOT);
    let r = proxy.call(
        &keys.dev,
        "POST",
        "/v1/policy/proposals",
        &json!({"policy": policy(&keys, dev_rules())}),
    );
    assert_eq!(r.status, 201);
    let pid = r.body["proposal"]["id"].as_str().unwrap().to_string();
    let digest = r.body["proposal"]["digest"].clone();
    for admin in &keys.admins[..2] {
        let r = proxy.call(
            admin,
            "POST",
            &format!("/v1/policy/proposals/{pid}/approve"),
            &json!({ "digest": digest }),
        );
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let destroyed = proxy.call(&keys.dev, "DELETE", &format!("/v1/keys/{id}"), &Value::Null);
    assert_eq!(destroyed.status, 200, "{:?}", destroyed.body);
    // Reads and refused stamps decide nothing and add nothing.
    let before = proxy.audit.len();
    proxy.raw("GET", "/v1/policy", b"", None);
    proxy.raw("POST", &tx_path, b"{}", None);
    assert_eq!(proxy.audit.len(), before);

    proxy.restart(&ROOT);
    let entries = check_chain(&proxy);
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "boot",
            "decision",
            "key_created",
            "decision",
            "decision",
            "decision",
            "request_approved",
            "request_completed",
            "boot",
            "proposal",
            "proposal_approved",
            "proposal_approved",
            "policy_changed",
            "decision",
            "key_destroyed",
            "boot",
        ]
    );
    // The allowed digest: who, which key, the intent, the rule, and the signature given.
    let e = &entries[3];
    assert_eq!(
        (
            &e["principal"],
            &e["key"],
            &e["action"],
            &e["result"],
            &e["rule"]
        ),
        (
            &json!("dev"),
            &json!(id),
            &json!("sign_digest"),
            &json!("allow"),
            &json!("dev-digests")
        )
    );
    assert_eq!(e["output"]["signature"], signed.body["signature"]);
    let request = answer_request_digest(
        "POST",
        &format!("/v1/keys/{id}/sign/digest"),
        &serde_json::to_vec(&digest_body(0x11)).unwrap(),
        None,
    );
    assert_ne!(
        e["request"],
        hex::encode(request),
        "the digest covers the stamp too"
    );
    // The denial names its rule and reason; the intent is the decoded transaction.
    let e = &entries[4];
    assert_eq!(
        (&e["result"], &e["rule"]),
        (&json!("deny"), &json!("dev-transactions"))
    );
    assert_eq!(e["intent"]["kind"], "transaction");
    assert_eq!(e["intent"]["chain_id"], 1);
    assert_eq!(e["reason"], denied.body["error"]["decision"]["reason"]);
    // Pending, then approved and signed.
    assert_eq!(entries[5]["result"], "needs_approval");
    assert_eq!(entries[5]["request_id"], json!(rid));
    assert_eq!(entries[6]["principal"], "ops");
    assert_eq!(entries[7]["result"], "allow");
    assert_eq!(
        entries[7]["output"]["hash"],
        approved.body["result"]["hash"]
    );
    // The policy change names the new digests.
    assert_eq!(entries[11]["applied"], true);
    assert!(entries[12]["policy_digest"].as_str().unwrap().len() == 64);
    assert_eq!(entries[14]["key"], json!(id));
}

#[test]
fn the_head_checkpoint_and_key_listing_are_signed_answers() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    let a = proxy.create_key(&keys.dev, "a");
    let b = proxy.create_key(&keys.dev, "b");
    let head = proxy.raw("GET", "/v1/audit/head", b"", None);
    assert_eq!(head.status, 200);
    let checkpoint = Checkpoint::from_json(&head.body).unwrap();
    checkpoint.verify().unwrap();
    assert_eq!(checkpoint.identity, proxy.identity);
    assert_eq!(checkpoint.seq, proxy.audit.len() as u64 - 1);
    let last = AuditEntry::parse_line(proxy.audit.last().unwrap()).unwrap();
    assert_eq!(checkpoint.hash, last.hash());

    // A listing of the blobs the proxy attaches; a tampered one is named, not hidden.
    let blob = |id: &Value| proxy.blobs[id.as_str().unwrap()].clone();
    let mut tampered = blob(&b["id"]);
    let n = tampered.len();
    tampered[n - 1] ^= 1;
    let call = Call {
        method: "GET".into(),
        path: "/v1/keys".into(),
        body: Vec::new().into(),
        stamp: None,
        key: None,
        keys: vec![
            SealedKey {
                id: a["id"].as_str().unwrap().into(),
                sealed: blob(&a["id"]).into(),
            },
            SealedKey {
                id: b["id"].as_str().unwrap().into(),
                sealed: tampered.into(),
            },
        ],
        audit_stored: None,
    };
    let listed = proxy.raw_call(call);
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["keys"][0]["address"], a["address"]);
    assert_eq!(listed.body["refused"][0]["id"], b["id"]);
    let one = proxy.raw(
        "GET",
        &format!("/v1/keys/{}", a["id"].as_str().unwrap()),
        b"",
        None,
    );
    assert_eq!(one.body["address"], a["address"]);
}

#[test]
fn forged_reordered_or_foreign_records_are_refused_at_boot() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    proxy.create_key(&keys.dev, "a");
    // The snapshot after this restart ends at its boot record; "b" and "c" come after it.
    proxy.restart(&ROOT);
    let from = proxy.stored.snapshot_seq as usize;
    proxy.create_key(&keys.dev, "b");
    proxy.create_key(&keys.dev, "c");
    let chain = proxy.audit.clone();
    let try_chain = |chain: &[String]| {
        let booted = support::boot();
        let answer = booted.unseal_with(&ROOT, Some(&proxy.stored), None, chain);
        (booted, answer)
    };
    // Edited: the signature no longer verifies.
    let mut edited = chain.clone();
    let last = edited.len() - 1;
    edited[last] = edited[last].replacen("\"label\":\"c\"", "\"label\":\"x\"", 1);
    assert_ne!(edited[last], chain[last]);
    let (booted, answer) = try_chain(&edited);
    assert_eq!(code(answer), ErrorCode::BlobRejected);
    // The refused boot starts over; the genuine records then boot it.
    assert_eq!(
        booted.enclave.phase(),
        strongroom_protocol::messages::Phase::AwaitingRootKey
    );
    // One record left out: the next one does not follow.
    let mut gap = chain.clone();
    gap.remove(from + 1);
    assert_eq!(code(try_chain(&gap).1), ErrorCode::BlobRejected);
    // Another deployment's records do not link, and its identities are not tagged.
    let other = Proxy::first_boot(&[0x11; 32], &genesis(&keys, dev_rules()));
    let mut foreign = chain[..from].to_vec();
    foreign.push(other.audit[0].clone());
    assert_eq!(code(try_chain(&foreign).1), ErrorCode::BlobRejected);
    // A boot record the parent wrote itself, linked and signed correctly by an identity
    // of its own: refused, since only the root key can tag an identity.
    let parent_key = strongroom_identity::IdentityKey::from_seed(&[0x66; 32]);
    let prev = AuditEntry::parse_line(&chain[last]).unwrap().hash();
    let mut fields = serde_json::Map::new();
    fields.insert("identity".into(), parent_key.public().to_string().into());
    fields.insert("attestation".into(), "".into());
    fields.insert("first_boot".into(), false.into());
    fields.insert("identity_tag".into(), "00".repeat(32).into());
    let (entry, _) =
        AuditEntry::build(&parent_key, chain.len() as u64, &prev, 1, "boot", fields).unwrap();
    let mut slipped = chain.clone();
    slipped.push(entry.to_line());
    let Response::Error(e) = try_chain(&slipped).1 else {
        panic!("a boot record of the parent's was replayed")
    };
    assert!(
        e.message.contains("not tagged by this deployment"),
        "{}",
        e.message
    );
    // The genuine records continue the chain.
    let (booted, answer) = try_chain(&chain);
    proxy.adopt(booted, answer);
    check_chain(&proxy);
}

/// The rollback attack: the parent keeps an old snapshot and a key blob, destroys the key
/// through the API, and restarts the enclave with the old snapshot.
#[test]
fn an_older_snapshot_is_caught_up_by_its_records_and_a_cut_log_is_a_fork() {
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot(&ROOT, &genesis(&keys, dev_rules()));
    let doomed = proxy.create_key(&keys.dev, "doomed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let kept = proxy.create_key(&keys.dev, "kept")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doomed_blob = proxy.blobs[&doomed].clone();
    let old = proxy.stored.clone();
    // Velocity: 4 ETH of the 5 ETH a key may move per 24 h.
    let path = format!("/v1/keys/{kept}/sign/transaction");
    for nonce in 0..4 {
        let r = proxy.call(&keys.dev, "POST", &path, &tx(1, nonce, ETH));
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let r = proxy.call(
        &keys.dev,
        "DELETE",
        &format!("/v1/keys/{doomed}"),
        &json!(null),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    proxy.snapshot();
    let head_seen = proxy.audit.len() as u64 - 1;
    let head_hash = AuditEntry::parse_line(proxy.audit.last().unwrap())
        .unwrap()
        .hash();

    // An older snapshot with every record after it: replayed to the current state.
    proxy.stored = old.clone();
    proxy.blobs.insert(doomed.clone(), doomed_blob.clone());
    proxy.restart(&ROOT);
    let r = proxy.call(
        &keys.dev,
        "POST",
        &format!("/v1/keys/{doomed}/sign/digest"),
        &digest_body(1),
    );
    assert_eq!(
        (r.status, r.error_code()),
        (410, "key_destroyed"),
        "{:?}",
        r.body
    );
    let r = proxy.call(&keys.dev, "POST", &path, &tx(1, 4, ETH));
    assert_eq!(
        r.status, 200,
        "4 ETH moved, 1 more fits the 5: {:?}",
        r.body
    );
    let r = proxy.call(&keys.dev, "POST", &path, &tx(1, 5, 1));
    assert_eq!(r.status, 403, "the velocity totals survived: {:?}", r.body);
    assert!(r.message().contains("velocity"), "{}", r.message());
    check_chain(&proxy);

    // The older snapshot with the log cut where it was taken: the enclave forgets the
    // destroy and the transfers — and says so, by writing its boot record under a
    // sequence number it had already issued, with another hash: a fork.
    let cut = old.snapshot_seq as usize;
    let booted = support::boot();
    let answer = booted.unseal_with(&ROOT, Some(&old), None, &proxy.audit[..cut]);
    let Response::Unsealed { audit, .. } = answer else {
        panic!("the enclave must come up: {answer:?}")
    };
    let boot = AuditEntry::parse_line(&audit[0].line).unwrap();
    assert_eq!(audit[0].seq, cut as u64);
    assert!(
        audit[0].seq <= head_seen,
        "a sequence number already issued"
    );
    assert_ne!(audit[0].line, proxy.audit[cut], "another record under it");
    let checkpoint_at_fork = boot.hash();
    assert_ne!(checkpoint_at_fork, head_hash);
    let fields = boot.fields().unwrap();
    assert_eq!(fields["resumed"]["snapshot_next_seq"], cut as u64);
    assert_eq!(fields["resumed"]["replayed"], 0);
}

#[test]
fn the_enclave_stops_deciding_when_the_proxy_stops_storing() {
    const LIMIT: usize = 40;
    let keys = Keys::new();
    let mut proxy = Proxy::first_boot_with(&ROOT, &genesis(&keys, dev_rules()), |e| {
        e.with_audit_backlog(LIMIT)
    });
    let id = proxy.create_key(&keys.dev, "k")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = proxy.audit.len() as u64;
    let path = format!("/v1/keys/{id}/sign/digest");
    let body = serde_json::to_vec(&digest_body(0x22)).unwrap();
    let sealed = proxy.blobs[&id].clone();
    // The proxy keeps saying it has stored only the first entries.
    let call = || Call {
        method: "POST".into(),
        path: path.clone(),
        body: body.clone().into(),
        stamp: Some(stamp(&keys.dev, "POST", &path, &body)),
        key: Some(SealedKey {
            id: id.clone(),
            sealed: sealed.clone().into(),
        }),
        keys: Vec::new(),
        audit_stored: Some(stored),
    };
    let mut made = 0;
    let refusal = loop {
        let Response::Answer(a) = proxy.enclave().handle(Request::Call(call())) else {
            panic!()
        };
        if a.status != 200 {
            break a;
        }
        made += a.effects.audit.len();
        assert!(made <= LIMIT, "never refused");
    };
    // The entries of the first boot and key creation were confirmed; the rest were not.
    assert_eq!(made, LIMIT);
    assert_eq!(refusal.status, 503);
    let body_json: Value = serde_json::from_slice(&refusal.body).unwrap();
    assert_eq!(body_json["error"]["code"], "audit_backlog");
    assert!(
        refusal.effects.audit.is_empty(),
        "nothing decided, nothing signed"
    );
    // The refusal is a signed answer too.
    let c = call();
    let sig = AnswerSignature::parse(refusal.signature.as_deref().unwrap()).unwrap();
    assert_eq!(sig.identity, proxy.identity);
    // Everything unconfirmed can be fetched again, in order, then the enclave goes on.
    let Response::AuditEntries(backlog) = proxy
        .enclave()
        .handle(Request::AuditBacklog { from: stored })
    else {
        panic!()
    };
    assert_eq!(backlog.len(), made);
    assert_eq!(backlog[0].seq, stored);
    assert!(backlog.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let mut go_on = c;
    go_on.audit_stored = Some(stored + made as u64);
    let Response::Answer(a) = proxy.enclave().handle(Request::Call(go_on)) else {
        panic!()
    };
    assert_eq!(a.status, 200);
}
