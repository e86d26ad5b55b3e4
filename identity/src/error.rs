//! The crate's one error type.

/// Why a signature, header, entry or user-data document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// A header or field is not in the documented format.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being read.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The signature does not verify under the named identity.
    #[error("the {what} signature does not verify under identity {identity}")]
    BadSignature {
        /// What was signed.
        what: &'static str,
        /// The identity's public key, hex.
        identity: String,
    },
    /// An input is larger than its limit.
    #[error("{what} is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl IdentityError {
    pub(crate) fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            detail: detail.into(),
        }
    }
}
