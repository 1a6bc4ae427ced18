//! Measuring for `make bench`: CPU time and peak memory of this process, read from `/proc` (Linux).
//! Benchmarks run the functions' own code in-process against the emulator, so the numbers are the
//! function's work plus the SDK's, not the emulator's (it is another process).

use std::time::{Duration, Instant};

/// A point to measure from.
pub struct Meter {
    wall: Instant,
    cpu: Duration,
}

/// What happened since a [`Meter`] started.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    pub cpu: Duration,
    /// Peak resident set size of the whole process so far (VmHWM), in KiB.
    pub peak_rss_kib: u64,
}

impl Meter {
    pub fn start() -> Meter {
        Meter {
            wall: Instant::now(),
            cpu: process_cpu(),
        }
    }

    pub fn stop(&self) -> Measured {
        Measured {
            wall: self.wall.elapsed(),
            cpu: process_cpu().saturating_sub(self.cpu),
            peak_rss_kib: peak_rss_kib(),
        }
    }
}

/// User + system CPU time of this process (all threads), from `/proc/self/stat`.
pub fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `)` that ends the command name: utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Linux reports in USER_HZ, which is 100 on every mainstream distribution.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Peak resident set size (VmHWM) of this process in KiB.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Current resident set size (VmRSS) in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
