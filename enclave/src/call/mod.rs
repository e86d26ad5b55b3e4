//! Principals' calls: the enclave checks the stamp over the exact method, path and body,
//! decodes the body itself, asks the policy, signs, and answers with the HTTP status and
//! JSON body the proxy returns unchanged. The proxy only adds the sealed key blobs the call
//! needs and stores the effects.
//!
//! Every change a call makes is one record appended to the log and applied through
//! [`Host::append`] under the state lock: nothing a call changes (a signature, a request's
//! status, an approval) is visible before its record is in the chain, and a failure to
//! append leaves the state as it was.
//!
//! One file per concern: [`Route`] (what a method and path mean, from `strongroom_api`),
//! [`error`] (refusals),
//! [`host`] (the enclave seam and stamp checks), [`keys`], [`sign`], [`proposals`],
//! [`requests`], [`rpc`] (Ethereum JSON-RPC) and [`views`] (the JSON of what is kept).

pub mod error;
pub mod host;
pub mod keys;
pub mod proposals;
pub mod requests;
pub mod rpc;
pub mod sign;
pub mod views;

use std::sync::Arc;

use serde_json::json;
use strongroom_api::{ApiErrorCode, Route};
use strongroom_protocol::messages::{
    Answer, Call, MAX_CALL_BODY_LEN, MAX_CALL_KEYS, MAX_METHOD_LEN, MAX_PATH_LEN,
};

pub use error::ApiError;
use error::{ApiResult, reply};
pub use host::{Caller, Host, KeyTable, check_horizon};

use crate::audit::AuditLog;
use crate::state::EnclaveState;

/// The mutable part the handlers share, under one lock.
pub struct Governed {
    /// The state the log has built.
    pub state: EnclaveState,
    /// Stamp keys of the current policy and admin set.
    pub keys: Arc<KeyTable>,
    /// Nonces seen since boot.
    pub replay: strongroom_auth::ReplayCache,
    /// The audit chain's head and unconfirmed entries.
    pub audit: AuditLog,
    /// A replica's: digests of the requests other replicas decided, each until its stamp
    /// has expired (`None`: a single enclave).
    pub decided_elsewhere: Option<strongroom_auth::ReplayCache>,
}

impl Governed {
    /// Wraps a state whose log is `audit`.
    pub fn new(state: EnclaveState, audit: AuditLog, replay_capacity: usize) -> Self {
        let keys = Arc::new(KeyTable::build(state.engine.policy(), &state.admins));
        Self {
            state,
            keys,
            replay: strongroom_auth::ReplayCache::new(replay_capacity),
            audit,
            decided_elsewhere: None,
        }
    }

    /// The same, for a replica: it also remembers the requests other replicas decided.
    pub fn replica(mut self, replay_capacity: usize) -> Self {
        self.decided_elsewhere = Some(strongroom_auth::ReplayCache::new(replay_capacity));
        self
    }

    /// Rebuilds the stamp keys after the policy or the admin set changed.
    pub fn rebuild_keys(&mut self) {
        self.keys = Arc::new(KeyTable::build(
            self.state.engine.policy(),
            &self.state.admins,
        ));
    }
}

/// The lock over [`Governed`].
pub type GovernedLock = std::sync::Mutex<Governed>;

pub(crate) fn lock(g: &GovernedLock) -> Result<std::sync::MutexGuard<'_, Governed>, ApiError> {
    g.lock()
        .map_err(|_| ApiError::internal("state lock poisoned"))
}

/// A fresh random id (16 hex characters) for a proposal or a pending request.
pub(crate) fn random_id(host: &dyn Host) -> Result<String, ApiError> {
    let mut id = [0u8; 8];
    host.random(&mut id)?;
    Ok(hex::encode(id))
}

/// Reads a call's JSON body (unknown fields refused by the body type).
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(call: &Call) -> Result<T, ApiError> {
    strongroom_eth::from_slice_strict(&call.body)
        .map_err(|e| ApiError::bad_request(format!("body: {e}")))
}

/// The signing request `id`.
pub(crate) fn request<'g>(
    g: &'g Governed,
    id: &str,
) -> Result<&'g crate::requests::PendingRequest, ApiError> {
    g.state
        .requests
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no request {id:?}")))
}

/// The open proposal `id`.
pub(crate) fn proposal<'g>(
    g: &'g Governed,
    id: &str,
) -> Result<&'g crate::governance::Proposal, ApiError> {
    g.state
        .proposals
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no open proposal {id:?}")))
}

/// Reads a 32-byte hex value (`0x` optional) from a body field.
pub(crate) fn parse_hex32(name: &str, value: &str) -> Result<[u8; 32], ApiError> {
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
            rpc::error_answer(e)
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
            ApiErrorCode::TooLarge,
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
                ApiErrorCode::AuditBacklog,
                format!(
                    "{} audit entries wait for the proxy to store them; no new decisions \
                     until it does",
                    g.audit.unstored()
                ),
            ));
        }
    }
    if !route.needs_stamp() {
        return read(host, gov, call, route);
    }
    let caller = host::authenticate_call(host, gov, call)?;
    match route {
        Route::CreateKey => keys::create(host, gov, call, &caller),
        Route::DestroyKey(id) => keys::destroy(host, gov, call, &caller, &id),
        Route::Sign(id, kind) => sign::sign(host, gov, call, &caller, &id, kind),
        Route::Propose => proposals::propose(host, gov, call, &caller),
        Route::ApproveProposal(id) => proposals::approve(host, gov, call, &caller, &id),
        Route::CancelProposal(id) => proposals::cancel(host, gov, &caller, &id),
        Route::ApproveRequest(id) => requests::approve(host, gov, call, &caller, &id),
        Route::ExecuteRequest(id) => requests::execute(host, gov, call, &caller, &id),
        Route::CancelRequest(id) => requests::cancel(host, gov, &caller, &id),
        Route::Rpc => rpc::handle(host, gov, call, &caller),
        _ => Err(ApiError::internal("unrouted call")),
    }
}

/// The routes that read and change nothing: no stamp.
fn read(host: &dyn Host, gov: &GovernedLock, call: &Call, route: Route) -> ApiResult {
    match route {
        Route::ListKeys => keys::list(host, call),
        Route::GetKey(id) => Ok(reply(200, host.open_key(&id, call)?.info().to_json())),
        Route::AuditHead => {
            let g = lock(gov)?;
            let checkpoint = host
                .checkpoint(&g)
                .ok_or_else(|| ApiError::internal("the audit chain is empty"))?;
            Ok(reply(200, checkpoint.to_json()))
        }
        Route::GetPolicy => proposals::get_policy(gov),
        Route::ListProposals => {
            let g = lock(gov)?;
            let list: Vec<_> = g.state.proposals.iter().map(views::proposal_json).collect();
            Ok(reply(200, json!({ "proposals": list })))
        }
        Route::GetProposal(id) => {
            let g = lock(gov)?;
            Ok(reply(
                200,
                json!({ "proposal": views::proposal_json(proposal(&g, &id)?) }),
            ))
        }
        Route::ListRequests => {
            let g = lock(gov)?;
            let list: Vec<_> = g.state.requests.iter().map(views::request_json).collect();
            Ok(reply(200, json!({ "requests": list })))
        }
        Route::GetRequest(id) => requests::get(host, gov, call, id.as_str()),
        _ => Err(ApiError::internal("route needs a stamp")),
    }
}
