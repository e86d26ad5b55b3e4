//! `strongroom-bench`: the full stack's signing throughput and latency, reported against
//! the raw secp256k1 signing floor and the enclave's crypto floor (stamp verification,
//! sealed-key open, signing, the answer signature) measured in the same run on the same
//! machine. Every request carries a request stamp made here with the principal key given.
//! Also, in one run: the server CPU per request early and late in the run (does a request
//! cost more once the log is long?), the watched processes' memory over it, and the
//! latency at half the peak's throughput.

mod audit_chain;
mod baseline;
mod boot_replay;
mod cpu;
mod load;
mod memory;
mod report;
mod segments;
mod stats;
mod threshold;
mod tx;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::load::{Outcome, PacedPlan, Payload, Plan, Target};
use crate::memory::Watch;
use crate::report::{Baseline, CpuPerRequest, FullStack, HalfLoad, Ratios, Report, Setup};
use crate::stats::Latency;

/// Warm-up before each baseline.
const BASELINE_WARMUP: Duration = Duration::from_millis(500);

/// Benchmarks a running Strongroom server against the crypto floor of the same machine.
#[derive(Parser)]
#[command(
    name = "strongroom-bench",
    version,
    about,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Args {
    /// Another benchmark instead of the signing one.
    #[command(subcommand)]
    mode: Option<Mode>,
    /// The Strongroom server (the parent proxy's HTTP API); several (repeated, or `A,B`):
    /// a deployment's replicas, client `i` sending to replica `i mod n`.
    #[arg(
        long,
        value_name = "URL",
        env = "STRONGROOM_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    url: Vec<String>,
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
    /// The principal key file that stamps every request (PEM, or hex seed), e.g. the
    /// development principal `strongroom dev init` writes to DATA/dev/principal.key.
    #[arg(
        long,
        value_name = "FILE",
        env = "STRONGROOM_PRINCIPAL_KEY",
        required = true
    )]
    principal_key: Option<PathBuf>,
    /// What each request signs: a random digest, or an EIP-1559 transfer of 1 wei on
    /// Sepolia (counted in the enclave's velocity counters).
    #[arg(long, value_enum, default_value_t = Payload::Digest)]
    payload: Payload,
    /// Stop after N requests in all, warm-up included (at most N/8 of them); the half-load
    /// run is not counted. Default: no limit.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    max_requests: Option<u64>,
    /// Compare the server CPU per request of the first N and the last N measured requests
    /// (when the run completes at least 2·N; without --max-requests the last N are the
    /// last complete N-request segment).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    segment: u64,
    /// Sample the resident memory (VmRSS) of process PID, reported as NAME, over the
    /// measured run (repeatable).
    #[arg(long, value_name = "NAME=PID")]
    watch: Vec<Watch>,
    /// Time between memory samples (there is also one at the start and one at the end).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    sample_every: u64,
    /// After the measured run, run SECS more in an open loop at half its throughput and
    /// report that latency next to the peak's (0: no such run).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=3600)
    )]
    half_load: u64,
}

/// Benchmarks other than signing through a running server.
#[derive(Subcommand)]
enum Mode {
    /// How fast `strongroom audit verify` checks a chain of N entries (built here, with
    /// mock attestation), against single-threaded Ed25519 and SHA-256 baselines. Needs no
    /// server; times the `strongroom` program next to this one.
    AuditChain(audit_chain::AuditChainArgs),
    /// How fast a restarted enclave replays the records after its snapshot: N signing
    /// decisions made in process (enclave library, mock NSM), then a fresh enclave booted
    /// from the snapshot and those records, against a boot with none. Needs no server.
    BootReplay(boot_replay::BootReplayArgs),
    /// 2-of-3 threshold signing in process (three session engines, sealed messages
    /// relayed in memory): one-time setup, key generation, and per-signature latency and
    /// CPU for FROST and CGGMP24, next to single-key signing. Needs no server.
    Threshold(threshold::ThresholdArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match &args.mode {
        Some(Mode::AuditChain(a)) => audit_chain::run(a),
        Some(Mode::BootReplay(a)) => boot_replay::run(a),
        Some(Mode::Threshold(a)) => threshold::run(a),
        None => run(args),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The figures every load run has: successes, errors (signature mismatches included),
/// the error rate and the throughput over its window.
struct Tally {
    requests_ok: u64,
    errors: u64,
    attempted: u64,
    seconds: f64,
    throughput_rps: f64,
    signatures: load::Checked,
}

impl Tally {
    fn of(outcome: &Outcome, key: &load::Key) -> Self {
        let signatures = load::check_samples(&outcome.samples, &key.verifying_key);
        let requests_ok = outcome.latencies.len() as u64;
        let failed: u64 = outcome.errors.values().sum();
        let seconds = outcome.window.as_secs_f64();
        Self {
            requests_ok,
            errors: failed + signatures.mismatches,
            attempted: requests_ok + failed,
            seconds,
            throughput_rps: requests_ok as f64 / seconds.max(f64::EPSILON),
            signatures,
        }
    }

    fn error_rate(&self) -> f64 {
        if self.attempted == 0 {
            0.0
        } else {
            self.errors as f64 / self.attempted as f64
        }
    }
}

/// Checks --watch: names unique, processes readable now.
fn check_watch(watch: &[Watch]) -> Result<()> {
    let mut names = std::collections::BTreeSet::new();
    for w in watch {
        if !names.insert(w.name.as_str()) {
            anyhow::bail!("--watch names {:?} twice", w.name);
        }
    }
    memory::check(watch)
}

/// Runs the benchmark; Ok(false) when it ran but saw errors.
fn run(args: Args) -> Result<bool> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let clients = usize::from(args.clients);
    check_watch(&args.watch)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let principal_path = args
        .principal_key
        .as_ref()
        .context("--principal-key is required")?;
    let principal_text = std::fs::read_to_string(principal_path)
        .with_context(|| format!("reading the principal key {}", principal_path.display()))?;
    let principal = strongroom_auth::SigningKey::from_text(&principal_text)
        .with_context(|| format!("the principal key {}", principal_path.display()))?;
    drop(principal_text);
    let principal_id = principal.public().id().to_string();
    let algorithm = principal.algorithm();
    let max_requests = args.max_requests;
    let target = Arc::new(Target::new(&args.url, clients, principal)?);

    // Fail fast, before the baselines, if there is nothing to benchmark.
    runtime.block_on(target.check_health())?;

    eprintln!(
        "measuring the baselines ({} s each) on {cores} cores...",
        args.baseline
    );
    let duration = Duration::from_secs(args.baseline);
    let baseline = Baseline {
        raw_sign: baseline::raw_sign(BASELINE_WARMUP, duration)?,
        stamp_sign: baseline::stamp_sign(BASELINE_WARMUP, duration, algorithm)?,
        stamp_verify: baseline::stamp_verify(BASELINE_WARMUP, duration, algorithm)?,
        crypto_floor: baseline::sealed_sign(BASELINE_WARMUP, duration, false, algorithm)?,
        enclave_path: baseline::sealed_sign(BASELINE_WARMUP, duration, true, algorithm)?,
    };

    let key = runtime.block_on(target.create_key())?;
    eprintln!(
        "full stack: {clients} clients, {} s warm-up, {} s measured, {} payload, key {}...",
        args.warmup,
        args.duration,
        args.payload.segment(),
        key.id
    );
    let plan = Plan {
        clients,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        verify_every: args.verify_every,
        payload: args.payload,
        max_requests,
        segment: args.segment,
        watch: args.watch.clone(),
        sample_every: Duration::from_secs(args.sample_every),
    };
    // The key stays: destroying one takes an admin quorum, which a principal does not
    // have. Benchmark on a scratch data directory (scripts/bench.sh deletes its own).
    let mut outcome = runtime.block_on(load::run(target.clone(), &key, &plan))?;
    let tally = Tally::of(&outcome, &key);
    let cpu_per_request = outcome
        .cpu
        .as_ref()
        .filter(|_| tally.attempted > 0)
        .map(|u| {
            let per = |cpu_seconds: f64| cpu_seconds * 1e6 / tally.attempted as f64;
            CpuPerRequest {
                machine_us: per(u.machine_cpu_seconds),
                bench_clients_us: per(u.bench_cpu_seconds),
                server_us: per(u.rest_cpu_seconds),
            }
        });
    let warmup_errors = outcome.warmup_errors.values().sum();
    let full_stack = FullStack {
        key_id: key.id.clone(),
        requests_ok: tally.requests_ok,
        errors: tally.errors,
        error_rate: tally.error_rate(),
        errors_by_kind: outcome.errors.clone(),
        warmup_errors,
        budget_exhausted: outcome.budget_exhausted,
        error_examples: outcome.examples.clone(),
        seconds: tally.seconds,
        throughput_rps: tally.throughput_rps,
        latency: Latency::of(&mut outcome.latencies),
        signatures: tally.signatures,
        cpu: outcome.cpu.clone(),
        cpu_per_request,
    };

    let half_load = if args.half_load == 0 {
        None
    } else if full_stack.throughput_rps > 0.0 {
        let target_rps = full_stack.throughput_rps / 2.0;
        eprintln!(
            "half load: {} s at {target_rps:.1} req/s (open loop)...",
            args.half_load
        );
        let paced = PacedPlan {
            clients,
            rate: target_rps,
            duration: Duration::from_secs(args.half_load),
            verify_every: args.verify_every,
            payload: args.payload,
            first_nonce: outcome.next_nonce,
        };
        let mut half = runtime.block_on(load::run_paced(target.clone(), &key, &paced))?;
        let tally = Tally::of(&half, &key);
        Some(HalfLoad {
            target_rps,
            peak_rps: full_stack.throughput_rps,
            requests_ok: tally.requests_ok,
            errors: tally.errors,
            errors_by_kind: half.errors.clone(),
            error_examples: half.examples.clone(),
            seconds: tally.seconds,
            throughput_rps: tally.throughput_rps,
            latency: Latency::of(&mut half.latencies),
            signatures: tally.signatures,
            server_cpu_us_per_request: half
                .cpu
                .as_ref()
                .filter(|_| tally.attempted > 0)
                .map(|u| u.rest_cpu_seconds * 1e6 / tally.attempted as f64),
        })
    } else {
        // Half of nothing: the failed peak is the report's news.
        eprintln!("half load skipped: the measured run had no successful request");
        None
    };

    let ratios = Ratios::of(&baseline, &full_stack);
    let passed = full_stack.errors == 0
        && warmup_errors == 0
        && full_stack.requests_ok > 0
        && half_load
            .as_ref()
            .is_none_or(|h| h.errors == 0 && h.requests_ok > 0);
    let report = Report {
        setup: Setup {
            cores,
            url: args.url.join(","),
            clients,
            warmup_seconds: args.warmup,
            duration_seconds: args.duration,
            baseline_seconds: args.baseline,
            verify_every: args.verify_every,
            payload: args.payload,
            max_requests,
            segment: args.segment,
            watch: args.watch.clone(),
            sample_every_seconds: args.sample_every,
            half_load_seconds: args.half_load,
            principal_key_id: principal_id,
            principal_key_algorithm: algorithm.name().to_string(),
        },
        baseline,
        full_stack,
        ratios,
        segments: outcome.segments,
        memory: outcome.memory,
        half_load,
        passed,
    };
    print!("{report}");
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(passed)
}
