//! `strongroom requests …`: signing requests waiting for approvals or a time-lock.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use strongroom_client::{Id, Route};

use crate::client::{Api, print_json};
use crate::input::{Digest, digest_arg};
use crate::principal::PrincipalKeyChoice;

/// Request subcommands.
#[derive(Subcommand)]
pub enum RequestsCommand {
    /// List the requests the enclave holds (waiting and recently finished).
    List,
    /// Print one request: its decoded intent, decision, approvals and status (JSON on
    /// stdout; on stderr what it would sign, decoded, for a person to read).
    Show {
        /// Request id.
        #[arg(value_name = "ID")]
        id: Id,
    },
    /// Approve a request as one of its approvers (stamped with the principal key): prints
    /// the decoded intent, then approves its intent digest. Signed as soon as enough
    /// approvals are in (and any time-lock has passed).
    Approve {
        /// Request id.
        #[arg(value_name = "ID")]
        id: Id,
        /// The intent digest you reviewed; refuse if the server's differs.
        #[arg(long, value_name = "HEX", value_parser = digest_arg)]
        digest: Option<Digest>,
    },
    /// Cancel a waiting request (the requester, an approver or an admin).
    Cancel {
        /// Request id.
        #[arg(value_name = "ID")]
        id: Id,
        /// Stamp with this admin key instead of the principal key.
        #[arg(long, value_name = "FILE")]
        admin_key: Option<PathBuf>,
    },
    /// Sign a request whose time-lock has passed (the requester, an approver or an admin).
    Execute {
        /// Request id.
        #[arg(value_name = "ID")]
        id: Id,
        /// Stamp with this admin key instead of the principal key.
        #[arg(long, value_name = "FILE")]
        admin_key: Option<PathBuf>,
    },
}

/// Runs a requests subcommand.
pub fn run(api: &Api, principal: &PrincipalKeyChoice, cmd: RequestsCommand) -> Result<()> {
    match cmd {
        RequestsCommand::List => print_json(&api.get(&Route::ListRequests)?),
        RequestsCommand::Show { id } => {
            let shown = api.get(&Route::GetRequest(id))?;
            let request = &shown["request"];
            if let Ok(intent) = serde_json::from_value(request["intent"].clone()) {
                eprint!("{}", crate::intent_text::describe(&intent));
            }
            print_json(&shown)
        }
        RequestsCommand::Approve { id, digest } => {
            let shown = api.get(&Route::GetRequest(id.clone()))?;
            let request = &shown["request"];
            let status = request["status"].as_str().unwrap_or("in an unknown state");
            if status != "pending" {
                bail!("request {id} is {status}, not pending: nothing to approve");
            }
            let server_digest = request["intent_digest"]
                .as_str()
                .and_then(|d| digest_arg(d).ok())
                .with_context(|| format!("request {id} has no valid intent_digest"))?;
            if let Some(Digest(given)) = digest
                && given != server_digest.0
            {
                bail!(
                    "request {id} has intent digest {}, not the {} you gave: not approving",
                    hex::encode(server_digest.0),
                    hex::encode(given)
                );
            }
            let intent = check_intent_digest(request, &server_digest.0)?;
            eprintln!("{}", describe_request(request, &intent));
            let key = principal.load()?;
            let body =
                serde_json::to_vec(&json!({ "intent_digest": hex::encode(server_digest.0) }))?;
            let answer = api.stamped(&Route::ApproveRequest(id), Some(&body), &key)?;
            report_progress(&answer.body)
        }
        RequestsCommand::Cancel { id, admin_key } => {
            let key = principal.load_or_admin(admin_key.as_deref())?;
            let answer = api.stamped(&Route::CancelRequest(id), Some(b"{}"), &key)?;
            print_json(&answer.body)
        }
        RequestsCommand::Execute { id, admin_key } => {
            let key = principal.load_or_admin(admin_key.as_deref())?;
            let answer = api.stamped(&Route::ExecuteRequest(id), Some(b"{}"), &key)?;
            report_progress(&answer.body)
        }
    }
}

/// Prints an approve/execute answer, and on stderr where the request now stands.
fn report_progress(answer: &Value) -> Result<()> {
    print_json(answer)?;
    let request = &answer["request"];
    match request["status"].as_str() {
        Some("pending") => eprintln!("{}", pending_note(request)),
        Some("signed") => eprintln!(
            "request {} is signed",
            request["id"].as_str().unwrap_or_default()
        ),
        Some(other) => eprintln!(
            "request {} is {other}: {}",
            request["id"].as_str().unwrap_or_default(),
            request["decision"]["reason"].as_str().unwrap_or_default()
        ),
        None => {}
    }
    Ok(())
}

/// What an approver is about to approve, for a person to read.
fn describe_request(request: &Value, intent: &strongroom_policy::Intent) -> String {
    let s = |k: &str| request[k].as_str().unwrap_or("?").to_string();
    format!(
        "approving request {}: {} by principal {:?} with key {} ({:?})\n{}intent digest: {}",
        s("id"),
        s("action"),
        s("principal"),
        s("key_id"),
        s("key_label"),
        crate::intent_text::describe(intent),
        s("intent_digest"),
    )
}

/// Where a waiting request stands and what to do next.
pub fn pending_note(request: &Value) -> String {
    let id = request["id"].as_str().unwrap_or("?");
    let decision = &request["decision"];
    let reason = decision["reason"].as_str().unwrap_or_default();
    match decision["result"].as_str() {
        Some("needs_approval") => {
            let names = |k: &str| {
                decision[k]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            format!(
                "request {id} is pending: it needs {} approval(s) from [{}], has [{}] ({reason}); \
                 approvers run `strongroom requests approve {id}`",
                decision["threshold"].as_u64().unwrap_or_default(),
                names("approvers"),
                names("approved"),
            )
        }
        Some("time_locked") => {
            let until = decision["until"].as_u64().unwrap_or_default();
            format!(
                "request {id} is pending: time-locked until {} ({reason}); then run \
                 `strongroom requests execute {id}`",
                format_time(until)
            )
        }
        _ => format!("request {id} is pending: {reason}"),
    }
}

/// Unix seconds as RFC 3339 UTC (the number itself if out of range).
fn format_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The proxy relays the request's intent and its digest; recomputing the digest from the
/// intent shown makes sure what the approver reads is what the approval covers.
fn check_intent_digest(request: &Value, digest: &[u8; 32]) -> Result<strongroom_policy::Intent> {
    let intent: strongroom_policy::Intent = serde_json::from_value(request["intent"].clone())
        .context("the request's intent does not decode")?;
    let key_id = request["key_id"]
        .as_str()
        .context("the request has no key_id")?;
    if &intent.digest(key_id) != digest {
        bail!(
            "the intent shown does not hash to the request's intent digest: the server's \
             answer was altered; not approving"
        );
    }
    Ok(intent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pending_notes_say_what_to_do_next() {
        let approval = json!({"id": "r1", "decision": {"result": "needs_approval",
            "threshold": 2, "approvers": ["alice", "bob"], "approved": ["bob"],
            "rule": "big", "reason": "2 of alice, bob"}});
        let note = pending_note(&approval);
        assert!(
            note.contains("needs 2 approval(s) from [alice, bob], has [bob]"),
            "{note}"
        );
        assert!(note.contains("strongroom requests approve r1"), "{note}");
        let locked = json!({"id": "r2", "decision": {"result": "time_locked",
            "until": 1_700_000_000u64, "rule": "slow", "reason": "wait"}});
        let note = pending_note(&locked);
        assert!(note.contains("until 2023-11-14T22:13:20Z"), "{note}");
        assert!(note.contains("strongroom requests execute r2"), "{note}");
    }

    #[test]
    fn an_intent_altered_on_the_way_is_not_approved() {
        use strongroom_policy::{Intent, MessageIntent};
        let intent = Intent::Message(MessageIntent {
            len: 5,
            text: Some("hello".into()),
            signing_hash: [7; 32].into(),
        });
        let digest = intent.digest("k1");
        let request = json!({"key_id": "k1", "intent": intent});
        assert!(check_intent_digest(&request, &digest).is_ok());
        // The proxy shows another message under the same digest: refused.
        let mut altered = request.clone();
        altered["intent"]["text"] = json!("HELLO");
        let err = check_intent_digest(&altered, &digest).unwrap_err();
        assert!(err.to_string().contains("altered"), "{err}");
        // Or files it under another key.
        let mut moved = request;
        moved["key_id"] = json!("k2");
        assert!(check_intent_digest(&moved, &digest).is_err());
    }
}
