//! `strongroom`: the command-line program for clients, auditors and developers.

mod attestation_cmd;
mod audit_cmd;
mod client;
mod deployments_cmd;
mod dev_cmd;
mod genesis_cmd;
mod health_cmd;
mod input;
mod intent_text;
mod keys_cmd;
mod kms_policy_cmd;
mod measure_cmd;
mod mock_cmd;
mod policy_cmd;
mod principal;
mod requests_cmd;
mod sign_cmd;
#[cfg(test)]
mod test_support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::client::{Api, StateChoice, VerifyOptions};
use crate::input::fixed_hex_arg;
use crate::principal::PrincipalKeyChoice;

/// Strongroom: an attested transaction signer for AWS Nitro Enclaves.
#[derive(Parser)]
#[command(name = "strongroom", version, about)]
struct Cli {
    /// The Strongroom server (the parent proxy's HTTP API, or a load balancer in front of
    /// replicas). Several (`--url A --url B`, or `A,B`): a deployment's replicas, tried in
    /// turn when one cannot be reached or answers 503.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "STRONGROOM_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    url: Vec<String>,
    /// Give up on a request after this many seconds.
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout: u64,
    /// The principal key that stamps requests (PEM or hex). Without it:
    /// $STRONGROOM_PRINCIPAL_KEY (a file, or the key itself), then DIR/dev/principal.key.
    #[arg(long, global = true, value_name = "FILE")]
    principal_key: Option<PathBuf>,
    /// The mock-mode data directory, where `dev init` puts development keys.
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "STRONGROOM_DATA_DIR",
        default_value = "data"
    )]
    data_dir: PathBuf,
    /// Verify every answer of the enclave: trust only enclaves whose attestation documents
    /// carry these PCRs (what `nitro-cli build-enclave` prints, `{"PCR0": "hex", …}`, or
    /// mock mode's DIR/mock-pcrs.json) and a signature by the identity they name. Repeat it
    /// to trust several releases (during an upgrade: the old and the new image's files): a
    /// document must carry all the PCRs of one of them. Without it, answers are taken as
    /// the server gives them.
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "STRONGROOM_EXPECT_PCRS"
    )]
    expect_pcrs: Vec<PathBuf>,
    /// With --expect-pcrs: the root attestation documents must chain to, `aws` (the
    /// pinned AWS Nitro Enclaves Root G1; the default) or a PEM file (mock mode:
    /// DIR/mock-nsm/root.pem).
    #[arg(
        long,
        global = true,
        value_name = "aws|PEM-FILE",
        env = "STRONGROOM_ATTESTATION_ROOT"
    )]
    attestation_root: Option<String>,
    /// With --expect-pcrs: refuse an enclave whose genesis digest (admin set and first
    /// policy, fixed at its first boot) is not this one (32 bytes, hex).
    #[arg(long, global = true, value_name = "HEX", env = "STRONGROOM_EXPECT_GENESIS",
          value_parser = fixed_hex_arg::<32>)]
    expect_genesis: Option<[u8; 32]>,
    /// With --expect-pcrs: refuse an enclave whose root-key check value is not this one
    /// (16 bytes, hex).
    #[arg(long, global = true, value_name = "HEX", env = "STRONGROOM_EXPECT_KEY_CHECK",
          value_parser = fixed_hex_arg::<16>)]
    expect_key_check: Option<[u8; 16]>,
    /// With --expect-pcrs: where to remember the highest audit head verified per deployment,
    /// so a rolled-back (forked) enclave is refused by the next command too (default
    /// $XDG_STATE_HOME/strongroom/heads.json, else ~/.local/state/strongroom/heads.json).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "STRONGROOM_STATE_FILE"
    )]
    state_file: Option<PathBuf>,
    /// With --expect-pcrs: remember no heads (each command checks only within itself);
    /// wins over --state-file and STRONGROOM_STATE_FILE.
    #[arg(long, global = true)]
    no_state: bool,
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
    /// The policy and admin set, and proposals to change them.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Signing requests waiting for approvals or a time-lock.
    #[command(subcommand)]
    Requests(requests_cmd::RequestsCommand),
    /// Attestation documents: fetch one from the server, verify one.
    #[command(subcommand)]
    Attestation(attestation_cmd::AttestationCommand),
    /// The enclave's signed audit chain: verify it, fetch it, its signed head.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Print the KMS key policy that releases the root key only to an enclave with these
    /// measurements (PCR0–2), to the parent's role; debug-mode (all-zero) PCRs are refused.
    KmsPolicy(kms_policy_cmd::KmsPolicyArgs),
    /// Print an enclave image's measurements (PCR0–2; PCR8 if signed) as nitro-cli does, for
    /// kms-policy --pcrs and --expect-pcrs; --check FILE compares them with a PCR file.
    /// Needs strongroom-eif (`make eif-tool`).
    Measure(measure_cmd::MeasureArgs),
    /// The deployments this client trusted on first use (in the state file): list, forget.
    #[command(subcommand)]
    Deployments(deployments_cmd::DeploymentsCommand),
    /// Genesis documents: the digest a deployment booted with one publishes, offline.
    #[command(subcommand)]
    Genesis(genesis_cmd::GenesisCommand),
    /// Developer tools for mock mode.
    #[command(subcommand)]
    Mock(mock_cmd::MockCommand),
    /// Development keys and genesis for mock mode; key tools for operators.
    #[command(subcommand)]
    Dev(dev_cmd::DevCommand),
}

fn run(cli: Cli) -> Result<()> {
    let verify = VerifyOptions {
        expect_pcrs: &cli.expect_pcrs,
        root: cli.attestation_root.as_deref(),
        genesis: cli.expect_genesis,
        key_check: cli.expect_key_check,
        state: if cli.no_state {
            StateChoice::None
        } else {
            cli.state_file
                .clone()
                .map_or(StateChoice::Default, StateChoice::File)
        },
    };
    // Built only for the commands that talk to the server, so a bad STRONGROOM_URL (or
    // verification flags) does not break offline commands.
    let api = || Api::new(&cli.url, Duration::from_secs(cli.timeout), &verify);
    // Loaded only by the commands that stamp, so reads work without a key.
    let principal = PrincipalKeyChoice::from_env(cli.principal_key, cli.data_dir.clone());
    match cli.command {
        Command::Health => health_cmd::run(&api()?),
        Command::Keys(cmd) => keys_cmd::run(&api()?, &principal, cmd),
        Command::Genesis(cmd) => genesis_cmd::run(cmd),
        Command::Deployments(cmd) => deployments_cmd::run(&verify.state, cmd),
        Command::Sign(cmd) => sign_cmd::run(&api()?, &principal, cmd),
        Command::Policy(cmd) => policy_cmd::run(&api()?, &principal, cmd),
        Command::Requests(cmd) => requests_cmd::run(&api()?, &principal, cmd),
        Command::Attestation(cmd) => attestation_cmd::run(api, cmd),
        Command::Audit(cmd) => {
            let pins = audit_cmd::Pins {
                genesis: cli.expect_genesis,
                key_check: cli.expect_key_check,
            };
            audit_cmd::run(
                api,
                cmd,
                &cli.expect_pcrs,
                cli.attestation_root.as_deref(),
                pins,
            )
        }
        Command::KmsPolicy(args) => kms_policy_cmd::run(args),
        Command::Measure(args) => measure_cmd::run(args),
        Command::Mock(cmd) => mock_cmd::run(cmd),
        Command::Dev(cmd) => dev_cmd::run(&cli.data_dir, cmd),
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
