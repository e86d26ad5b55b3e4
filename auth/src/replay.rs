//! The replay cache: every (key, nonce) seen until its stamp expires. Stamps may be valid
//! for at most [`crate::MAX_VALIDITY_SECS`], so the cache never holds more than that
//! window's requests, and a full cache refuses rather than forgets.
//!
//! Compact, in time buckets: a (key, nonce) is kept as a 64-bit SipHash under a key drawn
//! at random per process (a parent cannot choose nonces that collide), in one hash set for
//! the check and in the bucket of its expiry second for the eviction, which drops a whole
//! second's entries at once. About 26 bytes an entry, whatever the nonce's length, so the
//! memory is fixed by the capacity and flat under a steady rate: at a rate of R stamped
//! requests a second with stamps valid for V seconds, R·V entries. Two different stamps
//! hash alike with probability about n/2⁶⁴ for n live entries: never, in practice (and a
//! collision only refuses a stamp, it never accepts one).

use std::collections::hash_map::RandomState;
use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;

/// Seen nonces, each kept until its stamp's expiry.
#[derive(Debug)]
pub struct ReplayCache {
    hasher: RandomState,
    seen: HashSet<u64>,
    /// (expiry second, hashes expiring then), in ascending expiry.
    buckets: VecDeque<(u64, Vec<u64>)>,
    capacity: usize,
}

/// Why a nonce was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// Seen before within its validity.
    Replayed,
    /// The cache is full of unexpired nonces.
    Full,
}

impl ReplayCache {
    /// A cache holding at most `capacity` unexpired nonces (about 26 bytes each).
    pub fn new(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            seen: HashSet::new(),
            buckets: VecDeque::new(),
            capacity,
        }
    }

    /// Number of nonces held.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn hash(&self, key_id: &str, nonce: &[u8]) -> u64 {
        self.hasher.hash_one((key_id, nonce))
    }

    fn evict_expired(&mut self, now: u64) {
        while self
            .buckets
            .front()
            .is_some_and(|(expires, _)| *expires < now)
        {
            if let Some((_, hashes)) = self.buckets.pop_front() {
                for h in hashes {
                    self.seen.remove(&h);
                }
            }
        }
    }

    /// Whether (key, nonce) is held (and unexpired at `now`).
    pub fn contains(&mut self, key_id: &str, nonce: &[u8], now: u64) -> bool {
        self.evict_expired(now);
        self.seen.contains(&self.hash(key_id, nonce))
    }

    /// Records (key, nonce) valid until `expires_at`, or refuses it.
    pub fn check_and_insert(
        &mut self,
        key_id: &str,
        nonce: &[u8],
        expires_at: u64,
        now: u64,
    ) -> Result<(), ReplayRefusal> {
        self.evict_expired(now);
        let h = self.hash(key_id, nonce);
        if self.seen.contains(&h) {
            return Err(ReplayRefusal::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayRefusal::Full);
        }
        self.seen.insert(h);
        // Most stamps expire at about the same offset from now, so the bucket is usually
        // the last one; at most MAX_VALIDITY_SECS + 1 buckets exist.
        match self.buckets.iter().rposition(|(e, _)| *e <= expires_at) {
            Some(i) if self.buckets[i].0 == expires_at => self.buckets[i].1.push(h),
            Some(i) => self.buckets.insert(i + 1, (expires_at, vec![h])),
            None => self.buckets.push_front((expires_at, vec![h])),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_expiry_and_the_cache_is_bounded() {
        let mut c = ReplayCache::new(2);
        assert_eq!(c.check_and_insert("k", b"n1", 100, 10), Ok(()));
        assert_eq!(
            c.check_and_insert("k", b"n1", 100, 50),
            Err(ReplayRefusal::Replayed)
        );
        // Same nonce from another key is a different request.
        assert_eq!(c.check_and_insert("j", b"n1", 200, 50), Ok(()));
        assert_eq!(
            c.check_and_insert("k", b"n2", 100, 50),
            Err(ReplayRefusal::Full)
        );
        // After the first expires, its slot frees (its stamp can no longer verify anyway).
        assert_eq!(c.check_and_insert("k", b"n2", 300, 101), Ok(()));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn out_of_order_expiries_are_evicted_when_due_and_not_before() {
        let mut c = ReplayCache::new(100);
        for (nonce, expires) in [
            (b"a", 50u64),
            (b"b", 30),
            (b"c", 40),
            (b"d", 30),
            (b"e", 60),
        ] {
            assert_eq!(c.check_and_insert("k", nonce, expires, 10), Ok(()));
        }
        assert_eq!(c.len(), 5);
        // At 30 nothing has expired (a stamp is valid through its expiry second).
        assert_eq!(
            c.check_and_insert("k", b"a", 50, 30),
            Err(ReplayRefusal::Replayed)
        );
        assert_eq!(
            c.check_and_insert("k", b"b", 30, 30),
            Err(ReplayRefusal::Replayed)
        );
        // At 41, b, d (30) and c (40) are gone; a and e stay.
        assert_eq!(c.check_and_insert("k", b"f", 90, 41), Ok(()));
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.check_and_insert("k", b"e", 60, 41),
            Err(ReplayRefusal::Replayed)
        );
        let expiries: Vec<u64> = c.buckets.iter().map(|(e, _)| *e).collect();
        assert_eq!(expiries, [50, 60, 90], "buckets stay in order");
    }

    #[test]
    fn a_steady_rate_keeps_a_steady_size() {
        // 1,000 stamps a second valid for 300 s: the cache settles at 300,000 entries.
        let mut c = ReplayCache::new(400_000);
        let mut sizes = Vec::new();
        for second in 0..900u64 {
            for i in 0..1_000u64 {
                let nonce = (second * 1_000 + i).to_be_bytes();
                assert_eq!(
                    c.check_and_insert("k", &nonce, second + 300, second),
                    Ok(())
                );
            }
            sizes.push(c.len());
        }
        assert_eq!(sizes[299], 300_000);
        assert!(
            sizes[300..].iter().all(|n| *n <= 301_000),
            "flat after the window"
        );
        assert!(c.buckets.len() <= 302);
    }
}
