//! The full stack under load: concurrent keep-alive clients, each sending stamped signing
//! requests (random digests, or 1-wei transfers) through the HTTP API, every request timed.
//! Stamping runs here, in the clients, on the same cores as the server.
//!
//! Two ways to send: closed loop (each client sends its next request as soon as the last
//! is answered: the peak), and open loop at a fixed rate (each client sends on a schedule
//! of absolute deadlines, whatever the answers' timing: a load below the peak).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Method, StatusCode, Url};
use serde::Serialize;
use serde_json::{Value, json};
use strongroom_api::{ApiErrorCode, Id, ProxyRoute, Route, STAMP_HEADER, SignKind};
use strongroom_auth::{MAX_VALIDITY_SECS, SigningKey, Stamp, wire_path};

use crate::memory::{self, Watch};
use crate::segments::Marks;
use crate::{cpu, tx};

/// Per-request timeout: long enough that only a stuck server trips it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a transport failure, so a dead server does not turn the loop into a spin.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Longest stretch of an error body kept.
const MAX_QUOTED_BODY: usize = 200;
/// Share of a request budget the warm-up may use: one in this many.
const WARMUP_SHARE: u64 = 8;

/// What each request asks to sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Payload {
    /// A random 32-byte digest (`/sign/digest`).
    Digest,
    /// An EIP-1559 transfer of 1 wei on Sepolia, one nonce per request
    /// (`/sign/transaction`); each is counted in the enclave's velocity counters.
    Transaction,
}

impl Payload {
    /// What the signing route signs.
    pub fn kind(self) -> SignKind {
        match self {
            Self::Digest => SignKind::Digest,
            Self::Transaction => SignKind::Transaction,
        }
    }

    /// The last segment of the signing path, which is also the payload's name.
    pub fn segment(self) -> &'static str {
        self.kind().segment()
    }
}

/// The server under test (one, or a deployment's replicas, client `i` using replica
/// `i mod n`), and the principal key that stamps every request to it.
pub struct Target {
    bases: Vec<Url>,
    http: Client,
    principal: SigningKey,
}

/// The key the benchmark signs with.
pub struct Key {
    /// The server's key id.
    pub id: String,
    /// Its public key, to check signatures against.
    pub verifying_key: VerifyingKey,
}

/// What the load run is asked to do.
pub struct Plan {
    /// Concurrent clients.
    pub clients: usize,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
    /// Keep one successful response in this many for the signature check.
    pub verify_every: u64,
    /// What to sign.
    pub payload: Payload,
    /// Most requests sent in all, warm-up included (which may use one in
    /// [`WARMUP_SHARE`] of them); None for no limit.
    pub max_requests: Option<u64>,
    /// Measured requests per CPU segment (see [`crate::segments`]).
    pub segment: u64,
    /// Processes whose resident memory is sampled over the measured window.
    pub watch: Vec<Watch>,
    /// Time between memory samples.
    pub sample_every: Duration,
}

/// An open-loop run: `rate` requests per second in all for `duration`, no warm-up, no
/// request budget.
pub struct PacedPlan {
    /// Concurrent clients; each sends `rate / clients` requests per second.
    pub clients: usize,
    /// Requests per second, all clients together.
    pub rate: f64,
    /// How long to send for.
    pub duration: Duration,
    /// Keep one successful response in this many for the signature check.
    pub verify_every: u64,
    /// What to sign.
    pub payload: Payload,
    /// The first transaction nonce (after the main run's).
    pub first_nonce: u64,
}

/// What a kept response was an answer to.
#[derive(Clone, Copy)]
enum Sent {
    Digest([u8; 32]),
    Transaction { nonce: u64 },
}

/// A response kept for the signature check.
pub struct Sample {
    sent: Sent,
    body: Vec<u8>,
}

/// What the load run measured.
pub struct Outcome {
    /// Latency of each successful request started in the measured window.
    pub latencies: Vec<Duration>,
    /// Failed requests started in the measured window, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Failed requests during the warm-up, by kind.
    pub warmup_errors: BTreeMap<String, u64>,
    /// A description of the first failure of each kind.
    pub examples: BTreeMap<String, String>,
    /// Responses kept for the signature check.
    pub samples: Vec<Sample>,
    /// From the end of the warm-up to the last measured request's completion.
    pub window: Duration,
    /// True when the request budget ran out before the measured time did.
    pub budget_exhausted: bool,
    /// CPU used over the window, where measurable.
    pub cpu: Option<cpu::Usage>,
    /// Server CPU of the first and last segments of the window.
    pub segments: crate::segments::Segments,
    /// Resident memory of the watched processes over the window; None when none watched.
    pub memory: Option<memory::Memory>,
    /// The next transaction nonce: where a later run goes on from.
    pub next_nonce: u64,
}

/// The signature check's tally.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    /// Responses checked.
    pub checked: u64,
    /// Responses whose signature is malformed or does not recover to the key.
    pub mismatches: u64,
    /// The first mismatch, described.
    pub first_mismatch: Option<String>,
}

#[derive(Default)]
struct ClientTally {
    latencies: Vec<Duration>,
    errors: BTreeMap<String, u64>,
    warmup_errors: BTreeMap<String, u64>,
    examples: BTreeMap<String, String>,
    samples: Vec<Sample>,
    last_done: Option<Instant>,
    budget_exhausted: bool,
}

#[derive(Serialize)]
struct SignBody<'a> {
    digest: &'a str,
}

/// A failed request: a kind to count under and a description. Every refusal is a
/// failure: the enclave no longer has a capacity limit that a long run is expected to hit.
struct Failure {
    kind: String,
    detail: String,
}

impl Failure {
    fn new(kind: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            detail: detail.into(),
        }
    }
}

fn unix_now() -> Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}

impl Target {
    /// A client for the server at `base`, with a keep-alive connection per client, stamping
    /// with `principal`.
    pub fn new(bases: &[String], clients: usize, principal: SigningKey) -> Result<Self> {
        let mut urls = Vec::with_capacity(bases.len());
        for base in bases {
            let url = Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
            if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
                bail!("--url {base:?}: expected an http:// or https:// URL");
            }
            urls.push(url);
        }
        if urls.is_empty() {
            bail!("no --url");
        }
        let http = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(clients)
            .tcp_nodelay(true)
            .build()
            .context("starting the HTTP client")?;
        Ok(Self {
            bases: urls,
            http,
            principal,
        })
    }

    /// The URL of an API path ([`Route::path`], [`ProxyRoute::path`]); the base's own
    /// path (a proxy mount point) stays in front.
    fn url(&self, path: &str) -> Url {
        self.url_at(0, path)
    }

    /// [`Target::url`] at replica `i` (mod their number).
    fn url_at(&self, i: usize, path: &str) -> Url {
        let base = &self.bases[i % self.bases.len()];
        let mut url = base.clone();
        let prefix = base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    /// The URL at which client `i` signs `payload` with `key`.
    fn sign_url(&self, i: usize, key: &Key, payload: Payload) -> Result<Url> {
        let route = Route::Sign(Id::new(key.id.as_str())?, payload.kind());
        Ok(self.url_at(i, &route.path()))
    }

    /// A stamp for `method url` with exactly `body` ([`Stamp::make`], as every client
    /// makes them), expiring `MAX_VALIDITY_SECS` from now — the longest the enclave
    /// accepts, so a stamp made just after an enclave boot is still past its boot horizon
    /// (the enclave runs on this machine's clock in mock mode).
    fn stamp(&self, method: &Method, url: &Url, body: &[u8]) -> Result<String> {
        let path = wire_path(url.path(), url.query());
        let request = strongroom_auth::Request {
            method: method.as_str(),
            path: &path,
            body,
        };
        Stamp::make(
            &self.principal,
            request,
            unix_now()?,
            MAX_VALIDITY_SECS,
            None,
        )
        .map_err(|e| anyhow!("stamping: {e}"))
    }

    /// Sends `body` (exact JSON bytes) to `url`, stamped; the status and the answer.
    async fn send_stamped(
        &self,
        method: Method,
        url: &Url,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        let stamp = self
            .stamp(&method, url, &body)
            .map_err(|e| Failure::new("stamping", format!("{e:#}")))?;
        let sent = self
            .http
            .request(method, url.clone())
            .header(STAMP_HEADER, stamp)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = sent.map_err(|e| transport_failure(&e))?;
        let status = response.status();
        let answer = response.bytes().await.map_err(|e| transport_failure(&e))?;
        Ok((status, answer.to_vec()))
    }

    /// Fails unless the server says it is ready.
    pub async fn check_health(&self) -> Result<()> {
        let url = self.url(ProxyRoute::Health.path());
        let answer = async {
            let response = self.http.get(url.clone()).send().await?;
            let status = response.status();
            Ok::<_, reqwest::Error>((status, response.bytes().await?))
        }
        .await
        .map_err(|e| anyhow!("{url}: {}", root_cause(&e)))
        .context("the server is not ready")?;
        if answer.0 != StatusCode::OK {
            return Err(anyhow!("{url}: {}: {}", answer.0, quote(&answer.1)))
                .context("the server is not ready");
        }
        Ok(())
    }

    /// Creates the benchmark's key (label `bench`). Right after an enclave boot, stamps
    /// expiring less than `MAX_VALIDITY_SECS` after the boot are refused with
    /// `stamp_before_boot` and a `retry_after`; that is waited out once.
    pub async fn create_key(&self) -> Result<Key> {
        let url = self.url(&Route::CreateKey.path());
        let body = serde_json::to_vec(&json!({ "label": "bench" }))?;
        let mut retried = false;
        let answer = loop {
            let (status, answer) = self
                .send_stamped(Method::POST, &url, body.clone())
                .await
                .map_err(|f| anyhow!("{url}: {}", f.detail))
                .context("creating the benchmark key")?;
            if status == StatusCode::CREATED {
                break answer;
            }
            let error: Value = serde_json::from_slice(&answer).unwrap_or_default();
            let error = &error["error"];
            let code = error["code"].as_str().and_then(ApiErrorCode::parse);
            if let (
                false,
                StatusCode::UNAUTHORIZED,
                Some(ApiErrorCode::StampBeforeBoot),
                Some(wait),
            ) = (retried, status, code, error["retry_after"].as_u64())
                && wait <= MAX_VALIDITY_SECS
            {
                eprintln!(
                    "the enclave booted moments ago; stamping again in {} s",
                    wait + 1
                );
                tokio::time::sleep(Duration::from_secs(wait + 1)).await;
                retried = true;
                continue;
            }
            return Err(anyhow!("{url}: {status}: {}", quote(&answer))).with_context(|| {
                format!(
                    "creating the benchmark key (stamped with principal key {})",
                    self.principal.public().id()
                )
            });
        };
        let key: Value = serde_json::from_slice(&answer)
            .with_context(|| format!("{url}: the answer is not JSON"))?;
        let id = key["id"]
            .as_str()
            .context("the new key has no id")?
            .to_string();
        let public_key = key["public_key"]
            .as_str()
            .context("the new key has no public_key")?;
        let sec1 = hex_field(public_key).context("the new key's public_key")?;
        if sec1.len() != 65 || sec1[0] != 0x04 {
            bail!("the new key's public_key is not SEC1 uncompressed (65 bytes, 0x04…)");
        }
        let verifying_key =
            VerifyingKey::from_sec1_bytes(&sec1).context("the new key's public_key")?;
        Ok(Key { id, verifying_key })
    }

    /// One stamped signing request with `body`; the answer on 200.
    async fn sign(&self, url: &Url, body: Vec<u8>) -> Result<Vec<u8>, Failure> {
        let (status, answer) = self.send_stamped(Method::POST, url, body).await?;
        if status != StatusCode::OK {
            return Err(Failure::new(
                format!("HTTP {}", status.as_u16()),
                quote(&answer),
            ));
        }
        Ok(answer)
    }
}

fn transport_failure(e: &reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    };
    Failure::new(kind, root_cause(e))
}

/// The innermost error: reqwest's own message only says "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// The start of a body, on one line.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(MAX_QUOTED_BODY).collect()
}

/// Decodes `0x`-prefixed (or bare) hex.
pub fn hex_field(s: &str) -> Result<Vec<u8>> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).with_context(|| format!("{s:?} is not hex"))
}

fn random_digest() -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    aws_lc_rs::rand::fill(&mut digest).ok()?;
    Some(digest)
}

/// Takes one from `left` unless it is zero.
fn take(left: &AtomicU64) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// What the clients share: the request budget and the next transaction nonce.
struct Shared {
    /// Requests left in all; None for no limit.
    left: Option<AtomicU64>,
    /// Requests the warm-up may still use (counted in `left` too).
    warmup_left: AtomicU64,
    /// Requests the warm-up has used: what the budget leaves for the measured window is
    /// the budget less these.
    warmup_used: AtomicU64,
    next_nonce: AtomicU64,
}

/// An open-loop schedule: a client's n-th request is due at `first + n · interval`.
#[derive(Clone, Copy)]
struct Pace {
    first: Instant,
    interval: Duration,
}

/// What one client needs to know.
struct Job {
    target: Arc<Target>,
    shared: Arc<Shared>,
    url: Url,
    payload: Payload,
    warmup_end: Instant,
    end: Instant,
    verify_every: u64,
    /// None: closed loop, the next request as soon as the last is answered.
    pace: Option<Pace>,
    /// Counts measured requests for the CPU segments; None when not measuring them.
    marks: Option<Arc<Marks>>,
}

/// The next request: what is sent, and its body serialized once (stamped and sent as is).
fn next_request(job: &Job) -> Option<(Sent, Vec<u8>)> {
    match job.payload {
        Payload::Digest => {
            let digest = random_digest()?;
            let hex_digest = format!("0x{}", hex::encode(digest));
            let body = serde_json::to_vec(&SignBody {
                digest: &hex_digest,
            })
            .ok()?;
            Some((Sent::Digest(digest), body))
        }
        Payload::Transaction => {
            let nonce = job.shared.next_nonce.fetch_add(1, Ordering::Relaxed);
            Some((Sent::Transaction { nonce }, tx::body(nonce)))
        }
    }
}

/// When the next request starts: now (closed loop), or at its deadline (open loop, after
/// waiting for it; at once when the client is behind). None once the run is over.
async fn next_start(job: &Job, scheduled: &mut u32) -> Option<Instant> {
    let Some(pace) = job.pace else {
        let now = Instant::now();
        return (now < job.end).then_some(now);
    };
    let due = pace.first + pace.interval.checked_mul(*scheduled)?;
    if due >= job.end {
        return None;
    }
    *scheduled = scheduled.checked_add(1)?;
    tokio::time::sleep_until(due.into()).await;
    Some(due)
}

async fn client(job: Job) -> ClientTally {
    let mut tally = ClientTally::default();
    let mut measured_ok = 0u64;
    let mut scheduled = 0u32;
    // Open loop: latency runs from the deadline, not from when the request went out, so a
    // client that fell behind counts its wait (no coordinated omission).
    while let Some(started) = next_start(&job, &mut scheduled).await {
        let measured = started >= job.warmup_end;
        if let Some(left) = &job.shared.left {
            if !measured {
                if !take(&job.shared.warmup_left) {
                    // The warm-up's share is spent; the rest is for the measured window.
                    tokio::time::sleep_until(job.warmup_end.into()).await;
                    continue;
                }
                take(left);
                job.shared.warmup_used.fetch_add(1, Ordering::Relaxed);
            } else if !take(left) {
                tally.budget_exhausted = true;
                break;
            }
        }
        let Some((sent, body)) = next_request(&job) else {
            *tally.errors.entry("random source".into()).or_default() += 1;
            break;
        };
        let result = job.target.sign(&job.url, body).await;
        let done = Instant::now();
        match result {
            Ok(body) if measured => {
                tally.latencies.push(done - started);
                // The first of each client's and then one in `verify_every`.
                if measured_ok.is_multiple_of(job.verify_every) {
                    tally.samples.push(Sample { sent, body });
                }
                measured_ok += 1;
            }
            Ok(_) => {}
            Err(failure) => {
                let counts = if measured {
                    &mut tally.errors
                } else {
                    &mut tally.warmup_errors
                };
                *counts.entry(failure.kind.clone()).or_default() += 1;
                let transport = !failure.kind.starts_with("HTTP");
                tally.examples.entry(failure.kind).or_insert(failure.detail);
                if transport {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
        if measured {
            tally.last_done = Some(done);
            if let Some(marks) = &job.marks {
                marks.completed();
            }
        }
    }
    tally
}

/// The clients' tallies, merged.
struct Merged {
    outcome: Outcome,
    last_done: Option<Instant>,
}

/// Waits for every client and merges their tallies into an outcome over `duration`.
async fn merge(
    tasks: Vec<tokio::task::JoinHandle<ClientTally>>,
    duration: Duration,
    segment: u64,
) -> Result<Merged> {
    let mut outcome = Outcome {
        latencies: Vec::new(),
        errors: BTreeMap::new(),
        warmup_errors: BTreeMap::new(),
        examples: BTreeMap::new(),
        samples: Vec::new(),
        window: duration,
        budget_exhausted: false,
        cpu: None,
        segments: crate::segments::Segments::none(segment, 0),
        memory: None,
        next_nonce: 0,
    };
    let mut last_done = None;
    for task in tasks {
        let tally = task.await.context("a client task failed")?;
        outcome.latencies.extend(tally.latencies);
        for (kind, n) in tally.errors {
            *outcome.errors.entry(kind).or_default() += n;
        }
        for (kind, n) in tally.warmup_errors {
            *outcome.warmup_errors.entry(kind).or_default() += n;
        }
        for (kind, detail) in tally.examples {
            outcome.examples.entry(kind).or_insert(detail);
        }
        outcome.samples.extend(tally.samples);
        outcome.budget_exhausted |= tally.budget_exhausted;
        last_done = last_done.max(tally.last_done);
    }
    Ok(Merged { outcome, last_done })
}

/// Runs the plan against `key`: warm-up, then the measured window, all clients at once,
/// each in a closed loop.
pub async fn run(target: Arc<Target>, key: &Key, plan: &Plan) -> Result<Outcome> {
    let warmup_end = Instant::now() + plan.warmup;
    let end = warmup_end + plan.duration;
    let shared = Arc::new(Shared {
        left: plan.max_requests.map(AtomicU64::new),
        warmup_left: AtomicU64::new(plan.max_requests.unwrap_or(0) / WARMUP_SHARE),
        warmup_used: AtomicU64::new(0),
        next_nonce: AtomicU64::new(0),
    });
    let marks = Arc::new(Marks::new(plan.segment));
    let tasks: Vec<_> = (0..plan.clients)
        .map(|i| {
            Ok(tokio::spawn(client(Job {
                target: target.clone(),
                shared: shared.clone(),
                url: target.sign_url(i, key, plan.payload)?,
                payload: plan.payload,
                warmup_end,
                end,
                verify_every: plan.verify_every.max(1),
                pace: None,
                marks: Some(marks.clone()),
            })))
        })
        .collect::<Result<_>>()?;

    tokio::time::sleep_until(warmup_end.into()).await;
    let cpu_start = cpu::snapshot();
    if let Some(budget) = plan.max_requests {
        // What the warm-up left of the budget is the measured window's request count when
        // the budget, not the clock, ends the run: the last segment's start is known.
        marks.expect_total(budget.saturating_sub(shared.warmup_used.load(Ordering::Relaxed)));
    }
    let sampler = (!plan.watch.is_empty())
        .then(|| memory::Sampler::start(plan.watch.clone(), plan.sample_every));
    let Merged {
        mut outcome,
        last_done,
    } = merge(tasks, plan.duration, plan.segment).await?;
    let cpu_end = cpu::snapshot();
    if let Some(sampler) = sampler {
        outcome.memory = Some(sampler.stop().await?);
    }
    if let Some(last) = last_done {
        outcome.window = last.saturating_duration_since(warmup_end);
    }
    if let (Some(start), Some(end)) = (cpu_start, cpu_end) {
        outcome.cpu = cpu::usage(&start, &end);
    }
    outcome.segments = marks.summarise(cpu_start.as_ref());
    outcome.next_nonce = shared.next_nonce.load(Ordering::Relaxed);
    Ok(outcome)
}

/// Runs `plan` against `key` in an open loop: client `i` of `c` sends its requests at
/// `start + (i/c + n) · c/rate`, so the clients together send `rate` a second, evenly
/// spread, whatever the answers' timing.
pub async fn run_paced(target: Arc<Target>, key: &Key, plan: &PacedPlan) -> Result<Outcome> {
    if !(plan.rate.is_finite() && plan.rate > 0.0) {
        bail!("an open-loop rate must be positive, not {}", plan.rate);
    }
    let clients = plan.clients.max(1);
    let interval = Duration::try_from_secs_f64(clients as f64 / plan.rate)
        .context("the open-loop rate is too low")?;
    let start = Instant::now();
    let end = start + plan.duration;
    let shared = Arc::new(Shared {
        left: None,
        warmup_left: AtomicU64::new(0),
        warmup_used: AtomicU64::new(0),
        next_nonce: AtomicU64::new(plan.first_nonce),
    });
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let offset = interval.mul_f64(i as f64 / clients as f64);
            Ok(tokio::spawn(client(Job {
                target: target.clone(),
                shared: shared.clone(),
                url: target.sign_url(i, key, plan.payload)?,
                payload: plan.payload,
                warmup_end: start,
                end,
                verify_every: plan.verify_every.max(1),
                pace: Some(Pace {
                    first: start + offset,
                    interval,
                }),
                marks: None,
            })))
        })
        .collect::<Result<_>>()?;
    let cpu_start = cpu::snapshot();
    let Merged {
        mut outcome,
        last_done,
    } = merge(tasks, plan.duration, 0).await?;
    let cpu_end = cpu::snapshot();
    // The schedule fills the whole duration; an answer after its end lengthens the window.
    outcome.window = last_done.map_or(plan.duration, |last| {
        last.saturating_duration_since(start).max(plan.duration)
    });
    if let (Some(a), Some(b)) = (cpu_start, cpu_end) {
        outcome.cpu = cpu::usage(&a, &b);
    }
    outcome.next_nonce = shared.next_nonce.load(Ordering::Relaxed);
    Ok(outcome)
}

/// Checks every kept response. Digests: well formed, r‖s‖v consistent, low s, and
/// recovering to the key's public key. Transactions: see [`tx::check`].
pub fn check_samples(samples: &[Sample], key: &VerifyingKey) -> Checked {
    let mut tally = Checked::default();
    for sample in samples {
        tally.checked += 1;
        let checked = match sample.sent {
            Sent::Digest(digest) => check_digest(&digest, &sample.body, key),
            Sent::Transaction { nonce } => serde_json::from_slice(&sample.body)
                .context("the answer is not JSON")
                .and_then(|answer| tx::check(&answer, nonce, key)),
        };
        if let Err(why) = checked {
            tally.mismatches += 1;
            tally.first_mismatch.get_or_insert(match sample.sent {
                Sent::Digest(digest) => format!("digest 0x{}: {why:#}", hex::encode(digest)),
                Sent::Transaction { nonce } => format!("transaction nonce {nonce}: {why:#}"),
            });
        }
    }
    tally
}

fn check_digest(digest: &[u8; 32], body: &[u8], key: &VerifyingKey) -> Result<()> {
    let answer: Value = serde_json::from_slice(body).context("the answer is not JSON")?;
    let field = |name: &str| -> Result<Vec<u8>> {
        let text = answer[name]
            .as_str()
            .with_context(|| format!("no {name}"))?;
        hex_field(text)
    };
    let signature = field("signature")?;
    let (r, s) = (field("r")?, field("s")?);
    let v = answer["v"].as_u64().context("no v")?;
    if signature.len() != 65 {
        bail!("signature is {} bytes, not 65", signature.len());
    }
    if r != signature[..32] || s != signature[32..64] || u64::from(signature[64]) != v {
        bail!("r, s, v do not match the signature");
    }
    let recovery_id = u8::try_from(v)
        .ok()
        .filter(|v| *v <= 1)
        .and_then(RecoveryId::from_byte)
        .context("v is not 0 or 1")?;
    let sig = Signature::from_slice(&signature[..64]).context("r or s out of range")?;
    if sig.normalize_s() != sig {
        bail!("s is high");
    }
    let recovered = VerifyingKey::recover_from_prehash(digest, &sig, recovery_id)
        .context("no public key recovers from the signature")?;
    if recovered != *key {
        bail!("the signature recovers to another public key");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::baseline::random_key;

    fn answer(signature: &[u8], r: &[u8], s: &[u8], v: u64) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "signature": format!("0x{}", hex::encode(signature)),
            "r": format!("0x{}", hex::encode(r)),
            "s": format!("0x{}", hex::encode(s)),
            "v": v,
        }))
        .unwrap()
    }

    #[test]
    fn signature_check_accepts_only_the_keys_signatures() {
        let key = random_key().unwrap();
        let other = random_key().unwrap();
        let digest = [0x42u8; 32];
        let (sig, recid) = key.sign_prehash_recoverable(&digest);
        let bytes = sig.to_bytes();
        let v = recid.to_byte();
        let mut full = bytes.to_vec();
        full.push(v);
        let good = Sample {
            sent: Sent::Digest(digest),
            body: answer(&full, &bytes[..32], &bytes[32..], u64::from(v)),
        };
        let wrong_v = Sample {
            sent: Sent::Digest(digest),
            body: answer(
                &[&bytes[..], &[v ^ 1]].concat(),
                &bytes[..32],
                &bytes[32..],
                u64::from(v ^ 1),
            ),
        };
        let inconsistent = Sample {
            sent: Sent::Digest(digest),
            body: answer(&full, &bytes[..32], &bytes[32..], u64::from(v ^ 1)),
        };
        let other_digest = Sample {
            sent: Sent::Digest([0x43; 32]),
            body: good.body.clone(),
        };
        let garbage = Sample {
            sent: Sent::Digest(digest),
            body: b"{\"signature\":\"0x00\"}".to_vec(),
        };
        let vk = *key.verifying_key();
        let t = check_samples(std::slice::from_ref(&good), &vk);
        assert_eq!((t.checked, t.mismatches), (1, 0));
        let t = check_samples(std::slice::from_ref(&good), other.verifying_key());
        assert_eq!(t.mismatches, 1);
        let t = check_samples(&[wrong_v, inconsistent, other_digest, garbage], &vk);
        assert_eq!((t.checked, t.mismatches), (4, 4));
        assert!(t.first_mismatch.is_some());
    }
}
