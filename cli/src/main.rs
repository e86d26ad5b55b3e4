//! `strongroom`: the command-line program for clients, auditors and developers.

mod attestation_cmd;
mod client;
mod health_cmd;
mod input;
mod keys_cmd;
mod mock_cmd;
mod sign_cmd;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::client::Api;

/// Strongroom: an attested transaction signer for AWS Nitro Enclaves.
#[derive(Parser)]
#[command(name = "strongroom", version, about)]
struct Cli {
    /// The Strongroom server (the parent proxy's HTTP API).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "STRONGROOM_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Give up on a request after this many seconds.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Is the server up and the enclave unsealed? Exit 1 if not.
    Health,
    /// Signing keys.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Signatures.
    #[command(subcommand)]
    Sign(sign_cmd::SignCommand),
    /// Attestation documents.
    #[command(subcommand)]
    Attestation(attestation_cmd::AttestationCommand),
    /// Developer tools for mock mode.
    #[command(subcommand)]
    Mock(mock_cmd::MockCommand),
}

fn run(cli: Cli) -> Result<()> {
    // Built only for the commands that talk to the server, so a bad STRONGROOM_URL does
    // not break offline commands.
    let api = || Api::new(&cli.url, Duration::from_secs(cli.timeout));
    match cli.command {
        Command::Health => health_cmd::run(&api()?),
        Command::Keys(cmd) => keys_cmd::run(&api()?, cmd),
        Command::Sign(cmd) => sign_cmd::run(&api()?, cmd),
        Command::Attestation(cmd) => attestation_cmd::run(cmd),
        Command::Mock(cmd) => mock_cmd::run(cmd),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
