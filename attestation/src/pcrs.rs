//! Expected measurements from a file.

use std::collections::BTreeMap;

/// PCR indices the NSM has (0 to 15 on current hardware; the document format allows 32).
const MAX_PCR_INDEX: u16 = 31;

/// Why a PCR file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PCR file: {0}")]
pub struct PcrFileError(String);

/// Reads expected PCRs from JSON in any of the forms in use: what `nitro-cli
/// build-enclave` prints (`{"Measurements": {"HashAlgorithm": …, "PCR0": "hex", …}}`), a
/// plain `{"PCR0": "hex", …}`, or `{"0": "hex", …}` (the mock enclave's file). Every value
/// must be 48 bytes (SHA-384). `HashAlgorithm`, if present, must name SHA-384.
pub fn parse_pcr_file(text: &str) -> Result<BTreeMap<u16, Vec<u8>>, PcrFileError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| PcrFileError(format!("not JSON: {e}")))?;
    let map = value
        .get("Measurements")
        .unwrap_or(&value)
        .as_object()
        .ok_or_else(|| PcrFileError("must hold a JSON object".into()))?;
    let mut pcrs = BTreeMap::new();
    for (k, v) in map {
        if k == "HashAlgorithm" {
            let name = v.as_str().unwrap_or_default();
            if !name.to_ascii_lowercase().contains("sha384") {
                return Err(PcrFileError(format!(
                    "HashAlgorithm {name:?} is not SHA-384"
                )));
            }
            continue;
        }
        let digits = k.strip_prefix("PCR").unwrap_or(k);
        let index: u16 = digits
            .parse()
            .ok()
            .filter(|i| *i <= MAX_PCR_INDEX)
            .ok_or_else(|| PcrFileError(format!("bad index {k:?}")))?;
        let hex_value = v
            .as_str()
            .ok_or_else(|| PcrFileError(format!("{k} is not a string")))?;
        let bytes = hex::decode(hex_value).map_err(|e| PcrFileError(format!("{k}: {e}")))?;
        if bytes.len() != 48 {
            return Err(PcrFileError(format!(
                "{k} is {} bytes, expected 48 (SHA-384)",
                bytes.len()
            )));
        }
        if pcrs.insert(index, bytes).is_some() {
            return Err(PcrFileError(format!("PCR{index} given twice")));
        }
    }
    if pcrs.is_empty() {
        return Err(PcrFileError("no PCRs in the file".into()));
    }
    Ok(pcrs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form() {
        let h = "ab".repeat(48);
        let nitro = format!(
            r#"{{"Measurements": {{"HashAlgorithm": "Sha384 {{ ... }}", "PCR0": "{h}", "PCR1": "{h}", "PCR2": "{h}"}}}}"#
        );
        let plain = format!(r#"{{"PCR0": "{h}", "PCR2": "{h}"}}"#);
        let mock = format!(r#"{{"0": "{h}", "1": "{h}"}}"#);
        assert_eq!(parse_pcr_file(&nitro).unwrap().len(), 3);
        assert_eq!(
            parse_pcr_file(&plain)
                .unwrap()
                .keys()
                .copied()
                .collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(parse_pcr_file(&mock).unwrap().len(), 2);
    }

    #[test]
    fn refuses_bad_files() {
        let h = "ab".repeat(48);
        for bad in [
            "[]".to_string(),
            "{}".to_string(),
            format!(r#"{{"PCR0": "{}"}}"#, "ab".repeat(32)),
            format!(r#"{{"PCR99": "{h}"}}"#),
            format!(r#"{{"PCR0": "{h}", "0": "{h}"}}"#),
            format!(r#"{{"HashAlgorithm": "Sha256", "PCR0": "{h}"}}"#),
        ] {
            assert!(parse_pcr_file(&bad).is_err(), "{bad}");
        }
    }
}
