//! The HTTP face: the AWS JSON 1.1 protocol as KMS serves it.

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio::net::TcpListener;

use crate::Error;
use crate::error::{ApiError, Code};
use crate::service::{MockKms, random_uuid};

/// Largest request body accepted, in bytes. KMS requests are small; the largest members are
/// a key policy (32 KiB) and an attestation document (a few KiB, base64).
pub const MAX_BODY_LEN: usize = 128 * 1024;
/// Content type of every KMS request and response.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Prefix of `X-Amz-Target` for KMS operations.
pub const TARGET_PREFIX: &str = "TrentService.";

static REQUEST_ID: HeaderName = HeaderName::from_static("x-amzn-requestid");
static ERROR_TYPE: HeaderName = HeaderName::from_static("x-amzn-errortype");
static TARGET: HeaderName = HeaderName::from_static("x-amz-target");

impl MockKms {
    /// The HTTP router: `POST /` with `X-Amz-Target: TrentService.<Operation>`.
    ///
    /// SigV4 `Authorization` headers are accepted and not verified: the mock reproduces
    /// KMS's behaviour, not IAM's authentication.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(handle))
            .fallback(fallback)
            .layer(DefaultBodyLimit::max(MAX_BODY_LEN))
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
    ///
    /// # Errors
    /// [`Error::Server`] if the listener fails.
    pub async fn serve<F>(self, listener: TcpListener, shutdown: F) -> Result<(), Error>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Server)
    }
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn respond(request_id: &str, status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(REQUEST_ID.clone(), header_value(request_id));
    response
}

fn error_response(request_id: &str, error: &ApiError) -> Response {
    let name = error.code.name();
    let body = match &error.message {
        Some(message) => json!({ "__type": name, "message": message }),
        None => json!({ "__type": name }),
    };
    let mut response = respond(
        request_id,
        error.code.status(),
        body.to_string().into_bytes(),
    );
    response
        .headers_mut()
        .insert(ERROR_TYPE.clone(), HeaderValue::from_static(name));
    response
}

async fn handle(
    State(kms): State<MockKms>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id =
        random_uuid().unwrap_or_else(|_| "00000000-0000-0000-0000-000000000000".into());
    let target = headers
        .get(&TARGET)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let result = run(&kms, &headers, &target, body).await;
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(&target);
    match result {
        Ok(body) => {
            tracing::info!(%request_id, %operation, "ok");
            respond(&request_id, StatusCode::OK, body)
        }
        Err(error) => {
            tracing::info!(%request_id, %operation, error = error.code.name(), message = ?error.message, "refused");
            error_response(&request_id, &error)
        }
    }
}

async fn run(
    kms: &MockKms,
    headers: &HeaderMap,
    target: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, ApiError> {
    let Some(operation) = target.strip_prefix(TARGET_PREFIX) else {
        return Err(ApiError::new(
            Code::UnknownOperation,
            format!("X-Amz-Target {target:?} does not name a TrentService operation"),
        ));
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some(CONTENT_TYPE) {
        return Err(ApiError::new(
            Code::UnknownOperation,
            format!("Content-Type {content_type:?} is not {CONTENT_TYPE}"),
        ));
    }
    let body = body.map_err(|rejection| {
        let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Code::RequestEntityTooLarge
        } else {
            Code::Serialization
        };
        ApiError::new(
            code,
            format!("The request body could not be read: {rejection}"),
        )
    })?;
    let operation = operation.to_string();
    let kms = kms.clone();
    // Attestation verification and RSA encryption are CPU work, and state saves are
    // blocking I/O: keep them off the async workers.
    tokio::task::spawn_blocking(move || kms.dispatch(&operation, &body))
        .await
        .map_err(|_| ApiError::internal(Error::Internal("request task failed")))?
}

async fn fallback() -> Response {
    let request_id = random_uuid().unwrap_or_default();
    error_response(
        &request_id,
        &ApiError::new(
            Code::UnknownOperation,
            "KMS operations are POST / with X-Amz-Target: TrentService.<Operation>",
        ),
    )
}
