//! The velocity ledger: what was signed recently, so rolling-window limits can be
//! enforced. The enclave seals [`Ledger::to_bytes`] and restores it with
//! [`Ledger::from_bytes`]; the bytes come back from untrusted storage, so decoding is
//! bounded and strict.

use alloy_primitives::U256;

use crate::error::PolicyError;

/// Most entries a ledger holds. When full, signing is refused rather than an entry
/// forgotten: forgetting would loosen every velocity limit.
pub const MAX_LEDGER_ENTRIES: usize = 4096;
/// Longest key id, principal id or rule name an entry can hold (one length byte).
pub const MAX_LEDGER_ID_LEN: usize = 255;

const MAGIC: &[u8; 4] = b"SRVL";
const FORMAT: u8 = 1;
const HEADER_LEN: usize = MAGIC.len() + 1 + 4;
/// time (8) + value (32) + three length bytes.
const MIN_ENTRY_LEN: usize = 8 + 32 + 3;

/// One allowed signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// When it was allowed (unix seconds, enclave clock).
    pub time: u64,
    /// The signing key's id.
    pub key: String,
    /// The principal that asked.
    pub principal: String,
    /// The rule that allowed it.
    pub rule: String,
    /// Native value moved (wei); zero for anything but a transaction.
    pub value: U256,
}

/// Recent allowed signatures, oldest first by insertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ledger {
    entries: Vec<LedgerEntry>,
    capacity: usize,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a signature at `time` counts in a window of `window` seconds ending at `now`.
/// Entries stamped after `now` (a clock that went back) count: fail closed.
pub(crate) fn in_window(time: u64, now: u64, window: u64) -> bool {
    time.saturating_add(window) > now
}

impl Ledger {
    /// An empty ledger holding up to [`MAX_LEDGER_ENTRIES`].
    pub fn new() -> Self {
        Self::with_capacity(MAX_LEDGER_ENTRIES)
    }

    /// An empty ledger holding up to `capacity` entries (at most [`MAX_LEDGER_ENTRIES`]).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity: capacity.min(MAX_LEDGER_ENTRIES),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Most entries it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The entries, in insertion order.
    pub fn entries(&self) -> &[LedgerEntry] {
        &self.entries
    }

    /// Drops entries that no window of `horizon` seconds ending at `now` can count.
    pub fn prune(&mut self, now: u64, horizon: u64) {
        self.entries.retain(|e| in_window(e.time, now, horizon));
    }

    /// Entries that [`Ledger::prune`] with these arguments would keep.
    pub(crate) fn live_len(&self, now: u64, horizon: u64) -> usize {
        self.entries
            .iter()
            .filter(|e| in_window(e.time, now, horizon))
            .count()
    }

    /// Appends an entry, refusing when full or when a name does not fit the format.
    pub(crate) fn record(&mut self, entry: LedgerEntry) -> Result<(), PolicyError> {
        if self.entries.len() >= self.capacity {
            return Err(PolicyError::LedgerFull(self.entries.len()));
        }
        if [&entry.key, &entry.principal, &entry.rule]
            .iter()
            .any(|s| s.len() > MAX_LEDGER_ID_LEN)
        {
            return Err(PolicyError::LedgerMalformed(
                "entry name longer than 255 bytes",
            ));
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Count and total value of the entries `matches` selects within the window.
    pub(crate) fn totals(
        &self,
        now: u64,
        window: u64,
        matches: impl Fn(&LedgerEntry) -> bool,
    ) -> (u64, U256) {
        self.entries
            .iter()
            .filter(|e| in_window(e.time, now, window) && matches(e))
            .fold((0u64, U256::ZERO), |(count, value), e| {
                // Saturating: an absurd total must still compare as "over the limit".
                (count.saturating_add(1), value.saturating_add(e.value))
            })
    }

    /// Deterministic binary form: `"SRVL"`, format byte 1, entry count (u32 BE), then per
    /// entry time (u64 BE), value (32 bytes BE), and key, principal, rule as a length byte
    /// and UTF-8.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.entries.len() * (MIN_ENTRY_LEN + 80));
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        // len ≤ MAX_LEDGER_ENTRIES, which fits in u32.
        out.extend_from_slice(
            &u32::try_from(self.entries.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for e in &self.entries {
            out.extend_from_slice(&e.time.to_be_bytes());
            out.extend_from_slice(&e.value.to_be_bytes::<32>());
            for s in [&e.key, &e.principal, &e.rule] {
                // record() keeps names ≤ 255 bytes.
                out.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(s.as_bytes());
            }
        }
        out
    }

    /// Decodes [`Ledger::to_bytes`], refusing truncation, trailing bytes, a count larger
    /// than [`MAX_LEDGER_ENTRIES`] or than the bytes could hold, and non-UTF-8 names.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PolicyError> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(PolicyError::LedgerMalformed("bad magic"));
        }
        if r.take(1)? != [FORMAT] {
            return Err(PolicyError::LedgerMalformed("unknown format version"));
        }
        let count = u32::from_be_bytes(r.array()?) as usize;
        if count > MAX_LEDGER_ENTRIES {
            return Err(PolicyError::LedgerMalformed(
                "more entries than the ledger holds",
            ));
        }
        // Checked before allocating: a lying count cannot make us reserve memory.
        if count.saturating_mul(MIN_ENTRY_LEN) > r.0.len() {
            return Err(PolicyError::LedgerMalformed("entry count exceeds the data"));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let time = u64::from_be_bytes(r.array()?);
            let value = U256::from_be_bytes::<32>(r.array()?);
            let key = r.string()?;
            let principal = r.string()?;
            let rule = r.string()?;
            entries.push(LedgerEntry {
                time,
                key,
                principal,
                rule,
                value,
            });
        }
        if !r.0.is_empty() {
            return Err(PolicyError::LedgerMalformed("trailing bytes"));
        }
        Ok(Self {
            entries,
            capacity: MAX_LEDGER_ENTRIES,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PolicyError> {
        if self.0.len() < n {
            return Err(PolicyError::LedgerMalformed("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PolicyError> {
        self.take(N)?
            .try_into()
            .map_err(|_| PolicyError::LedgerMalformed("truncated"))
    }

    fn string(&mut self) -> Result<String, PolicyError> {
        let [len] = self.array::<1>()?;
        let bytes = self.take(usize::from(len))?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| PolicyError::LedgerMalformed("name is not UTF-8"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn entry(time: u64, value: u64) -> LedgerEntry {
        LedgerEntry {
            time,
            key: "k1".into(),
            principal: "p".into(),
            rule: "r".into(),
            value: U256::from(value),
        }
    }

    fn sample() -> Ledger {
        let mut l = Ledger::new();
        l.record(entry(100, 5)).unwrap();
        l.record(LedgerEntry {
            key: "ké".into(),
            value: U256::MAX,
            ..entry(200, 0)
        })
        .unwrap();
        l
    }

    #[test]
    fn bytes_round_trip() {
        let l = sample();
        let bytes = l.to_bytes();
        assert_eq!(Ledger::from_bytes(&bytes).unwrap(), l);
        assert_eq!(
            Ledger::from_bytes(&Ledger::new().to_bytes()).unwrap(),
            Ledger::new()
        );
        // Deterministic.
        assert_eq!(sample().to_bytes(), bytes);
    }

    #[test]
    fn truncation_and_trailing_bytes_are_refused() {
        let bytes = sample().to_bytes();
        for n in 0..bytes.len() {
            assert!(
                Ledger::from_bytes(&bytes[..n]).is_err(),
                "prefix {n} accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            Ledger::from_bytes(&longer),
            Err(PolicyError::LedgerMalformed("trailing bytes"))
        );
    }

    #[test]
    fn lying_counts_are_refused_before_allocation() {
        let mut bytes = sample().to_bytes();
        bytes[5..9].copy_from_slice(&4_000u32.to_be_bytes());
        assert_eq!(
            Ledger::from_bytes(&bytes),
            Err(PolicyError::LedgerMalformed("entry count exceeds the data"))
        );
        bytes[5..9].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Ledger::from_bytes(&bytes),
            Err(PolicyError::LedgerMalformed(
                "more entries than the ledger holds"
            ))
        );
        let mut bad_magic = sample().to_bytes();
        bad_magic[0] = b'X';
        assert!(Ledger::from_bytes(&bad_magic).is_err());
        let mut bad_utf8 = Ledger::new();
        bad_utf8.record(entry(1, 1)).unwrap();
        let mut b = bad_utf8.to_bytes();
        let pos = b.len() - 1; // last byte of the rule name
        b[pos] = 0xff;
        assert_eq!(
            Ledger::from_bytes(&b),
            Err(PolicyError::LedgerMalformed("name is not UTF-8"))
        );
    }

    #[test]
    fn windows_and_pruning() {
        let mut l = Ledger::new();
        for t in [10, 20, 30] {
            l.record(entry(t, 1)).unwrap();
        }
        assert_eq!(l.totals(30, 15, |_| true), (2, U256::from(2)));
        assert_eq!(l.totals(30, 21, |_| true), (3, U256::from(3)));
        // An entry stamped in the future still counts.
        assert_eq!(l.totals(5, 1, |_| true), (3, U256::from(3)));
        l.prune(30, 15);
        assert_eq!(l.len(), 2);
        l.prune(1_000, 0);
        assert!(l.is_empty());
    }

    #[test]
    fn full_ledger_refuses() {
        let mut l = Ledger::with_capacity(1);
        l.record(entry(1, 1)).unwrap();
        assert_eq!(l.record(entry(2, 1)), Err(PolicyError::LedgerFull(1)));
        let long = LedgerEntry {
            rule: "r".repeat(256),
            ..entry(1, 1)
        };
        assert!(Ledger::new().record(long).is_err());
    }
}
