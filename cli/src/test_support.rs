//! Helpers shared by the CLI's unit tests.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A fresh, empty directory under the system's temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "strongroom-cli-{tag}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// PCR0, PCR1 and PCR2 of 48 bytes each, filled with `fill`, `fill + 1` and `fill + 2`.
pub fn pcrs(fill: u8) -> BTreeMap<u16, Vec<u8>> {
    (0..3).map(|i| (i, vec![fill + i as u8; 48])).collect()
}

/// [`pcrs`]`(fill)` as `nitro-cli build-enclave` prints them.
pub fn nitro_pcr_file(fill: u8) -> String {
    let h = |i: u8| hex::encode([fill + i; 48]);
    format!(
        r#"{{"Measurements": {{"HashAlgorithm": "Sha384 {{ ... }}", "PCR0": "{}", "PCR1": "{}", "PCR2": "{}"}}}}"#,
        h(0),
        h(1),
        h(2)
    )
}
