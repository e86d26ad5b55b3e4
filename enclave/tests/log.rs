//! The state is its log: whatever sequence of calls and restarts the enclave went through,
//! applying its records from the genesis gives exactly the state it holds, and so does
//! applying the records after any snapshot it took to that snapshot.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use serde_json::{Value, json};
use strongroom_enclave::governance::Genesis;
use strongroom_enclave::record::{Position, Record};
use strongroom_enclave::rootkey::RootKey;
use strongroom_enclave::seal::Sealer;
use strongroom_enclave::state::{EnclaveState, STATE_OBJECT};
use strongroom_identity::AuditEntry;
use support::{Keys, Proxy, dev_rules, genesis, policy};

const ROOT: [u8; 32] = [0x3c; 32];
const ETH: u128 = 1_000_000_000_000_000_000;

/// One thing a principal, an approver, an admin or the parent does.
#[derive(Clone, Debug)]
enum Op {
    /// A blind digest signature (allowed, counted nowhere).
    Digest,
    /// A transfer of `tenths` × 0.1 ETH on mainnet (velocity-limited; over 1 ETH denied).
    Transfer(u8),
    /// 10 ETH on Sepolia: held for one approval.
    Big,
    /// The approver approves the n-th held request.
    ApproveRequest(usize),
    /// The requester cancels the n-th held request.
    CancelRequest(usize),
    /// The principal proposes a policy change.
    Propose,
    /// Admin `a` approves the n-th open proposal.
    ApproveProposal(usize, usize),
    /// An admin cancels the n-th open proposal.
    CancelProposal(usize),
    /// The key is destroyed (the dev policy allows it).
    Destroy,
    /// The enclave restarts from the newest snapshot and the records after it.
    Restart,
    /// The proxy takes a snapshot.
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Digest),
        4 => (1u8..15).prop_map(Op::Transfer),
        2 => Just(Op::Big),
        2 => (0usize..4).prop_map(Op::ApproveRequest),
        1 => (0usize..4).prop_map(Op::CancelRequest),
        1 => Just(Op::Propose),
        2 => ((0usize..3), (0usize..3)).prop_map(|(a, n)| Op::ApproveProposal(a, n)),
        1 => (0usize..3).prop_map(Op::CancelProposal),
        1 => Just(Op::Destroy),
        1 => Just(Op::Restart),
        2 => Just(Op::Snapshot),
    ]
}

fn transfer(chain_id: u64, nonce: u64, value: u128) -> Value {
    json!({"transaction": {"type": "0x2", "chainId": format!("0x{chain_id:x}"),
        "nonce": format!("0x{nonce:x}"), "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "value": format!("0x{value:x}"), "gas": "0x5208",
        "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00"}})
}

/// A sealed snapshot's plaintext, opened with the test's root key.
fn open(snapshot: &[u8]) -> Vec<u8> {
    let keys = RootKey::from_bytes(&mut ROOT.clone())
        .unwrap()
        .working_keys();
    let sealer = Sealer::new(&keys.seal).unwrap();
    let plain = sealer.open(&STATE_OBJECT, snapshot).unwrap();
    // Decoded and encoded again: what a boot starts from.
    EnclaveState::from_plaintext(&plain)
        .unwrap()
        .to_plaintext()
        .unwrap()
        .to_vec()
}

/// Applies the lines `from..` of `chain` to `state`.
fn replay(mut state: EnclaveState, chain: &[String], from: usize) -> EnclaveState {
    for line in &chain[from..] {
        let entry = AuditEntry::parse_line(line).unwrap();
        let header = entry.header().unwrap();
        let record = Record::from_entry_bytes(&entry.bytes).unwrap();
        state
            .apply(&record, Position::of(&header, entry.hash()))
            .unwrap_or_else(|e| panic!("record {}: {e}", header.seq));
    }
    state
}

fn run(ops: &[Op]) {
    let keys = Keys::new();
    let g = genesis(&keys, dev_rules());
    let mut proxy = Proxy::first_boot(&ROOT, &g);
    let id = proxy.create_key(&keys.dev, "k")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut snapshots = vec![(proxy.stored.snapshot_seq, proxy.stored.snapshot.clone())];
    let mut held: Vec<(String, String)> = Vec::new();
    let mut proposals: Vec<(String, String)> = Vec::new();
    let mut nonce = 0u64;
    let mut destroyed = false;
    for op in ops {
        nonce += 1;
        match op {
            Op::Digest => {
                let body =
                    json!({"digest": format!("0x{}", format!("{:02x}", nonce % 256).repeat(32))});
                let r = proxy.call(
                    &keys.dev,
                    "POST",
                    &format!("/v1/keys/{id}/sign/digest"),
                    &body,
                );
                assert_eq!(r.status == 200, !destroyed, "{:?}", r.body);
            }
            Op::Transfer(tenths) => {
                let value = u128::from(*tenths) * ETH / 10;
                proxy.call(
                    &keys.dev,
                    "POST",
                    &format!("/v1/keys/{id}/sign/transaction"),
                    &transfer(1, nonce, value),
                );
            }
            Op::Big => {
                let r = proxy.call(
                    &keys.dev,
                    "POST",
                    &format!("/v1/keys/{id}/sign/transaction"),
                    &transfer(11155111, nonce, 10 * ETH),
                );
                if r.status == 202 {
                    held.push((
                        r.body["request"]["id"].as_str().unwrap().to_string(),
                        r.body["request"]["intent_digest"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    ));
                }
            }
            Op::ApproveRequest(n) => {
                if let Some((rid, digest)) = held.get(*n % held.len().max(1)).cloned() {
                    proxy.call(
                        &keys.ops,
                        "POST",
                        &format!("/v1/requests/{rid}/approve"),
                        &json!({"intent_digest": digest}),
                    );
                }
            }
            Op::CancelRequest(n) => {
                if let Some((rid, _)) = held.get(*n % held.len().max(1)).cloned() {
                    proxy.call(
                        &keys.dev,
                        "POST",
                        &format!("/v1/requests/{rid}/cancel"),
                        &json!({}),
                    );
                }
            }
            Op::Propose => {
                let mut rules = dev_rules();
                rules[0]["name"] = format!("create-{nonce}").into();
                let r = proxy.call(
                    &keys.dev,
                    "POST",
                    "/v1/policy/proposals",
                    &json!({"policy": policy(&keys, rules)}),
                );
                if r.status == 201 {
                    proposals.push((
                        r.body["proposal"]["id"].as_str().unwrap().to_string(),
                        r.body["proposal"]["digest"].as_str().unwrap().to_string(),
                    ));
                }
            }
            Op::ApproveProposal(a, n) => {
                if let Some((pid, digest)) = proposals.get(*n % proposals.len().max(1)).cloned() {
                    proxy.call(
                        &keys.admins[*a],
                        "POST",
                        &format!("/v1/policy/proposals/{pid}/approve"),
                        &json!({"digest": digest}),
                    );
                }
            }
            Op::CancelProposal(n) => {
                if let Some((pid, _)) = proposals.get(*n % proposals.len().max(1)).cloned() {
                    proxy.call(
                        &keys.admins[0],
                        "POST",
                        &format!("/v1/policy/proposals/{pid}/cancel"),
                        &json!({}),
                    );
                }
            }
            Op::Destroy => {
                let r = proxy.call(&keys.dev, "DELETE", &format!("/v1/keys/{id}"), &Value::Null);
                destroyed |= r.status == 200;
            }
            Op::Restart => proxy.restart(&ROOT),
            Op::Snapshot => {
                proxy.snapshot();
                snapshots.push((proxy.stored.snapshot_seq, proxy.stored.snapshot.clone()));
            }
        }
    }
    proxy.snapshot();
    snapshots.push((proxy.stored.snapshot_seq, proxy.stored.snapshot.clone()));
    let chain = proxy.audit.clone();
    let genesis_state = || EnclaveState::genesis(Genesis::from_json(&g).unwrap());
    let live = open(&snapshots.last().unwrap().1);
    let from_genesis = replay(genesis_state(), &chain, 0).to_plaintext().unwrap();
    assert_eq!(
        *from_genesis, *live,
        "the live state is its log applied from the genesis"
    );
    for (seq, sealed) in &snapshots {
        let at = usize::try_from(*seq).unwrap();
        let snapshot = open(sealed);
        // Each snapshot is the log up to its position ...
        let upto = replay(genesis_state(), &chain[..at], 0)
            .to_plaintext()
            .unwrap();
        assert_eq!(*upto, *snapshot, "snapshot at {seq}");
        // ... and the records after it bring it to the live state.
        let resumed = replay(EnclaveState::from_plaintext(&snapshot).unwrap(), &chain, at);
        assert_eq!(
            *resumed.to_plaintext().unwrap(),
            *live,
            "replayed from {seq}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    #[test]
    fn apply_over_any_history_equals_replay_from_any_snapshot(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        run(&ops);
    }
}

#[test]
fn a_history_with_every_kind_of_record_replays_exactly() {
    use Op::*;
    run(&[
        Digest,
        Transfer(5),
        Snapshot,
        Transfer(12),
        Big,
        Big,
        ApproveRequest(0),
        CancelRequest(1),
        Propose,
        ApproveProposal(0, 0),
        Restart,
        Propose,
        ApproveProposal(1, 1),
        ApproveProposal(2, 1),
        Transfer(9),
        Snapshot,
        Destroy,
        Digest,
        Big,
    ]);
}
