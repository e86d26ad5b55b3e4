//! The REST API. Every answer about a key comes from the enclave, which authenticates the
//! stored blob first; the proxy only relays and stores.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use strongroom_protocol::messages::{
    DIGEST_LEN, EnclaveError, ErrorCode, KeyInfo, MAX_LABEL_LEN, Request, Response as Answer,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::enclave_client::EnclaveClient;
use crate::store::Store;
use crate::unseal::Health;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The enclave.
    pub enclave: Arc<EnclaveClient>,
    /// Sealed blobs.
    pub store: Arc<dyn Store>,
    /// Unseal status.
    pub health: Arc<Health>,
}

/// An error answer: `{"error": {"code", "message"}}` with a fitting status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no key {id:?}"))
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<EnclaveError> for ApiError {
    fn from(e: EnclaveError) -> Self {
        let (status, code) = match e.code {
            ErrorCode::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ErrorCode::BadRequest => (StatusCode::BAD_REQUEST, "bad_request"),
            ErrorCode::KeyDestroyed => (StatusCode::GONE, "key_destroyed"),
            ErrorCode::BlobRejected => (StatusCode::BAD_GATEWAY, "blob_rejected"),
            _ => (StatusCode::BAD_GATEWAY, "enclave_error"),
        };
        Self::new(status, code, e.message)
    }
}

type ApiResult = Result<Response, ApiError>;

fn store_err(e: crate::store::StoreError) -> ApiError {
    tracing::error!(error = %e, "storage failure");
    ApiError::internal(e.to_string())
}

async fn ask(state: &AppState, request: Request) -> Result<Answer, ApiError> {
    match state.enclave.call(&request).await {
        Ok(Answer::Error(e)) => Err(e.into()),
        Ok(answer) => Ok(answer),
        Err(e) => {
            tracing::warn!(error = %e, "enclave unreachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                e.to_string(),
            ))
        }
    }
}

fn unexpected(answer: &Answer) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "enclave_error",
        format!("unexpected answer from the enclave: {answer:?}"),
    )
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Decodes `0x`-prefixed (or bare) hex.
fn hex_field(name: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    let digits = value.strip_prefix("0x").unwrap_or(value);
    hex::decode(digits).map_err(|_| ApiError::bad_request(format!("{name} is not hex")))
}

/// Key ids are 32 lowercase hex characters; anything else cannot name a key.
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiError::not_found(id))
    }
}

fn key_json(k: &KeyInfo) -> Value {
    let created = i64::try_from(k.created_at)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default();
    json!({
        "id": k.id,
        "label": k.label,
        "curve": k.curve,
        "public_key": format!("0x{}", hex::encode(&k.public_key)),
        "address": k.address,
        "created_at": created,
    })
}

async fn health(State(state): State<AppState>) -> Response {
    if state.health.is_ready() {
        (StatusCode::OK, axum::Json(json!({"status": "ready"}))).into_response()
    } else {
        let body = json!({"status": "starting", "detail": state.health.detail()});
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

#[derive(Deserialize)]
struct NonceQuery {
    nonce: Option<String>,
}

async fn attestation(State(state): State<AppState>, Query(q): Query<NonceQuery>) -> ApiResult {
    let nonce = q.nonce.map(|n| hex_field("nonce", &n)).transpose()?;
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(ApiError::bad_request("nonce longer than 512 bytes"));
    }
    match ask(
        &state,
        Request::GetAttestation {
            nonce: nonce.map(Into::into),
        },
    )
    .await?
    {
        Answer::Attestation { document } => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(document);
            Ok(axum::Json(json!({"document": b64})).into_response())
        }
        other => Err(unexpected(&other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    label: String,
}

async fn create_key(State(state): State<AppState>, body: Bytes) -> ApiResult {
    let req: CreateKey = parse_json(&body)?;
    if req.label.is_empty() || req.label.len() > MAX_LABEL_LEN {
        return Err(ApiError::bad_request(format!(
            "label must be 1 to {MAX_LABEL_LEN} bytes"
        )));
    }
    match ask(&state, Request::CreateKey { label: req.label }).await? {
        Answer::KeyCreated { key, sealed } => {
            state
                .store
                .insert_key(&key.id, &sealed, key.created_at)
                .map_err(store_err)?;
            tracing::info!(key_id = %key.id, address = %key.address, "key created");
            Ok((StatusCode::CREATED, axum::Json(key_json(&key))).into_response())
        }
        other => Err(unexpected(&other)),
    }
}

async fn describe(state: &AppState, id: &str, sealed: Vec<u8>) -> Result<KeyInfo, ApiError> {
    let request = Request::DescribeKey {
        key_id: id.to_string(),
        sealed: sealed.into(),
    };
    match ask(state, request).await? {
        Answer::Key(info) => Ok(info),
        other => Err(unexpected(&other)),
    }
}

fn blob(state: &AppState, id: &str) -> Result<Vec<u8>, ApiError> {
    check_id(id)?;
    state
        .store
        .key(id)
        .map_err(store_err)?
        .ok_or_else(|| ApiError::not_found(id))
}

async fn list_keys(State(state): State<AppState>) -> ApiResult {
    let mut keys = Vec::new();
    for (id, sealed) in state.store.keys().map_err(store_err)? {
        match describe(&state, &id, sealed).await {
            Ok(info) => keys.push(key_json(&info)),
            Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => return Err(e),
            Err(e) => {
                tracing::warn!(key_id = %id, error = %e.message, "stored key blob refused by the enclave; skipped")
            }
        }
    }
    Ok(axum::Json(json!({"keys": keys})).into_response())
}

async fn show_key(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let info = describe(&state, &id, blob(&state, &id)?).await?;
    Ok(axum::Json(key_json(&info)).into_response())
}

async fn destroy_key(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let sealed = blob(&state, &id)?;
    let request = Request::DestroyKey {
        key_id: id.clone(),
        sealed: sealed.into(),
    };
    match ask(&state, request).await? {
        Answer::KeyDestroyed {
            key_id,
            state: sealed_state,
        } if key_id == id => {
            state
                .store
                .destroy_key(&id, &sealed_state)
                .map_err(store_err)?;
            tracing::info!(key_id = %id, "key destroyed");
            Ok(axum::Json(json!({"id": id, "destroyed": true})).into_response())
        }
        other => Err(unexpected(&other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignDigest {
    digest: String,
}

async fn sign_digest(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: SignDigest = parse_json(&body)?;
    let digest = hex_field("digest", &req.digest)?;
    if digest.len() != DIGEST_LEN {
        return Err(ApiError::bad_request(format!(
            "digest must be {DIGEST_LEN} bytes, got {}",
            digest.len()
        )));
    }
    let sealed = blob(&state, &id)?;
    let request = Request::SignDigest {
        key_id: id.clone(),
        sealed: sealed.into(),
        digest: digest.into(),
    };
    match ask(&state, request).await? {
        Answer::Signature(sig) => {
            let mut full = Vec::with_capacity(65);
            full.extend_from_slice(&sig.r);
            full.extend_from_slice(&sig.s);
            full.push(sig.v);
            Ok(axum::Json(json!({
                "signature": format!("0x{}", hex::encode(full)),
                "r": format!("0x{}", hex::encode(&sig.r)),
                "s": format!("0x{}", hex::encode(&sig.s)),
                "v": sig.v,
            }))
            .into_response())
        }
        other => Err(unexpected(&other)),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/attestation", get(attestation))
        .route("/v1/keys", post(create_key).get(list_keys))
        .route("/v1/keys/{id}", get(show_key).delete(destroy_key))
        .route("/v1/keys/{id}/sign/digest", post(sign_digest))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
