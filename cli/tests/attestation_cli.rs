//! `strongroom attestation verify` and `strongroom mock attest` as a user runs them, and
//! agreement with an independent verifier (Python cbor2 + cryptography).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

const PCR0: &str = "f4d48b81a460c9916d1e685119074bf24660afd3e34fae9fca0a0d28d9d5599936332687e6f66fc890ac8cf150142d8b";
const AT: &str = "2022-10-13T09:00:00Z";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn aws_doc(name: &str) -> PathBuf {
    repo().join("attestation/tests/data").join(name)
}

fn strongroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .output()
        .unwrap()
}

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("strongroom-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `strongroom attestation verify`, returning Ok(json) or Err(stderr).
fn verify_cli(args: &[&str]) -> Result<Value, String> {
    let mut all = vec!["attestation", "verify"];
    all.extend_from_slice(args);
    let out = strongroom(&all);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        assert_eq!(out.status.code(), Some(1), "refusals exit 1");
        assert!(out.stdout.is_empty(), "nothing on stdout when refused");
        Err(String::from_utf8(out.stderr).unwrap())
    }
}

/// Copies `src` to `dir/name` with one bit flipped, at `back` bytes from the end or just
/// after the first occurrence of `needle`.
fn flipped_copy(
    src: &Path,
    dir: &Path,
    name: &str,
    back: Option<usize>,
    needle: Option<&[u8]>,
) -> PathBuf {
    let mut bytes = std::fs::read(src).unwrap();
    let i = match (back, needle) {
        (Some(back), _) => bytes.len() - back,
        (None, Some(n)) => bytes.windows(n.len()).position(|w| w == n).unwrap() + 1,
        _ => unreachable!(),
    };
    bytes[i] ^= 0x01;
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn base64_of(path: &Path) -> Vec<u8> {
    let out = Command::new("base64")
        .arg("-w0")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn a_real_document_verifies_and_every_mutation_has_its_own_message() {
    let doc = aws_doc("aws-2022-10-13.cbor");
    let doc_s = doc.to_str().unwrap();
    let pcr = format!("0={PCR0}");
    let json = verify_cli(&["--doc", doc_s, "--at", AT, "--pcr", &pcr]).unwrap();
    assert_eq!(json["module_id"], "i-020b6af9246d90e92-enc0183d09086c24190");
    assert_eq!(json["pcrs"]["0"], PCR0);
    assert_eq!(json["timestamp"], "2022-10-13T08:58:02.136Z");
    assert_eq!(json["certificate"]["not_after"], "2022-10-13T11:58:02Z");
    assert_eq!(json["nonce"].as_str().unwrap().len(), 512);
    assert_eq!(json["public_key"], Value::Null);

    // The same document as base64 text is accepted too.
    let dir = temp_dir("cli");
    let b64 = dir.join("doc.b64");
    std::fs::write(&b64, base64_of(&doc)).unwrap();
    assert!(verify_cli(&["--doc", b64.to_str().unwrap(), "--at", AT]).is_ok());

    let sig = flipped_copy(&doc, &dir, "sig", Some(20), None);
    let payload = flipped_copy(&doc, &dir, "payload", None, Some(b"-enc"));
    let mock_state = dir.join("mock");
    let out = strongroom(&["mock", "attest", "--state", mock_state.to_str().unwrap()]);
    assert!(out.status.success());
    let mock_pem = mock_state.join("root.pem");
    let debug = aws_doc("aws-debug-2022-10-12.cbor");
    let wrong_pcr = format!("0={}", "00".repeat(48));

    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "signature bit",
            vec!["--doc", sig.to_str().unwrap(), "--at", AT],
            "signature does not verify",
        ),
        (
            "payload bit",
            vec!["--doc", payload.to_str().unwrap(), "--at", AT],
            "signature does not verify",
        ),
        (
            "wrong PCR",
            vec!["--doc", doc_s, "--at", AT, "--pcr", &wrong_pcr],
            "PCR0 is f4d48b81",
        ),
        (
            "wrong nonce",
            vec!["--doc", doc_s, "--at", AT, "--nonce", "0badc0de"],
            "nonce is cb3dc2eb",
        ),
        (
            "expired",
            vec!["--doc", doc_s, "--at", "2022-10-13T12:30:00Z"],
            "expired at 2022-10-13T11:58:02Z",
        ),
        (
            "not yet valid",
            vec!["--doc", doc_s, "--at", "2022-10-13T08:00:00Z"],
            "valid only from",
        ),
        (
            "debug",
            vec![
                "--doc",
                debug.to_str().unwrap(),
                "--at",
                "2022-10-12T14:00:00Z",
            ],
            "debug mode",
        ),
        (
            "mock root",
            vec![
                "--doc",
                doc_s,
                "--at",
                AT,
                "--root",
                mock_pem.to_str().unwrap(),
            ],
            "expected the pinned root",
        ),
    ];
    let mut messages = Vec::new();
    for (name, args, expected) in cases {
        let err = verify_cli(&args).expect_err(name);
        assert!(err.contains(expected), "{name}: {err}");
        messages.push(err);
    }
    let mut distinct = messages.clone();
    distinct.sort();
    distinct.dedup();
    // Signature and payload flips both end as a signature failure; everything else differs.
    assert_eq!(distinct.len(), messages.len() - 1, "{messages:#?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let doc = aws_doc("aws-2022-10-13.cbor");
    let err = verify_cli(&["--doc", doc.to_str().unwrap(), "--at", "yesterday"]).unwrap_err();
    assert!(err.contains("RFC 3339"), "{err}");
    let err = verify_cli(&["--doc", "/nonexistent/doc"]).unwrap_err();
    assert!(err.contains("/nonexistent/doc"), "{err}");
    let out = strongroom(&[
        "attestation",
        "verify",
        "--doc",
        doc.to_str().unwrap(),
        "--pcr",
        "40=00",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not in 0..32"));
}

fn python() -> String {
    let out = Command::new("bash")
        .arg(repo().join("scripts/test-env.sh"))
        .output()
        .expect("run scripts/test-env.sh");
    assert!(
        out.status.success(),
        "scripts/test-env.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn verify_python(py: &str, doc: &Path, root: &Path, at_unix: u64) -> Value {
    let out = Command::new(py)
        .arg(repo().join("tests/interop/verify_attestation.py"))
        .arg(doc)
        .arg(root)
        .arg(at_unix.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rfc3339(unix: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap()).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn an_independent_verifier_agrees_on_mock_and_real_documents() {
    let py = python();
    let dir = temp_dir("interop");
    let state = dir.join("nsm");
    let key = dir.join("key.der");
    std::fs::write(&key, [0x30u8, 0x59, 0x30, 0x13]).unwrap();
    let out = strongroom(&[
        "mock",
        "attest",
        "--state",
        state.to_str().unwrap(),
        "--nonce",
        "00112233",
        "--user-data",
        "cafe",
        "--public-key",
        key.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = dir.join("mock.b64");
    std::fs::write(&doc, &out.stdout).unwrap();
    let root = state.join("root.pem");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let root_s = root.to_str().unwrap();

    let ours = verify_cli(&[
        "--doc",
        doc.to_str().unwrap(),
        "--root",
        root_s,
        "--nonce",
        "00112233",
    ])
    .unwrap();
    let theirs = verify_python(&py, &doc, &root, now);
    assert_eq!(theirs["ok"], true, "{theirs}");
    for field in [
        "module_id",
        "timestamp_ms",
        "pcrs",
        "nonce",
        "user_data",
        "public_key",
    ] {
        assert_eq!(ours[field], theirs[field], "{field}");
    }
    assert_eq!(ours["public_key"], "30593013");
    assert_eq!(
        ours["certificate"]["subject"],
        theirs["certificate_subject"]
    );

    // Both refuse: a flipped signature bit, a later time, another root.
    let raw = dir.join("mock.cbor");
    let decoded = Command::new("base64").arg("-d").arg(&doc).output().unwrap();
    assert!(decoded.status.success());
    std::fs::write(&raw, &decoded.stdout).unwrap();
    let raw_s = raw.to_str().unwrap();
    assert!(verify_cli(&["--doc", raw_s, "--root", root_s]).is_ok());
    let tampered = flipped_copy(&raw, &dir, "tampered.cbor", Some(10), None);
    assert!(verify_cli(&["--doc", tampered.to_str().unwrap(), "--root", root_s]).is_err());
    assert_eq!(verify_python(&py, &tampered, &root, now)["ok"], false);

    let later = now + 4 * 3600;
    assert!(verify_cli(&["--doc", raw_s, "--root", root_s, "--at", &rfc3339(later)]).is_err());
    assert_eq!(verify_python(&py, &raw, &root, later)["ok"], false);

    let aws_root = aws_doc("aws-nitro-enclaves-root-g1.pem");
    assert!(verify_cli(&["--doc", raw_s]).is_err());
    assert_eq!(verify_python(&py, &raw, &aws_root, now)["ok"], false);

    // And on a real AWS document at its time.
    let real = aws_doc("aws-2023-01-18.cbor");
    let ours = verify_cli(&[
        "--doc",
        real.to_str().unwrap(),
        "--at",
        "2023-01-18T13:10:00Z",
    ])
    .unwrap();
    let theirs = verify_python(&py, &real, &aws_root, 1_674_047_400);
    assert_eq!(theirs["ok"], true, "{theirs}");
    assert_eq!(ours["pcrs"], theirs["pcrs"]);
    assert_eq!(ours["user_data"], theirs["user_data"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
