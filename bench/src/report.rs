//! The benchmark's figures, the ratios between them, and their two forms: a table for a
//! person and JSON for a file.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::baseline::Rate;
use crate::cpu::Usage;
use crate::load::{Checked, Payload};
use crate::stats::Latency;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The machine and the settings.
    pub setup: Setup,
    /// The in-process floors.
    pub baseline: Baseline,
    /// The full stack through HTTP.
    pub full_stack: FullStack,
    /// The full stack against the floors of the same run.
    pub ratios: Ratios,
    /// True when no request failed and every checked signature was right.
    pub passed: bool,
}

/// The machine and the settings.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Cores available to this process.
    pub cores: usize,
    /// The server.
    pub url: String,
    /// Concurrent clients.
    pub clients: usize,
    /// Warm-up before measuring, in seconds.
    pub warmup_seconds: u64,
    /// Measured time, in seconds.
    pub duration_seconds: u64,
    /// Measured time of each baseline, in seconds.
    pub baseline_seconds: u64,
    /// One successful response in this many has its signature checked.
    pub verify_every: u64,
    /// What each request signs.
    pub payload: Payload,
    /// Most requests sent in all (warm-up included); None for no limit.
    pub max_requests: Option<u64>,
    /// The principal key that stamps the requests.
    pub principal_key_id: String,
    /// Its algorithm (`ed25519` or `ecdsa-p256`).
    pub principal_key_algorithm: String,
}

/// The in-process floors, single thread.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// k256 `sign_prehash_recoverable` alone.
    pub raw_sign: Rate,
    /// The client's stamp per request: request digest, signature, header (run by the
    /// benchmark's clients, on the same cores as the server).
    pub stamp_sign: Rate,
    /// The enclave's stamp check alone: `PrincipalKey::verify` over a request digest.
    pub stamp_verify: Rate,
    /// The crypto floor of a request: stamp verification, AES-256-GCM open of the sealed
    /// key, the signature and the identity's signature of the answer.
    pub crypto_floor: Rate,
    /// The floor as the enclave runs it: the key taken from the plaintext per request.
    pub enclave_path: Rate,
}

/// The full stack through HTTP.
#[derive(Debug, Clone, Serialize)]
pub struct FullStack {
    /// The key created for the run.
    pub key_id: String,
    /// Measured requests answered 200.
    pub requests_ok: u64,
    /// Measured requests that failed, plus signature mismatches.
    pub errors: u64,
    /// errors / (requests_ok + failed requests).
    pub error_rate: f64,
    /// Failed requests by kind (`HTTP 503`, `timeout`, `connect`, ...) in the window.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Failed requests during the warm-up (not in the window, but still failures).
    pub warmup_errors: u64,
    /// Requests the policy refused as expected (transactions once the velocity ledger is
    /// full) in the window; neither errors nor successes.
    pub refused: u64,
    /// Those refusals by kind.
    pub refused_by_kind: BTreeMap<String, u64>,
    /// Expected refusals during the warm-up.
    pub warmup_refused: u64,
    /// True when the request budget (--max-requests) ended the run before its duration.
    pub budget_exhausted: bool,
    /// The first failure of each kind, described.
    pub error_examples: BTreeMap<String, String>,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Latency of the successful requests; None when there were none.
    pub latency: Option<Latency>,
    /// The signature check.
    pub signatures: Checked,
    /// CPU over the window, where /proc allows.
    pub cpu: Option<Usage>,
    /// CPU per request, in microseconds, where /proc allows.
    pub cpu_per_request: Option<CpuPerRequest>,
}

/// CPU per request over the window.
#[derive(Debug, Clone, Serialize)]
pub struct CpuPerRequest {
    /// The whole machine.
    pub machine_us: f64,
    /// The benchmark's own clients.
    pub bench_clients_us: f64,
    /// Everything else: proxy, enclave, and whatever else ran.
    pub server_us: f64,
}

/// The full stack against the floors measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    /// Full-stack throughput / raw-sign throughput.
    pub throughput_vs_raw_sign: f64,
    /// Full-stack throughput / crypto-floor (stamp verify + open + sign) throughput.
    pub throughput_vs_crypto_floor: f64,
    /// Full-stack p50 latency / raw-sign mean latency.
    pub p50_latency_vs_raw_sign: Option<f64>,
    /// Server-side CPU per request / crypto-floor time per request.
    pub server_cpu_vs_crypto_floor: Option<f64>,
    /// Machine CPU per request (clients included) / crypto-floor time per request.
    pub machine_cpu_vs_crypto_floor: Option<f64>,
}

impl Ratios {
    /// The ratios of `full` to `baseline`.
    pub fn of(baseline: &Baseline, full: &FullStack) -> Self {
        let floor_us = baseline.crypto_floor.mean_us;
        Self {
            throughput_vs_raw_sign: full.throughput_rps / baseline.raw_sign.ops_per_sec,
            throughput_vs_crypto_floor: full.throughput_rps / baseline.crypto_floor.ops_per_sec,
            p50_latency_vs_raw_sign: full
                .latency
                .as_ref()
                .map(|l| l.p50_us / baseline.raw_sign.mean_us),
            server_cpu_vs_crypto_floor: full
                .cpu_per_request
                .as_ref()
                .map(|c| c.server_us / floor_us),
            machine_cpu_vs_crypto_floor: full
                .cpu_per_request
                .as_ref()
                .map(|c| c.machine_us / floor_us),
        }
    }
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |r| format!("{r:.3}"))
}

/// The report as a table for a terminal.
impl fmt::Display for Report {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.setup;
        let b = &self.baseline;
        let f = &self.full_stack;
        let r = &self.ratios;
        writeln!(out, "strongroom-bench: {} cores, server {}", s.cores, s.url)?;
        writeln!(
            out,
            "requests stamped with {} principal key {}",
            s.principal_key_algorithm, s.principal_key_id
        )?;
        writeln!(
            out,
            "\nBaseline: in process, 1 thread, {} s each after a warm-up",
            s.baseline_seconds
        )?;
        writeln!(out, "  {:<56} {:>10} {:>12}", "", "ops/s", "µs/op (mean)")?;
        let alg = &s.principal_key_algorithm;
        for (name, rate) in [
            ("raw k256 sign_prehash_recoverable".to_string(), &b.raw_sign),
            (format!("stamp sign ({alg}, client side)"), &b.stamp_sign),
            (format!("stamp verify ({alg})"), &b.stamp_verify),
            (
                "crypto floor: verify + open + sign + answer signature".to_string(),
                &b.crypto_floor,
            ),
            (
                "enclave path: floor with the key taken from the plaintext".to_string(),
                &b.enclave_path,
            ),
        ] {
            writeln!(
                out,
                "  {name:<56} {:>10.0} {:>12.1}",
                rate.ops_per_sec, rate.mean_us
            )?;
        }
        writeln!(
            out,
            "\nFull stack: {} clients over HTTP keep-alive, {} payload, {:.1} s measured after {} s warm-up, key {}",
            s.clients,
            s.payload.segment(),
            f.seconds,
            s.warmup_seconds,
            f.key_id
        )?;
        if let Some(max) = s.max_requests {
            writeln!(
                out,
                "  request budget         {max} in all{}",
                if f.budget_exhausted {
                    " (spent: the run stopped before its duration)"
                } else {
                    ""
                }
            )?;
        }
        writeln!(out, "  requests ok            {}", f.requests_ok)?;
        writeln!(
            out,
            "  errors                 {} ({:.3}%)",
            f.errors,
            f.error_rate * 100.0
        )?;
        for (kind, n) in &f.errors_by_kind {
            let example = f.error_examples.get(kind).map_or("", String::as_str);
            writeln!(out, "    {kind}: {n}  {example}")?;
        }
        if f.warmup_errors > 0 {
            writeln!(out, "  errors in warm-up      {}", f.warmup_errors)?;
        }
        if f.refused + f.warmup_refused > 0 {
            writeln!(
                out,
                "  expected refusals      {} (+{} in warm-up), not errors",
                f.refused, f.warmup_refused
            )?;
            for (kind, n) in &f.refused_by_kind {
                let example = f.error_examples.get(kind).map_or("", String::as_str);
                writeln!(out, "    {kind}: {n}  {example}")?;
            }
        }
        writeln!(
            out,
            "  throughput             {:.1} req/s",
            f.throughput_rps
        )?;
        match &f.latency {
            Some(l) => {
                writeln!(
                    out,
                    "  latency                p50 {}  p90 {}  p99 {}  max {}  (mean {})",
                    ms(l.p50_us),
                    ms(l.p90_us),
                    ms(l.p99_us),
                    ms(l.max_us),
                    ms(l.mean_us)
                )?;
            }
            None => {
                writeln!(out, "  latency                n/a (no successful request)")?;
            }
        }
        writeln!(
            out,
            "  signatures checked     {} (one in {}), {} wrong",
            f.signatures.checked, s.verify_every, f.signatures.mismatches
        )?;
        if let Some(why) = &f.signatures.first_mismatch {
            writeln!(out, "    first wrong: {why}")?;
        }
        match (&f.cpu, &f.cpu_per_request) {
            (Some(u), Some(c)) => {
                writeln!(
                    out,
                    "  CPU                    {:.0}% of {} CPUs busy; per request {:.0} µs: server {:.0} µs, bench clients {:.0} µs",
                    u.busy_fraction * 100.0,
                    u.cpus,
                    c.machine_us,
                    c.server_us,
                    c.bench_clients_us
                )?;
            }
            _ => {
                writeln!(out, "  CPU                    n/a (no /proc here)")?;
            }
        }
        writeln!(out, "\nRatios (same run)")?;
        writeln!(
            out,
            "  throughput / raw sign throughput            {:.3}",
            r.throughput_vs_raw_sign
        )?;
        writeln!(
            out,
            "  throughput / crypto floor throughput        {:.3}",
            r.throughput_vs_crypto_floor
        )?;
        writeln!(
            out,
            "  p50 latency / raw sign latency              {}",
            ratio(r.p50_latency_vs_raw_sign)
        )?;
        writeln!(
            out,
            "  server CPU per request / crypto floor       {}",
            ratio(r.server_cpu_vs_crypto_floor)
        )?;
        writeln!(
            out,
            "  machine CPU per request / crypto floor      {}",
            ratio(r.machine_cpu_vs_crypto_floor)
        )?;
        writeln!(
            out,
            "\nThe baselines use one thread; the full stack uses every core, and its clients share \
             the {} cores with the proxy and the enclave, so its throughput is bounded by both. \
             The clients stamp every request ({} signature, ~{:.0} µs, counted in \"bench \
             clients\" CPU, not in server CPU) on those same cores.",
            s.cores, s.principal_key_algorithm, b.stamp_sign.mean_us
        )?;
        writeln!(
            out,
            "{}",
            if self.passed {
                "PASS: no errors, every checked signature recovers to the key"
            } else {
                "FAIL: see errors above"
            }
        )
    }
}
