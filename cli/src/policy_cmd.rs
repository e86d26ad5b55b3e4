//! `strongroom policy …`: the policy and admin set in force, and changes to them, which
//! take effect once a quorum of admins has approved their exact digest.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use strongroom_client::{Id, Route, StatusCode};

use crate::client::{Api, print_json};
use crate::input::{Digest, digest_arg, document_body};
use crate::principal::{PrincipalKeyChoice, PrincipalKeySource, admin_key};

/// Policy subcommands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the policy and admin set in force, with their digests.
    Show,
    /// Propose a new policy document (JSON, or TOML if FILE ends in .toml). Prints the
    /// proposal's id and the digest admins approve.
    Propose {
        /// The policy document (`-`: JSON on standard input).
        #[arg(value_name = "FILE")]
        file: String,
        /// Stamp with this admin key instead of the principal key.
        #[arg(long, value_name = "FILE")]
        admin_key: Option<PathBuf>,
    },
    /// Propose a new admin set: FILE holds `{"threshold": M, "keys": [{"algorithm",
    /// "public"}, …]}` (JSON, or TOML if it ends in .toml).
    ProposeAdmins {
        /// The admin set document (`-`: JSON on standard input).
        #[arg(value_name = "FILE")]
        file: String,
        /// Stamp with this admin key instead of the principal key.
        #[arg(long, value_name = "FILE")]
        admin_key: Option<PathBuf>,
    },
    /// List the open proposals, or print one.
    Proposals {
        /// Proposal id.
        #[arg(value_name = "ID")]
        id: Option<Id>,
    },
    /// Approve a proposal with an admin key; applied once the admins' threshold is met.
    Approve {
        /// Proposal id.
        #[arg(value_name = "ID")]
        id: Id,
        /// The admin's key file.
        #[arg(long, value_name = "FILE")]
        admin_key: PathBuf,
        /// The digest you reviewed (as printed by `policy propose`); refuse if the
        /// server's differs.
        #[arg(long, value_name = "HEX", value_parser = digest_arg)]
        digest: Option<Digest>,
    },
    /// Withdraw a proposal (admins only).
    Cancel {
        /// Proposal id.
        #[arg(value_name = "ID")]
        id: Id,
        /// The admin's key file.
        #[arg(long, value_name = "FILE")]
        admin_key: PathBuf,
    },
}

/// Runs a policy subcommand.
pub fn run(api: &Api, principal: &PrincipalKeyChoice, cmd: PolicyCommand) -> Result<()> {
    match cmd {
        PolicyCommand::Show => print_json(&api.get(&Route::GetPolicy)?),
        PolicyCommand::Propose { file, admin_key } => propose(
            api,
            document_body(&file, "policy")?,
            principal.load_or_admin(admin_key.as_deref())?,
        ),
        PolicyCommand::ProposeAdmins { file, admin_key } => propose(
            api,
            document_body(&file, "admins")?,
            principal.load_or_admin(admin_key.as_deref())?,
        ),
        PolicyCommand::Proposals { id: None } => print_json(&api.get(&Route::ListProposals)?),
        PolicyCommand::Proposals { id: Some(id) } => print_json(&api.get(&Route::GetProposal(id))?),
        PolicyCommand::Approve {
            id,
            admin_key: admin_path,
            digest,
        } => {
            let key = admin_key(&admin_path)?;
            let shown = api.get(&Route::GetProposal(id.clone()))?;
            let proposal = &shown["proposal"];
            let server_digest = proposal["digest"]
                .as_str()
                .and_then(|d| digest_arg(d).ok())
                .with_context(|| format!("proposal {id} has no valid digest"))?;
            if let Some(Digest(given)) = digest
                && given != server_digest.0
            {
                bail!(
                    "proposal {id} has digest {}, not the {} you gave: not approving",
                    hex::encode(server_digest.0),
                    hex::encode(given)
                );
            }
            check_proposal_digest(&id, proposal, &server_digest.0)?;
            eprintln!(
                "approving proposal {id}: new {} (content digest {}), proposed by key {}; \
                 digest {}",
                proposal["kind"].as_str().unwrap_or("?"),
                proposal["content_digest"].as_str().unwrap_or("?"),
                proposal["proposed_by"].as_str().unwrap_or("?"),
                hex::encode(server_digest.0),
            );
            let body = serde_json::to_vec(&json!({ "digest": hex::encode(server_digest.0) }))?;
            let answer = api.stamped(&Route::ApproveProposal(id), Some(&body), &key)?;
            crate::client::print_text(&approval_summary(&answer.body))?;
            print_json(&answer.body)?;
            if let Some(discarded) = answer.body["discarded_proposals"].as_array()
                && !discarded.is_empty()
            {
                eprintln!(
                    "discarded the other open proposals, made against the rules just replaced: {}",
                    discarded
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(())
        }
        PolicyCommand::Cancel {
            id,
            admin_key: admin_path,
        } => {
            let key = admin_key(&admin_path)?;
            let answer = api.stamped(&Route::CancelProposal(id), Some(b"{}"), &key)?;
            print_json(&answer.body)
        }
    }
}

fn propose(api: &Api, body: Vec<u8>, key: PrincipalKeySource) -> Result<()> {
    let answer = api.stamped(&Route::Propose, Some(&body), &key)?;
    if answer.status != StatusCode::CREATED {
        bail!("unexpected status {} (expected 201 Created)", answer.status);
    }
    crate::client::print_text(&proposal_summary(&answer.body))?;
    print_json(&answer.body)
}

/// `id: …` and `digest: …` lines, first, so scripts can pick them out.
fn proposal_summary(answer: &Value) -> String {
    let p = &answer["proposal"];
    format!(
        "id: {}\ndigest: {}\n",
        p["id"].as_str().unwrap_or("?"),
        p["digest"].as_str().unwrap_or("?")
    )
}

/// `applied: …` and `approvals: N/M` lines (and the new policy digest once applied).
fn approval_summary(answer: &Value) -> String {
    let applied = answer["applied"].as_bool().unwrap_or(false);
    let mut out = format!(
        "applied: {applied}\napprovals: {}/{}\n",
        answer["approvals"].as_u64().unwrap_or_default(),
        answer["threshold"].as_u64().unwrap_or_default()
    );
    if applied {
        out.push_str(&format!(
            "policy_digest: {}\n",
            answer["policy_digest"].as_str().unwrap_or("?")
        ));
    }
    out
}

/// Recomputes a proposal's digest from the document shown (and the rules it was proposed
/// against), so what the admin reads through the untrusted proxy is what the approval
/// covers.
fn check_proposal_digest(id: &str, proposal: &Value, digest: &[u8; 32]) -> Result<()> {
    let kind = proposal["kind"].as_str().unwrap_or_default();
    let document = serde_json::to_vec(&proposal["document"])?;
    let content = match kind {
        "policy" => strongroom_policy::Policy::from_json(&document)
            .context("the proposed policy does not validate")?
            .digest(),
        "admins" => {
            let doc: strongroom_policy::AdminSetDoc = serde_json::from_slice(&document)
                .context("the proposed admin set does not parse")?;
            strongroom_policy::AdminSet::from_doc(&doc)
                .context("the proposed admin set does not validate")?
                .digest()
        }
        other => bail!("proposal {id} has an unknown kind {other:?}"),
    };
    let base = |field: &str| {
        proposal[field]
            .as_str()
            .and_then(|d| digest_arg(d).ok())
            .map(|d| d.0)
            .with_context(|| format!("proposal {id} has no valid {field}"))
    };
    let expected = strongroom_policy::proposal_digest(
        id,
        kind,
        &content,
        &base("base_admins_digest")?,
        &base("base_policy_digest")?,
    );
    if &expected != digest {
        bail!(
            "proposal {id}: the document shown does not hash to the proposal's digest: the \
             server's answer was altered; not approving"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_lead_with_greppable_lines() {
        let proposed = json!({"proposal": {"id": "ab12", "digest": "ff00"}});
        assert_eq!(proposal_summary(&proposed), "id: ab12\ndigest: ff00\n");
        let pending = json!({"approvals": 1, "threshold": 2, "applied": false});
        assert_eq!(
            approval_summary(&pending),
            "applied: false\napprovals: 1/2\n"
        );
        let applied =
            json!({"approvals": 2, "threshold": 2, "applied": true, "policy_digest": "cd"});
        assert_eq!(
            approval_summary(&applied),
            "applied: true\napprovals: 2/2\npolicy_digest: cd\n"
        );
    }
}
