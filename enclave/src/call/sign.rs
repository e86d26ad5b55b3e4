//! `POST /v1/keys/{id}/sign/{transaction|typed-data|message|digest}`: decode, decide, and
//! sign, hold for approvals or a time-lock, or refuse.

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::json;
use strongroom_api::SignKind;
use strongroom_policy::{Action, Context, KeyRef, Outcome};
use strongroom_protocol::messages::{Call, PendingRef};

use super::error::{ApiError, ApiResult, reply};
use super::host::{Caller, Host};
use super::views::{output_fields, request_json};
use super::{GovernedLock, lock, random_id};
use crate::keys::KeyRecord;
use crate::payload;
use crate::record::{Decided, DecisionRecord, Held, Record};

/// `POST /v1/keys/{id}/sign/…`.
pub(crate) fn sign(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
    kind: SignKind,
) -> ApiResult {
    let record = host.open_key(id, call)?;
    sign_body(host, gov, caller, &record, action(kind), &call.body)
}

/// The policy action a signing route asks for.
pub(crate) fn action(kind: SignKind) -> Action {
    match kind {
        SignKind::Transaction => Action::SignTransaction,
        SignKind::TypedData => Action::SignTypedData,
        SignKind::Message => Action::SignMessage,
        SignKind::Digest => Action::SignDigest,
    }
}

/// Decodes a signing body (the REST form of `action`), asks the policy, and signs, holds
/// for approval or refuses; shared by the REST routes and JSON-RPC.
///
/// Decision, signature and record happen under the state lock, in that order, so the
/// chain orders a key's signatures and its destruction as they took effect: a signature
/// decided before a destroy is recorded before it, and none is made after it.
pub(crate) fn sign_body(
    host: &dyn Host,
    gov: &GovernedLock,
    caller: &Caller,
    key: &KeyRecord,
    action: Action,
    body: &[u8],
) -> ApiResult {
    let principal = caller.principal()?;
    let id_hex = hex::encode(key.id);
    let id = id_hex.as_str();
    let address = key.info().address;
    let (intent, job) =
        payload::decode(action, body, &address).map_err(|e| ApiError::bad_request(e.0))?;
    let now = host.now();
    let approvals = BTreeSet::new();
    let mut g = lock(gov)?;
    if g.state.destroyed.contains(&key.id) {
        return Err(ApiError::key_destroyed(format!("key {id} was destroyed")));
    }
    let decision = g.state.engine.decide(&Context {
        principal,
        key: Some(KeyRef {
            id,
            label: &key.label,
        }),
        intent: &intent,
        now,
        requested_at: now,
        approvals: &approvals,
    });
    let mut record = DecisionRecord {
        by: caller.by(host),
        decided: Decided {
            action,
            key: Some(id.to_string()),
            intent,
            decision,
            output: None,
        },
        request_id: None,
        held: None,
    };
    match record.decided.decision.outcome {
        Outcome::Deny => {
            let e = ApiError::denied(&record.decided.decision);
            host.append(&mut g, Record::Decision(record), now)?;
            Err(e)
        }
        Outcome::Allow => {
            let mut body = payload::sign(&job, key);
            record.decided.output = Some(output_fields(&body, host.replicated()));
            let decision = record.decided.decision.to_json_value();
            // Nothing leaves, and nothing counts, before the record is in the chain.
            host.append(&mut g, Record::Decision(record), now)?;
            drop(g);
            if let Some(obj) = body.as_object_mut() {
                obj.insert("decision".into(), decision);
            }
            Ok(reply(200, body))
        }
        Outcome::NeedsApproval { .. } | Outcome::TimeLocked { .. } => {
            g.state
                .requests
                .check_quota(principal, body.len())
                .map_err(|e| ApiError::quota(e.to_string()))?;
            let request_id = random_id(host)?;
            record.request_id = Some(request_id.clone());
            record.held = Some(Held {
                key_label: key.label.clone(),
                body: base64::engine::general_purpose::STANDARD.encode(body),
                intent_digest: hex::encode(record.decided.intent.digest(id)),
            });
            host.append(&mut g, Record::Decision(record), now)?;
            let view = g
                .state
                .requests
                .get(&request_id)
                .map(request_json)
                .ok_or_else(|| ApiError::internal("the held request was not kept"))?;
            let mut answer = reply(202, json!({ "request": view }));
            answer.effects.pending_request = Some(PendingRef {
                request_id,
                key_id: id.to_string(),
            });
            Ok(answer)
        }
    }
}
