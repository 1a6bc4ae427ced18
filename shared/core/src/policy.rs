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

use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::config::{format_duration, parse_bool, parse_duration, ConfigError, Env};
pub use crate::decision::{EvidenceGap, EvidenceSource, GapCause};
use crate::model::{LockCreated, LockRecord};

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
    pub const WARN_AFTER: &'static str = "WARN_AFTER";
    pub const EXPIRE_AFTER: &'static str = "EXPIRE_AFTER";
    pub const AUTO_EXPIRE: &'static str = "AUTO_EXPIRE";
    pub const REMIND_EVERY: &'static str = "REMIND_EVERY";
    pub const LOCK_POLICY: &'static str = "LOCK_POLICY";

    /// Reads `WARN_AFTER`, `EXPIRE_AFTER`, `AUTO_EXPIRE`, `REMIND_EVERY` and `LOCK_POLICY`,
    /// recording every problem in `env` (so one failed start lists them all). A bad value leaves
    /// its default in place; callers must still check `env.finish`.
    ///
    /// Rules beyond the syntax: durations must be longer than zero (a zero `EXPIRE_AFTER` would
    /// propose unlocking a running apply the moment it starts, a zero `REMIND_EVERY` would repeat
    /// every alert every sweep), and `EXPIRE_AFTER` may not be shorter than `WARN_AFTER`, neither
    /// globally nor for any `LOCK_POLICY` entry once its missing fields are taken from the globals.
    pub fn from_env(env: &mut Env) -> StaleLockPolicy {
        let defaults = StaleLockPolicy::default();
        let warn = duration_var(env, Self::WARN_AFTER);
        let expire = duration_var(env, Self::EXPIRE_AFTER);
        let remind = duration_var(env, Self::REMIND_EVERY);
        let auto_expire = env.parsed(Self::AUTO_EXPIRE, defaults.auto_expire, parse_bool);

        let globals_valid = !matches!(warn, Some(Err(()))) && !matches!(expire, Some(Err(())));
        let warn_after = match warn {
            Some(Ok(d)) => d,
            _ => defaults.warn_after,
        };
        let expire_after = match expire {
            Some(Ok(d)) => d,
            _ => defaults.expire_after,
        };
        let remind_every = match remind {
            Some(Ok(d)) => d,
            _ => defaults.remind_every,
        };
        if globals_valid && expire_after < warn_after {
            let warn_source = if env.get(Self::WARN_AFTER).is_some() {
                "WARN_AFTER"
            } else {
                "the default WARN_AFTER"
            };
            let expire_source = if env.get(Self::EXPIRE_AFTER).is_some() {
                ""
            } else {
                "the default "
            };
            env.error(ConfigError::new(
                Self::EXPIRE_AFTER,
                format!(
                    "{expire_source}{} is shorter than {warn_source} {}; a lock must be warned about before it is proposed for unlock, so set EXPIRE_AFTER ≥ WARN_AFTER",
                    format_duration(expire_after),
                    format_duration(warn_after),
                ),
            ));
        }

        let overrides = match env.get(Self::LOCK_POLICY).map(str::to_owned) {
            None => Vec::new(),
            Some(text) => parse_lock_policy(
                &text,
                globals_valid.then_some((warn_after, expire_after)),
                env,
            ),
        };

        StaleLockPolicy {
            warn_after,
            expire_after,
            auto_expire,
            remind_every,
            overrides,
        }
    }

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

    /// Judges one lock at `now`. See [`Level`] for what each outcome means; the verdict's
    /// `reasons` are sentences written for the alert.
    ///
    /// Should two overrides combine into an `expire_after` shorter than `warn_after` (each entry
    /// is checked on its own at start-up, combinations cannot be), `expire_after` wins: the lock is
    /// proposed for unlock from that age.
    ///
    /// `gaps` is the liveness evidence that could not be read in this sweep (read errors). The
    /// lock's own kind adds the sources it can never have ([`EvidenceGap::inherent`]: a Gyro lock
    /// has no state object). Any gap blocks [`Level::AutoExpire`]: "could not tell" is never "no
    /// sign of life", so such a lock goes to a person, with the gap named in the reasons.
    pub fn evaluate(
        &self,
        lock: &LockRecord,
        liveness: &Liveness,
        gaps: &[EvidenceGap],
        now: DateTime<Utc>,
    ) -> Verdict {
        let thresholds = self.thresholds_for(&lock.state_path);
        let age = lock.age(now);
        let write = liveness.write_after(lock.created.at());
        let alive = write.is_some();
        let digest_mismatch = liveness.digest_mismatch();
        let gaps: Vec<EvidenceGap> = EvidenceGap::inherent(lock)
            .into_iter()
            .chain(gaps.iter().cloned())
            .collect();
        let declared_elsewhere = lock.declared_path_mismatch();
        let mut why = Vec::new();

        let held = |age: Duration| Held {
            age,
            at_least: matches!(lock.created, LockCreated::FirstSeen(_)),
        };
        let matched = || thresholds.matched.clone();

        let level = match age {
            None => {
                why.push(Reason::AgeUnknown);
                Level::Fresh
            }
            Some(age) if age >= thresholds.expire_after => {
                why.push(Reason::PastExpiry {
                    held: held(age),
                    expire_after: thresholds.expire_after,
                    matched: matched(),
                });
                if let Some(written) = write {
                    why.push(Reason::WrittenAfterLock {
                        at: written,
                        so_not_proposed: true,
                    });
                    Level::Warn
                } else if thresholds.auto_expire
                    && !digest_mismatch
                    && gaps.is_empty()
                    && declared_elsewhere.is_none()
                {
                    why.push(Reason::AutoExpiring);
                    Level::AutoExpire
                } else {
                    why.push(Reason::NoWriteSinceLock);
                    if thresholds.auto_expire && !gaps.is_empty() {
                        why.push(Reason::AutoExpiryBlockedByGaps);
                    }
                    if !thresholds.auto_expire {
                        why.push(Reason::AutoExpiryOff {
                            by_pattern: thresholds.auto_expire_from.clone(),
                        });
                    }
                    Level::ProposeUnlock
                }
            }
            Some(age) if age >= thresholds.warn_after => {
                why.push(Reason::PastWarning {
                    held: held(age),
                    warn_after: thresholds.warn_after,
                    matched: matched(),
                    expire_after: thresholds.expire_after,
                });
                if let Some(written) = write {
                    why.push(Reason::WrittenAfterLock {
                        at: written,
                        so_not_proposed: false,
                    });
                }
                Level::Warn
            }
            Some(age) => {
                why.push(Reason::UnderWarning {
                    held: held(age),
                    warn_after: thresholds.warn_after,
                });
                Level::Fresh
            }
        };

        if digest_mismatch && level >= Level::Warn {
            why.push(Reason::DigestMismatch);
        }

        if level >= Level::Warn && !alive {
            why.extend(gaps.iter().cloned().map(Reason::Gap));
        }
        if let Some(declared) = declared_elsewhere.filter(|_| level >= Level::Warn) {
            why.push(Reason::DeclaredElsewhere {
                declared,
                stored: lock.state_path.clone(),
            });
        }

        let reasons = why.iter().map(ToString::to_string).collect();
        Verdict {
            level,
            age,
            thresholds,
            alive,
            liveness: *liveness,
            gaps,
            why,
            reasons,
        }
    }
}

/// Reads one duration variable: `None` when unset, `Some(Err(()))` after recording an error.
fn duration_var(env: &mut Env, name: &'static str) -> Option<Result<Duration, ()>> {
    let text = env.get(name)?.to_owned();
    let result = parse_duration(&text).and_then(|d| {
        if d.is_zero() {
            Err(format!(
                "{text:?} is zero; expected a duration longer than 0s such as `90m` or `4h`"
            ))
        } else {
            Ok(d)
        }
    });
    Some(result.map_err(|problem| env.error(ConfigError::new(name, problem))))
}

/// One `LOCK_POLICY` entry as written. Durations are strings in the `WARN_AFTER` syntax.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    path: String,
    #[serde(default)]
    warn_after: Option<String>,
    #[serde(default)]
    expire_after: Option<String>,
    #[serde(default)]
    auto_expire: Option<bool>,
}

const LOCK_POLICY_EXAMPLE: &str = r#"[{"path": "acme-tfstate/prod/*", "warn_after": "30m", "expire_after": "2h", "auto_expire": false}]"#;

/// Parses `LOCK_POLICY`, recording one error per problem. Entries are numbered from 0, as in JSON.
/// `globals` is `(WARN_AFTER, EXPIRE_AFTER)` when both are valid, for the per-entry order check.
fn parse_lock_policy(
    text: &str,
    globals: Option<(Duration, Duration)>,
    env: &mut Env,
) -> Vec<PathOverride> {
    let var = StaleLockPolicy::LOCK_POLICY;
    let entries: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(text) {
        Err(e) => {
            env.error(ConfigError::new(
                var,
                format!("is not valid JSON ({e}); expected an array such as {LOCK_POLICY_EXAMPLE}"),
            ));
            return Vec::new();
        }
        Ok(serde_json::Value::Array(entries)) => entries,
        Ok(other) => {
            env.error(ConfigError::new(
                var,
                format!(
                    "is a JSON {}, not an array; expected an array such as {LOCK_POLICY_EXAMPLE}",
                    json_type(&other)
                ),
            ));
            return Vec::new();
        }
    };

    let mut overrides = Vec::new();
    for (index, value) in entries.into_iter().enumerate() {
        let label = match value.get("path").and_then(|p| p.as_str()) {
            Some(p) => format!("entry {index} ({p:?})"),
            None => format!("entry {index}"),
        };
        let mut problems = Vec::new();
        let entry = match serde_json::from_value::<PolicyEntry>(value) {
            Ok(entry) => entry,
            Err(e) => {
                env.error(ConfigError::new(var, format!("{label}: {e}")));
                continue;
            }
        };
        let mut duration = |field: &str, text: &Option<String>| -> Option<Duration> {
            let text = text.as_deref()?;
            match parse_duration(text) {
                Ok(d) if d.is_zero() => {
                    problems.push(format!(
                        "{field} {text:?} is zero; expected a duration longer than 0s such as `90m` or `4h`"
                    ));
                    None
                }
                Ok(d) => Some(d),
                Err(problem) => {
                    problems.push(format!("{field}: {problem}"));
                    None
                }
            }
        };
        let warn_after = duration("warn_after", &entry.warn_after);
        let expire_after = duration("expire_after", &entry.expire_after);
        let durations_valid = (entry.warn_after.is_none() || warn_after.is_some())
            && (entry.expire_after.is_none() || expire_after.is_some());

        if entry.path.trim().is_empty() {
            problems.push(
                "`path` is empty; expected a glob on the state path such as `acme-tfstate/prod/*`"
                    .to_owned(),
            );
        }
        if entry.warn_after.is_none() && entry.expire_after.is_none() && entry.auto_expire.is_none()
        {
            problems.push(
                "sets none of `warn_after`, `expire_after`, `auto_expire`, so it would have no effect"
                    .to_owned(),
            );
        }
        let sets_threshold = entry.warn_after.is_some() || entry.expire_after.is_some();
        if let (true, true, Some((global_warn, global_expire))) =
            (durations_valid, sets_threshold, globals)
        {
            let warn = warn_after.unwrap_or(global_warn);
            let expire = expire_after.unwrap_or(global_expire);
            if expire < warn {
                let source = |own: bool, name: &str| {
                    if own {
                        String::new()
                    } else {
                        format!(" (from {name})")
                    }
                };
                problems.push(format!(
                    "expire_after {}{} is shorter than warn_after {}{}; a lock must be warned about before it is proposed for unlock",
                    format_duration(expire),
                    source(expire_after.is_some(), "EXPIRE_AFTER"),
                    format_duration(warn),
                    source(warn_after.is_some(), "WARN_AFTER"),
                ));
            }
        }
        let compiled =
            match PathOverride::new(&entry.path, warn_after, expire_after, entry.auto_expire) {
                Ok(o) => Some(o),
                Err(e) => {
                    problems.push(format!("bad glob: {e}"));
                    None
                }
            };
        match compiled {
            Some(o) if problems.is_empty() => overrides.push(o),
            _ => {
                for problem in problems {
                    env.error(ConfigError::new(var, format!("{label}: {problem}")));
                }
            }
        }
    }
    overrides
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// How times appear in reasons, messages and the CLI (defined with the messages).
pub use crate::messages::fmt_time;

/// Evidence about whether a lock's holder is still at work, gathered by the reaper.
///
/// Only a **positive** signal exists: a state write after the lock was taken means the holder made
/// progress recently. The absence of a write proves nothing (lock-formats.md §1.8): plans never
/// write state, Terraform before 1.5 wrote it only at the end of an apply, and since 1.5 it writes
/// at most every 20 s *when a resource operation completes*, so a single 40-minute RDS create
/// produces no write at all. Hence an old `LastModified` never makes a lock look dead; it only
/// fails to make it look alive.
///
/// A digest mismatch is not liveness either. It means the last state write was half-done or S3
/// lagged (Terraform then tells people to fix the digest by hand), which is exactly the situation
/// where a person must look: it blocks auto-expiry and escalates to a human.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    /// The state object's S3 `LastModified` (HeadObject on the key the lock's path names).
    pub state_last_modified: Option<DateTime<Utc>>,
    /// The last state write lockreaper recorded from the lock table's stream (a `-md5` digest
    /// MODIFY for the same path), from the ledger.
    pub last_state_write: Option<DateTime<Utc>>,
    /// Whether the `-md5` digest item matches the state object's MD5; `None` when not checked
    /// (lock files, Gyro, no digest item).
    pub digest_matches_state: Option<bool>,
}

impl Liveness {
    /// The latest state write strictly after `lock_created`: evidence that the holder is probably
    /// alive. `None` when there is no such write, or when the lock's creation time is unknown (a
    /// write cannot be placed after an unknown time).
    ///
    /// For a first-seen time (Gyro) the real creation is earlier, so a write after it is after the
    /// lock was taken too. Clock skew between the locking client (Terraform's `Created`) and S3 can
    /// only make an old write look recent, which errs on the side of "alive".
    pub fn write_after(&self, lock_created: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let created = lock_created?;
        [self.state_last_modified, self.last_state_write]
            .into_iter()
            .flatten()
            .filter(|t| *t > created)
            .max()
    }

    /// Whether there is evidence the holder of a lock taken at `lock_created` is alive.
    pub fn holder_probably_alive(&self, lock_created: Option<DateTime<Utc>>) -> bool {
        self.write_after(lock_created).is_some()
    }

    /// The digest is known to disagree with the state object: never auto-expire, ask a person.
    pub fn digest_mismatch(&self) -> bool {
        self.digest_matches_state == Some(false)
    }
}

/// How far a lock has gone, in escalation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// Younger than `warn_after`, or of unknown age: nothing to say.
    Fresh,
    /// Past `warn_after`; or past `expire_after` with evidence the holder is alive.
    Warn,
    /// Past `expire_after`, no evidence of life: alert with an approval offer; a person decides.
    ProposeUnlock,
    /// Past `expire_after`, no evidence of life, every liveness source read (no evidence gap),
    /// auto-expiry on for the path, digest not contradicting the state, the lock's own JSON not
    /// naming another path, age known: the reaper releases the lock itself.
    AutoExpire,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Fresh => "fresh",
            Level::Warn => "warn",
            Level::ProposeUnlock => "propose-unlock",
            Level::AutoExpire => "auto-expire",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy's judgement of one lock at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub level: Level,
    /// How long the lock has been held (a lower bound for a first-seen time); `None` if unknown.
    pub age: Option<Duration>,
    pub thresholds: ResolvedThresholds,
    /// A state write after the lock was taken was seen: the holder is probably alive.
    pub alive: bool,
    /// The evidence the verdict was made from, so alerts can describe it.
    pub liveness: Liveness,
    /// Liveness evidence that was missing or could not be read (the lock kind's own gaps
    /// included); any gap keeps the lock from being expired automatically.
    pub gaps: Vec<EvidenceGap>,
    /// Why, as structured values (worded in [`crate::messages::reasons`]).
    #[serde(skip)]
    pub why: Vec<Reason>,
    /// Why, in the sentences people read in alerts and the CLI (lowercase, no final full stop):
    /// `why`, worded.
    pub reasons: Vec<String>,
}

/// A lock's age as a reason states it: a lower bound when the age counts from first sight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub age: Duration,
    /// The lock records no time; the age counts from when lockreaper first saw it.
    pub at_least: bool,
}

/// One reason for a [`Verdict`]: what the policy found, as a value; the words are in
/// [`crate::messages::reasons`], so every channel says the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// No creation time and not seen before: the age counts from this sweep.
    AgeUnknown,
    UnderWarning {
        held: Held,
        warn_after: Duration,
    },
    /// Past `warn_after`; proposed for unlock at `expire_after`. `matched`: the `LOCK_POLICY`
    /// patterns that applied.
    PastWarning {
        held: Held,
        warn_after: Duration,
        matched: Vec<String>,
        expire_after: Duration,
    },
    PastExpiry {
        held: Held,
        expire_after: Duration,
        matched: Vec<String>,
    },
    /// Liveness: the state was written at `at`, after the lock was taken. `so_not_proposed`: the
    /// lock is past expiry and this is why it is not proposed.
    WrittenAfterLock {
        at: DateTime<Utc>,
        so_not_proposed: bool,
    },
    /// Liveness: nothing shows the holder at work (which does not show it is gone).
    NoWriteSinceLock,
    AutoExpiring,
    /// Auto-expiry is on, but some liveness evidence is missing.
    AutoExpiryBlockedByGaps,
    /// Auto-expiry is off, by a `LOCK_POLICY` pattern or by `AUTO_EXPIRE=false`.
    AutoExpiryOff {
        by_pattern: Option<String>,
    },
    /// The `-md5` digest contradicts the state object.
    DigestMismatch,
    /// Liveness evidence that could not be read or does not exist.
    Gap(EvidenceGap),
    /// The lock's own JSON names another state path than where it is stored.
    DeclaredElsewhere {
        declared: String,
        stored: String,
    },
}

/// What the stored alert state of a lock looks like (kept in the ledger as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// The lock ID the alerts were about; a different ID at the same location is a new lock.
    pub lock_id: String,
    /// The level of the last alert sent.
    pub level: Level,
    pub first_alerted: DateTime<Utc>,
    pub last_sent: DateTime<Utc>,
    /// No alerts for this lock ID until then.
    #[serde(default)]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Proposals offered for this lock ID and not yet withdrawn by the reaper (used or denied
    /// ones may still be listed: the approvals path records those on the proposal itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_proposals: Vec<crate::decision::OpenProposal>,
}

impl AlertState {
    /// The state to store after sending an alert at `level`: keeps `first_alerted` and any snooze
    /// when the previous state is for the same lock ID, starts afresh otherwise.
    pub fn after_send(
        previous: Option<&AlertState>,
        lock_id: &str,
        level: Level,
        now: DateTime<Utc>,
    ) -> AlertState {
        match previous {
            Some(p) if p.lock_id == lock_id => AlertState {
                lock_id: lock_id.to_owned(),
                level,
                first_alerted: p.first_alerted,
                last_sent: now,
                snoozed_until: p.snoozed_until,
                open_proposals: p.open_proposals.clone(),
            },
            _ => AlertState {
                lock_id: lock_id.to_owned(),
                level,
                first_alerted: now,
                last_sent: now,
                snoozed_until: None,
                open_proposals: Vec::new(),
            },
        }
    }

    /// Whether a lock with this stored state deserves a "lock released" message when it goes away
    /// (or is replaced by a lock with another ID).
    pub fn wants_resolved_message(&self) -> bool {
        self.level >= Level::Warn
    }
}

/// Why an alert is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// First alert for this lock ID.
    New,
    /// The lock reached a higher level than the last alert.
    Escalated,
    /// Same (or lower) level, `remind_every` after the last alert.
    Reminder,
}

/// What this sweep should do about alerting for one lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    None,
    Send { kind: AlertKind, level: Level },
}

/// Decides whether to alert about a lock with ID `lock_id` judged at `level`, given the state
/// stored after the last alert for its location.
///
/// - `Fresh`: never.
/// - No stored state, or stored state for another lock ID: `New` (snoozes do not carry over).
/// - Snoozed (`now < snoozed_until`): nothing, not even an escalation.
/// - Level above the stored one: `Escalated`.
/// - Otherwise, `now − last_sent ≥ remind_every`: `Reminder` at the current level. A level that
///   fell (liveness appeared) is reported by that reminder, so a later rise escalates again.
/// - A `last_sent` in the future (clock skew between overlapping sweeps) sends nothing.
///
/// When the stored lock ID differs, the caller should also send the resolved message for the old
/// lock ([`AlertState::wants_resolved_message`]).
pub fn alert_action(
    previous: Option<&AlertState>,
    lock_id: &str,
    level: Level,
    now: DateTime<Utc>,
    remind_every: Duration,
) -> AlertAction {
    if level == Level::Fresh {
        return AlertAction::None;
    }
    let send = |kind| AlertAction::Send { kind, level };
    let previous = match previous {
        Some(p) if p.lock_id == lock_id => p,
        _ => return send(AlertKind::New),
    };
    if previous.snoozed_until.is_some_and(|until| now < until) {
        return AlertAction::None;
    }
    if level > previous.level {
        return send(AlertKind::Escalated);
    }
    match (now - previous.last_sent).to_std() {
        Ok(since) if since >= remind_every => send(AlertKind::Reminder),
        _ => AlertAction::None,
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
