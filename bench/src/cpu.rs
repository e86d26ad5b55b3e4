//! CPU time over a window, from Linux's /proc: the whole machine's busy time and this
//! process's own, so the server side's share can be told from the load generator's.

use std::time::Instant;

use serde::Serialize;

/// A reading of the CPU counters (clock ticks).
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    /// Machine-wide busy ticks, all CPUs.
    busy: u64,
    /// Machine-wide ticks, busy or idle, all CPUs.
    total: u64,
    /// CPUs counted in /proc/stat.
    cpus: usize,
    /// This process's user + system ticks, all threads.
    own: u64,
    /// User + system ticks of this process's children that have ended and been waited
    /// for (a program the benchmark ran and timed).
    children: u64,
}

/// CPU used over a window, in CPU-seconds.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Wall-clock length of the window, in seconds.
    pub wall_seconds: f64,
    /// CPUs counted.
    pub cpus: usize,
    /// Busy share of all CPUs (0 to 1).
    pub busy_fraction: f64,
    /// CPU-seconds used by everything on the machine.
    pub machine_cpu_seconds: f64,
    /// CPU-seconds used by this process (the benchmark's clients).
    pub bench_cpu_seconds: f64,
    /// CPU-seconds used by everything else: the proxy, the enclave and any other load.
    pub rest_cpu_seconds: f64,
    /// CPU-seconds used by this process's children that ended in the window.
    pub children_cpu_seconds: f64,
}

#[cfg(test)]
impl Snapshot {
    /// A reading with made-up counters, for tests of what is computed from readings.
    pub fn made_up(at: Instant, busy: u64, total: u64, cpus: usize, own: u64) -> Self {
        Self {
            at,
            busy,
            total,
            cpus,
            own,
            children: 0,
        }
    }
}

/// Reads the counters; None where /proc is not Linux's.
pub fn snapshot() -> Option<Snapshot> {
    let at = Instant::now();
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"; guest time is
    // already inside user, so it is not added again.
    let fields: Vec<u64> = lines
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let at_field = |i: usize| fields.get(i).copied().unwrap_or(0);
    let idle = at_field(3) + at_field(4);
    let busy = at_field(0) + at_field(1) + at_field(2) + at_field(5) + at_field(6) + at_field(7);
    let cpus = lines
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();

    // /proc/self/stat: the command name may hold spaces, so count fields after its ")";
    // utime and stime are fields 14 and 15, the 12th and 13th after it.
    let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &own_stat[own_stat.rfind(')')? + 1..];
    let mut own_fields = after.split_whitespace().skip(11);
    let utime: u64 = own_fields.next()?.parse().ok()?;
    let stime: u64 = own_fields.next()?.parse().ok()?;
    // cutime and cstime (fields 16 and 17: children waited for) follow.
    let cutime: u64 = own_fields.next()?.parse().ok()?;
    let cstime: u64 = own_fields.next()?.parse().ok()?;

    Some(Snapshot {
        at,
        busy,
        total: busy + idle,
        cpus: cpus.max(1),
        own: utime + stime,
        children: cutime + cstime,
    })
}

/// CPU used between two snapshots. The tick rate (USER_HZ) is not assumed: all CPUs'
/// ticks together advance at cpus × rate, which gives it.
pub fn usage(start: &Snapshot, end: &Snapshot) -> Option<Usage> {
    let wall = end.at.duration_since(start.at).as_secs_f64();
    let total = end.total.checked_sub(start.total)?;
    if wall <= 0.0 || total == 0 {
        return None;
    }
    let busy = end.busy.saturating_sub(start.busy);
    let own = end.own.saturating_sub(start.own);
    let children = end.children.saturating_sub(start.children);
    let ticks_per_cpu_second = total as f64 / (wall * end.cpus as f64);
    let machine = busy as f64 / ticks_per_cpu_second;
    let bench = own as f64 / ticks_per_cpu_second;
    Some(Usage {
        wall_seconds: wall,
        cpus: end.cpus,
        busy_fraction: busy as f64 / total as f64,
        machine_cpu_seconds: machine,
        bench_cpu_seconds: bench,
        rest_cpu_seconds: (machine - bench).max(0.0),
        children_cpu_seconds: children as f64 / ticks_per_cpu_second,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn usage_from_counters() {
        let t0 = Instant::now();
        let start = Snapshot {
            at: t0,
            busy: 1000,
            total: 5000,
            cpus: 2,
            own: 100,
            children: 0,
        };
        // 10 s on 2 CPUs at 100 ticks/s: 2000 ticks, of which 1500 busy, 500 ours.
        let end = Snapshot {
            at: t0 + Duration::from_secs(10),
            busy: 2500,
            total: 7000,
            cpus: 2,
            own: 600,
            children: 300,
        };
        let u = usage(&start, &end).unwrap();
        assert!((u.busy_fraction - 0.75).abs() < 1e-9);
        assert!((u.machine_cpu_seconds - 15.0).abs() < 1e-9);
        assert!((u.bench_cpu_seconds - 5.0).abs() < 1e-9);
        assert!((u.rest_cpu_seconds - 10.0).abs() < 1e-9);
        assert!((u.children_cpu_seconds - 3.0).abs() < 1e-9);
    }

    #[test]
    fn proc_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let s = snapshot().unwrap();
            assert!(s.cpus >= 1 && s.total >= s.busy);
        }
    }
}
