//! `strongroom-bench boot-replay`: how fast a restarted enclave replays its log.
//!
//! Every state change is a record in the audit chain; the proxy takes a snapshot every
//! 10,000 records, and a boot opens the newest snapshot and replays the records after it.
//! This measures that replay in process, with the enclave library on a mock NSM and this
//! program playing KMS and the proxy (as the enclave's own tests do): a first boot from a
//! genesis, a key, a snapshot, then N digest signatures — each appends exactly one
//! `decision` record. Then a fresh enclave boots from the snapshot and those N records
//! (CompleteUnseal, the snapshot in parts, the records in pages of at most 1 MiB of lines,
//! FinishBoot), timed, against the same boot with no records after the snapshot.
//!
//! In process means no framing and no socket: the figures are the enclave's own work.

use std::fmt;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use strongroom_api::{Id, Route, SignKind};
use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
use strongroom_attestation::{Expectations, Nsm, TrustedRoot, verify};
use strongroom_auth::{Algorithm, MAX_VALIDITY_SECS, MIN_NONCE_LEN, SigningKey, Stamp};
use strongroom_enclave::Enclave;
use strongroom_enclave::record::Record;
use strongroom_envelope::seal_for_recipient;
use strongroom_identity::AuditEntry;
use strongroom_protocol::messages::{
    Answer, AuditRecord, Call, CompleteUnseal, MAX_REPLAY_PAGE_BYTES, Request, Response,
    SNAPSHOT_CHUNK_LEN, SealedKey,
};

/// Most records one run makes. The enclave remembers every stamp until it expires (300 s)
/// in a replay cache of 2^19 that refuses rather than forgets when full, so more calls than
/// that within 300 s would be refused.
const MAX_RECORDS: u64 = 500_000;
/// The principal's id in the genesis policy.
const PRINCIPAL: &str = "bench";
/// Longest stretch of an unexpected answer quoted in an error.
const MAX_QUOTED: usize = 300;

/// What to measure.
#[derive(Args, Debug)]
pub struct BootReplayArgs {
    /// Signing decisions recorded after the snapshot, all replayed by the timed boot.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u64).range(1..=MAX_RECORDS)
    )]
    records: u64,
    /// Also write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// One boot from the snapshot, timed step by step.
#[derive(Debug, Clone, Serialize)]
pub struct BootTiming {
    /// Records replayed after the snapshot.
    pub records: u64,
    /// BeginUnseal (a fresh RSA key and an attestation document) and this program's part
    /// as KMS; the same for any log, so not in `boot_seconds`.
    pub challenge_seconds: f64,
    /// CompleteUnseal: KMS's envelope opened, the working keys derived.
    pub complete_unseal_seconds: f64,
    /// The snapshot's parts received, opened and parsed.
    pub snapshot_seconds: f64,
    /// The ReplayRecords calls.
    pub replay_seconds: f64,
    /// ReplayRecords calls made (pages).
    pub pages: u64,
    /// FinishBoot: a new identity, the boot record and its attestation.
    pub finish_seconds: f64,
    /// CompleteUnseal to FinishBoot, all of it.
    pub boot_seconds: f64,
}

/// Every figure of a run.
#[derive(Debug, Serialize)]
pub struct BootReplayReport {
    /// Cores the machine has.
    pub cores: usize,
    /// Records after the snapshot.
    pub records: u64,
    /// The snapshot's position: the sequence number of the first record after it.
    pub snapshot_seq: u64,
    /// The sealed snapshot's size.
    pub snapshot_bytes: u64,
    /// Bytes of record lines after the snapshot.
    pub record_bytes: u64,
    /// Mean record line length.
    pub mean_record_bytes: f64,
    /// Time to make the N records through the enclave's call path (not in any figure
    /// below).
    pub generate_seconds: f64,
    /// Signing calls per second while making them (one thread, in process).
    pub generate_calls_per_sec: f64,
    /// The boot with no record after the snapshot.
    pub baseline: BootTiming,
    /// The boot replaying the N records.
    pub with_records: BootTiming,
    /// N / the ReplayRecords calls' time.
    pub replay_records_per_sec: f64,
    /// The ReplayRecords calls' time per record, in microseconds.
    pub replay_us_per_record: f64,
    /// Boot time with the records less boot time without.
    pub extra_boot_seconds: f64,
}

fn ms(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1e3)
}

impl fmt::Display for BootReplayReport {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            out,
            "strongroom-bench boot-replay: {} cores, in process (enclave library, mock NSM, no framing)",
            self.cores
        )?;
        writeln!(
            out,
            "  snapshot at record {} ({} bytes sealed); {} decision records after it, {:.1} MB of lines ({:.0} bytes a line)",
            self.snapshot_seq,
            self.snapshot_bytes,
            self.records,
            self.record_bytes as f64 / 1e6,
            self.mean_record_bytes
        )?;
        writeln!(
            out,
            "  made in {:.1} s through the call path ({:.0} signing calls/s, one thread)",
            self.generate_seconds, self.generate_calls_per_sec
        )?;
        writeln!(
            out,
            "\n  {:<22} {:>9} {:>15} {:>10} {:>12} {:>6} {:>11} {:>11}   {:>15}",
            "boot from the snapshot",
            "records",
            "CompleteUnseal",
            "snapshot",
            "replay",
            "pages",
            "FinishBoot",
            "boot",
            "(BeginUnseal+KMS)"
        )?;
        for (name, t) in [
            ("no records (baseline)", &self.baseline),
            ("with the records", &self.with_records),
        ] {
            writeln!(
                out,
                "  {name:<22} {:>9} {:>15} {:>10} {:>12} {:>6} {:>11} {:>11}   {:>15}",
                t.records,
                ms(t.complete_unseal_seconds),
                ms(t.snapshot_seconds),
                ms(t.replay_seconds),
                t.pages,
                ms(t.finish_seconds),
                ms(t.boot_seconds),
                ms(t.challenge_seconds)
            )?;
        }
        writeln!(
            out,
            "\n  replay: {:.0} records/s ({:.1} µs a record, ReplayRecords calls only)",
            self.replay_records_per_sec, self.replay_us_per_record
        )?;
        writeln!(
            out,
            "  boot: {} with {} records after the snapshot, {} with none (+{})",
            ms(self.with_records.boot_seconds),
            self.records,
            ms(self.baseline.boot_seconds),
            ms(self.extra_boot_seconds)
        )
    }
}

/// An unexpected answer, briefly.
fn describe(r: &Response) -> String {
    match r {
        Response::Error(e) => e.to_string(),
        other => format!("{other:?}").chars().take(MAX_QUOTED).collect(),
    }
}

fn unix_now() -> Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow!("OS random source failed"))?;
    Ok(bytes)
}

/// A genesis key entry for `key`.
fn spec(key: &SigningKey) -> Value {
    let public = key.public();
    json!({"algorithm": public.algorithm().name(), "public": hex::encode(public.public_bytes())})
}

/// A genesis whose policy lets the principal create keys and sign digests (three fresh
/// admins, two to approve, who never act).
fn genesis(principal: &SigningKey) -> Result<Vec<u8>> {
    let admins = (0..3)
        .map(|_| SigningKey::generate(Algorithm::Ed25519).map(|k| spec(&k)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("making the admin keys: {e}"))?;
    let document = json!({
        "version": 1,
        "admins": {"threshold": 2, "keys": admins},
        "policy": {
            "version": 1,
            "principals": [{"id": PRINCIPAL, "roles": ["signer"], "keys": [spec(principal)]}],
            "rules": [
                {"name": "bench-create-keys", "effect": "allow", "principals": [PRINCIPAL],
                 "actions": ["create_key"]},
                {"name": "bench-digests", "effect": "allow", "principals": [PRINCIPAL],
                 "actions": ["sign_digest"]},
            ],
        },
    });
    Ok(serde_json::to_vec(&document)?)
}

/// An enclave on a fresh mock NSM, and that NSM's root to check its documents against.
struct Booting {
    enclave: Enclave<MockNsm>,
    trusted: TrustedRoot,
}

impl Booting {
    fn new() -> Result<Self> {
        let nsm = MockNsm::ephemeral(MockNsmConfig::default())
            .map_err(|e| anyhow!("starting the mock NSM: {e}"))?;
        let trusted = nsm.trusted_root();
        Ok(Self {
            enclave: Enclave::new(nsm),
            trusted,
        })
    }

    /// BeginUnseal, then KMS's part: check the document, wrap `root` for its RSA key.
    fn challenge(&self, root: &[u8]) -> Result<Vec<u8>> {
        let answer = self.enclave.handle(Request::BeginUnseal);
        let Response::UnsealChallenge {
            attestation_document,
        } = answer
        else {
            bail!("BeginUnseal: {}", describe(&answer));
        };
        let doc = verify(
            &attestation_document,
            &Expectations::new(SystemTime::now()).root(self.trusted.clone()),
        )
        .context("the unseal challenge's attestation document")?;
        let spki = doc
            .document
            .public_key
            .context("the unseal challenge carries no public key")?;
        seal_for_recipient(&spki, root).context("wrapping the root key for the enclave")
    }
}

/// This program as the principal: stamps calls by `key`.
struct Principal {
    key: SigningKey,
}

impl Principal {
    /// A stamped call of `route` with `body`, relayed as the proxy would with `key` and
    /// the count of records `stored`.
    fn call(
        &self,
        enclave: &Enclave<MockNsm>,
        route: &Route,
        body: Vec<u8>,
        key: Option<SealedKey>,
        stored: u64,
    ) -> Result<Answer> {
        let (method, path) = (route.method(), route.path());
        let request = strongroom_auth::Request {
            method,
            path: &path,
            body: &body,
        };
        let nonce = random::<MIN_NONCE_LEN>()?.to_vec();
        // The longest validity: a stamp must expire at least that long after the boot.
        let stamp = Stamp::sign(&self.key, request, nonce, unix_now()? + MAX_VALIDITY_SECS);
        let answer = enclave.handle(Request::Call(Call {
            method: method.into(),
            path: path.clone(),
            body: body.into(),
            stamp: Some(stamp.to_header()),
            key,
            keys: Vec::new(),
            audit_stored: Some(stored),
        }));
        match answer {
            Response::Answer(a) => Ok(a),
            other => bail!("{method} {path}: {}", describe(&other)),
        }
    }
}

/// Reads a whole snapshot in parts, as the proxy does: its position and bytes.
fn read_snapshot(enclave: &Enclave<MockNsm>) -> Result<(u64, Vec<u8>)> {
    let mut bytes = Vec::new();
    loop {
        let answer = enclave.handle(Request::ReadSnapshot {
            offset: bytes.len() as u64,
        });
        let Response::Snapshot {
            seq,
            total_len,
            offset,
            bytes: part,
        } = answer
        else {
            bail!("ReadSnapshot: {}", describe(&answer));
        };
        ensure!(
            offset == bytes.len() as u64 && !part.is_empty(),
            "ReadSnapshot answered a part at {offset} of {} bytes, asked for {}",
            part.len(),
            bytes.len()
        );
        bytes.extend_from_slice(&part);
        if bytes.len() as u64 >= total_len {
            return Ok((seq, bytes));
        }
    }
}

/// What a restart is given: the deployment's root key and check value, the snapshot and the
/// records after it.
struct Stored {
    root: [u8; 32],
    key_check: Vec<u8>,
    snapshot_seq: u64,
    snapshot: Vec<u8>,
    records: Vec<AuditRecord>,
}

/// First boot, a key, a snapshot, then `n` digest signatures; what a restart is given and
/// how long the signatures took.
fn generate(n: u64) -> Result<(Stored, f64)> {
    let root = random::<32>()?;
    let principal = Principal {
        key: SigningKey::generate(Algorithm::Ed25519)
            .map_err(|e| anyhow!("making the principal key: {e}"))?,
    };
    let first = Booting::new()?;
    let envelope = first.challenge(&root)?;
    let answer = first
        .enclave
        .handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: None,
            snapshot_len: None,
            genesis: Some(genesis(&principal.key)?.into()),
            replica: None,
        }));
    ensure!(
        matches!(answer, Response::ReplayFrom { seq: 0 }),
        "first boot, CompleteUnseal: {}",
        describe(&answer)
    );
    let answer = first.enclave.handle(Request::FinishBoot);
    let Response::Unsealed { key_check, audit } = answer else {
        bail!("first boot, FinishBoot: {}", describe(&answer));
    };
    let mut stored = audit.len() as u64;

    let created = principal.call(
        &first.enclave,
        &Route::CreateKey,
        serde_json::to_vec(&json!({ "label": "bench" }))?,
        None,
        stored,
    )?;
    ensure!(
        created.status == 201,
        "creating a key: HTTP {}: {}",
        created.status,
        String::from_utf8_lossy(&created.body)
    );
    stored += created.effects.audit.len() as u64;
    let key = created
        .effects
        .key_created
        .context("creating a key: no sealed key in the answer's effects")?;
    let sealed = SealedKey {
        id: key.info.id.clone(),
        sealed: key.sealed,
    };

    let (snapshot_seq, snapshot) = read_snapshot(&first.enclave)?;
    ensure!(
        snapshot_seq == stored,
        "the snapshot is at record {snapshot_seq}, but {stored} records were made"
    );

    let route = Route::Sign(Id::new(sealed.id.as_str())?, SignKind::Digest);
    let mut records = Vec::with_capacity(usize::try_from(n)?);
    let tenth = (n / 10).max(1);
    let start = Instant::now();
    for i in 0..n {
        // Distinct digests, so no two decisions are alike.
        let digest = Sha256::digest(i.to_be_bytes());
        let body = serde_json::to_vec(&json!({ "digest": format!("0x{}", hex::encode(digest)) }))?;
        let answer = principal.call(&first.enclave, &route, body, Some(sealed.clone()), stored)?;
        ensure!(
            answer.status == 200,
            "signing call {i}: HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        let [record] = <[AuditRecord; 1]>::try_from(answer.effects.audit).map_err(|audit| {
            anyhow!(
                "signing call {i} appended {} records, not one decision",
                audit.len()
            )
        })?;
        ensure!(
            record.seq == stored,
            "signing call {i} appended record {}, expected {stored}",
            record.seq
        );
        stored += 1;
        records.push(record);
        if (i + 1) % tenth == 0 && n >= 10_000 {
            eprintln!("  {} of {n} records", i + 1);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((
        Stored {
            root,
            key_check: key_check.into_vec(),
            snapshot_seq,
            snapshot,
            records,
        },
        seconds,
    ))
}

/// `records` in pages of at most [`MAX_REPLAY_PAGE_BYTES`] of lines, in order.
fn pages(records: Vec<AuditRecord>) -> Vec<Vec<AuditRecord>> {
    let mut pages = Vec::new();
    let mut page = Vec::new();
    let mut bytes = 0usize;
    for record in records {
        if !page.is_empty() && bytes + record.line.len() > MAX_REPLAY_PAGE_BYTES {
            pages.push(std::mem::take(&mut page));
            bytes = 0;
        }
        bytes += record.line.len();
        page.push(record);
    }
    if !page.is_empty() {
        pages.push(page);
    }
    pages
}

/// A fresh enclave booted from `stored`'s snapshot and `records` (the records after it),
/// timed step by step; checks that it replayed exactly those.
fn timed_boot(stored: &Stored, records: Vec<AuditRecord>) -> Result<BootTiming> {
    let n = records.len() as u64;
    // Paged before the clock starts: the proxy reads its pages from its store, not timed
    // here either.
    let pages = pages(records);
    let page_count = pages.len() as u64;
    let booting = Booting::new()?;

    let start = Instant::now();
    let envelope = booting.challenge(&stored.root)?;
    let challenge_seconds = start.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let mut answer = booting
        .enclave
        .handle(Request::CompleteUnseal(CompleteUnseal {
            ciphertext_for_recipient: envelope.into(),
            key_check: Some(stored.key_check.clone().into()),
            snapshot_len: Some(stored.snapshot.len() as u64),
            genesis: None,
            replica: None,
        }));
    let t1 = Instant::now();
    for chunk in stored.snapshot.chunks(SNAPSHOT_CHUNK_LEN) {
        ensure!(
            matches!(answer, Response::SnapshotReceived { .. }),
            "boot, before a snapshot part: {}",
            describe(&answer)
        );
        answer = booting.enclave.handle(Request::SnapshotChunk {
            bytes: chunk.to_vec().into(),
        });
    }
    let t2 = Instant::now();
    let Response::ReplayFrom { seq } = answer else {
        bail!("boot, after the snapshot: {}", describe(&answer));
    };
    ensure!(
        seq == stored.snapshot_seq,
        "the enclave asked for records from {seq}, the snapshot is at {}",
        stored.snapshot_seq
    );
    for page in pages {
        let answer = booting
            .enclave
            .handle(Request::ReplayRecords { records: page });
        ensure!(
            matches!(answer, Response::ReplayFrom { .. }),
            "boot, replaying: {}",
            describe(&answer)
        );
    }
    let t3 = Instant::now();
    let answer = booting.enclave.handle(Request::FinishBoot);
    let t4 = Instant::now();

    let Response::Unsealed { key_check, audit } = answer else {
        bail!("boot, FinishBoot: {}", describe(&answer));
    };
    ensure!(
        key_check.as_slice() == stored.key_check.as_slice(),
        "the restarted enclave has another root-key check value"
    );
    let boot = audit
        .first()
        .context("FinishBoot returned no boot record")?;
    ensure!(
        boot.seq == stored.snapshot_seq + n,
        "the boot record is record {}, expected {}",
        boot.seq,
        stored.snapshot_seq + n
    );
    let entry = AuditEntry::parse_line(&boot.line).context("the boot record")?;
    let record = Record::from_entry_bytes(&entry.bytes).context("the boot record")?;
    let replayed = match record {
        Record::Boot(b) => b.resumed.map(|r| r.replayed),
        other => bail!("the boot record is a {} record", other.kind()),
    };
    ensure!(
        replayed == Some(n),
        "the boot record says {replayed:?} records were replayed, not {n}"
    );

    let secs = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64();
    Ok(BootTiming {
        records: n,
        challenge_seconds,
        complete_unseal_seconds: secs(t0, t1),
        snapshot_seconds: secs(t1, t2),
        replay_seconds: secs(t2, t3),
        pages: page_count,
        finish_seconds: secs(t3, t4),
        boot_seconds: secs(t0, t4),
    })
}

/// Makes the records and times both boots.
fn measure(records: u64) -> Result<BootReplayReport> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("making {records} signing decisions through an in-process enclave...");
    let (mut stored, generate_seconds) = generate(records)?;
    let log = std::mem::take(&mut stored.records);
    let record_bytes: u64 = log.iter().map(|r| r.line.len() as u64).sum();
    eprintln!("booting from the snapshot with no records, then with {records}...");
    let baseline = timed_boot(&stored, Vec::new())?;
    let with_records = timed_boot(&stored, log)?;
    let n = records as f64;
    let replay = with_records.replay_seconds.max(f64::EPSILON);
    Ok(BootReplayReport {
        cores,
        records,
        snapshot_seq: stored.snapshot_seq,
        snapshot_bytes: stored.snapshot.len() as u64,
        record_bytes,
        mean_record_bytes: record_bytes as f64 / n,
        generate_seconds,
        generate_calls_per_sec: n / generate_seconds.max(f64::EPSILON),
        replay_records_per_sec: n / replay,
        replay_us_per_record: replay * 1e6 / n,
        extra_boot_seconds: with_records.boot_seconds - baseline.boot_seconds,
        baseline,
        with_records,
    })
}

/// Runs the boot-replay benchmark; Ok(true) when every boot did what it should (a failure
/// is an error).
pub fn run(args: &BootReplayArgs) -> Result<bool> {
    let report = measure(args.records)?;
    print!("{report}");
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(seq: u64, len: usize) -> AuditRecord {
        AuditRecord {
            seq,
            line: "x".repeat(len),
        }
    }

    #[test]
    fn pages_hold_at_most_a_mebibyte_of_lines_in_order() {
        let third = MAX_REPLAY_PAGE_BYTES / 3;
        let records: Vec<_> = (0..7).map(|i| record(i, third)).collect();
        let paged = pages(records);
        let sizes: Vec<usize> = paged.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 1]);
        let seqs: Vec<u64> = paged.iter().flatten().map(|r| r.seq).collect();
        assert_eq!(seqs, (0..7).collect::<Vec<_>>());
        for page in &paged {
            assert!(page.iter().map(|r| r.line.len()).sum::<usize>() <= MAX_REPLAY_PAGE_BYTES);
        }
        assert!(pages(Vec::new()).is_empty());
    }

    #[test]
    fn a_boot_replays_exactly_the_records_made() {
        let report = measure(40).unwrap();
        assert_eq!(report.records, 40);
        assert_eq!(report.with_records.records, 40);
        assert_eq!(report.baseline.records, 0);
        assert_eq!(report.baseline.pages, 0);
        assert_eq!(report.with_records.pages, 1);
        // A first boot's record and the key's creation come before the snapshot.
        assert!(report.snapshot_seq >= 2);
        assert!(report.replay_records_per_sec > 0.0);
        assert!(report.with_records.boot_seconds >= report.with_records.replay_seconds);
        // A decision line holds an entry, its signature and the request's details.
        assert!(
            report.mean_record_bytes > 200.0,
            "{}",
            report.mean_record_bytes
        );
    }

    #[test]
    fn a_boot_refuses_a_record_out_of_place() {
        let (mut stored, _) = generate(3).unwrap();
        let mut log = std::mem::take(&mut stored.records);
        log.swap(0, 1);
        let e = timed_boot(&stored, log).unwrap_err();
        assert!(format!("{e:#}").contains("replaying"), "{e:#}");
    }
}
