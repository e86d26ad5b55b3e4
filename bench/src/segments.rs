//! Server CPU per request early and late in one run: whether a request costs more once the
//! enclave holds a long history. Every state change is a record in the audit chain, so a
//! cost that grew with the log would show here; the project's goal is the last segment
//! within 10% of the first.
//!
//! The clients count measured requests as they complete, and the one completing a marked
//! request takes a CPU snapshot: at every multiple of N (only the first and the last two
//! are kept), and, when a request budget fixes the measured total T, at T − N and T.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::cpu::{self, Snapshot};

/// The goal: the last segment's server CPU per request at most this times the first's.
pub const GOAL_RATIO: f64 = 1.10;

/// The snapshots taken so far.
#[derive(Default)]
struct Taken {
    /// At request N: the end of the first segment.
    first_end: Option<Snapshot>,
    /// The last two multiples of N reached and their snapshots, oldest first.
    boundaries: Vec<(u64, Snapshot)>,
    /// At request T − N, when the total T is known.
    tail_start: Option<Snapshot>,
    /// At request T, when the total T is known.
    tail_end: Option<Snapshot>,
}

/// The clients' shared count of completed measured requests and the snapshots at its marks.
pub struct Marks {
    every: u64,
    /// The measured total when a budget fixes it; 0 while unknown.
    total: AtomicU64,
    done: AtomicU64,
    taken: Mutex<Taken>,
    /// Reads the CPU counters ([`cpu::snapshot`]; made-up readings in tests).
    clock: fn() -> Option<Snapshot>,
}

impl Marks {
    /// Marks every `every` requests (at least 1).
    pub fn new(every: u64) -> Self {
        Self::with_clock(every, cpu::snapshot)
    }

    fn with_clock(every: u64, clock: fn() -> Option<Snapshot>) -> Self {
        Self {
            every: every.max(1),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            taken: Mutex::new(Taken::default()),
            clock,
        }
    }

    /// The measured window will complete `total` requests (a budget run), so the last
    /// segment is requests total − N + 1 to total.
    pub fn expect_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    /// One more measured request completed; snapshots the CPU counters at a mark.
    pub fn completed(&self) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let every = self.every;
        let total = self.total.load(Ordering::Relaxed);
        let boundary = n.is_multiple_of(every);
        // Only with room for two segments is there a last one apart from the first.
        let tail = total >= every.saturating_mul(2);
        let tail_start = tail && n == total - every;
        let tail_end = tail && n == total;
        if !(boundary || tail_start || tail_end) {
            return;
        }
        let Some(snapshot) = (self.clock)() else {
            return;
        };
        // A poisoned lock means a client panicked; the run fails on that anyway.
        let Ok(mut taken) = self.taken.lock() else {
            return;
        };
        if n == every {
            taken.first_end = Some(snapshot);
        }
        if boundary {
            // Clients may reach neighbouring marks out of order: keep the two highest.
            taken.boundaries.push((n, snapshot));
            taken.boundaries.sort_by_key(|(at, _)| *at);
            if taken.boundaries.len() > 2 {
                taken.boundaries.remove(0);
            }
        }
        if tail_start {
            taken.tail_start = Some(snapshot);
        }
        if tail_end {
            taken.tail_end = Some(snapshot);
        }
    }

    /// The comparison of the first and last segments; `start` is the snapshot at the
    /// start of the measured window.
    pub fn summarise(&self, start: Option<&Snapshot>) -> Segments {
        let every = self.every;
        let completed = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let mut segments = Segments::none(every, completed);
        let needed = every.saturating_mul(2);
        if completed < needed {
            segments.note = format!(
                "needs at least 2 × {every} = {needed} completed requests; the run completed \
                 {completed}"
            );
            return segments;
        }
        let Ok(taken) = self.taken.lock() else {
            segments.note = "a client failed while taking a CPU snapshot".into();
            return segments;
        };
        let (Some(start), Some(first_end)) = (start, taken.first_end.as_ref()) else {
            segments.note = "no CPU counters here (/proc is not Linux's)".into();
            return segments;
        };
        let (last, basis) = match (&taken.tail_start, &taken.tail_end) {
            (Some(a), Some(b)) if completed == total => (
                window(total - every + 1, total, a, b),
                LastBasis::BudgetTotal,
            ),
            _ => {
                let [(from, a), (to, b)] = taken.boundaries.as_slice() else {
                    segments.note = "fewer than two segment boundaries were recorded".into();
                    return segments;
                };
                (window(from + 1, *to, a, b), LastBasis::LastBoundary)
            }
        };
        let first = window(1, every, start, first_end);
        let (Some(first), Some(last)) = (first, last) else {
            segments.note = "a segment was too short for the CPU counters to advance".into();
            return segments;
        };
        let ratio = (first.server_us_per_request > 0.0)
            .then(|| last.server_us_per_request / first.server_us_per_request);
        segments.note = match basis {
            LastBasis::BudgetTotal => {
                format!("first {every} and last {every} of the {completed} measured requests")
            }
            LastBasis::LastBoundary => format!(
                "first {every} and the last complete {every}-request segment (requests {}–{}) \
                 of {completed} measured requests; the {} after it are in neither",
                last.from_request,
                last.to_request,
                completed - last.to_request
            ),
        };
        segments.compared = Some(Compared {
            within_goal: ratio.map(|r| r <= GOAL_RATIO),
            last_over_first: ratio,
            first,
            last,
            last_basis: basis,
        });
        segments
    }
}

/// Requests `from`..=`to` between snapshots `a` and `b`; None when the counters did not
/// advance between them.
fn window(from: u64, to: u64, a: &Snapshot, b: &Snapshot) -> Option<Window> {
    let usage = cpu::usage(a, b)?;
    let requests = (to + 1).saturating_sub(from).max(1) as f64;
    Some(Window {
        from_request: from,
        to_request: to,
        seconds: usage.wall_seconds,
        server_cpu_seconds: usage.rest_cpu_seconds,
        server_us_per_request: usage.rest_cpu_seconds * 1e6 / requests,
    })
}

/// How the last segment was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LastBasis {
    /// The request budget fixed the total: the last N requests of the run.
    BudgetTotal,
    /// The clock ended the run: the last complete segment of N (requests after it are not
    /// in it).
    LastBoundary,
}

/// A run of consecutive measured requests (1-based, inclusive).
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// The first request in it.
    pub from_request: u64,
    /// The last request in it.
    pub to_request: u64,
    /// Its wall-clock length, in seconds.
    pub seconds: f64,
    /// CPU-seconds of everything but the benchmark (proxy, enclave, any other load).
    pub server_cpu_seconds: f64,
    /// That per request, in microseconds.
    pub server_us_per_request: f64,
}

/// The first and last segments side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    /// Requests 1 to N.
    pub first: Window,
    /// The last N requests (or the last complete segment: see `last_basis`).
    pub last: Window,
    /// How the last segment was placed.
    pub last_basis: LastBasis,
    /// last / first server CPU per request; None when the first measured none.
    pub last_over_first: Option<f64>,
    /// Whether the ratio is within the goal ([`GOAL_RATIO`]).
    pub within_goal: Option<bool>,
}

/// Server CPU per request in the first and last segments of the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct Segments {
    /// Requests per segment (N).
    pub segment: u64,
    /// Measured requests completed (successful or not).
    pub completed: u64,
    /// The comparison; None when the run was too short or the CPU was not measurable.
    pub compared: Option<Compared>,
    /// Which windows were compared, or why none were.
    pub note: String,
}

impl Segments {
    /// No comparison (yet).
    pub fn none(segment: u64, completed: u64) -> Self {
        Self {
            segment,
            completed,
            compared: None,
            note: String::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use super::*;

    /// Made-up readings, one step a call: each step is 1 s on 2 CPUs at 100 ticks a
    /// second, 100 of its 200 ticks busy, 50 of them the benchmark's: 0.5 CPU-s of server
    /// work a step. `$steps` counts the calls.
    macro_rules! clock {
        ($steps:ident) => {{
            static $steps: AtomicU64 = AtomicU64::new(0);
            fn read() -> Option<Snapshot> {
                static BASE: OnceLock<Instant> = OnceLock::new();
                let base = *BASE.get_or_init(Instant::now);
                let k = $steps.fetch_add(1, Ordering::Relaxed);
                Some(Snapshot::made_up(
                    base + Duration::from_secs(k),
                    100 * k,
                    200 * k,
                    2,
                    50 * k,
                ))
            }
            read
        }};
    }

    #[test]
    fn a_duration_run_compares_the_first_and_the_last_complete_segment() {
        let clock = clock!(STEPS_A);
        let marks = Marks::with_clock(10, clock);
        let start = clock();
        for _ in 0..57 {
            marks.completed();
        }
        // Snapshots at 10, 20, 30, 40 and 50; the start is step 0.
        let s = marks.summarise(start.as_ref());
        assert_eq!((s.segment, s.completed), (10, 57));
        let c = s.compared.unwrap();
        assert_eq!((c.first.from_request, c.first.to_request), (1, 10));
        assert_eq!((c.last.from_request, c.last.to_request), (41, 50));
        assert_eq!(c.last_basis, LastBasis::LastBoundary);
        // One step each: 0.5 CPU-s over 10 requests.
        assert!((c.first.server_us_per_request - 50_000.0).abs() < 1e-6);
        assert!((c.last.server_us_per_request - 50_000.0).abs() < 1e-6);
        assert_eq!(c.within_goal, Some(true));
        assert!(
            s.note.contains("41–50") && s.note.contains("7 after"),
            "{}",
            s.note
        );
    }

    #[test]
    fn a_budget_run_compares_the_last_n_of_its_total() {
        let clock = clock!(STEPS_B);
        let marks = Marks::with_clock(10, clock);
        let start = clock();
        marks.expect_total(35);
        for _ in 0..35 {
            marks.completed();
        }
        // Snapshots (steps): 10 (1), 20 (2), 25 (3), 30 (4), 35 (5).
        let s = marks.summarise(start.as_ref());
        let c = s.compared.unwrap();
        assert_eq!(c.last_basis, LastBasis::BudgetTotal);
        assert_eq!((c.last.from_request, c.last.to_request), (26, 35));
        // Two steps for the last ten: twice the first's cost, outside the goal.
        assert!((c.last.server_cpu_seconds - 1.0).abs() < 1e-9);
        assert!((c.last_over_first.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(c.within_goal, Some(false));
    }

    #[test]
    fn a_budget_run_cut_short_by_the_clock_falls_back_to_boundaries() {
        let clock = clock!(STEPS_C);
        let marks = Marks::with_clock(10, clock);
        let start = clock();
        marks.expect_total(100);
        for _ in 0..45 {
            marks.completed();
        }
        let c = marks.summarise(start.as_ref()).compared.unwrap();
        assert_eq!(c.last_basis, LastBasis::LastBoundary);
        assert_eq!((c.last.from_request, c.last.to_request), (31, 40));
    }

    #[test]
    fn too_short_a_run_says_how_many_it_needed() {
        let clock = clock!(STEPS_D);
        let marks = Marks::with_clock(10, clock);
        for _ in 0..19 {
            marks.completed();
        }
        let s = marks.summarise(clock().as_ref());
        assert!(s.compared.is_none());
        assert!(s.note.contains("20") && s.note.contains("19"), "{}", s.note);
    }

    #[test]
    fn no_counters_no_comparison() {
        let marks = Marks::with_clock(10, || None);
        for _ in 0..30 {
            marks.completed();
        }
        let s = marks.summarise(None);
        assert!(s.compared.is_none());
        assert!(s.note.contains("/proc"), "{}", s.note);
    }
}
