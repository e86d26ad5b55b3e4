//! `strongroom`: the command-line program for clients, auditors and developers.

mod attestation_cmd;
mod input;
mod mock_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Strongroom: an attested transaction signer for AWS Nitro Enclaves.
#[derive(Parser)]
#[command(name = "strongroom", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attestation documents.
    #[command(subcommand)]
    Attestation(attestation_cmd::AttestationCommand),
    /// Developer tools for mock mode.
    #[command(subcommand)]
    Mock(mock_cmd::MockCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Attestation(cmd) => attestation_cmd::run(cmd),
        Command::Mock(cmd) => mock_cmd::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
