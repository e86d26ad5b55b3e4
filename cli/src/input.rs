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

/// Clap value parser for a key id. The server owns the format; refused here are only the
/// ids that would turn into another path (`.` and `..` are dropped from URLs, empty lists).
pub fn key_id_arg(s: &str) -> Result<String> {
    if matches!(s, "" | "." | "..") {
        bail!("{s:?} is not a key id");
    }
    Ok(s.to_string())
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
    fn key_ids() {
        assert_eq!(key_id_arg("0a1b").unwrap(), "0a1b");
        for bad in ["", ".", ".."] {
            assert!(key_id_arg(bad).is_err());
        }
    }
}
