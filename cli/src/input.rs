//! Parsing of command-line values: hex, PCR assignments, files that hold bytes.

use anyhow::{Context, Result, bail};
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
}
