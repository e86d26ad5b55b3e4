//! The image build's own guards, which `make eif` and `make repro` rely on: the check that
//! refuses an enclave binary with the mock NSM compiled in, and `make eif`'s report of what
//! a machine lacks. (The reproducibility itself is `make repro`, which CI runs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use strongroom_e2e::{bin_dir, repo, temp_data};

/// Runs `eif-build/check-no-mock.sh` on `binary`.
fn check_no_mock(binary: &Path) -> Output {
    Command::new("bash")
        .arg(repo().join("eif-build/check-no-mock.sh"))
        .arg(binary)
        .output()
        .unwrap()
}

#[test]
fn the_mock_nsm_check_refuses_the_test_build_of_the_enclave() {
    // The workspace's test build of the enclave has the mock NSM in (tests/Cargo.toml).
    let enclave = bin_dir().join("strongroom-enclave");
    let out = check_no_mock(&enclave);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the mock NSM is compiled in"), "{err}");
    assert!(err.contains("Strongroom mock NSM"), "{err}");
}

#[test]
fn the_mock_nsm_check_passes_a_binary_without_it() {
    let dir = temp_data("no-mock");
    let bin = dir.join("plain");
    std::fs::write(&bin, b"\x7fELF a binary without the markers").unwrap();
    let out = check_no_mock(&bin);
    assert!(out.status.success(), "{out:?}");
    // One marker is enough to refuse.
    std::fs::write(&bin, b"\x7fELF ... mock-nsm-ca.pem ...").unwrap();
    let out = check_no_mock(&bin);
    assert_eq!(out.status.code(), Some(1));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn make_eif_says_what_is_missing() {
    // A PATH with neither docker nor nitro-cli, whatever this machine has.
    let dir = temp_data("eif-path");
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let dirname = String::from_utf8(
        Command::new("bash")
            .args(["-c", "command -v dirname"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::os::unix::fs::symlink(dirname.trim(), bin.join("dirname")).unwrap();
    let out = Command::new("/bin/bash")
        .arg(repo().join("eif-build/build.sh"))
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot build the enclave image here"), "{err}");
    assert!(err.contains("- docker"), "{err}");
    assert!(err.contains("- nitro-cli"), "{err}");
    assert!(err.contains("make repro"), "{err}");
    assert!(!repo().join("eif-build/out").exists() || out.stdout.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
