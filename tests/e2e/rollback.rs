//! The rollback attack on a real system, played by the parent with the database it holds:
//! it keeps an old snapshot, lets the enclave move on (transfers under a velocity limit),
//! then restarts the enclave from the old snapshot.
//! - With every record after the snapshot still in the database, the boot replays them:
//!   the velocity totals are intact and the next transfer over the limit is refused.
//! - With the log cut back to the snapshot as well, the enclave comes up having forgotten
//!   the transfers — and says so: its chain forks at a sequence number already issued, the
//!   CLI (which remembered the highest head it verified) refuses its answers naming both
//!   heads, and `audit verify --checkpoint` with a later checkpoint reports the fork.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use strongroom_e2e::{Stack, temp_data};

/// The CLI with answer verification on (mock measurements and root), remembering heads in
/// the stack's state file.
fn verified_args<'a>(
    stack: &'a Stack,
    pcrs: &'a str,
    root: &'a str,
    args: &[&'a str],
) -> Vec<&'a str> {
    let _ = stack;
    let mut all = vec!["--expect-pcrs", pcrs, "--attestation-root", root];
    all.extend_from_slice(args);
    all
}

fn transfer(stack: &Stack, nonce: u64) -> std::path::PathBuf {
    let file = stack.data.join(format!("tx{nonce}.json"));
    let tx = json!({"transaction": {"type": "0x2", "chainId": "0xaa36a7",
        "nonce": format!("0x{nonce:x}"), "to": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "value": "0xde0b6b3a7640000", "gas": "0x5208",
        "maxFeePerGas": "0x4a817c800", "maxPriorityFeePerGas": "0x3b9aca00"}});
    std::fs::write(&file, tx.to_string()).unwrap();
    file
}

fn snapshot(db: &std::path::Path) -> (Vec<u8>, i64) {
    let c = Connection::open(db).unwrap();
    c.query_row("SELECT state, state_seq FROM root WHERE id = 1", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

#[test]
fn an_old_snapshot_is_caught_up_and_a_cut_log_is_refused_as_a_fork() {
    let data = temp_data("rollback");
    let db = data.join("strongroom.sqlite");
    let stack = Stack::start_ready(&data);
    let pcrs = data.join("mock-pcrs.json");
    let root = data.join("mock-nsm/root.pem");
    let (pcrs, root) = (pcrs.to_str().unwrap(), root.to_str().unwrap());
    let run = |stack: &Stack, args: &[&str]| stack.cli(&verified_args(stack, pcrs, root, args));
    let ok = |stack: &Stack, args: &[&str]| -> Value {
        let out = run(stack, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let key = ok(&stack, &["keys", "create", "--label", "desk"]);
    let id = key["id"].as_str().unwrap().to_string();
    // 3 of the 5 ETH this key may move per 24 h.
    for nonce in 0..3 {
        let file = transfer(&stack, nonce);
        ok(
            &stack,
            &["sign", "tx", "--key", &id, "--file", file.to_str().unwrap()],
        );
    }
    stack.stop();
    let (old, old_seq) = snapshot(&db);
    assert!(old_seq > 0, "a clean stop leaves a snapshot");

    // The enclave moves on: 2 more ETH, the limit reached.
    let stack = Stack::start_ready(&data);
    for nonce in 3..5 {
        let file = transfer(&stack, nonce);
        ok(
            &stack,
            &["sign", "tx", "--key", &id, "--file", file.to_str().unwrap()],
        );
    }
    let over = transfer(&stack, 5);
    let out = run(
        &stack,
        &["sign", "tx", "--key", &id, "--file", over.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("velocity"));
    let checkpoint = data.join("checkpoint.json");
    let head = ok(&stack, &["audit", "head"]);
    std::fs::write(&checkpoint, head.to_string()).unwrap();
    stack.stop();

    // 1. The old snapshot with every record after it: caught up.
    let c = Connection::open(&db).unwrap();
    c.execute(
        "UPDATE root SET state = ?1, state_seq = ?2 WHERE id = 1",
        params![old, old_seq],
    )
    .unwrap();
    drop(c);
    let stack = Stack::start_ready(&data);
    let out = run(
        &stack,
        &["sign", "tx", "--key", &id, "--file", over.to_str().unwrap()],
    );
    assert!(!out.status.success(), "the velocity totals were replayed");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(text.contains("velocity"), "{text}");
    let log = std::fs::read_to_string(data.join("logs/proxy.log")).unwrap_or_default();
    assert!(log.contains("replayed"), "the boot replayed records: {log}");
    stack.stop();

    // 2. The old snapshot and the log cut back to it: the enclave forgets — visibly.
    let c = Connection::open(&db).unwrap();
    c.execute(
        "UPDATE root SET state = ?1, state_seq = ?2 WHERE id = 1",
        params![old, old_seq],
    )
    .unwrap();
    c.execute("DELETE FROM audit WHERE seq >= ?1", [old_seq])
        .unwrap();
    drop(c);
    let stack = Stack::start_ready(&data);
    let out = run(&stack, &["keys", "show", &id]);
    assert!(
        !out.status.success(),
        "a rolled-back enclave's answer was accepted"
    );
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(text.contains("behind or forked"), "{text}");
    let seen = format!("{}", head["seq"]);
    assert!(
        text.contains(&seen),
        "names the head it saw ({seen}): {text}"
    );
    assert!(text.contains("log cut short"), "{text}");
    // The later checkpoint is not in the chain the enclave now serves.
    let out = stack.cli(&[
        "audit",
        "verify",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--expect-pcrs",
        pcrs,
        "--attestation-root",
        root,
    ]);
    assert!(!out.status.success(), "the fork went unreported");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(text.contains(&seen), "{text}");
    // Without the remembered heads (a fresh client) the same answer is taken: what the
    // state file is for.
    let out = stack.cli(&[
        "--no-state",
        "--expect-pcrs",
        pcrs,
        "--attestation-root",
        root,
        "keys",
        "show",
        &id,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stack.stop();
    let _ = std::fs::remove_dir_all(&data);
}
