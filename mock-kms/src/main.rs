//! `strongroom-mock-kms`: a mock AWS KMS for Strongroom's mock mode.
//!
//! Prints `mock-kms listening on http://ADDR` on stdout once it accepts connections (logs go
//! to stderr), and stops cleanly on SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use strongroom_mock_kms::{Config, DEFAULT_LISTEN, MockKms};
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A mock AWS KMS speaking the real KMS JSON protocol, with attested `Recipient` support.
/// It does not verify SigV4 signatures or principals: it mocks KMS, not IAM.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (use port 0 for any free port).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Directory for the persistent state (keys, policies, aliases).
    #[arg(long)]
    state: PathBuf,
    /// PEM root certificate that `Recipient` attestation documents must chain to (the mock
    /// NSM writes DATA/mock-nsm/root.pem). Re-read when it changes; it may appear after
    /// start-up. Without it, the AWS Nitro Enclaves root is trusted, as by real KMS.
    #[arg(long, value_name = "FILE")]
    attestation_root: Option<PathBuf>,
    /// On start, create a key with --init-policy and this alias (like alias/strongroom),
    /// unless the alias already exists.
    #[arg(long, value_name = "ALIAS", requires = "init_policy")]
    init_key: Option<String>,
    /// Key policy (JSON file) for --init-key.
    #[arg(long, value_name = "FILE", requires = "init_key")]
    init_policy: Option<PathBuf>,
    /// Log format (the level comes from RUST_LOG, default info).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);

    let mut config = Config::new(&args.state);
    if let Some(root) = &args.attestation_root {
        config = config.attestation_root(root);
        if !root.exists() {
            tracing::info!(path = %root.display(), "attestation root not there yet; it is read when a Recipient arrives");
        }
    }
    let kms = MockKms::open(config).context("opening the mock KMS state")?;

    if let (Some(alias), Some(policy_path)) = (&args.init_key, &args.init_policy) {
        let policy = std::fs::read_to_string(policy_path)
            .with_context(|| format!("reading --init-policy {}", policy_path.display()))?;
        let key = kms
            .ensure_key(alias, &policy, "Strongroom root key (mock KMS)")
            .with_context(|| format!("provisioning {alias}"))?;
        tracing::info!(%alias, key_id = %key.key_id, arn = %key.arn, created = key.created, "init key ready");
    }

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "mock-kms listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);

    kms.serve(listener, shutdown_signal()).await?;
    Ok(())
}
