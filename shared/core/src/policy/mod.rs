//! How old is too old: the reaper's decision for one lock, and whether to tell anyone about it.
//!
//! [`StaleLockPolicy::evaluate`] turns a lock, the liveness evidence gathered for it and `now` into a
//! [`Verdict`]: a [`Level`] (`Fresh < Warn < ProposeUnlock < AutoExpire`) plus the sentences that
//! explain it. [`alert_action`] then decides, from the [`AlertState`] stored for the lock, whether
//! this sweep sends an alert: one per lock per level, a reminder every `REMIND_EVERY`, none while
//! snoozed. Both are pure functions; the reaper does the I/O.
//!
//! **Safety rule:** a lock is only ever expired automatically when it is past `EXPIRE_AFTER`, its
//! path allows auto-expiry, its age is known, nothing shows the holder is alive, every liveness
//! source the lock can have was read (no read error, no missing source: "could not tell" is never
//! "dead") and the state digest does not contradict the state object. Every other case goes to a
//! person. [`crate::decision::decide`] turns the verdict into the whole plan for one lock.
//!
//! One module per job: [`env`](mod@env) reads the configuration (`WARN_AFTER`, …, the `LOCK_POLICY` JSON),
//! this module resolves the thresholds for a path, [`verdict`] judges a lock ([`Verdict`],
//! [`Reason`]), [`liveness`] is the evidence model, [`cadence`] decides when to alert. The words
//! of reasons and times are in [`crate::messages`].

use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;

pub mod cadence;
pub mod env;
pub mod liveness;
pub mod verdict;

pub use crate::decision::{EvidenceGap, EvidenceSource, GapCause};
pub use cadence::{alert_action, AlertAction, AlertKind, AlertState};
pub use liveness::Liveness;
pub use verdict::{Held, Level, Reason, Verdict};

/// How long locks may be held before people hear about them, and what happens then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleLockPolicy {
    /// `WARN_AFTER`: from this age a lock is worth an alert.
    pub warn_after: Duration,
    /// `EXPIRE_AFTER`: from this age a lock is proposed for unlock (or expired, see `auto_expire`).
    pub expire_after: Duration,
    /// `AUTO_EXPIRE`: release locks past `expire_after` without asking, when nothing shows the
    /// holder is alive.
    pub auto_expire: bool,
    /// `REMIND_EVERY`: how often an alert is repeated while a lock stays at the same level.
    pub remind_every: Duration,
    /// `LOCK_POLICY`: per-path overrides, in order.
    pub overrides: Vec<PathOverride>,
}

impl Default for StaleLockPolicy {
    fn default() -> Self {
        StaleLockPolicy {
            warn_after: Duration::from_secs(3600),
            expire_after: Duration::from_secs(4 * 3600),
            auto_expire: false,
            remind_every: Duration::from_secs(3600),
            overrides: Vec::new(),
        }
    }
}

/// One `LOCK_POLICY` entry: thresholds for the locks whose state path matches a glob.
///
/// The glob is compiled once, when the override is built. It is matched against the lock's
/// `state_path` — where the lock is stored: `<bucket>/<key>` from the `LockID` or the lock file's
/// key for Terraform/OpenTofu, the lock key for Gyro; never the `Path` the lock's JSON claims — with
/// `literal_separator(false)`: `*` also matches `/`, so `acme-tfstate/prod/*` covers every state
/// below `prod/`, however deeply nested. `?`, `[abc]`, `{a,b}` and `**` work as in globset;
/// `\` escapes a metacharacter. Matching is case-sensitive, like S3 keys.
#[derive(Debug, Clone)]
pub struct PathOverride {
    pattern: String,
    matcher: GlobMatcher,
    pub warn_after: Option<Duration>,
    pub expire_after: Option<Duration>,
    /// `Some(false)` means "never auto-expire this path", whatever `AUTO_EXPIRE` says;
    /// `Some(true)` opts this path in when `AUTO_EXPIRE` is off.
    pub auto_expire: Option<bool>,
}

impl PartialEq for PathOverride {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
            && self.warn_after == other.warn_after
            && self.expire_after == other.expire_after
            && self.auto_expire == other.auto_expire
    }
}

impl Eq for PathOverride {}

impl PathOverride {
    /// Compiles `pattern`; fails with globset's message (`error parsing glob '…': …`).
    pub fn new(
        pattern: &str,
        warn_after: Option<Duration>,
        expire_after: Option<Duration>,
        auto_expire: Option<bool>,
    ) -> Result<Self, globset::Error> {
        let matcher = GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()?
            .compile_matcher();
        Ok(PathOverride {
            pattern: pattern.to_owned(),
            matcher,
            warn_after,
            expire_after,
            auto_expire,
        })
    }

    /// The glob as written in `LOCK_POLICY`.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether this override applies to a lock with this `state_path`.
    pub fn matches(&self, state_path: &str) -> bool {
        self.matcher.is_match(state_path)
    }
}

/// The thresholds that apply to one lock once overrides are merged in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedThresholds {
    pub warn_after: Duration,
    pub expire_after: Duration,
    pub auto_expire: bool,
    /// The `LOCK_POLICY` pattern that decided `auto_expire`, or `None` when `AUTO_EXPIRE` did.
    pub auto_expire_from: Option<String>,
    /// Every `LOCK_POLICY` pattern that matched the lock's state path, in order.
    pub matched: Vec<String>,
}

impl StaleLockPolicy {
    /// The smallest warn threshold any lock can have (the global one or any override's): a lock
    /// file younger than this needs no GET, since nothing would be done with it yet.
    pub fn min_warn_after(&self) -> Duration {
        self.overrides
            .iter()
            .filter_map(|o| o.warn_after)
            .fold(self.warn_after, Duration::min)
    }

    /// The thresholds for a lock on `state_path`. Each field is taken from the first matching
    /// override that sets it (so a later, broader entry can still supply a field an earlier,
    /// narrower one left out), else from the global setting.
    pub fn thresholds_for(&self, state_path: &str) -> ResolvedThresholds {
        let mut warn_after = None;
        let mut expire_after = None;
        let mut auto_expire: Option<(bool, &str)> = None;
        let mut matched = Vec::new();
        for o in self.overrides.iter().filter(|o| o.matches(state_path)) {
            matched.push(o.pattern.clone());
            warn_after = warn_after.or(o.warn_after);
            expire_after = expire_after.or(o.expire_after);
            if auto_expire.is_none() {
                auto_expire = o.auto_expire.map(|a| (a, o.pattern.as_str()));
            }
        }
        ResolvedThresholds {
            warn_after: warn_after.unwrap_or(self.warn_after),
            expire_after: expire_after.unwrap_or(self.expire_after),
            auto_expire: auto_expire.map_or(self.auto_expire, |(a, _)| a),
            auto_expire_from: auto_expire.map(|(_, p)| p.to_owned()),
            matched,
        }
    }
}

/// How times appear in reasons, messages and the CLI (defined with the messages).
pub use crate::messages::fmt_time;

#[cfg(test)]
mod test_support;
