//! Principals' calls: the enclave checks the stamp over the exact method, path and body,
//! decodes the body itself, asks the policy, signs, and answers with the HTTP status and
//! JSON body the proxy returns unchanged. The proxy only adds the sealed key blob the path
//! names and stores the effects.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use strongroom_auth::{MAX_VALIDITY_SECS, PrincipalKey, Request as StampedRequest, authenticate};
use strongroom_identity::Checkpoint;
use strongroom_policy::{Action, Context, Decision, Intent, KeyRef, Outcome, Policy};
use strongroom_protocol::messages::{
    Answer, Call, CreatedKey, Effects, KeyInfo, MAX_CALL_BODY_LEN, MAX_CALL_KEYS, MAX_METHOD_LEN,
    MAX_PATH_LEN, PendingRef, SealedKey, SealedState,
};

use crate::audit::AuditLog;
use crate::governance::{AdminSet, Change, MAX_PROPOSALS, Proposal, ProposalBody, proposal_digest};
use crate::keys::KeyRecord;
use crate::payload;
use crate::requests::{PendingRequest, Status};
use crate::state::EnclaveState;

/// A refusal, answered as `{"error": {"code", "message", "decision"?}}`.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: u16,
    code: &'static str,
    pub(crate) message: String,
    decision: Option<Value>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
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
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }
    fn denied(decision: &Decision) -> Self {
        Self {
            status: 403,
            code: "denied",
            message: decision.reason.clone(),
            decision: Some(decision_json(decision)),
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
        Answer {
            status: self.status,
            body: json_bytes(&json!({ "error": error })).into(),
            effects: Effects::default(),
            signature: None,
        }
    }
}

impl From<strongroom_protocol::messages::EnclaveError> for ApiError {
    fn from(e: strongroom_protocol::messages::EnclaveError) -> Self {
        use strongroom_protocol::messages::ErrorCode;
        match e.code {
            ErrorCode::NotReady => Self::new(503, "not_ready", e.message),
            ErrorCode::BadRequest => Self::bad_request(e.message),
            ErrorCode::KeyDestroyed => Self::new(410, "key_destroyed", e.message),
            ErrorCode::BlobRejected => Self::new(502, "blob_rejected", e.message),
            _ => Self::internal(e.message),
        }
    }
}

pub(crate) type ApiResult = Result<Answer, ApiError>;

fn json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// An answer with a JSON body and no effects.
pub(crate) fn reply(status: u16, body: Value) -> Answer {
    Answer {
        status,
        body: json_bytes(&body).into(),
        effects: Effects::default(),
        signature: None,
    }
}

/// A decision as JSON.
pub fn decision_json(d: &Decision) -> Value {
    serde_json::to_value(d).unwrap_or(Value::Null)
}

/// The routes the enclave answers; the proxy relays anything under these prefixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /v1/keys` (the proxy attaches a page of key blobs)
    ListKeys,
    /// `GET /v1/keys/{id}`
    GetKey(String),
    /// `GET /v1/audit/head`
    AuditHead,
    /// `POST /v1/keys`
    CreateKey,
    /// `DELETE /v1/keys/{id}`
    DestroyKey(String),
    /// `POST /v1/keys/{id}/sign/{transaction|typed-data|message|digest}`
    Sign(String, Action),
    /// `GET /v1/policy`
    GetPolicy,
    /// `POST /v1/policy/proposals`
    Propose,
    /// `GET /v1/policy/proposals`
    ListProposals,
    /// `GET /v1/policy/proposals/{id}`
    GetProposal(String),
    /// `POST /v1/policy/proposals/{id}/approve`
    ApproveProposal(String),
    /// `POST /v1/policy/proposals/{id}/cancel`
    CancelProposal(String),
    /// `GET /v1/requests`
    ListRequests,
    /// `GET /v1/requests/{id}`
    GetRequest(String),
    /// `POST /v1/requests/{id}/approve`
    ApproveRequest(String),
    /// `POST /v1/requests/{id}/execute`
    ExecuteRequest(String),
    /// `POST /v1/requests/{id}/cancel`
    CancelRequest(String),
    /// `POST /rpc` (Ethereum JSON-RPC)
    Rpc,
}

impl Route {
    /// Routes a method and path (any query string is ignored for routing but covered by
    /// the stamp).
    pub fn parse(method: &str, path: &str) -> Option<Route> {
        let path = path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.split('/').collect();
        let id = |s: &str| s.to_string();
        Some(match (method, parts.as_slice()) {
            ("GET", ["", "v1", "keys"]) => Route::ListKeys,
            ("GET", ["", "v1", "keys", k]) => Route::GetKey(id(k)),
            ("GET", ["", "v1", "audit", "head"]) => Route::AuditHead,
            ("POST", ["", "v1", "keys"]) => Route::CreateKey,
            ("DELETE", ["", "v1", "keys", k]) => Route::DestroyKey(id(k)),
            ("POST", ["", "v1", "keys", k, "sign", what]) => {
                let action = match *what {
                    "transaction" => Action::SignTransaction,
                    "typed-data" => Action::SignTypedData,
                    "message" => Action::SignMessage,
                    "digest" => Action::SignDigest,
                    _ => return None,
                };
                Route::Sign(id(k), action)
            }
            ("GET", ["", "v1", "policy"]) => Route::GetPolicy,
            ("POST", ["", "v1", "policy", "proposals"]) => Route::Propose,
            ("GET", ["", "v1", "policy", "proposals"]) => Route::ListProposals,
            ("GET", ["", "v1", "policy", "proposals", p]) => Route::GetProposal(id(p)),
            ("POST", ["", "v1", "policy", "proposals", p, "approve"]) => {
                Route::ApproveProposal(id(p))
            }
            ("POST", ["", "v1", "policy", "proposals", p, "cancel"]) => {
                Route::CancelProposal(id(p))
            }
            ("GET", ["", "v1", "requests"]) => Route::ListRequests,
            ("GET", ["", "v1", "requests", r]) => Route::GetRequest(id(r)),
            ("POST", ["", "v1", "requests", r, "approve"]) => Route::ApproveRequest(id(r)),
            ("POST", ["", "v1", "requests", r, "execute"]) => Route::ExecuteRequest(id(r)),
            ("POST", ["", "v1", "requests", r, "cancel"]) => Route::CancelRequest(id(r)),
            ("POST", ["", "rpc"]) => Route::Rpc,
            _ => return None,
        })
    }

    /// Reads need no stamp: they reveal nothing secret, and change nothing.
    pub fn needs_stamp(&self) -> bool {
        !matches!(
            self,
            Route::ListKeys
                | Route::GetKey(_)
                | Route::AuditHead
                | Route::GetPolicy
                | Route::ListProposals
                | Route::GetProposal(_)
                | Route::ListRequests
                | Route::GetRequest(_)
        )
    }
}

/// Who signed a stamp.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal key id.
    pub key_id: String,
    /// The principal it belongs to, if any.
    pub principal: Option<String>,
    /// True if the key is in the admin set.
    pub admin: bool,
}

impl Caller {
    fn principal(&self) -> Result<&str, ApiError> {
        self.principal.as_deref().ok_or_else(|| {
            ApiError::forbidden(format!(
                "key {} is an admin key, not a principal's; principals make requests",
                self.key_id
            ))
        })
    }
}

/// Every key that may sign a stamp: principals' keys from the policy and the admins' keys.
#[derive(Debug, Default)]
pub struct KeyTable {
    keys: HashMap<String, (PrincipalKey, Option<String>, bool)>,
}

impl KeyTable {
    /// Builds the table for a policy and an admin set.
    pub fn build(policy: &Policy, admins: &AdminSet) -> Self {
        let mut keys = HashMap::new();
        for principal in policy.principals() {
            for key in &principal.keys {
                keys.insert(
                    key.id().to_string(),
                    (key.clone(), Some(principal.id.clone()), false),
                );
            }
        }
        for key in admins.keys() {
            keys.entry(key.id().to_string())
                .and_modify(|e: &mut (PrincipalKey, Option<String>, bool)| e.2 = true)
                .or_insert_with(|| (key.clone(), None, true));
        }
        Self { keys }
    }

    fn lookup(&self, id: &str) -> Option<&PrincipalKey> {
        self.keys.get(id).map(|(k, _, _)| k)
    }

    fn caller(&self, id: &str) -> Option<Caller> {
        self.keys.get(id).map(|(k, p, a)| Caller {
            key_id: k.id().to_string(),
            principal: p.clone(),
            admin: *a,
        })
    }
}

/// What a call handler needs from the enclave: sealing, randomness, time and its state.
pub trait Host {
    /// Seconds since the Unix epoch (enclave clock).
    fn now(&self) -> u64;
    /// When this enclave unsealed; stamps expiring within the validity window of it are
    /// refused (see [`check_horizon`]).
    fn boot_time(&self) -> u64;
    /// Seals the state; returns the sealed blob.
    fn seal_state(&self, state: &EnclaveState) -> Result<Vec<u8>, ApiError>;
    /// Fresh random bytes.
    fn random(&self, out: &mut [u8]) -> Result<(), ApiError>;
    /// Opens the sealed key blob that came with the call, checking it is `key_id`'s.
    fn open_key(&self, key_id: &str, call: &Call) -> Result<KeyRecord, ApiError>;
    /// Opens one sealed key blob, checking it is the id it is filed under.
    fn open_sealed(&self, key: &SealedKey) -> Result<KeyRecord, ApiError>;
    /// The digest of the call being answered (method, path, body, stamp), which the
    /// answer's signature and the call's audit entries name.
    fn request_digest(&self) -> [u8; 32];
    /// Appends an audit entry (under the state lock, so entries follow the order in which
    /// decisions took effect).
    fn audit(
        &self,
        g: &mut Governed,
        kind: &str,
        fields: Map<String, Value>,
    ) -> Result<(), ApiError>;
    /// A signed checkpoint of the audit chain's head.
    fn checkpoint(&self, g: &Governed) -> Option<Checkpoint>;
    /// Makes and seals a new key.
    fn create_key(&self, label: String) -> Result<(KeyInfo, Vec<u8>), ApiError>;
}

/// The replay memory starts at boot: a stamp that expires before `boot + MAX_VALIDITY` may
/// have been used before this boot, when the replay cache was another one, so it is
/// refused. No stored state is involved, so a parent rolling state back cannot reopen a
/// replay window. Clients that stamp with the full validity never see this.
pub fn check_horizon(expires_at: u64, boot_time: u64) -> Result<(), ApiError> {
    let horizon = boot_time.saturating_add(MAX_VALIDITY_SECS);
    if expires_at < horizon {
        let mut e = ApiError::new(
            401,
            "stamp_before_boot",
            format!(
                "stamp expires at {expires_at}, before {horizon}: the enclave started at \
                 {boot_time} and accepts only stamps that expire at least {MAX_VALIDITY_SECS} \
                 s after its start (an earlier stamp may have been used before it started); \
                 stamp again with a later expiry"
            ),
        );
        e.retry_after = Some(horizon - expires_at);
        return Err(e);
    }
    Ok(())
}

/// The mutable part the handlers share, under one lock.
pub struct Governed {
    /// The sealed-state contents.
    pub state: EnclaveState,
    /// Stamp keys of the current policy and admin set.
    pub keys: Arc<KeyTable>,
    /// Nonces seen since boot.
    pub replay: strongroom_auth::ReplayCache,
    /// The audit chain's head and unconfirmed entries.
    pub audit: AuditLog,
}

impl Governed {
    /// Wraps a state.
    pub fn new(state: EnclaveState, replay_capacity: usize) -> Self {
        let keys = Arc::new(KeyTable::build(state.engine.policy(), &state.admins));
        let audit = AuditLog::new(state.audit_next, state.audit_head);
        Self {
            state,
            keys,
            replay: strongroom_auth::ReplayCache::new(replay_capacity),
            audit,
        }
    }

    fn rebuild_keys(&mut self) {
        self.keys = Arc::new(KeyTable::build(
            self.state.engine.policy(),
            &self.state.admins,
        ));
    }
}

/// The lock over [`Governed`].
pub type GovernedLock = std::sync::Mutex<Governed>;

fn lock(g: &GovernedLock) -> Result<std::sync::MutexGuard<'_, Governed>, ApiError> {
    g.lock()
        .map_err(|_| ApiError::internal("state lock poisoned"))
}

/// Seals the state after a change and returns the effect the proxy stores.
fn commit_state(host: &dyn Host, g: &mut Governed) -> Result<SealedState, ApiError> {
    g.state.seq += 1;
    (g.state.audit_next, g.state.audit_head) = g.audit.head();
    let sealed = host.seal_state(&g.state)?;
    Ok(SealedState {
        seq: g.state.seq,
        sealed: sealed.into(),
    })
}

fn random_id(host: &dyn Host) -> Result<String, ApiError> {
    let mut id = [0u8; 8];
    host.random(&mut id)?;
    Ok(hex::encode(id))
}

fn parse_hex32(name: &str, value: &str) -> Result<[u8; 32], ApiError> {
    let digits = value.strip_prefix("0x").unwrap_or(value);
    let bytes =
        hex::decode(digits).map_err(|_| ApiError::bad_request(format!("{name} is not hex")))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::bad_request(format!("{name} must be 32 bytes")))
}

/// Answers one call.
pub fn handle(host: &dyn Host, gov: &GovernedLock, call: &Call) -> Answer {
    match dispatch(host, gov, call) {
        Ok(answer) => answer,
        // JSON-RPC clients get refusals (stamp, size, backlog) in JSON-RPC's shape.
        Err(e) if Route::parse(&call.method, &call.path) == Some(Route::Rpc) => {
            crate::rpc::error_answer(e)
        }
        Err(e) => e.into_answer(),
    }
}

fn dispatch(host: &dyn Host, gov: &GovernedLock, call: &Call) -> ApiResult {
    if call.method.len() > MAX_METHOD_LEN || call.path.len() > MAX_PATH_LEN {
        return Err(ApiError::bad_request("method or path too long"));
    }
    if call.body.len() > MAX_CALL_BODY_LEN {
        return Err(ApiError::new(
            413,
            "too_large",
            format!("body larger than {MAX_CALL_BODY_LEN} bytes"),
        ));
    }
    if call.keys.len() > MAX_CALL_KEYS {
        return Err(ApiError::bad_request(format!(
            "more than {MAX_CALL_KEYS} key blobs in one call"
        )));
    }
    let route = Route::parse(&call.method, &call.path)
        .ok_or_else(|| ApiError::not_found("no such route"))?;
    {
        let mut g = lock(gov)?;
        if let Some(stored) = call.audit_stored {
            g.audit.acknowledge(stored);
        }
        // Every stamped call may decide something, and nothing is decided that might
        // never reach the audit chain.
        if route.needs_stamp() && g.audit.backlog_full() {
            return Err(ApiError::new(
                503,
                "audit_backlog",
                format!(
                    "{} audit entries wait for the proxy to store them; no new decisions \
                     until it does",
                    g.audit.unstored()
                ),
            ));
        }
    }
    let caller = if route.needs_stamp() {
        Some(authenticate_call(host, gov, call)?)
    } else {
        None
    };
    match (route, caller) {
        (Route::ListKeys, _) => list_keys(host, call),
        (Route::GetKey(id), _) => Ok(reply(200, host.open_key(&id, call)?.info().to_json())),
        (Route::AuditHead, _) => {
            let g = lock(gov)?;
            let checkpoint = host
                .checkpoint(&g)
                .ok_or_else(|| ApiError::internal("the audit chain is empty"))?;
            Ok(reply(200, checkpoint.to_json()))
        }
        (Route::GetPolicy, _) => get_policy(gov),
        (Route::ListProposals, _) => {
            let g = lock(gov)?;
            let list: Vec<Value> = g.state.proposals.iter().map(proposal_json).collect();
            Ok(reply(200, json!({ "proposals": list })))
        }
        (Route::GetProposal(id), _) => {
            let g = lock(gov)?;
            let p = g
                .state
                .proposals
                .iter()
                .find(|p| p.id == id)
                .ok_or_else(|| ApiError::not_found(format!("no open proposal {id:?}")))?;
            Ok(reply(200, json!({ "proposal": proposal_json(p) })))
        }
        (Route::ListRequests, _) => {
            let g = lock(gov)?;
            let list: Vec<Value> = g.state.requests.iter().map(request_json).collect();
            Ok(reply(200, json!({ "requests": list })))
        }
        (Route::GetRequest(id), _) => {
            let g = lock(gov)?;
            let r = g
                .state
                .requests
                .get(&id)
                .ok_or_else(|| ApiError::not_found(format!("no request {id:?}")))?;
            Ok(reply(200, json!({ "request": request_json(r) })))
        }
        (route, Some(caller)) => stamped(host, gov, call, route, &caller),
        (_, None) => Err(ApiError::internal("route needs a stamp")),
    }
}

fn stamped(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    route: Route,
    caller: &Caller,
) -> ApiResult {
    match route {
        Route::CreateKey => create_key(host, gov, call, caller),
        Route::DestroyKey(id) => destroy_key(host, gov, call, caller, &id),
        Route::Sign(id, action) => sign(host, gov, call, caller, &id, action),
        Route::Propose => propose(host, gov, call, caller),
        Route::ApproveProposal(id) => approve_proposal(host, gov, call, caller, &id),
        Route::CancelProposal(id) => cancel_proposal(host, gov, caller, &id),
        Route::ApproveRequest(id) => approve_request(host, gov, call, caller, &id),
        Route::ExecuteRequest(id) => execute_request(host, gov, call, caller, &id),
        Route::CancelRequest(id) => cancel_request(host, gov, caller, &id),
        Route::Rpc => crate::rpc::handle(host, gov, call, caller),
        _ => Err(ApiError::internal("unrouted call")),
    }
}

/// Checks the stamp: the signature outside the lock (it is the costly part), then the boot
/// horizon and the nonce under it.
fn authenticate_call(host: &dyn Host, gov: &GovernedLock, call: &Call) -> Result<Caller, ApiError> {
    let keys = Arc::clone(&lock(gov)?.keys);
    let now = host.now();
    let request = StampedRequest {
        method: &call.method,
        path: &call.path,
        body: &call.body,
    };
    let authenticated = authenticate(call.stamp.as_deref(), request, |id| keys.lookup(id), now)
        .map_err(|e| ApiError::unauthenticated(e.to_string()))?;
    check_horizon(authenticated.expires_at, host.boot_time())?;
    let key = {
        let mut g = lock(gov)?;
        authenticated
            .consume(&mut g.replay, now)
            .map_err(|e| ApiError::unauthenticated(e.to_string()))?
    };
    keys.caller(key.id())
        .ok_or_else(|| ApiError::unauthenticated("stamp key vanished"))
}

/// Default and largest page of `GET /v1/keys`.
const KEY_PAGE: usize = MAX_CALL_KEYS;

/// `GET /v1/keys[?after=ID&limit=N]`: the keys whose blobs the proxy attached (a page, in
/// id order after `after`), each opened and checked. Blobs that fail are listed under
/// `refused` rather than hidden. `next_after` is set when the page is full.
fn list_keys(host: &dyn Host, call: &Call) -> ApiResult {
    let limit = call
        .path
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("limit="))
        .map(|n| {
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=KEY_PAGE).contains(n))
                .ok_or_else(|| ApiError::bad_request(format!("limit must be 1 to {KEY_PAGE}")))
        })
        .transpose()?
        .unwrap_or(KEY_PAGE);
    if call.keys.len() > limit {
        return Err(ApiError::bad_request("more key blobs than the page holds"));
    }
    let mut keys = Vec::with_capacity(call.keys.len());
    let mut refused = Vec::new();
    for sealed in &call.keys {
        match host.open_sealed(sealed) {
            Ok(record) => keys.push(record.info().to_json()),
            Err(e) => refused.push(json!({"id": sealed.id, "reason": e.message})),
        }
    }
    let next = (call.keys.len() == limit)
        .then(|| call.keys.last().map(|k| k.id.clone()))
        .flatten();
    Ok(reply(
        200,
        json!({"keys": keys, "refused": refused, "next_after": next}),
    ))
}

/// The fields of every audit entry about a call: its digest and who made it.
fn call_fields(host: &dyn Host, caller: &Caller) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("request".into(), hex::encode(host.request_digest()).into());
    m.insert(
        "principal".into(),
        caller.principal.clone().map_or(Value::Null, Value::from),
    );
    m.insert("stamp_key".into(), caller.key_id.clone().into());
    m
}

/// A policy decision's audit fields: the call's, the action, key, decoded intent, and
/// the decision (result, rule, reason, and approval or time-lock details).
fn decision_fields(
    host: &dyn Host,
    caller: &Caller,
    action: Action,
    key: Option<&str>,
    intent: &Intent,
    decision: &Decision,
) -> Map<String, Value> {
    let mut m = call_fields(host, caller);
    m.insert("action".into(), action.as_str().into());
    m.insert("key".into(), key.map_or(Value::Null, Value::from));
    m.insert(
        "intent".into(),
        serde_json::to_value(intent).unwrap_or(Value::Null),
    );
    if let Value::Object(d) = decision_json(decision) {
        m.extend(d);
    }
    m
}

/// What a signature produced, for the audit entry: hashes and the signature, not the
/// (possibly large) raw transaction.
fn output_fields(body: &Value) -> Value {
    let mut out = Map::new();
    for name in ["hash", "signing_hash", "signature"] {
        if let Some(v) = body.get(name) {
            out.insert(name.into(), v.clone());
        }
    }
    Value::Object(out)
}

fn get_policy(gov: &GovernedLock) -> ApiResult {
    let g = lock(gov)?;
    let policy = g.state.engine.policy();
    let document: Value = serde_json::from_slice(&policy.to_canonical_json()).unwrap_or_default();
    let admins = g.state.admins.to_doc();
    let admin_ids: Vec<&str> = g.state.admins.keys().iter().map(|k| k.id()).collect();
    Ok(reply(
        200,
        json!({
            "policy": document,
            "policy_digest": hex::encode(policy.digest()),
            "admins": admins,
            "admin_key_ids": admin_ids,
            "admins_digest": hex::encode(g.state.admins.digest()),
            "genesis_digest": hex::encode(g.state.genesis),
            "state_seq": g.state.seq,
        }),
    ))
}

fn create_key(host: &dyn Host, gov: &GovernedLock, call: &Call, caller: &Caller) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        label: String,
    }
    let body: Body = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let principal = caller.principal()?;
    let intent = Intent::CreateKey {
        label: body.label.clone(),
    };
    let (decision, state) = decide_now(host, gov, principal, None, &intent)?;
    let fields = decision_fields(host, caller, Action::CreateKey, None, &intent, &decision);
    host.audit(&mut *lock(gov)?, "decision", fields)?;
    only_allow(&decision)?;
    let (info, sealed) = host.create_key(body.label)?;
    let mut fields = call_fields(host, caller);
    fields.insert("key".into(), info.id.clone().into());
    fields.insert("address".into(), info.address.clone().into());
    fields.insert("label".into(), info.label.clone().into());
    host.audit(&mut *lock(gov)?, "key_created", fields)?;
    // The key object of `GET /v1/keys/{id}`, with the decision beside its fields.
    let mut body = info.to_json();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("decision".into(), decision_json(&decision));
    }
    let mut answer = reply(201, body);
    answer.effects.state = state;
    answer.effects.key_created = Some(CreatedKey {
        info,
        sealed: sealed.into(),
    });
    Ok(answer)
}

fn only_allow(decision: &Decision) -> Result<(), ApiError> {
    match decision.outcome {
        Outcome::Allow => Ok(()),
        Outcome::Deny => Err(ApiError::denied(decision)),
        _ => {
            let mut e = ApiError::denied(decision);
            e.message = format!(
                "{} (approvals and time-locks apply to signing requests only)",
                decision.reason
            );
            Err(e)
        }
    }
}

/// Decides (and, for an Allow, records) under the lock; seals the state if it changed.
fn decide_now(
    host: &dyn Host,
    gov: &GovernedLock,
    principal: &str,
    key: Option<&KeyRecord>,
    intent: &Intent,
) -> Result<(Decision, Option<SealedState>), ApiError> {
    let now = host.now();
    let approvals = BTreeSet::new();
    let id_hex = key.map(|k| hex::encode(k.id));
    let mut g = lock(gov)?;
    let ctx = Context {
        principal,
        key: key.zip(id_hex.as_deref()).map(|(k, id)| KeyRef {
            id,
            label: &k.label,
        }),
        intent,
        now,
        requested_at: now,
        approvals: &approvals,
    };
    let before = g.state.engine.ledger().len();
    let decision = g.state.engine.decide_and_commit(&ctx);
    let state = if g.state.engine.ledger().len() != before {
        Some(commit_state(host, &mut g)?)
    } else {
        None
    };
    Ok((decision, state))
}

fn destroy_key(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    let principal = caller.principal()?;
    let record = host.open_key(id, call)?;
    let (decision, _) = decide_now(host, gov, principal, Some(&record), &Intent::DestroyKey)?;
    let fields = decision_fields(
        host,
        caller,
        Action::DestroyKey,
        Some(id),
        &Intent::DestroyKey,
        &decision,
    );
    host.audit(&mut *lock(gov)?, "decision", fields)?;
    only_allow(&decision)?;
    let mut g = lock(gov)?;
    if g.state.destroyed.len() >= crate::state::MAX_DESTROYED {
        return Err(ApiError::internal(
            "the enclave state holds the maximum number of destroyed keys",
        ));
    }
    g.state.destroyed.insert(record.id);
    let mut fields = call_fields(host, caller);
    fields.insert("key".into(), id.into());
    fields.insert("address".into(), record.info().address.into());
    host.audit(&mut g, "key_destroyed", fields)?;
    let state = commit_state(host, &mut g)?;
    drop(g);
    tracing::info!(key_id = %id, "key destroyed");
    let mut answer = reply(
        200,
        json!({"id": id, "destroyed": true, "decision": decision_json(&decision)}),
    );
    answer.effects.state = Some(state);
    answer.effects.key_destroyed = Some(id.to_string());
    Ok(answer)
}

fn sign(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
    action: Action,
) -> ApiResult {
    let record = host.open_key(id, call)?;
    sign_body(host, gov, caller, &record, action, &call.body)
}

/// Decodes a signing body (the REST form of `action`), asks the policy, and signs, holds
/// for approval or refuses; shared by the REST routes and JSON-RPC.
pub(crate) fn sign_body(
    host: &dyn Host,
    gov: &GovernedLock,
    caller: &Caller,
    record: &KeyRecord,
    action: Action,
    body: &[u8],
) -> ApiResult {
    let principal = caller.principal()?;
    let id_hex = hex::encode(record.id);
    let id = id_hex.as_str();
    let address = record.info().address;
    let (intent, job) =
        payload::decode(action, body, &address).map_err(|e| ApiError::bad_request(e.0))?;
    let now = host.now();
    let approvals = BTreeSet::new();
    let mut g = lock(gov)?;
    let ctx = Context {
        principal,
        key: Some(KeyRef {
            id,
            label: &record.label,
        }),
        intent: &intent,
        now,
        requested_at: now,
        approvals: &approvals,
    };
    let before = g.state.engine.ledger().len();
    let decision = g.state.engine.decide_and_commit(&ctx);
    match decision.outcome {
        Outcome::Deny => {
            let fields = decision_fields(host, caller, action, Some(id), &intent, &decision);
            host.audit(&mut g, "decision", fields)?;
            Err(ApiError::denied(&decision))
        }
        Outcome::Allow => {
            let state = if g.state.engine.ledger().len() != before {
                Some(commit_state(host, &mut g)?)
            } else {
                None
            };
            drop(g);
            let mut body = payload::sign(&job, record);
            // No signature leaves without its audit entry.
            let mut fields = decision_fields(host, caller, action, Some(id), &intent, &decision);
            fields.insert("output".into(), output_fields(&body));
            host.audit(&mut *lock(gov)?, "decision", fields)?;
            if let Some(obj) = body.as_object_mut() {
                obj.insert("decision".into(), decision_json(&decision));
            }
            let mut answer = reply(200, body);
            answer.effects.state = state;
            Ok(answer)
        }
        Outcome::NeedsApproval { .. } | Outcome::TimeLocked { .. } => {
            let request = PendingRequest {
                id: random_id(host)?,
                principal: principal.to_string(),
                key_id: id.to_string(),
                key_label: record.label.clone(),
                action,
                body: body.to_vec(),
                intent_digest: intent.digest(id).to_vec(),
                intent,
                requested_at: now,
                approvals: BTreeSet::new(),
                decision,
                status: Status::Pending,
            };
            let view = request_json(&request);
            let request_id = request.id.clone();
            let mut fields = decision_fields(
                host,
                caller,
                action,
                Some(id),
                &request.intent,
                &request.decision,
            );
            fields.insert("request_id".into(), request_id.clone().into());
            g.state
                .requests
                .insert(request)
                .map_err(|e| ApiError::conflict(e.to_string()))?;
            let state = match commit_state(host, &mut g) {
                Ok(s) => s,
                Err(e) => {
                    // Not stored, so not kept: a request the parent never got to store
                    // must not linger in memory only.
                    g.state.requests.remove(&request_id);
                    return Err(e);
                }
            };
            host.audit(&mut g, "decision", fields)?;
            let mut answer = reply(202, json!({ "request": view }));
            answer.effects.state = Some(state);
            answer.effects.pending_request = Some(PendingRef {
                request_id,
                key_id: id.to_string(),
            });
            Ok(answer)
        }
    }
}

fn propose(host: &dyn Host, gov: &GovernedLock, call: &Call, caller: &Caller) -> ApiResult {
    let change =
        ProposalBody::parse(&call.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let id = random_id(host)?;
    let mut g = lock(gov)?;
    if g.state.proposals.len() >= MAX_PROPOSALS {
        return Err(ApiError::conflict(format!(
            "{MAX_PROPOSALS} proposals are open; approve or cancel some first"
        )));
    }
    let base_admins = g.state.admins.digest();
    let base_policy = g.state.engine.policy().digest();
    let digest = proposal_digest(
        &id,
        change.kind(),
        &change.content_digest(),
        &base_admins,
        &base_policy,
    );
    let proposal = Proposal {
        id,
        change,
        digest,
        base_admins,
        base_policy,
        proposed_by: caller.key_id.clone(),
        proposed_at: host.now(),
        approvals: BTreeSet::new(),
    };
    let view = proposal_json(&proposal);
    let mut fields = call_fields(host, caller);
    fields.insert("proposal".into(), proposal.id.clone().into());
    fields.insert("change".into(), proposal.change.kind().into());
    fields.insert("digest".into(), hex::encode(proposal.digest).into());
    g.state.proposals.push(proposal);
    let state = match commit_state(host, &mut g) {
        Ok(s) => s,
        Err(e) => {
            g.state.proposals.pop();
            return Err(e);
        }
    };
    host.audit(&mut g, "proposal", fields)?;
    let mut answer = reply(201, json!({ "proposal": view }));
    answer.effects.state = Some(state);
    Ok(answer)
}

fn approve_proposal(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        digest: String,
    }
    let body: Body = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let digest = parse_hex32("digest", &body.digest)?;
    let mut g = lock(gov)?;
    let g = &mut *g;
    let index = g
        .state
        .proposals
        .iter()
        .position(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no open proposal {id:?}")))?;
    let proposal = &mut g.state.proposals[index];
    let count = proposal
        .approve(&g.state.admins, &caller.key_id, &digest)
        .map_err(|e| match e {
            crate::governance::ApprovalError::NotAdmin(_) => ApiError::forbidden(e.to_string()),
            crate::governance::ApprovalError::WrongDigest { .. } => {
                ApiError::bad_request(e.to_string())
            }
            _ => ApiError::conflict(e.to_string()),
        })?;
    let applied = proposal.is_approved(&g.state.admins);
    let view = proposal_json(proposal);
    let mut fields = call_fields(host, caller);
    fields.insert("proposal".into(), id.into());
    fields.insert("change".into(), proposal.change.kind().into());
    fields.insert("digest".into(), hex::encode(digest).into());
    fields.insert("approvals".into(), count.into());
    fields.insert("applied".into(), applied.into());
    let mut discarded = Vec::new();
    let mut changed = None;
    if applied {
        let proposal = g.state.proposals.remove(index);
        let kind = proposal.change.kind();
        match proposal.change {
            Change::Policy(policy) => g.state.engine.replace_policy(policy),
            Change::Admins(admins) => g.state.admins = admins,
        }
        // Every other open proposal was made against the rules just replaced.
        discarded = g.state.proposals.drain(..).map(|p| p.id).collect();
        g.rebuild_keys();
        tracing::info!(proposal = %id, "proposal applied");
        let mut c = Map::new();
        c.insert("proposal".into(), id.into());
        c.insert("change".into(), kind.into());
        c.insert(
            "policy_digest".into(),
            hex::encode(g.state.engine.policy().digest()).into(),
        );
        c.insert(
            "admins_digest".into(),
            hex::encode(g.state.admins.digest()).into(),
        );
        c.insert("discarded_proposals".into(), json!(discarded));
        changed = Some(c);
    }
    let state = commit_state(host, g)?;
    host.audit(g, "proposal_approved", fields)?;
    if let Some(c) = changed {
        host.audit(g, "policy_changed", c)?;
    }
    let mut answer = reply(
        200,
        json!({
            "proposal": view,
            "approvals": count,
            "threshold": g.state.admins.threshold(),
            "applied": applied,
            "discarded_proposals": discarded,
            "policy_digest": hex::encode(g.state.engine.policy().digest()),
        }),
    );
    answer.effects.state = Some(state);
    Ok(answer)
}

fn cancel_proposal(host: &dyn Host, gov: &GovernedLock, caller: &Caller, id: &str) -> ApiResult {
    if !caller.admin {
        return Err(ApiError::forbidden(format!(
            "key {} is not in the admin set; only admins cancel proposals",
            caller.key_id
        )));
    }
    let mut g = lock(gov)?;
    let index = g
        .state
        .proposals
        .iter()
        .position(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no open proposal {id:?}")))?;
    g.state.proposals.remove(index);
    let state = commit_state(host, &mut g)?;
    let mut fields = call_fields(host, caller);
    fields.insert("proposal".into(), id.into());
    host.audit(&mut g, "proposal_cancelled", fields)?;
    let mut answer = reply(200, json!({"id": id, "cancelled": true}));
    answer.effects.state = Some(state);
    Ok(answer)
}

fn approvers_of(decision: &Decision) -> Vec<String> {
    match &decision.outcome {
        Outcome::NeedsApproval { approvers, .. } => approvers.clone(),
        _ => Vec::new(),
    }
}

/// A request that finished (signed, denied, cancelled) cannot be acted on again.
fn ensure_pending(request: &PendingRequest) -> Result<(), ApiError> {
    if request.status == Status::Pending {
        Ok(())
    } else {
        Err(ApiError::conflict(format!(
            "request {} is no longer pending",
            request.id
        )))
    }
}

/// Executing or cancelling a pending request is for its requester, an approver the
/// deciding rule names, or an admin.
fn check_may_act(caller: &Caller, request: &PendingRequest, verb: &str) -> Result<(), ApiError> {
    let involved = caller.principal.as_deref() == Some(request.principal.as_str())
        || caller
            .principal
            .as_ref()
            .is_some_and(|p| approvers_of(&request.decision).contains(p));
    if !involved && !caller.admin {
        return Err(ApiError::forbidden(format!(
            "only the requester, an approver or an admin may {verb} a request"
        )));
    }
    ensure_pending(request)
}

fn approve_request(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        intent_digest: String,
    }
    let body: Body = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let digest = parse_hex32("intent_digest", &body.intent_digest)?;
    let principal = caller.principal()?.to_string();
    {
        let mut g = lock(gov)?;
        let request = g
            .state
            .requests
            .get_mut(id)
            .ok_or_else(|| ApiError::not_found(format!("no request {id:?}")))?;
        ensure_pending(request)?;
        if !approvers_of(&request.decision).contains(&principal) {
            return Err(ApiError::forbidden(format!(
                "principal {principal:?} is not an approver of request {id}"
            )));
        }
        if request.principal == principal {
            return Err(ApiError::forbidden(
                "a principal cannot approve its own request",
            ));
        }
        if digest.as_slice() != request.intent_digest.as_slice() {
            return Err(ApiError::bad_request(format!(
                "the approved digest is not this request's intent digest {}",
                hex::encode(&request.intent_digest)
            )));
        }
        if !request.approvals.insert(principal.clone()) {
            return Err(ApiError::conflict(format!(
                "principal {principal:?} has already approved request {id}"
            )));
        }
        let mut fields = call_fields(host, caller);
        fields.insert("request_id".into(), id.into());
        fields.insert("intent_digest".into(), hex::encode(digest).into());
        host.audit(&mut g, "request_approved", fields)?;
    }
    complete(host, gov, call, caller, id)
}

fn execute_request(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    {
        let g = lock(gov)?;
        let request = g
            .state
            .requests
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("no request {id:?}")))?;
        check_may_act(caller, request, "execute")?;
    }
    complete(host, gov, call, caller, id)
}

/// Re-evaluates a pending request with its approvals at the current time; signs it if the
/// policy now allows.
fn complete(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    let key_id = {
        let g = lock(gov)?;
        g.state
            .requests
            .get(id)
            .map(|r| r.key_id.clone())
            .ok_or_else(|| ApiError::not_found(format!("no request {id:?}")))?
    };
    // The blob is needed only if the request becomes signable; open it when it came.
    let record = match &call.key {
        Some(_) => Some(host.open_key(&key_id, call)?),
        None => None,
    };
    let now = host.now();
    let mut g = lock(gov)?;
    let g = &mut *g;
    let request = g
        .state
        .requests
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("no request {id:?}")))?;
    ensure_pending(request)?;
    if g.state
        .destroyed
        .iter()
        .any(|d| hex::encode(d) == request.key_id)
    {
        request.status = Status::Denied;
        let mut fields = call_fields(host, caller);
        fields.insert("request_id".into(), id.into());
        fields.insert("result".into(), "deny".into());
        fields.insert("reason".into(), "the request's key was destroyed".into());
        let state = commit_state(host, g)?;
        host.audit(g, "request_completed", fields)?;
        let mut answer =
            ApiError::new(410, "key_destroyed", "the request's key was destroyed").into_answer();
        answer.effects.state = Some(state);
        return Ok(answer);
    }
    let ctx = Context {
        principal: &request.principal,
        key: Some(KeyRef {
            id: &request.key_id,
            label: &request.key_label,
        }),
        intent: &request.intent,
        now,
        requested_at: request.requested_at,
        approvals: &request.approvals,
    };
    let decision = g.state.engine.decide(&ctx);
    let mut signed = None;
    let mut output = None;
    match &decision.outcome {
        Outcome::Allow => {
            let Some(record) = &record else {
                return Err(ApiError::bad_request(
                    "the request is ready to sign but its key blob did not come with the call",
                ));
            };
            let (intent, job) =
                payload::decode(request.action, &request.body, &record.info().address)
                    .map_err(|e| ApiError::internal(format!("stored request: {}", e.0)))?;
            if intent != request.intent {
                return Err(ApiError::internal("stored request decodes differently"));
            }
            g.state.engine.commit(&ctx, &decision).map_err(|e| {
                ApiError::conflict(format!("{e}; refusing to sign rather than forget"))
            })?;
            let mut result = payload::sign(&job, record);
            output = Some(output_fields(&result));
            if let Some(obj) = result.as_object_mut() {
                obj.insert("decision".into(), decision_json(&decision));
            }
            signed = Some(result.clone());
            request.status = Status::Signed { result };
        }
        Outcome::Deny => request.status = Status::Denied,
        _ => {}
    }
    let mut fields = decision_fields(
        host,
        caller,
        request.action,
        Some(&request.key_id),
        &request.intent,
        &decision,
    );
    fields.insert("request_id".into(), id.into());
    if let Some(output) = output {
        fields.insert("output".into(), output);
    }
    request.decision = decision;
    let view = request_json(request);
    let state = commit_state(host, g)?;
    host.audit(g, "request_completed", fields)?;
    let mut answer = reply(200, json!({ "request": view, "result": signed }));
    answer.effects.state = Some(state);
    Ok(answer)
}

fn cancel_request(host: &dyn Host, gov: &GovernedLock, caller: &Caller, id: &str) -> ApiResult {
    let mut g = lock(gov)?;
    let request = g
        .state
        .requests
        .get_mut(id)
        .ok_or_else(|| ApiError::not_found(format!("no request {id:?}")))?;
    check_may_act(caller, request, "cancel")?;
    request.status = Status::Cancelled {
        by: caller.key_id.clone(),
    };
    let view = request_json(request);
    let state = commit_state(host, &mut g)?;
    let mut fields = call_fields(host, caller);
    fields.insert("request_id".into(), id.into());
    host.audit(&mut g, "request_cancelled", fields)?;
    let mut answer = reply(200, json!({ "request": view }));
    answer.effects.state = Some(state);
    Ok(answer)
}

fn proposal_json(p: &Proposal) -> Value {
    json!({
        "id": p.id,
        "kind": p.change.kind(),
        "digest": hex::encode(p.digest),
        "document": p.change.document(),
        "content_digest": hex::encode(p.change.content_digest()),
        "base_admins_digest": hex::encode(p.base_admins),
        "base_policy_digest": hex::encode(p.base_policy),
        "proposed_by": p.proposed_by,
        "proposed_at": p.proposed_at,
        "approvals": p.approvals,
    })
}

fn request_json(r: &PendingRequest) -> Value {
    let mut v = json!({
        "id": r.id,
        "principal": r.principal,
        "key_id": r.key_id,
        "key_label": r.key_label,
        "action": r.action.as_str(),
        "intent": r.intent,
        "intent_digest": hex::encode(&r.intent_digest),
        "requested_at": r.requested_at,
        "approvals": r.approvals,
        "decision": decision_json(&r.decision),
    });
    if let (Some(obj), Ok(Value::Object(status))) =
        (v.as_object_mut(), serde_json::to_value(&r.status))
    {
        obj.extend(status);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::parse("POST", "/v1/keys"), Some(Route::CreateKey));
        assert_eq!(
            Route::parse("POST", "/v1/keys/ab/sign/typed-data?x=1"),
            Some(Route::Sign("ab".into(), Action::SignTypedData))
        );
        assert_eq!(Route::parse("POST", "/v1/keys/ab/sign/other"), None);
        assert_eq!(Route::parse("GET", "/v1/keys"), Some(Route::ListKeys));
        assert_eq!(Route::parse("PUT", "/v1/keys"), None);
        assert!(!Route::GetPolicy.needs_stamp());
        assert!(Route::Propose.needs_stamp());
    }

    #[test]
    fn horizon_refuses_stamps_that_could_predate_the_boot() {
        assert!(check_horizon(1000 + MAX_VALIDITY_SECS - 1, 1000).is_err());
        assert!(check_horizon(1000 + MAX_VALIDITY_SECS, 1000).is_ok());
    }
}
