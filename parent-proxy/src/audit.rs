//! What the proxy knows of the audit chain it stores: how many entries it holds without a
//! gap from entry 0 (told to the enclave with every call, so the enclave can forget them),
//! and whether a store failed and the enclave's backlog must be fetched again.
//!
//! An answer is released only once every record up to its own is stored
//! ([`AuditTracker::wait_stored`]): concurrent answers commit in any order, and a record
//! stored after a gap could not be replayed at the next boot, so a signature released
//! before its predecessors were stored could be forgotten by a crash.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    /// Entries `0..next` are stored.
    next: u64,
    /// Stored entries above a gap (answers are applied out of order under concurrency).
    ahead: BTreeSet<u64>,
    /// A store failed: entries the enclave made are missing here.
    resync: bool,
}

/// The stored part of the chain, as far as this proxy knows.
#[derive(Debug, Default)]
pub struct AuditTracker {
    inner: Mutex<Inner>,
    /// Woken whenever the gap-free count grows.
    progress: Notify,
}

impl AuditTracker {
    /// Starts over from what the database holds (after an unseal).
    pub fn reset(&self, stored: u64) {
        if let Ok(mut i) = self.inner.lock() {
            *i = Inner {
                next: stored,
                ..Inner::default()
            };
        }
        self.progress.notify_waiters();
    }

    /// How many entries are stored without a gap from 0.
    pub fn stored(&self) -> u64 {
        self.inner.lock().map_or(0, |i| i.next)
    }

    /// Records entries as stored.
    pub fn stored_entries(&self, seqs: impl IntoIterator<Item = u64>) {
        let Ok(mut i) = self.inner.lock() else {
            return;
        };
        for seq in seqs {
            if seq >= i.next {
                i.ahead.insert(seq);
            }
        }
        let before = i.next;
        loop {
            let next = i.next;
            if !i.ahead.remove(&next) {
                break;
            }
            i.next += 1;
        }
        let grew = i.next > before;
        drop(i);
        if grew {
            self.progress.notify_waiters();
        }
    }

    /// Waits up to `limit` until entries `0..=through` are all stored; true if they are.
    pub async fn wait_stored(&self, through: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stored() > through {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.stored() > through;
            }
        }
    }

    /// A store failed: fetch the enclave's backlog before the next call.
    pub fn store_failed(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.resync = true;
        }
    }

    /// Whether the enclave's backlog must be fetched; clears the flag (set it again with
    /// [`store_failed`](Self::store_failed) if fetching fails).
    pub fn take_resync(&self) -> bool {
        self.inner
            .lock()
            .map(|mut i| std::mem::take(&mut i.resync))
            .unwrap_or(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_what_has_no_gap_below() {
        let t = AuditTracker::default();
        t.reset(3);
        t.stored_entries([5, 4]);
        assert_eq!(t.stored(), 3, "entry 3 is still missing");
        t.stored_entries([3]);
        assert_eq!(t.stored(), 6);
        t.stored_entries([1, 6]);
        assert_eq!(t.stored(), 7);
    }

    #[tokio::test]
    async fn waiting_ends_when_the_entries_before_are_stored() {
        let t = std::sync::Arc::new(AuditTracker::default());
        t.stored_entries([1]);
        assert!(
            !t.wait_stored(1, Duration::from_millis(20)).await,
            "0 is missing"
        );
        let waiter = {
            let t = std::sync::Arc::clone(&t);
            tokio::spawn(async move { t.wait_stored(1, Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        t.stored_entries([0]);
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn a_failure_asks_for_one_resync() {
        let t = AuditTracker::default();
        assert!(!t.take_resync());
        t.store_failed();
        assert!(t.take_resync());
        assert!(!t.take_resync());
    }
}
