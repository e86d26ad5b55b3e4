//! The enclave's end of the audit chain: the head (next sequence number and the last
//! entry's hash) and the entries the proxy has not yet confirmed storing.
//!
//! Entries are built and signed here, under the state lock, so their order is the order in
//! which decisions took effect. The proxy stores them with the answer's other effects and
//! says in each call how many it holds (`Call::audit_stored`); entries it has not confirmed
//! stay here, so after a storage failure it can fetch them again
//! (`Request::AuditBacklog`, in pages of at most [`BACKLOG_PAGE_BYTES`]), and once
//! [`MAX_UNSTORED`] are waiting the enclave refuses new decisions rather than make ones
//! that may never be recorded.
//!
//! An entry is built in two steps, [`AuditLog::prepare`] (sign; can fail, changes nothing)
//! and [`AuditLog::commit`] (cannot fail), so a caller can apply the record to the state
//! between them and either both happen or neither.

use std::collections::VecDeque;

use serde_json::{Map, Value};
use strongroom_identity::{AuditEntry, Checkpoint, GENESIS_PREV, IdentityError, IdentityKey};
use strongroom_protocol::messages::AuditRecord;

use crate::record::Position;

/// Entries the enclave keeps for the proxy before it refuses to decide anything more.
pub const MAX_UNSTORED: usize = 4096;
/// Most bytes of entry lines one `AuditBacklog` answer carries (well inside a frame).
pub const BACKLOG_PAGE_BYTES: usize = 1024 * 1024;

/// Why an entry could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// So many entries wait for the proxy that no more are made until it stores them.
    #[error("{0} audit entries wait for the proxy to store them; no new decisions until it does")]
    Backlog(usize),
    /// The entry could not be built (too large, a reserved field).
    #[error("audit entry: {0}")]
    Entry(#[from] IdentityError),
}

/// A signed entry not yet in the log: [`AuditLog::commit`] puts it there.
#[derive(Debug)]
pub struct Prepared {
    record: AuditRecord,
    position: Position,
}

impl Prepared {
    /// Where the entry goes: its sequence number, hash and time.
    pub fn position(&self) -> Position {
        self.position
    }
}

/// The chain's head and the unconfirmed entries.
#[derive(Clone, Debug)]
pub struct AuditLog {
    next_seq: u64,
    head: [u8; 32],
    unstored: VecDeque<AuditRecord>,
    limit: usize,
}

impl Default for AuditLog {
    fn default() -> Self {
        Self::new(0, GENESIS_PREV)
    }
}

impl AuditLog {
    /// A log whose next entry is `next_seq`, after the entry whose hash is `head`.
    pub fn new(next_seq: u64, head: [u8; 32]) -> Self {
        Self {
            next_seq,
            head,
            unstored: VecDeque::new(),
            limit: MAX_UNSTORED,
        }
    }

    /// The same log refusing decisions once `limit` entries wait (at least 1).
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }

    /// The next entry's sequence number and the last entry's hash.
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.next_seq, self.head)
    }

    /// Builds and signs the next entry without keeping it; refused while the backlog is
    /// full, so nothing is decided that might never be stored.
    pub fn prepare(
        &self,
        key: &IdentityKey,
        time: u64,
        kind: &str,
        fields: Map<String, Value>,
    ) -> Result<Prepared, AuditError> {
        if self.backlog_full() {
            return Err(AuditError::Backlog(self.unstored.len()));
        }
        let (entry, hash) = AuditEntry::build(key, self.next_seq, &self.head, time, kind, fields)?;
        Ok(Prepared {
            record: AuditRecord {
                seq: self.next_seq,
                line: entry.to_line(),
            },
            position: Position {
                seq: self.next_seq,
                hash,
                time,
                signer: Some(key.public().0),
            },
        })
    }

    /// Keeps a prepared entry as the next one; returns its record for the proxy. A
    /// prepared entry is for the position it was made at: prepare and commit under one
    /// lock.
    pub fn commit(&mut self, prepared: Prepared) -> AuditRecord {
        debug_assert_eq!(prepared.position.seq, self.next_seq);
        self.next_seq = prepared.position.seq.saturating_add(1);
        self.head = prepared.position.hash;
        self.unstored.push_back(prepared.record.clone());
        prepared.record
    }

    /// Builds, signs and keeps the next entry; returns its record for the proxy.
    pub fn append(
        &mut self,
        key: &IdentityKey,
        time: u64,
        kind: &str,
        fields: Map<String, Value>,
    ) -> Result<AuditRecord, AuditError> {
        let prepared = self.prepare(key, time, kind, fields)?;
        Ok(self.commit(prepared))
    }

    /// The proxy holds every entry below `stored`: forget those.
    pub fn acknowledge(&mut self, stored: u64) {
        while self.unstored.front().is_some_and(|r| r.seq < stored) {
            self.unstored.pop_front();
        }
    }

    /// True once so many entries wait for the proxy that no new decision may be made.
    pub fn backlog_full(&self) -> bool {
        self.unstored.len() >= self.limit
    }

    /// The unconfirmed entries from `from` on, as many as fit in [`BACKLOG_PAGE_BYTES`]
    /// (always at least one, when there is one): the proxy asks again from after the last.
    pub fn backlog(&self, from: u64) -> Vec<AuditRecord> {
        let mut bytes = 0usize;
        let mut page = Vec::new();
        for r in self.unstored.iter().filter(|r| r.seq >= from) {
            bytes = bytes.saturating_add(r.line.len());
            if !page.is_empty() && bytes > BACKLOG_PAGE_BYTES {
                break;
            }
            page.push(r.clone());
        }
        page
    }

    /// How many entries wait for the proxy.
    pub fn unstored(&self) -> usize {
        self.unstored.len()
    }

    /// A signed statement of the head (None before the first entry).
    pub fn checkpoint(&self, key: &IdentityKey, time: u64) -> Option<Checkpoint> {
        let seq = self.next_seq.checked_sub(1)?;
        Some(Checkpoint::sign(key, seq, self.head, time))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn fields() -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("principal".into(), "desk".into());
        m
    }

    #[test]
    fn entries_chain_and_are_kept_until_acknowledged() {
        let key = IdentityKey::from_seed(&[1; 32]);
        let mut log = AuditLog::default();
        let a = log.append(&key, 10, "decision", fields()).unwrap();
        let b = log.append(&key, 11, "decision", fields()).unwrap();
        let ea = AuditEntry::parse_line(&a.line).unwrap();
        let eb = AuditEntry::parse_line(&b.line).unwrap();
        assert_eq!(eb.header().unwrap().prev, ea.hash());
        assert_eq!(log.head(), (2, eb.hash()));
        assert_eq!(log.backlog(0).len(), 2);
        log.acknowledge(1);
        assert_eq!(log.backlog(0), vec![b]);
        log.acknowledge(2);
        assert_eq!(log.unstored(), 0);
        let c = log.checkpoint(&key, 12).unwrap();
        assert_eq!((c.seq, c.hash), (1, eb.hash()));
        c.verify().unwrap();
    }

    #[test]
    fn the_backlog_comes_in_pages_that_fit_a_frame() {
        let key = IdentityKey::from_seed(&[1; 32]);
        let mut log = AuditLog::default();
        let mut fields = Map::new();
        fields.insert("pad".into(), "x".repeat(100_000).into());
        for _ in 0..25 {
            log.append(&key, 1, "decision", fields.clone()).unwrap();
        }
        let mut from = 0;
        let mut pages = 0;
        while from < 25 {
            let page = log.backlog(from);
            assert!(!page.is_empty());
            assert!(page.iter().map(|r| r.line.len()).sum::<usize>() <= BACKLOG_PAGE_BYTES);
            assert_eq!(page[0].seq, from, "a page starts where asked");
            from = page.last().unwrap().seq + 1;
            pages += 1;
        }
        assert_eq!(pages, 3, "25 entries of ~100 KB in pages of at most 1 MiB");
        assert!(log.backlog(25).is_empty());
    }

    #[test]
    fn a_prepared_entry_changes_nothing_until_committed() {
        let key = IdentityKey::from_seed(&[1; 32]);
        let mut log = AuditLog::default();
        let p = log.prepare(&key, 5, "decision", fields()).unwrap();
        assert_eq!(log.head(), (0, GENESIS_PREV));
        assert_eq!(log.unstored(), 0);
        let pos = p.position();
        let r = log.commit(p);
        assert_eq!((r.seq, log.head()), (0, (1, pos.hash)));
    }

    #[test]
    fn a_full_backlog_is_reported() {
        let key = IdentityKey::from_seed(&[1; 32]);
        let mut log = AuditLog::default();
        for _ in 0..MAX_UNSTORED {
            assert!(!log.backlog_full());
            log.append(&key, 1, "decision", Map::new()).unwrap();
        }
        assert!(log.backlog_full());
        log.acknowledge(1);
        assert!(!log.backlog_full());
    }
}
