//! `strongroom genesis digest FILE`: the digest an enclave booted with this genesis document
//! publishes, computed offline, so admins can pin a deployment (`--expect-genesis`) from
//! their own file rather than from what the first boot reports.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use strongroom_policy::Genesis;

use crate::client::print_json;
use crate::input::file_or_stdin;

/// Genesis subcommands.
#[derive(Subcommand)]
pub enum GenesisCommand {
    /// Check a genesis document as the enclave's first boot does and print its digests:
    /// `genesis_digest` (for --expect-genesis; in every attestation document) and the
    /// `policy_digest`, `admins_digest` and admin key ids `policy show` reports at
    /// `state_seq` 0.
    Digest {
        /// The genesis document (JSON, as given to the proxy's --genesis; `-`: standard
        /// input).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Runs a genesis subcommand.
pub fn run(cmd: GenesisCommand) -> Result<()> {
    match cmd {
        GenesisCommand::Digest { file } => {
            let path = file.to_string_lossy();
            let genesis = Genesis::from_json(&file_or_stdin(&path)?)
                .with_context(|| format!("{path} is not a genesis document the enclave accepts"))?;
            let admin_ids: Vec<&str> = genesis.admins.keys().iter().map(|k| k.id()).collect();
            print_json(&json!({
                "genesis_digest": hex::encode(genesis.digest()),
                "policy_digest": hex::encode(genesis.policy.digest()),
                "admins_digest": hex::encode(genesis.admins.digest()),
                "admin_key_ids": admin_ids,
                "threshold": genesis.admins.threshold(),
            }))
        }
    }
}
