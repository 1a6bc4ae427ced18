//! The whole unlock decision for one lock, made once, here: evidence in, a plan out.
//!
//! The reaper (every sweep), force-unlock (the final check before it deletes an approved lock) and
//! the CLI's `locks` listing all call [`decide`], so the three can never disagree about a lock.
//! Their only job is to gather the [`LockEvidence`] (I/O) and carry out the [`Plan`].
//!
//! # Rules
//!
//! - **Could not tell is never dead.** Every liveness source a lock can have must have been read in
//!   this sweep; a read error ([`GapCause::Unreadable`]) or a source the lock does not have
//!   ([`GapCause::Missing`], e.g. a Gyro lock has no state object) blocks auto-expiry: the lock is
//!   proposed to a person instead, and the alert names the gap. A state object outside the
//!   deployment's coverage ([`GapCause::NotCovered`], [`crate::coverage`]) is "cannot tell" too.
//! - **A sign of life withdraws proposals.** A state write after an open proposal was made means
//!   the holder resumed after the lock was judged dead: that proposal is withdrawn (the reaper says
//!   so in the lock's thread) and force-unlock refuses its approval.
//! - **One open proposal per lock.** A reminder at the propose level re-offers the open proposal
//!   instead of creating another one; a new proposal is made only when none is open and unexpired.
//! - **A snooze also pauses auto-expiry**: a person who asked to hear nothing about a lock for a
//!   while has not asked for it to be released meanwhile. A snooze is bound to the lock instance
//!   (its lock ID): callers pass only a snooze recorded for this very lock.
//! - **The kill switch stops every delete.** While unlocks are paused (`UNLOCKS_PAUSED=true`, the
//!   stack's `UnlocksPaused` parameter), a lock that would be expired automatically is proposed
//!   instead, every proposal's alert says unlocks are paused and by what, and an approval is
//!   refused before anything is touched: its proposal stays open, so the same approval works once
//!   the switch is off (until it expires).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::kinds::{gyro, Tool};
use crate::messages::reasons::WithdrawalCause;
use crate::model::LockRecord;
use crate::policy::{
    alert_action, AlertAction, AlertState, Level, Liveness, Reason, StaleLockPolicy, Verdict,
};

/// Where evidence that a lock's holder is alive comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceSource {
    /// The state object's `LastModified` (S3 HeadObject on the lock's `<bucket>/<key>`).
    StateObject,
    /// The last state write lock-metrics saw on the lock table's stream, or in the state bucket's
    /// S3 events for a lock file (the ledger).
    StateWriteLedger,
    /// Any source at all: the lock kind has none (Gyro).
    AnySource,
}

impl EvidenceSource {
    /// What the source is, for people ("the state object").
    pub fn describe(self) -> &'static str {
        match self {
            EvidenceSource::StateObject => "the state object",
            // (Worded for the stream, which most deployments have; the same ledger record also
            // holds a lock file's state writes from S3 events.)
            EvidenceSource::StateWriteLedger => "the last state write recorded from the stream",
            EvidenceSource::AnySource => "any liveness evidence",
        }
    }
}

/// Why a source gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapCause {
    /// Reading it failed in this sweep (throttled, denied, unreachable, …).
    Unreadable,
    /// The lock has no such source (its kind, or how lockreaper is deployed).
    Missing,
    /// The source lies where this deployment may not read it: the state bucket is not in the
    /// configured state buckets or outside the key prefix ([`crate::coverage::coverage`]), or
    /// reading it was denied or went to another region. "Cannot tell", decided from the
    /// configuration, never from whether a read happened to work.
    NotCovered,
}

/// Liveness evidence the decision had to do without.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceGap {
    pub source: EvidenceSource,
    pub cause: GapCause,
    /// What went wrong, for people (the AWS error, or why the source does not exist).
    pub problem: String,
}

impl EvidenceGap {
    /// A read of `source` failed with `problem`.
    pub fn unreadable(source: EvidenceSource, problem: impl Into<String>) -> EvidenceGap {
        EvidenceGap {
            source,
            cause: GapCause::Unreadable,
            problem: problem.into(),
        }
    }

    /// `source` does not exist for this lock, because `problem`.
    pub fn missing(source: EvidenceSource, problem: impl Into<String>) -> EvidenceGap {
        EvidenceGap {
            source,
            cause: GapCause::Missing,
            problem: problem.into(),
        }
    }

    /// The gaps a lock has by its kind alone, whatever was read: a Gyro lock names no state object
    /// and Gyro writes nothing lockreaper sees, so nothing can ever show its holder is alive.
    pub fn inherent(lock: &LockRecord) -> Vec<EvidenceGap> {
        match lock.kind.tool_kind() {
            Tool::Gyro => vec![EvidenceGap::missing(
                EvidenceSource::AnySource,
                gyro::NO_LIVENESS,
            )],
            Tool::Terraform => {
                if lock.terraform_state().is_none() {
                    vec![EvidenceGap::missing(
                        EvidenceSource::StateObject,
                        format!(
                            "the lock's path {:?} names no state object",
                            lock.state_path
                        ),
                    )]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// What the source is, for people.
    pub fn source_name(&self) -> &'static str {
        self.source.describe()
    }

    /// The sentence in an alert's reasons.
    pub fn sentence(&self) -> String {
        crate::messages::reasons::gap_sentence(self)
    }
}

/// A proposal that was offered for a lock and not yet used, denied or withdrawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenProposal {
    pub proposal_id: String,
    /// The lock ID the proposal was made for.
    pub lock_id: String,
    pub proposed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Everything known about one lock at one moment: what [`decide`] decides from.
#[derive(Debug, Clone, Copy)]
pub struct LockEvidence<'a> {
    /// The lock (its primary artefact), with a first-seen time already filled in for Gyro.
    pub lock: &'a LockRecord,
    /// What was read.
    pub liveness: &'a Liveness,
    /// What could not be read, or does not exist (the lock kind's own gaps are added by
    /// [`decide`]). Callers that did not look at all (a lock too young to matter) pass none.
    pub gaps: &'a [EvidenceGap],
    /// The alert state stored after the last alert about this lock's location.
    pub alert: Option<&'a AlertState>,
    /// This lock (this lock ID) is snoozed until then.
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Proposals offered for this lock and still open.
    pub open_proposals: &'a [OpenProposal],
    /// The kill switch (`UNLOCKS_PAUSED`, read by `Env::unlocks_paused`): nothing may be deleted.
    pub unlocks_paused: bool,
}

/// Whether to offer an unlock for approval in this sweep's alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Propose {
    No,
    /// Make a new proposal (none is open for this lock).
    New,
    /// Offer this open proposal again (a reminder): one open proposal per lock.
    Reoffer(OpenProposal),
}

/// An open proposal to withdraw, and why (a sentence for the lock's thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub proposal: OpenProposal,
    pub reason: String,
}

/// What to do about one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub verdict: Verdict,
    /// Release it now, through the audited conditional delete (`AUTO_EXPIRE`). If that does not
    /// release it (changed, failed), the executor falls back to `alert`.
    pub expire: bool,
    /// Alert, remind, or stay quiet.
    pub alert: AlertAction,
    pub propose: Propose,
    /// Open proposals that must no longer be approved: the lock showed signs of life after them,
    /// or they are for another lock instance.
    pub withdraw: Vec<Withdrawal>,
}

/// Decides everything about one lock at `now`. Pure: see the module docs for the rules.
pub fn decide(policy: &StaleLockPolicy, evidence: &LockEvidence<'_>, now: DateTime<Utc>) -> Plan {
    let lock = evidence.lock;
    let mut verdict = policy.evaluate(lock, evidence.liveness, evidence.gaps, now);
    if evidence.unlocks_paused {
        pause_unlocks(&mut verdict);
    }
    let snoozed = evidence.snoozed_until.is_some_and(|until| now < until);

    let mut withdraw = Vec::new();
    let mut still_open = Vec::new();
    for proposal in evidence.open_proposals {
        if proposal.lock_id != lock.lock_id {
            withdraw.push(Withdrawal {
                proposal: proposal.clone(),
                reason: WithdrawalCause::AnotherLock {
                    proposed: &proposal.lock_id,
                    now: &lock.lock_id,
                }
                .to_string(),
            });
        } else if let Some(written) = evidence.liveness.write_after(Some(proposal.proposed_at)) {
            withdraw.push(Withdrawal {
                proposal: proposal.clone(),
                reason: WithdrawalCause::WrittenAfterProposal {
                    written,
                    proposed_at: proposal.proposed_at,
                }
                .to_string(),
            });
        } else if let Some(written) = evidence.liveness.write_after(lock.created.at()) {
            // Written before the proposal but after the lock was taken: the proposal was made
            // without this evidence (it could not be read then).
            withdraw.push(Withdrawal {
                proposal: proposal.clone(),
                reason: WithdrawalCause::WrittenUnseen {
                    written,
                    proposed_at: proposal.proposed_at,
                }
                .to_string(),
            });
        } else if now < proposal.expires_at {
            still_open.push(proposal);
        }
    }

    let expire = verdict.level == Level::AutoExpire && !snoozed;

    let mut previous = evidence.alert.cloned();
    if let Some(p) = previous.as_mut() {
        p.snoozed_until = evidence.snoozed_until.or(p.snoozed_until);
    }
    let alert = if previous.is_none() && snoozed {
        AlertAction::None
    } else {
        alert_action(
            previous.as_ref(),
            &lock.lock_id,
            verdict.level.min(Level::ProposeUnlock),
            now,
            policy.remind_every,
        )
    };
    let propose = match alert {
        AlertAction::Send { level, .. } if level >= Level::ProposeUnlock => {
            match still_open.into_iter().max_by_key(|p| p.proposed_at) {
                Some(open) => Propose::Reoffer(open.clone()),
                None => Propose::New,
            }
        }
        _ => Propose::No,
    };
    Plan {
        verdict,
        expire,
        alert,
        propose,
        withdraw,
    }
}

/// The kill switch applied to a verdict: auto-expiry becomes a proposal, and a lock that is
/// proposed says that unlocks are paused (so nobody approves expecting a release).
fn pause_unlocks(verdict: &mut Verdict) {
    let reason = match verdict.level {
        Level::AutoExpire => {
            verdict.level = Level::ProposeUnlock;
            verdict.why.retain(|r| *r != Reason::AutoExpiring);
            Reason::UnlocksPaused {
                instead_of_expiry: true,
            }
        }
        Level::ProposeUnlock => Reason::UnlocksPaused {
            instead_of_expiry: false,
        },
        Level::Fresh | Level::Warn => return,
    };
    verdict.why.push(reason);
    verdict.reasons = verdict.why.iter().map(ToString::to_string).collect();
}

/// What force-unlock may do with an approved proposal, decided by [`decide`] on evidence read
/// just before the delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalCheck {
    /// Nothing newer than the proposal shows the holder is alive: go ahead.
    Proceed,
    /// The lock came alive after the proposal: refuse, and withdraw the proposal for good.
    Withdraw(String),
    /// Liveness since the proposal could not be read: refuse for now (nothing deleted, the
    /// proposal stays open so the approval can be given again).
    CannotConfirm(String),
    /// The kill switch is on: refuse, touching nothing (the proposal stays open, so this same
    /// approval works once unlocks are resumed, until `usable_until`).
    UnlocksPaused { usable_until: DateTime<Utc> },
}

/// The kill switch's answer to an approval of `proposal`, before anything else is read or
/// written: `Some` while unlocks are paused. [`check_approval`] starts with it; force-unlock also
/// asks it before claiming the proposal, so a paused stack leaves the proposal exactly as it was.
pub fn unlocks_paused_check(
    unlocks_paused: bool,
    proposal: &OpenProposal,
) -> Option<ApprovalCheck> {
    unlocks_paused.then_some(ApprovalCheck::UnlocksPaused {
        usable_until: proposal.expires_at,
    })
}

/// The final check before force-unlock deletes `proposal`'s lock: the same [`decide`] the reaper
/// runs, with `proposal` as the lock's only open proposal. Only read errors
/// ([`GapCause::Unreadable`]) refuse: a person approved a lock whose inherent gaps (Gyro) and
/// coverage gaps (its state bucket is not covered, so no role of this deployment can ever read it)
/// the alert named; refusing those would make the approval impossible for good.
/// While `unlocks_paused`, the answer is [`ApprovalCheck::UnlocksPaused`] whatever the evidence:
/// the kill switch changes nothing.
pub fn check_approval(
    policy: &StaleLockPolicy,
    lock: &LockRecord,
    liveness: &Liveness,
    gaps: &[EvidenceGap],
    proposal: &OpenProposal,
    unlocks_paused: bool,
    now: DateTime<Utc>,
) -> ApprovalCheck {
    if let Some(paused) = unlocks_paused_check(unlocks_paused, proposal) {
        return paused;
    }
    let open = std::slice::from_ref(proposal);
    let plan = decide(
        policy,
        &LockEvidence {
            lock,
            liveness,
            gaps,
            alert: None,
            snoozed_until: None,
            open_proposals: open,
            unlocks_paused,
        },
        now,
    );
    if let Some(w) = plan
        .withdraw
        .iter()
        .find(|w| w.proposal.proposal_id == proposal.proposal_id)
    {
        return ApprovalCheck::Withdraw(w.reason.clone());
    }
    let unreadable: Vec<String> = plan
        .verdict
        .gaps
        .iter()
        .filter(|g| g.cause == GapCause::Unreadable)
        .map(EvidenceGap::sentence)
        .collect();
    if !unreadable.is_empty() {
        return ApprovalCheck::CannotConfirm(format!(
            "could not confirm the holder stayed silent since the unlock was proposed, so nothing was deleted; approve again later: {}",
            unreadable.join("; ")
        ));
    }
    ApprovalCheck::Proceed
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
