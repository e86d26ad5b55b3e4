//! One deployment as three replicas over one PostgreSQL (`make run-cluster`), driven with
//! the CLI as users drive it:
//! - eight clients spread over the three replicas sign 0.02 ETH transfers under the
//!   development policy's 5 ETH per key per 24 hours, while one replica's enclave and then
//!   another's proxy are killed with SIGKILL and PostgreSQL is stopped and started again;
//!   clients fail over between replicas. Afterwards exactly the limit is signed in total,
//!   every signature a client received has its record, nothing is signed twice, the chain
//!   verifies with every replica's identities in it, and the killed replicas serve again.
//! - a database that hides records from one replica forks the log, and a client that saw
//!   the other branch refuses that replica's answer, naming both heads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use strongroom_e2e::cluster::{Cluster, REPLICAS};
use strongroom_e2e::{temp_data, transfer_file};

/// 0.02 ETH: 250 of them fill the 5 ETH per key per 24 h.
const FIFTIETH: u128 = 20_000_000_000_000_000;
const LIMIT: usize = 250;
const CLIENTS: usize = 8;

/// Errors a client retries: the replica or the database cannot answer now, or a request
/// one replica decided and another refused as used (its stamp goes with the failover).
fn retriable(stderr: &str) -> bool {
    [
        "503",
        "not_ready",
        "storage_unavailable",
        "could not connect",
        "connect",
        "timed out",
        "error sending request",
        "connection",
        "another replica decided",
    ]
    .iter()
    .any(|s| stderr.to_lowercase().contains(s))
}

/// The replicas' URLs with replica `first` first.
fn rotated(cluster: &Cluster, first: usize) -> Vec<String> {
    (0..REPLICAS)
        .map(|i| cluster.replicas[(first + i) % REPLICAS].clone())
        .collect()
}

/// The JSON report `strongroom audit verify` prints after its summary.
fn verify_chain(cluster: &Cluster, state: &Path) -> (Value, Vec<Value>) {
    let chain = cluster.data.join("chain.ndjson");
    let out = cluster.cli(
        &[&cluster.url],
        state,
        &["audit", "fetch", "--out", chain.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cluster.cli(
        &[&cluster.url],
        state,
        &["audit", "verify", "--from-file", chain.to_str().unwrap()],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the chain does not verify: {}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    let entries = std::fs::read_to_string(&chain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["entry"].clone())
        .collect();
    (report, entries)
}

#[test]
fn three_replicas_sign_exactly_the_limit_through_kills_and_a_database_restart() {
    let data = temp_data("replicas");
    let cluster = Arc::new(Cluster::start(&data));
    let admin_state = data.join("heads-main.json");
    let r = |i: usize| cluster.replicas[i].clone();
    // A key created on one replica signs on every other at once.
    let key = cluster.cli_json(
        &[&r(0)],
        &admin_state,
        &["keys", "create", "--label", "shared"],
    );
    let id = key["id"].as_str().unwrap().to_string();
    let digest = format!("0x{}", "11".repeat(32));
    for i in 0..REPLICAS {
        let signed = cluster.cli_json(
            &[&r(i)],
            &admin_state,
            &["sign", "digest", "--key", &id, "--digest", &digest],
        );
        assert!(signed["signature"].is_string(), "replica {i}: {signed}");
    }

    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let nonce = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (cluster, received, unexpected, refused, retried, stop, nonce) = (
                Arc::clone(&cluster),
                Arc::clone(&received),
                Arc::clone(&unexpected),
                Arc::clone(&refused),
                Arc::clone(&retried),
                Arc::clone(&stop),
                Arc::clone(&nonce),
            );
            let id = id.clone();
            std::thread::spawn(move || {
                let urls = rotated(&cluster, c % REPLICAS);
                let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
                let state = cluster.data.join(format!("heads-{c}.json"));
                let mut saw_limit = false;
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(300) {
                    let n = nonce.fetch_add(1, Ordering::Relaxed);
                    let file = transfer_file(&cluster.data, n, FIFTIETH);
                    let out = cluster.cli(
                        &urls,
                        &state,
                        &["sign", "tx", "--key", &id, "--file", file.to_str().unwrap()],
                    );
                    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                    if out.status.success() {
                        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                        received
                            .lock()
                            .unwrap()
                            .push(v["hash"].as_str().unwrap().to_string());
                    } else if stderr.contains("velocity") {
                        if !saw_limit {
                            saw_limit = true;
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        std::thread::sleep(Duration::from_millis(300));
                    } else if retriable(&stderr) {
                        retried.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(200));
                    } else {
                        unexpected.lock().unwrap().push(stderr);
                    }
                }
            })
        })
        .collect();

    let signed = || received.lock().unwrap().len();
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while signed() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for(40);
    eprintln!("SIGKILL replica r2's enclave after {} signatures", signed());
    cluster.kill(1, "strongroom-enclave");
    wait_for(90);
    eprintln!("SIGKILL replica r3's proxy after {} signatures", signed());
    cluster.kill(2, "strongroom-proxy");
    wait_for(140);
    eprintln!("stopping PostgreSQL after {} signatures", signed());
    cluster.pg("stop");
    // While it is down, a replica decides nothing and says why.
    let probe = transfer_file(&data, 9_999_999, FIFTIETH);
    let out = cluster.cli(
        &[&r(0)],
        &data.join("heads-probe.json"),
        &[
            "sign",
            "tx",
            "--key",
            &id,
            "--file",
            probe.to_str().unwrap(),
        ],
    );
    let probe_err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "signed with the database down");
    assert!(
        probe_err.contains("storage_unavailable") || probe_err.contains("503"),
        "{probe_err}"
    );
    std::thread::sleep(Duration::from_secs(2));
    cluster.pg("start");
    eprintln!("PostgreSQL started again");
    // Let every client run into the limit, then stop them.
    let deadline = Instant::now() + Duration::from_secs(180);
    while refused.load(Ordering::Relaxed) < CLIENTS as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "errors a failing-over client should not see: {unexpected:#?}"
    );
    let received = received.lock().unwrap().clone();
    let unique: BTreeSet<&String> = received.iter().collect();
    assert_eq!(
        unique.len(),
        received.len(),
        "a signature was received twice"
    );
    assert!(
        received.len() <= LIMIT,
        "{} signatures over a limit of {LIMIT}",
        received.len()
    );

    // Every replica is back (the killed ones rejoined and caught up).
    cluster.wait_ready(Duration::from_secs(60));
    let (report, entries) = verify_chain(&cluster, &admin_state);
    let boots: Vec<(String, u64)> = report["boots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["replica"].as_str().unwrap().to_string(),
                b["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    for name in ["r1", "r2", "r3"] {
        assert!(
            boots.iter().any(|(r, _)| r == name),
            "no boot of {name}: {boots:?}"
        );
    }
    assert!(
        boots.iter().filter(|(r, _)| r == "r2").count() >= 2,
        "r2's enclave was killed and booted again: {boots:?}"
    );
    let mut recorded = BTreeSet::new();
    for e in &entries {
        if e["kind"] == "decision" && e["action"] == "sign_transaction" && e["result"] == "allow" {
            assert!(
                recorded.insert(e["output"]["hash"].as_str().unwrap().to_string()),
                "one transaction recorded twice"
            );
        }
    }
    for hash in &received {
        assert!(
            recorded.contains(hash),
            "signature {hash} was received but is not in the chain"
        );
    }
    assert_eq!(
        recorded.len(),
        LIMIT,
        "the three replicas together signed exactly the limit"
    );
    // And not one more, on any replica.
    for i in 0..REPLICAS {
        let file = transfer_file(&data, 10_000_000 + i as u64, FIFTIETH);
        let out = cluster.cli(
            &[&r(i)],
            &admin_state,
            &["sign", "tx", "--key", &id, "--file", file.to_str().unwrap()],
        );
        assert!(!out.status.success());
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains("velocity"), "replica {i}: {e}");
    }
    let appends: Vec<f64> = (0..REPLICAS)
        .map(|i| cluster.metric(i, "strongroom_replica_appends_total"))
        .collect();
    let conflicts: f64 = (0..REPLICAS)
        .map(|i| cluster.metric(i, "strongroom_replica_append_conflicts_total"))
        .sum();
    eprintln!(
        "received {}, recorded {}, retried {}, appends per replica {appends:?} (since each \
         proxy's start), conflicts {conflicts}",
        received.len(),
        recorded.len(),
        retried.load(Ordering::Relaxed)
    );
    assert!(
        appends.iter().all(|a| *a > 0.0),
        "every replica appended: {appends:?}"
    );
}

#[test]
fn a_replica_shown_a_forked_history_is_refused_by_a_client_that_saw_the_other_branch() {
    let data = temp_data("fork");
    let cluster = Cluster::start(&data);
    let state = data.join("heads.json");
    let r1 = cluster.replicas[0].clone();
    let r2 = cluster.replicas[1].clone();
    let key = cluster.cli_json(&[&r1], &state, &["keys", "create", "--label", "f"]);
    let id = key["id"].as_str().unwrap().to_string();
    let digest = format!("0x{}", "22".repeat(32));
    for _ in 0..3 {
        cluster.cli_json(
            &[&r1],
            &state,
            &["sign", "digest", "--key", &id, "--digest", &digest],
        );
    }
    // The client's latest answer named the head: the last record.
    let head: u64 = cluster.sql("SELECT MAX(seq) FROM audit").parse().unwrap();
    let snapshot: u64 = cluster.sql("SELECT state_seq FROM root").parse().unwrap();
    assert!(head >= snapshot, "the record to hide is after the snapshot");
    // The database hides it; replica r2 restarts and writes its boot record there instead.
    cluster.sql(&format!("DELETE FROM audit WHERE seq >= {head}"));
    cluster.kill(1, "strongroom-enclave");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let forked = cluster.sql(&format!("SELECT COUNT(*) FROM audit WHERE seq = {head}"));
        if forked == "1"
            && strongroom_e2e::cluster::http_get(&r2, "/v1/health").is_some_and(|(s, _)| s == 200)
        {
            break;
        }
        assert!(Instant::now() < deadline, "replica r2 did not boot again");
        std::thread::sleep(Duration::from_millis(200));
    }
    // r2's answers name the same sequence number with another record.
    let out = cluster.cli(&[&r2], &state, &["keys", "list"]);
    let e = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the forked replica's answer was accepted"
    );
    assert!(e.contains("forked"), "{e}");
    assert!(
        e.matches(&format!("{head}:")).count() >= 2,
        "both heads are named: {e}"
    );
}
