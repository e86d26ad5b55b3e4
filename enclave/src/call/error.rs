//! A refusal of a call, answered as `{"error": {"code", "message", "decision"?,
//! "retry_after"?}}` with its HTTP status.

use serde_json::{Value, json};
use strongroom_policy::Decision;
use strongroom_protocol::messages::{Answer, Effects, EnclaveError, ErrorCode};

/// A refusal: status, code, message, and for a policy denial the decision.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: u16,
    code: &'static str,
    pub(crate) message: String,
    decision: Option<Value>,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            decision: None,
            retry_after: None,
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(401, "unauthenticated", message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }
    pub(crate) fn quota(message: impl Into<String>) -> Self {
        Self::new(429, "quota_exceeded", message)
    }
    pub(crate) fn key_destroyed(message: impl Into<String>) -> Self {
        Self::new(410, "key_destroyed", message)
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }
    pub(crate) fn denied(decision: &Decision) -> Self {
        Self {
            status: 403,
            code: "denied",
            message: decision.reason.clone(),
            decision: Some(decision.to_json_value()),
            retry_after: None,
        }
    }

    /// The answer for the client.
    pub fn into_answer(self) -> Answer {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(obj) = error.as_object_mut() {
            if let Some(d) = self.decision {
                obj.insert("decision".into(), d);
            }
            if let Some(secs) = self.retry_after {
                obj.insert("retry_after".into(), secs.into());
            }
        }
        reply(self.status, json!({ "error": error }))
    }
}

impl From<EnclaveError> for ApiError {
    fn from(e: EnclaveError) -> Self {
        match e.code {
            ErrorCode::NotReady => Self::new(503, "not_ready", e.message),
            ErrorCode::BadRequest => Self::bad_request(e.message),
            ErrorCode::KeyDestroyed => Self::key_destroyed(e.message),
            ErrorCode::BlobRejected => Self::new(502, "blob_rejected", e.message),
            _ => Self::internal(e.message),
        }
    }
}

impl From<crate::record::RecordError> for ApiError {
    fn from(e: crate::record::RecordError) -> Self {
        Self::internal(format!("log: {e}"))
    }
}

/// A handler's result.
pub(crate) type ApiResult = Result<Answer, ApiError>;

/// An answer with a JSON body and no effects.
pub(crate) fn reply(status: u16, body: Value) -> Answer {
    Answer {
        status,
        body: serde_json::to_vec(&body).unwrap_or_default().into(),
        effects: Effects::default(),
        signature: None,
    }
}
