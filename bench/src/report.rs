//! The benchmark's figures, the ratios between them, and their two forms: a table for a
//! person and JSON for a file.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::baseline::Rate;
use crate::cpu::Usage;
use crate::load::{Checked, Payload};
use crate::memory::{Memory, Watch};
use crate::segments::{GOAL_RATIO, LastBasis, Segments};
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
    /// Server CPU per request in the first and last segments of the measured run.
    pub segments: Segments,
    /// Resident memory of the watched processes over the measured run; None when none
    /// were watched.
    pub memory: Option<Memory>,
    /// The open-loop run at half the peak's throughput; None when not asked for.
    pub half_load: Option<HalfLoad>,
    /// True when no request failed and every checked signature was right, at peak and at
    /// half load.
    pub passed: bool,
}

/// The machine and the settings.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Cores available to this process.
    pub cores: usize,
    /// The server (replicas: their URLs, comma-separated).
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
    /// Requests per CPU segment.
    pub segment: u64,
    /// Processes whose memory was sampled.
    pub watch: Vec<Watch>,
    /// Time between memory samples, in seconds.
    pub sample_every_seconds: u64,
    /// Length of the half-load run, in seconds (0: none).
    pub half_load_seconds: u64,
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

/// The open-loop run at half the peak's throughput.
#[derive(Debug, Clone, Serialize)]
pub struct HalfLoad {
    /// The rate asked for: half the peak's throughput, in requests per second.
    pub target_rps: f64,
    /// The peak's throughput it is half of.
    pub peak_rps: f64,
    /// Requests answered 200.
    pub requests_ok: u64,
    /// Requests that failed, plus signature mismatches.
    pub errors: u64,
    /// Failed requests by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// The first failure of each kind, described.
    pub error_examples: BTreeMap<String, String>,
    /// Length of the run, in seconds.
    pub seconds: f64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// Latency from each request's scheduled start (so a client that fell behind counts
    /// its wait); None when no request succeeded.
    pub latency: Option<Latency>,
    /// The signature check.
    pub signatures: Checked,
    /// Server CPU per request (everything but the benchmark), in microseconds.
    pub server_cpu_us_per_request: Option<f64>,
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
        write_segments(out, &self.segments)?;
        if let Some(m) = &self.memory {
            write_memory(out, m)?;
        }
        if let Some(h) = &self.half_load {
            write_half_load(out, f, h)?;
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
                "PASS: no errors, every checked signature recovers to the key (the CPU and \
                 memory figures above are reported, not judged)"
            } else {
                "FAIL: see errors above"
            }
        )
    }
}

fn write_segments(out: &mut fmt::Formatter<'_>, s: &Segments) -> fmt::Result {
    writeln!(
        out,
        "\nServer CPU per request, first and last {} requests (goal: the last within {:.0}% of the first)",
        s.segment,
        (GOAL_RATIO - 1.0) * 100.0
    )?;
    let Some(c) = &s.compared else {
        return writeln!(out, "  n/a: {}", s.note);
    };
    writeln!(out, "  {}", s.note)?;
    for (name, w) in [("first", &c.first), ("last", &c.last)] {
        writeln!(
            out,
            "  {name:<6} requests {:>9}–{:<9} {:>9.1} µs  ({:.1} s, {:.1} req/s)",
            w.from_request,
            w.to_request,
            w.server_us_per_request,
            w.seconds,
            (w.to_request + 1 - w.from_request) as f64 / w.seconds.max(f64::EPSILON)
        )?;
    }
    let verdict = match c.within_goal {
        Some(true) => "within the goal",
        Some(false) => "NOT within the goal",
        None => "n/a: the first segment measured no server CPU",
    };
    writeln!(
        out,
        "  last / first  {}  ({verdict}{})",
        ratio(c.last_over_first),
        if c.last_basis == LastBasis::LastBoundary {
            "; the clock ended the run, so the last segment is the last complete one"
        } else {
            ""
        }
    )
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"))
}

fn write_memory(out: &mut fmt::Formatter<'_>, m: &Memory) -> fmt::Result {
    writeln!(
        out,
        "\nResident memory (MiB, VmRSS), every {:.0} s and at the start and end of the measured run",
        m.sample_every_seconds
    )?;
    // A column as wide as its heading ("enclave (1234)"), at least 10.
    let headings: Vec<String> = m
        .processes
        .iter()
        .map(|w| format!("{} ({})", w.name, w.pid))
        .collect();
    let widths: Vec<usize> = headings.iter().map(|h| h.chars().count().max(10)).collect();
    write!(out, "  {:>9}", "time (s)")?;
    for (heading, width) in headings.iter().zip(&widths) {
        write!(out, "  {heading:>width$}")?;
    }
    writeln!(out)?;
    for sample in &m.samples {
        write!(out, "  {:>9.1}", sample.seconds)?;
        for (w, width) in m.processes.iter().zip(&widths) {
            let value = mib(sample.rss_mib.get(&w.name).copied().flatten());
            write!(out, "  {value:>width$}")?;
        }
        writeln!(out)?;
    }
    write!(out, "  {:>9}", "growth")?;
    for (g, width) in m.growth.iter().zip(&widths) {
        let text = g
            .growth_mib
            .map_or_else(|| "-".to_string(), |v| format!("{v:+.1}"));
        write!(out, "  {text:>width$}")?;
    }
    writeln!(out)
}

fn write_half_load(out: &mut fmt::Formatter<'_>, peak: &FullStack, h: &HalfLoad) -> fmt::Result {
    writeln!(
        out,
        "\nHalf load: open loop at {:.1} req/s (half the peak's {:.1}) for {:.1} s; latency from each request's scheduled start",
        h.target_rps, h.peak_rps, h.seconds
    )?;
    writeln!(
        out,
        "  {:<10} {:>12} {:>10} {:>10} {:>10} {:>8}",
        "", "req/s", "p50", "p99", "server CPU", "errors"
    )?;
    let server_us = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0} µs"));
    let p = |l: &Option<Latency>, f: fn(&Latency) -> f64| {
        l.as_ref().map_or_else(|| "n/a".to_string(), |l| ms(f(l)))
    };
    writeln!(
        out,
        "  {:<10} {:>12.1} {:>10} {:>10} {:>10} {:>8}",
        "peak",
        peak.throughput_rps,
        p(&peak.latency, |l| l.p50_us),
        p(&peak.latency, |l| l.p99_us),
        server_us(peak.cpu_per_request.as_ref().map(|c| c.server_us)),
        peak.errors
    )?;
    writeln!(
        out,
        "  {:<10} {:>12.1} {:>10} {:>10} {:>10} {:>8}",
        "half load",
        h.throughput_rps,
        p(&h.latency, |l| l.p50_us),
        p(&h.latency, |l| l.p99_us),
        server_us(h.server_cpu_us_per_request),
        h.errors
    )?;
    for (kind, n) in &h.errors_by_kind {
        let example = h.error_examples.get(kind).map_or("", String::as_str);
        writeln!(out, "    {kind}: {n}  {example}")?;
    }
    if let Some(why) = &h.signatures.first_mismatch {
        writeln!(out, "    first wrong signature: {why}")?;
    }
    Ok(())
}
