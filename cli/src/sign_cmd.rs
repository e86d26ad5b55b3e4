//! `strongroom sign …`: signatures from a key in the enclave.

use anyhow::Result;
use clap::Subcommand;
use reqwest::StatusCode;
use serde_json::json;

use crate::client::{Api, print_json};
use crate::input::{Digest, digest_arg, key_id_arg};

/// Signing subcommands.
#[derive(Subcommand)]
pub enum SignCommand {
    /// Sign a 32-byte digest (already hashed, e.g. an Ethereum transaction's keccak256);
    /// prints the recoverable signature r‖s‖v.
    Digest {
        /// Key id.
        #[arg(long, value_name = "ID", value_parser = key_id_arg)]
        key: String,
        /// The digest: 32 bytes as hex, with or without 0x.
        #[arg(long, value_name = "HEX", value_parser = digest_arg)]
        digest: Digest,
    },
}

/// Runs a sign subcommand.
pub fn run(api: &Api, cmd: SignCommand) -> Result<()> {
    match cmd {
        SignCommand::Digest {
            key,
            digest: Digest(digest),
        } => {
            let body = json!({ "digest": format!("0x{}", hex::encode(digest)) });
            let answer = api.post(
                &["v1", "keys", &key, "sign", "digest"],
                &body,
                StatusCode::OK,
            )?;
            print_json(&answer)
        }
    }
}
