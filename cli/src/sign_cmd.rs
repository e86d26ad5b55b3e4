//! `strongroom sign …`: signatures from a key in the enclave. Every request is stamped with
//! the principal key; the enclave decodes the payload itself and asks the policy.

use anyhow::{Result, bail};
use clap::{ArgGroup, Subcommand};
use serde_json::{Value, json};
use strongroom_client::{Id, Route, SignKind, StatusCode};

use crate::client::{Answer, Api, print_json};
use crate::input::{Digest, digest_arg, json_body_file};
use crate::principal::PrincipalKeyChoice;
use crate::requests_cmd::pending_note;

/// Signing subcommands.
#[derive(Subcommand)]
pub enum SignCommand {
    /// Sign a 32-byte digest blindly (already hashed, e.g. an Ethereum transaction's
    /// keccak256); prints the recoverable signature r‖s‖v. The policy must grant
    /// sign_digest explicitly.
    Digest {
        /// Key id.
        #[arg(long, value_name = "ID")]
        key: Id,
        /// The digest: 32 bytes as hex, with or without 0x.
        #[arg(long, value_name = "HEX", value_parser = digest_arg)]
        digest: Digest,
    },
    /// Sign an Ethereum transaction: FILE holds `{"transaction": {…eth_signTransaction
    /// fields…}}` or `{"unsigned": "0x…"}` (the unsigned RLP/typed envelope).
    #[command(name = "tx", visible_alias = "transaction")]
    Tx {
        /// Key id.
        #[arg(long, value_name = "ID")]
        key: Id,
        /// The request body, sent as is (`-`: standard input).
        #[arg(long, value_name = "FILE")]
        file: String,
    },
    /// Sign EIP-712 typed data: FILE holds the eth_signTypedData_v4 JSON.
    TypedData {
        /// Key id.
        #[arg(long, value_name = "ID")]
        key: Id,
        /// The request body, sent as is (`-`: standard input).
        #[arg(long, value_name = "FILE")]
        file: String,
    },
    /// Sign a personal_sign (EIP-191) message: FILE holds `{"message": "0x…"}`, or
    /// --text gives the message as text.
    #[command(group(ArgGroup::new("input").required(true).args(["file", "text"])))]
    Message {
        /// Key id.
        #[arg(long, value_name = "ID")]
        key: Id,
        /// The request body, sent as is (`-`: standard input).
        #[arg(long, value_name = "FILE")]
        file: Option<String>,
        /// The message as UTF-8 text.
        #[arg(long, value_name = "TEXT")]
        text: Option<String>,
    },
}

/// The body of `sign message --text`.
pub fn message_body(text: &str) -> Value {
    json!({ "message": format!("0x{}", hex::encode(text.as_bytes())) })
}

/// Runs a sign subcommand.
pub fn run(api: &Api, principal: &PrincipalKeyChoice, cmd: SignCommand) -> Result<()> {
    let (key, kind, body) = match cmd {
        SignCommand::Digest {
            key,
            digest: Digest(digest),
        } => {
            let body = json!({ "digest": format!("0x{}", hex::encode(digest)) });
            (key, SignKind::Digest, serde_json::to_vec(&body)?)
        }
        SignCommand::Tx { key, file } => (key, SignKind::Transaction, json_body_file(&file)?),
        SignCommand::TypedData { key, file } => (key, SignKind::TypedData, json_body_file(&file)?),
        SignCommand::Message { key, file, text } => {
            let body = match (file, text) {
                (Some(file), _) => json_body_file(&file)?,
                (None, Some(text)) => serde_json::to_vec(&message_body(&text))?,
                (None, None) => bail!("give --file or --text"),
            };
            (key, SignKind::Message, body)
        }
    };
    let stamp_key = principal.load()?;
    let answer = api.stamped(&Route::Sign(key, kind), Some(&body), &stamp_key)?;
    report_signing(&answer)
}

/// Prints a signing answer: the signature (200), or the request now waiting for approvals
/// or a time-lock (202), with what to do next on stderr.
pub fn report_signing(answer: &Answer) -> Result<()> {
    match answer.status {
        StatusCode::OK => print_json(&answer.body),
        StatusCode::ACCEPTED => {
            print_json(&answer.body)?;
            eprintln!("{}", pending_note(&answer.body["request"]));
            Ok(())
        }
        other => bail!("unexpected status {other} (expected 200 or 202)"),
    }
}
