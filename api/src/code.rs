//! The `"code"` of an error answer, `{"error": {"code", "message", …}}`, and its status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Every code an error answer carries, from the enclave or from the proxy. Each has one
/// HTTP status ([`ApiErrorCode::status`]); on the wire it is the snake_case string
/// ([`ApiErrorCode::as_str`], also its serde form).
///
/// Distinct from `strongroom_protocol::messages::ErrorCode`, the enclave's failures on its
/// connection to the proxy; `ErrorCode::api_code` maps those to these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// 400: the request is malformed or breaks a limit.
    BadRequest,
    /// 401: a missing, unknown, expired, tampered or replayed stamp.
    Unauthenticated,
    /// 401: a stamp that expires too soon after the enclave started (it may have been used
    /// before); with `retry_after`.
    StampBeforeBoot,
    /// 403: the policy refused; with `decision`.
    Denied,
    /// 403: the caller may not do this (not an admin, not an approver…).
    Forbidden,
    /// 404: no such key, proposal, request or route.
    NotFound,
    /// 409: the state does not allow it (already approved, no longer pending…).
    Conflict,
    /// 410: the key was destroyed.
    KeyDestroyed,
    /// 413: the body is too large.
    TooLarge,
    /// 429: the principal is at a quota.
    QuotaExceeded,
    /// 500: something failed inside the enclave or the proxy.
    Internal,
    /// 502: a stored blob is not authentic.
    BlobRejected,
    /// 502: the enclave failed, or answered the proxy with something unexpected.
    EnclaveError,
    /// 503: the enclave is not unsealed yet, or cannot be reached.
    NotReady,
    /// 503: audit entries wait to be stored; nothing more is decided or released until
    /// they are.
    AuditBacklog,
    /// 503: the database cannot be reached (down, restarting, failing over); nothing was
    /// decided or released — retry, here or at another replica.
    StorageUnavailable,
}

impl ApiErrorCode {
    /// Every code.
    pub const ALL: [ApiErrorCode; 16] = [
        ApiErrorCode::BadRequest,
        ApiErrorCode::Unauthenticated,
        ApiErrorCode::StampBeforeBoot,
        ApiErrorCode::Denied,
        ApiErrorCode::Forbidden,
        ApiErrorCode::NotFound,
        ApiErrorCode::Conflict,
        ApiErrorCode::KeyDestroyed,
        ApiErrorCode::TooLarge,
        ApiErrorCode::QuotaExceeded,
        ApiErrorCode::Internal,
        ApiErrorCode::BlobRejected,
        ApiErrorCode::EnclaveError,
        ApiErrorCode::NotReady,
        ApiErrorCode::AuditBacklog,
        ApiErrorCode::StorageUnavailable,
    ];

    /// The code as it travels: `bad_request`, `not_found`…
    pub fn as_str(self) -> &'static str {
        match self {
            ApiErrorCode::BadRequest => "bad_request",
            ApiErrorCode::Unauthenticated => "unauthenticated",
            ApiErrorCode::StampBeforeBoot => "stamp_before_boot",
            ApiErrorCode::Denied => "denied",
            ApiErrorCode::Forbidden => "forbidden",
            ApiErrorCode::NotFound => "not_found",
            ApiErrorCode::Conflict => "conflict",
            ApiErrorCode::KeyDestroyed => "key_destroyed",
            ApiErrorCode::TooLarge => "too_large",
            ApiErrorCode::QuotaExceeded => "quota_exceeded",
            ApiErrorCode::Internal => "internal",
            ApiErrorCode::BlobRejected => "blob_rejected",
            ApiErrorCode::EnclaveError => "enclave_error",
            ApiErrorCode::NotReady => "not_ready",
            ApiErrorCode::AuditBacklog => "audit_backlog",
            ApiErrorCode::StorageUnavailable => "storage_unavailable",
        }
    }

    /// The code `code` names; `None` for one this version does not know.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The HTTP status an answer with this code has.
    pub fn status(self) -> u16 {
        match self {
            ApiErrorCode::BadRequest => 400,
            ApiErrorCode::Unauthenticated | ApiErrorCode::StampBeforeBoot => 401,
            ApiErrorCode::Denied | ApiErrorCode::Forbidden => 403,
            ApiErrorCode::NotFound => 404,
            ApiErrorCode::Conflict => 409,
            ApiErrorCode::KeyDestroyed => 410,
            ApiErrorCode::TooLarge => 413,
            ApiErrorCode::QuotaExceeded => 429,
            ApiErrorCode::Internal => 500,
            ApiErrorCode::BlobRejected | ApiErrorCode::EnclaveError => 502,
            ApiErrorCode::NotReady
            | ApiErrorCode::AuditBacklog
            | ApiErrorCode::StorageUnavailable => 503,
        }
    }
}

impl fmt::Display for ApiErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApiErrorCode {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        Self::parse(s).ok_or_else(|| UnknownCode(s.to_string()))
    }
}

/// A code this version does not know (a newer server's, say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCode(String);

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown error code {:?}", self.0)
    }
}

impl std::error::Error for UnknownCode {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_has_a_status() {
        for code in ApiErrorCode::ALL {
            assert_eq!(ApiErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(code.as_str().parse::<ApiErrorCode>(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ApiErrorCode>(&json).unwrap(), code);
            assert!((400..600).contains(&code.status()), "{code}");
        }
        let mut names: Vec<_> = ApiErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ApiErrorCode::ALL.len());
    }

    #[test]
    fn unknown_codes_are_refused() {
        for unknown in ["", "Denied", "denied ", "payment_required", "not-found"] {
            assert_eq!(ApiErrorCode::parse(unknown), None, "{unknown:?}");
            assert_eq!(
                unknown.parse::<ApiErrorCode>(),
                Err(UnknownCode(unknown.to_string()))
            );
            assert!(serde_json::from_str::<ApiErrorCode>(&format!("{unknown:?}")).is_err());
        }
    }
}
