//! Where to listen or connect: `unix:/path/to/sock` or `vsock:CID:PORT`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The CID by which an enclave reaches its parent instance (fixed by Nitro Enclaves).
pub const PARENT_CID: u32 = 3;

/// `VMADDR_CID_ANY`: listen on whatever CID this machine has, as the enclave does (its own CID is chosen at launch).
pub const VMADDR_CID_ANY: u32 = u32::MAX;

/// A transport endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A Unix domain stream socket at this path (mock mode and tests).
    Unix(PathBuf),
    /// An AF_VSOCK endpoint (production, Linux only).
    Vsock {
        /// Context id: [`PARENT_CID`] to reach the parent, the enclave's CID to reach the enclave, [`VMADDR_CID_ANY`] to listen.
        cid: u32,
        /// Port number.
        port: u32,
    },
}

/// Why a string is not an [`Address`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressParseError {
    /// Neither `unix:` nor `vsock:`.
    #[error("address {0:?} must start with \"unix:\" or \"vsock:\"")]
    UnknownScheme(String),
    /// `unix:` with nothing after it.
    #[error("unix socket address has an empty path")]
    EmptyPath,
    /// `vsock:` not followed by `CID:PORT`.
    #[error("vsock address {0:?} must have the form vsock:CID:PORT")]
    MalformedVsock(String),
    /// The CID is neither a decimal `u32` nor `any`.
    #[error("invalid vsock CID {0:?}: expected a decimal u32 or \"any\"")]
    InvalidCid(String),
    /// The port is not a decimal `u32`.
    #[error("invalid vsock port {0:?}: expected a decimal u32")]
    InvalidPort(String),
}

/// Parses a plain decimal `u32`; `str::parse` alone would also take a leading `+`.
fn decimal_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(AddressParseError::EmptyPath);
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("vsock:") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or_else(|| AddressParseError::MalformedVsock(s.to_owned()))?;
            let cid = if cid == "any" {
                VMADDR_CID_ANY
            } else {
                decimal_u32(cid).ok_or_else(|| AddressParseError::InvalidCid(cid.to_owned()))?
            };
            let port =
                decimal_u32(port).ok_or_else(|| AddressParseError::InvalidPort(port.to_owned()))?;
            return Ok(Self::Vsock { cid, port });
        }
        Err(AddressParseError::UnknownScheme(s.to_owned()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Vsock {
                cid: VMADDR_CID_ANY,
                port,
            } => write!(f, "vsock:any:{port}"),
            Self::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_both_schemes() {
        let cases = [
            (
                "unix:/run/strongroom/enclave.sock",
                Address::Unix("/run/strongroom/enclave.sock".into()),
            ),
            ("unix:relative.sock", Address::Unix("relative.sock".into())),
            (
                "vsock:3:5000",
                Address::Vsock {
                    cid: PARENT_CID,
                    port: 5000,
                },
            ),
            (
                "vsock:16:5005",
                Address::Vsock {
                    cid: 16,
                    port: 5005,
                },
            ),
            (
                "vsock:any:5000",
                Address::Vsock {
                    cid: VMADDR_CID_ANY,
                    port: 5000,
                },
            ),
            (
                "vsock:4294967294:4294967295",
                Address::Vsock {
                    cid: u32::MAX - 1,
                    port: u32::MAX,
                },
            ),
        ];
        for (text, address) in cases {
            assert_eq!(text.parse::<Address>().unwrap(), address, "{text}");
            assert_eq!(address.to_string(), text);
        }
        // The numeric spelling of VMADDR_CID_ANY is accepted and shown as "any".
        let any: Address = "vsock:4294967295:1".parse().unwrap();
        assert_eq!(any.to_string(), "vsock:any:1");
    }

    #[test]
    fn rejects_malformed_addresses() {
        let cases = [
            ("", AddressParseError::UnknownScheme(String::new())),
            (
                "tcp:1.2.3.4:5",
                AddressParseError::UnknownScheme("tcp:1.2.3.4:5".into()),
            ),
            (
                "/run/x.sock",
                AddressParseError::UnknownScheme("/run/x.sock".into()),
            ),
            (
                "UNIX:/x",
                AddressParseError::UnknownScheme("UNIX:/x".into()),
            ),
            ("unix:", AddressParseError::EmptyPath),
            (
                "vsock:3",
                AddressParseError::MalformedVsock("vsock:3".into()),
            ),
            ("vsock:", AddressParseError::MalformedVsock("vsock:".into())),
            ("vsock::5000", AddressParseError::InvalidCid(String::new())),
            ("vsock:-1:5000", AddressParseError::InvalidCid("-1".into())),
            ("vsock:+3:5000", AddressParseError::InvalidCid("+3".into())),
            (
                "vsock:4294967296:1",
                AddressParseError::InvalidCid("4294967296".into()),
            ),
            ("vsock:3:", AddressParseError::InvalidPort(String::new())),
            (
                "vsock:3:5000:1",
                AddressParseError::InvalidPort("5000:1".into()),
            ),
            (
                "vsock:3: 5000",
                AddressParseError::InvalidPort(" 5000".into()),
            ),
            (
                "vsock:3:0x10",
                AddressParseError::InvalidPort("0x10".into()),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(text.parse::<Address>(), Err(error), "{text}");
        }
    }
}
