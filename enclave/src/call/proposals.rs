//! `/v1/policy`: the policy in force, and proposals to change it or the admin set, which
//! take effect once a quorum of admins approved their exact digest.

use serde::Deserialize;
use serde_json::{Value, json};
use strongroom_protocol::messages::Call;

use super::error::{ApiError, ApiResult, reply};
use super::host::{Caller, Host};
use super::views::proposal_json;
use super::{GovernedLock, json_body, lock, parse_hex32, proposal, random_id};
use crate::governance::{ApprovalError, ProposalBody, proposal_digest};
use crate::record::{PolicyChanged, ProposalApproved, ProposalCancelled, ProposalMade, Record};

/// Most proposals one stamp key may have open at once: a principal (or an admin) cannot
/// fill the enclave's memory with proposals, and never blocks anyone else's.
pub const MAX_OPEN_PROPOSALS_PER_KEY: usize = 2;

/// `GET /v1/policy`.
pub(crate) fn get_policy(gov: &GovernedLock) -> ApiResult {
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

/// `POST /v1/policy/proposals`.
pub(crate) fn propose(
    host: &dyn Host,
    gov: &GovernedLock,
    call: &Call,
    caller: &Caller,
) -> ApiResult {
    let change =
        ProposalBody::parse(&call.body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let id = random_id(host)?;
    let now = host.now();
    let mut g = lock(gov)?;
    let open = g
        .state
        .proposals
        .iter()
        .filter(|p| p.proposed_by == caller.key_id)
        .count();
    if open >= MAX_OPEN_PROPOSALS_PER_KEY {
        return Err(ApiError::quota(format!(
            "key {} has {MAX_OPEN_PROPOSALS_PER_KEY} proposals open; an admin must approve \
             or cancel one first",
            caller.key_id
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
    let record = Record::Proposal(ProposalMade {
        by: caller.by(host),
        proposal: id.clone(),
        change: change.kind().to_string(),
        digest: hex::encode(digest),
        document: change.document(),
        base_admins_digest: hex::encode(base_admins),
        base_policy_digest: hex::encode(base_policy),
    });
    host.append(&mut g, record, now)?;
    let view = g
        .state
        .proposals
        .iter()
        .find(|p| p.id == id)
        .map(proposal_json)
        .ok_or_else(|| ApiError::internal("the proposal was not kept"))?;
    Ok(reply(201, json!({ "proposal": view })))
}

/// `POST /v1/policy/proposals/{id}/approve`: records the approval and, at the threshold,
/// the change.
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
        digest: String,
    }
    let body: Body = json_body(call)?;
    let digest = parse_hex32("digest", &body.digest)?;
    let now = host.now();
    let mut g = lock(gov)?;
    let proposal = proposal(&g, id)?;
    let count = proposal
        .check_approval(&g.state.admins, &caller.key_id, &digest)
        .map_err(|e| match e {
            ApprovalError::NotAdmin(_) => ApiError::forbidden(e.to_string()),
            ApprovalError::WrongDigest { .. } => ApiError::bad_request(e.to_string()),
            _ => ApiError::conflict(e.to_string()),
        })?;
    let applied = proposal.would_apply(&g.state.admins, &caller.key_id);
    let kind = proposal.change.kind().to_string();
    let record = Record::ProposalApproved(ProposalApproved {
        by: caller.by(host),
        proposal: id.to_string(),
        change: kind.clone(),
        digest: hex::encode(digest),
        approvals: count as u64,
        applied,
    });
    host.append(&mut g, record, now)?;
    let view = g
        .state
        .proposals
        .iter()
        .find(|p| p.id == id)
        .map(proposal_json)
        .unwrap_or(Value::Null);
    let mut discarded = Vec::new();
    if applied {
        discarded = g
            .state
            .proposals
            .iter()
            .filter(|p| p.id != id)
            .map(|p| p.id.clone())
            .collect();
        let proposal = g
            .state
            .proposals
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| ApiError::internal("the approved proposal vanished"))?;
        let (policy_digest, admins_digest) = match &proposal.change {
            crate::governance::Change::Policy(p) => (p.digest(), g.state.admins.digest()),
            crate::governance::Change::Admins(a) => (g.state.engine.policy().digest(), a.digest()),
        };
        let record = Record::PolicyChanged(PolicyChanged {
            proposal: id.to_string(),
            change: kind,
            policy_digest: hex::encode(policy_digest),
            admins_digest: hex::encode(admins_digest),
            discarded_proposals: discarded.clone(),
        });
        host.append(&mut g, record, now)?;
        tracing::info!(proposal = %id, "proposal applied");
    }
    Ok(reply(
        200,
        json!({
            "proposal": view,
            "approvals": count,
            "threshold": g.state.admins.threshold(),
            "applied": applied,
            "discarded_proposals": discarded,
            "policy_digest": hex::encode(g.state.engine.policy().digest()),
        }),
    ))
}

/// `POST /v1/policy/proposals/{id}/cancel` (admins only).
pub(crate) fn cancel(host: &dyn Host, gov: &GovernedLock, caller: &Caller, id: &str) -> ApiResult {
    if !caller.admin {
        return Err(ApiError::forbidden(format!(
            "key {} is not in the admin set; only admins cancel proposals",
            caller.key_id
        )));
    }
    let now = host.now();
    let mut g = lock(gov)?;
    proposal(&g, id)?;
    let record = Record::ProposalCancelled(ProposalCancelled {
        by: caller.by(host),
        proposal: id.to_string(),
    });
    host.append(&mut g, record, now)?;
    Ok(reply(200, json!({"id": id, "cancelled": true})))
}
