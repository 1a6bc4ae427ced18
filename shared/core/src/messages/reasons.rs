//! Why, in words: the one place that puts a verdict's [`Reason`]s, liveness evidence and evidence
//! gaps into sentences. Alerts, proposals, force-unlock's withdrawals and the CLI all show these
//! words; a channel that wants other words renders the structured values itself.
//!
//! Reasons are lowercase with no final full stop (an alert capitalises them as sentences; the CLI
//! lists them as they are).

use std::fmt;

use chrono::{DateTime, Utc};

use super::fmt_time;
use super::text::clip;
use crate::config::format_duration;
use crate::decision::{EvidenceGap, GapCause};
use crate::model::LockRecord;
use crate::policy::{Held, Liveness, Reason, Verdict};

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::AgeUnknown => f.write_str(
                "age unknown until first seen: the lock records no creation time and lockreaper has not seen it before; its age is counted from this sweep",
            ),
            Reason::UnderWarning { held, warn_after } => write!(
                f,
                "held {held}, under the {} warning threshold",
                format_duration(*warn_after)
            ),
            Reason::PastWarning {
                held,
                warn_after,
                matched,
                expire_after,
            } => write!(
                f,
                "held {held}, past the {} warning threshold{}; it will be proposed for unlock at {}",
                format_duration(*warn_after),
                policy_note(matched),
                format_duration(*expire_after),
            ),
            Reason::PastExpiry {
                held,
                expire_after,
                matched,
            } => write!(
                f,
                "held {held}, past the {} expiry threshold{}",
                format_duration(*expire_after),
                policy_note(matched),
            ),
            Reason::WrittenAfterLock {
                at,
                so_not_proposed,
            } => {
                write!(
                    f,
                    "state written at {} after the lock was taken: holder probably alive",
                    fmt_time(*at)
                )?;
                if *so_not_proposed {
                    f.write_str(", so it is not proposed for unlock")?;
                }
                Ok(())
            }
            Reason::NoWriteSinceLock => f.write_str(
                "no state write seen since the lock was taken (not proof the holder is gone: plans and long single resource operations write no state)",
            ),
            Reason::AutoExpiring => f.write_str(
                "no state write since the lock was taken and auto-expiry is on for this path: lockreaper releases it",
            ),
            Reason::AutoExpiryBlockedByGaps => f.write_str(
                "liveness could not be fully checked (see below), so although auto-expiry is on for this path, lockreaper does not release it: a person must approve the unlock",
            ),
            Reason::AutoExpiryOff {
                by_pattern: Some(p),
            } => write!(
                f,
                "auto-expiry is disabled for this path by the LOCK_POLICY entry `{p}`: a person must approve the unlock"
            ),
            Reason::AutoExpiryOff { by_pattern: None } => f.write_str(
                "auto-expiry is off (AUTO_EXPIRE=false): a person must approve the unlock",
            ),
            Reason::DigestMismatch => f.write_str(
                "the state digest in the lock table does not match the state object: the last state write may be incomplete, so this lock is never expired automatically and a person must check the state before unlocking",
            ),
            Reason::UnlocksPaused { instead_of_expiry } => {
                let parameter = crate::config::UNLOCKS_PAUSED_PARAMETER;
                if *instead_of_expiry {
                    write!(f, "unlocks are paused on this stack ({parameter}=true): lockreaper does not release it although auto-expiry would; ")?;
                } else {
                    write!(f, "unlocks are paused on this stack ({parameter}=true): ")?;
                }
                write!(f, "nothing is deleted, not even on approval; an approval given meanwhile is refused without being used up, so it still works once {parameter}=false, until it expires")
            }
            Reason::Gap(gap) => f.write_str(&gap_sentence(gap)),
            Reason::DeclaredElsewhere { declared, stored } => write!(
                f,
                "suspicious: the lock's own JSON names the state path {declared:?}, but it is stored as {stored:?}; lockreaper judges it by where it is stored and never releases it automatically"
            ),
        }
    }
}

impl fmt::Display for Held {
    /// `5h12m`, or `at least 5h12m` for an age counted from first sight.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at_least {
            f.write_str("at least ")?;
        }
        f.write_str(&format_duration(self.age))
    }
}

/// ` (LOCK_POLICY `a/*`)` when an override applied, for the threshold sentences.
fn policy_note(matched: &[String]) -> String {
    match matched {
        [] => String::new(),
        [one] => format!(" (LOCK_POLICY `{one}`)"),
        many => format!(
            " (LOCK_POLICY {})",
            many.iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An evidence gap as a reason: what could not be checked, and that it blocks auto-expiry.
pub(crate) fn gap_sentence(gap: &EvidenceGap) -> String {
    match gap.cause {
        GapCause::Unreadable => format!(
            "could not check {} ({}): a lock whose liveness cannot be checked is never released automatically",
            gap.source.describe(),
            gap.problem
        ),
        GapCause::Missing => format!(
            "no liveness evidence from {}: {}; such a lock is never released automatically",
            gap.source.describe(),
            gap.problem
        ),
        GapCause::NotCovered => format!(
            "cannot tell — {}; a lock whose state lockreaper may not read is never released automatically",
            gap.problem
        ),
    }
}

/// Why an open proposal is withdrawn, as [`crate::decision::decide`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WithdrawalCause<'a> {
    /// The lock the proposal was made for is gone; another one is there now.
    AnotherLock { proposed: &'a str, now: &'a str },
    /// The state was written after the unlock was proposed.
    WrittenAfterProposal {
        written: DateTime<Utc>,
        proposed_at: DateTime<Utc>,
    },
    /// The state was written after the lock was taken, which the proposal did not know.
    WrittenUnseen {
        written: DateTime<Utc>,
        proposed_at: DateTime<Utc>,
    },
}

impl fmt::Display for WithdrawalCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WithdrawalCause::AnotherLock { proposed, now } => write!(
                f,
                "the lock it was made for ({proposed}) is gone; the lock now there ({now}) is another one"
            ),
            WithdrawalCause::WrittenAfterProposal {
                written,
                proposed_at,
            } => write!(
                f,
                "state written at {}, after the unlock was proposed at {}: the holder is alive",
                fmt_time(*written),
                fmt_time(*proposed_at)
            ),
            WithdrawalCause::WrittenUnseen {
                written,
                proposed_at,
            } => write!(
                f,
                "state written at {}, after the lock was taken (evidence not available when the unlock was proposed at {}): the holder is alive",
                fmt_time(*written),
                fmt_time(*proposed_at)
            ),
        }
    }
}

/// The alert's "Liveness" lines: every piece of evidence, read or not, in the order people check it.
pub(crate) fn evidence_lines(lock: &LockRecord, verdict: &Verdict) -> Vec<String> {
    let created = lock.created.at();
    let live = &verdict.liveness;
    let relation = |t: DateTime<Utc>| match created {
        Some(c) if t > c => "after the lock was taken",
        Some(_) => "before the lock was taken",
        None => "lock time unknown",
    };
    let mut lines = Vec::new();
    match live.state_last_modified {
        Some(t) => lines.push(format!(
            "State object last written {} ({})",
            fmt_time(t),
            relation(t)
        )),
        None => lines.push("State object's last write: not known".to_owned()),
    }
    for gap in &verdict.gaps {
        lines.push(match gap.cause {
            GapCause::Unreadable => format!(
                "Could not read {}: {}",
                gap.source_name(),
                clip(&gap.problem)
            ),
            GapCause::Missing => format!(
                "No evidence from {}: {}",
                gap.source_name(),
                clip(&gap.problem)
            ),
            GapCause::NotCovered => format!("Cannot tell: {}", clip(&gap.problem)),
        });
    }
    if let Some(t) = live.last_state_write {
        // Where lock-metrics saw it: the `-md5` digest item on the lock table's stream, or the
        // state object's `Object Created` event for a lock file's state (S3 events).
        let seen_on = if lock.kind == crate::LockKind::TerraformS3LockFile {
            "the state bucket's S3 events"
        } else {
            "the lock table stream"
        };
        lines.push(format!(
            "Last state write seen on {seen_on}: {} ({})",
            fmt_time(t),
            relation(t)
        ));
    }
    match live.digest_matches_state {
        Some(true) => lines.push("State digest matches the state object".to_owned()),
        Some(false) => lines.push(
            "State digest does NOT match the state object: the last state write may be incomplete"
                .to_owned(),
        ),
        None => {}
    }
    if verdict.alive {
        lines.push(
            "The holder made progress after taking the lock: it is probably still running (if it was interrupted, a partial apply is likely)".to_owned());
    } else if created.is_some() && !verdict.gaps.is_empty() {
        lines.push(
            "No state write seen since the lock was taken in what could be read, which does not show the holder is gone"
                .to_owned(),
        );
    } else if created.is_some() {
        lines.push("No state write seen since the lock was taken".to_owned());
    }
    lines
}

/// The liveness evidence in a few words, for a terminal table (`lockreaper locks`' EVIDENCE
/// column): a write after the lock (`created`) and how long ago, or that none was seen; the
/// digest check; whether some evidence could not be read (`incomplete`). `-` when nothing is
/// known.
pub fn evidence_summary(
    live: &Liveness,
    created: Option<DateTime<Utc>>,
    state_object_exists: Option<bool>,
    state_not_covered: bool,
    incomplete: bool,
    now: DateTime<Utc>,
) -> String {
    let mut parts = Vec::new();
    if state_not_covered {
        // First: the rest of the column is only what could be read elsewhere (the ledger).
        parts.push("CANNOT TELL: state bucket not covered by this deployment".to_owned());
    }
    match live.write_after(created) {
        Some(t) => parts.push(format!(
            "state written {} ago, after the lock",
            format_duration((now - t).to_std().unwrap_or_default())
        )),
        None if live.state_last_modified.is_some() || live.last_state_write.is_some() => {
            parts.push("no state write since the lock".to_owned())
        }
        None if state_object_exists == Some(false) => parts.push("no state object yet".to_owned()),
        None if created.is_none() => parts.push("age unknown".to_owned()),
        None => {}
    }
    match live.digest_matches_state {
        Some(true) => parts.push("digest matches state".to_owned()),
        Some(false) => parts.push("DIGEST DOES NOT MATCH STATE".to_owned()),
        None => {}
    }
    if incomplete {
        parts.push("evidence incomplete (see below)".to_owned());
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::EvidenceSource;
    use chrono::TimeZone;
    use std::time::Duration;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, h, m, 0).unwrap()
    }

    /// The words of the reasons the policy tests do not pin in full: several `LOCK_POLICY`
    /// patterns, auto-expiry turned off by a pattern, a lock whose JSON names another path, and
    /// first-seen ages.
    #[test]
    fn reasons_read_as_before() {
        let held = Held {
            age: Duration::from_secs(5 * 3600 + 12 * 60),
            at_least: true,
        };
        let cases = [
            (
                Reason::PastExpiry {
                    held,
                    expire_after: Duration::from_secs(4 * 3600),
                    matched: vec!["a/*".to_owned(), "a/b/*".to_owned()],
                },
                "held at least 5h12m, past the 4h expiry threshold (LOCK_POLICY `a/*`, `a/b/*`)",
            ),
            (
                Reason::PastWarning {
                    held: Held {
                        at_least: false,
                        ..held
                    },
                    warn_after: Duration::from_secs(3600),
                    matched: Vec::new(),
                    expire_after: Duration::from_secs(4 * 3600),
                },
                "held 5h12m, past the 1h warning threshold; it will be proposed for unlock at 4h",
            ),
            (
                Reason::AutoExpiryOff {
                    by_pattern: Some("prod/*".to_owned()),
                },
                "auto-expiry is disabled for this path by the LOCK_POLICY entry `prod/*`: a person must approve the unlock",
            ),
            (
                Reason::WrittenAfterLock {
                    at: at(9, 30),
                    so_not_proposed: true,
                },
                "state written at 2025-03-04 09:30:00 UTC after the lock was taken: holder probably alive, so it is not proposed for unlock",
            ),
            (
                Reason::DeclaredElsewhere {
                    declared: "b/other".to_owned(),
                    stored: "b/mine".to_owned(),
                },
                "suspicious: the lock's own JSON names the state path \"b/other\", but it is stored as \"b/mine\"; lockreaper judges it by where it is stored and never releases it automatically",
            ),
            (
                Reason::Gap(EvidenceGap::unreadable(
                    EvidenceSource::StateObject,
                    "AccessDenied",
                )),
                "could not check the state object (AccessDenied): a lock whose liveness cannot be checked is never released automatically",
            ),
        ];
        for (reason, words) in cases {
            assert_eq!(reason.to_string(), words);
        }
    }

    #[test]
    fn withdrawals_name_both_locks_or_both_times() {
        assert_eq!(
            WithdrawalCause::AnotherLock {
                proposed: "old",
                now: "new"
            }
            .to_string(),
            "the lock it was made for (old) is gone; the lock now there (new) is another one"
        );
        assert_eq!(
            WithdrawalCause::WrittenUnseen {
                written: at(9, 0),
                proposed_at: at(10, 0)
            }
            .to_string(),
            "state written at 2025-03-04 09:00:00 UTC, after the lock was taken (evidence not available when the unlock was proposed at 2025-03-04 10:00:00 UTC): the holder is alive"
        );
    }
}
