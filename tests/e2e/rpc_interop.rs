//! Real Ethereum clients from other ecosystems use Strongroom's JSON-RPC endpoint
//! (`POST /rpc`) by changing a URL: Python's web3.py (`tests/interop/rpc_clients.py`) and
//! Node's ethers v6 (`tests/interop/node/rpc_clients.mjs`) sign transactions, EIP-712 typed
//! data and personal messages with the mock-mode stack, authenticated with the development
//! bearer token, and recover the signer with their own libraries (eth-account, ethers); the
//! policy's denials (2 ETH, a token permit) and a missing token come back as JSON-RPC errors.
//! Each script prints a JSON summary and exits non-zero at its first failed check; this test
//! checks both passed and name the key it created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;
use strongroom_e2e::{Stack, python, repo, temp_data};

/// Runs one client script; panics with its output and the stack's log unless it exits 0.
fn run_client(stack: &Stack, name: &str, mut cmd: Command) -> Value {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({}):\nstderr: {stderr}\nstdout: {stdout}\nrun.log:\n{}",
        out.status,
        std::fs::read_to_string(stack.data.join("run.log")).unwrap_or_default()
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{name}: summary is not JSON ({e}): {stdout}"))
}

/// The summary names the key, and every signer the client recovered is the key.
fn assert_summary(name: &str, summary: &Value, address: &str) {
    assert_eq!(summary["ok"], true, "{name}: {summary}");
    assert_eq!(summary["address"], address, "{name}: {summary}");
    assert!(
        summary["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == address),
        "{name}: eth_accounts lacks {address}: {summary}"
    );
    assert_eq!(summary["chain_id"], 11_155_111, "{name}: {summary}");
    let checks = summary["checks"].as_object().unwrap();
    for check in [
        "eth_chainId",
        "eth_accounts",
        "batch",
        "eth_signTransaction_eip1559",
        "eth_signTransaction_legacy",
        "eth_signTypedData_v4_mail",
        "eth_signTypedData_v4_ballot",
        "personal_sign",
        "eth_sign",
        "denied_transaction",
        "denied_permit",
        "unknown_from",
        "unauthenticated",
    ] {
        assert_eq!(checks[check]["ok"], true, "{name}: {check}: {summary}");
    }
    let signers: Vec<_> = checks.values().filter_map(|c| c.get("signer")).collect();
    assert!(signers.len() >= 6, "{name}: {summary}");
    for signer in signers {
        assert_eq!(signer, address, "{name}: recovered signer: {summary}");
    }
    // The development policy: 1 ETH cap on transactions, no permit spenders listed.
    let decision = &checks["denied_transaction"]["error"]["data"]["decision"];
    assert_eq!(decision["rule"], "dev-transactions", "{name}: {summary}");
    assert_eq!(decision["result"], "deny", "{name}: {summary}");
    let decision = &checks["denied_permit"]["error"]["data"]["decision"];
    assert_eq!(decision["rule"], "dev-typed-data", "{name}: {summary}");
    assert!(
        decision["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("permit"),
        "{name}: {summary}"
    );
    for method in ["eth_accounts", "eth_signTransaction"] {
        assert_eq!(
            checks["unauthenticated"][method]["status"], 401,
            "{name}: {summary}"
        );
    }
}

#[test]
fn web3_py_and_ethers_sign_through_rpc_and_recover_the_key() {
    let data = temp_data("rpc-interop");
    let stack = Stack::start_ready(&data);
    let key = stack.cli_json(&["keys", "create", "--label", "interop"]);
    let address = key["address"].as_str().unwrap().to_string();
    let token_file = data.join("dev").join("rpc-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap_or_else(|e| panic!("{}: {e}", token_file.display()))
        .trim()
        .to_string();
    assert!(!token.is_empty(), "{} is empty", token_file.display());
    let url = format!("{}/rpc", stack.url);

    // scripts/test-env.sh (behind python()) also installs tests/interop/node/node_modules.
    let mut web3 = Command::new(python());
    web3.arg(repo().join("tests/interop/rpc_clients.py"))
        .args([&url, &token, &address]);
    let summary = run_client(&stack, "rpc_clients.py (web3.py)", web3);
    assert_summary("web3.py", &summary, &address);

    let mut ethers = Command::new("node");
    ethers
        .arg(repo().join("tests/interop/node/rpc_clients.mjs"))
        .args([&url, &token, &address]);
    let summary = run_client(&stack, "rpc_clients.mjs (ethers)", ethers);
    assert_summary("ethers", &summary, &address);

    stack.stop();
    std::fs::remove_dir_all(&data).unwrap();
}
