//! `strongroom audit …`: the enclave's signed audit chain — verify it from its first boot
//! (from a file or the server) and read what its records say, fetch it, show its signed
//! head.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use rayon::prelude::*;
use serde_json::{Value, json};
use strongroom_attestation::{
    Expectations, MAX_CLOCK_SKEW, TrustedRoot, claimed_timestamp, rfc3339, verify,
};
use strongroom_client::{ProxyRoute, Route};
use strongroom_identity::{
    AttestationCheck, AuditEntry, ChainBreak, ChainReport, ChainVerifier, Checkpoint, MAX_LINE_LEN,
    UserData,
};
use strongroom_log::{Record, RecordError, Summary};

use crate::client::{Api, print_json};
use crate::input::{pcr_file, trusted_root};

/// Lines verified at a time from a file: enough to keep every core busy, few enough that
/// memory stays bounded (about 30 MB of typical entries).
const FILE_CHUNK: usize = 65_536;
/// Entries asked for per request to the server.
const PAGE: usize = 1000;
/// Largest answer accepted for one page: every line at its longest, with its newline.
const MAX_PAGE_BYTES: usize = PAGE * (MAX_LINE_LEN + 1);
/// Largest checkpoint answer.
const MAX_HEAD_BYTES: usize = 4096;
/// How far a boot entry's time and its attestation document's may differ: the enclave
/// asks for the document and writes the entry moments apart.
pub const BOOT_SKEW: Duration = MAX_CLOCK_SKEW;

/// Audit subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the whole chain from its first boot: order, links, every signature, every
    /// boot's attestation (at the document's own time) against the expected PCRs of the
    /// global --expect-pcrs (required here; give every release's file the chain spans: each
    /// boot must carry all the PCRs of one of them) and --attestation-root, and the global
    /// --expect-genesis / --expect-key-check when given (in every mode). Every entry is
    /// also read as its typed record. Prints a JSON report (with `records`: counts by kind,
    /// decisions by outcome, signatures per key, keys created and destroyed, policy changes)
    /// and a summary on standard error; exits 1 naming the first entry where the chain
    /// breaks or whose record this strongroom cannot read.
    Verify {
        /// Read the chain from this NDJSON file (`-`: standard input) instead of fetching
        /// it from the server at --url.
        #[arg(long, value_name = "FILE")]
        from_file: Option<String>,
        /// A checkpoint saved earlier (`strongroom audit head > FILE`): the chain must
        /// reach it and match it, so a chain cut short since is refused. Fetching from the
        /// server, its current head is required by default.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// Accept debug-mode attestation documents (PCR0 all zeros). Never in production.
        #[arg(long)]
        allow_debug: bool,
    },
    /// Save the chain (NDJSON, one entry a line) from the server, from entry SEQ on.
    Fetch {
        /// The first entry to fetch.
        #[arg(long, value_name = "SEQ", default_value_t = 0)]
        from: u64,
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the chain's signed head (a checkpoint: seq, hash, time, identity, signature)
    /// after checking its signature under the identity it names. Save it to check later
    /// with `audit verify --checkpoint`, which ties that identity to an attested boot.
    Head,
}

/// Runs an audit subcommand; `api` is called only by those that talk to the server.
/// `expect_pcrs` and `attestation_root` are the global flags (the images' expected PCRs,
/// one file a release:
/// `nitro-cli build-enclave` output, `{"PCR0": "hex", …}` or the mock's `{"0": "hex", …}`;
/// the root: `aws` or a PEM file).
pub fn run(
    api: impl Fn() -> Result<Api>,
    cmd: AuditCommand,
    expect_pcrs: &[PathBuf],
    attestation_root: Option<&str>,
    pins: Pins,
) -> Result<()> {
    match cmd {
        AuditCommand::Verify {
            from_file,
            checkpoint,
            allow_debug,
        } => {
            if expect_pcrs.is_empty() {
                bail!(
                    "audit verify needs --expect-pcrs FILE: the measurements every boot's \
                     attestation must carry (repeat it for each release the chain spans)"
                );
            }
            let pcrs = expect_pcrs
                .iter()
                .map(|path| read_pcrs(path))
                .collect::<Result<Vec<_>>>()?;
            let root = trusted_root("--attestation-root", attestation_root.unwrap_or("aws"))?;
            let check = boot_check(root.clone(), pcrs, allow_debug, pins);
            let saved = checkpoint.as_deref().map(read_checkpoint).transpose()?;
            let (outcome, source) = match from_file {
                Some(path) => (verify_file(&path, check, saved)?, path),
                None => {
                    let api = api()?;
                    let checkpoint = match saved {
                        Some(c) => c,
                        None => fetch_head(&api, false)?,
                    };
                    let source = api.url(ProxyRoute::AuditStream.path()).to_string();
                    (verify_server(&api, check, checkpoint)?, source)
                }
            };
            match outcome {
                Ok((report, summary)) => {
                    eprint!("{}", summary_text(&report, &summary));
                    print_json(&report_json(&report, &summary, &source, &root))
                }
                Err(refusal) => Err(refusal.into_error()),
            }
        }
        AuditCommand::Fetch { from, out } => fetch(&api()?, from, out.as_deref()),
        AuditCommand::Head => print_json(&fetch_head(&api()?, true)?.to_json()),
    }
}

/// Why `audit verify` refuses a chain: a break of the chain itself, or a verified entry
/// whose record this strongroom cannot read (whichever comes first in the chain).
#[derive(Debug)]
enum Refusal {
    Break(ChainBreak),
    Record {
        seq: u64,
        kind: String,
        error: RecordError,
    },
}

impl Refusal {
    fn into_error(self) -> anyhow::Error {
        match self {
            Refusal::Break(brk) => broken(&brk),
            Refusal::Record { seq, kind, error } => unreadable(seq, &kind, &error),
        }
    }
}

/// The error for a verified entry whose record does not decode.
fn unreadable(seq: u64, kind: &str, error: &RecordError) -> anyhow::Error {
    let kind = kind.escape_default();
    let what = match error {
        RecordError::UnknownKind(_) => format!(
            "unknown record kind {kind} at seq {seq}: this strongroom is older than the \
             enclave that wrote it"
        ),
        RecordError::Decode(detail) => {
            format!("the {kind} record at seq {seq} does not decode: {detail}")
        }
        other => format!("the {kind} record at seq {seq}: {other}"),
    };
    let read = match seq {
        0 => "its signature verified".to_string(),
        1 => "its signature verified; entry 0 read".to_string(),
        n => format!("its signature verified; entries 0 to {} read", n - 1),
    };
    anyhow!("the audit chain holds a record this strongroom cannot read: {what} ({read})")
}

/// A chain verifier that also reads every entry it verified as its typed record and sums
/// up what the records say.
struct Audit<F> {
    verifier: ChainVerifier<F>,
    summary: Summary,
}

impl<F: AttestationCheck> Audit<F> {
    fn new(verifier: ChainVerifier<F>) -> Self {
        Self {
            verifier,
            summary: Summary::new(),
        }
    }

    /// Verifies the next lines, then reads the records of those that verified (decoded in
    /// parallel, added in order). A record that does not decode comes before the chain's
    /// break, if any: it is an earlier entry.
    fn push_lines<S: AsRef<[u8]> + Sync>(&mut self, lines: &[S]) -> Result<(), Refusal> {
        let before = self.verifier.verified();
        let outcome = self.verifier.push_lines(lines);
        // Lines before..after are the entries of those numbers, in order; a line after a
        // gap or a break is not read.
        let after = match &outcome {
            Ok(()) => self.verifier.verified(),
            Err(brk) => brk.verified(),
        };
        let n = usize::try_from(after.saturating_sub(before))
            .unwrap_or(usize::MAX)
            .min(lines.len());
        let records: Vec<Result<(u64, Record), Refusal>> = lines[..n]
            .par_iter()
            .enumerate()
            .map(|(i, line)| read_record(before + i as u64, line.as_ref()))
            .collect();
        for (i, record) in records.into_iter().enumerate() {
            let (time, record) = record?;
            self.summary.add(before + i as u64, time, &record);
        }
        outcome.map_err(Refusal::Break)
    }

    fn finish(self) -> Result<(ChainReport, Summary), Refusal> {
        let report = self.verifier.finish().map_err(Refusal::Break)?;
        Ok((report, self.summary))
    }
}

/// The time and record of the verified entry `seq` on `line`.
fn read_record(seq: u64, line: &[u8]) -> Result<(u64, Record), Refusal> {
    let refuse = |kind: &str, error: RecordError| Refusal::Record {
        seq,
        kind: kind.to_string(),
        error,
    };
    // The verifier has parsed the line already; these cannot fail on a verified entry.
    let text = std::str::from_utf8(line)
        .map_err(|_| refuse("?", RecordError::Decode("not UTF-8".into())))?;
    let entry = AuditEntry::parse_line(text)
        .map_err(|e| refuse("?", RecordError::Decode(e.to_string())))?;
    let header = entry
        .header()
        .map_err(|e| refuse("?", RecordError::Decode(e.to_string())))?;
    let record = Record::from_entry_bytes(&entry.bytes).map_err(|e| refuse(&header.kind, e))?;
    Ok((header.time, record))
}

/// The error for a broken chain: the break, and how far the chain verified.
fn broken(brk: &ChainBreak) -> anyhow::Error {
    let verified = match brk.verified() {
        0 => "nothing before it verified".to_string(),
        1 => "entry 0 verified".to_string(),
        n => format!("entries 0 to {} verified", n - 1),
    };
    anyhow!("the audit chain breaks: {brk} ({verified})")
}

fn read_pcrs(path: &Path) -> Result<BTreeMap<u8, Vec<u8>>> {
    pcr_file("the expected PCRs", path)?
        .into_iter()
        .map(|(i, v)| Ok((u8::try_from(i)?, v)))
        .collect()
}

/// `aws` or a PEM file.
fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the checkpoint {}", path.display()))?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("the checkpoint {} is not JSON", path.display()))?;
    let checkpoint = Checkpoint::from_json(&value)
        .with_context(|| format!("the checkpoint {}", path.display()))?;
    checkpoint
        .verify()
        .with_context(|| format!("the checkpoint {}", path.display()))?;
    Ok(checkpoint)
}

/// The global `--expect-genesis` and `--expect-key-check`: every boot of a verified chain
/// must carry them, whether the chain comes from the server or from a file (a chain of
/// another deployment of the same image verifies otherwise).
#[derive(Clone, Copy, Debug, Default)]
pub struct Pins {
    /// The genesis digest every boot's attestation must carry.
    pub genesis: Option<[u8; 32]>,
    /// The root-key check value every boot's attestation must carry.
    pub key_check: Option<[u8; 16]>,
}

impl Pins {
    /// Refuses user data of another deployment, naming what it carries and what was pinned.
    fn check(&self, user_data: &UserData) -> Result<(), String> {
        if let Some(genesis) = self.genesis.filter(|g| *g != user_data.genesis) {
            return Err(format!(
                "the boot's genesis digest is {}, not {} (--expect-genesis): another \
                 deployment's chain",
                hex::encode(user_data.genesis),
                hex::encode(genesis)
            ));
        }
        if let Some(check) = self.key_check.filter(|c| *c != user_data.key_check) {
            return Err(format!(
                "the boot's root-key check value is {}, not {} (--expect-key-check): another \
                 deployment's chain",
                hex::encode(user_data.key_check),
                hex::encode(check)
            ));
        }
        Ok(())
    }
}

/// The check of a boot entry's attestation document. The document is verified at its
/// own creation time, so a boot from years ago verifies although its certificates have
/// long expired; that time must be within [`BOOT_SKEW`] of the entry's. Then: the chain
/// to `root`, the signature, the PCRs (all those of one of `releases`), the nonce (the
/// entry's `prev`), the deployment `pins`; the user data is returned for the chain
/// verifier to compare with the entry.
pub fn boot_check(
    root: TrustedRoot,
    releases: Vec<BTreeMap<u8, Vec<u8>>>,
    allow_debug: bool,
    pins: Pins,
) -> impl AttestationCheck {
    move |doc: &[u8], nonce: &[u8; 32], time: u64| -> Result<UserData, String> {
        let made = claimed_timestamp(doc).map_err(|e| e.to_string())?;
        let entry_time = UNIX_EPOCH + Duration::from_secs(time);
        let apart = made
            .duration_since(entry_time)
            .or_else(|_| entry_time.duration_since(made))
            .unwrap_or_default();
        if apart > BOOT_SKEW {
            return Err(format!(
                "the document is from {} but the entry from {}, {} s apart (at most {} allowed)",
                rfc3339(made),
                rfc3339(entry_time),
                apart.as_secs(),
                BOOT_SKEW.as_secs()
            ));
        }
        let exp = Expectations::new(made)
            .root(root.clone())
            .nonce(nonce.to_vec())
            .allow_debug(allow_debug)
            .releases(releases.iter().cloned());
        let verified = verify(doc, &exp).map_err(|e| e.to_string())?;
        let user_data = verified
            .document
            .user_data
            .ok_or("the document carries no user data")?;
        let user_data = UserData::decode(&user_data).map_err(|e| e.to_string())?;
        pins.check(&user_data)?;
        Ok(user_data)
    }
}

/// Lines of a reader, a chunk at a time. A line longer than the verifier accepts is cut
/// to its first bytes (the verifier refuses it as too long) and the rest skipped, so no
/// line takes more memory than that.
struct LineChunks<R> {
    reader: R,
    done: bool,
}

impl<R: BufRead> LineChunks<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            done: false,
        }
    }

    fn next_chunk(&mut self, max_lines: usize) -> std::io::Result<Vec<Vec<u8>>> {
        // One byte over the limit marks a line as too long; one more for its newline.
        let cap = MAX_LINE_LEN as u64 + 2;
        let mut chunk = Vec::new();
        while chunk.len() < max_lines && !self.done {
            let mut line = Vec::new();
            let n = (&mut self.reader).take(cap).read_until(b'\n', &mut line)?;
            if n == 0 {
                self.done = true;
                break;
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            } else if n as u64 == cap {
                self.skip_line()?;
            }
            chunk.push(line);
        }
        Ok(chunk)
    }

    fn skip_line(&mut self) -> std::io::Result<()> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                self.done = true;
                return Ok(());
            }
            if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                self.reader.consume(i + 1);
                return Ok(());
            }
            let n = buf.len();
            self.reader.consume(n);
        }
    }
}

/// Verifies the chain in a file (`-`: standard input). A thread reads the next chunk
/// while the current one is verified.
fn verify_file(
    path: &str,
    check: impl AttestationCheck,
    checkpoint: Option<Checkpoint>,
) -> Result<Result<(ChainReport, Summary), Refusal>> {
    let reader: Box<dyn BufRead + Send> = if path == "-" {
        Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let file = File::open(path).with_context(|| format!("opening {path}"))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    let mut verifier = ChainVerifier::new(check);
    if let Some(c) = checkpoint {
        verifier = verifier.expect_checkpoint(c)?;
    }
    let mut audit = Audit::new(verifier);
    let mut lines = LineChunks::new(reader);
    std::thread::scope(|scope| {
        // One chunk read ahead: memory stays at two chunks.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            loop {
                let chunk = lines.next_chunk(FILE_CHUNK);
                let last = !matches!(&chunk, Ok(c) if !c.is_empty());
                // A closed channel means the verifier stopped (the chain broke).
                if tx.send(chunk).is_err() || last {
                    return;
                }
            }
        });
        for chunk in rx {
            let chunk = chunk.with_context(|| format!("reading {path}"))?;
            if chunk.is_empty() {
                break;
            }
            if let Err(refusal) = audit.push_lines(&chunk) {
                return Ok(Err(refusal));
            }
        }
        Ok(audit.finish())
    })
}

/// Verifies the chain the server serves, from entry 0, against `checkpoint`.
fn verify_server(
    api: &Api,
    check: impl AttestationCheck,
    checkpoint: Checkpoint,
) -> Result<Result<(ChainReport, Summary), Refusal>> {
    let mut audit = Audit::new(ChainVerifier::new(check).expect_checkpoint(checkpoint)?);
    let mut outcome = Ok(());
    for_each_page(api, 0, |lines| {
        outcome = audit.push_lines(lines);
        Ok(outcome.is_ok())
    })?;
    Ok(match outcome {
        Err(refusal) => Err(refusal),
        Ok(()) => audit.finish(),
    })
}

/// Fetches the chain from entry `from` on, page by page, handing each page's lines to
/// `page` until it returns false or the server has no more. Returns the lines fetched.
fn for_each_page(
    api: &Api,
    from: u64,
    mut page: impl FnMut(&[&[u8]]) -> Result<bool>,
) -> Result<u64> {
    let mut next = from;
    loop {
        let mut url = api.url(ProxyRoute::AuditStream.path());
        url.query_pairs_mut()
            .append_pair("from", &next.to_string())
            .append_pair("limit", &PAGE.to_string());
        let body = api.get_bytes(&url, MAX_PAGE_BYTES)?;
        let lines = split_lines(&body);
        if lines.is_empty() {
            return Ok(next - from);
        }
        if lines.len() > PAGE {
            bail!(
                "{url}: the server sent {} lines for a page of {PAGE}",
                lines.len()
            );
        }
        // Counted, not read from the entries: the verifier judges what they say.
        next += lines.len() as u64;
        if !page(&lines)? {
            return Ok(next - from);
        }
    }
}

/// The lines of an NDJSON body; a final newline does not make an empty last line.
fn split_lines(body: &[u8]) -> Vec<&[u8]> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == b'\n').collect()
}

/// `GET /v1/audit/head`: the signed checkpoint, its own signature checked. With
/// `as_answer` the answer is also checked as an enclave answer (with `--expect-pcrs`: its
/// identity attested now); `audit verify` does not need that, since it requires the
/// checkpoint's identity to be the attested boot that signed the head entry.
fn fetch_head(api: &Api, as_answer: bool) -> Result<Checkpoint> {
    let url = api.url(&Route::AuditHead.path());
    let value = if as_answer {
        api.get(&Route::AuditHead)?
    } else {
        let body = api.get_bytes(&url, MAX_HEAD_BYTES)?;
        serde_json::from_slice(&body).with_context(|| format!("{url}: the answer is not JSON"))?
    };
    let checkpoint =
        Checkpoint::from_json(&value).with_context(|| format!("{url}: the checkpoint"))?;
    checkpoint
        .verify()
        .with_context(|| format!("{url}: the checkpoint"))?;
    Ok(checkpoint)
}

/// `audit fetch`: the chain from `from` on, as NDJSON, to `out` or standard output.
fn fetch(api: &Api, from: u64, out: Option<&Path>) -> Result<()> {
    let mut file = match out {
        Some(path) => Some(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let count = for_each_page(api, from, |lines| {
        let mut text = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        match &mut file {
            Some(f) => f.write_all(&text).context("writing the chain")?,
            None => {
                let mut stdout = std::io::stdout().lock();
                match stdout.write_all(&text).and_then(|()| stdout.flush()) {
                    // A reader that went away (`… | head`) has what it wanted.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
                    other => other.context("writing the chain")?,
                }
            }
        }
        Ok(true)
    })?;
    if let Some(mut f) = file {
        f.flush().context("writing the chain")?;
    }
    let place = out.map_or("standard output".to_string(), |p| p.display().to_string());
    match count {
        0 => eprintln!("no entries from {from} on"),
        n => eprintln!(
            "fetched {n} entries ({from} to {}) to {place}",
            from + n - 1
        ),
    }
    Ok(())
}

fn utc(secs: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The report printed for a chain that verified.
fn report_json(report: &ChainReport, summary: &Summary, source: &str, root: &TrustedRoot) -> Value {
    let mut out = report.to_json();
    out["records"] = summary.to_json();
    if let Some(boots) = out["boots"].as_array_mut() {
        for boot in boots {
            let time = boot["time"].as_u64().unwrap_or_default();
            boot["time_utc"] = json!(utc(time));
        }
    }
    out["verified"] = json!(true);
    out["source"] = json!(source);
    out["first_time_utc"] = json!(utc(report.first_time));
    out["last_time_utc"] = json!(utc(report.last_time));
    out["attestation_root_sha256"] = json!(hex::encode(root.fingerprint()));
    out["verified_at"] = json!(rfc3339(SystemTime::now()));
    out
}

/// Most keys or policy changes listed one a line in the summary; the JSON report lists all.
const LISTED: usize = 20;

/// What the chain says, for a person: printed on standard error beside the JSON report.
fn summary_text(report: &ChainReport, summary: &Summary) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let short = |hex: &str| match hex.get(..16) {
        Some(start) if hex.len() > 16 => format!("{start}…"),
        _ => hex.to_string(),
    };
    let _ = writeln!(
        out,
        "audit chain verified: {} entries (0 to {}), {} boot(s), {} to {}",
        report.entries,
        report.head_seq,
        report.boots.len(),
        utc(report.first_time),
        utc(report.last_time)
    );
    let kinds: Vec<String> = summary
        .by_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    let _ = writeln!(out, "records: {}", kinds.join(", "));
    let tally = |t: &strongroom_log::Tally| {
        format!(
            "{} allowed, {} denied, {} held",
            t.allowed, t.denied, t.held
        )
    };
    let _ = writeln!(out, "decisions: {}", tally(&summary.decisions));
    if summary
        .by_kind
        .get("request_completed")
        .copied()
        .unwrap_or(0)
        > 0
    {
        let _ = writeln!(
            out,
            "held requests completed: {}",
            tally(&summary.requests_completed)
        );
    }
    let per_key: Vec<String> = summary
        .signatures
        .iter()
        .map(|(key, n)| format!("{n} by key {key}"))
        .collect();
    let _ = writeln!(
        out,
        "signatures: {}{}",
        summary.signatures_total(),
        if per_key.is_empty() {
            String::new()
        } else {
            format!(" ({})", per_key.join(", "))
        }
    );
    let _ = writeln!(
        out,
        "keys: {} created, {} destroyed",
        summary.keys_created.len(),
        summary.keys_destroyed.len()
    );
    let events = summary
        .keys_created
        .iter()
        .map(|k| ("created", k))
        .chain(summary.keys_destroyed.iter().map(|k| ("destroyed", k)));
    for (what, k) in events.clone().take(LISTED) {
        let label = k
            .label
            .as_deref()
            .map_or(String::new(), |l| format!(" {l:?}"));
        let _ = writeln!(
            out,
            "  {what} key {} {}{label} at seq {}",
            k.key, k.address, k.seq
        );
    }
    let more = events.count().saturating_sub(LISTED);
    if more > 0 {
        let _ = writeln!(
            out,
            "  … and {more} more (see `keys_created` and `keys_destroyed` in the report)"
        );
    }
    let _ = writeln!(out, "policy changes: {}", summary.policy_changes.len());
    for p in summary.policy_changes.iter().take(LISTED) {
        let _ = writeln!(
            out,
            "  {} changed by proposal {} at seq {} ({}): policy {}, admins {}",
            p.change,
            p.proposal,
            p.seq,
            utc(p.time),
            short(&p.policy_digest),
            short(&p.admins_digest)
        );
    }
    let more = summary.policy_changes.len().saturating_sub(LISTED);
    if more > 0 {
        let _ = writeln!(
            out,
            "  … and {more} more (see `policy_changes` in the report)"
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn chunks(text: &[u8], size: usize) -> Vec<Vec<Vec<u8>>> {
        let mut r = LineChunks::new(BufReader::new(text));
        let mut all = Vec::new();
        loop {
            let c = r.next_chunk(size).unwrap();
            if c.is_empty() {
                return all;
            }
            all.push(c);
        }
    }

    #[test]
    fn lines_come_in_chunks_and_a_final_newline_adds_none() {
        let got = chunks(b"a\nbb\n\nccc\n", 2);
        assert_eq!(
            got,
            [
                vec![b"a".to_vec(), b"bb".to_vec()],
                vec![b"".to_vec(), b"ccc".to_vec()]
            ]
        );
        assert_eq!(chunks(b"a\nb", 10), [vec![b"a".to_vec(), b"b".to_vec()]]);
        assert!(chunks(b"", 10).is_empty());
    }

    #[test]
    fn an_overlong_line_is_cut_and_the_next_one_read() {
        let mut text = vec![b'x'; MAX_LINE_LEN * 3];
        text.extend_from_slice(b"\nnext\n");
        let got = chunks(&text, 10);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), 2);
        assert_eq!(got[0][0].len(), MAX_LINE_LEN + 2);
        assert_eq!(got[0][1], b"next");
        // Exactly at the limit, it is a line like any other.
        let mut text = vec![b'y'; MAX_LINE_LEN];
        text.push(b'\n');
        assert_eq!(chunks(&text, 10)[0][0].len(), MAX_LINE_LEN);
    }

    #[test]
    fn ndjson_bodies_split_into_lines() {
        assert!(split_lines(b"").is_empty());
        assert!(split_lines(b"\n").is_empty());
        assert_eq!(split_lines(b"a\nb\n"), [b"a".as_slice(), b"b"]);
        assert_eq!(split_lines(b"a\n\nb"), [b"a".as_slice(), b"", b"b"]);
    }

    #[test]
    fn broken_chains_say_how_far_they_verified() {
        let brk = ChainBreak {
            seq: 57,
            line: 58,
            kind: strongroom_identity::BreakKind::Missing { found: 58 },
            found_unsigned: None,
        };
        assert_eq!(
            broken(&brk).to_string(),
            "the audit chain breaks: entry 57 is missing (found 58 where 57 was expected, \
             line 58) (entries 0 to 56 verified)"
        );
    }
}
