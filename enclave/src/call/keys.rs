//! `/v1/keys`: listing, creating and destroying keys.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::json;
use strongroom_policy::{Context, Decision, Intent, KeyRef, Outcome};
use strongroom_protocol::messages::{Call, CreatedKey, MAX_CALL_KEYS};

use super::error::{ApiError, ApiResult, reply};
use super::host::{Caller, Host};
use super::{GovernedLock, lock};
use crate::keys::KeyRecord;
use crate::record::{Decided, DecisionRecord, KeyCreated, KeyDestroyed, Record};
use crate::state::MAX_DESTROYED;

/// Default and largest page of `GET /v1/keys`.
const KEY_PAGE: usize = MAX_CALL_KEYS;

/// `GET /v1/keys[?after=ID&limit=N]`: the keys whose blobs the proxy attached (a page, in
/// id order after `after`), each opened and checked. Blobs that fail are listed under
/// `refused` rather than hidden. `next_after` is set when the page is full.
pub(crate) fn list(host: &dyn Host, call: &Call) -> ApiResult {
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

/// Refuses anything but an outright Allow: approvals and time-locks hold signing requests
/// only.
pub(crate) fn only_allow(decision: &Decision) -> Result<(), ApiError> {
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

/// Decides a key action and records the decision.
fn decide(
    host: &dyn Host,
    gov: &GovernedLock,
    caller: &Caller,
    key: Option<&KeyRecord>,
    intent: Intent,
) -> Result<Decision, ApiError> {
    let principal = caller.principal()?;
    let now = host.now();
    let approvals = BTreeSet::new();
    let id_hex = key.map(|k| hex::encode(k.id));
    let mut g = lock(gov)?;
    let decision = g.state.engine.decide(&Context {
        principal,
        key: key.zip(id_hex.as_deref()).map(|(k, id)| KeyRef {
            id,
            label: &k.label,
        }),
        intent: &intent,
        now,
        requested_at: now,
        approvals: &approvals,
    });
    let record = Record::Decision(DecisionRecord {
        by: caller.by(host),
        decided: Decided {
            action: intent.action(),
            key: id_hex,
            intent,
            decision: decision.clone(),
            output: None,
        },
        request_id: None,
        held: None,
    });
    host.append(&mut g, record, now)?;
    Ok(decision)
}

/// `POST /v1/keys`.
pub(crate) fn create(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
) -> ApiResult {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        label: String,
    }
    let body: Body = super::json_body(call)?;
    let intent = Intent::CreateKey {
        label: body.label.clone(),
    };
    let decision = decide(host, gov, caller, None, intent)?;
    only_allow(&decision)?;
    let (info, sealed) = host.create_key(body.label)?;
    let record = Record::KeyCreated(KeyCreated {
        by: caller.by(host),
        key: info.id.clone(),
        address: info.address.clone(),
        label: info.label.clone(),
    });
    host.append(&mut *lock(gov)?, record, host.now())?;
    // The key object of `GET /v1/keys/{id}`, with the decision beside its fields.
    let mut body = info.to_json();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("decision".into(), decision.to_json_value());
    }
    let mut answer = reply(201, body);
    answer.effects.key_created = Some(CreatedKey {
        info,
        sealed: sealed.into(),
    });
    Ok(answer)
}

/// `DELETE /v1/keys/{id}`.
pub(crate) fn destroy(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
    id: &str,
) -> ApiResult {
    let key = host.open_key(id, call)?;
    let decision = decide(host, gov, caller, Some(&key), Intent::DestroyKey)?;
    only_allow(&decision)?;
    let mut g = lock(gov)?;
    if g.state.destroyed.contains(&key.id) {
        return Err(ApiError::key_destroyed(format!("key {id} was destroyed")));
    }
    if g.state.destroyed.len() >= MAX_DESTROYED {
        return Err(ApiError::internal(
            "the enclave state holds the maximum number of destroyed keys",
        ));
    }
    let record = Record::KeyDestroyed(KeyDestroyed {
        by: caller.by(host),
        key: id.to_string(),
        address: key.info().address,
    });
    host.append(&mut g, record, host.now())?;
    drop(g);
    tracing::info!(key_id = %id, "key destroyed");
    let mut answer = reply(
        200,
        json!({"id": id, "destroyed": true, "decision": decision.to_json_value()}),
    );
    answer.effects.key_destroyed = Some(id.to_string());
    Ok(answer)
}
