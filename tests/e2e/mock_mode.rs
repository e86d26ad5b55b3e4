//! The whole system in mock mode, across real processes: enclave (mock NSM, Unix socket),
//! mock KMS (real KMS JSON protocol over HTTP, key policy with PCR conditions), proxy (AWS
//! SDK, SQLite file, HTTP), driven with the `strongroom` CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rusqlite::Connection;
use strongroom_e2e::{Stack, recover_with_eth_keys, temp_data};

fn digest(n: u8) -> String {
    format!("0x{}", hex_byte(n).repeat(32))
}

fn hex_byte(n: u8) -> String {
    format!("{n:02x}")
}

fn sign(stack: &Stack, key: &str, d: &str) -> serde_json::Value {
    stack.cli_json(&["sign", "digest", "--key", key, "--digest", d])
}

#[test]
fn create_sign_restart_and_verify_with_an_independent_implementation() {
    let data = temp_data("sign");
    let stack = Stack::start_ready(&data);
    let key = stack.cli_json(&["keys", "create", "--label", "treasury"]);
    let id = key["id"].as_str().unwrap().to_string();
    let address = key["address"].as_str().unwrap().to_string();
    assert_eq!(key["curve"], "secp256k1");
    assert_eq!(key["label"], "treasury");

    let d = digest(0xab);
    let sig = sign(&stack, &id, &d);
    let recovered = recover_with_eth_keys(&d, sig["signature"].as_str().unwrap());
    assert_eq!(
        recovered["address"],
        address.as_str(),
        "eth-keys recovers our address"
    );
    assert_eq!(recovered["public_key"], key["public_key"]);
    assert_eq!(recovered["verifies"], true);
    assert_eq!(recovered["low_s"], true);

    let listed = stack.cli_json(&["keys", "list"]);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed["keys"][0]["id"], id.as_str());
    stack.stop();

    // Restart everything on the same data: the same key signs, the address is unchanged.
    let stack = Stack::start_ready(&data);
    let shown = stack.cli_json(&["keys", "show", &id]);
    assert_eq!(shown["address"], address.as_str());
    let d2 = digest(0x01);
    let sig2 = sign(&stack, &id, &d2);
    let recovered2 = recover_with_eth_keys(&d2, sig2["signature"].as_str().unwrap());
    assert_eq!(recovered2["address"], address.as_str());
    // RFC 6979: the first digest signs to the same signature after the restart.
    assert_eq!(sign(&stack, &id, &d)["signature"], sig["signature"]);

    let err = stack.cli_err(&["keys", "show", "00000000000000000000000000000000"]);
    assert!(err.contains("not_found"), "{err}");
    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn boot_is_refused_when_the_key_policy_pcr0_does_not_match() {
    let data = temp_data("pcr");
    let wrong = "ab".repeat(48);
    let stack = Stack::start(&data, &[("STRONGROOM_POLICY_PCR0", &wrong)]);
    let health = stack.wait_for(Duration::from_secs(60), |code, _, stderr| {
        code == Some(1) && stderr.contains("AccessDeniedException")
    });
    assert!(health.contains("503 starting"), "{health}");
    assert!(
        health.contains("PCR"),
        "the message points at the PCR condition: {health}"
    );
    let err = stack.cli_err(&["keys", "create", "--label", "x"]);
    assert!(err.contains("not_ready"), "{err}");
    // Nothing was stored: no root key, no keys.
    let db = Connection::open(data.join("strongroom.sqlite")).unwrap();
    let roots: i64 = db
        .query_row("SELECT COUNT(*) FROM root", [], |r| r.get(0))
        .unwrap();
    let keys: i64 = db
        .query_row("SELECT COUNT(*) FROM keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!((roots, keys), (0, 0));
    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}

fn blob(db: &Connection, id: &str) -> Vec<u8> {
    db.query_row("SELECT sealed FROM keys WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

fn put_blob(db: &Connection, id: &str, sealed: &[u8]) {
    db.execute(
        "INSERT OR REPLACE INTO keys (id, sealed, created_at, address) \
         VALUES (?1, ?2, 0, '0x00')",
        rusqlite::params![id, sealed],
    )
    .unwrap();
}

/// Adds `destroy_key` to the development principal's key rule, through a proposal that two
/// development admins approve with the CLI.
fn grant_destroy(stack: &Stack) {
    let mut policy = stack.cli_json(&["policy", "show"])["policy"].clone();
    let rules = policy["rules"].as_array_mut().unwrap();
    let rule = rules
        .iter_mut()
        .find(|r| r["name"] == "dev-create-keys")
        .unwrap();
    rule["actions"] = serde_json::json!(["create_key", "destroy_key"]);
    let file = stack.data.join("grant-destroy.json");
    std::fs::write(&file, serde_json::to_vec(&policy).unwrap()).unwrap();
    let out = stack.cli(&["policy", "propose", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .trim()
        .to_string();
    for admin in ["admin-1.key", "admin-2.key"] {
        let out = stack.cli(&[
            "policy",
            "approve",
            &id,
            "--admin-key",
            &stack.dev_key(admin),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn tampered_swapped_and_destroyed_blobs_are_refused() {
    let data = temp_data("blobs");
    let stack = Stack::start_ready(&data);
    let a = stack.cli_json(&["keys", "create", "--label", "a"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = stack.cli_json(&["keys", "create", "--label", "b"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The parent's database, opened behind the proxy's back.
    let db = Connection::open(data.join("strongroom.sqlite")).unwrap();
    let blob_a = blob(&db, &a);
    let blob_b = blob(&db, &b);
    let d = digest(7);

    let mut flipped = blob_a.clone();
    let n = flipped.len();
    flipped[n - 5] ^= 0x01;
    put_blob(&db, &a, &flipped);
    let err = stack.cli_err(&["sign", "digest", "--key", &a, "--digest", &d]);
    assert!(err.contains("blob_rejected"), "flipped bit: {err}");

    put_blob(&db, &a, &blob_b);
    let err = stack.cli_err(&["sign", "digest", "--key", &a, "--digest", &d]);
    assert!(err.contains("blob_rejected"), "swapped blob: {err}");

    put_blob(&db, &a, &blob_a);
    assert!(sign(&stack, &a, &d)["signature"].is_string());

    // The development policy lets "dev" create keys, not destroy them: two of the three
    // development admins grant it first.
    let err = stack.cli_err(&["keys", "destroy", &a]);
    assert!(err.contains("default deny"), "{err}");
    grant_destroy(&stack);
    let destroyed = stack.cli_json(&["keys", "destroy", &a]);
    assert_eq!(destroyed["destroyed"], true);
    let err = stack.cli_err(&["keys", "show", &a]);
    assert!(err.contains("not_found"), "{err}");
    // The parent puts the old blob back: the enclave refuses it.
    put_blob(&db, &a, &blob_a);
    let err = stack.cli_err(&["sign", "digest", "--key", &a, "--digest", &d]);
    assert!(err.contains("key_destroyed"), "{err}");
    assert!(sign(&stack, &b, &d)["signature"].is_string());
    // The listing, one key per page: b, and a refused by name rather than hidden.
    let listed = stack.cli_json(&["keys", "list", "--page-size", "1"]);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["keys"][0]["id"], b.as_str());
    assert_eq!(listed["refused"][0]["id"], a.as_str(), "{listed}");
    assert!(
        listed["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("destroyed"),
        "{listed}"
    );
    stack.stop();

    // And after a restart of everything.
    let stack = Stack::start_ready(&data);
    let err = stack.cli_err(&["sign", "digest", "--key", &a, "--digest", &d]);
    assert!(err.contains("key_destroyed"), "after restart: {err}");
    assert!(sign(&stack, &b, &d)["signature"].is_string());
    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn a_first_boot_without_a_genesis_refuses_to_start() {
    let data = temp_data("no-genesis");
    std::fs::create_dir_all(&data).unwrap();
    let out = std::process::Command::new(strongroom_e2e::bin_dir().join("strongroom-proxy"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--enclave")
        .arg(format!("unix:{}", data.join("none.sock").display()))
        .arg("--db")
        .arg(data.join("db.sqlite"))
        .env_remove("STRONGROOM_GENESIS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("first boot") && err.contains("--genesis"),
        "{err}"
    );
    std::fs::remove_dir_all(&data).unwrap();
}
