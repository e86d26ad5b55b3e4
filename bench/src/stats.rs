//! Latency statistics: nearest-rank percentiles over recorded latencies.

use std::time::Duration;

use serde::Serialize;

/// The `p`-th percentile (0 < p ≤ 100) of `sorted` by the nearest-rank method: the
/// smallest value with at least p% of the values at or below it. None when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    // ceil(p/100 · n) as a 1-based rank; the float is small and positive, so the cast is
    // exact for any realistic sample count.
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// A latency distribution, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Number of samples.
    pub count: usize,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Latency {
    /// Summarises `samples` (sorted in place). None when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let total: Duration = samples.iter().sum();
        Some(Self {
            count: samples.len(),
            mean_us: us(total) / samples.len().max(1) as f64,
            p50_us: us(percentile(samples, 50.0)?),
            p90_us: us(percentile(samples, 90.0)?),
            p99_us: us(percentile(samples, 99.0)?),
            max_us: us(*samples.last()?),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let hundred = ms(&(1..=100).collect::<Vec<_>>());
        let p = |q| percentile(&hundred, q).unwrap().as_millis();
        assert_eq!(p(50.0), 50);
        assert_eq!(p(90.0), 90);
        assert_eq!(p(99.0), 99);
        assert_eq!(p(99.9), 100);
        assert_eq!(p(100.0), 100);
        assert_eq!(p(0.5), 1);
        assert_eq!(p(0.0), 1);

        let ten = ms(&[10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
        assert_eq!(percentile(&ten, 50.0).unwrap().as_millis(), 50);
        assert_eq!(percentile(&ten, 51.0).unwrap().as_millis(), 60);
        assert_eq!(percentile(&ten, 99.0).unwrap().as_millis(), 100);

        let one = ms(&[7]);
        for q in [1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&one, q).unwrap().as_millis(), 7);
        }
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_sorts_and_summarises() {
        let mut samples = ms(&[5, 1, 4, 2, 3]);
        let s = Latency::of(&mut samples).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!(s.mean_us, 3000.0);
        assert_eq!(s.p50_us, 3000.0);
        assert_eq!(s.p90_us, 5000.0);
        assert_eq!(s.p99_us, 5000.0);
        assert_eq!(s.max_us, 5000.0);
        assert!(Latency::of(&mut []).is_none());
    }
}
