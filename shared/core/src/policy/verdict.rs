//! Judging one lock: its [`Level`] and the [`Reason`]s for it, from its age, the thresholds for
//! its path and the liveness evidence. See the safety rule in [`crate::policy`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{EvidenceGap, Liveness, ResolvedThresholds, StaleLockPolicy};
use crate::model::{LockCreated, LockRecord};

impl StaleLockPolicy {
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
    /// The kill switch is on (`UNLOCKS_PAUSED=true`): nothing is deleted, automatically or on
    /// approval. `instead_of_expiry`: without it this lock would have been expired automatically.
    /// Added by [`crate::decision::decide`], not by the policy.
    UnlocksPaused {
        instead_of_expiry: bool,
    },
    /// Liveness evidence that could not be read or does not exist.
    Gap(EvidenceGap),
    /// The lock's own JSON names another state path than where it is stored.
    DeclaredElsewhere {
        declared: String,
        stored: String,
    },
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
