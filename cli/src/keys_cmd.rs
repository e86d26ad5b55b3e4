//! `strongroom keys …`: create, list, show and destroy signing keys.

use anyhow::Result;
use clap::Subcommand;
use reqwest::StatusCode;
use serde_json::json;

use crate::client::{Api, print_json};
use crate::input::key_id_arg;

/// Key subcommands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a secp256k1 key in the enclave and print its public description.
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
    /// Destroy a key: the enclave refuses its blob from then on. Irreversible.
    Destroy {
        /// Key id.
        #[arg(value_name = "ID", value_parser = key_id_arg)]
        id: String,
    },
}

/// Runs a keys subcommand.
pub fn run(api: &Api, cmd: KeysCommand) -> Result<()> {
    let answer = match cmd {
        KeysCommand::Create { label } => api.post(
            &["v1", "keys"],
            &json!({ "label": label }),
            StatusCode::CREATED,
        )?,
        KeysCommand::List => api.get(&["v1", "keys"])?,
        KeysCommand::Show { id } => api.get(&["v1", "keys", &id])?,
        KeysCommand::Destroy { id } => api.delete(&["v1", "keys", &id])?,
    };
    print_json(&answer)
}
