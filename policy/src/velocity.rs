//! Velocity counters: what was signed recently, so rolling-window limits can be enforced.
//!
//! A counter is keyed by (scope, subject, window): a limit's scope, what it counts (the key
//! id, principal id or rule name) and its window W. It holds count and native value in time
//! buckets of `max(1, ceil(W / 60))` seconds. A limit sums every bucket its window touches,
//! the whole bucket holding `now - W` included, so it is never exceeded and a request may
//! be refused up to one bucket (W/60) early. Buckets after `now` (a clock that went back)
//! count too: fail closed.
//!
//! Memory: a counter holds at most [`BUCKETS_PER_WINDOW`] + 1 buckets, and counters exist
//! only for subjects that signed within their window (recording prunes the counters it
//! touches and sweeps the rest at most once a minute). A signature no limit of the policy
//! could count records nothing, so a limit whose (scope, window) no earlier policy counted
//! starts counting when it takes effect.
//!
//! The enclave seals [`Velocity::to_bytes`] and restores it with [`Velocity::from_bytes`];
//! the bytes come back from untrusted storage, so decoding is bounded and strict. The
//! bytes depend only on the signatures recorded (the last sweep's time is sealed too), so
//! replaying the same signatures, from empty or from a restored snapshot, gives the same
//! bytes.

use std::collections::BTreeMap;

use alloy_primitives::U256;

use crate::error::PolicyError;
use crate::policy::Scope;
use crate::units::MAX_WINDOW_SECS;

/// Buckets a window is divided into; a counter holds at most one more (the window's ends
/// fall inside buckets).
pub const BUCKETS_PER_WINDOW: usize = 60;
/// Longest key id, principal id or rule name a counter can be kept for (one length byte).
pub const MAX_SUBJECT_LEN: usize = 255;

const MAX_BUCKETS: usize = BUCKETS_PER_WINDOW + 1;
/// Full sweeps of stale counters happen at most this often (enclave seconds).
const SWEEP_INTERVAL: u64 = 60;

const MAGIC: &[u8; 4] = b"SRVC";
const FORMAT: u8 = 1;
/// Magic, format, last sweep (u64), counter count (u32).
const HEADER_LEN: usize = MAGIC.len() + 1 + 8 + 4;
/// index (u64) + count (u64) + value (32 bytes).
const BUCKET_LEN: usize = 8 + 8 + 32;
/// Scope, subject length, a one-byte subject, window, bucket count, one bucket.
const MIN_COUNTER_LEN: usize = 1 + 1 + 1 + 8 + 1 + BUCKET_LEN;

/// One signature to record: what [`crate::Engine::commit`] records for an allowed signing
/// request, and what a caller replaying a log of past signatures passes to
/// [`crate::Engine::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureRecord<'a> {
    /// When it was allowed (unix seconds, enclave clock).
    pub time: u64,
    /// The signing key's id.
    pub key: &'a str,
    /// The principal that asked.
    pub principal: &'a str,
    /// The rule that allowed it.
    pub rule: &'a str,
    /// Native value moved (wei); zero for anything but a transaction.
    pub value: U256,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    index: u64,
    count: u64,
    value: U256,
}

/// Field order gives the encoding's order: scope byte, subject bytes, window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct CounterKey {
    scope: Scope,
    subject: String,
    window: u64,
}

/// Velocity counters per (scope, subject, window), in time buckets. `Default` is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Velocity {
    /// Each counter's non-empty buckets, ascending by index; never empty.
    counters: BTreeMap<CounterKey, Vec<Bucket>>,
    /// Enclave time of the last full sweep. Sealed with the counters, so the bytes are a
    /// function of the recorded history alone, restores included.
    last_sweep: u64,
}

/// Bucket width in seconds for a window of `window` seconds.
pub(crate) fn width(window: u64) -> u64 {
    window.div_ceil(BUCKETS_PER_WINDOW as u64).max(1)
}

/// The oldest bucket a window of `window` seconds ending at `now` counts.
fn first_counted(window: u64, now: u64) -> u64 {
    now.saturating_sub(window) / width(window)
}

/// Drops the buckets no window ending at `now` or later can count.
fn prune_buckets(buckets: &mut Vec<Bucket>, window: u64, now: u64) {
    let first = first_counted(window, now);
    let dead = buckets.partition_point(|b| b.index < first);
    buckets.drain(..dead);
}

fn scope_byte(scope: Scope) -> u8 {
    match scope {
        Scope::Key => 0,
        Scope::Principal => 1,
        Scope::Rule => 2,
    }
}

impl Velocity {
    /// Number of counters.
    pub fn counters(&self) -> usize {
        self.counters.len()
    }

    /// Number of buckets over all counters.
    pub fn buckets(&self) -> usize {
        self.counters.values().map(Vec::len).sum()
    }

    /// Count and total native value a limit of `scope` over `window` seconds sees for
    /// `subject` at `now`: every bucket from the one holding `now - window` on, later
    /// ones (a clock that went back) included. Saturating, so an absurd total still
    /// compares as over the limit.
    pub fn totals(&self, scope: Scope, subject: &str, window: u64, now: u64) -> (u64, U256) {
        let key = CounterKey {
            scope,
            subject: subject.to_owned(),
            window,
        };
        let first = first_counted(window, now);
        self.counters
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|b| b.index >= first)
            .fold((0u64, U256::ZERO), |(count, value), b| {
                (count.saturating_add(b.count), value.saturating_add(b.value))
            })
    }

    /// Drops the buckets and counters no window ending at `now` or later can count.
    /// Recording does this by itself; calling it only frees memory sooner.
    pub fn prune(&mut self, now: u64) {
        self.counters.retain(|key, buckets| {
            prune_buckets(buckets, key.window, now);
            !buckets.is_empty()
        });
        self.last_sweep = now;
    }

    /// Adds a signature at `time` moving `value` to each (scope, subject, window) counter
    /// in `counters` (the caller passes each once), prunes those counters and sweeps the
    /// rest when a sweep is due. Counters whose subject or window the encoding cannot hold
    /// are skipped; the engine denies such requests before they get here. True when
    /// something was recorded; nothing changes otherwise.
    pub(crate) fn record<'a>(
        &mut self,
        time: u64,
        value: U256,
        counters: impl IntoIterator<Item = (Scope, &'a str, u64)>,
    ) -> bool {
        let mut recorded = false;
        for (scope, subject, window) in counters {
            recorded |= self.add(scope, subject, window, time, value);
        }
        if recorded && time.abs_diff(self.last_sweep) >= SWEEP_INTERVAL {
            self.prune(time);
        }
        recorded
    }

    fn add(&mut self, scope: Scope, subject: &str, window: u64, time: u64, value: U256) -> bool {
        if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN || !valid_window(window) {
            return false;
        }
        let index = time / width(window);
        let key = CounterKey {
            scope,
            subject: subject.to_owned(),
            window,
        };
        let buckets = self.counters.entry(key).or_default();
        prune_buckets(buckets, window, time);
        match buckets.last_mut() {
            // A clock that went back adds to the newest bucket, which counts at least as
            // long; so buckets are only ever appended and stay within one window.
            Some(last) if last.index >= index => {
                last.count = last.count.saturating_add(1);
                last.value = last.value.saturating_add(value);
            }
            _ => buckets.push(Bucket {
                index,
                count: 1,
                value,
            }),
        }
        // Appending at `time / width` after pruning at `time` leaves at most MAX_BUCKETS;
        // should that ever fail, fold the oldest into the next (counted longer, never
        // less) rather than write bytes from_bytes would refuse.
        while buckets.len() > MAX_BUCKETS {
            let oldest = buckets.remove(0);
            if let Some(next) = buckets.first_mut() {
                next.count = next.count.saturating_add(oldest.count);
                next.value = next.value.saturating_add(oldest.value);
            }
        }
        true
    }

    /// Deterministic binary form: `"SRVC"`, format byte 1, last sweep time (u64 BE),
    /// counter count (u32 BE), then per counter in ascending (scope, subject, window)
    /// order: scope byte (0 key, 1 principal, 2 rule), subject as a length byte and UTF-8,
    /// window (u64 BE), bucket count (u8), and per bucket in ascending index order: index
    /// (u64 BE), count (u64 BE), value (32 bytes BE).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_LEN + self.counters.len() * (MIN_COUNTER_LEN + 32) + self.buckets() * BUCKET_LEN,
        );
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&self.last_sweep.to_be_bytes());
        // Far fewer counters than 2^32 fit in an enclave's memory.
        let count = u32::try_from(self.counters.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for (key, buckets) in &self.counters {
            out.push(scope_byte(key.scope));
            // add() keeps subjects ≤ MAX_SUBJECT_LEN and counters ≤ MAX_BUCKETS buckets.
            out.push(u8::try_from(key.subject.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(key.subject.as_bytes());
            out.extend_from_slice(&key.window.to_be_bytes());
            out.push(u8::try_from(buckets.len()).unwrap_or(u8::MAX));
            for b in buckets {
                out.extend_from_slice(&b.index.to_be_bytes());
                out.extend_from_slice(&b.count.to_be_bytes());
                out.extend_from_slice(&b.value.to_be_bytes::<32>());
            }
        }
        out
    }

    /// Decodes [`Velocity::to_bytes`], accepting only its canonical output: refuses
    /// truncation, trailing bytes, counts larger than the bytes could hold (before
    /// allocating), unknown scopes, empty or non-UTF-8 subjects, windows outside
    /// 1..=[`MAX_WINDOW_SECS`], counters out of order or repeated, and counters with no
    /// buckets, more than [`BUCKETS_PER_WINDOW`] + 1, buckets out of order or a bucket
    /// with a zero count.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PolicyError> {
        let mut r = Reader(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(malformed("bad magic"));
        }
        if r.byte()? != FORMAT {
            return Err(malformed("unknown format version"));
        }
        let last_sweep = r.u64()?;
        let count = u32::from_be_bytes(r.array()?) as usize;
        if count.saturating_mul(MIN_COUNTER_LEN) > r.0.len() {
            return Err(malformed("counter count exceeds the data"));
        }
        let mut counters = BTreeMap::new();
        for _ in 0..count {
            let scope = match r.byte()? {
                0 => Scope::Key,
                1 => Scope::Principal,
                2 => Scope::Rule,
                _ => return Err(malformed("unknown scope")),
            };
            let len = usize::from(r.byte()?);
            if len == 0 {
                return Err(malformed("empty subject"));
            }
            let subject = std::str::from_utf8(r.take(len)?)
                .map_err(|_| malformed("subject is not UTF-8"))?
                .to_owned();
            let window = r.u64()?;
            if !valid_window(window) {
                return Err(malformed("window out of range"));
            }
            let n = usize::from(r.byte()?);
            if n == 0 {
                return Err(malformed("counter without buckets"));
            }
            if n > MAX_BUCKETS {
                return Err(malformed("too many buckets"));
            }
            if n * BUCKET_LEN > r.0.len() {
                return Err(malformed("bucket count exceeds the data"));
            }
            let mut buckets: Vec<Bucket> = Vec::with_capacity(n);
            for _ in 0..n {
                let bucket = Bucket {
                    index: r.u64()?,
                    count: r.u64()?,
                    value: U256::from_be_bytes::<32>(r.array()?),
                };
                if bucket.count == 0 {
                    return Err(malformed("bucket with a zero count"));
                }
                if buckets.last().is_some_and(|b| b.index >= bucket.index) {
                    return Err(malformed("buckets out of order"));
                }
                buckets.push(bucket);
            }
            let key = CounterKey {
                scope,
                subject,
                window,
            };
            if counters
                .last_key_value()
                .is_some_and(|(last, _)| *last >= key)
            {
                return Err(malformed("counters out of order"));
            }
            counters.insert(key, buckets);
        }
        if !r.0.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        Ok(Self {
            counters,
            last_sweep,
        })
    }
}

fn valid_window(window: u64) -> bool {
    (1..=MAX_WINDOW_SECS).contains(&window)
}

fn malformed(what: &'static str) -> PolicyError {
    PolicyError::VelocityMalformed(what)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PolicyError> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(malformed("truncated"))?;
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PolicyError> {
        self.take(N)?.try_into().map_err(|_| malformed("truncated"))
    }

    fn byte(&mut self) -> Result<u8, PolicyError> {
        let [b] = self.array()?;
        Ok(b)
    }

    fn u64(&mut self) -> Result<u64, PolicyError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests;
