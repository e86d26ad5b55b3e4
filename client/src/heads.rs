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
//! Answers from one boot may arrive out of order (concurrent requests): a lower head from
//! the same boot, or from an earlier boot below the next boot's start, is fine.
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

/// The file's format version.
const FORMAT: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BootSeen {
    /// Where the boot began.
    boot_seq: u64,
    /// The highest head its answers named.
    max_seq: u64,
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
            let others = || d.boots.iter().filter(|(other, _)| **other != id);
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
    if book.version != FORMAT {
        return Err(state_error(
            path,
            format!("format {} (this client writes {FORMAT})", book.version),
        ));
    }
    Ok(Some(book))
}

/// Keeps, per deployment, the higher head and every boot with its higher head.
fn merge(book: &mut Book, other: Book) {
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
    fn deployments_are_kept_apart() {
        let book = HeadBook::in_memory();
        let (a, ia) = boot(1, 0);
        book.observe(&a, &ia, &head(10, 10)).unwrap();
        let (mut other, io) = boot(2, 3);
        other.genesis = [9; 32];
        book.observe(&other, &io, &head(3, 3)).unwrap();
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
