//! The audit chain of a real system across three boots: every decision is in it, it
//! verifies with `strongroom audit verify` (hashes, signatures, each boot's attested
//! hand-over to its new identity), and deleting, reordering, editing or duplicating any
//! stored entry is found and named by its sequence number. Answers are verified against the
//! enclave's attested identity with `--expect-pcrs` throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use strongroom_e2e::{Stack, temp_data};

const DIGEST: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// Runs the CLI with answer verification on (the mock measurements and root).
fn verified(stack: &Stack, args: &[&str]) -> Value {
    let pcrs = stack.data.join("mock-pcrs.json");
    let root = stack.data.join("mock-nsm/root.pem");
    let mut all = vec![
        "--expect-pcrs",
        pcrs.to_str().unwrap(),
        "--attestation-root",
        root.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    stack.cli_json(&all)
}

fn verify_file(stack: &Stack, file: &std::path::Path) -> std::process::Output {
    let pcrs = stack.data.join("mock-pcrs.json");
    let root = stack.data.join("mock-nsm/root.pem");
    stack.cli(&[
        "audit",
        "verify",
        "--from-file",
        file.to_str().unwrap(),
        "--expect-pcrs",
        pcrs.to_str().unwrap(),
        "--attestation-root",
        root.to_str().unwrap(),
    ])
}

#[test]
fn a_chain_across_three_boots_verifies_and_every_tampering_is_named() {
    let data = temp_data("audit");
    // Boot 1: a key and a signature.
    let stack = Stack::start_ready(&data);
    let key = verified(&stack, &["keys", "create", "--label", "audited"]);
    let id = key["id"].as_str().unwrap().to_string();
    verified(
        &stack,
        &["sign", "digest", "--key", &id, "--digest", DIGEST],
    );
    stack.stop();
    // Boot 2: a message, and a refusal (the policy does not grant destroy_key).
    let stack = Stack::start_ready(&data);
    verified(
        &stack,
        &["sign", "message", "--key", &id, "--text", "boot two"],
    );
    let refused = stack.cli_err(&["keys", "destroy", &id]);
    assert!(refused.contains("denied"), "{refused}");
    stack.stop();
    // Boot 3: another signature; then the chain, from the server and from a file.
    let stack = Stack::start_ready(&data);
    verified(
        &stack,
        &["sign", "digest", "--key", &id, "--digest", DIGEST],
    );
    let report = verified(&stack, &["audit", "verify"]);
    let boots = report["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 3, "{report}");
    // What the records say, read as the enclave wrote them.
    let records = &report["records"];
    assert_eq!(records["records"], 9, "{report}");
    assert_eq!(records["by_kind"]["boot"], 3, "{report}");
    assert_eq!(records["by_kind"]["decision"], 5, "{report}");
    assert_eq!(records["by_kind"]["key_created"], 1, "{report}");
    assert_eq!(
        records["decisions"],
        serde_json::json!({"allowed": 4, "denied": 1, "held": 0}),
        "{report}"
    );
    assert_eq!(
        records["signatures"],
        serde_json::json!({&id: 3}),
        "{report}"
    );
    assert_eq!(records["keys_created"][0]["key"], id.as_str(), "{report}");
    assert_eq!(records["keys_created"][0]["label"], "audited", "{report}");
    assert_eq!(records["keys_destroyed"], serde_json::json!([]), "{report}");
    let identities: std::collections::BTreeSet<_> =
        boots.iter().map(|b| b["identity"].to_string()).collect();
    assert_eq!(
        identities.len(),
        3,
        "a new identity at every boot: {report}"
    );
    let head = verified(&stack, &["audit", "head"]);

    let file = data.join("chain.ndjson");
    let out = stack.cli(&["audit", "fetch", "--out", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // boot, create decision, key created, digest, boot, message, destroy denied, boot,
    // digest (and the head reached by the server's checkpoint).
    assert_eq!(lines.len(), 9, "{text}");
    assert_eq!(head["seq"], 8);
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["entry"]["kind"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "boot",
            "decision",
            "key_created",
            "decision",
            "boot",
            "decision",
            "decision",
            "boot",
            "decision"
        ]
    );
    let denied: Value = serde_json::from_str(lines[6]).unwrap();
    assert_eq!(denied["entry"]["result"], "deny");
    assert_eq!(denied["entry"]["action"], "destroy_key");
    let out = verify_file(&stack, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["entries"], 9, "{report}");

    // Every kind of tampering with the stored chain, each named by its sequence number.
    let tampered = data.join("tampered.ndjson");
    let refused = |name: &str, lines: Vec<String>, seq: u64| {
        std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
        let out = verify_file(&stack, &tampered);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{name}: accepted");
        let named = err.contains(&format!("entry {seq} ")) || err.contains(&format!(" at {seq}:"));
        assert!(named, "{name}: {err}");
    };
    let owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut deleted = owned.clone();
    deleted.remove(3);
    refused("deleted", deleted, 3);
    let mut reordered = owned.clone();
    reordered.swap(5, 6);
    refused("reordered", reordered, 5);
    let mut edited = owned.clone();
    edited[6] = edited[6].replace("\"result\":\"deny\"", "\"result\":\"allow\"");
    assert_ne!(edited[6], owned[6]);
    refused("edited", edited, 6);
    let mut duplicated = owned.clone();
    duplicated.insert(4, owned[3].clone());
    refused("duplicated", duplicated, 3);
    // A boot's hand-over removed: the entries after it are signed by an identity the chain
    // never attested.
    let mut no_boot = owned.clone();
    no_boot.remove(4);
    refused("boot removed", no_boot, 4);
    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}

/// Admins compute the genesis digest from their own file before the first boot
/// (`strongroom genesis digest`) and pin it: the running enclave's attested digest matches,
/// `policy show` reports the same policy and admin digests, and a client pinning the digest
/// of any other genesis refuses the enclave.
#[test]
fn the_offline_genesis_digest_pins_the_deployment() {
    let data = temp_data("genesis");
    let stack = Stack::start_ready(&data);
    let file = data.join("dev/genesis.json");
    let offline = stack.cli_json(&["genesis", "digest", file.to_str().unwrap()]);
    let digest = offline["genesis_digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64, "{offline}");

    let shown = verified(&stack, &["--expect-genesis", &digest, "policy", "show"]);
    for field in [
        "genesis_digest",
        "policy_digest",
        "admins_digest",
        "admin_key_ids",
    ] {
        assert_eq!(shown[field], offline[field], "{field}: {shown}");
    }
    assert_eq!(shown["state_seq"], 0);

    // Another genesis: the same admins at threshold 1.
    let mut other: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    other["admins"]["threshold"] = 1.into();
    let other_file = data.join("other-genesis.json");
    std::fs::write(&other_file, other.to_string()).unwrap();
    let other_digest =
        stack.cli_json(&["genesis", "digest", other_file.to_str().unwrap()])["genesis_digest"]
            .as_str()
            .unwrap()
            .to_string();
    assert_ne!(other_digest, digest);
    let pcrs = stack.data.join("mock-pcrs.json");
    let root = stack.data.join("mock-nsm/root.pem");
    let refused = stack.cli_err(&[
        "--expect-pcrs",
        pcrs.to_str().unwrap(),
        "--attestation-root",
        root.to_str().unwrap(),
        "--expect-genesis",
        &other_digest,
        "policy",
        "show",
    ]);
    assert!(
        refused.contains(&format!(
            "the enclave's genesis digest is {digest}, expected {other_digest}"
        )),
        "{refused}"
    );

    // A document the enclave would refuse gets no digest.
    other["admins"]["threshold"] = 9.into();
    std::fs::write(&other_file, other.to_string()).unwrap();
    let err = stack.cli_err(&["genesis", "digest", other_file.to_str().unwrap()]);
    assert!(err.contains("admin threshold"), "{err}");
    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}
