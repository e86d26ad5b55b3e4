//! `strongroom-bench audit-chain`: how fast `strongroom audit verify` checks a long chain,
//! against single-threaded baselines measured in the same run on the same machine.
//!
//! It builds a chain of N entries as the enclave does (boots spread evenly, each with a
//! genuine mock-NSM attestation document; decisions of about 650 bytes with a whole
//! decoded transaction intent, records `audit verify` reads as the enclave's, about 820
//! bytes a line), writes it with the expected PCRs and the mock root,
//! then times the real `strongroom audit verify --from-file` process. Baselines, one
//! thread each: strict Ed25519 verification of the chain's N signatures one by one (the
//! signature work alone, without batching), and SHA-256 over the chain file's bytes (the
//! cost of reading every byte once).

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine;
use clap::Args;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use strongroom_attestation::AttestationRequest;
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_identity::{AuditEntry, GENESIS_PREV, IdentityKey, UserData};

use crate::cpu;

/// What to build and where.
#[derive(Args, Debug)]
pub struct AuditChainArgs {
    /// Entries in the chain.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1_000_000,
        value_parser = clap::value_parser!(u64).range(1..=100_000_000)
    )]
    entries: u64,
    /// Boots in the chain (entry 0 and evenly after it).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(1..=255)
    )]
    boots: u64,
    /// Where to write the chain, PCR file and root (kept); default a scratch directory,
    /// deleted at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The `strongroom` program to time; default the one next to this program.
    #[arg(long, value_name = "FILE")]
    strongroom: Option<PathBuf>,
    /// Also write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Every figure of a run.
#[derive(Debug, Serialize)]
pub struct AuditReport {
    /// Cores the machine has.
    cores: usize,
    /// Entries in the chain.
    entries: u64,
    /// Boots in the chain.
    boots: u64,
    /// Size of the chain file.
    file_bytes: u64,
    /// Mean line length.
    mean_line_bytes: f64,
    /// Time to build and write the chain (not part of any figure below).
    generate_seconds: f64,
    /// The command timed.
    command: String,
    /// Wall time of `strongroom audit verify`, process start to exit.
    verify_seconds: f64,
    /// Entries verified per second.
    verify_entries_per_sec: f64,
    /// Chain bytes verified per second, in MB/s.
    verify_mb_per_sec: f64,
    /// CPU time `strongroom audit verify` used (user + system, all its threads).
    verify_cpu_seconds: Option<f64>,
    /// The same, per entry, in microseconds.
    verify_cpu_us_per_entry: Option<f64>,
    /// Busy share of all the machine's CPUs while it ran (its own work and any other).
    machine_busy_fraction: Option<f64>,
    /// CPU-seconds other processes used while it ran (they compete for the cores).
    other_cpu_seconds: Option<f64>,
    /// Baseline: strict Ed25519 verification of the N signatures one by one, one thread.
    ed25519_single_seconds: f64,
    /// The same, per second.
    ed25519_single_per_sec: f64,
    /// Baseline: SHA-256 over the chain file's bytes, one thread.
    sha256_file_seconds: f64,
    /// verify_seconds / ed25519_single_seconds.
    ratio_to_ed25519_single: f64,
    /// verify_seconds / sha256_file_seconds.
    ratio_to_sha256_file: f64,
}

impl fmt::Display for AuditReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            out,
            "strongroom-bench audit-chain: {} cores, {} entries ({} boots), {:.1} MB, {:.0} bytes a line (built in {:.1} s)",
            self.cores,
            self.entries,
            self.boots,
            self.file_bytes as f64 / 1e6,
            self.mean_line_bytes,
            self.generate_seconds
        )?;
        writeln!(out, "\n  {}", self.command)?;
        writeln!(
            out,
            "  audit verify:                       {:>8.2} s  {:>10.0} entries/s  {:>6.1} MB/s",
            self.verify_seconds, self.verify_entries_per_sec, self.verify_mb_per_sec
        )?;
        if let (Some(cpu), Some(per), Some(busy), Some(other)) = (
            self.verify_cpu_seconds,
            self.verify_cpu_us_per_entry,
            self.machine_busy_fraction,
            self.other_cpu_seconds,
        ) {
            writeln!(
                out,
                "  its CPU time:                       {cpu:>8.2} s  {per:>10.1} µs an entry \
                 (machine {:.0}% busy, {other:.1} CPU-s by other processes)",
                busy * 100.0
            )?;
        }
        writeln!(out, "\nBaselines, in process, 1 thread:")?;
        writeln!(
            out,
            "  Ed25519 verify_strict, N one by one:{:>8.2} s  {:>10.0} signatures/s",
            self.ed25519_single_seconds, self.ed25519_single_per_sec
        )?;
        writeln!(
            out,
            "  SHA-256 over the chain file:        {:>8.2} s",
            self.sha256_file_seconds
        )?;
        writeln!(out, "\nRatios (audit verify time / baseline time):")?;
        writeln!(
            out,
            "  to Ed25519 one by one:              {:>8.3}",
            self.ratio_to_ed25519_single
        )?;
        writeln!(
            out,
            "  to SHA-256 of the file:             {:>8.1}",
            self.ratio_to_sha256_file
        )
    }
}

/// The files an auditor is given, and what the baselines need.
struct Built {
    chain: PathBuf,
    pcrs: PathBuf,
    root: PathBuf,
    file_bytes: u64,
    /// Each entry's hash and signature, and the index of its identity in `keys`.
    signed: Vec<([u8; 32], [u8; 64], u8)>,
    keys: Vec<VerifyingKey>,
}

/// A decision entry's fields (about 650 bytes with the common ones), varying with `seq`:
/// a record `audit verify` decodes as it decodes the enclave's.
fn decision(seq: u64) -> serde_json::Map<String, Value> {
    let request = Sha256::digest(seq.to_be_bytes());
    let fields = json!({
        "request": hex::encode(request),
        "principal": "desk",
        "stamp_key": "desk-1",
        "action": "sign_transaction",
        "key": "5f0c6a1e2b3d4c5e6f708192a3b4c5d6",
        "intent": {
            "kind": "transaction",
            "tx_type": "eip1559",
            "chain_id": 1,
            "nonce": seq,
            "to": "0x7e5f4552091a69125d5dfcb7b8c2659029395bdf",
            "value": format!("0x{:x}", 1_000_000_000_000u64 + seq),
            "gas_limit": 21000,
            "max_fee_per_gas": "0x4a817c800",
            "max_priority_fee_per_gas": "0x3b9aca00",
            "selector": null,
            "data_len": 0,
            "erc20": null,
        },
        "result": "allow",
        "rule": "transfers",
        "reason": "within limits",
    });
    match fields {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Builds the chain into `dir`: boots at entry 0 and every N/boots entries, one second
/// between entries, starting two days ahead (so the mock makes its certificates for
/// then).
fn build(dir: &Path, entries: u64, boots: u64) -> Result<Built> {
    let config = MockNsmConfig::default();
    let nsm = MockNsm::open_or_create(&dir.join("nsm"), config.clone())
        .context("starting the mock NSM")?;
    let pcrs: serde_json::Map<String, Value> = config
        .pcrs
        .iter()
        .map(|(i, v)| (i.to_string(), json!(hex::encode(v))))
        .collect();
    let pcr_file = dir.join("pcrs.json");
    std::fs::write(&pcr_file, Value::Object(pcrs).to_string())?;

    let chain = dir.join("chain.ndjson");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&chain)?);
    let t0 = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 2 * 24 * 3600;
    let every = entries.div_ceil(boots).max(1);
    let mut signed = Vec::with_capacity(usize::try_from(entries)?);
    let mut keys: Vec<VerifyingKey> = Vec::new();
    let mut key = IdentityKey::from_seed(&[1; 32]);
    let mut prev = GENESIS_PREV;
    let mut file_bytes = 0u64;
    for seq in 0..entries {
        let time = t0 + seq;
        let (kind, fields) = if seq % every == 0 {
            let boot = u8::try_from(keys.len() + 1)?;
            key = IdentityKey::from_seed(&[boot; 32]);
            keys.push(key.public().verifying_key()?);
            let user_data = UserData {
                key_check: [1; 16],
                genesis: [2; 32],
                admins: [3; 32],
                policy: [4; 32],
                identity: key.public(),
                boot_seq: seq,
                replica: strongroom_identity::ReplicaName::SINGLE,
            };
            let request = AttestationRequest {
                user_data: Some(user_data.encode()),
                nonce: Some(prev.to_vec()),
                public_key: None,
            };
            let doc = nsm
                .attestation_at(&request, UNIX_EPOCH + Duration::from_secs(time))
                .context("mock attestation")?;
            let fields = json!({
                "identity": key.public().to_string(),
                "attestation": base64::engine::general_purpose::STANDARD.encode(doc),
                "first_boot": seq == 0,
            });
            let Value::Object(fields) = fields else {
                bail!("boot fields are not an object");
            };
            ("boot", fields)
        } else {
            ("decision", decision(seq))
        };
        let (entry, hash) = AuditEntry::build(&key, seq, &prev, time, kind, fields)?;
        let line = entry.to_line();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        file_bytes += line.len() as u64 + 1;
        signed.push((hash, entry.signature, u8::try_from(keys.len() - 1)?));
        prev = hash;
    }
    out.flush()?;
    Ok(Built {
        chain,
        pcrs: pcr_file,
        root: dir.join("nsm").join("root.pem"),
        file_bytes,
        signed,
        keys,
    })
}

/// Strict verification of every signature, one by one, on this thread.
fn ed25519_single(built: &Built) -> Result<f64> {
    let start = Instant::now();
    for (hash, sig, key) in &built.signed {
        built.keys[usize::from(*key)]
            .verify_strict(hash, &Signature::from_bytes(sig))
            .context("a signature of the built chain does not verify")?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// SHA-256 over the chain file, read into memory first (reading is not timed).
fn sha256_file(path: &Path) -> Result<f64> {
    let bytes = std::fs::read(path)?;
    let start = Instant::now();
    let digest = Sha256::digest(&bytes);
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(digest);
    Ok(seconds)
}

/// Runs the audit-chain benchmark; Ok(false) when the verifier did not verify the chain.
pub fn run(args: &AuditChainArgs) -> Result<bool> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let strongroom = match &args.strongroom {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("strongroom"),
    };
    if !strongroom.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p strongroom-cli) or pass --strongroom",
            strongroom.display()
        );
    }
    let scratch = args.dir.is_none();
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "strongroom-audit-bench-{}-{}",
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos()
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let outcome = measure(args, cores, &strongroom, &dir);
    if scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (report, passed) = outcome?;
    print!("{report}");
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(passed)
}

fn measure(
    args: &AuditChainArgs,
    cores: usize,
    strongroom: &Path,
    dir: &Path,
) -> Result<(AuditReport, bool)> {
    eprintln!(
        "building a chain of {} entries ({} boots) in {}...",
        args.entries,
        args.boots,
        dir.display()
    );
    let start = Instant::now();
    let built = build(dir, args.entries, args.boots)?;
    let generate_seconds = start.elapsed().as_secs_f64();

    eprintln!("timing strongroom audit verify...");
    let argv = [
        "audit".to_string(),
        "verify".into(),
        "--from-file".into(),
        built.chain.display().to_string(),
        "--expect-pcrs".into(),
        built.pcrs.display().to_string(),
        "--attestation-root".into(),
        built.root.display().to_string(),
    ];
    let cpu_start = cpu::snapshot();
    let start = Instant::now();
    let output = Command::new(strongroom)
        .args(&argv)
        .output()
        .with_context(|| format!("running {}", strongroom.display()))?;
    let verify_seconds = start.elapsed().as_secs_f64();
    let usage = cpu_start
        .zip(cpu::snapshot())
        .and_then(|(a, b)| cpu::usage(&a, &b));
    let passed = output.status.success()
        && serde_json::from_slice::<Value>(&output.stdout).is_ok_and(|r| {
            r["entries"] == args.entries
                && r["boots"].as_array().map(Vec::len) == usize::try_from(args.boots).ok()
        });
    if !passed {
        eprintln!(
            "audit verify did not verify the chain: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    eprintln!("measuring the baselines on one thread...");
    let ed25519_single_seconds = ed25519_single(&built)?;
    let sha256_file_seconds = sha256_file(&built.chain)?;

    let n = args.entries as f64;
    let report = AuditReport {
        cores,
        entries: args.entries,
        boots: built.keys.len() as u64,
        file_bytes: built.file_bytes,
        mean_line_bytes: built.file_bytes as f64 / n,
        generate_seconds,
        command: format!("{} {}", strongroom.display(), argv.join(" ")),
        verify_seconds,
        verify_entries_per_sec: n / verify_seconds,
        verify_mb_per_sec: built.file_bytes as f64 / 1e6 / verify_seconds,
        verify_cpu_seconds: usage.as_ref().map(|u| u.children_cpu_seconds),
        verify_cpu_us_per_entry: usage.as_ref().map(|u| u.children_cpu_seconds * 1e6 / n),
        machine_busy_fraction: usage.as_ref().map(|u| u.busy_fraction),
        other_cpu_seconds: usage
            .as_ref()
            .map(|u| (u.rest_cpu_seconds - u.children_cpu_seconds).max(0.0)),
        ed25519_single_seconds,
        ed25519_single_per_sec: n / ed25519_single_seconds,
        sha256_file_seconds,
        ratio_to_ed25519_single: verify_seconds / ed25519_single_seconds,
        ratio_to_sha256_file: verify_seconds / sha256_file_seconds,
    };
    Ok((report, passed))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use strongroom_attestation::{Expectations, TrustedRoot, parse_pcr_file, verify};
    use strongroom_identity::verify_chain;

    use super::*;

    #[test]
    fn the_built_chain_is_one_an_auditor_accepts() {
        let dir = std::env::temp_dir().join(format!(
            "strongroom-audit-bench-test-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let built = build(&dir, 300, 3).unwrap();
        let text = std::fs::read_to_string(&built.chain).unwrap();
        assert_eq!(text.len() as u64, built.file_bytes);
        let lines: Vec<&str> = text.lines().collect();
        let root = TrustedRoot::from_pem(&std::fs::read_to_string(&built.root).unwrap()).unwrap();
        let pcrs = parse_pcr_file(&std::fs::read_to_string(&built.pcrs).unwrap()).unwrap();
        let check = |doc: &[u8], nonce: &[u8; 32], time: u64| {
            let mut exp = Expectations::new(UNIX_EPOCH + Duration::from_secs(time))
                .root(root.clone())
                .nonce(nonce.to_vec());
            for (i, v) in &pcrs {
                exp = exp.pcr(u8::try_from(*i).unwrap(), v.clone());
            }
            let doc = verify(doc, &exp).map_err(|e| e.to_string())?;
            UserData::decode(&doc.document.user_data.unwrap()).map_err(|e| e.to_string())
        };
        let report = verify_chain(&lines, check).unwrap();
        assert_eq!(report.entries, 300);
        let boots: Vec<u64> = report.boots.iter().map(|b| b.seq).collect();
        assert_eq!(boots, [0, 100, 200]);
        // Decisions are the typical size, and records `audit verify` reads; the baseline
        // checks the same signatures.
        let decision = AuditEntry::parse_line(lines[5]).unwrap();
        let record = strongroom_enclave::record::Record::from_entry_bytes(&decision.bytes);
        assert!(
            matches!(record, Ok(strongroom_enclave::record::Record::Decision(_))),
            "{record:?}"
        );
        // (About 650 bytes, and the signer's 64 hex digits.)
        assert!(
            (650..800).contains(&decision.bytes.len()),
            "{}",
            decision.bytes.len()
        );
        assert_eq!(built.signed.len(), 300);
        assert!(ed25519_single(&built).unwrap() > 0.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
