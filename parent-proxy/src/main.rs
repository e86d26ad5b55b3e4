//! `strongroom-proxy`: the parent proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use aws_config::BehaviorVersion;
use clap::Parser;
use strongroom_protocol::Address;
use strongroom_proxy::audit::AuditTracker;
use strongroom_proxy::enclave_client::EnclaveClient;
use strongroom_proxy::http::{AppState, router};
use strongroom_proxy::kms::Kms;
use strongroom_proxy::metrics::Metrics;
use strongroom_proxy::replica::Replica;
use strongroom_proxy::rpc_tokens::RpcTokens;
use strongroom_proxy::unseal::{Health, supervise, take_snapshot};
use strongroom_store::Store;

/// The Strongroom parent proxy.
#[derive(Parser)]
#[command(name = "strongroom-proxy", version, about)]
struct Args {
    /// HTTP listen address.
    #[arg(long, env = "STRONGROOM_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The enclave: `vsock:CID:PORT` (production) or `unix:PATH` (mock mode).
    #[arg(long, env = "STRONGROOM_ENCLAVE", default_value = "vsock:16:5000")]
    enclave: Address,
    /// Connections kept to the enclave (concurrent requests in flight), 1 to 1024.
    #[arg(long, env = "STRONGROOM_ENCLAVE_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    enclave_connections: u16,
    /// SQLite database file (the embedded default).
    #[arg(long, env = "STRONGROOM_DB", default_value = "data/strongroom.sqlite")]
    db: PathBuf,
    /// The database instead of `--db`: a PostgreSQL URL, `postgres://USER@HOST/DB`, which
    /// replicas of one deployment share (password in the URL or in `PGPASSWORD`'s place:
    /// `postgres://USER:PASSWORD@…`), or `sqlite:PATH`.
    #[arg(long, env = "STRONGROOM_DATABASE_URL", conflicts_with = "db")]
    database: Option<String>,
    /// Run as one of several replicas of a deployment that share the database: a name
    /// for this instance (ASCII letters, digits, `.`, `_`, `-`; at most 64), kept across
    /// its restarts (an EC2 instance id will do). A later boot under the same name
    /// replaces the earlier one's identity. Without it, this proxy's enclave is the
    /// deployment's only one.
    #[arg(long, env = "STRONGROOM_REPLICA")]
    replica: Option<String>,
    /// KMS key that guards the root key (key id, ARN or alias).
    #[arg(
        long,
        env = "STRONGROOM_KMS_KEY_ID",
        default_value = "alias/strongroom"
    )]
    kms_key_id: String,
    /// KMS endpoint URL (mock mode: the mock KMS); default: AWS's endpoint for the region.
    #[arg(long, env = "STRONGROOM_KMS_ENDPOINT")]
    kms_endpoint: Option<String>,
    /// AWS region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// The genesis document (admin set and first policy, JSON), needed on the first boot
    /// only: without one a first boot refuses to start.
    #[arg(long, env = "STRONGROOM_GENESIS")]
    genesis: Option<PathBuf>,
    /// JSON-RPC bearer tokens: lines `sha256:<hex> <principal key file>`. A `POST /rpc`
    /// with `Authorization: Bearer TOKEN` and no stamp is stamped by the proxy with the
    /// bound key, so the parent instance holds that principal's authority (README, "JSON-RPC").
    #[arg(long, env = "STRONGROOM_RPC_TOKENS", value_name = "FILE")]
    rpc_tokens: Option<PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "STRONGROOM_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
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

async fn kms_client(args: &Args) -> aws_sdk_kms::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(args.region.clone()));
    if let Some(endpoint) = &args.kms_endpoint {
        loader = loader.endpoint_url(endpoint);
        // The mock KMS (on this machine) does not check signatures; without AWS credentials
        // in the environment, sign with placeholder ones rather than searching for real
        // ones. Any other endpoint (a KMS VPC endpoint's URL) is real KMS: the default
        // chain, i.e. the instance role.
        if is_loopback_endpoint(endpoint) && std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_kms::config::Credentials::new(
                "mock",
                "mock",
                None,
                None,
                "strongroom-mock",
            ));
        }
    }
    aws_sdk_kms::Client::new(&loader.load().await)
}

/// Whether an endpoint URL names this machine (`localhost`, 127.0.0.0/8, `[::1]`).
fn is_loopback_endpoint(url: &str) -> bool {
    let Ok(uri) = url.parse::<axum::http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    // IPv6 hosts keep their brackets in `Uri::host`.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    init_logging(&args.log_format)?;
    let location = match &args.database {
        Some(url) => url.clone(),
        None => format!("sqlite:{}", args.db.display()),
    };
    let store: Arc<dyn Store> = strongroom_store::open(&location)
        .await
        .with_context(|| format!("opening {}", strongroom_store::redact(&location)))?;
    tracing::info!(backend = store.backend(), database = %strongroom_store::redact(&location), "database open");
    let genesis = match &args.genesis {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let first_boot = store
        .root()
        .await
        .context("reading the database")?
        .and_then(|r| r.key_check)
        .is_none();
    if first_boot && genesis.is_none() {
        bail!(
            "first boot: no genesis document. Write one (admin set and first policy; see the \
             README's \"Genesis\" section) and pass it with --genesis FILE"
        );
    }
    let metrics = Arc::new(Metrics::new());
    let enclave = Arc::new(
        EnclaveClient::new(args.enclave.clone(), usize::from(args.enclave_connections))
            .with_metrics(Arc::clone(&metrics)),
    );
    let kms = Kms::new(kms_client(&args).await, args.kms_key_id.clone())
        .with_metrics(Arc::clone(&metrics));
    let health = Arc::new(Health::default());
    let audit = Arc::new(AuditTracker::default());
    let replica = match &args.replica {
        Some(name) if !strongroom_identity::valid_replica_name(name) || name.is_empty() => bail!(
            "--replica {name:?}: a replica name is 1 to {} ASCII letters, digits, '.', '_' or '-'",
            strongroom_identity::MAX_REPLICA_NAME
        ),
        Some(name) => {
            if store.backend() == "sqlite" {
                tracing::warn!(
                    "replica {name} over a SQLite file: replicas share it only on one machine; \
                     use --database postgres://… for replicas on several"
                );
            }
            let replica = Arc::new(Replica::new(name.clone()));
            let ready = Arc::clone(&health);
            tokio::spawn(Arc::clone(&replica).keep_up_forever(
                Arc::clone(&enclave),
                Arc::clone(&store),
                Arc::clone(&metrics),
                move || ready.is_ready(),
            ));
            Some(replica)
        }
        None => None,
    };
    tokio::spawn(supervise(
        Arc::clone(&enclave),
        kms,
        Arc::clone(&store),
        Arc::clone(&health),
        Arc::clone(&audit),
        genesis,
        replica.clone(),
    ));
    let rpc_tokens = match &args.rpc_tokens {
        Some(path) => {
            let tokens = RpcTokens::load(path).context("reading the JSON-RPC token file")?;
            tracing::info!(tokens = tokens.len(), "JSON-RPC bearer tokens loaded");
            Some(Arc::new(tokens))
        }
        None => None,
    };
    let app = router(AppState {
        enclave: Arc::clone(&enclave),
        store: Arc::clone(&store),
        health: Arc::clone(&health),
        metrics,
        audit,
        rpc_tokens,
        replica,
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, enclave = %args.enclave, "proxy listening");
    println!("proxy listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    // A clean stop takes a snapshot, so the next boot replays nothing.
    if health.is_ready()
        && let Err(e) = take_snapshot(&enclave, store.as_ref()).await
    {
        tracing::warn!(error = %e, "no snapshot at shutdown; the next boot replays the log");
    }
    tracing::info!("proxy stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_endpoint;

    #[test]
    fn only_this_machine_gets_placeholder_credentials() {
        for local in [
            "http://127.0.0.1:4000",
            "http://127.0.0.1",
            "http://localhost:4000/",
            "http://LOCALHOST",
            "http://[::1]:4000",
            "http://127.1.2.3:80/x",
        ] {
            assert!(is_loopback_endpoint(local), "{local}");
        }
        for remote in [
            "https://vpce-0123-abcd.kms.us-east-1.vpce.amazonaws.com",
            "https://kms.us-east-1.amazonaws.com",
            "http://10.0.0.5:443",
            "http://127.0.0.1.example.com",
            "http://localhost.example.com",
            "http://user@kms.example.com",
            "http://[2001:db8::1]:443",
        ] {
            assert!(!is_loopback_endpoint(remote), "{remote}");
        }
    }
}
