//! What a sweep tells the outside world, bounded whatever the number of locks: the Lambda's
//! invocation result and the one `sweep-summary` log line.
//!
//! Why bounded: a Lambda response is capped at 6 MB (Lambda quotas, "Invocation payload
//! (request and response)"), and a sweep of thousands of healthy locks listed each one (~300
//! bytes) — a large account's scheduled invocation would fail on its own result. The full
//! [`SweepOutcome`] stays what [`Reaper::sweep`](crate::Reaper::sweep) returns (tests and the
//! benchmark read it); the summary keeps every count and only the locks someone should look at.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lockreaper_core::policy::Level;
use serde::Serialize;

use crate::{JudgedLock, SweepOutcome};

/// At most this many locks are listed (the most urgent first); the rest are counted.
pub const MAX_LISTED_LOCKS: usize = 200;
/// At most this many entries of each list of messages (errors, unreachable sources, …).
pub const MAX_LISTED_MESSAGES: usize = 50;
/// Each listed message is cut to this many bytes (an AWS error can quote a whole request).
pub const MAX_MESSAGE_BYTES: usize = 1_000;

/// The bounded account of one sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepSummary {
    pub swept_at: Option<DateTime<Utc>>,
    pub dry_run: bool,
    /// Locks judged in this sweep (every level).
    pub judged: usize,
    /// Judged locks per level (`fresh`, `warn`, `propose-unlock`, `auto-expire`).
    pub by_level: BTreeMap<&'static str, usize>,
    /// Locks whose liveness evidence was missing or could not be read.
    pub with_evidence_gaps: usize,
    /// The locks worth a person's attention — above `fresh`, with an evidence gap, or acted on
    /// in this sweep — most urgent first (level, then age), at most [`MAX_LISTED_LOCKS`].
    pub locks: Vec<JudgedLock>,
    /// Locks worth attention that did not fit in `locks`.
    pub locks_not_listed: usize,
    pub young_lock_files: usize,
    pub alerts_sent: usize,
    pub resolved_sent: usize,
    pub expired: usize,
    pub unparseable: Listed,
    pub unreachable: Listed,
    pub incomplete_sources: Listed,
    pub errors: Listed,
    pub not_reached: Listed,
    pub aws_calls: usize,
}

/// A list of messages cut to [`MAX_LISTED_MESSAGES`] entries of at most [`MAX_MESSAGE_BYTES`].
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Listed {
    pub count: usize,
    pub first: Vec<String>,
}

impl Listed {
    fn of<'a>(all: impl IntoIterator<Item = &'a String>) -> Listed {
        let mut listed = Listed::default();
        for message in all {
            listed.count += 1;
            if listed.first.len() < MAX_LISTED_MESSAGES {
                listed.first.push(cut(message, MAX_MESSAGE_BYTES));
            }
        }
        listed
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Whether a person should see this lock in the summary.
fn worth_attention(lock: &JudgedLock) -> bool {
    lock.level > Level::Fresh
        || !lock.evidence_gaps.is_empty()
        || lock.alert.is_some()
        || lock.proposal_id.is_some()
        || !lock.withdrawn.is_empty()
        || lock.expired.is_some()
}

impl SweepOutcome {
    /// The bounded summary of this sweep.
    pub fn summary(&self) -> SweepSummary {
        let mut by_level: BTreeMap<&'static str, usize> = BTreeMap::new();
        for level in [
            Level::Fresh,
            Level::Warn,
            Level::ProposeUnlock,
            Level::AutoExpire,
        ] {
            by_level.insert(level.as_str(), 0);
        }
        for lock in &self.locks {
            *by_level.entry(lock.level.as_str()).or_default() += 1;
        }
        let mut notable: Vec<&JudgedLock> =
            self.locks.iter().filter(|l| worth_attention(l)).collect();
        // Most urgent first: the highest level, then the oldest (unknown age last).
        notable.sort_by(|a, b| {
            b.level
                .cmp(&a.level)
                .then_with(|| b.age_seconds.unwrap_or(0).cmp(&a.age_seconds.unwrap_or(0)))
        });
        let locks_not_listed = notable.len().saturating_sub(MAX_LISTED_LOCKS);
        SweepSummary {
            swept_at: self.swept_at,
            dry_run: self.dry_run,
            judged: self.locks.len(),
            by_level,
            with_evidence_gaps: self
                .locks
                .iter()
                .filter(|l| !l.evidence_gaps.is_empty())
                .count(),
            locks: notable
                .into_iter()
                .take(MAX_LISTED_LOCKS)
                .cloned()
                .collect(),
            locks_not_listed,
            young_lock_files: self.young_lock_files,
            alerts_sent: self.alerts_sent,
            resolved_sent: self.resolved_sent,
            expired: self.locks.iter().filter(|l| l.expired.is_some()).count(),
            unparseable: Listed::of(&self.unparseable),
            unreachable: Listed::of(&self.unreachable),
            incomplete_sources: Listed::of(&self.incomplete_sources),
            errors: Listed::of(&self.errors),
            not_reached: Listed::of(&self.not_reached),
            aws_calls: self.aws_calls,
        }
    }

    /// The one line a sweep logs at its end (per-lock lines are written only for locks worth
    /// attention, so a steady state of healthy locks logs just this).
    pub fn log_summary(&self) {
        let summary = self.summary();
        let count = |level: Level| summary.by_level.get(level.as_str()).copied().unwrap_or(0);
        tracing::info!(
            event = "sweep-summary",
            judged = summary.judged,
            fresh = count(Level::Fresh),
            warn = count(Level::Warn),
            propose_unlock = count(Level::ProposeUnlock),
            auto_expire = count(Level::AutoExpire),
            with_evidence_gaps = summary.with_evidence_gaps,
            young_lock_files = summary.young_lock_files,
            alerts_sent = summary.alerts_sent,
            resolved_sent = summary.resolved_sent,
            expired = summary.expired,
            unparseable = summary.unparseable.count,
            unreachable = summary.unreachable.count,
            incomplete_sources = summary.incomplete_sources.count,
            errors = summary.errors.count,
            not_reached = summary.not_reached.count,
            aws_calls = summary.aws_calls,
            dry_run = summary.dry_run,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lock(n: usize, level: Level, age: u64) -> JudgedLock {
        JudgedLock {
            state_path: format!("acme-tfstate/env:/team-{n}/network/terraform.tfstate"),
            lock_id: format!("8f1d3c2e-0000-4000-8000-{n:012}"),
            kind: "terraform-dynamodb",
            locations: vec![format!("dynamodb://tf-locks/acme-tfstate/team-{n}")],
            who: Some(format!("runner-{n}@ci-host-{n}")),
            age_seconds: Some(age),
            level,
            alive: false,
            reasons: vec!["held 2h 10m, past the warning threshold of 2h".into()],
            evidence_gaps: Vec::new(),
            alert: None,
            proposal_id: None,
            withdrawn: Vec::new(),
            expired: None,
        }
    }

    /// 20,000 healthy locks and thousands of errors: the result stays far below Lambda's 6 MB
    /// response limit, every count is exact, and the locks that matter are listed first.
    #[test]
    fn a_huge_sweep_summarises_within_the_response_limit() {
        let mut outcome = SweepOutcome::default();
        for n in 0..20_000 {
            outcome.locks.push(lock(n, Level::Fresh, 60));
        }
        let mut gap = lock(20_000, Level::Fresh, 30);
        gap.evidence_gaps
            .push("the state bucket could not be read".into());
        outcome.locks.push(gap);
        for n in 0..300 {
            outcome
                .locks
                .push(lock(30_000 + n, Level::Warn, 7_200 + n as u64));
        }
        outcome
            .locks
            .push(lock(40_000, Level::ProposeUnlock, 3_600));
        for n in 0..5_000 {
            outcome
                .errors
                .push(format!("error {n}: {}", "x".repeat(5_000)));
        }
        let full = serde_json::to_string(&outcome).unwrap().len();
        let summary = outcome.summary();
        let bytes = serde_json::to_string(&summary).unwrap().len();
        assert!(
            full > 6 * 1024 * 1024,
            "the full outcome would not fit: {full} bytes"
        );
        assert!(bytes < 256 * 1024, "summary is {bytes} bytes");

        assert_eq!(summary.judged, 20_302);
        assert_eq!(summary.by_level["fresh"], 20_001);
        assert_eq!(summary.by_level["warn"], 300);
        assert_eq!(summary.by_level["propose-unlock"], 1);
        assert_eq!(summary.by_level["auto-expire"], 0);
        assert_eq!(summary.with_evidence_gaps, 1);
        assert_eq!(summary.locks.len(), MAX_LISTED_LOCKS);
        assert_eq!(summary.locks_not_listed, 302 - MAX_LISTED_LOCKS);
        // The most urgent first: the proposal, then the oldest warnings.
        assert_eq!(summary.locks[0].level, Level::ProposeUnlock);
        assert_eq!(summary.locks[1].age_seconds, Some(7_200 + 299));
        assert!(summary.locks.iter().all(|l| l.level > Level::Fresh));
        assert_eq!(summary.errors.count, 5_000);
        assert_eq!(summary.errors.first.len(), MAX_LISTED_MESSAGES);
        assert!(summary.errors.first[0].len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(summary.errors.first[0].ends_with('…'));
    }

    #[test]
    fn a_small_sweep_lists_every_lock_worth_attention_and_nothing_else() {
        let mut outcome = SweepOutcome::default();
        outcome.locks.push(lock(1, Level::Fresh, 10));
        let mut withdrawn = lock(2, Level::Fresh, 10);
        withdrawn.withdrawn.push("p-1".into());
        outcome.locks.push(withdrawn);
        outcome.locks.push(lock(3, Level::Warn, 9_000));
        outcome.errors.push("short".into());
        let summary = outcome.summary();
        let listed: Vec<&str> = summary.locks.iter().map(|l| l.lock_id.as_str()).collect();
        assert_eq!(
            listed,
            [
                "8f1d3c2e-0000-4000-8000-000000000003",
                "8f1d3c2e-0000-4000-8000-000000000002"
            ]
        );
        assert_eq!(summary.locks_not_listed, 0);
        assert_eq!(
            summary.errors,
            Listed {
                count: 1,
                first: vec!["short".into()]
            }
        );
    }

    #[test]
    fn cutting_respects_character_boundaries() {
        let text = "é".repeat(10); // 2 bytes each
        assert_eq!(cut(&text, 5), format!("{}…", "é".repeat(2)));
        assert_eq!(cut("abc", 3), "abc");
    }
}
