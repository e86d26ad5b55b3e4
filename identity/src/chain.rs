//! Verifying the audit chain, as an auditor does: see [`ChainVerifier`].

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::audit::{AuditEntry, BootEntry, Checkpoint, EntryHeader, GENESIS_PREV, MAX_ENTRY_LEN};
use crate::error::IdentityError;
use crate::key::IdentityPublic;
use crate::signers::Signers;
use crate::user_data::UserData;

/// Longest line accepted: the largest entry and its `{"entry":…,"signature":…}` wrapping.
pub const MAX_LINE_LEN: usize = MAX_ENTRY_LEN + 256;
/// Signatures per batch verification. Larger batches cost less per signature (the
/// multi-scalar multiplication amortises) but a failed batch is re-checked one by one.
pub const BATCH: usize = 1024;
/// How many entries after a gap are searched for the entry that was expected there, to
/// tell "out of order" from "missing".
pub const LOOKAHEAD: u64 = 100_000;

/// The entry kind that starts a boot.
const BOOT: &str = "boot";

/// One boot of the enclave as the chain records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRecord {
    /// The boot entry's sequence number; the identity signs from here on.
    pub seq: u64,
    /// The boot entry's time.
    pub time: u64,
    /// The identity this boot introduced.
    pub identity: IdentityPublic,
    /// The replica it is a boot of (`""`: the single enclave).
    pub replica: String,
    /// Whether the entry claims the deployment's first boot (entry 0 only).
    pub first_boot: bool,
    /// The attested user data (root-key check, genesis, admin-set and policy digests).
    pub user_data: UserData,
    /// The last entry this identity signed.
    pub last_seq: u64,
}

impl BootRecord {
    /// The entries from this boot's to the last its identity signed (with replicas, the
    /// other replicas' entries in between too).
    pub fn entries(&self) -> u64 {
        self.last_seq - self.seq + 1
    }
}

/// A chain that verified from entry 0 to its head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries in the chain (the head's sequence number + 1).
    pub entries: u64,
    /// Every boot, in order; the first is entry 0.
    pub boots: Vec<BootRecord>,
    /// The last entry's sequence number.
    pub head_seq: u64,
    /// The last entry's hash.
    pub head_hash: [u8; 32],
    /// Entry 0's time.
    pub first_time: u64,
    /// The last entry's time.
    pub last_time: u64,
    /// The checkpoint the chain matched, if one was expected.
    pub checkpoint: Option<Checkpoint>,
}

impl ChainReport {
    /// The report as JSON: counts, head, times, the deployment's pinned values and each
    /// boot with the range of entries its identity signed.
    pub fn to_json(&self) -> Value {
        let deployment = self.boots.first().map(|b| {
            json!({
                "key_check": hex::encode(b.user_data.key_check),
                "genesis": hex::encode(b.user_data.genesis),
            })
        });
        let boots: Vec<Value> = self
            .boots
            .iter()
            .map(|b| {
                json!({
                    "seq": b.seq,
                    "time": b.time,
                    "identity": b.identity.to_string(),
                    "replica": b.replica,
                    "first_boot": b.first_boot,
                    "admins": hex::encode(b.user_data.admins),
                    "policy": hex::encode(b.user_data.policy),
                    "first_seq": b.seq,
                    "last_seq": b.last_seq,
                    "entries": b.entries(),
                })
            })
            .collect();
        json!({
            "entries": self.entries,
            "head": {"seq": self.head_seq, "hash": hex::encode(self.head_hash)},
            "first_time": self.first_time,
            "last_time": self.last_time,
            "deployment": deployment,
            "boots": boots,
            "checkpoint": self.checkpoint.map(|c| c.to_json()),
        })
    }
}

/// What is wrong where a chain breaks (see [`ChainBreak`] for where).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// The line is not an audit line, or its entry lacks the common fields.
    Malformed(String),
    /// Entry `seq` is not there: entry `found` stands where it was expected, and `seq`
    /// does not come within [`LOOKAHEAD`] entries either.
    Missing {
        /// The sequence number found in its place.
        found: u64,
    },
    /// Entry `seq` appears a second time, where entry `expected` was expected.
    Duplicate {
        /// The sequence number expected at that line.
        expected: u64,
    },
    /// Entry `found` stands where entry `seq` was expected, and `seq` comes `later`
    /// lines after it.
    OutOfOrder {
        /// The sequence number found in `seq`'s place.
        found: u64,
        /// How many lines later entry `seq` comes.
        later: u64,
    },
    /// The entry's signature does not verify under the identity in force: its bytes are
    /// not those the enclave signed.
    Altered {
        /// The identity it should verify under.
        identity: IdentityPublic,
    },
    /// The entry's `prev` is not the previous entry's hash (for entry 0: not zeros).
    PrevMismatch,
    /// Entry 0 is not a boot entry with `first_boot: true`.
    NotFirstBoot,
    /// A boot entry after entry 0 claims the deployment's first boot.
    FirstBootAgain,
    /// A boot entry's `identity`, `attestation` or `first_boot` is missing or unreadable.
    BadBoot(String),
    /// The caller's check refused the boot entry's attestation document.
    AttestationRefused(String),
    /// The boot entry names one identity, its attestation document another.
    IdentityMismatch {
        /// The identity the entry names (and is signed by).
        named: IdentityPublic,
        /// The identity in the attested user data.
        attested: IdentityPublic,
    },
    /// The boot's attested root-key check or genesis differs from the first boot's.
    OtherDeployment {
        /// `genesis` or `key_check`.
        what: &'static str,
    },
    /// The chain ends before the expected checkpoint's entry.
    Truncated {
        /// The checkpoint's sequence number.
        checkpoint: u64,
    },
    /// The entry at the checkpoint's sequence number is not the one the checkpoint names.
    CheckpointMismatch {
        /// This entry's hash.
        found: [u8; 32],
        /// The checkpoint's hash.
        expected: [u8; 32],
    },
    /// The checkpoint is signed by an identity that did not sign its entry.
    CheckpointIdentity {
        /// The checkpoint's signer.
        signed_by: IdentityPublic,
        /// The identity that signed the entry.
        entry_identity: IdentityPublic,
    },
    /// The entry names a signer that is not in force there: no boot of the deployment
    /// introduced it, or a later boot of its replica replaced it.
    SignerNotInForce {
        /// The identity the entry names.
        signer: IdentityPublic,
    },
    /// There are no entries at all.
    Empty,
}

/// The first place where a chain breaks. This is the verifier's finding about the chain
/// (what an audit reports), not a failure of the verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    /// The sequence number the finding names (see [`BreakKind`]); for a malformed line,
    /// the entry that was expected there.
    pub seq: u64,
    /// Line where it shows, counting from 1 over all lines given; for a chain cut short
    /// (`Empty`, `Truncated`) the line after the last.
    pub line: u64,
    /// What is wrong.
    pub kind: BreakKind,
    /// For a sequence-number break (`Missing`, `Duplicate`, `OutOfOrder`): the entry found
    /// at that line does not verify under this identity (the one in force there) either,
    /// so it may be an altered entry rather than a moved one. (Boxed: it is rare, and
    /// keeps the finding small.)
    pub found_unsigned: Option<Box<IdentityPublic>>,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (seq, line) = (self.seq, self.line);
        match &self.kind {
            BreakKind::Malformed(detail) => write!(
                f,
                "line {line} (where entry {seq} was expected) is malformed: {detail}"
            )?,
            BreakKind::Missing { found } => write!(
                f,
                "entry {seq} is missing (found {found} where {seq} was expected, line {line})"
            )?,
            BreakKind::Duplicate { expected } => write!(
                f,
                "entry {seq} appears twice (again at line {line}, where {expected} was expected)"
            )?,
            BreakKind::OutOfOrder { found, later } => write!(
                f,
                "entries out of order at {seq}: entry {found} stands where {seq} was \
                 expected (line {line}), and {seq} comes {later} line(s) later"
            )?,
            BreakKind::Altered { identity } => write!(
                f,
                "entry {seq} was altered: its signature does not verify under identity \
                 {identity} (line {line})"
            )?,
            BreakKind::PrevMismatch if seq == 0 => write!(
                f,
                "entry 0 does not start the chain: its prev is not zeros (line {line})"
            )?,
            BreakKind::PrevMismatch => write!(
                f,
                "entry {seq} does not follow entry {} (prev hash differs, line {line})",
                seq - 1
            )?,
            BreakKind::NotFirstBoot => {
                write!(f, "entry 0 is not a first boot (line {line})")?;
            }
            BreakKind::FirstBootAgain => write!(
                f,
                "boot entry {seq} claims the deployment's first boot, after entry 0 \
                 (line {line})"
            )?,
            BreakKind::BadBoot(detail) => {
                write!(f, "boot entry {seq} is malformed: {detail} (line {line})")?;
            }
            BreakKind::AttestationRefused(detail) => {
                write!(f, "boot entry {seq}: attestation refused: {detail}")?;
            }
            BreakKind::IdentityMismatch { named, attested } => write!(
                f,
                "boot entry {seq} names identity {named} but its attestation carries {attested}"
            )?,
            BreakKind::OtherDeployment { what } => write!(
                f,
                "boot entry {seq}: another deployment ({what} differs from the first boot's)"
            )?,
            BreakKind::Truncated { checkpoint } if seq == 0 => write!(
                f,
                "the chain is empty but the checkpoint names entry {checkpoint} (truncated)"
            )?,
            BreakKind::Truncated { checkpoint } => write!(
                f,
                "the chain ends at entry {} but the checkpoint names entry {checkpoint}: \
                 entries {seq}..={checkpoint} are missing (truncated)",
                seq - 1
            )?,
            BreakKind::CheckpointMismatch { found, expected } => write!(
                f,
                "entry {seq} is not the one the checkpoint names: its hash is {}, the \
                 checkpoint's {} (line {line})",
                hex::encode(found),
                hex::encode(expected)
            )?,
            BreakKind::CheckpointIdentity {
                signed_by,
                entry_identity,
            } => write!(
                f,
                "the checkpoint for entry {seq} is signed by identity {signed_by}, but \
                 entry {seq} was signed by {entry_identity}"
            )?,
            BreakKind::SignerNotInForce { signer } => write!(
                f,
                "entry {seq} names signer {signer}, which is not in force there: no boot of \
                 this deployment introduced it, or a later boot of its replica replaced it \
                 (line {line})"
            )?,
            BreakKind::Empty => write!(f, "the chain is empty: entry 0 is missing")?,
        }
        if let Some(identity) = &self.found_unsigned {
            write!(
                f,
                "; the entry found there does not verify under identity {identity} either"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ChainBreak {}

impl ChainBreak {
    fn new(seq: u64, line: u64, kind: BreakKind) -> Self {
        Self {
            seq,
            line,
            kind,
            found_unsigned: None,
        }
    }

    /// Entries `0..verified()` verified before the break: all before the one expected
    /// where it shows.
    pub fn verified(&self) -> u64 {
        match self.kind {
            BreakKind::Duplicate { expected } => expected,
            _ => self.seq,
        }
    }

    /// The finding as JSON: `{"seq", "line", "verified", "message"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "seq": self.seq,
            "line": self.line,
            "verified": self.verified(),
            "message": self.to_string(),
        })
    }
}

/// A boot entry's own fields, read and checked in the parallel pass.
struct BootFields {
    identity: IdentityPublic,
    replica: String,
    key: VerifyingKey,
    first_boot: bool,
    /// The caller's verdict on the attestation document.
    attested: Result<UserData, String>,
}

/// One line, parsed and hashed.
struct Parsed {
    header: EntryHeader,
    hash: [u8; 32],
    signature: [u8; 64],
    /// For boot entries: their fields, or why they cannot be read.
    boot: Option<Result<BootFields, String>>,
}

/// A signature to check: the entry's position in the chunk, its hash and the key.
struct SigJob {
    hash: [u8; 32],
    signature: Signature,
    key: VerifyingKey,
}

/// Where the walk over a chunk stopped before its end, and why.
struct Candidate {
    /// Position in the chunk.
    pos: usize,
    kind: BreakKind,
    /// The finding names this sequence number.
    seq: u64,
    /// Whether a bad signature at the same entry says more (the entry was altered) than
    /// this finding: true for findings about the entry's content, false for findings
    /// about where it stands.
    signature_first: bool,
}

/// A gap found (entry `found` where `expected` was expected); whether `expected` comes
/// later decides between "missing" and "out of order".
struct Gap {
    brk: ChainBreak,
    expected: u64,
    scanned: u64,
}

/// The caller's check of a boot entry's attestation document: given the document bytes,
/// the nonce it must carry (the entry's `prev`) and the entry's time, it verifies the
/// document (certificate chain, signature, PCRs, nonce, time) and returns the attested
/// user data, or why the document is refused.
pub trait AttestationCheck: Fn(&[u8], &[u8; 32], u64) -> Result<UserData, String> + Sync {}

impl<F: Fn(&[u8], &[u8; 32], u64) -> Result<UserData, String> + Sync> AttestationCheck for F {}

/// Verifies the audit chain: it takes the chain's lines in stored order, a chunk at a
/// time, and either reports the whole chain ([`ChainReport`]) or stops at the FIRST place where it
/// breaks ([`ChainBreak`]), naming the sequence number and what is wrong there.
///
/// What a valid chain is:
/// - entries numbered 0, 1, 2… in order, none missing or repeated, each entry's `prev`
///   the previous entry's hash (zeros for entry 0);
/// - entry 0 is a `boot` entry with `first_boot: true`; no later boot entry claims one;
/// - every boot entry names a new identity and carries an attestation document whose
///   nonce is the entry's `prev` and whose user data names that same identity (the
///   caller's check, [`ChainVerifier::new`], verifies the document itself); its
///   `key_check` and `genesis` are those of the first boot (a change means another
///   deployment took over);
/// - every entry is signed by the identity of the boot entry at or before it (a boot
///   entry by the identity it introduces);
/// - if a checkpoint is expected: the chain reaches its entry, that entry's hash is the
///   checkpoint's, and the identity that signed the checkpoint signed that entry.
///
/// Speed: lines are parsed and hashed in parallel (rayon), signatures are checked in
/// batches of [`BATCH`] (ed25519-dalek's batch verification, in parallel); a batch that
/// fails is checked entry by entry to find the first bad one. Only the current chunk's
/// parsed entries are held, so memory is bounded by the chunk size the caller chooses.
///
/// Batch verification accepts the same signatures as strict verification
/// ([`IdentityPublic::verify`]) for every signature made without the identity's secret
/// key; it could differ only on signatures the key's holder (the enclave) deliberately
/// made with a small-order `R`. Identity keys of small order are refused outright.
pub struct ChainVerifier<F> {
    check: F,
    checkpoint: Option<Checkpoint>,
    /// Lines consumed so far.
    lines: u64,
    /// The next sequence number expected.
    next_seq: u64,
    /// The last accepted entry's hash.
    prev: [u8; 32],
    /// The identities in force, by replica.
    signers: Signers,
    /// Their keys and the index of the boot that introduced each.
    keys: HashMap<[u8; 32], (VerifyingKey, usize)>,
    boots: Vec<BootRecord>,
    first_time: u64,
    last_time: u64,
    gap: Option<Gap>,
    broken: Option<ChainBreak>,
}

impl<F> fmt::Debug for ChainVerifier<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("lines", &self.lines)
            .field("next_seq", &self.next_seq)
            .field("boots", &self.boots.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<F: AttestationCheck> ChainVerifier<F> {
    /// A verifier that checks each boot entry's attestation document with `check`.
    pub fn new(check: F) -> Self {
        Self {
            check,
            checkpoint: None,
            lines: 0,
            next_seq: 0,
            prev: GENESIS_PREV,
            signers: Signers::default(),
            keys: HashMap::new(),
            boots: Vec::new(),
            first_time: 0,
            last_time: 0,
            gap: None,
            broken: None,
        }
    }

    /// Also requires the chain to reach `checkpoint` and match it (detects a chain cut
    /// short since the checkpoint was taken). Its signature is checked here.
    pub fn expect_checkpoint(mut self, checkpoint: Checkpoint) -> Result<Self, IdentityError> {
        checkpoint.verify()?;
        self.checkpoint = Some(checkpoint);
        Ok(self)
    }

    /// Entries verified so far.
    pub fn verified(&self) -> u64 {
        self.next_seq
    }

    /// Verifies the next lines of the chain (each one line without its newline). Returns
    /// the first break as soon as it is certain; after that every call returns it again.
    pub fn push_lines<S: AsRef<[u8]> + Sync>(&mut self, lines: &[S]) -> Result<(), ChainBreak> {
        if let Some(brk) = &self.broken {
            return Err(brk.clone());
        }
        let first_line = self.lines + 1;
        self.lines += lines.len() as u64;
        let outcome = if self.gap.is_some() {
            self.scan_gap(first_line, lines)
        } else {
            self.verify_chunk(first_line, lines)
        };
        if let Err(brk) = &outcome {
            self.broken = Some(brk.clone());
        }
        outcome
    }

    /// Ends the chain: the report, or the first break (including a gap whose entry never
    /// came, and a chain that ends before the expected checkpoint).
    pub fn finish(mut self) -> Result<ChainReport, ChainBreak> {
        if let Some(brk) = self.broken.take() {
            return Err(brk);
        }
        if let Some(gap) = self.gap.take() {
            return Err(gap.brk);
        }
        let end_line = self.lines + 1;
        if let Some(cp) = &self.checkpoint
            && cp.seq >= self.next_seq
        {
            return Err(ChainBreak::new(
                self.next_seq,
                end_line,
                BreakKind::Truncated { checkpoint: cp.seq },
            ));
        }
        if self.next_seq == 0 {
            return Err(ChainBreak::new(0, end_line, BreakKind::Empty));
        }
        Ok(ChainReport {
            entries: self.next_seq,
            boots: self.boots,
            head_seq: self.next_seq - 1,
            head_hash: self.prev,
            first_time: self.first_time,
            last_time: self.last_time,
            checkpoint: self.checkpoint,
        })
    }

    /// Looks for the entry a gap skipped among the next lines (headers only).
    fn scan_gap<S: AsRef<[u8]> + Sync>(
        &mut self,
        first_line: u64,
        lines: &[S],
    ) -> Result<(), ChainBreak> {
        let Some(gap) = self.gap.as_mut() else {
            return Ok(());
        };
        let budget = usize::try_from(LOOKAHEAD.saturating_sub(gap.scanned)).unwrap_or(usize::MAX);
        let window = &lines[..lines.len().min(budget)];
        let expected = gap.expected;
        let found = window
            .par_iter()
            .position_first(|line| header_seq(line.as_ref()) == Some(expected));
        match found {
            Some(i) => {
                let mut brk = gap.brk.clone();
                if let BreakKind::Missing { found } = brk.kind {
                    brk.kind = BreakKind::OutOfOrder {
                        found,
                        later: first_line + i as u64 - brk.line,
                    };
                }
                self.gap = None;
                Err(brk)
            }
            None => {
                gap.scanned += window.len() as u64;
                if gap.scanned >= LOOKAHEAD {
                    let brk = gap.brk.clone();
                    self.gap = None;
                    return Err(brk);
                }
                Ok(())
            }
        }
    }

    fn verify_chunk<S: AsRef<[u8]> + Sync>(
        &mut self,
        first_line: u64,
        lines: &[S],
    ) -> Result<(), ChainBreak> {
        let check = &self.check;
        let parsed: Vec<Result<Parsed, String>> = lines
            .par_iter()
            .map(|line| parse(line.as_ref(), check))
            .collect();

        let mut jobs: Vec<SigJob> = Vec::with_capacity(parsed.len());
        let candidate = self.walk(&parsed, &mut jobs);

        let bad = first_bad_signature(&jobs);
        let line_of = |pos: usize| first_line + pos as u64;
        // Entries before the first bad signature or candidate were all accepted, so the
        // expected sequence number at position p is the chunk's first plus p.
        let chunk_seq = self.next_seq_at_chunk_start(&parsed, candidate.as_ref());
        if let Some(q) = bad {
            let job = &jobs[q];
            let identity = IdentityPublic(job.key.to_bytes());
            match &candidate {
                Some(c) if c.pos == q && !c.signature_first => {
                    let mut brk = ChainBreak::new(c.seq, line_of(c.pos), c.kind.clone());
                    brk.found_unsigned = Some(Box::new(identity));
                    return self.settle(brk, c, &parsed);
                }
                _ => {
                    let seq = chunk_seq + q as u64;
                    return Err(ChainBreak::new(
                        seq,
                        line_of(q),
                        BreakKind::Altered { identity },
                    ));
                }
            }
        }
        match candidate {
            None => Ok(()),
            Some(c) => {
                let brk = ChainBreak::new(c.seq, line_of(c.pos), c.kind.clone());
                self.settle(brk, &c, &parsed)
            }
        }
    }

    /// The sequence number expected at the chunk's first line, recovered after the walk
    /// (which advanced `next_seq` over every accepted entry).
    fn next_seq_at_chunk_start(
        &self,
        parsed: &[Result<Parsed, String>],
        c: Option<&Candidate>,
    ) -> u64 {
        let accepted = c.map_or(parsed.len(), |c| c.pos) as u64;
        self.next_seq - accepted
    }

    /// A candidate break with no earlier bad signature: final, except a gap, whose kind
    /// depends on whether the skipped entry comes later.
    fn settle(
        &mut self,
        brk: ChainBreak,
        c: &Candidate,
        parsed: &[Result<Parsed, String>],
    ) -> Result<(), ChainBreak> {
        let BreakKind::Missing { found } = c.kind else {
            return Err(brk);
        };
        let expected = c.seq;
        let rest = &parsed[c.pos + 1..];
        let window = &rest[..rest
            .len()
            .min(usize::try_from(LOOKAHEAD).unwrap_or(usize::MAX))];
        if let Some(i) = window
            .iter()
            .position(|p| matches!(p, Ok(p) if p.header.seq == expected))
        {
            let mut brk = brk;
            brk.kind = BreakKind::OutOfOrder {
                found,
                later: i as u64 + 1,
            };
            return Err(brk);
        }
        if window.len() as u64 >= LOOKAHEAD {
            return Err(brk);
        }
        // The entry may come in the next lines: decided there or at the end.
        self.gap = Some(Gap {
            brk,
            expected,
            scanned: window.len() as u64,
        });
        Ok(())
    }

    /// Walks the parsed chunk in order, accepting entries and collecting their signature
    /// checks, up to the first entry that breaks the chain (whose signature is collected
    /// too when it has a key, to tell an altered entry from a misplaced one).
    fn walk(
        &mut self,
        parsed: &[Result<Parsed, String>],
        jobs: &mut Vec<SigJob>,
    ) -> Option<Candidate> {
        for (pos, item) in parsed.iter().enumerate() {
            let expected = self.next_seq;
            let stop = |kind: BreakKind, seq: u64, signature_first: bool| {
                Some(Candidate {
                    pos,
                    kind,
                    seq,
                    signature_first,
                })
            };
            let p = match item {
                Ok(p) => p,
                Err(detail) => return stop(BreakKind::Malformed(detail.clone()), expected, true),
            };
            let boot = match &p.boot {
                None => Ok(None),
                Some(Ok(b)) => Ok(Some(b)),
                Some(Err(detail)) => Err(detail),
            };
            // A boot entry is signed by the identity it introduces, others by the signer
            // they name, which must be in force.
            let key = match boot {
                Ok(Some(b)) => Some(b.key),
                Ok(None) => self.signer_key(p.header.signer),
                Err(_) => None,
            };
            if p.header.seq != expected {
                if let Some(key) = key.or_else(|| self.signer_key(None)) {
                    jobs.push(SigJob::new(p, key));
                }
                let (kind, seq) = if p.header.seq < expected {
                    (BreakKind::Duplicate { expected }, p.header.seq)
                } else {
                    (
                        BreakKind::Missing {
                            found: p.header.seq,
                        },
                        expected,
                    )
                };
                return stop(kind, seq, false);
            }
            let boot = match boot {
                Ok(boot) => boot,
                Err(detail) => return stop(BreakKind::BadBoot(detail.clone()), expected, true),
            };
            let Some(key) = key else {
                return match p.header.signer {
                    Some(signer) if !self.signers.is_empty() => stop(
                        BreakKind::SignerNotInForce {
                            signer: IdentityPublic(signer),
                        },
                        expected,
                        true,
                    ),
                    _ => stop(BreakKind::NotFirstBoot, expected, true),
                };
            };
            jobs.push(SigJob::new(p, key));
            match self.content_break(p, boot, &key) {
                Err(kind) => return stop(kind, expected, true),
                Ok(attested) => self.accept(p, boot.zip(attested), key),
            }
        }
        None
    }

    /// What is wrong with an entry in its right place, other than its signature; for a
    /// boot entry that is right, its attested user data.
    fn content_break(
        &self,
        p: &Parsed,
        boot: Option<&BootFields>,
        key: &VerifyingKey,
    ) -> Result<Option<UserData>, BreakKind> {
        let seq = p.header.seq;
        if seq == 0 && !boot.is_some_and(|b| b.first_boot) {
            return Err(BreakKind::NotFirstBoot);
        }
        if p.header.prev != self.prev {
            return Err(BreakKind::PrevMismatch);
        }
        let attested = match boot {
            None => None,
            Some(b) => {
                if seq > 0 && b.first_boot {
                    return Err(BreakKind::FirstBootAgain);
                }
                if p.header.signer.is_some_and(|s| s != b.identity.0) {
                    return Err(BreakKind::BadBoot(
                        "it names a signer other than the identity it introduces".into(),
                    ));
                }
                if self.keys.contains_key(&b.identity.0) {
                    return Err(BreakKind::BadBoot(format!(
                        "its identity {} is already in force",
                        b.identity
                    )));
                }
                let attested = b.attested.clone().map_err(BreakKind::AttestationRefused)?;
                if attested.replica.as_str() != b.replica {
                    return Err(BreakKind::BadBoot(format!(
                        "it names replica {:?}, its attestation {:?}",
                        b.replica,
                        attested.replica.as_str()
                    )));
                }
                if attested.identity != b.identity {
                    return Err(BreakKind::IdentityMismatch {
                        named: b.identity,
                        attested: attested.identity,
                    });
                }
                if let Some(first) = self.boots.first() {
                    if attested.key_check != first.user_data.key_check {
                        return Err(BreakKind::OtherDeployment { what: "key_check" });
                    }
                    if attested.genesis != first.user_data.genesis {
                        return Err(BreakKind::OtherDeployment { what: "genesis" });
                    }
                }
                Some(attested)
            }
        };
        if let Some(cp) = &self.checkpoint
            && cp.seq == seq
        {
            if cp.hash != p.hash {
                return Err(BreakKind::CheckpointMismatch {
                    found: p.hash,
                    expected: cp.hash,
                });
            }
            let entry_identity = IdentityPublic(key.to_bytes());
            if cp.identity != entry_identity {
                return Err(BreakKind::CheckpointIdentity {
                    signed_by: cp.identity,
                    entry_identity,
                });
            }
        }
        Ok(attested)
    }

    fn accept(&mut self, p: &Parsed, boot: Option<(&BootFields, UserData)>, key: VerifyingKey) {
        let seq = p.header.seq;
        if seq == 0 {
            self.first_time = p.header.time;
        }
        self.last_time = p.header.time;
        self.prev = p.hash;
        self.next_seq = seq + 1;
        match boot {
            Some((b, user_data)) => {
                self.boots.push(BootRecord {
                    seq,
                    time: p.header.time,
                    identity: b.identity,
                    replica: b.replica.clone(),
                    first_boot: b.first_boot,
                    user_data,
                    last_seq: seq,
                });
                if let Some(old) = self.signers.boot(&b.replica, b.identity.0, seq) {
                    self.keys.remove(&old.identity);
                }
                self.keys
                    .insert(b.identity.0, (key, self.boots.len().saturating_sub(1)));
            }
            None => {
                let identity = key.to_bytes();
                self.signers.signed(&identity, seq);
                if let Some(boot) = self
                    .keys
                    .get(&identity)
                    .and_then(|(_, i)| self.boots.get_mut(*i))
                {
                    boot.last_seq = seq;
                }
            }
        }
    }

    /// The key of the signer an entry names, if in force; for an entry that names none,
    /// the latest boot's.
    fn signer_key(&self, signer: Option<[u8; 32]>) -> Option<VerifyingKey> {
        let identity = match signer {
            Some(s) => s,
            None => self.signers.latest()?.identity,
        };
        self.keys.get(&identity).map(|(key, _)| *key)
    }
}

impl SigJob {
    fn new(p: &Parsed, key: VerifyingKey) -> Self {
        Self {
            hash: p.hash,
            signature: Signature::from_bytes(&p.signature),
            key,
        }
    }
}

/// The position of the first job whose signature does not verify: batches in parallel,
/// a failed batch entry by entry (strict verification, as [`IdentityPublic::verify`]).
fn first_bad_signature(jobs: &[SigJob]) -> Option<usize> {
    jobs.par_chunks(BATCH)
        .enumerate()
        .find_map_first(|(b, chunk)| {
            let messages: Vec<&[u8]> = chunk.iter().map(|j| j.hash.as_slice()).collect();
            let signatures: Vec<Signature> = chunk.iter().map(|j| j.signature).collect();
            let keys: Vec<VerifyingKey> = chunk.iter().map(|j| j.key).collect();
            if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
                return None;
            }
            chunk
                .iter()
                .position(|j| j.key.verify_strict(&j.hash, &j.signature).is_err())
                .map(|i| b * BATCH + i)
        })
}

/// The `seq` of a line, if it reads as an audit line at all (for the gap search).
fn header_seq(line: &[u8]) -> Option<u64> {
    if line.len() > MAX_LINE_LEN {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    AuditEntry::parse_line(text)
        .ok()?
        .header()
        .ok()
        .map(|h| h.seq)
}

/// Parses and hashes one line, and for a boot entry reads its fields and runs the
/// caller's attestation check.
fn parse<F: AttestationCheck>(line: &[u8], check: &F) -> Result<Parsed, String> {
    if line.len() > MAX_LINE_LEN {
        return Err(format!("longer than the {MAX_LINE_LEN} bytes allowed"));
    }
    if line.is_empty() {
        return Err("empty line".into());
    }
    let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string())?;
    let entry = AuditEntry::parse_line(text).map_err(|e| e.to_string())?;
    let header = entry.header().map_err(|e| e.to_string())?;
    let boot = (header.kind == BOOT).then(|| boot_fields(&entry, &header, check));
    Ok(Parsed {
        hash: entry.hash(),
        signature: entry.signature,
        header,
        boot,
    })
}

fn boot_fields<F: AttestationCheck>(
    entry: &AuditEntry,
    header: &EntryHeader,
    check: &F,
) -> Result<BootFields, String> {
    let boot: BootEntry = serde_json::from_slice(&entry.bytes).map_err(|e| e.to_string())?;
    let identity = IdentityPublic::from_hex(&boot.identity).map_err(|e| e.to_string())?;
    let key = identity.verifying_key().map_err(|e| e.to_string())?;
    if key.is_weak() {
        return Err(format!("identity {identity} is a small-order point"));
    }
    let first_boot = boot.first_boot;
    let document = base64::engine::general_purpose::STANDARD
        .decode(&boot.attestation)
        .map_err(|_| "attestation is not base64".to_string())?;
    let attested = check(&document, &header.prev, header.time);
    if !crate::signers::valid_replica_name(&boot.replica) {
        return Err(format!("replica name {:?} is not one", boot.replica));
    }
    Ok(BootFields {
        identity,
        replica: boot.replica,
        key,
        first_boot,
        attested,
    })
}

/// Verifies a whole chain held in memory (`lines` in stored order).
pub fn verify_chain<S: AsRef<[u8]> + Sync, F: AttestationCheck>(
    lines: &[S],
    check: F,
) -> Result<ChainReport, ChainBreak> {
    let mut verifier = ChainVerifier::new(check);
    verifier.push_lines(lines)?;
    verifier.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use proptest::prelude::*;
    use serde_json::Map;
    use strongroom_attestation::mock::{MockNsm, MockNsmConfig};
    use strongroom_attestation::{AttestationRequest, Expectations, TrustedRoot, verify};

    use super::*;
    use crate::IdentityKey;

    const DAY: u64 = 24 * 3600;

    /// Mock NSMs sharing one root: one with the expected PCRs, one with others.
    struct World {
        nsm: MockNsm,
        other_pcrs: MockNsm,
        root: TrustedRoot,
        pcrs: BTreeMap<u16, Vec<u8>>,
        /// `other_pcrs`' PCRs: another release of the image (PCR2 differs).
        next_pcrs: BTreeMap<u16, Vec<u8>>,
        /// First boot's time: two days ahead, so the mock makes intermediates valid then.
        t0: u64,
    }

    fn world() -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(|| {
            let dir = std::env::temp_dir().join(format!(
                "strongroom-chain-test-{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            let config = MockNsmConfig::default();
            let mut other = config.clone();
            other.pcrs.insert(2, vec![0xee; 48]);
            let nsm = MockNsm::open_or_create(&dir, config.clone()).unwrap();
            let other_pcrs = MockNsm::open_or_create(&dir, other.clone()).unwrap();
            let root = TrustedRoot::from_pem(&nsm.root_pem().unwrap()).unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            World {
                nsm,
                other_pcrs,
                root,
                pcrs: config.pcrs,
                next_pcrs: other.pcrs.clone(),
                t0: now + 2 * DAY,
            }
        })
    }

    /// The auditor's check: the document verified at the entry's time (the mock makes
    /// it at exactly that time) against the mock root, the PCRs and the nonce. Verdicts
    /// are remembered by their exact inputs, as the property tests verify the same boots
    /// many times over.
    fn check(doc: &[u8], nonce: &[u8; 32], time: u64) -> Result<UserData, String> {
        type Verdicts = HashMap<(Vec<u8>, [u8; 32], u64), Result<UserData, String>>;
        static VERDICTS: OnceLock<Mutex<Verdicts>> = OnceLock::new();
        let verdicts = VERDICTS.get_or_init(Mutex::default);
        let key = (doc.to_vec(), *nonce, time);
        if let Some(v) = verdicts.lock().unwrap().get(&key) {
            return v.clone();
        }
        let verdict = check_uncached(doc, nonce, time);
        verdicts.lock().unwrap().insert(key, verdict.clone());
        verdict
    }

    fn check_uncached(doc: &[u8], nonce: &[u8; 32], time: u64) -> Result<UserData, String> {
        let w = world();
        let mut exp = Expectations::new(UNIX_EPOCH + Duration::from_secs(time))
            .root(w.root.clone())
            .nonce(nonce.to_vec());
        for (i, v) in &w.pcrs {
            exp = exp.pcr(u8::try_from(*i).unwrap(), v.clone());
        }
        let verified = verify(doc, &exp).map_err(|e| e.to_string())?;
        let user_data = verified.document.user_data.ok_or("no user data")?;
        UserData::decode(&user_data).map_err(|e| e.to_string())
    }

    fn user_data(identity: IdentityPublic) -> UserData {
        UserData {
            key_check: [1; 16],
            genesis: [2; 32],
            admins: [3; 32],
            policy: [4; 32],
            identity,
            boot_seq: 0,
            replica: crate::ReplicaName::SINGLE,
        }
    }

    /// What a test changes in a boot entry or its document.
    #[derive(Default)]
    struct Boot {
        nonce: Option<[u8; 32]>,
        attested: Option<UserData>,
        other_pcrs: bool,
        first_boot: Option<bool>,
        replica: Option<&'static str>,
    }

    /// A chain built as the enclave builds it.
    struct Builder {
        keys: Vec<IdentityKey>,
        lines: Vec<String>,
        seq: u64,
        prev: [u8; 32],
        time: u64,
    }

    fn fields(v: Value) -> Map<String, Value> {
        let Value::Object(m) = v else { unreachable!() };
        m
    }

    impl Builder {
        fn new() -> Self {
            Self {
                keys: Vec::new(),
                lines: Vec::new(),
                seq: 0,
                prev: GENESIS_PREV,
                time: world().t0,
            }
        }

        fn key(&self) -> &IdentityKey {
            self.keys.last().unwrap()
        }

        fn push(&mut self, kind: &str, f: Map<String, Value>) {
            self.push_by(self.keys.len() - 1, kind, f);
        }

        /// An entry signed by the identity of boot `by` (counting from 0).
        fn push_by(&mut self, by: usize, kind: &str, f: Map<String, Value>) {
            let (entry, hash) =
                AuditEntry::build(&self.keys[by], self.seq, &self.prev, self.time, kind, f)
                    .unwrap();
            self.lines.push(entry.to_line());
            self.seq += 1;
            self.prev = hash;
        }

        /// A boot, three days after the previous one (fresh mock intermediates).
        fn boot(&mut self, seed: u8, tweak: Boot) -> &mut Self {
            let w = world();
            if self.seq > 0 {
                self.time = w.t0 + 3 * DAY * self.keys.len() as u64;
            }
            let key = IdentityKey::from_seed(&[seed; 32]);
            let mut attested = tweak.attested.unwrap_or(user_data(key.public()));
            if let Some(name) = tweak.replica {
                attested.replica = crate::ReplicaName::new(name).unwrap();
            }
            let nsm = if tweak.other_pcrs {
                &w.other_pcrs
            } else {
                &w.nsm
            };
            let request = AttestationRequest {
                user_data: Some(attested.encode()),
                nonce: Some(tweak.nonce.unwrap_or(self.prev).to_vec()),
                public_key: None,
            };
            let doc = nsm
                .attestation_at(&request, UNIX_EPOCH + Duration::from_secs(self.time))
                .unwrap();
            self.keys.push(key);
            let mut f = fields(json!({
                "identity": self.key().public().to_string(),
                "attestation": base64::engine::general_purpose::STANDARD.encode(doc),
                "first_boot": tweak.first_boot.unwrap_or(self.seq == 0),
            }));
            if let Some(replica) = tweak.replica {
                f.insert("replica".into(), replica.into());
            }
            self.push(BOOT, f);
            self
        }

        /// `n` decisions a minute apart, signed by the identity of boot `by`.
        fn decisions_by(&mut self, by: usize, n: u64) -> &mut Self {
            for _ in 0..n {
                self.time += 60;
                let f = decision(self.seq);
                self.push_by(by, "decision", f);
            }
            self
        }

        /// `n` decisions a minute apart.
        fn decisions(&mut self, n: u64) -> &mut Self {
            for _ in 0..n {
                self.time += 60;
                let f = decision(self.seq);
                self.push("decision", f);
            }
            self
        }

        fn checkpoint(&self) -> Checkpoint {
            Checkpoint::sign(self.key(), self.seq - 1, self.prev, self.time + 1)
        }
    }

    fn decision(seq: u64) -> Map<String, Value> {
        fields(json!({
            "request": hex::encode([seq as u8; 32]),
            "principal": "desk",
            "action": "sign_transaction",
            "key": "k1",
            "intent": {"kind": "transaction", "chain_id": 1, "to": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "value": "0x1"},
            "result": "allowed",
            "rule": "dev-transactions",
            "reason": "within limits",
        }))
    }

    /// The standard chain: boots at 0, 40 and 80, 120 entries.
    fn standard() -> &'static (Vec<String>, Checkpoint, Vec<IdentityPublic>) {
        static CHAIN: OnceLock<(Vec<String>, Checkpoint, Vec<IdentityPublic>)> = OnceLock::new();
        CHAIN.get_or_init(|| {
            let mut b = Builder::new();
            b.boot(1, Boot::default()).decisions(39);
            b.boot(2, Boot::default()).decisions(39);
            b.boot(3, Boot::default()).decisions(39);
            let ids = b.keys.iter().map(IdentityKey::public).collect();
            (b.lines.clone(), b.checkpoint(), ids)
        })
    }

    fn lines() -> Vec<String> {
        standard().0.clone()
    }

    fn id(i: usize) -> IdentityPublic {
        standard().2[i]
    }

    fn run(lines: &[String]) -> Result<ChainReport, ChainBreak> {
        verify_chain(lines, check)
    }

    fn run_with_checkpoint(lines: &[String], cp: Checkpoint) -> Result<ChainReport, ChainBreak> {
        let mut v = ChainVerifier::new(check).expect_checkpoint(cp).unwrap();
        v.push_lines(lines)?;
        v.finish()
    }

    fn broken(lines: &[String]) -> ChainBreak {
        run(lines).unwrap_err()
    }

    fn replica(name: &'static str) -> Boot {
        Boot {
            replica: Some(name),
            ..Boot::default()
        }
    }

    #[test]
    fn replicas_interleave_and_a_replaced_identity_is_refused() {
        let mut b = Builder::new();
        b.boot(1, replica("a")).boot(2, replica("b"));
        b.decisions_by(0, 2).decisions_by(1, 3).decisions_by(0, 1);
        let report = run(&b.lines).unwrap();
        let boots: Vec<_> = report
            .boots
            .iter()
            .map(|x| (x.replica.as_str(), x.seq, x.last_seq))
            .collect();
        assert_eq!(boots, [("a", 0, 7), ("b", 1, 6)]);
        assert_eq!(report.to_json()["boots"][1]["replica"], "b");
        // Replica a boots again: b still signs, a's first identity no longer does.
        b.boot(3, replica("a"))
            .decisions_by(1, 1)
            .decisions_by(2, 1);
        assert!(run(&b.lines).is_ok());
        let at = b.seq;
        b.decisions_by(0, 1);
        let brk = broken(&b.lines);
        assert_eq!(brk.seq, at);
        let first = b.keys[0].public();
        assert_eq!(brk.kind, BreakKind::SignerNotInForce { signer: first });
        assert!(brk.to_string().contains("not in force"), "{brk}");
    }

    #[test]
    fn a_single_enclave_reboot_retires_the_identity_before_it() {
        let mut b = Builder::new();
        b.boot(1, Boot::default())
            .decisions(2)
            .boot(2, Boot::default());
        b.decisions_by(1, 1);
        assert!(run(&b.lines).is_ok());
        let at = b.seq;
        b.decisions_by(0, 1);
        let brk = broken(&b.lines);
        let first = b.keys[0].public();
        assert_eq!(
            (brk.seq, brk.kind),
            (at, BreakKind::SignerNotInForce { signer: first })
        );
    }

    #[test]
    fn a_signer_no_boot_introduced_is_refused() {
        let mut b = Builder::new();
        b.boot(1, Boot::default()).decisions(1);
        b.keys.push(IdentityKey::from_seed(&[77; 32]));
        let stranger = b.keys[1].public();
        b.decisions_by(1, 1);
        let brk = broken(&b.lines);
        assert_eq!(
            (brk.seq, brk.kind),
            (2, BreakKind::SignerNotInForce { signer: stranger })
        );
    }

    #[test]
    fn a_chain_across_three_boots_verifies() {
        let lines = lines();
        let report = run(&lines).unwrap();
        assert_eq!(report.entries, 120);
        assert_eq!(report.head_seq, 119);
        let last = AuditEntry::parse_line(&lines[119]).unwrap();
        assert_eq!(report.head_hash, last.hash());
        assert_eq!(report.last_time, last.header().unwrap().time);
        assert_eq!(report.first_time, world().t0);
        let spans: Vec<_> = report
            .boots
            .iter()
            .map(|b| (b.seq, b.last_seq, b.identity, b.first_boot))
            .collect();
        assert_eq!(
            spans,
            [
                (0, 39, id(0), true),
                (40, 79, id(1), false),
                (80, 119, id(2), false)
            ]
        );
        assert_eq!(report.boots[1].entries(), 40);
        let j = report.to_json();
        assert_eq!(j["entries"], 120);
        assert_eq!(j["boots"][2]["identity"], id(2).to_string());
        assert_eq!(j["deployment"]["genesis"], hex::encode([2u8; 32]));
        assert_eq!(j["head"]["hash"], hex::encode(last.hash()));
    }

    #[test]
    fn chunks_of_any_size_give_the_same_report() {
        let lines = lines();
        let whole = run(&lines).unwrap();
        for size in [1, 7, 40, 119] {
            let mut v = ChainVerifier::new(check);
            for chunk in lines.chunks(size) {
                v.push_lines(chunk).unwrap();
            }
            assert_eq!(v.verified(), 120);
            assert_eq!(v.finish().unwrap(), whole, "chunks of {size}");
        }
    }

    #[test]
    fn a_deleted_entry_is_missing() {
        let mut l = lines();
        l.remove(57);
        let b = broken(&l);
        assert_eq!(
            (b.seq, b.line, &b.kind, b.verified()),
            (57, 58, &BreakKind::Missing { found: 58 }, 57)
        );
        assert_eq!(
            b.to_string(),
            "entry 57 is missing (found 58 where 57 was expected, line 58)"
        );
        assert_eq!(b.found_unsigned.as_deref(), None);

        let mut l = lines();
        l.remove(0);
        let b = broken(&l);
        assert_eq!((b.seq, &b.kind), (0, &BreakKind::Missing { found: 1 }));
    }

    #[test]
    fn a_deleted_boot_entry_is_missing_and_the_next_entry_is_not_the_old_identitys() {
        let mut l = lines();
        l.remove(40);
        let b = broken(&l);
        assert_eq!((b.seq, &b.kind), (40, &BreakKind::Missing { found: 41 }));
        // Entry 41 was signed by the second boot's identity, not the first's.
        assert_eq!(b.found_unsigned.as_deref(), Some(&id(0)));
        assert!(
            b.to_string()
                .contains(&format!("does not verify under identity {} either", id(0)))
        );
    }

    #[test]
    fn swapped_entries_are_out_of_order() {
        let mut l = lines();
        l.swap(57, 58);
        let b = broken(&l);
        assert_eq!(
            (b.seq, &b.kind),
            (
                57,
                &BreakKind::OutOfOrder {
                    found: 58,
                    later: 1
                }
            )
        );
        assert!(
            b.to_string().starts_with("entries out of order at 57"),
            "{b}"
        );

        let mut l = lines();
        l.swap(57, 60);
        let b = broken(&l);
        assert_eq!(
            (b.seq, &b.kind),
            (
                57,
                &BreakKind::OutOfOrder {
                    found: 60,
                    later: 3
                }
            )
        );
    }

    #[test]
    fn a_gap_is_told_apart_across_chunks() {
        let mut swapped = lines();
        swapped.swap(57, 60);
        let mut deleted = lines();
        deleted.remove(57);
        for (l, expected) in [
            (
                &swapped,
                BreakKind::OutOfOrder {
                    found: 60,
                    later: 3,
                },
            ),
            (&deleted, BreakKind::Missing { found: 58 }),
        ] {
            // The gap ends the first chunk; the entry comes (or not) in later ones.
            let mut v = ChainVerifier::new(check);
            v.push_lines(&l[..58]).unwrap();
            let mut outcome = Ok(());
            for chunk in l[58..].chunks(1) {
                outcome = v.push_lines(chunk);
                if outcome.is_err() {
                    break;
                }
            }
            let b = match outcome {
                Err(b) => b,
                Ok(()) => v.finish().unwrap_err(),
            };
            assert_eq!((b.seq, b.line, &b.kind), (57, 58, &expected));
        }
    }

    #[test]
    fn a_duplicated_entry_appears_twice() {
        let mut l = lines();
        l.insert(58, l[57].clone());
        let b = broken(&l);
        assert_eq!(
            (b.seq, b.line, &b.kind, b.verified()),
            (57, 59, &BreakKind::Duplicate { expected: 58 }, 58)
        );
        assert_eq!(
            b.to_string(),
            "entry 57 appears twice (again at line 59, where 58 was expected)"
        );
        // Much later, too.
        let mut l = lines();
        l.insert(100, l[3].clone());
        let b = broken(&l);
        assert_eq!(
            (b.seq, &b.kind),
            (3, &BreakKind::Duplicate { expected: 100 })
        );
    }

    #[test]
    fn an_edited_entry_was_altered() {
        let mut l = lines();
        l[57] = l[57].replace("\"result\":\"allowed\"", "\"result\":\"denied\"");
        assert_ne!(l[57], lines()[57]);
        let b = broken(&l);
        assert_eq!(
            (b.seq, b.line, &b.kind),
            (57, 58, &BreakKind::Altered { identity: id(1) })
        );
        assert_eq!(
            b.to_string(),
            format!(
                "entry 57 was altered: its signature does not verify under identity {} (line 58)",
                id(1)
            )
        );

        // One byte anywhere in the entry: here a digit of its request digest.
        let mut l = lines();
        let at = l[90].find("\"request\":\"").unwrap() + 12;
        let mut bytes = l[90].clone().into_bytes();
        bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
        l[90] = String::from_utf8(bytes).unwrap();
        let b = broken(&l);
        assert_eq!(
            (b.seq, &b.kind),
            (90, &BreakKind::Altered { identity: id(2) })
        );

        // The signature itself.
        let mut l = lines();
        let n = l[20].len();
        let last = if l[20].as_bytes()[n - 3] == b'0' {
            "1"
        } else {
            "0"
        };
        l[20].replace_range(n - 3..n - 2, last);
        let b = broken(&l);
        assert_eq!(
            (b.seq, &b.kind),
            (20, &BreakKind::Altered { identity: id(0) })
        );
    }

    #[test]
    fn an_edited_sequence_number_is_reported_where_it_breaks_and_as_unsigned() {
        let mut l = lines();
        l[57] = l[57].replace("\"seq\":57", "\"seq\":58");
        let b = broken(&l);
        assert_eq!(b.seq, 57);
        assert_eq!(b.found_unsigned.as_deref(), Some(&id(1)));
    }

    #[test]
    fn an_entry_signed_elsewhere_does_not_follow() {
        // A validly signed entry 57 of another history: 58 no longer follows it.
        let mut l = lines();
        let e56 = AuditEntry::parse_line(&l[56]).unwrap();
        let time = e56.header().unwrap().time + 5;
        let mut other = decision(57);
        other.insert("result".into(), "denied".into());
        let key2 = IdentityKey::from_seed(&[2; 32]);
        let (e57, _) = AuditEntry::build(&key2, 57, &e56.hash(), time, "decision", other).unwrap();
        l[57] = e57.to_line();
        let brk = broken(&l);
        assert_eq!((brk.seq, &brk.kind), (58, &BreakKind::PrevMismatch));
        assert_eq!(
            brk.to_string(),
            "entry 58 does not follow entry 57 (prev hash differs, line 59)"
        );
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let mut l = lines();
        l[10] = l[10].replacen("{\"entry\":{", "{\"entry\":[", 1);
        let b = broken(&l);
        assert_eq!((b.seq, b.line), (10, 11));
        assert!(matches!(b.kind, BreakKind::Malformed(_)), "{b}");
        assert!(
            b.to_string()
                .starts_with("line 11 (where entry 10 was expected) is malformed")
        );

        let mut l = lines();
        l[5] = String::new();
        assert_eq!(broken(&l).kind, BreakKind::Malformed("empty line".into()));

        let mut l = lines();
        l[5] = "x".repeat(MAX_LINE_LEN + 1);
        let b = broken(&l);
        assert_eq!((b.seq, b.line), (5, 6));
        assert!(b.to_string().contains("longer than"), "{b}");

        let mut bytes: Vec<Vec<u8>> = lines().into_iter().map(String::into_bytes).collect();
        bytes[7][20] = 0xff;
        let b = verify_chain(&bytes, check).unwrap_err();
        assert_eq!(b.kind, BreakKind::Malformed("not UTF-8".into()));
    }

    #[test]
    fn an_empty_chain_is_a_break() {
        let none: [&str; 0] = [];
        let b = verify_chain(&none, check).unwrap_err();
        assert_eq!((b.seq, &b.kind), (0, &BreakKind::Empty));
    }

    #[test]
    fn entry_0_must_be_a_first_boot() {
        let mut b = Builder::new();
        b.boot(
            1,
            Boot {
                first_boot: Some(false),
                ..Boot::default()
            },
        )
        .decisions(3);
        let brk = broken(&b.lines);
        assert_eq!((brk.seq, &brk.kind), (0, &BreakKind::NotFirstBoot));
        assert_eq!(brk.to_string(), "entry 0 is not a first boot (line 1)");

        // A chain that starts with a decision has no identity to check it under.
        let mut b = Builder::new();
        b.keys.push(IdentityKey::from_seed(&[1; 32]));
        b.decisions(3);
        let brk = broken(&b.lines);
        assert_eq!((brk.seq, &brk.kind), (0, &BreakKind::NotFirstBoot));

        let mut b = Builder::new();
        b.boot(1, Boot::default()).decisions(3);
        b.boot(
            2,
            Boot {
                first_boot: Some(true),
                ..Boot::default()
            },
        );
        let brk = broken(&b.lines);
        assert_eq!((brk.seq, &brk.kind), (4, &BreakKind::FirstBootAgain));
    }

    /// The chain `0..40` then a boot with `tweak` and a few decisions.
    fn second_boot(tweak: Boot) -> ChainBreak {
        let mut b = Builder::new();
        b.boot(1, Boot::default()).decisions(39);
        b.boot(2, tweak).decisions(3);
        broken(&b.lines)
    }

    #[test]
    fn a_boot_with_other_pcrs_is_refused() {
        let b = second_boot(Boot {
            other_pcrs: true,
            ..Boot::default()
        });
        assert_eq!(b.seq, 40);
        assert!(
            matches!(&b.kind, BreakKind::AttestationRefused(d) if d.contains("PCR2")),
            "{b}"
        );
        assert!(
            b.to_string()
                .starts_with("boot entry 40: attestation refused: ")
        );
    }

    /// An auditor's check that trusts several releases: each boot's document must carry all
    /// the PCRs of one of them.
    fn releases_check(
        releases: Vec<BTreeMap<u16, Vec<u8>>>,
    ) -> impl Fn(&[u8], &[u8; 32], u64) -> Result<UserData, String> + Sync {
        let releases: Vec<BTreeMap<u8, Vec<u8>>> = releases
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|(i, v)| (u8::try_from(i).unwrap(), v))
                    .collect()
            })
            .collect();
        move |doc: &[u8], nonce: &[u8; 32], time: u64| {
            let exp = Expectations::new(UNIX_EPOCH + Duration::from_secs(time))
                .root(world().root.clone())
                .nonce(nonce.to_vec())
                .releases(releases.iter().cloned());
            let verified = verify(doc, &exp).map_err(|e| e.to_string())?;
            let user_data = verified.document.user_data.ok_or("no user data")?;
            UserData::decode(&user_data).map_err(|e| e.to_string())
        }
    }

    #[test]
    fn a_chain_across_an_upgrade_verifies_with_both_releases_trusted() {
        // Boots at 0 and 40 of the running release, at 80 of the next, then 120 of the
        // running one again (a rollback during the transition).
        let w = world();
        let mut b = Builder::new();
        b.boot(1, Boot::default()).decisions(39);
        b.boot(2, Boot::default()).decisions(39);
        b.boot(
            3,
            Boot {
                other_pcrs: true,
                ..Boot::default()
            },
        )
        .decisions(39);
        b.boot(4, Boot::default()).decisions(3);
        let both = releases_check(vec![w.pcrs.clone(), w.next_pcrs.clone()]);
        let report = verify_chain(&b.lines, &both).unwrap();
        assert_eq!(report.entries, 124);
        assert_eq!(
            report.boots.iter().map(|b| b.seq).collect::<Vec<_>>(),
            [0, 40, 80, 120]
        );
        // In the other order too.
        let both = releases_check(vec![w.next_pcrs.clone(), w.pcrs.clone()]);
        assert!(verify_chain(&b.lines, &both).is_ok());

        // Only the running release: refused at the next release's boot, naming its PCR2.
        let brk = verify_chain(&b.lines, releases_check(vec![w.pcrs.clone()])).unwrap_err();
        assert_eq!(brk.seq, 80);
        assert!(
            matches!(&brk.kind, BreakKind::AttestationRefused(d) if d.contains("PCR2")),
            "{brk}"
        );
        // Only the next release: refused at the first boot.
        let brk = verify_chain(&b.lines, releases_check(vec![w.next_pcrs.clone()])).unwrap_err();
        assert_eq!(brk.seq, 0);

        // A set agreeing with the running release on PCR0 and PCR2 but not PCR1 does not
        // stand in for it: with that set and the next release, the first boot is refused,
        // naming each release's first difference.
        let mut mix = w.pcrs.clone();
        mix.insert(1, vec![0x42; 48]);
        let brk =
            verify_chain(&b.lines, releases_check(vec![mix, w.next_pcrs.clone()])).unwrap_err();
        assert_eq!(brk.seq, 0);
        assert!(
            brk.to_string()
                .contains("match none of the 2 trusted releases (release 1: PCR1 is"),
            "{brk}"
        );
    }

    #[test]
    fn a_boot_with_another_nonce_is_refused() {
        let b = second_boot(Boot {
            nonce: Some([9; 32]),
            ..Boot::default()
        });
        assert_eq!(b.seq, 40);
        assert!(
            matches!(&b.kind, BreakKind::AttestationRefused(d) if d.contains("nonce")),
            "{b}"
        );
    }

    #[test]
    fn a_boot_attesting_another_identity_is_refused() {
        let other = IdentityKey::from_seed(&[0x77; 32]).public();
        let b = second_boot(Boot {
            attested: Some(user_data(other)),
            ..Boot::default()
        });
        assert_eq!(
            (b.seq, &b.kind),
            (
                40,
                &BreakKind::IdentityMismatch {
                    named: IdentityKey::from_seed(&[2; 32]).public(),
                    attested: other,
                }
            )
        );
        assert_eq!(
            b.to_string(),
            format!(
                "boot entry 40 names identity {} but its attestation carries {other}",
                IdentityKey::from_seed(&[2; 32]).public()
            )
        );
    }

    #[test]
    fn a_boot_of_another_deployment_is_a_break() {
        let named = IdentityKey::from_seed(&[2; 32]).public();
        let mut other = user_data(named);
        other.genesis = [0x66; 32];
        let b = second_boot(Boot {
            attested: Some(other),
            ..Boot::default()
        });
        assert_eq!(
            b.to_string(),
            "boot entry 40: another deployment (genesis differs from the first boot's)"
        );
        let mut other = user_data(named);
        other.key_check = [0x66; 16];
        let b = second_boot(Boot {
            attested: Some(other),
            ..Boot::default()
        });
        assert_eq!(
            (b.seq, &b.kind),
            (40, &BreakKind::OtherDeployment { what: "key_check" })
        );
        // The policy and admin set may change between boots.
        let mut changed = user_data(named);
        changed.policy = [0x55; 32];
        let mut b = Builder::new();
        b.boot(1, Boot::default()).decisions(2);
        b.boot(
            2,
            Boot {
                attested: Some(changed),
                ..Boot::default()
            },
        );
        let report = run(&b.lines).unwrap();
        assert_eq!(report.boots[1].user_data.policy, [0x55; 32]);
    }

    #[test]
    fn a_boot_entry_with_a_changed_document_was_altered() {
        // Swapping in a genuine document of another boot changes the entry's bytes.
        let mut l = lines();
        let doc = |line: &str| {
            let e = AuditEntry::parse_line(line).unwrap();
            e.fields().unwrap()["attestation"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (d1, d2) = (doc(&l[40]), doc(&l[80]));
        l[40] = l[40].replace(&d1, &d2);
        let b = broken(&l);
        assert_eq!(
            (b.seq, &b.kind),
            (40, &BreakKind::Altered { identity: id(1) })
        );
    }

    #[test]
    fn a_checkpoint_detects_truncation() {
        let (l, cp, _) = standard();
        let report = run_with_checkpoint(l, *cp).unwrap();
        assert_eq!(report.checkpoint, Some(*cp));
        let b = run_with_checkpoint(&l[..110], *cp).unwrap_err();
        assert_eq!(
            (b.seq, b.line, &b.kind),
            (110, 111, &BreakKind::Truncated { checkpoint: 119 })
        );
        assert_eq!(
            b.to_string(),
            "the chain ends at entry 109 but the checkpoint names entry 119: entries \
             110..=119 are missing (truncated)"
        );
        // The last entry alone gone: invisible without the checkpoint, seen with it.
        assert!(run(&l[..119]).is_ok());
        let b = run_with_checkpoint(&l[..119], *cp).unwrap_err();
        assert_eq!(b.seq, 119);
        let none: [&str; 0] = [];
        let mut v = ChainVerifier::new(check).expect_checkpoint(*cp).unwrap();
        v.push_lines(&none).unwrap();
        assert_eq!(v.finish().unwrap_err().seq, 0);
    }

    #[test]
    fn a_checkpoint_must_match_its_entry_and_signer() {
        let (l, _, _) = standard();
        let key3 = IdentityKey::from_seed(&[3; 32]);
        let e100 = AuditEntry::parse_line(&l[100]).unwrap();
        // An earlier checkpoint of a longer chain is fine.
        let cp = Checkpoint::sign(&key3, 100, e100.hash(), 1);
        assert!(run_with_checkpoint(l, cp).is_ok());
        let cp = Checkpoint::sign(&key3, 100, [7; 32], 1);
        let b = run_with_checkpoint(l, cp).unwrap_err();
        assert_eq!(b.seq, 100);
        assert!(
            matches!(b.kind, BreakKind::CheckpointMismatch { .. }),
            "{b}"
        );
        let key2 = IdentityKey::from_seed(&[2; 32]);
        let cp = Checkpoint::sign(&key2, 100, e100.hash(), 1);
        let b = run_with_checkpoint(l, cp).unwrap_err();
        assert_eq!(
            b.kind,
            BreakKind::CheckpointIdentity {
                signed_by: id(1),
                entry_identity: id(2)
            }
        );
        let mut forged = Checkpoint::sign(&key3, 100, e100.hash(), 1);
        forged.seq = 90;
        assert!(ChainVerifier::new(check).expect_checkpoint(forged).is_err());
    }

    #[test]
    fn after_a_break_the_verifier_keeps_reporting_it() {
        let mut l = lines();
        l[10] = l[10].replace("within limits", "within limits!");
        let mut v = ChainVerifier::new(check);
        let first = v.push_lines(&l[..50]).unwrap_err();
        assert_eq!(v.push_lines(&l[50..]).unwrap_err(), first);
        assert_eq!(v.finish().unwrap_err(), first);
    }

    #[test]
    fn ten_thousand_entries_and_a_bad_one_in_a_late_batch() {
        let mut b = Builder::new();
        b.boot(1, Boot::default()).decisions(4999);
        b.boot(2, Boot::default()).decisions(4999);
        let report = run(&b.lines).unwrap();
        assert_eq!(report.entries, 10_000);
        assert_eq!(report.boots[1].seq, 5000);
        let mut l = b.lines.clone();
        l[9_001] = l[9_001].replace("within limits", "within limits!");
        let brk = broken(&l);
        assert_eq!(
            (brk.seq, &brk.kind),
            (
                9_001,
                &BreakKind::Altered {
                    identity: IdentityKey::from_seed(&[2; 32]).public()
                }
            )
        );
    }

    /// A mutation of the standard chain at `k`, and the sequence number it must be
    /// reported at.
    #[derive(Debug, Clone, Copy)]
    enum Mutation {
        Delete(usize),
        Duplicate(usize),
        SwapNext(usize),
        Edit(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (0usize..120).prop_map(Mutation::Delete),
            (0usize..120).prop_map(Mutation::Duplicate),
            (0usize..119).prop_map(Mutation::SwapNext),
            (0usize..120).prop_map(Mutation::Edit),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn every_single_change_is_reported_at_its_entry(m in mutation()) {
            let (orig, cp, _) = standard();
            let mut l = orig.clone();
            let k = match m {
                Mutation::Delete(k) => { l.remove(k); k }
                Mutation::Duplicate(k) => { l.insert(k + 1, l[k].clone()); k }
                Mutation::SwapNext(k) => { l.swap(k, k + 1); k }
                Mutation::Edit(k) => {
                    l[k] = l[k].replacen("\"time\":", "\"time\":1", 1);
                    k
                }
            };
            let b = run_with_checkpoint(&l, *cp).unwrap_err();
            prop_assert_eq!(b.seq, k as u64, "{:?}: {}", m, b);
            let kind_ok = match m {
                Mutation::Delete(119) => matches!(b.kind, BreakKind::Truncated { .. }),
                Mutation::Delete(_) => matches!(b.kind, BreakKind::Missing { .. }),
                Mutation::Duplicate(_) => matches!(b.kind, BreakKind::Duplicate { .. }),
                Mutation::SwapNext(_) => matches!(b.kind, BreakKind::OutOfOrder { later: 1, .. }),
                Mutation::Edit(_) => matches!(b.kind, BreakKind::Altered { .. }),
            };
            prop_assert!(kind_ok, "{:?}: {}", m, b);
        }

        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec(".{0,300}", 0..8)) {
            let _ = verify_chain(&lines, check);
        }
    }
}
