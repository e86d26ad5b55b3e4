//! The REST API. Every answer about a key, the policy, requests or the audit head comes
//! from the enclave, which authenticates the stored blobs it is given and signs its answer
//! (the `X-Strongroom-Answer` header); the proxy only relays and stores. The audit chain is
//! served from storage: each entry carries the enclave's signature.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, OriginalUri, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use strongroom_api::{ANSWER_HEADER, ApiErrorCode, Route, STAMP_HEADER};
use strongroom_protocol::messages::{
    Call, EnclaveError, MAX_CALL_BODY_LEN, MAX_CALL_KEYS, Request, Response as Answer, SealedKey,
};

use crate::audit::AuditTracker;
use crate::enclave_client::EnclaveClient;
use crate::metrics::{self, Metrics};
use crate::replica::{Replica, ReplicaError};
use crate::rpc_tokens::RpcTokens;
use crate::unseal::Health;
use strongroom_store::Store;

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
    /// How much of the audit chain is stored.
    pub audit: Arc<AuditTracker>,
    /// JSON-RPC bearer tokens and the principal keys they stamp with, if configured.
    pub rpc_tokens: Option<Arc<RpcTokens>>,
    /// One of several replicas sharing the log, if so (`--replica`).
    pub replica: Option<Arc<Replica>>,
}

/// An error answer: `{"error": {"code", "message"}}` with the code's status.
#[derive(Debug)]
pub struct ApiError {
    code: ApiErrorCode,
    message: String,
}

impl ApiError {
    fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::BadRequest, message)
    }

    fn not_found(id: &str) -> Self {
        Self::new(ApiErrorCode::NotFound, format!("no key {id:?}"))
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(ApiErrorCode::Internal, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message}});
        (status, axum::Json(body)).into_response()
    }
}

/// A failure inside the enclave that the API does not name is `enclave_error`.
impl From<EnclaveError> for ApiError {
    fn from(e: EnclaveError) -> Self {
        Self::new(
            e.code.api_code().unwrap_or(ApiErrorCode::EnclaveError),
            e.message,
        )
    }
}

type ApiResult = Result<Response, ApiError>;

/// A replica's failure: the database's unavailability and contention are retriable 503s
/// (nothing was released), the enclave's refusals keep their codes.
fn replica_err(e: ReplicaError) -> ApiError {
    match e {
        ReplicaError::Store(e) => store_err(e),
        ReplicaError::Contended(_) => ApiError::new(ApiErrorCode::NotReady, e.to_string()),
        ReplicaError::Enclave(crate::unseal::UnsealError::Refused(e)) => e.into(),
        ReplicaError::Enclave(crate::unseal::UnsealError::Store(e)) => store_err(e),
        ReplicaError::Enclave(crate::unseal::UnsealError::Enclave(e)) => {
            tracing::warn!(error = %e, "enclave unreachable");
            ApiError::new(ApiErrorCode::NotReady, e.to_string())
        }
        ReplicaError::Enclave(e) => ApiError::new(ApiErrorCode::EnclaveError, e.to_string()),
    }
}

fn store_err(e: strongroom_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "storage failure");
    if e.is_unavailable() {
        ApiError::new(ApiErrorCode::StorageUnavailable, e.to_string())
    } else {
        ApiError::internal(e.to_string())
    }
}

async fn ask(state: &AppState, request: Request) -> Result<Answer, ApiError> {
    match state.enclave.call(&request).await {
        Ok(Answer::Error(e)) => Err(e.into()),
        Ok(answer) => Ok(answer),
        Err(e) => {
            tracing::warn!(error = %e, "enclave unreachable");
            Err(ApiError::new(ApiErrorCode::NotReady, e.to_string()))
        }
    }
}

fn unexpected(answer: &Answer) -> ApiError {
    ApiError::new(
        ApiErrorCode::EnclaveError,
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

async fn blob(state: &AppState, id: &str) -> Result<Vec<u8>, ApiError> {
    check_id(id)?;
    state
        .store
        .key(id)
        .await
        .map_err(store_err)?
        .ok_or_else(|| ApiError::not_found(id))
}

/// A query parameter's value (no percent-decoding: the values used here are hex and digits).
fn query_param<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    path.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The page of key blobs a key listing carries: `?after=ID&limit=N` (at most
/// [`MAX_CALL_KEYS`]; the enclave checks the limit too and signs the page).
async fn key_page(state: &AppState, path: &str) -> Result<Vec<SealedKey>, ApiError> {
    let limit = query_param(path, "limit")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(MAX_CALL_KEYS)
        .clamp(1, MAX_CALL_KEYS);
    let page = state
        .store
        .key_page(query_param(path, "after"), limit)
        .await
        .map_err(store_err)?;
    Ok(page
        .into_iter()
        .map(|(id, sealed)| SealedKey {
            id,
            sealed: sealed.into(),
        })
        .collect())
}

/// Which sealed key blob a relayed call needs: the route's key, or a pending request's.
async fn call_key(state: &AppState, route: &Route) -> Result<Option<SealedKey>, ApiError> {
    let key_id = match (route.key_id(), route.signing_request_id()) {
        (Some(id), _) => Some(id.to_string()),
        (None, Some(request)) => state.store.request_key(request).await.map_err(store_err)?,
        (None, None) => None,
    };
    match key_id {
        // Reading a request needs its key only to sign a replica's result again: without
        // the blob (the key destroyed since) the enclave answers without it.
        Some(id) if matches!(route, Route::GetRequest(_)) => Ok(state
            .store
            .key(&id)
            .await
            .map_err(store_err)?
            .map(|sealed| SealedKey {
                sealed: sealed.into(),
                id,
            })),
        Some(id) => Ok(Some(SealedKey {
            sealed: blob(state, &id).await?.into(),
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
                ApiErrorCode::TooLarge,
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
    if state.replica.is_none() && state.audit.take_resync() {
        resync_audit(&state).await?;
    }
    // A path the enclave does not route is relayed all the same: the enclave answers it.
    let route = Route::parse(method.as_str(), &path);
    let stamped = route.as_ref().is_some_and(Route::needs_stamp);
    let stamp = match stamp {
        None if route == Some(Route::Rpc) => match bearer_stamp(&state, &headers, &path, &body) {
            Ok(s) => s,
            Err(refusal) => return Ok(*refusal),
        },
        s => s,
    };
    let key = match &route {
        Some(route) => call_key(&state, route).await?,
        None => None,
    };
    let keys = match route {
        Some(Route::ListKeys) => key_page(&state, &path).await?,
        Some(Route::Rpc) => rpc_keys(&state, &body).await?,
        _ => Vec::new(),
    };
    let call = Call {
        method: method.as_str().to_string(),
        path,
        body: body.to_vec().into(),
        stamp,
        key,
        keys,
        audit_stored: state.replica.is_none().then(|| state.audit.stored()),
    };
    let answer = match &state.replica {
        Some(replica) => {
            let answer = replica
                .call(
                    &state.enclave,
                    state.store.as_ref(),
                    &state.metrics,
                    call,
                    stamped,
                )
                .await
                .map_err(replica_err)?;
            state.metrics.observe_answer_body(&answer.body);
            answer
        }
        None => relay_single(&state, call).await?,
    };
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        answer.body.into_vec(),
    )
        .into_response();
    if let Some(value) = answer
        .signature
        .as_deref()
        .and_then(|s| axum::http::HeaderValue::from_str(s).ok())
    {
        response.headers_mut().insert(ANSWER_HEADER, value);
    }
    Ok(response)
}

/// A single enclave's call: its answer comes with what to store, which is stored (with the
/// answers beside it) before the answer is released, after every record before its own.
async fn relay_single(
    state: &AppState,
    call: Call,
) -> Result<strongroom_protocol::messages::Answer, ApiError> {
    let mut answer = match ask(state, Request::Call(call)).await? {
        Answer::Answer(a) => a,
        other => return Err(unexpected(&other)),
    };
    state.metrics.observe_answer_body(&answer.body);
    let effects = std::mem::take(&mut answer.effects);
    let seqs: Vec<u64> = effects.audit.iter().map(|r| r.seq).collect();
    let created = effects
        .key_created
        .as_ref()
        .map(|c| (c.info.id.clone(), c.info.address.clone()));
    let destroyed = effects.key_destroyed.clone();
    // The store's commit thread groups this with the answers queued beside it (one fsync).
    let stored = state.store.apply(effects).await;
    if let Err(e) = stored {
        // The enclave keeps the entries until told they are stored; fetch them again
        // before the next call.
        state.audit.store_failed();
        return Err(store_err(e));
    }
    state.audit.stored_entries(seqs.iter().copied());
    // Nothing is released before every record up to this answer's is stored.
    if let Some(&last) = seqs.iter().max()
        && !state.audit.wait_stored(last, ORDER_WAIT).await
    {
        resync_audit(state).await?;
        if !state.audit.wait_stored(last, ORDER_WAIT).await {
            return Err(ApiError::new(
                ApiErrorCode::AuditBacklog,
                format!(
                    "audit records before {last} are not stored yet; the answer is held back \
                     until they are"
                ),
            ));
        }
    }
    if let Some((id, address)) = created {
        tracing::info!(key_id = %id, %address, "key created");
    }
    if let Some(id) = destroyed {
        tracing::info!(key_id = %id, "key destroyed");
    }
    Ok(answer)
}

/// For a JSON-RPC call with `Authorization: Bearer TOKEN` and no stamp: the stamp the
/// proxy makes with the principal key bound to the token (see [`RpcTokens`] for what this
/// trusts). An unknown token is refused here, in JSON-RPC's shape, with 401.
fn bearer_stamp(
    state: &AppState,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<Option<String>, Box<Response>> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let refuse = |message: &str| {
        let body = json!({"jsonrpc": "2.0", "id": null,
                          "error": {"code": -32002, "message": message}});
        Box::new((StatusCode::UNAUTHORIZED, axum::Json(body)).into_response())
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| refuse("the Authorization header must be `Bearer TOKEN`"))?;
    let Some(tokens) = &state.rpc_tokens else {
        return Err(refuse(
            "this proxy has no JSON-RPC bearer tokens configured; stamp the request instead",
        ));
    };
    let key = tokens
        .key_for(token.trim())
        .ok_or_else(|| refuse("unknown bearer token"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    RpcTokens::stamp(key, Route::Rpc.method(), path, body, now)
        .map(Some)
        .map_err(|_| refuse("no randomness for a stamp nonce"))
}

/// The key blobs a JSON-RPC call needs: every key (a page) for `eth_accounts`, and the
/// key of each address a signing method names. The proxy reads the body only to pick
/// blobs; the enclave decodes it again and checks each blob's address itself.
async fn rpc_keys(state: &AppState, body: &[u8]) -> Result<Vec<SealedKey>, ApiError> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Ok(Vec::new());
    };
    let requests = match &value {
        serde_json::Value::Array(items) => items.iter().collect::<Vec<_>>(),
        one => vec![one],
    };
    let mut ids: Vec<String> = Vec::new();
    let mut all = false;
    for r in requests {
        let params = &r["params"];
        let address = match r["method"].as_str() {
            Some("eth_accounts") => {
                all = true;
                None
            }
            Some("eth_signTransaction") => params[0]["from"].as_str(),
            Some("eth_sign" | "eth_signTypedData" | "eth_signTypedData_v4") => params[0].as_str(),
            Some("personal_sign") => params[1].as_str(),
            _ => None,
        };
        if let Some(address) = address
            && let Some(id) = state
                .store
                .key_by_address(address)
                .await
                .map_err(store_err)?
            && !ids.contains(&id)
        {
            ids.push(id);
        }
    }
    let mut keys = Vec::with_capacity(ids.len());
    if all {
        keys = state
            .store
            .key_page(None, MAX_CALL_KEYS)
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|(id, sealed)| SealedKey {
                id,
                sealed: sealed.into(),
            })
            .collect();
    }
    for id in ids {
        if keys.len() >= MAX_CALL_KEYS {
            break;
        }
        if !keys.iter().any(|k| k.id == id) {
            keys.push(SealedKey {
                sealed: blob(state, &id).await?.into(),
                id,
            });
        }
    }
    Ok(keys)
}

/// How long an answer waits for the records before its own to be stored (they are in
/// flight in concurrent answers) before fetching them from the enclave.
const ORDER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Fetches the audit entries the enclave still holds for us, page by page, and stores them.
async fn resync_audit(state: &AppState) -> Result<(), ApiError> {
    let first = state.audit.stored();
    let mut from = first;
    loop {
        let entries = match ask(state, Request::AuditBacklog { from }).await {
            Ok(Answer::AuditEntries(entries)) => entries,
            Ok(other) => {
                state.audit.store_failed();
                return Err(unexpected(&other));
            }
            Err(e) => {
                state.audit.store_failed();
                return Err(e);
            }
        };
        let Some(last) = entries.last().map(|r| r.seq) else {
            break;
        };
        if let Err(e) = state.store.put_audit(&entries).await {
            state.audit.store_failed();
            return Err(store_err(e));
        }
        state.audit.stored_entries(entries.iter().map(|r| r.seq));
        if last < from {
            break;
        }
        from = last + 1;
    }
    tracing::info!(
        from = first,
        to = from,
        "stored the enclave's audit backlog"
    );
    Ok(())
}

/// Entries per database read while streaming the audit chain.
const AUDIT_BATCH: usize = 1000;

#[derive(Deserialize)]
struct AuditQuery {
    from: Option<u64>,
    limit: Option<u64>,
}

/// `GET /v1/audit?from=SEQ&limit=N`: the stored chain from `from` (default 0), at most
/// `limit` entries (default: all), as NDJSON, one `{"entry":…,"signature":…}` per line,
/// streamed in batches so a long chain never sits in memory whole. Each entry is signed by
/// the enclave; `strongroom audit verify` checks the chain.
async fn audit_stream(State(state): State<AppState>, Query(q): Query<AuditQuery>) -> Response {
    let from = q.from.unwrap_or(0);
    let limit = q.limit.unwrap_or(u64::MAX);
    let store = Arc::clone(&state.store);
    let stream = futures_util::stream::unfold((from, limit, false), move |(next, left, done)| {
        let store = Arc::clone(&store);
        async move {
            if done || left == 0 {
                return None;
            }
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(AUDIT_BATCH);
            let batch = store
                .audit_range(next, want)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()));
            match batch {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map_or(next, |(seq, _)| *seq);
                    let n = rows.len() as u64;
                    let mut chunk = String::with_capacity(rows.len() * 512);
                    for (_, line) in rows {
                        chunk.push_str(&line);
                        chunk.push('\n');
                    }
                    let finished = n < want as u64;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(chunk)),
                        (last + 1, left - n, finished),
                    ))
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading the audit chain");
                    Some((Err(e), (next, 0, true)))
                }
            }
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
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
    ApiError::new(ApiErrorCode::NotFound, "no such route")
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .route("/metrics", get(metrics_endpoint))
        .route("/v1/health", get(health))
        .route("/v1/attestation", get(attestation))
        .route("/v1/keys", post(relay).get(relay))
        .route("/v1/keys/{id}", get(relay).delete(relay))
        .route("/v1/audit", get(audit_stream))
        .route("/v1/audit/head", get(relay))
        .route("/v1/keys/{id}/sign/{kind}", post(relay))
        .route("/v1/policy", get(relay))
        .route("/v1/policy/proposals", get(relay).post(relay))
        .route("/v1/policy/proposals/{id}", get(relay))
        .route("/v1/policy/proposals/{id}/{verb}", post(relay))
        .route("/v1/requests", get(relay))
        .route("/v1/requests/{id}", get(relay))
        .route("/v1/requests/{id}/{verb}", post(relay))
        .route("/rpc", post(relay))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(metrics, track))
        .with_state(state)
}
