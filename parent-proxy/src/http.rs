//! The REST API. Every answer about a key comes from the enclave, which authenticates the
//! stored blob first; the proxy only relays and stores.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use strongroom_protocol::messages::{
    Call, EnclaveError, ErrorCode, KeyInfo, MAX_CALL_BODY_LEN, Request, Response as Answer,
    SealedKey,
};

use crate::enclave_client::EnclaveClient;
use crate::metrics::{self, Metrics};
use crate::store::Store;
use crate::unseal::Health;

/// Largest request body accepted (what the enclave accepts in a call).
pub const MAX_BODY: usize = MAX_CALL_BODY_LEN;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The enclave.
    pub enclave: Arc<EnclaveClient>,
    /// Sealed blobs.
    pub store: Arc<dyn Store>,
    /// Unseal status.
    pub health: Arc<Health>,
    /// The metrics registry (shared with the enclave and KMS clients).
    pub metrics: Arc<Metrics>,
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
    k.to_json()
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

/// The header a principal's stamp travels in.
pub const STAMP_HEADER: &str = "x-strongroom-stamp";

/// Which sealed key blob a relayed call needs: the path's key, or a pending request's.
fn call_key(state: &AppState, path: &str) -> Result<Option<SealedKey>, ApiError> {
    let parts: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .collect();
    let key_id = match parts.as_slice() {
        ["", "v1", "keys", id, ..] => Some(id.to_string()),
        ["", "v1", "requests", id, "approve" | "execute"] => {
            state.store.request_key(id).map_err(store_err)?
        }
        _ => None,
    };
    match key_id {
        Some(id) => Ok(Some(SealedKey {
            sealed: blob(state, &id)?.into(),
            id,
        })),
        None => Ok(None),
    }
}

/// Relays a principal's call to the enclave unchanged (method, path, body, stamp), with
/// the sealed blob it needs; stores what the answer asks to store; returns the enclave's
/// status and body as they are.
async fn relay(
    State(state): State<AppState>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    // A body over the limit (or unreadable) answers in the API's JSON error shape, like
    // every other refusal, rather than as axum's plain text.
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("body larger than {MAX_BODY} bytes"),
            )
        } else {
            ApiError::bad_request(e.body_text())
        }
    })?;
    let path = uri
        .0
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.0.path().to_string());
    let stamp = match headers.get(STAMP_HEADER) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("the stamp header is not ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let key = call_key(&state, &path)?;
    let call = Call {
        method: method.as_str().to_string(),
        path,
        body: body.to_vec().into(),
        stamp,
        key,
    };
    let answer = match ask(&state, Request::Call(call)).await? {
        Answer::Answer(a) => a,
        other => return Err(unexpected(&other)),
    };
    state.metrics.observe_answer_body(&answer.body);
    state.store.apply(&answer.effects).map_err(store_err)?;
    if let Some(created) = &answer.effects.key_created {
        tracing::info!(key_id = %created.info.id, address = %created.info.address, "key created");
    }
    if let Some(id) = &answer.effects.key_destroyed {
        tracing::info!(key_id = %id, "key destroyed");
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer.body.into_vec(),
    )
        .into_response())
}

/// `GET /metrics`: the Prometheus/OpenMetrics exposition.
///
/// Unauthenticated, on the API's listener: bind the proxy (or filter the port) so that only
/// the parent's network reaches it. It reveals request counts, latencies, policy rule names
/// and decision counts, and KMS/enclave health, but no keys, stamps, bodies or other secrets.
async fn metrics_endpoint(State(state): State<AppState>) -> Response {
    state.metrics.set_ready(state.health.is_ready());
    (
        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

/// Counts every request under its route template (the raw path would make the label set
/// unbounded), or `unmatched` when no route matched.
async fn track(
    State(metrics): State<Arc<Metrics>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || metrics::UNMATCHED.to_string(),
        |p| p.as_str().to_string(),
    );
    let response = next.run(request).await;
    metrics.observe_http(
        method.as_str(),
        &route,
        response.status().as_u16(),
        start.elapsed(),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .route("/metrics", get(metrics_endpoint))
        .route("/v1/health", get(health))
        .route("/v1/attestation", get(attestation))
        .route("/v1/keys", post(relay).get(list_keys))
        .route("/v1/keys/{id}", get(show_key).delete(relay))
        .route("/v1/keys/{id}/sign/{kind}", post(relay))
        .route("/v1/policy", get(relay))
        .route("/v1/policy/proposals", get(relay).post(relay))
        .route("/v1/policy/proposals/{id}", get(relay))
        .route("/v1/policy/proposals/{id}/{verb}", post(relay))
        .route("/v1/requests", get(relay))
        .route("/v1/requests/{id}", get(relay))
        .route("/v1/requests/{id}/{verb}", post(relay))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(metrics, track))
        .with_state(state)
}
