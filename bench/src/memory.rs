//! Resident memory of other processes (the enclave, the proxy) over the measured run, from
//! Linux's `/proc/PID/status`: whether a process's memory grows with the requests it has
//! served. The enclave holds no capacity-bounded list any more, so growth here would be a
//! leak or state that should have been bounded.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// KiB in a MiB.
const KIB_PER_MIB: f64 = 1024.0;

/// A process to watch: a name for the report and its process id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watch {
    /// The report's name for it (`enclave`, `proxy`).
    pub name: String,
    /// Its process id.
    pub pid: u32,
}

impl FromStr for Watch {
    type Err = String;

    /// `NAME=PID`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, pid) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected NAME=PID, e.g. enclave=1234"))?;
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?}: the name must be non-empty, without spaces"));
        }
        let pid = pid
            .parse::<u32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{s:?}: {pid:?} is not a process id"))?;
        Ok(Self {
            name: name.to_string(),
            pid,
        })
    }
}

/// The `VmRSS` of a `/proc/PID/status` text, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut fields = line["VmRSS:".len()..].split_whitespace();
    let kib = fields.next()?.parse().ok()?;
    (fields.next() == Some("kB")).then_some(kib)
}

/// The resident memory of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| {
        format!("{path} has no VmRSS line (a kernel thread or a zombie has no memory of its own)")
    })
}

/// Checks that every watched process can be read now, so a wrong id fails before the run.
pub fn check(watch: &[Watch]) -> Result<()> {
    for w in watch {
        rss_kib(w.pid).with_context(|| format!("--watch {}={}", w.name, w.pid))?;
    }
    Ok(())
}

/// One reading of every watched process.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Seconds since the measured run started.
    pub seconds: f64,
    /// Resident memory by name, in MiB; None when the process could not be read (it
    /// exited).
    pub rss_mib: BTreeMap<String, Option<f64>>,
}

/// A process's memory from the first sample (the measured run's start, after the warm-up)
/// to the last (its end).
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    /// The process's name.
    pub name: String,
    /// At the first sample that read it, in MiB.
    pub first_mib: Option<f64>,
    /// At the last sample that read it, in MiB.
    pub last_mib: Option<f64>,
    /// last − first, in MiB.
    pub growth_mib: Option<f64>,
}

/// Every sample of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// The processes, in the order given.
    pub processes: Vec<Watch>,
    /// Time between samples, in seconds (plus one at the start and one at the end).
    pub sample_every_seconds: f64,
    /// The samples, oldest first.
    pub samples: Vec<Sample>,
    /// Each process's growth over the run.
    pub growth: Vec<Growth>,
}

impl Memory {
    /// The figures from `samples` of `processes`.
    fn of(processes: Vec<Watch>, every: Duration, samples: Vec<Sample>) -> Self {
        let growth = processes
            .iter()
            .map(|w| {
                let read = |s: &Sample| s.rss_mib.get(&w.name).copied().flatten();
                let first_mib = samples.iter().find_map(read);
                let last_mib = samples.iter().rev().find_map(read);
                Growth {
                    name: w.name.clone(),
                    first_mib,
                    last_mib,
                    growth_mib: first_mib.zip(last_mib).map(|(a, b)| b - a),
                }
            })
            .collect();
        Self {
            processes,
            sample_every_seconds: every.as_secs_f64(),
            samples,
            growth,
        }
    }
}

fn read_all(watch: &[Watch], start: Instant) -> Sample {
    Sample {
        seconds: start.elapsed().as_secs_f64(),
        rss_mib: watch
            .iter()
            .map(|w| {
                let mib = rss_kib(w.pid).ok().map(|kib| kib as f64 / KIB_PER_MIB);
                (w.name.clone(), mib)
            })
            .collect(),
    }
}

/// Samples in the background from [`Sampler::start`] to [`Sampler::stop`].
pub struct Sampler {
    watch: Vec<Watch>,
    every: Duration,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Takes a sample now and then every `every` (at least a millisecond), until stopped.
    pub fn start(watch: Vec<Watch>, every: Duration) -> Self {
        let every = every.max(Duration::from_millis(1));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let watch = watch.clone();
            async move {
                let start = Instant::now();
                let mut ticks = tokio::time::interval(every);
                // A late tick (a busy machine) is taken late, not made up with a burst.
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                let mut samples = Vec::new();
                loop {
                    tokio::select! {
                        // The first tick is at once: the sample at the start.
                        _ = ticks.tick() => samples.push(read_all(&watch, start)),
                        _ = &mut stopped => break,
                    }
                }
                // The sample at the end.
                samples.push(read_all(&watch, start));
                samples
            }
        });
        Self {
            watch,
            every,
            stop,
            task,
        }
    }

    /// Takes the last sample and returns them all.
    pub async fn stop(self) -> Result<Memory> {
        // The task may have ended already only by panicking; the join below reports that.
        let _ = self.stop.send(());
        let samples = self.task.await.context("the memory sampler failed")?;
        Ok(Memory::of(self.watch, self.every, samples))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn watch_arguments() {
        let w: Watch = "enclave=1234".parse().unwrap();
        assert_eq!(
            w,
            Watch {
                name: "enclave".into(),
                pid: 1234
            }
        );
        for bad in [
            "enclave",
            "=12",
            "enclave=",
            "enclave=x",
            "enclave=0",
            "a b=1",
        ] {
            assert!(bad.parse::<Watch>().is_err(), "{bad}");
        }
    }

    #[test]
    fn vm_rss_from_a_status_text() {
        let status = "Name:\tcat\nVmPeak:\t    9000 kB\nVmRSS:\t    1792 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(1792));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\nThreads:\t1\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn own_memory_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_kib(std::process::id()).unwrap() > 0);
            assert!(
                check(&[Watch {
                    name: "self".into(),
                    pid: std::process::id()
                }])
                .is_ok()
            );
        }
    }

    #[test]
    fn growth_runs_from_the_first_reading_to_the_last() {
        let sample = |seconds: f64, a: Option<f64>, b: Option<f64>| Sample {
            seconds,
            rss_mib: [("a".to_string(), a), ("b".to_string(), b)].into(),
        };
        let watch = vec![
            Watch {
                name: "a".into(),
                pid: 1,
            },
            Watch {
                name: "b".into(),
                pid: 2,
            },
        ];
        let m = Memory::of(
            watch,
            Duration::from_secs(30),
            vec![
                sample(0.0, Some(10.0), None),
                sample(30.0, Some(12.0), Some(5.0)),
                sample(31.0, Some(13.5), None),
            ],
        );
        assert_eq!(m.growth[0].growth_mib, Some(3.5));
        assert_eq!(m.growth[1].first_mib, Some(5.0));
        assert_eq!(m.growth[1].growth_mib, Some(0.0));
        assert_eq!(m.sample_every_seconds, 30.0);
    }
}
