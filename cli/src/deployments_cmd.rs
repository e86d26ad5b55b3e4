//! `strongroom deployments`: the deployments this client trusted on first use (kept in the
//! state file with the audit heads), and forgetting one after a re-deployment.

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;
use strongroom_client::HeadBook;

use crate::client::{StateChoice, cli_error, print_json};

/// Known-deployment subcommands.
#[derive(Subcommand)]
pub enum DeploymentsCommand {
    /// Print the known deployments by scope: `genesis:HEX` (the root key first seen with
    /// that genesis), `key_check:HEX` (the genesis first seen with that root key) and
    /// `endpoint:URL` (the deployment first seen answering there).
    List,
    /// Forget the known deployments a scope, genesis digest, root-key check value or
    /// endpoint URL names, so the next one is trusted on first use (after a re-deployment
    /// its operators announced; better: pin it with --expect-genesis and --expect-key-check).
    Forget {
        /// A scope as `list` prints it, a genesis digest or check value (hex), or a URL.
        what: String,
    },
}

/// Runs a deployments subcommand against the state file `state` names.
pub fn run(state: &StateChoice, cmd: DeploymentsCommand) -> Result<()> {
    let Some(path) = state.path() else {
        bail!("no state file (--no-state, or no home directory): no deployments are remembered");
    };
    let book = HeadBook::open(&path).map_err(cli_error)?;
    match cmd {
        DeploymentsCommand::List => print_json(&json!({
            "state_file": path.display().to_string(),
            "known": book.known(),
        })),
        DeploymentsCommand::Forget { what } => {
            let gone = book.forget(&what).map_err(cli_error)?;
            if gone == 0 {
                bail!(
                    "no known deployment in {} is named {what:?}",
                    path.display()
                );
            }
            print_json(&json!({ "forgotten": gone, "state_file": path.display().to_string() }))
        }
    }
}
