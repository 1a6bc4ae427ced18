//! Seeded fault scenarios as a standing suite: how many seeds and what share of requests a run
//! faults (from the environment, so `make test` runs a short round and `make faults` a long one),
//! the invariants a scenario checked, and one result row per scenario appended to a report file.
//!
//! - `FAULT_SEEDS`: a number of seeds (`5` runs seeds 1–5) or a comma-separated list of seeds
//!   (`7,11`); each scenario has its own short default.
//! - `FAULT_RATE`: the share (0.0–1.0) of the selected requests that a rule faults; each scenario
//!   has its own default.
//! - `FAULT_REPORT`: a file to which each scenario appends one JSON line (a [`Row`]); unset, no
//!   row is written. `infra/scripts/fault_table.py` turns the rows into the README's table.
//!
//! A scenario checks every invariant (rather than stopping at the first broken one) so its row says
//! how many held, then fails the test if any did not ([`FaultRun::finish`]).

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::faults::FaultProxy;

/// The seeds and fault share of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSettings {
    pub seeds: Vec<u64>,
    pub rate: f64,
}

impl FaultSettings {
    /// `FAULT_SEEDS` and `FAULT_RATE` from the environment, or these defaults. A malformed value
    /// panics naming the variable: a wrong setting must not silently run a different round.
    pub fn from_env(default_seeds: usize, default_rate: f64) -> FaultSettings {
        let seeds = std::env::var("FAULT_SEEDS").ok();
        let rate = std::env::var("FAULT_RATE").ok();
        FaultSettings::parse(
            seeds.as_deref(),
            rate.as_deref(),
            default_seeds,
            default_rate,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn parse(
        seeds: Option<&str>,
        rate: Option<&str>,
        default_seeds: usize,
        default_rate: f64,
    ) -> Result<FaultSettings, String> {
        let seeds = match seeds.map(str::trim).filter(|s| !s.is_empty()) {
            None => (1..=default_seeds as u64).collect(),
            Some(list) if list.contains(',') => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u64>().map_err(|_| {
                        format!("FAULT_SEEDS: {s:?} is not a seed; expected a number of seeds (`5`) or a list (`7,11`)")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(count) => {
                let n: u64 = count.parse().map_err(|_| {
                    format!("FAULT_SEEDS: {count:?} is neither a number of seeds (`5`) nor a list of seeds (`7,11`)")
                })?;
                (1..=n).collect()
            }
        };
        if seeds.is_empty() {
            return Err("FAULT_SEEDS: no seeds; expected at least one".to_owned());
        }
        let rate = match rate.map(str::trim).filter(|s| !s.is_empty()) {
            None => default_rate,
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    format!("FAULT_RATE: {text:?} is not a share between 0.0 and 1.0 (e.g. `0.3`)")
                })?,
        };
        Ok(FaultSettings { seeds, rate })
    }
}

/// One scenario's result row (one JSON line in `FAULT_REPORT`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub scenario: String,
    pub seeds: usize,
    pub rate: f64,
    /// Requests the proxies saw, faulted or not.
    pub requests: u64,
    /// Requests faulted, per service and fault label (`dynamodb ThrottlingException`: the AWS
    /// error code sent, or `ConnectionReset`, `DelayedAnswer`, `LostAnswer`).
    pub faulted: BTreeMap<String, u64>,
    pub invariants_checked: u64,
    pub invariants_held: u64,
    /// What did not hold, one line each.
    pub broken: Vec<String>,
}

/// The tally of one scenario across its seeds.
pub struct FaultRun {
    row: Row,
}

impl FaultRun {
    pub fn new(scenario: &str, settings: &FaultSettings) -> FaultRun {
        FaultRun {
            row: Row {
                scenario: scenario.to_owned(),
                seeds: settings.seeds.len(),
                rate: settings.rate,
                requests: 0,
                faulted: BTreeMap::new(),
                invariants_checked: 0,
                invariants_held: 0,
                broken: Vec::new(),
            },
        }
    }

    /// Adds what one seed's proxy saw and did.
    pub fn add_proxy(&mut self, proxy: &FaultProxy) {
        self.row.requests += proxy.requests().values().sum::<u64>();
        for ((service, _, label), n) in proxy.faulted() {
            *self
                .row
                .faulted
                .entry(format!("{service} {label}"))
                .or_insert(0) += n;
        }
    }

    /// Records one invariant check; `detail` says what was seen when it did not hold.
    pub fn check(&mut self, holds: bool, what: impl FnOnce() -> String) {
        self.row.invariants_checked += 1;
        if holds {
            self.row.invariants_held += 1;
        } else {
            let what = what();
            eprintln!("INVARIANT BROKEN: {what}");
            self.row.broken.push(what);
        }
    }

    /// Requests faulted so far, all kinds.
    pub fn total_faulted(&self) -> u64 {
        self.row.faulted.values().sum()
    }

    pub fn row(&self) -> &Row {
        &self.row
    }

    /// Appends the row to `FAULT_REPORT` (if set), prints it, and fails the test if an invariant
    /// did not hold or no fault was injected at all (a run that faulted nothing proved nothing).
    pub fn finish(self) {
        let line = serde_json::to_string(&self.row).unwrap_or_else(|e| panic!("row: {e}"));
        eprintln!("fault run: {line}");
        if let Ok(path) = std::env::var("FAULT_REPORT") {
            if !path.is_empty() {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .unwrap_or_else(|e| panic!("FAULT_REPORT {path}: {e}"));
                writeln!(file, "{line}").unwrap_or_else(|e| panic!("FAULT_REPORT {path}: {e}"));
            }
        }
        assert!(
            self.row.broken.is_empty(),
            "{} of {} invariant checks did not hold in {}:\n{}",
            self.row.broken.len(),
            self.row.invariants_checked,
            self.row.scenario,
            self.row.broken.join("\n")
        );
        assert!(
            self.total_faulted() > 0,
            "{}: no request was faulted, so nothing was tested (rate {})",
            self.row.scenario,
            self.row.rate
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_a_count_or_a_list_and_bad_values_are_named() {
        let p = |s, r| FaultSettings::parse(s, r, 2, 0.2);
        assert_eq!(
            p(None, None),
            Ok(FaultSettings {
                seeds: vec![1, 2],
                rate: 0.2
            })
        );
        assert_eq!(p(Some("4"), None).unwrap().seeds, [1, 2, 3, 4]);
        assert_eq!(p(Some("7, 11"), None).unwrap().seeds, [7, 11]);
        assert_eq!(p(Some("9,"), None).unwrap().seeds, [9]);
        assert_eq!(p(None, Some("0.5")).unwrap().rate, 0.5);
        assert!(p(Some("x"), None).unwrap_err().starts_with("FAULT_SEEDS"));
        assert!(p(Some("1,x"), None).unwrap_err().starts_with("FAULT_SEEDS"));
        assert!(p(Some("0"), None).unwrap_err().contains("no seeds"));
        assert!(p(None, Some("1.5")).unwrap_err().starts_with("FAULT_RATE"));
        assert!(p(None, Some("lots")).unwrap_err().starts_with("FAULT_RATE"));
    }

    #[test]
    fn a_broken_invariant_is_counted_and_named() {
        let settings = FaultSettings::parse(None, None, 1, 0.1).unwrap();
        let mut run = FaultRun::new("s", &settings);
        run.check(true, || unreachable!());
        run.check(false, || "record 7 counted twice".to_owned());
        assert_eq!(run.row().invariants_checked, 2);
        assert_eq!(run.row().invariants_held, 1);
        assert_eq!(run.row().broken, ["record 7 counted twice"]);
    }
}
