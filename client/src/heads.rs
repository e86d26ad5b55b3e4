//! What a client remembers of each deployment's audit chain, so that an enclave rolled back
//! to an earlier point of its log is refused.
//!
//! Every signed answer names the chain's head when it was made (`head=SEQ:HASH`), and every
//! attestation document names the sequence number at which its boot began (`boot_seq`).
//! Each boot continues the chain where the last one stopped, so the boots split the chain
//! into consecutive ranges: boot *B* writes the records from its `boot_seq` until the next
//! boot's. An enclave restarted from a log cut short begins a boot *inside* a range already
//! written — at a sequence number some earlier boot's answers already went past. The book
//! keeps, per deployment (genesis digest and root-key check value), each boot's `boot_seq`
//! and the highest head its answers named, and the highest head of all with its hash, and
//! refuses:
//! - an answer from a boot that began at or before a head another boot that began no
//!   later answered with (the log was cut: **behind**);
//! - an answer from an earlier boot naming a head at or after a later boot's start;
//! - a head with the same sequence number as the highest seen but another hash (**fork**).
//!
//! With replicas (several enclaves of one deployment sharing the log, each boot naming its
//! replica in the user data), the first two rules apply among the boots of one replica:
//! the replicas' boots interleave in the chain. A replica shown another branch of the log
//! is caught where its answers name a sequence number the book saw with another hash; one
//! shown a shorter branch looks, until then, like a replica that lags (the auditor's chain
//! verification finds it at once).
//!
//! Answers from one boot may arrive out of order (concurrent requests): a lower head from
//! the same boot, or from an earlier boot below the next boot's start, is fine.
//!
//! The same book is the client's list of **known deployments** (trust on first use, as SSH's
//! `known_hosts`): a deployment is its genesis digest *and* its root-key check value, both
//! in every attestation document, and neither alone pins it (the parent can first-boot a
//! fresh enclave with the real genesis and a root key of its own, or with the real root key
//! and a genesis of its own). [`HeadBook::admit`] records, the first time a document
//! verifies, which root key goes with its genesis, which genesis with its root key, and
//! which deployment answers at its endpoint, and refuses a later document that contradicts
//! any of them ([`ClientError::DeploymentChanged`], naming both) unless the caller pinned
//! both values explicitly.
//!
//! [`HeadBook::open`] keeps the book in a small JSON file (by default
//! `$XDG_STATE_HOME/strongroom/heads.json`), so the next process refuses what this one
//! would have; it is written when the highest head moves, at most once a second, and on
//! [`HeadBook::flush`] and drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use strongroom_identity::{Head, IdentityPublic, UserData};

use crate::error::ClientError;

/// Boots remembered per deployment; the earliest are forgotten first.
const MAX_BOOTS: usize = 64;
/// Deployments remembered in one book.
const MAX_DEPLOYMENTS: usize = 256;
/// Largest book file read.
const MAX_FILE_LEN: u64 = 4 * 1024 * 1024;
/// Shortest time between two writes of the file while heads move.
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// The file's format version (2: known deployments added; a version-1 file is read and
/// upgraded).
const FORMAT: u32 = 2;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BootSeen {
    /// Where the boot began.
    boot_seq: u64,
    /// The highest head its answers named.
    max_seq: u64,
    /// The replica it is a boot of (`""`: the deployment's single enclave).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    replica: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Deployment {
    /// The highest head verified: sequence number and hash.
    seq: u64,
    hash: String,
    /// Boots by identity (hex).
    boots: BTreeMap<String, BootSeen>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    version: u32,
    /// By `genesis:key_check` (hex).
    deployments: BTreeMap<String, Deployment>,
    /// Deployments trusted on first use, by scope: `genesis:HEX` (which root key goes with
    /// this genesis), `key_check:HEX` (which genesis goes with this root key), `endpoint:URL`
    /// (which deployment answers there).
    #[serde(default)]
    known: BTreeMap<String, KnownDeployment>,
    /// What [`HeadBook::forget`] was given, with when (Unix milliseconds): an entry recorded
    /// before that which it names is dropped, so a process that still holds it cannot write
    /// it back.
    #[serde(default)]
    forgotten: BTreeMap<String, u64>,
}

/// A deployment as first seen under one scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDeployment {
    /// The genesis digest, hex.
    pub genesis: String,
    /// The root-key check value, hex.
    pub key_check: String,
    /// When it was recorded (Unix milliseconds).
    pub since: u64,
}

impl KnownDeployment {
    fn of(user_data: &UserData) -> Self {
        Self {
            genesis: hex::encode(user_data.genesis),
            key_check: hex::encode(user_data.key_check),
            since: now_millis(),
        }
    }

    fn same_deployment(&self, other: &Self) -> bool {
        self.genesis == other.genesis && self.key_check == other.key_check
    }
}

impl std::fmt::Display for KnownDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "genesis {} key check {}", self.genesis, self.key_check)
    }
}

/// Most known-deployment entries kept (three scopes a deployment).
const MAX_KNOWN: usize = 3 * MAX_DEPLOYMENTS;
/// Most forget requests remembered.
const MAX_FORGOTTEN: usize = 256;

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The heads a client verified, per deployment.
#[derive(Debug)]
pub struct HeadBook {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    book: Book,
    dirty: bool,
    written: Option<Instant>,
}

/// `$XDG_STATE_HOME/strongroom/heads.json`, else `~/.local/state/strongroom/heads.json`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("state"))
        })?;
    Some(base.join("strongroom").join("heads.json"))
}

fn deployment_key(user_data: &UserData) -> String {
    format!(
        "{}:{}",
        hex::encode(user_data.genesis),
        hex::encode(user_data.key_check)
    )
}

fn state_error(path: &Path, detail: impl std::fmt::Display) -> ClientError {
    ClientError::StateFile {
        path: path.display().to_string(),
        detail: detail.to_string(),
    }
}

impl HeadBook {
    /// A book kept in memory only.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            inner: Mutex::new(Inner {
                book: Book {
                    version: FORMAT,
                    ..Book::default()
                },
                dirty: false,
                written: None,
            }),
        }
    }

    /// A book kept in `path` (read now if it exists; created when first written).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ClientError> {
        let path = path.into();
        let book = read_book(&path)?.unwrap_or(Book {
            version: FORMAT,
            ..Book::default()
        });
        Ok(Self {
            path: Some(path),
            inner: Mutex::new(Inner {
                book,
                dirty: false,
                written: None,
            }),
        })
    }

    /// Where the book is kept, if in a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Checks an answer's head from the boot `user_data` describes (its attestation) and
    /// remembers it; refuses a rolled-back or forked chain, naming both heads.
    pub fn observe(
        &self,
        user_data: &UserData,
        identity: &IdentityPublic,
        head: &Head,
    ) -> Result<(), ClientError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = deployment_key(user_data);
        let id = identity.to_string();
        let boot_seq = user_data.boot_seq;
        let got = head.to_string();
        if head.seq < boot_seq {
            return Err(ClientError::Rollback {
                seen: format!("boot at {boot_seq}"),
                got,
                detail: "the answer names a head before its own boot".into(),
            });
        }
        if let Some(d) = inner.book.deployments.get(&key) {
            let seen = format!("{}:{}", d.seq, d.hash);
            if head.seq == d.seq && hex::encode(head.hash) != d.hash {
                return Err(ClientError::Rollback {
                    seen,
                    got,
                    detail: "two different records under one sequence number: the chain forked"
                        .into(),
                });
            }
            // Boots of one replica follow each other; replicas' boots interleave, and only
            // one sequence number with two records tells their branches apart.
            let replica = user_data.replica.as_str();
            let others = || {
                d.boots
                    .iter()
                    .filter(|(other, b)| **other != id && b.replica == replica)
            };
            // A boot that began at or before a head an earlier (or simultaneous) boot
            // answered with: the log was cut and the chain goes on from inside it.
            if let Some((other, b)) = others()
                .filter(|(_, b)| b.boot_seq <= boot_seq && b.max_seq >= boot_seq)
                .max_by_key(|(_, b)| b.max_seq)
            {
                let seen = if b.max_seq == d.seq {
                    format!("{}:{}", d.seq, d.hash)
                } else {
                    format!("{} (from boot {other})", b.max_seq)
                };
                return Err(ClientError::Rollback {
                    seen,
                    got,
                    detail: format!(
                        "this boot began at {boot_seq}, at or before a head an earlier boot \
                         answered with: the enclave was restarted from a log cut short"
                    ),
                });
            }
            if let Some((other, b)) =
                others().find(|(_, b)| b.boot_seq > boot_seq && head.seq >= b.boot_seq)
            {
                return Err(ClientError::Rollback {
                    seen: format!("boot {other} at {}", b.boot_seq),
                    got,
                    detail: "an earlier boot names a head past a later boot's start: the chain \
                             forked"
                        .into(),
                });
            }
        }
        if !inner.book.deployments.contains_key(&key)
            && inner.book.deployments.len() >= MAX_DEPLOYMENTS
            && let Some(first) = inner.book.deployments.keys().next().cloned()
        {
            inner.book.deployments.remove(&first);
        }
        let d = inner.book.deployments.entry(key).or_default();
        let boot = d.boots.entry(id).or_insert(BootSeen {
            boot_seq,
            max_seq: head.seq,
            replica: user_data.replica.as_str().to_string(),
        });
        boot.max_seq = boot.max_seq.max(head.seq);
        while d.boots.len() > MAX_BOOTS {
            let Some(earliest) = d
                .boots
                .iter()
                .min_by_key(|(_, b)| b.boot_seq)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            d.boots.remove(&earliest);
        }
        if d.hash.is_empty() || head.seq > d.seq {
            d.seq = head.seq;
            d.hash = hex::encode(head.hash);
            inner.dirty = true;
        }
        if inner.dirty && inner.written.is_none_or(|t| t.elapsed() >= WRITE_EVERY) {
            self.write(&mut inner)?;
        }
        Ok(())
    }

    /// Admits the deployment a verified attestation document describes (`user_data`),
    /// reached at `endpoint` if the caller knows it: refuses it if this book first saw its
    /// genesis with another root key, its root key with another genesis, or its endpoint
    /// answered by another deployment, unless `pinned` (the caller pinned both the genesis
    /// and the root-key check value explicitly, and they matched): then the pins replace what
    /// the book remembered. Records what it had not seen, and writes the file at once.
    pub fn admit(
        &self,
        endpoint: Option<&str>,
        user_data: &UserData,
        pinned: bool,
    ) -> Result<(), ClientError> {
        let found = KnownDeployment::of(user_data);
        let mut scopes = vec![
            format!("genesis:{}", found.genesis),
            format!("key_check:{}", found.key_check),
        ];
        if let Some(endpoint) = endpoint {
            scopes.push(format!("endpoint:{endpoint}"));
        }
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !pinned {
            for scope in &scopes {
                if let Some(known) = inner.book.known.get(scope)
                    && !known.same_deployment(&found)
                {
                    return Err(ClientError::DeploymentChanged {
                        scope: scope.clone(),
                        known: known.to_string(),
                        since: known.since / 1000,
                        found: found.to_string(),
                        book: self
                            .path
                            .as_ref()
                            .map_or_else(|| "memory".into(), |p| p.display().to_string()),
                    });
                }
            }
        }
        let mut changed = false;
        for scope in scopes {
            match inner.book.known.get(&scope) {
                Some(known) if known.same_deployment(&found) => {}
                _ => {
                    inner.book.known.insert(scope, found.clone());
                    changed = true;
                }
            }
        }
        while inner.book.known.len() > MAX_KNOWN {
            let Some(oldest) = inner
                .book
                .known
                .iter()
                .min_by_key(|(_, k)| k.since)
                .map(|(s, _)| s.clone())
            else {
                break;
            };
            inner.book.known.remove(&oldest);
        }
        if changed {
            inner.dirty = true;
            self.write(&mut inner)?;
        }
        Ok(())
    }

    /// The known deployments, by scope (`genesis:HEX`, `key_check:HEX`, `endpoint:URL`).
    pub fn known(&self) -> BTreeMap<String, KnownDeployment> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .book
            .known
            .clone()
    }

    /// Forgets the known deployments whose scope, genesis or root-key check value is
    /// `what` (hex, or an endpoint URL), and writes the file; returns how many entries went.
    /// For a re-deployment the user expected, before trusting the new one on first use.
    pub fn forget(&self, what: &str) -> Result<usize, ClientError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = inner.book.known.len();
        let what = what.trim();
        inner.book.known.retain(|scope, k| !names(scope, k, what));
        let gone = before - inner.book.known.len();
        if gone > 0 {
            // What the file or another process still holds must not come back.
            inner.book.forgotten.insert(what.to_string(), now_millis());
            while inner.book.forgotten.len() > MAX_FORGOTTEN {
                let Some(oldest) = inner
                    .book
                    .forgotten
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(w, _)| w.clone())
                else {
                    break;
                };
                inner.book.forgotten.remove(&oldest);
            }
            inner.dirty = true;
            self.write(&mut inner)?;
        }
        Ok(gone)
    }

    /// The highest head seen for a deployment, as `SEQ:HASH`.
    pub fn highest(&self, user_data: &UserData) -> Option<String> {
        let inner = self.inner.lock().ok()?;
        inner
            .book
            .deployments
            .get(&deployment_key(user_data))
            .map(|d| format!("{}:{}", d.seq, d.hash))
    }

    /// Writes the book now if it changed.
    pub fn flush(&self) -> Result<(), ClientError> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if inner.dirty {
            self.write(&mut inner)?;
        }
        Ok(())
    }

    /// Merges with what another process wrote meanwhile, then replaces the file.
    fn write(&self, inner: &mut Inner) -> Result<(), ClientError> {
        inner.written = Some(Instant::now());
        let Some(path) = &self.path else {
            inner.dirty = false;
            return Ok(());
        };
        if let Some(on_disk) = read_book(path)? {
            merge(&mut inner.book, on_disk);
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| state_error(path, e))?;
        }
        let text = serde_json::to_vec_pretty(&inner.book).map_err(|e| state_error(path, e))?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| state_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| state_error(path, e))?;
        inner.dirty = false;
        Ok(())
    }
}

impl Drop for HeadBook {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

fn read_book(path: &Path) -> Result<Option<Book>, ClientError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_error(path, e)),
    };
    if meta.len() > MAX_FILE_LEN {
        return Err(state_error(
            path,
            format!("larger than {MAX_FILE_LEN} bytes"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| state_error(path, e))?;
    let book: Book = serde_json::from_slice(&bytes).map_err(|e| state_error(path, e))?;
    // Version 1 had no known deployments; it reads as version 2 with none.
    if !(1..=FORMAT).contains(&book.version) {
        return Err(state_error(
            path,
            format!("format {} (this client writes {FORMAT})", book.version),
        ));
    }
    Ok(Some(Book {
        version: FORMAT,
        ..book
    }))
}

/// Whether a known-deployment entry is one `what` names (as [`HeadBook::forget`] matches).
fn names(scope: &str, known: &KnownDeployment, what: &str) -> bool {
    let value = scope.split_once(':').map_or(scope, |(_, v)| v);
    scope == what || value == what || known.genesis == what || known.key_check == what
}

/// Keeps, per deployment, the higher head and every boot with its higher head; of two
/// known deployments under one scope, the one recorded last (an explicit pin replacing an
/// entry is the newer); both sides' forget requests, and none of the entries recorded
/// before a forget request that names them.
fn merge(book: &mut Book, other: Book) {
    for (what, at) in other.forgotten {
        let t = book.forgotten.entry(what).or_insert(at);
        *t = (*t).max(at);
    }
    for (scope, theirs) in other.known {
        match book.known.get(&scope) {
            Some(ours) if ours.since >= theirs.since => {}
            _ => {
                book.known.insert(scope, theirs);
            }
        }
    }
    for (key, theirs) in other.deployments {
        let ours = book.deployments.entry(key).or_default();
        if ours.hash.is_empty() || theirs.seq > ours.seq {
            ours.seq = theirs.seq;
            ours.hash = theirs.hash;
        }
        for (id, b) in theirs.boots {
            let mine = ours.boots.entry(id).or_insert_with(|| b.clone());
            mine.max_seq = mine.max_seq.max(b.max_seq);
        }
    }
    let forgotten = &book.forgotten;
    book.known.retain(|scope, k| {
        !forgotten
            .iter()
            .any(|(what, at)| k.since < *at && names(scope, k, what))
    });
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strongroom_identity::IdentityKey;

    fn boot(seed: u8, boot_seq: u64) -> (UserData, IdentityPublic) {
        let identity = IdentityKey::from_seed(&[seed; 32]).public();
        (
            UserData {
                key_check: [1; 16],
                genesis: [2; 32],
                admins: [3; 32],
                policy: [4; 32],
                identity,
                boot_seq,
                replica: strongroom_identity::ReplicaName::SINGLE,
            },
            identity,
        )
    }

    fn head(seq: u64, byte: u8) -> Head {
        Head {
            seq,
            hash: [byte; 32],
        }
    }

    #[test]
    fn a_restart_that_continues_the_chain_is_accepted() {
        let book = HeadBook::in_memory();
        let (a, ia) = boot(1, 0);
        book.observe(&a, &ia, &head(10, 10)).unwrap();
        // Out of order within one boot.
        book.observe(&a, &ia, &head(7, 7)).unwrap();
        let (b, ib) = boot(2, 11);
        book.observe(&b, &ib, &head(12, 12)).unwrap();
        // A late answer of the earlier boot, below the next boot's start.
        book.observe(&a, &ia, &head(9, 9)).unwrap();
        assert_eq!(book.highest(&b).unwrap(), format!("12:{}", "0c".repeat(32)));
    }

    #[test]
    fn a_boot_inside_a_range_already_answered_is_refused() {
        let book = HeadBook::in_memory();
        let (a, ia) = boot(1, 0);
        book.observe(&a, &ia, &head(10, 10)).unwrap();
        // Restarted from a log cut at 6: its boot record is 6, and it may have pushed its
        // head past 10 before this client saw it.
        let (b, ib) = boot(2, 6);
        for h in [head(6, 66), head(40, 40)] {
            let e = book.observe(&b, &ib, &h).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains("10") && text.contains("log cut short"),
                "{text}"
            );
        }
        // The same sequence number with another hash.
        let e = book.observe(&a, &ia, &head(10, 11)).unwrap_err();
        assert!(e.to_string().contains("forked"), "{e}");
        // An earlier boot answering past a later boot's start.
        let (c, ic) = boot(3, 20);
        book.observe(&c, &ic, &head(21, 21)).unwrap();
        let e = book.observe(&a, &ia, &head(25, 25)).unwrap_err();
        assert!(e.to_string().contains("forked"), "{e}");
    }

    #[test]
    fn replicas_interleave_and_each_replica_keeps_its_own_order() {
        let book = HeadBook::in_memory();
        let replica = |seed: u8, at: u64, name: &str| {
            let (mut u, i) = boot(seed, at);
            u.replica = strongroom_identity::ReplicaName::new(name).unwrap();
            (u, i)
        };
        let (a, ia) = replica(1, 0, "r1");
        let (b, ib) = replica(2, 1, "r2");
        book.observe(&b, &ib, &head(5, 5)).unwrap();
        // r1 booted earlier and answers past r2's start: replicas share the log.
        book.observe(&a, &ia, &head(9, 9)).unwrap();
        book.observe(&b, &ib, &head(7, 7)).unwrap();
        // One sequence number, two records: a fork, whichever replica shows it.
        let e = book.observe(&b, &ib, &head(9, 99)).unwrap_err();
        assert!(e.to_string().contains("forked"), "{e}");
        // r1 booted again at 12; its earlier boot answering past 12 is a fork.
        let (a2, ia2) = replica(3, 12, "r1");
        book.observe(&a2, &ia2, &head(13, 13)).unwrap();
        let e = book.observe(&a, &ia, &head(14, 14)).unwrap_err();
        assert!(e.to_string().contains("forked"), "{e}");
        // ... while r2, another replica, may.
        book.observe(&b, &ib, &head(14, 14)).unwrap();
    }

    #[test]
    fn deployments_are_kept_apart() {
        let book = HeadBook::in_memory();
        let (a, ia) = boot(1, 0);
        book.observe(&a, &ia, &head(10, 10)).unwrap();
        let (mut other, io) = boot(2, 3);
        other.genesis = [9; 32];
        book.observe(&other, &io, &head(3, 3)).unwrap();
    }

    #[test]
    fn a_deployment_is_trusted_on_first_use_and_a_contradiction_refused() {
        let book = HeadBook::in_memory();
        let (real, _) = boot(1, 0);
        book.admit(Some("https://signer/"), &real, false).unwrap();
        book.admit(Some("https://signer/"), &real, false).unwrap();
        // The parent's impostor: the real genesis, its own root key.
        let impostor = UserData {
            key_check: [7; 16],
            ..real
        };
        let e = book.admit(None, &impostor, false).unwrap_err();
        assert!(matches!(e, ClientError::DeploymentChanged { ref scope, .. }
            if *scope == format!("genesis:{}", hex::encode([2; 32]))));
        let text = e.to_string();
        assert!(
            text.contains(&hex::encode([1; 16])) && text.contains(&hex::encode([7; 16])),
            "{text}"
        );
        // The real root key first-booted with a genesis of the parent's.
        let regenesis = UserData {
            genesis: [8; 32],
            ..real
        };
        let e = book.admit(None, &regenesis, false).unwrap_err();
        assert!(matches!(e, ClientError::DeploymentChanged { ref scope, .. }
            if scope.starts_with("key_check:")));
        // Another deployment at an endpoint where this one answered.
        let other = UserData {
            genesis: [8; 32],
            key_check: [9; 16],
            ..real
        };
        book.admit(Some("https://other/"), &other, false).unwrap();
        let e = book
            .admit(Some("https://signer/"), &other, false)
            .unwrap_err();
        assert!(matches!(e, ClientError::DeploymentChanged { ref scope, .. }
            if scope == "endpoint:https://signer/"));
        // Pinned explicitly: accepted, and it replaces what was remembered.
        book.admit(Some("https://signer/"), &impostor, true)
            .unwrap();
        book.admit(Some("https://signer/"), &impostor, false)
            .unwrap();
        assert!(book.admit(None, &real, false).is_err());
        // Forgotten: trusted on first use again.
        assert_eq!(book.forget("https://signer/").unwrap(), 1);
        assert_eq!(book.forget(&hex::encode([7; 16])).unwrap(), 2);
        assert_eq!(book.forget("nothing").unwrap(), 0);
        assert_eq!(book.known().len(), 4);
        book.admit(Some("https://signer/"), &real, false).unwrap();
        assert_eq!(book.known().len(), 6);
    }

    #[test]
    fn known_deployments_live_in_the_file_and_a_version_1_file_is_upgraded() {
        let dir = std::env::temp_dir().join(format!(
            "strongroom-known-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("heads.json");
        let (a, ia) = boot(1, 0);
        std::fs::write(&path, r#"{"version":1,"deployments":{}}"#).unwrap();
        {
            let book = HeadBook::open(&path).unwrap();
            book.observe(&a, &ia, &head(3, 3)).unwrap();
            book.admit(None, &a, false).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        let impostor = UserData {
            key_check: [7; 16],
            ..a
        };
        let next = HeadBook::open(&path).unwrap();
        assert!(next.admit(None, &impostor, false).is_err(), "remembered");
        // Forgetting holds even though the file still had the entry when it merged.
        let other = HeadBook::open(&path).unwrap();
        // Recorded strictly before the forget request (milliseconds).
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(next.forget(&hex::encode([1; 16])).unwrap(), 2);
        other.observe(&a, &ia, &head(9, 9)).unwrap();
        other.flush().unwrap();
        let last = HeadBook::open(&path).unwrap();
        last.admit(None, &impostor, false).unwrap();
        std::fs::write(&path, r#"{"version":3,"deployments":{}}"#).unwrap();
        let e = HeadBook::open(&path).unwrap_err().to_string();
        assert!(e.contains("format 3"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_carries_the_book_to_the_next_process_and_merges() {
        let dir = std::env::temp_dir().join(format!(
            "strongroom-heads-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let path = dir.join("sub").join("heads.json");
        let (a, ia) = boot(1, 0);
        {
            let book = HeadBook::open(&path).unwrap();
            book.observe(&a, &ia, &head(10, 10)).unwrap();
        }
        let next = HeadBook::open(&path).unwrap();
        let (b, ib) = boot(2, 5);
        assert!(next.observe(&b, &ib, &head(8, 8)).is_err(), "remembered");
        // Another process moved the head meanwhile: writing merges, never loses it.
        {
            let other = HeadBook::open(&path).unwrap();
            other.observe(&a, &ia, &head(30, 30)).unwrap();
        }
        next.observe(&a, &ia, &head(20, 20)).unwrap();
        next.flush().unwrap();
        let last = HeadBook::open(&path).unwrap();
        assert_eq!(last.highest(&a).unwrap(), format!("30:{}", "1e".repeat(32)));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            HeadBook::open(&path),
            Err(ClientError::StateFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
