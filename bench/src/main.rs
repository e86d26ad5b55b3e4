//! `strongroom-bench`: the full stack's signing throughput and latency, reported against
//! the raw secp256k1 signing floor and the enclave's crypto floor measured in the same run
//! on the same machine.

mod baseline;
mod cpu;
mod load;
mod report;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::load::{Plan, Target};
use crate::report::{Baseline, CpuPerRequest, FullStack, Ratios, Report, Setup};
use crate::stats::Latency;

/// Warm-up before each baseline.
const BASELINE_WARMUP: Duration = Duration::from_millis(500);

/// Benchmarks a running Strongroom server against the crypto floor of the same machine.
#[derive(Parser)]
#[command(name = "strongroom-bench", version, about)]
struct Args {
    /// The Strongroom server (the parent proxy's HTTP API).
    #[arg(
        long,
        value_name = "URL",
        env = "STRONGROOM_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    clients: u16,
    /// Measured time of the full-stack run.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    duration: u64,
    /// Full-stack warm-up before measuring (requests sent, not counted).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(0..=600)
    )]
    warmup: u64,
    /// Measured time of each in-process baseline.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 2,
        value_parser = clap::value_parser!(u64).range(1..=600)
    )]
    baseline: u64,
    /// Check the signature of one successful response in N (1: every one).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 16,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    verify_every: u64,
    /// Also write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Keep the benchmark key afterwards (by default it is destroyed).
    #[arg(long)]
    keep_key: bool,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the benchmark; Ok(false) when it ran but saw errors.
fn run(args: Args) -> Result<bool> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let clients = usize::from(args.clients);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let target = Arc::new(Target::new(&args.url, clients)?);

    // Fail fast, before the baselines, if there is nothing to benchmark.
    runtime.block_on(target.check_health())?;

    eprintln!(
        "measuring the baselines ({} s each) on {cores} cores...",
        args.baseline
    );
    let duration = Duration::from_secs(args.baseline);
    let baseline = Baseline {
        raw_sign: baseline::raw_sign(BASELINE_WARMUP, duration)?,
        crypto_floor: baseline::sealed_sign(BASELINE_WARMUP, duration, false)?,
        enclave_path: baseline::sealed_sign(BASELINE_WARMUP, duration, true)?,
    };

    let key = runtime.block_on(target.create_key())?;
    eprintln!(
        "full stack: {clients} clients, {} s warm-up, {} s measured, key {}...",
        args.warmup, args.duration, key.id
    );
    let plan = Plan {
        clients,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        verify_every: args.verify_every,
    };
    let outcome = runtime.block_on(load::run(target.clone(), &key, &plan));
    // The key goes whatever happened, so failed runs do not pile keys up either.
    if !args.keep_key
        && let Err(e) = runtime.block_on(target.destroy_key(&key.id))
    {
        eprintln!("warning: {e:#}");
    }
    let mut outcome = outcome?;
    let signatures = load::check_samples(&outcome.samples, &key.verifying_key);

    let requests_ok = outcome.latencies.len() as u64;
    let failed: u64 = outcome.errors.values().sum();
    let errors = failed + signatures.mismatches;
    let attempted = requests_ok + failed;
    let seconds = outcome.window.as_secs_f64();
    let cpu_per_request = outcome.cpu.as_ref().filter(|_| attempted > 0).map(|u| {
        let per = |cpu_seconds: f64| cpu_seconds * 1e6 / attempted as f64;
        CpuPerRequest {
            machine_us: per(u.machine_cpu_seconds),
            bench_clients_us: per(u.bench_cpu_seconds),
            server_us: per(u.rest_cpu_seconds),
        }
    });
    let warmup_errors = outcome.warmup_errors.values().sum();
    let full_stack = FullStack {
        key_id: key.id.clone(),
        requests_ok,
        errors,
        error_rate: if attempted == 0 {
            0.0
        } else {
            errors as f64 / attempted as f64
        },
        errors_by_kind: outcome.errors.clone(),
        warmup_errors,
        error_examples: outcome.examples.clone(),
        seconds,
        throughput_rps: requests_ok as f64 / seconds.max(f64::EPSILON),
        latency: Latency::of(&mut outcome.latencies),
        signatures,
        cpu: outcome.cpu.clone(),
        cpu_per_request,
    };
    let ratios = Ratios::of(&baseline, &full_stack);
    let passed = errors == 0 && warmup_errors == 0 && requests_ok > 0;
    let report = Report {
        setup: Setup {
            cores,
            url: args.url.clone(),
            clients,
            warmup_seconds: args.warmup,
            duration_seconds: args.duration,
            baseline_seconds: args.baseline,
            verify_every: args.verify_every,
        },
        baseline,
        full_stack,
        ratios,
        passed,
    };
    print!("{report}");
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(passed)
}
