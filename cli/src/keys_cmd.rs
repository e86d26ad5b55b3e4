//! `strongroom keys …`: create, list, show and destroy signing keys.

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;
use strongroom_client::{Method, StatusCode};

use crate::client::{Api, print_json};
use crate::input::key_id_arg;
use crate::principal::PrincipalKeyChoice;

/// Key subcommands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a secp256k1 key in the enclave and print its public description (stamped
    /// with the principal key; the policy must allow create_key).
    Create {
        /// Human-readable label.
        #[arg(long, value_name = "LABEL")]
        label: String,
    },
    /// List the keys.
    List,
    /// Print one key's public description.
    Show {
        /// Key id.
        #[arg(value_name = "ID", value_parser = key_id_arg)]
        id: String,
    },
    /// Destroy a key: the enclave refuses its blob from then on. Irreversible (stamped
    /// with the principal key; the policy must allow destroy_key).
    Destroy {
        /// Key id.
        #[arg(value_name = "ID", value_parser = key_id_arg)]
        id: String,
    },
}

/// Runs a keys subcommand.
pub fn run(api: &Api, principal: &PrincipalKeyChoice, cmd: KeysCommand) -> Result<()> {
    let answer = match cmd {
        KeysCommand::Create { label } => {
            let body = serde_json::to_vec(&json!({ "label": label }))?;
            let key = principal.load()?;
            let answer = api.stamped(Method::POST, &["v1", "keys"], Some(&body), &key)?;
            if answer.status != StatusCode::CREATED {
                bail!("unexpected status {} (expected 201 Created)", answer.status);
            }
            answer.body
        }
        KeysCommand::List => api.get(&["v1", "keys"])?,
        KeysCommand::Show { id } => api.get(&["v1", "keys", &id])?,
        KeysCommand::Destroy { id } => {
            let key = principal.load()?;
            api.stamped(Method::DELETE, &["v1", "keys", &id], None, &key)?
                .body
        }
    };
    print_json(&answer)
}
