//! Parsing of command-line values: hex, PCR assignments, files that hold bytes.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;

/// Bytes given on the command line as hex (a newtype, so clap takes one value, not a list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

/// Decodes hex, with or without a `0x` prefix.
pub fn hex_bytes(s: &str) -> Result<Vec<u8>> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(digits).with_context(|| format!("{s:?} is not hex"))
}

/// Clap value parser for [`Hex`].
pub fn hex_arg(s: &str) -> Result<Hex> {
    hex_bytes(s).map(Hex)
}

/// Clap value parser for exactly `N` bytes of hex, with or without `0x`.
pub fn fixed_hex_arg<const N: usize>(s: &str) -> Result<[u8; N]> {
    let bytes = hex_bytes(s)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow!(
            "expected {N} bytes ({} hex digits), got {}",
            2 * N,
            bytes.len()
        )
    })
}

/// Length of a signing digest.
pub const DIGEST_LEN: usize = 32;

/// A signing digest: exactly [`DIGEST_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest(pub [u8; DIGEST_LEN]);

/// Clap value parser for [`Digest`]: hex, with or without `0x`, exactly 32 bytes.
pub fn digest_arg(s: &str) -> Result<Digest> {
    let bytes = hex_bytes(s)?;
    let digest = <[u8; DIGEST_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow!(
            "a digest is {DIGEST_LEN} bytes ({} hex digits), not {}",
            2 * DIGEST_LEN,
            bytes.len()
        )
    })?;
    Ok(Digest(digest))
}

/// Parses `INDEX=HEX` into a PCR index and value.
pub fn pcr_arg(s: &str) -> Result<(u8, Vec<u8>)> {
    let Some((index, value)) = s.split_once('=') else {
        bail!("{s:?} is not INDEX=HEX");
    };
    let index: u8 = index
        .trim_start_matches("PCR")
        .parse()
        .ok()
        .filter(|i| *i < 32)
        .with_context(|| format!("PCR index {index:?} is not in 0..32"))?;
    Ok((index, hex_bytes(value)?))
}

/// A trusted attestation root as the CLI names it: `aws` (the pinned AWS Nitro Enclaves
/// Root G1) or a PEM file (the mock root in mock mode). `flag` names the option in errors.
pub fn trusted_root(flag: &str, spec: &str) -> Result<strongroom_attestation::TrustedRoot> {
    if spec == "aws" {
        return Ok(strongroom_attestation::TrustedRoot::aws_nitro_g1());
    }
    let pem = std::fs::read_to_string(spec).with_context(|| format!("reading {flag} {spec}"))?;
    strongroom_attestation::TrustedRoot::from_pem(&pem).with_context(|| format!("{flag} {spec}"))
}

/// Reads a PCR file (nitro-cli's output, `{"PCR0": "hex", …}` or `{"0": "hex", …}`);
/// `what` names it in errors.
pub fn pcr_file(
    what: &str,
    path: &std::path::Path,
) -> Result<std::collections::BTreeMap<u16, Vec<u8>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    strongroom_attestation::parse_pcr_file(&text)
        .with_context(|| format!("{what} {}", path.display()))
}

/// Reads a file that holds bytes either raw or as base64 text.
pub fn bytes_file(path: &str) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    let text_like = !raw.is_empty()
        && raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=_-\r\n\t ".contains(b));
    if text_like {
        let compact: Vec<u8> = raw
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&compact)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&compact));
        if let Ok(bytes) = decoded {
            return Ok(bytes);
        }
    }
    Ok(raw)
}

/// Reads a key file: PEM (any single block) or raw DER.
pub fn der_or_pem_file(path: &str) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    if raw.starts_with(b"-----BEGIN") {
        let block = pem::parse(&raw).with_context(|| format!("{path}: bad PEM"))?;
        return Ok(block.into_contents());
    }
    Ok(raw)
}

/// Reads a file's bytes verbatim (`-`: standard input).
pub fn file_or_stdin(path: &str) -> Result<Vec<u8>> {
    if path == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("reading standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("reading {path}"))
}

/// Reads a JSON request body, refusing what is not JSON before anything is sent; the bytes
/// are returned unchanged, as the stamp covers them.
pub fn json_body_file(path: &str) -> Result<Vec<u8>> {
    let bytes = file_or_stdin(path)?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .with_context(|| format!("{path} is not JSON"))?;
    Ok(bytes)
}

/// Reads a governance document (a policy or an admin set) and returns the JSON bytes of
/// `{"<field>": document}`. A `.toml` file is converted to JSON; a JSON file is embedded
/// as written, so large integers keep their exact digits.
pub fn document_body(path: &str, field: &str) -> Result<Vec<u8>> {
    let bytes = file_or_stdin(path)?;
    let text = std::str::from_utf8(&bytes).with_context(|| format!("{path} is not UTF-8"))?;
    let document = if path.to_ascii_lowercase().ends_with(".toml") {
        let table: toml::Table =
            toml::from_str(text).with_context(|| format!("{path} is not TOML"))?;
        let json = toml_to_json(toml::Value::Table(table))
            .with_context(|| format!("{path}: converting TOML to JSON"))?;
        serde_json::to_string(&json)?
    } else {
        let value: serde_json::Value =
            serde_json::from_str(text).with_context(|| format!("{path} is not JSON"))?;
        if !value.is_object() {
            bail!("{path}: the document must be a JSON object");
        }
        text.trim().to_string()
    };
    let key = serde_json::to_string(field)?;
    Ok(format!("{{{key}:{document}}}").into_bytes())
}

/// A TOML value as JSON. Dates have no place in the documents, so they are refused rather
/// than turned into something the server misreads.
pub fn toml_to_json(value: toml::Value) -> Result<serde_json::Value> {
    use serde_json::Value as J;
    Ok(match value {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => J::Number(
            serde_json::Number::from_f64(f)
                .ok_or_else(|| anyhow!("{f} has no JSON form (NaN or infinite)"))?,
        ),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => {
            bail!("TOML date-time {d} is not part of any document; quote it if it is text")
        }
        toml::Value::Array(items) => J::Array(
            items
                .into_iter()
                .map(toml_to_json)
                .collect::<Result<Vec<_>>>()?,
        ),
        toml::Value::Table(table) => J::Object(
            table
                .into_iter()
                .map(|(k, v)| Ok((k, toml_to_json(v)?)))
                .collect::<Result<serde_json::Map<_, _>>>()?,
        ),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pcr_assignments() {
        assert_eq!(pcr_arg("0=0a0b").unwrap(), (0, vec![10, 11]));
        assert_eq!(pcr_arg("PCR8=0x01").unwrap(), (8, vec![1]));
        assert!(pcr_arg("32=00").is_err());
        assert!(pcr_arg("1:00").is_err());
        assert!(pcr_arg("1=zz").is_err());
    }

    #[test]
    fn fixed_length_hex() {
        assert_eq!(fixed_hex_arg::<2>("0xabcd").unwrap(), [0xab, 0xcd]);
        assert_eq!(fixed_hex_arg::<2>("ABCD").unwrap(), [0xab, 0xcd]);
        let e = fixed_hex_arg::<2>("abcdef").unwrap_err().to_string();
        assert_eq!(e, "expected 2 bytes (4 hex digits), got 3");
        assert!(fixed_hex_arg::<2>("zzzz").is_err());
    }

    #[test]
    fn digests() {
        let hex64 = "ab".repeat(32);
        assert_eq!(digest_arg(&hex64).unwrap(), Digest([0xab; 32]));
        assert_eq!(
            digest_arg(&format!("0x{hex64}")).unwrap(),
            Digest([0xab; 32])
        );
        assert_eq!(digest_arg(&"AB".repeat(32)).unwrap(), Digest([0xab; 32]));
        assert!(digest_arg(&"ab".repeat(31)).is_err());
        assert!(digest_arg(&"ab".repeat(33)).is_err());
        assert!(digest_arg(&format!("{hex64}0")).is_err());
        assert!(digest_arg(&"zz".repeat(32)).is_err());
        assert!(digest_arg("").is_err());
        assert!(digest_arg("0x").is_err());
    }

    #[test]
    fn toml_documents_become_the_same_json() {
        let toml_text = r#"
            version = 1

            [[principals]]
            id = "dev"
            roles = ["signer"]
            keys = [{ algorithm = "ed25519", public = "ab" }]

            [[rules]]
            name = "dev-transactions"
            effect = "allow"
            principals = ["dev"]
            actions = ["sign_transaction"]
            [rules.conditions]
            chain_ids = [1, 11155111]
            max_value = "1 ether"
            max_gas_limit = 300000
            allow_contract_creation = false
            velocity = [{ scope = "key", window = "24h", max_value = "5 ether" }]
            ratio = 0.5
        "#;
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        let json = toml_to_json(toml::Value::Table(table)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "principals": [{"id": "dev", "roles": ["signer"],
                                "keys": [{"algorithm": "ed25519", "public": "ab"}]}],
                "rules": [{"name": "dev-transactions", "effect": "allow", "principals": ["dev"],
                           "actions": ["sign_transaction"],
                           "conditions": {"chain_ids": [1, 11155111], "max_value": "1 ether",
                                          "max_gas_limit": 300000,
                                          "allow_contract_creation": false,
                                          "velocity": [{"scope": "key", "window": "24h",
                                                        "max_value": "5 ether"}],
                                          "ratio": 0.5}}]
            })
        );
        let date: toml::Table = toml::from_str("at = 1979-05-27T07:32:00Z").unwrap();
        let err = toml_to_json(toml::Value::Table(date)).unwrap_err();
        assert!(err.to_string().contains("date-time"), "{err}");
    }

    #[test]
    fn toml_converted_here_is_the_policy_the_engine_reads_from_toml() {
        let toml_text = r#"
            version = 1
            [[principals]]
            id = "payments"
            keys = [{ algorithm = "ed25519", public = "d759793bbc13a2819a827c76adb6fba8a49aee007f49f2d0992d99b825ad2c48" }]
            [[rules]]
            name = "daily"
            effect = "allow"
            principals = ["payments"]
            actions = ["sign_transaction"]
            [rules.conditions]
            chain_ids = [1]
            max_value = "1 ether"
            max_gas_limit = 300000
            velocity = [{ scope = "key", window = 86400, max_count = 10 }]
        "#;
        let native = strongroom_policy::Policy::from_toml(toml_text).unwrap();
        let table: toml::Table = toml::from_str(toml_text).unwrap();
        let json = serde_json::to_vec(&toml_to_json(toml::Value::Table(table)).unwrap()).unwrap();
        let converted = strongroom_policy::Policy::from_json(&json).unwrap();
        assert_eq!(converted.digest(), native.digest());
    }

    #[test]
    fn document_bodies_wrap_the_document() {
        let dir = std::env::temp_dir().join(format!("strongroom-cli-doc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // JSON is embedded verbatim: an integer beyond u64 keeps its digits.
        let json_path = dir.join("p.json");
        std::fs::write(
            &json_path,
            "{\"version\": 1, \"big\": 100000000000000000000000}\n",
        )
        .unwrap();
        let body = document_body(json_path.to_str().unwrap(), "policy").unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"policy\":{\"version\": 1, \"big\": 100000000000000000000000}}"
        );
        let toml_path = dir.join("admins.TOML");
        std::fs::write(&toml_path, "threshold = 2\nkeys = []\n").unwrap();
        let body = document_body(toml_path.to_str().unwrap(), "admins").unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"admins": {"threshold": 2, "keys": []}})
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "[1, 2]").unwrap();
        assert!(document_body(bad.to_str().unwrap(), "policy").is_err());
        std::fs::write(&bad, "{\"a\": 1} trailing").unwrap();
        assert!(document_body(bad.to_str().unwrap(), "policy").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
