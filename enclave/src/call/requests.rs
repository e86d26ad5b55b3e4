//! `/v1/requests`: signing requests held for approvals or a time-lock — approving,
//! executing once due, cancelling.

use serde::Deserialize;
use serde_json::json;
use strongroom_api::ApiErrorCode;
use strongroom_policy::{Context, Decision, KeyRef, Outcome};
use strongroom_protocol::messages::Call;

use super::error::{ApiError, ApiResult, reply};
use super::host::{Caller, Host};
use super::views::{output_fields, request_json};
use super::{GovernedLock, json_body, lock, parse_hex32, request};
use crate::payload;
use crate::record::{Decided, Record, RequestApproved, RequestCancelled, RequestCompleted};
use crate::requests::{PendingRequest, Status, committed_result, kept_result, matches_commitment};

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

/// `POST /v1/requests/{id}/approve`: records the approval, then re-evaluates.
pub(crate) fn approve(
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
    let body: Body = json_body(call)?;
    let digest = parse_hex32("intent_digest", &body.intent_digest)?;
    let principal = caller.principal()?.to_string();
    {
        let now = host.now();
        let mut g = lock(gov)?;
        let request = request(&g, id)?;
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
        if request.approvals.contains(&principal) {
            return Err(ApiError::conflict(format!(
                "principal {principal:?} has already approved request {id}"
            )));
        }
        let record = Record::RequestApproved(RequestApproved {
            by: caller.by(host),
            request_id: id.to_string(),
            intent_digest: hex::encode(digest),
        });
        host.append(&mut g, record, now)?;
    }
    complete(host, gov, call, caller, id)
}

/// `POST /v1/requests/{id}/execute`: re-evaluates (a time-lock may have passed).
pub(crate) fn execute(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    {
        let g = lock(gov)?;
        let request = request(&g, id)?;
        check_may_act(caller, request, "execute")?;
    }
    complete(host, gov, call, caller, id)
}

/// Re-evaluates a pending request with its approvals at the current time; signs it if the
/// policy now allows. The decision, the signature and the record happen under the state
/// lock, so the answer and `GET /v1/requests/{id}` show a signature only once its record
/// is in the chain.
fn complete(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    let key_id = {
        let g = lock(gov)?;
        request(&g, id)?.key_id.clone()
    };
    // The blob is needed only if the request becomes signable; open it when it came. A
    // destroyed key's blob is refused by `open_key`, and the destroyed set is checked
    // again under the lock below.
    let key = match &call.key {
        Some(_) => match host.open_key(&key_id, call) {
            Ok(k) => Some(k),
            Err(e) if e.code == ApiErrorCode::KeyDestroyed => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let now = host.now();
    let mut g = lock(gov)?;
    let g = &mut *g;
    let request = request(g, id)?;
    ensure_pending(request)?;
    let destroyed = hex::decode(&request.key_id)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
        .is_some_and(|k| g.state.destroyed.contains(&k));
    let mut record = RequestCompleted {
        by: caller.by(host),
        request_id: id.to_string(),
        decided: Decided {
            action: request.action,
            key: Some(request.key_id.clone()),
            intent: request.intent.clone(),
            decision: Decision {
                outcome: Outcome::Deny,
                rule: None,
                reason: "the request's key was destroyed".into(),
            },
            output: None,
        },
        signed: None,
    };
    if destroyed {
        host.append(g, Record::RequestCompleted(record), now)?;
        return Err(ApiError::key_destroyed("the request's key was destroyed"));
    }
    record.decided.decision = g.state.engine.decide(&Context {
        principal: &request.principal,
        key: Some(KeyRef {
            id: &request.key_id,
            label: &request.key_label,
        }),
        intent: &request.intent,
        now,
        requested_at: request.requested_at,
        approvals: &request.approvals,
    });
    let mut signed = None;
    if record.decided.decision.outcome == Outcome::Allow {
        let Some(key) = &key else {
            return Err(ApiError::bad_request(
                "the request is ready to sign but its key blob did not come with the call",
            ));
        };
        let (intent, job) = payload::decode(request.action, &request.body, &key.info().address)
            .map_err(|e| ApiError::internal(format!("stored request: {}", e.0)))?;
        if intent != request.intent {
            return Err(ApiError::internal("stored request decodes differently"));
        }
        let mut result = payload::sign(&job, key);
        if let Some(obj) = result.as_object_mut() {
            obj.insert("decision".into(), record.decided.decision.to_json_value());
        }
        record.decided.output = Some(output_fields(&result, host.replicated()));
        record.signed = Some(if host.replicated() {
            committed_result(&result)
        } else {
            kept_result(&result)
        });
        signed = Some(result);
    }
    host.append(g, Record::RequestCompleted(record), now)?;
    let view = g
        .state
        .requests
        .get(id)
        .map(request_json)
        .unwrap_or(serde_json::Value::Null);
    Ok(reply(200, json!({ "request": view, "result": signed })))
}

/// `POST /v1/requests/{id}/cancel`.
pub(crate) fn cancel(host: &dyn Host, gov: &GovernedLock, caller: &Caller, id: &str) -> ApiResult {
    let now = host.now();
    let mut g = lock(gov)?;
    let request = request(&g, id)?;
    check_may_act(caller, request, "cancel")?;
    let record = Record::RequestCancelled(RequestCancelled {
        by: caller.by(host),
        request_id: id.to_string(),
    });
    host.append(&mut g, record, now)?;
    let view = g
        .state
        .requests
        .get(id)
        .map(request_json)
        .unwrap_or(serde_json::Value::Null);
    Ok(reply(200, json!({ "request": view })))
}

/// `GET /v1/requests/{id}`. A replica's signed request keeps only a commitment to its
/// result ([`committed_result`]); with the key's blob (the proxy attaches it) the enclave
/// signs the stored body again and returns the whole result once it matches.
pub(crate) fn get(host: &dyn Host, gov: &GovernedLock, call: &Call, id: &str) -> ApiResult {
    // Cloned out: opening the key takes the state lock again.
    let pending = request(&*lock(gov)?, id)?.clone();
    let pending = &pending;
    let mut view = request_json(pending);
    if let Status::Signed { result } = &pending.status
        && result.get("withheld").and_then(serde_json::Value::as_bool) == Some(true)
        && call.key.as_ref().is_some_and(|k| k.id == pending.key_id)
        && !pending.body.is_empty()
    {
        let key = host.open_key(&pending.key_id, call)?;
        let (_, job) = payload::decode(pending.action, &pending.body, &key.info().address)
            .map_err(|e| ApiError::internal(format!("stored request: {}", e.0)))?;
        let mut whole = payload::sign(&job, &key);
        if !matches_commitment(result, &whole) {
            return Err(ApiError::internal(
                "the request signed again does not match its recorded result",
            ));
        }
        if let (Some(obj), Some(decision)) = (whole.as_object_mut(), result.get("decision")) {
            obj.insert("decision".into(), decision.clone());
        }
        if let Some(obj) = view.as_object_mut() {
            obj.insert("result".into(), whole);
        }
    }
    Ok(reply(200, json!({ "request": view })))
}
