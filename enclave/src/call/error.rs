//! A refusal of a call, answered as `{"error": {"code", "message", "decision"?,
//! "retry_after"?}}` with its HTTP status.

use serde_json::{Value, json};
use strongroom_api::ApiErrorCode;
use strongroom_policy::Decision;
use strongroom_protocol::messages::{Answer, Effects, EnclaveError};

/// A refusal: code (which gives the status), message, and for a policy denial the decision.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) code: ApiErrorCode,
    pub(crate) message: String,
    decision: Option<Value>,
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            decision: None,
            retry_after: None,
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::BadRequest, message)
    }
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Unauthenticated, message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Forbidden, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::NotFound, message)
    }
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Conflict, message)
    }
    pub(crate) fn quota(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::QuotaExceeded, message)
    }
    pub(crate) fn key_destroyed(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::KeyDestroyed, message)
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Internal, message)
    }
    pub(crate) fn denied(decision: &Decision) -> Self {
        Self {
            decision: Some(decision.to_json_value()),
            ..Self::new(ApiErrorCode::Denied, decision.reason.clone())
        }
    }

    /// The HTTP status: the code's.
    pub(crate) fn status(&self) -> u16 {
        self.code.status()
    }

    /// The answer for the client.
    pub fn into_answer(self) -> Answer {
        let status = self.status();
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(obj) = error.as_object_mut() {
            if let Some(d) = self.decision {
                obj.insert("decision".into(), d);
            }
            if let Some(secs) = self.retry_after {
                obj.insert("retry_after".into(), secs.into());
            }
        }
        reply(status, json!({ "error": error }))
    }
}

/// A failure inside the enclave that the API does not name is `internal`.
impl From<EnclaveError> for ApiError {
    fn from(e: EnclaveError) -> Self {
        Self::new(
            e.code.api_code().unwrap_or(ApiErrorCode::Internal),
            e.message,
        )
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
