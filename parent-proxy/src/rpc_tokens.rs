//! Bearer tokens for JSON-RPC clients that cannot make Strongroom's request stamps (ethers,
//! web3.py): each token is bound to a principal key the proxy holds, and the proxy stamps
//! the client's request with it.
//!
//! What this trusts: the parent instance. Whoever controls it holds these principal keys
//! and can make any request those principals may make; the enclave still applies the
//! policy, audits the request under that principal, and signs its answer. Give such
//! principals only what an application behind a bearer token should be able to do.
//!
//! File format, one token per line: `sha256:<64 hex: SHA-256 of the token> <key file>`;
//! `#` starts a comment; a relative key path is relative to the token file. Only token
//! hashes are stored, and tokens are compared by hash in constant time.

use std::path::Path;

use sha2::{Digest, Sha256};
use strongroom_auth::{Request as StampedRequest, SigningKey, Stamp};

/// Why the token file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {reason}")]
pub struct TokenFileError {
    path: String,
    line: usize,
    reason: String,
}

/// The loaded token table.
pub struct RpcTokens {
    entries: Vec<([u8; 32], SigningKey)>,
}

impl std::fmt::Debug for RpcTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RpcTokens({} tokens)", self.entries.len())
    }
}

impl RpcTokens {
    /// Reads a token file and the key files it names.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let fail = |line: usize, reason: String| TokenFileError {
            path: path.display().to_string(),
            line,
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(0, e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let n = index + 1;
            let mut parts = line.split_whitespace();
            let (Some(hash), Some(key_path), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(fail(n, "expected `sha256:<hex> <key file>`".into()));
            };
            let digits = hash
                .strip_prefix("sha256:")
                .ok_or_else(|| fail(n, "the token hash must start with sha256:".into()))?;
            let mut digest = [0u8; 32];
            hex::decode_to_slice(digits, &mut digest)
                .map_err(|_| fail(n, "the token hash is not 64 hex digits".into()))?;
            let key_path = base.join(key_path);
            let key_text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&key_path)
                    .map_err(|e| fail(n, format!("{}: {e}", key_path.display())))?,
            );
            let key = SigningKey::from_text(&key_text)
                .map_err(|e| fail(n, format!("{}: {e}", key_path.display())))?;
            if entries.iter().any(|(d, _)| *d == digest) {
                return Err(fail(n, "the same token is listed twice".into()));
            }
            entries.push((digest, key));
        }
        if entries.is_empty() {
            return Err(fail(0, "no tokens in the file".into()));
        }
        Ok(Self { entries })
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key bound to `token`, comparing every entry's hash in constant time.
    pub fn key_for(&self, token: &str) -> Option<&SigningKey> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (d, key) in &self.entries {
            let diff = d.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(key);
            }
        }
        found
    }

    /// A stamp for `method path body` by the key bound to `token`, valid for the
    /// enclave's full window.
    pub fn stamp(
        key: &SigningKey,
        method: &str,
        path: &str,
        body: &[u8],
        now: u64,
    ) -> Result<String, strongroom_auth::RandomnessError> {
        let request = StampedRequest { method, path, body };
        Stamp::make(key, request, now, strongroom_auth::MAX_VALIDITY_SECS, None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table(dir: &Path, lines: &str) -> Result<RpcTokens, TokenFileError> {
        std::fs::write(dir.join("tokens"), lines).unwrap();
        RpcTokens::load(&dir.join("tokens"))
    }

    #[test]
    fn tokens_map_to_their_keys_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::ed25519_from_seed(&[5; 32]);
        std::fs::write(dir.path().join("p.key"), key.to_pkcs8_pem().as_bytes()).unwrap();
        let hash = hex::encode(Sha256::digest(b"secret-token"));
        let t = table(dir.path(), &format!("# comment\nsha256:{hash} p.key\n")).unwrap();
        assert_eq!(t.len(), 1);
        let found = t.key_for("secret-token").unwrap();
        assert_eq!(found.public().id(), key.public().id());
        assert!(t.key_for("secret-tokeN").is_none());
        assert!(t.key_for("").is_none());
        assert!(!format!("{t:?}").contains("secret"));
    }

    #[test]
    fn malformed_files_are_refused_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::ed25519_from_seed(&[5; 32]);
        std::fs::write(dir.path().join("p.key"), key.to_pkcs8_pem().as_bytes()).unwrap();
        let hash = hex::encode([1u8; 32]);
        for (bad, needle) in [
            (format!("md5:{hash} p.key"), "sha256:"),
            (format!("sha256:{} p.key", &hash[..10]), "64 hex"),
            (format!("sha256:{hash} missing.key"), "missing.key"),
            (format!("sha256:{hash}"), "expected"),
            (format!("sha256:{hash} p.key\nsha256:{hash} p.key"), "twice"),
            ("# nothing\n".to_string(), "no tokens"),
        ] {
            let e = table(dir.path(), &bad).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
