//! `strongroom-enclave`: the enclave program. In production it runs in a Nitro Enclave
//! with the real NSM and listens on vsock; in mock mode it runs as a local process with the
//! mock NSM (feature `mock`) and listens on a Unix socket.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use strongroom_attestation::Nsm;
use strongroom_enclave::{Enclave, server};
use strongroom_protocol::Address;

/// The Strongroom enclave.
#[derive(Parser)]
#[command(name = "strongroom-enclave", version, about)]
struct Args {
    /// Where to listen: `vsock:CID:PORT` (production; CID 4294967295 = any) or `unix:PATH`.
    #[arg(
        long,
        env = "STRONGROOM_ENCLAVE_LISTEN",
        default_value = "vsock:4294967295:5000"
    )]
    listen: Address,
    /// The NSM: `nitro` (/dev/nsm) or, in builds with the `mock` feature, `mock:STATE-DIR`.
    #[arg(long, env = "STRONGROOM_NSM", default_value = "nitro")]
    nsm: String,
    /// PCR values for the mock NSM (JSON `{"0": "hex", ...}`).
    #[arg(long, env = "STRONGROOM_MOCK_PCRS")]
    mock_pcrs: Option<std::path::PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "STRONGROOM_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
}

async fn run<N: Nsm + 'static>(nsm: N, listen: &Address) -> Result<()> {
    let enclave = Arc::new(Enclave::new(nsm));
    let listener =
        strongroom_protocol::bind(listen).with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, "enclave listening");
    println!("enclave listening on {listen}");
    tokio::select! {
        r = server::serve(listener, enclave) => r.context("serving")?,
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn init_logging(format: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => bail!("--log-format must be text or json, not {other:?}"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    init_logging(&args.log_format)?;
    if args.nsm == "nitro" {
        #[cfg(all(feature = "nitro", target_os = "linux"))]
        {
            let nsm = strongroom_attestation::nitro::NitroNsm::open()?;
            return run(nsm, &args.listen).await;
        }
        #[cfg(not(all(feature = "nitro", target_os = "linux")))]
        bail!("this build has no real NSM support (build with --features nitro on Linux)");
    }
    if let Some(dir) = args.nsm.strip_prefix("mock:") {
        #[cfg(feature = "mock")]
        {
            use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
            let mut config = MockNsmConfig::default();
            if let Some(path) = &args.mock_pcrs {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                config.pcrs = MockNsmConfig::pcrs_from_json(&text)?;
            }
            tracing::warn!("running with the MOCK NSM: documents chain to a mock root, not AWS");
            let nsm = MockNsm::open_or_create(std::path::Path::new(dir), config)?;
            return run(nsm, &args.listen).await;
        }
        #[cfg(not(feature = "mock"))]
        {
            let _ = dir;
            bail!("this build has no mock NSM (production build); use --nsm nitro");
        }
    }
    bail!("--nsm must be `nitro` or `mock:DIR`, not {:?}", args.nsm)
}
