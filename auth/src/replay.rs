//! The replay cache: every (key, nonce) seen until its stamp expires. Stamps may be valid
//! for at most [`crate::MAX_VALIDITY_SECS`], so the cache never holds more than that
//! window's requests, and a full cache refuses rather than forgets.

use std::collections::{BTreeSet, HashMap};

use sha2::{Digest, Sha256};

/// A (key id, nonce) pair, hashed: 32 bytes per entry whatever the nonce length, so the
/// cache's memory is fixed by its capacity.
type Entry = [u8; 32];

fn entry(key_id: &str, nonce: &[u8]) -> Entry {
    let mut h = Sha256::new();
    h.update((key_id.len() as u64).to_be_bytes());
    h.update(key_id.as_bytes());
    h.update(nonce);
    h.finalize().into()
}

/// Seen nonces, each kept until its stamp's expiry.
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashMap<Entry, u64>,
    by_expiry: BTreeSet<(u64, Entry)>,
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
    /// A cache holding at most `capacity` unexpired nonces (about 100 bytes each).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            by_expiry: BTreeSet::new(),
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

    fn evict_expired(&mut self, now: u64) {
        while let Some(&(expires, e)) = self.by_expiry.first() {
            if expires >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&e);
        }
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
        let e = entry(key_id, nonce);
        if self.seen.contains_key(&e) {
            return Err(ReplayRefusal::Replayed);
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayRefusal::Full);
        }
        self.seen.insert(e, expires_at);
        self.by_expiry.insert((expires_at, e));
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
}
