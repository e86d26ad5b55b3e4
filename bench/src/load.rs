//! The full stack under load: concurrent keep-alive clients, each signing random digests
//! in a loop through the HTTP API, every request timed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use reqwest::{Client, StatusCode, Url};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cpu;

/// Per-request timeout: long enough that only a stuck server trips it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a transport failure, so a dead server does not turn the loop into a spin.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Longest stretch of an error body kept.
const MAX_QUOTED_BODY: usize = 200;

/// The server under test.
pub struct Target {
    base: Url,
    http: Client,
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
}

/// A response kept for the signature check.
pub struct Sample {
    digest: [u8; 32],
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
    /// CPU used over the window, where measurable.
    pub cpu: Option<cpu::Usage>,
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
}

#[derive(Serialize)]
struct SignBody<'a> {
    digest: &'a str,
}

/// A failed request: a kind to count under, and a description.
struct Failure {
    kind: String,
    detail: String,
}

impl Target {
    /// A client for the server at `base`, with a keep-alive connection per client.
    pub fn new(base: &str, clients: usize) -> Result<Self> {
        let url = Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            bail!("--url {base:?}: expected an http:// or https:// URL");
        }
        let http = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(clients)
            .tcp_nodelay(true)
            .build()
            .context("starting the HTTP client")?;
        Ok(Self { base: url, http })
    }

    /// The URL of the API path made of `segments`, each percent-encoded as one segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Sends a request and returns the answer if its status is `expect`.
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
        expect: StatusCode,
    ) -> Result<Value> {
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!("{url}: {}", root_cause(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| anyhow!("{url}: {}", root_cause(&e)))?;
        if status != expect {
            bail!("{url}: {status}: {}", quote(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("{url}: the answer is not JSON"))
    }

    /// Fails unless the server says it is ready.
    pub async fn check_health(&self) -> Result<()> {
        let url = self.url(&["v1", "health"]);
        self.call(self.http.get(url.clone()), &url, StatusCode::OK)
            .await
            .context("the server is not ready")?;
        Ok(())
    }

    /// Creates the benchmark's key (label `bench`).
    pub async fn create_key(&self) -> Result<Key> {
        let url = self.url(&["v1", "keys"]);
        let request = self
            .http
            .post(url.clone())
            .json(&json!({ "label": "bench" }));
        let key = self
            .call(request, &url, StatusCode::CREATED)
            .await
            .context("creating the benchmark key")?;
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

    /// Destroys a key.
    pub async fn destroy_key(&self, id: &str) -> Result<()> {
        let url = self.url(&["v1", "keys", id]);
        self.call(self.http.delete(url.clone()), &url, StatusCode::OK)
            .await
            .with_context(|| format!("destroying key {id}"))?;
        Ok(())
    }

    /// One signing request; the body on 200.
    async fn sign(&self, url: &Url, digest: &[u8; 32]) -> Result<Vec<u8>, Failure> {
        let hex_digest = format!("0x{}", hex::encode(digest));
        let sent = self
            .http
            .post(url.clone())
            .json(&SignBody {
                digest: &hex_digest,
            })
            .send()
            .await;
        let response = sent.map_err(|e| transport_failure(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| transport_failure(&e))?;
        if status != StatusCode::OK {
            return Err(Failure {
                kind: format!("HTTP {}", status.as_u16()),
                detail: quote(&body),
            });
        }
        Ok(body.to_vec())
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
    Failure {
        kind: kind.to_string(),
        detail: root_cause(e),
    }
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
fn hex_field(s: &str) -> Result<Vec<u8>> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).with_context(|| format!("{s:?} is not hex"))
}

fn random_digest() -> Option<[u8; 32]> {
    let mut digest = [0u8; 32];
    aws_lc_rs::rand::fill(&mut digest).ok()?;
    Some(digest)
}

async fn client(
    target: Arc<Target>,
    url: Url,
    warmup_end: Instant,
    end: Instant,
    verify_every: u64,
) -> ClientTally {
    let mut tally = ClientTally::default();
    let mut measured_ok = 0u64;
    loop {
        let started = Instant::now();
        if started >= end {
            break;
        }
        let Some(digest) = random_digest() else {
            *tally.errors.entry("random source".into()).or_default() += 1;
            break;
        };
        let result = target.sign(&url, &digest).await;
        let done = Instant::now();
        let measured = started >= warmup_end;
        match result {
            Ok(body) if measured => {
                tally.latencies.push(done - started);
                // The first of each client's and then one in `verify_every`.
                if measured_ok.is_multiple_of(verify_every) {
                    tally.samples.push(Sample { digest, body });
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
        }
    }
    tally
}

/// Runs the plan against `key`: warm-up, then the measured window, all clients at once.
pub async fn run(target: Arc<Target>, key: &Key, plan: &Plan) -> Result<Outcome> {
    let url = target.url(&["v1", "keys", &key.id, "sign", "digest"]);
    let warmup_end = Instant::now() + plan.warmup;
    let end = warmup_end + plan.duration;
    let tasks: Vec<_> = (0..plan.clients)
        .map(|_| {
            tokio::spawn(client(
                target.clone(),
                url.clone(),
                warmup_end,
                end,
                plan.verify_every.max(1),
            ))
        })
        .collect();

    tokio::time::sleep_until(warmup_end.into()).await;
    let cpu_start = cpu::snapshot();
    let mut outcome = Outcome {
        latencies: Vec::new(),
        errors: BTreeMap::new(),
        warmup_errors: BTreeMap::new(),
        examples: BTreeMap::new(),
        samples: Vec::new(),
        window: plan.duration,
        cpu: None,
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
        last_done = last_done.max(tally.last_done);
    }
    let cpu_end = cpu::snapshot();
    if let Some(last) = last_done {
        outcome.window = last.saturating_duration_since(warmup_end);
    }
    if let (Some(start), Some(end)) = (cpu_start, cpu_end) {
        outcome.cpu = cpu::usage(&start, &end);
    }
    Ok(outcome)
}

/// Checks every kept response: well formed, r‖s‖v consistent, low s, and recovering to
/// the key's public key.
pub fn check_samples(samples: &[Sample], key: &VerifyingKey) -> Checked {
    let mut tally = Checked::default();
    for sample in samples {
        tally.checked += 1;
        if let Err(why) = check_one(sample, key) {
            tally.mismatches += 1;
            tally
                .first_mismatch
                .get_or_insert(format!("digest 0x{}: {why}", hex::encode(sample.digest)));
        }
    }
    tally
}

fn check_one(sample: &Sample, key: &VerifyingKey) -> Result<()> {
    let answer: Value = serde_json::from_slice(&sample.body).context("the answer is not JSON")?;
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
    let recovered = VerifyingKey::recover_from_prehash(&sample.digest, &sig, recovery_id)
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
            digest,
            body: answer(&full, &bytes[..32], &bytes[32..], u64::from(v)),
        };
        let wrong_v = Sample {
            digest,
            body: answer(
                &[&bytes[..], &[v ^ 1]].concat(),
                &bytes[..32],
                &bytes[32..],
                u64::from(v ^ 1),
            ),
        };
        let inconsistent = Sample {
            digest,
            body: answer(&full, &bytes[..32], &bytes[32..], u64::from(v ^ 1)),
        };
        let other_digest = Sample {
            digest: [0x43; 32],
            body: good.body.clone(),
        };
        let garbage = Sample {
            digest,
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
