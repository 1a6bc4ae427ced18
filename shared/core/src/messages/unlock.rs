//! The message people read after an approval, denial or snooze arrives: what force-unlock did, or
//! why it did nothing. Pure formatting; the function decides the [`Outcome`] and publishes.
//!
//! Each message is a [`ResultMessage`]: an SNS `Subject` (printable ASCII, at most
//! [`SUBJECT_MAX`] characters), a chat custom notification (Amazon Q Developer in chat
//! applications, ex-AWS Chatbot) whose `metadata.threadId` is the proposal's `thread_id`, so the
//! result lands in the thread of the alert that offered the approval, and plain text for email.
//! [`ResultMessage::sns_message`] wraps both in the `MessageStructure=json` envelope.
//!
//! Outcomes without a proposal (a message that does not parse, a token that does not verify, a
//! proposal that is not in the ledger) have no thread; they are posted on their own.
//!
//! Text taken from the message or the lock (approver, reason, paths, errors) is put on one line and
//! capped, and backticks are neutralised inside code spans, so nothing a publisher writes can
//! reshape the notification.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::text::{clip, md_code, md_safe, md_text, one_line, shell_word, subject};
use super::{fmt_time, Closing, Decider, Fact, Message, RenderedMessage, Section, Step, Style};
use crate::approval::{ApprovalAction, ApprovalSource, SlackIdentity};
use crate::model::LockRecord;
use crate::proposal::{ArtefactOutcome, Proposal};

pub use super::SUBJECT_MAX;

/// `metadata.eventType` values.
pub const EVENT_UNLOCKED: &str = "LockUnlocked";
/// The approval was valid but nothing was deleted (lock changed, already released).
pub const EVENT_NOT_UNLOCKED: &str = "LockNotUnlocked";
pub const EVENT_UNLOCK_DENIED: &str = "LockUnlockDenied";
pub const EVENT_SNOOZED: &str = "LockSnoozed";
/// The approval, denial or snooze was refused before anything was touched.
pub const EVENT_APPROVAL_REJECTED: &str = "ApprovalRejected";
pub const EVENT_UNLOCK_FAILED: &str = "LockUnlockFailed";

/// At most this many error lines are listed.
const ERRORS_MAX: usize = 5;

/// One result, in every form it is delivered in (subject, chat notification, e-mail text).
pub type ResultMessage = RenderedMessage;

/// Who asked for what, as far as the message said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// `approve`, `deny` or `snooze`; `None` when the message did not parse.
    pub action: Option<&'a str>,
    pub source: Option<ApprovalSource>,
    /// As given in the message; chat buttons carry none.
    pub approver: Option<&'a str>,
    pub reason: Option<&'a str>,
    /// The approval token the message named, when it named one: the offer a final result closes
    /// ([`Message::closes`]).
    pub token: Option<&'a str>,
    pub at: DateTime<Utc>,
}

impl Decision<'_> {
    /// No decision by anyone at `at`: a message that did not parse, or lockreaper's own action
    /// (a proposal withdrawn because the lock came alive).
    pub fn nobody(at: DateTime<Utc>) -> Self {
        Decision {
            action: None,
            source: None,
            approver: None,
            reason: None,
            token: None,
            at,
        }
    }
}

/// One version of the state object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVersionInfo {
    pub version_id: String,
    pub last_modified: Option<DateTime<Utc>>,
}

/// What the state looked like right after an unlock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StateFindings {
    /// `<bucket>/<key>`.
    pub state: String,
    /// The `-md5` digest item's value, when there is one.
    pub digest: Option<String>,
    /// The MD5 of the state object's bytes, when it exists.
    pub state_md5: Option<String>,
    /// `Some(true)` when both exist and agree.
    pub digest_matches: Option<bool>,
    pub versioning_enabled: Option<bool>,
    /// The current version (what the interrupted run left).
    pub current_version: Option<StateVersionInfo>,
    /// The version before it: the rollback point if the current one is bad.
    pub previous_version: Option<StateVersionInfo>,
    /// Checks that could not be made.
    pub errors: Vec<String>,
}

/// Who used or denied a proposal before, as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriorUse {
    pub by: Option<String>,
    pub via: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

/// What happened to one approval, denial or snooze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The lock was deleted (every artefact still there, with its precondition).
    Unlocked {
        audit_id: String,
        /// One per proposal lock, in order.
        artefacts: Vec<ArtefactOutcome>,
        /// Terraform only.
        state: Option<StateFindings>,
        /// Problems after the delete (e.g. the outcome could not be added to the audit record).
        errors: Vec<String>,
    },
    /// The lock is not the one proposed any more: nothing deleted.
    LockChanged {
        audit_id: String,
        artefacts: Vec<ArtefactOutcome>,
    },
    /// Nothing was left to delete.
    AlreadyReleased {
        audit_id: String,
    },
    /// Something failed; see `errors`.
    Failed {
        audit_id: Option<String>,
        artefacts: Vec<ArtefactOutcome>,
        errors: Vec<String>,
    },
    /// The proposal was approved before (a replay or a second click).
    AlreadyUsed(PriorUse),
    /// This message denied the proposal.
    Denied,
    /// The proposal was denied before.
    AlreadyDenied(PriorUse),
    /// No alerts for the lock until `until`.
    Snoozed {
        until: DateTime<Utc>,
    },
    /// Refused: the lock showed signs of life after it was proposed, so the proposal was
    /// withdrawn (by this approval's final check, or earlier by the reaper). Nothing deleted.
    Withdrawn {
        reason: String,
    },
    /// Refused before anything was touched: the kill switch is on (`UNLOCKS_PAUSED=true`). The
    /// proposal stays open, so the same approval works once unlocks are resumed, until
    /// `usable_until`.
    UnlocksPaused {
        usable_until: DateTime<Utc>,
    },
    /// The token (or its proposal) expired.
    TokenExpired {
        expired_at: DateTime<Utc>,
    },
    /// The token does not verify: forged, altered, truncated, another key or version.
    TokenRejected {
        problem: String,
    },
    /// The token verifies but its proposal is not in the ledger.
    UnknownProposal {
        proposal_id: String,
    },
    /// The token is bound to a different lock than the proposal records.
    WrongLock,
    ApproverNotAllowed {
        problem: String,
    },
    /// The SNS message is not an approval, denial or snooze.
    BadMessage {
        problem: String,
    },
}

impl Outcome {
    /// A failure before any lock artefact was deleted (so none is listed), with its one error.
    pub fn failed_before_any_delete(audit_id: Option<String>, error: impl Into<String>) -> Outcome {
        Outcome::Failed {
            audit_id,
            artefacts: Vec::new(),
            errors: vec![error.into()],
        }
    }

    /// A short stable name for log lines and the handler's response.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Unlocked { .. } => "unlocked",
            Outcome::LockChanged { .. } => "lock-changed",
            Outcome::AlreadyReleased { .. } => "already-released",
            Outcome::Failed { .. } => "failed",
            Outcome::AlreadyUsed(_) => "already-used",
            Outcome::Denied => "denied",
            Outcome::AlreadyDenied(_) => "already-denied",
            Outcome::Withdrawn { .. } => "withdrawn",
            Outcome::UnlocksPaused { .. } => "unlocks-paused",
            Outcome::Snoozed { .. } => "snoozed",
            Outcome::TokenExpired { .. } => "token-expired",
            Outcome::TokenRejected { .. } => "token-rejected",
            Outcome::UnknownProposal { .. } => "unknown-proposal",
            Outcome::WrongLock => "wrong-lock",
            Outcome::ApproverNotAllowed { .. } => "approver-not-allowed",
            Outcome::BadMessage { .. } => "bad-message",
        }
    }

    /// Whether a lock was deleted.
    pub fn unlocked(&self) -> bool {
        matches!(self, Outcome::Unlocked { .. })
    }

    fn event_type(&self) -> &'static str {
        match self {
            Outcome::Unlocked { .. } => EVENT_UNLOCKED,
            Outcome::LockChanged { .. }
            | Outcome::AlreadyReleased { .. }
            | Outcome::Withdrawn { .. }
            | Outcome::UnlocksPaused { .. } => EVENT_NOT_UNLOCKED,
            Outcome::Failed { .. } => EVENT_UNLOCK_FAILED,
            Outcome::Denied => EVENT_UNLOCK_DENIED,
            Outcome::Snoozed { .. } => EVENT_SNOOZED,
            Outcome::AlreadyUsed(_)
            | Outcome::AlreadyDenied(_)
            | Outcome::TokenExpired { .. }
            | Outcome::TokenRejected { .. }
            | Outcome::UnknownProposal { .. }
            | Outcome::WrongLock
            | Outcome::ApproverNotAllowed { .. }
            | Outcome::BadMessage { .. } => EVENT_APPROVAL_REJECTED,
        }
    }
}

/// The notification for `outcome`. `proposal` is the proposal the message named, when it could be
/// identified (it gives the thread and the lock's details).
pub fn result_message(
    proposal: Option<&Proposal>,
    decision: &Decision<'_>,
    outcome: &Outcome,
) -> ResultMessage {
    let primary = proposal.and_then(Proposal::primary);
    let path = primary.map(|l| one_line(&l.state_path));
    let text = Texts::of(primary, decision, outcome);

    // Facts about the lock and the decision.
    let mut facts = Vec::new();
    if let Some(lock) = primary {
        facts.push(Fact::new("State", one_line(&lock.state_path), Style::Code));
        if let Some(ws) = lock
            .terraform_state()
            .and_then(|s| s.workspace(None).map(str::to_owned))
        {
            facts.push(Fact::new("Workspace", clip(&ws), Style::Code));
        }
        facts.push(Fact::new("Lock ID", clip(&lock.lock_id), Style::Code));
        facts.push(match lock.who.as_deref() {
            Some(who) => Fact::new("Held by", clip(who), Style::Code),
            None => Fact::new("Held by", "unknown", Style::Quoted),
        });
        if let Some(op) = &lock.operation {
            facts.push(Fact::new("Operation", clip(op), Style::Quoted));
        }
        if let Some(at) = lock.created.at() {
            facts.push(Fact::new("Taken", fmt_time(at), Style::Quoted));
        }
    }
    if let Some(proposal) = proposal {
        let artefacts = artefact_outcomes(outcome);
        for (i, lock) in proposal.locks.iter().enumerate() {
            let what = match artefacts.and_then(|a| a.get(i)) {
                Some(o) => format!(
                    "{} ({})",
                    one_line(&lock.location.to_string()),
                    artefact_word(*o)
                ),
                None => one_line(&lock.location.to_string()),
            };
            facts.push(Fact::new("Where", what, Style::Code));
        }
    }
    if let Some(action) = decision.action {
        facts.push(Fact::new("Request", action, Style::Quoted));
    }
    facts.push(Fact::new("By", approver_text(decision), Style::Quoted));
    if let Some(reason) = decision.reason {
        facts.push(Fact::new("Reason", clip(reason), Style::Quoted));
    }
    if let Some(proposal) = proposal {
        facts.push(Fact::new(
            "Proposal",
            clip(&proposal.proposal_id),
            Style::Code,
        ));
    }
    if let Some(audit) = audit_id(outcome) {
        facts.push(Fact::new("Audit ID", clip(audit), Style::Code));
    }
    facts.push(Fact::new("At", fmt_time(decision.at), Style::Quoted));

    let state_lines = match outcome {
        Outcome::Unlocked {
            state: Some(state), ..
        } => state_lines(state),
        _ => Vec::new(),
    };
    let sections = vec![
        Section {
            title: "State check",
            style: Style::Markdown,
            items: state_lines,
        },
        Section {
            title: "Errors",
            style: Style::Code,
            items: outcome_errors(outcome),
        },
    ];

    let mut machine = serde_json::Map::new();
    machine.insert("outcome".to_owned(), json!(outcome.as_str()));
    if let Some(proposal) = proposal {
        machine.insert("proposalId".to_owned(), json!(proposal.proposal_id));
    }
    if let Some(lock) = primary {
        machine.insert("lockId".to_owned(), json!(lock.lock_id));
        machine.insert("statePath".to_owned(), json!(lock.state_path));
        machine.insert("lockKind".to_owned(), json!(lock.kind.as_str()));
    }
    if let Some(audit) = audit_id(outcome) {
        machine.insert("auditId".to_owned(), json!(audit));
    }
    let id = match proposal {
        Some(p) => format!(
            "{}-{}-{}",
            p.thread_id,
            outcome.as_str(),
            decision.at.timestamp()
        ),
        None => format!(
            "lockreaper-{}-{}",
            outcome.as_str(),
            decision.at.timestamp()
        ),
    };
    RenderedMessage::of(&Message {
        subject: subject(
            "lockreaper",
            &text.subject_lead,
            path.as_deref().unwrap_or_default(),
        ),
        emoji: text.emoji,
        title: text.title,
        plain_title: None,
        status: text.status,
        facts,
        fact_column: None,
        sections,
        steps: text.steps,
        steps_numbered: true,
        sender: "lockreaper force-unlock".to_owned(),
        version: super::VERSION,
        id,
        thread: proposal.map(|p| p.thread_id.clone()),
        summary: text.summary,
        event_type: outcome.event_type(),
        keywords: vec!["lockreaper".to_owned(), outcome.as_str().to_owned()],
        related: Vec::new(),
        context: machine,
        // Results never carry an approval token: no buttons.
        approval: None,
        actions_enabled: false,
        closes: proposal.and_then(|_| closing(decision, outcome)),
    })
}

/// The words of one message.
struct Texts {
    emoji: &'static str,
    title: String,
    subject_lead: String,
    status: String,
    summary: String,
    steps: Vec<Step>,
}

impl Texts {
    fn of(primary: Option<&LockRecord>, decision: &Decision<'_>, outcome: &Outcome) -> Texts {
        let path = primary.map_or_else(|| "(unknown lock)".to_owned(), |l| one_line(&l.state_path));
        let lock_id = primary.map_or_else(String::new, |l| clip(&l.lock_id));
        let plan = primary.map_or_else(plan_advice_generic, plan_advice);
        let manual = primary.map(|l| {
            format!(
                "If the lock still blocks work and you are sure its holder is gone, release it by hand with `{}`.",
                md_safe(&l.manual_unlock_command())
            )
        });
        let new_alert =
            "If the lock is still stuck, the reaper proposes it again on its next sweep; approve from that alert."
                .to_owned();
        let t = |emoji,
                 title: String,
                 lead: &str,
                 status: String,
                 summary: String,
                 steps: Vec<Step>| Texts {
            emoji,
            title,
            subject_lead: lead.to_owned(),
            status,
            summary,
            steps,
        };
        match outcome {
            Outcome::Unlocked { state, .. } => {
                let mut steps: Vec<Step> = Vec::new();
                if let Some(StateFindings {
                    digest_matches: Some(false),
                    ..
                }) = state
                {
                    steps.push(Step::text("The state object does not match its `-md5` digest: a state write was cut off. Inspect the state before any apply; Terraform will refuse to read it until the digest is fixed."));
                }
                steps.push(Step::text(plan.clone()));
                if let Some(StateFindings {
                    previous_version: Some(prev),
                    state: state_path,
                    ..
                }) = state
                {
                    steps.push(rollback_advice(state_path, &prev.version_id));
                }
                if let Some(StateFindings {
                    versioning_enabled: Some(false),
                    ..
                }) = state
                {
                    steps.push(Step::text("Turn on versioning for the state bucket: without it there is no rollback point after an interrupted apply."));
                }
                t(
                    ":unlock:",
                    format!("Unlocked: {path}"),
                    "Unlocked: ",
                    format!(
                        "The approved stale lock {} was released: each artefact was deleted only because it was still exactly the lock that was proposed. The full lock content is in the audit record.",
                        md_code(&lock_id)
                    ),
                    format!("Lock released on {path}"),
                    steps,
                )
            }
            Outcome::LockChanged { .. } => t(
                ":no_entry:",
                format!("Not unlocked, lock changed since the proposal: {path}"),
                "Not unlocked (lock changed): ",
                "Lock changed since the proposal; not unlocked. The lock at this path is no longer the one that was proposed (it was released and taken again, or rewritten), so nothing was deleted.".to_owned(),
                format!("Lock changed since the proposal on {path}; not unlocked"),
                text_steps(vec!["Nothing to do if the new lock belongs to a running apply. If it gets stuck too, lockreaper alerts on it separately; approve from that alert.".to_owned()]),
            ),
            Outcome::AlreadyReleased { .. } => t(
                ":white_check_mark:",
                format!("Already released: {path}"),
                "Already released: ",
                "The proposed lock was already gone when the approval arrived; nothing was deleted.".to_owned(),
                format!("Lock on {path} was already released"),
                text_steps(vec![plan]),
            ),
            Outcome::Failed { .. } => {
                let mut steps = vec![
                    "Check the errors below and the function's log (a missing permission, a throttled table, a bucket policy). Every delete is conditional, so nothing but the proposed lock can have been removed.".to_owned(),
                    new_alert,
                ];
                steps.extend(manual);
                let steps = text_steps(steps);
                t(
                    ":x:",
                    format!("Unlock failed: {path}"),
                    "Unlock failed: ",
                    "The unlock did not complete. Any artefact already deleted was exactly the proposed lock; the rest is untouched.".to_owned(),
                    format!("Unlock failed on {path}"),
                    steps,
                )
            }
            Outcome::AlreadyUsed(prior) => t(
                ":repeat:",
                format!("Approval already used: {path}"),
                "Approval already used: ",
                format!(
                    "This approval was already used{}; an approval unlocks at most once, so nothing was done this time.",
                    md_text(&prior_text(prior))
                ),
                format!("Approval for {path} already used"),
                text_steps(vec![new_alert]),
            ),
            Outcome::Denied => t(
                ":no_entry_sign:",
                format!("Unlock denied: {path}"),
                "Unlock denied: ",
                format!(
                    "{} denied the proposal to unlock {}; the lock is left alone and this approval can no longer be used.",
                    md_text(&approver_text(decision)),
                    md_code(&lock_id)
                ),
                format!("Unlock of {path} denied"),
                text_steps(vec!["To silence alerts about this lock for a while instead, snooze it.".to_owned()]),
            ),
            Outcome::AlreadyDenied(prior) => t(
                ":no_entry_sign:",
                format!("Proposal already denied: {path}"),
                "Proposal already denied: ",
                format!(
                    "This proposal was denied{}; nothing was done.",
                    md_text(&prior_text(prior))
                ),
                format!("Proposal for {path} already denied"),
                text_steps(vec![new_alert]),
            ),
            Outcome::Withdrawn { reason } => t(
                ":heartbeat:",
                format!("Not unlocked, the holder is alive: {path}"),
                "Not unlocked (holder alive): ",
                format!(
                    "The unlock of {} was not done and its proposal is withdrawn: {}. Nothing was deleted, and this approval can no longer be used.",
                    md_code(&lock_id),
                    trim_stop(&md_text(&clip(reason)))
                ),
                format!("Proposal for {path} withdrawn: the holder is alive"),
                text_steps(vec!["Nothing to do while the run is still working. If it gets stuck again, lockreaper proposes the unlock again; approve from that alert.".to_owned()]),
            ),
            Outcome::UnlocksPaused { usable_until } => {
                let parameter = crate::config::UNLOCKS_PAUSED_PARAMETER;
                t(
                    ":double_vertical_bar:",
                    format!("Not unlocked, unlocks are paused: {path}"),
                    "Not unlocked (unlocks paused): ",
                    format!(
                        "Unlocks are paused on this stack ({parameter}=true); nothing was deleted. The approval of {} was not used up: it stays usable until {}.",
                        md_code(&lock_id),
                        fmt_time(*usable_until)
                    ),
                    format!("Unlock of {path} refused: unlocks are paused"),
                    text_steps(vec![format!(
                        "Once whoever paused unlocks has redeployed with {parameter}=false, approve again from the alert (before {}); until then nothing is deleted.",
                        fmt_time(*usable_until)
                    )]),
                )
            }
            Outcome::Snoozed { until } => t(
                ":zzz:",
                format!("Alerts snoozed until {}: {path}", fmt_time(*until)),
                "Snoozed: ",
                format!(
                    "{} snoozed alerts about this lock until {}; the lock is left alone.",
                    md_text(&approver_text(decision)),
                    fmt_time(*until)
                ),
                format!("Alerts for {path} snoozed until {}", fmt_time(*until)),
                text_steps(vec!["The approval in the original alert still works until it expires, if you change your mind.".to_owned()]),
            ),
            Outcome::TokenExpired { expired_at } => t(
                ":hourglass:",
                format!("Approval expired: {path}"),
                "Approval expired: ",
                format!(
                    "The approval expired at {}; nothing was done.",
                    fmt_time(*expired_at)
                ),
                format!("Approval for {path} expired"),
                text_steps(vec![new_alert]),
            ),
            Outcome::TokenRejected { problem } => t(
                ":warning:",
                "Approval rejected: the token does not verify".to_owned(),
                "Approval rejected (bad token)",
                format!("An approval was refused and nothing was done: {}.", trim_stop(&md_text(&clip(problem)))),
                "Approval rejected: bad token".to_owned(),
                text_steps(vec!["Approve with the button on the alert, or copy its token exactly. If nobody here sent this, check who may publish to the approvals topic.".to_owned()]),
            ),
            Outcome::UnknownProposal { proposal_id } => t(
                ":grey_question:",
                "Approval rejected: unknown proposal".to_owned(),
                "Approval rejected (unknown proposal)",
                format!(
                    "The token names proposal {}, which is not in the ledger (expired and cleaned up, or from another lockreaper deployment); nothing was done.",
                    md_code(&clip(proposal_id))
                ),
                "Approval rejected: unknown proposal".to_owned(),
                text_steps(vec![new_alert]),
            ),
            Outcome::WrongLock => t(
                ":warning:",
                format!("Approval rejected, token is for another lock: {path}"),
                "Approval rejected (wrong lock): ",
                "The token is not bound to the lock this proposal records; nothing was done.".to_owned(),
                format!("Approval for {path} rejected: wrong lock"),
                text_steps(vec!["Approve with the button on the alert about the lock you mean.".to_owned()]),
            ),
            Outcome::ApproverNotAllowed { problem } => t(
                ":no_entry:",
                format!("Approval rejected, approver not allowed: {path}"),
                "Approval rejected (approver not allowed): ",
                format!("Nothing was done: {}.", trim_stop(&md_text(&clip(problem)))),
                format!("Approval for {path} rejected: approver not allowed"),
                text_steps(vec!["Ask someone on the approver allow-list (APPROVER_ALLOW_LIST) to approve, naming themselves as \"approver\".".to_owned()]),
            ),
            Outcome::BadMessage { problem } => t(
                ":warning:",
                "Approval message rejected".to_owned(),
                "Approval message rejected",
                format!("A message on the approvals topic was refused and nothing was done: {}.", trim_stop(&md_text(&clip(problem)))),
                "Approval message rejected".to_owned(),
                text_steps(vec!["Publish the bare token, `approve <token> [reason]`, `deny <token> [reason]`, `snooze <token> <duration> [reason]`, or JSON {\"token\": …, \"approver\": …, \"reason\": …}.".to_owned()]),
            ),
        }
    }
}

/// What to review after `lock` was released, as its tool does it.
fn plan_advice(lock: &LockRecord) -> String {
    let workspace = lock
        .terraform_state()
        .and_then(|s| s.workspace(None).map(|ws| md_safe(&clip(ws))));
    lock.kind.after_release(workspace.as_deref())
}

/// How to get the previous state version back, with the exact command when the path parses.
fn rollback_advice(state_path: &str, version_id: &str) -> Step {
    let text = "If the interrupted run left the state damaged, the version before it is the rollback point: fetch it as below, review it, and restore it with `terraform state push previous.tfstate`.";
    // Accept `s3://bucket/key` as well as the lock path `bucket/key`.
    let path = state_path.strip_prefix("s3://").unwrap_or(state_path);
    match crate::path::StatePath::parse(path) {
        Ok(state) => Step::with_command(
            text,
            format!(
                "aws s3api get-object --bucket {} --key {} --version-id {} previous.tfstate",
                shell_word(&state.bucket),
                shell_word(&state.key),
                shell_word(version_id)
            ),
        ),
        Err(_) => Step::with_command(
            text,
            format!(
                "aws s3api get-object --version-id {} …",
                shell_word(version_id)
            ),
        ),
    }
}

fn text_steps(steps: Vec<String>) -> Vec<Step> {
    steps.into_iter().map(Step::text).collect()
}

fn plan_advice_generic() -> String {
    "Run `terraform plan` before the next apply.".to_owned()
}

fn state_lines(state: &StateFindings) -> Vec<String> {
    let mut lines = Vec::new();
    lines.push(match (&state.digest, &state.state_md5, state.digest_matches) {
        (Some(d), Some(_), Some(true)) => format!(
            "Digest: the state's MD5 matches the `-md5` digest item ({}).",
            clip(d)
        ),
        (Some(d), Some(m), _) => format!(
            "Digest MISMATCH: the `-md5` item says {}, the state object hashes to {}.",
            clip(d),
            clip(m)
        ),
        (Some(_), None, _) => {
            "Digest: there is a `-md5` digest item but no state object.".to_owned()
        }
        (None, Some(m), _) => format!(
            "Digest: no `-md5` digest item to compare (lock-file-only backend); the state's MD5 is {}.",
            clip(m)
        ),
        (None, None, _) => "Digest: neither a digest item nor a state object exists yet.".to_owned(),
    });
    lines.push(match state.versioning_enabled {
        Some(true) => "Bucket versioning: on.".to_owned(),
        Some(false) => "Bucket versioning: OFF, so there is no rollback point.".to_owned(),
        None => "Bucket versioning: unknown (could not be read).".to_owned(),
    });
    match &state.current_version {
        Some(v) => lines.push(format!("Current state version: {}", version_text(v))),
        None => lines.push("Current state version: none recorded.".to_owned()),
    }
    if let Some(v) = &state.previous_version {
        lines.push(format!(
            "Previous state version (rollback point): {}",
            version_text(v)
        ));
    }
    for e in state.errors.iter().take(ERRORS_MAX) {
        lines.push(format!("Not checked: {}", clip(e)));
    }
    lines
}

fn version_text(v: &StateVersionInfo) -> String {
    match v.last_modified {
        Some(t) => format!("{} (written {})", clip(&v.version_id), fmt_time(t)),
        None => clip(&v.version_id),
    }
}

fn artefact_outcomes(outcome: &Outcome) -> Option<&[ArtefactOutcome]> {
    match outcome {
        Outcome::Unlocked { artefacts, .. }
        | Outcome::LockChanged { artefacts, .. }
        | Outcome::Failed { artefacts, .. } => Some(artefacts),
        _ => None,
    }
}

fn artefact_word(o: ArtefactOutcome) -> &'static str {
    match o {
        ArtefactOutcome::Deleted => "deleted",
        ArtefactOutcome::Changed => "changed, left alone",
        ArtefactOutcome::AlreadyGone => "already gone",
        ArtefactOutcome::Skipped => "not touched",
        ArtefactOutcome::Failed => "delete failed",
    }
}

fn audit_id(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Unlocked { audit_id, .. }
        | Outcome::LockChanged { audit_id, .. }
        | Outcome::AlreadyReleased { audit_id } => Some(audit_id),
        Outcome::Failed { audit_id, .. } => audit_id.as_deref(),
        _ => None,
    }
}

fn outcome_errors(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Failed { errors, .. } | Outcome::Unlocked { errors, .. } => {
            let mut out: Vec<String> = errors.iter().take(ERRORS_MAX).map(|e| clip(e)).collect();
            if errors.len() > ERRORS_MAX {
                out.push(format!("… and {} more", errors.len() - ERRORS_MAX));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The offer a result closes: a decision on a token whose outcome is final (the proposal is used,
/// denied, snoozed, withdrawn or expired; an unlock failed). Refusals that leave the offer open for
/// someone else (approver not allowed, unlocks paused) and messages that never reached a proposal
/// close nothing.
fn closing(decision: &Decision<'_>, outcome: &Outcome) -> Option<Closing> {
    let outcome_words = match outcome {
        Outcome::Unlocked { .. } => "unlocked".to_owned(),
        Outcome::LockChanged { .. } => "the lock changed: not unlocked".to_owned(),
        Outcome::AlreadyReleased { .. } => "the lock was already released".to_owned(),
        Outcome::Failed { .. } => "the unlock failed: see the thread".to_owned(),
        Outcome::AlreadyUsed(_) => "the approval was already used".to_owned(),
        Outcome::Denied => "the unlock will not be offered again for this lock".to_owned(),
        Outcome::AlreadyDenied(_) => "the proposal was already denied".to_owned(),
        Outcome::Snoozed { until } => format!("no alerts until {}", fmt_time(*until)),
        Outcome::Withdrawn { .. } => {
            "withdrawn: the lock showed signs of life, not unlocked".to_owned()
        }
        Outcome::TokenExpired { .. } => "the approval had expired: not unlocked".to_owned(),
        Outcome::UnlocksPaused { .. }
        | Outcome::ApproverNotAllowed { .. }
        | Outcome::TokenRejected { .. }
        | Outcome::UnknownProposal { .. }
        | Outcome::WrongLock
        | Outcome::BadMessage { .. } => return None,
    };
    Some(Closing::Decided {
        token: decision.token?.to_owned(),
        action: ApprovalAction::parse(decision.action?)?,
        by: decider(decision),
        at: decision.at,
        outcome: outcome_words,
    })
}

/// Who decided: a verified Slack identity only when force-unlock verified it (an approver named
/// `slack:…` in a CLI message is just a name).
fn decider(decision: &Decision<'_>) -> Decider {
    let verified_slack = (decision.source == Some(ApprovalSource::SlackVerified))
        .then_some(decision.approver)
        .flatten()
        .and_then(|a| a.strip_prefix(crate::approval::SLACK_PREFIX))
        .and_then(|ids| ids.split_once('/'))
        .and_then(|(team, user)| SlackIdentity::new(team, user).ok());
    match (verified_slack, decision.approver, decision.source) {
        (Some(identity), _, _) => Decider::Slack(identity),
        (None, Some(name), _) => Decider::Named(name.to_owned()),
        (None, None, Some(ApprovalSource::ChatButton)) => Decider::ChatButton,
        (None, None, _) => Decider::Unnamed,
    }
}

fn approver_text(decision: &Decision<'_>) -> String {
    let via = decision.source.map(ApprovalSource::describe);
    match (decision.approver, via) {
        (Some(a), Some(via)) => format!("{} (via {via})", clip(a)),
        (Some(a), None) => clip(a),
        (None, Some(via)) => format!("an unnamed approver (via {via})"),
        (None, None) => "an unnamed sender".to_owned(),
    }
}

fn prior_text(prior: &PriorUse) -> String {
    let mut out = String::new();
    if let Some(at) = prior.at {
        let _ = write!(out, " at {}", fmt_time(at));
    }
    match (&prior.by, &prior.via) {
        (Some(by), _) => {
            let _ = write!(out, " by {}", clip(by));
        }
        (None, Some(via)) => {
            let _ = write!(out, " (via {})", clip(via));
        }
        (None, None) => {}
    }
    out
}

fn trim_stop(s: &str) -> &str {
    s.trim_end_matches('.')
}

#[cfg(test)]
mod rollback_tests {
    use super::rollback_advice;

    #[test]
    fn rollback_command_names_bucket_and_key() {
        for path in [
            "acme/env:/blue/net.tfstate",
            "s3://acme/env:/blue/net.tfstate",
        ] {
            let crate::messages::Step::Do { command, .. } = rollback_advice(path, "v123") else {
                panic!("the rollback advice is a step with a command");
            };
            let command = command.unwrap_or_default();
            assert!(
                command.contains("--bucket acme --key 'env:/blue/net.tfstate' --version-id v123")
                    || command
                        .contains("--bucket acme --key env:/blue/net.tfstate --version-id v123"),
                "{command}"
            );
        }
    }
}

#[cfg(test)]
#[path = "unlock_tests.rs"]
mod tests;
