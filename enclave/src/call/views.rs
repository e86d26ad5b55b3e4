//! The JSON of what the enclave keeps: proposals, requests, and what a signature produced.

use serde_json::{Map, Value, json};

use crate::governance::Proposal;
use crate::requests::PendingRequest;

/// A proposal as the API shows it.
pub(crate) fn proposal_json(p: &Proposal) -> Value {
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

/// A signing request as the API shows it.
pub(crate) fn request_json(r: &PendingRequest) -> Value {
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
        "decision": r.decision.to_json_value(),
    });
    if let (Some(obj), Ok(Value::Object(status))) =
        (v.as_object_mut(), serde_json::to_value(&r.status))
    {
        obj.extend(status);
    }
    v
}

/// What a signature produced, for the audit entry: hashes and the signature, not the
/// (possibly large) raw transaction.
///
/// A replica's records leave the enclave before its answer (decide → append → release), and
/// an answer whose records lose their place is never released: so a replica records not the
/// signature but `signature_sha256`, the SHA-256 of the signature's text as released, which
/// matches a released signature to its record and gives the parent nothing to use.
pub(crate) fn output_fields(body: &Value, replica: bool) -> Value {
    let mut out = Map::new();
    for name in ["hash", "signing_hash", "signature"] {
        if let Some(v) = body.get(name) {
            match (name, v.as_str()) {
                ("signature", Some(text)) if replica => {
                    let digest =
                        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
                    out.insert(
                        "signature_sha256".into(),
                        hex::encode(digest.as_ref()).into(),
                    );
                }
                _ => {
                    out.insert(name.into(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}
