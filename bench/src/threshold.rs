//! `strongroom-bench threshold`: 2-of-3 threshold signing in one process — three session
//! engines (each on its own thread, as in three enclaves), every message sealed and
//! relayed in memory — next to single-key signing measured in the same run.
//!
//! Reported: each node's safe-prime generation and the group's auxiliary information
//! (CGGMP24's one-time setup), key generation per scheme, and per signature the latency
//! (p50/p99), the throughput of one session at a time and the CPU time of all threads, for
//! FROST (BIP-340/Taproot, Ed25519) and CGGMP24 (the full protocol on a digest; a
//! presignature, then signing with it). The single-key floors are k256 ECDSA and BIP-340
//! and ed25519-dalek, one thread. No HTTP, vsock or storage: what the protocols cost.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use strongroom_threshold::Scheme;
use strongroom_threshold::channel::ChannelSecret;
use strongroom_threshold::ecdsa::Primes;
use strongroom_threshold::engine::{Engine, Outcome, PartySpec};
use strongroom_threshold::local::run_local;
use strongroom_threshold::session::{Invitation, SessionKind};
use zeroize::Zeroizing;

use crate::cpu;
use crate::stats::Latency;

/// What to measure.
#[derive(Args, Debug)]
pub struct ThresholdArgs {
    /// Signatures per FROST scheme.
    #[arg(long, value_name = "N", default_value_t = 200)]
    frost: usize,
    /// Signatures by CGGMP24's full protocol (seconds each on this machine).
    #[arg(long, value_name = "N", default_value_t = 10)]
    ecdsa: usize,
    /// Presignatures made, then each spent on one signature.
    #[arg(long, value_name = "N", default_value_t = 20)]
    presigned: usize,
    /// Each node's primes from this file (three lines of hex, as
    /// `cargo run -p strongroom-threshold --example primes` prints) instead of generating
    /// them here; the generation is then not measured.
    #[arg(long, value_name = "FILE")]
    primes: Option<PathBuf>,
    /// Also write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// One measured kind of run.
#[derive(Debug, Serialize)]
struct Row {
    what: String,
    latency: Latency,
    per_second: f64,
    cpu_ms_per_run: f64,
    floor_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    primes_seconds_per_node: Vec<f64>,
    aux_info_seconds: f64,
    keygen_ms: Vec<(String, f64)>,
    floors_us: Vec<(String, f64)>,
    rows: Vec<Row>,
}

const NOW: u64 = 1_800_000_000;
const NODES: [[u8; 16]; 3] = [[1; 16], [2; 16], [3; 16]];

fn invitation(kind: SessionKind, participants: &[usize], n: u64) -> Invitation {
    let mut nonce = [0u8; 32];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    Invitation {
        genesis: [0x6e; 32],
        kind,
        participants: participants.iter().map(|&i| NODES[i]).collect(),
        request: None,
        nonce,
        issued_at: NOW,
    }
}

/// Runs one session among the chosen engines; every outcome must be an outcome.
fn session(
    engines: &[Engine],
    nodes: &[usize],
    invitation: &Invitation,
    specs: Vec<PartySpec>,
) -> Result<Vec<Outcome>> {
    let chosen: Vec<&Engine> = nodes.iter().map(|&i| &engines[i]).collect();
    run_local(&chosen, invitation, specs, NOW)
        .into_iter()
        .map(|r| r.map_err(|e| anyhow!("{e}")))
        .collect()
}

/// Times `runs` sessions made by `make` (its argument: the run's number).
fn measure(
    what: &str,
    runs: usize,
    floor_us: Option<f64>,
    mut one: impl FnMut(u64) -> Result<()>,
) -> Result<Row> {
    let mut samples = Vec::with_capacity(runs);
    let start = cpu::snapshot().context("reading /proc for CPU time")?;
    let began = Instant::now();
    for i in 0..runs {
        let t = Instant::now();
        one(i as u64).with_context(|| format!("{what}, run {i}"))?;
        samples.push(t.elapsed());
    }
    let wall = began.elapsed();
    let end = cpu::snapshot().context("reading /proc for CPU time")?;
    let usage = cpu::usage(&start, &end).context("no CPU time elapsed")?;
    let cpu_ms_per_run = usage.bench_cpu_seconds * 1e3 / runs as f64;
    let latency = Latency::of(&mut samples).context("no runs")?;
    Ok(Row {
        what: what.to_string(),
        per_second: runs as f64 / wall.as_secs_f64(),
        cpu_ms_per_run,
        floor_ratio: floor_us.map(|f| cpu_ms_per_run * 1e3 / f),
        latency,
    })
}

/// Single-threaded single-key signing: microseconds per signature.
fn floors() -> Result<(f64, f64, f64)> {
    const N: u32 = 2000;
    let digest: [u8; 32] = Sha256::digest(b"floor").into();
    let ecdsa = k256::ecdsa::SigningKey::from_slice(&[7; 32]).map_err(|e| anyhow!("{e}"))?;
    let t = Instant::now();
    for _ in 0..N {
        black_box(ecdsa.sign_prehash_recoverable(black_box(&digest)));
    }
    let ecdsa_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let schnorr =
        k256::schnorr::SigningKey::from_bytes(&[7; 32].into()).map_err(|e| anyhow!("{e}"))?;
    let t = Instant::now();
    for _ in 0..N {
        let _ = schnorr
            .sign_raw(&digest, &[0; 32])
            .map_err(|e| anyhow!("{e}"))?;
    }
    let schnorr_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let ed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let t = Instant::now();
    for _ in 0..N {
        black_box(ed25519_dalek::Signer::sign(&ed, black_box(&digest)));
    }
    let ed_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    Ok((ecdsa_us, schnorr_us, ed_us))
}

/// Each node's primes (sealed form), and the seconds each took to generate (none when
/// read from a file).
type NodePrimes = (Vec<Zeroizing<Vec<u8>>>, Vec<f64>);

fn primes(args: &ThresholdArgs) -> Result<NodePrimes> {
    if let Some(path) = &args.primes {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let primes: Vec<Zeroizing<Vec<u8>>> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| hex::decode(l).map(Zeroizing::new))
            .collect::<Result<_, _>>()
            .context("primes file: not hex")?;
        if primes.len() != 3 {
            bail!("primes file: {} lines, expected 3", primes.len());
        }
        return Ok((primes, Vec::new()));
    }
    eprintln!("generating each node's primes (tens of seconds each)…");
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let t = Instant::now();
                let p = Primes::generate();
                (p.to_bytes(), t.elapsed().as_secs_f64())
            })
        })
        .collect();
    let mut out = Vec::new();
    let mut seconds = Vec::new();
    for thread in threads {
        let (bytes, s) = thread
            .join()
            .map_err(|_| anyhow!("prime generation panicked"))?;
        out.push(bytes.map_err(|e| anyhow!("{e}"))?);
        seconds.push(s);
    }
    Ok((out, seconds))
}

/// Runs the threshold benchmark and prints it.
pub fn run(args: &ThresholdArgs) -> Result<bool> {
    let engines: Vec<Engine> = (0..3)
        .map(|_| {
            Engine::spawn(ChannelSecret::generate().map_err(|e| anyhow!("{e}"))?)
                .map_err(|e| anyhow!("{e}"))
        })
        .collect::<Result<_>>()?;
    let (ecdsa_floor, schnorr_floor, ed_floor) = floors()?;
    let (primes, primes_seconds) = primes(args)?;

    eprintln!("auxiliary information…");
    let t = Instant::now();
    let aux: Vec<Zeroizing<Vec<u8>>> = session(
        &engines,
        &[0, 1, 2],
        &invitation(SessionKind::AuxInfo, &[0, 1, 2], 0),
        primes
            .into_iter()
            .map(|primes| PartySpec::AuxInfo { primes })
            .collect(),
    )?
    .into_iter()
    .map(|o| match o {
        Outcome::AuxInfo(a) => Ok(a),
        other => Err(anyhow!("aux info gave {other:?}")),
    })
    .collect::<Result<_>>()?;
    let aux_info_seconds = t.elapsed().as_secs_f64();

    let mut keygen_ms = Vec::new();
    let mut shares = Vec::new();
    for (n, scheme) in [
        Scheme::Secp256k1Ecdsa,
        Scheme::Secp256k1Schnorr,
        Scheme::Ed25519,
    ]
    .into_iter()
    .enumerate()
    {
        let kind = SessionKind::Keygen {
            scheme,
            threshold: 2,
        };
        let t = Instant::now();
        let outcomes = session(
            &engines,
            &[0, 1, 2],
            &invitation(kind, &[0, 1, 2], 1 + n as u64),
            (0..3)
                .map(|_| PartySpec::Keygen {
                    scheme,
                    threshold: 2,
                })
                .collect(),
        )?;
        keygen_ms.push((scheme.name().to_string(), t.elapsed().as_secs_f64() * 1e3));
        let node_shares: Vec<Zeroizing<Vec<u8>>> = outcomes
            .into_iter()
            .map(|o| match o {
                Outcome::Share { share, .. } => Ok(share),
                other => Err(anyhow!("key generation gave {other:?}")),
            })
            .collect::<Result<_>>()?;
        shares.push(node_shares);
    }
    let [ecdsa_shares, taproot_shares, ed_shares] =
        <[Vec<Zeroizing<Vec<u8>>>; 3]>::try_from(shares).map_err(|_| anyhow!("three schemes"))?;

    let sign_kind = |presignature| SessionKind::Sign {
        key_id: "bench".into(),
        presignature,
    };
    let mut rows = Vec::new();
    let mut counter = 100u64;
    let mut next = || {
        counter += 1;
        counter
    };
    for (label, scheme, node_shares, floor) in [
        (
            "FROST secp256k1-tr (BIP-340), 2-of-3",
            Scheme::Secp256k1Schnorr,
            &taproot_shares,
            schnorr_floor,
        ),
        (
            "FROST Ed25519, 2-of-3",
            Scheme::Ed25519,
            &ed_shares,
            ed_floor,
        ),
    ] {
        rows.push(measure(label, args.frost, Some(floor), |i| {
            let message = Sha256::digest(i.to_be_bytes()).to_vec();
            let specs = [0usize, 2]
                .iter()
                .map(|&node| PartySpec::Schnorr {
                    scheme,
                    key: node_shares[node].clone(),
                    signers: vec![0, 2],
                    message: message.clone(),
                })
                .collect();
            session(
                &engines,
                &[0, 2],
                &invitation(sign_kind(None), &[0, 2], next()),
                specs,
            )
            .map(drop)
        })?);
    }
    rows.push(measure(
        "CGGMP24 full protocol on a digest, 2-of-3",
        args.ecdsa,
        Some(ecdsa_floor),
        |i| {
            let digest: [u8; 32] = Sha256::digest(i.to_be_bytes()).into();
            let specs = [0usize, 1]
                .iter()
                .map(|&node| PartySpec::EcdsaDigest {
                    share: ecdsa_shares[node].clone(),
                    aux: aux[node].clone(),
                    signers: vec![0, 1],
                    digest,
                })
                .collect();
            session(
                &engines,
                &[0, 1],
                &invitation(sign_kind(None), &[0, 1], next()),
                specs,
            )
            .map(drop)
        },
    )?);
    let mut held = Vec::new();
    rows.push(measure(
        "CGGMP24 presignature, 2-of-3",
        args.presigned,
        None,
        |_| {
            let specs = [1usize, 2]
                .iter()
                .map(|&node| PartySpec::Presign {
                    key_id: "bench".into(),
                    share: ecdsa_shares[node].clone(),
                    aux: aux[node].clone(),
                    signers: vec![1, 2],
                })
                .collect();
            let outcomes = session(
                &engines,
                &[1, 2],
                &invitation(
                    SessionKind::Presign {
                        key_id: "bench".into(),
                    },
                    &[1, 2],
                    next(),
                ),
                specs,
            )?;
            match outcomes.first() {
                Some(Outcome::Presignature(id)) => {
                    held.push(*id);
                    Ok(())
                }
                other => Err(anyhow!("presigning gave {other:?}")),
            }
        },
    )?);
    let mut held = held.into_iter();
    rows.push(measure(
        "CGGMP24 signing with a presignature, 2-of-3",
        args.presigned,
        Some(ecdsa_floor),
        |i| {
            let id = held.next().ok_or_else(|| anyhow!("no presignature left"))?;
            let preimage = format!("transaction {i}").into_bytes();
            let spec = || PartySpec::EcdsaPresigned {
                key_id: "bench".into(),
                presignature: id,
                preimage: preimage.clone(),
            };
            let mut inv = invitation(sign_kind(Some(id)), &[1, 2], next());
            inv.request = Some(ByteBuf::from(preimage.clone()));
            session(&engines, &[1, 2], &inv, vec![spec(), spec()]).map(drop)
        },
    )?);

    let report = Report {
        primes_seconds_per_node: primes_seconds,
        aux_info_seconds,
        keygen_ms,
        floors_us: vec![
            ("k256 ECDSA".into(), ecdsa_floor),
            ("k256 BIP-340".into(), schnorr_floor),
            ("ed25519-dalek".into(), ed_floor),
        ],
        rows,
    };
    print(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(true)
}

fn print(r: &Report) {
    println!(
        "threshold signing, in process: three engines (threads), sealed messages relayed in memory"
    );
    if !r.primes_seconds_per_node.is_empty() {
        let each: Vec<String> = r
            .primes_seconds_per_node
            .iter()
            .map(|s| format!("{s:.1} s"))
            .collect();
        println!(
            "  safe primes (four 1536-bit), per node, three at once: {}",
            each.join(", ")
        );
    }
    println!(
        "  auxiliary information, three nodes: {:.1} s",
        r.aux_info_seconds
    );
    for (scheme, ms) in &r.keygen_ms {
        println!("  key generation {scheme}, 2-of-3: {ms:.1} ms");
    }
    for (what, us) in &r.floors_us {
        println!("  single-key floor, {what}: {us:.1} µs");
    }
    println!(
        "  {:<46} {:>8} {:>10} {:>10} {:>9} {:>12} {:>10}",
        "run", "count", "p50", "p99", "per s", "CPU per run", "÷ floor"
    );
    for row in &r.rows {
        let ms = |us: f64| format!("{:.2} ms", us / 1e3);
        println!(
            "  {:<46} {:>8} {:>10} {:>10} {:>9.1} {:>9.2} ms {:>10}",
            row.what,
            row.latency.count,
            ms(row.latency.p50_us),
            ms(row.latency.p99_us),
            row.per_second,
            row.cpu_ms_per_run,
            row.floor_ratio
                .map(|f| format!("{f:.0}×"))
                .unwrap_or_else(|| "–".into())
        );
    }
}
