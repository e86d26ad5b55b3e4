//! Finding F5 on a real system: the parent holds the genesis document, so it can first-boot
//! a fresh enclave of the same image with the real genesis and a KMS key of its own, and
//! put it where the real deployment answered. Every attestation document of the impostor
//! verifies (same image, same genesis); only the root-key check value differs.
//! - A CLI that saw the real deployment (its state file remembers it) refuses the impostor,
//!   naming both deployments.
//! - A CLI pinning both halves refuses it; `--expect-genesis` alone without a state file is
//!   refused as pinning nothing, and with one it warns that the root key is trusted on
//!   first use.
//! - A CLI that never saw the real deployment accepts the impostor (what first use means),
//!   and `deployments forget` lets a client accept a re-deployment it expected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;
use strongroom_e2e::{Stack, temp_data};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn an_impostor_first_boot_with_the_real_genesis_is_refused_by_a_client_that_saw_the_real_one() {
    let real = temp_data("pin-real");
    let stack = Stack::start_ready(&real);
    let pcrs = real.join("mock-pcrs.json").display().to_string();
    let root = real.join("mock-nsm/root.pem").display().to_string();
    let state = real.join("client-heads.json").display().to_string();
    let cli = |stack: &Stack, extra: &[&str], args: &[&str]| {
        let mut all = vec![
            "--expect-pcrs",
            pcrs.as_str(),
            "--attestation-root",
            root.as_str(),
        ];
        all.extend_from_slice(extra);
        all.extend_from_slice(args);
        stack.cli(&all)
    };
    let ok = |out: std::process::Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let refused = |out: std::process::Output| -> String {
        assert!(!out.status.success(), "accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    // The real deployment, seen by this client (trust on first use).
    ok(cli(&stack, &[], &["keys", "create", "--label", "desk"]));
    let attested = cli(&stack, &[], &["attestation", "fetch"]);
    let report = String::from_utf8_lossy(&attested.stderr).into_owned();
    let field = |name: &str| -> String {
        let at = report.find(name).unwrap() + name.len() + 1;
        report[at..].split_whitespace().next().unwrap().to_string()
    };
    let (genesis, real_check) = (field("genesis"), field("root-key check"));
    let known = ok(cli(&stack, &[], &["deployments", "list"]));
    let scope = format!("genesis:{genesis}");
    assert_eq!(known["known"][&scope]["key_check"], real_check.as_str());
    assert_eq!(
        known["known"][format!("endpoint:{}/", stack.url)]["key_check"],
        real_check.as_str()
    );
    let address = stack.url.trim_start_matches("http://").to_string();
    stack.stop();

    // The parent's impostor: the same image and the same genesis document (and the same
    // attestation root: the same hardware), on a fresh KMS key and database, at the same
    // address.
    let fake = temp_data("pin-impostor");
    copy_dir(&real.join("dev"), &fake.join("dev"));
    copy_dir(&real.join("mock-nsm"), &fake.join("mock-nsm"));
    std::fs::copy(real.join("mock-pcrs.json"), fake.join("mock-pcrs.json")).unwrap();
    let mut impostor = Stack::start(&fake, &[("STRONGROOM_HTTP_ADDR", address.as_str())]);
    impostor.url = format!("http://{address}");
    impostor.wait_for(std::time::Duration::from_secs(60), |s, _, _| s == Some(0));
    let fake_check = {
        let out = ok(cli(
            &impostor,
            &[
                "--state-file",
                &fake.join("fresh.json").display().to_string(),
            ],
            &["attestation", "fetch"],
        ));
        let _ = out;
        let text = std::fs::read_to_string(fake.join("fresh.json")).unwrap();
        let book: Value = serde_json::from_str(&text).unwrap();
        // A client that never saw the real deployment trusts the impostor on first use.
        book["known"][&scope]["key_check"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(fake_check, real_check, "a fresh KMS key");

    // The client that saw the real deployment: refused, naming both root keys.
    let state_flag = ["--state-file", state.as_str()];
    let e = refused(cli(&impostor, &state_flag, &["keys", "list"]));
    assert!(
        e.contains(&real_check) && e.contains(&fake_check) && e.contains("another deployment"),
        "{e}"
    );
    let e = refused(cli(&impostor, &state_flag, &["attestation", "fetch"]));
    assert!(e.contains(&real_check) && e.contains(&fake_check), "{e}");
    // Both halves pinned, with no state at all: refused.
    let e = refused(cli(
        &impostor,
        &[
            "--no-state",
            "--expect-genesis",
            &genesis,
            "--expect-key-check",
            &real_check,
        ],
        &["keys", "list"],
    ));
    assert!(e.contains(&real_check) && e.contains(&fake_check), "{e}");
    // The genesis alone pins nothing without a state file: refused before any request.
    let e = refused(cli(
        &impostor,
        &["--no-state", "--expect-genesis", &genesis],
        &["keys", "list"],
    ));
    assert!(e.contains("does not pin a deployment"), "{e}");
    // With the state file it warns, and the file still refuses the impostor.
    let e = refused(cli(
        &impostor,
        &[&state_flag[..], &["--expect-genesis", &genesis]].concat(),
        &["keys", "list"],
    ));
    assert!(
        e.contains("warning: --expect-genesis without --expect-key-check"),
        "{e}"
    );
    assert!(e.contains(&fake_check), "{e}");

    // A re-deployment the client expected, pinned explicitly: accepted, and the pins
    // replace what the book remembered.
    ok(cli(
        &impostor,
        &[
            &state_flag[..],
            &[
                "--expect-genesis",
                &genesis,
                "--expect-key-check",
                &fake_check,
            ],
        ]
        .concat(),
        &["keys", "list"],
    ));
    let known = ok(cli(&impostor, &state_flag, &["deployments", "list"]));
    assert_eq!(known["known"][&scope]["key_check"], fake_check.as_str());
    ok(cli(&impostor, &state_flag, &["keys", "list"]));
    // Or forgotten (all three scopes), then trusted on first use again.
    let forgot = ok(cli(
        &impostor,
        &state_flag,
        &["deployments", "forget", &fake_check],
    ));
    assert_eq!(
        forgot["forgotten"], 3,
        "genesis, root key and endpoint scopes"
    );
    let e = refused(cli(
        &impostor,
        &state_flag,
        &["deployments", "forget", &fake_check],
    ));
    assert!(e.contains("no known deployment"), "{e}");
    ok(cli(&impostor, &state_flag, &["keys", "list"]));
    let known = ok(cli(&impostor, &state_flag, &["deployments", "list"]));
    assert_eq!(known["known"][&scope]["key_check"], fake_check.as_str());
    impostor.stop();
    std::fs::remove_dir_all(real).unwrap();
    std::fs::remove_dir_all(fake).unwrap();
}
