//! The messages people read: one [`AlertMessage`] per alert, published to SNS with
//! `MessageStructure=json` so chat (Amazon Q Developer in chat applications, ex-AWS Chatbot) gets a
//! custom notification and email gets plain text.
//!
//! Every message about one lock location carries the same `metadata.threadId` ([`thread_id`]), so
//! warning → stale → approved → released read as one thread in chat. The chat buttons (Approve
//! unlock, Deny, Snooze 2h: `AWS::Chatbot::CustomAction`s with `Criteria HAS_VALUE` on
//! [`APPROVAL_TOKEN_KEY`] and `EQUALS` on [`APPROVAL_TOPIC_KEY`]) appear only on messages that
//! carry an approval token, i.e. only when the reaper made an [`ApprovalOffer`].

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::reasons::evidence_lines;
use super::text::{clip, md_safe, one_line, printable_ascii, shell_word, subject};
use super::{fmt_time, Approval, Closing, Fact, Message, RenderedMessage, Section, Step, Style};
use crate::config::format_duration;
use crate::model::{LockCreated, LockLocation, LockRecord};
use crate::parse::LockParseError;
use crate::policy::{AlertKind, AlertState, Level, Verdict};

pub use super::chatbot::{
    APPROVAL_TOKEN_KEY, APPROVAL_TOPIC_KEY, APPROVE_BUTTON, DENY_BUTTON, SNOOZE_BUTTON,
};
pub use super::SUBJECT_MAX;

/// `metadata.eventType` values.
pub const EVENT_LOCK_HELD: &str = "LockHeld";
pub const EVENT_LOCK_WARNING: &str = "LockWarning";
pub const EVENT_LOCK_STALE: &str = "LockStale";
pub const EVENT_LOCK_AUTO_EXPIRE: &str = "LockAutoExpire";
pub const EVENT_LOCK_RESOLVED: &str = "LockResolved";
pub const EVENT_LOCK_UNPARSEABLE: &str = "LockUnparseable";

/// A signed approval the reaper offers with a `ProposeUnlock` alert (made by the force-unlock side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalOffer {
    /// Compact, no spaces (chat variables must match `[\x21-\x7F]+`).
    pub token: String,
    /// The topic the approval Lambda listens on; publishing the token there approves the unlock.
    pub approval_topic_arn: String,
    pub expires_at: DateTime<Utc>,
}

impl ApprovalOffer {
    /// The offer as a message carries it, with the command that approves it by hand.
    fn approval(&self) -> Approval {
        Approval {
            token: self.token.clone(),
            topic_arn: self.approval_topic_arn.clone(),
            expires_at: self.expires_at,
            command: format!(
                "aws sns publish --topic-arn {} --message {}",
                shell_word(&self.approval_topic_arn),
                shell_word(&self.token)
            ),
        }
    }
}

/// Who is speaking: which lockreaper deployment sent the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertContext {
    /// A short label people recognise: stack name, or `account/region`.
    pub deployment: String,
    /// The AWS partition for ARNs in `relatedResources` (`aws`, `aws-cn`, `aws-us-gov`).
    pub partition: String,
}

impl AlertContext {
    /// A context in the standard `aws` partition.
    pub fn new(deployment: impl Into<String>) -> Self {
        AlertContext {
            deployment: deployment.into(),
            partition: "aws".to_owned(),
        }
    }
}

/// One alert, in every form it is delivered in (subject, chat notification, e-mail text).
pub type AlertMessage = RenderedMessage;

/// The chat `threadId` for a lock location: the first 32 hex digits of the SHA-256 of its display
/// form (`dynamodb://tf-locks (LockID = "…")`, `s3://bucket/key.tflock`). Stable across lock IDs,
/// levels and deployments, so every message about one location threads together.
pub fn thread_id(location: &LockLocation) -> String {
    thread_id_of(&location.to_string())
}

fn thread_id_of(display: &str) -> String {
    let digest = Sha256::digest(display.as_bytes());
    hex::encode(&digest[..16])
}

/// The `metadata.eventType` for a lock alert at `level`.
pub fn event_type(level: Level) -> &'static str {
    match level {
        Level::Fresh => EVENT_LOCK_HELD,
        Level::Warn => EVENT_LOCK_WARNING,
        Level::ProposeUnlock => EVENT_LOCK_STALE,
        Level::AutoExpire => EVENT_LOCK_AUTO_EXPIRE,
    }
}

/// The alert about one held lock, at the verdict's level.
pub fn lock_alert(
    lock: &LockRecord,
    verdict: &Verdict,
    kind: AlertKind,
    approval: Option<&ApprovalOffer>,
    context: &AlertContext,
) -> AlertMessage {
    let path = one_line(&lock.state_path);
    let held = held_text(lock, verdict.age);
    let workspace = lock
        .terraform_state()
        .and_then(|s| s.workspace(None).map(str::to_owned));
    let reminder = kind == AlertKind::Reminder;
    let event = event_type(verdict.level);
    let thread = thread_id(&lock.location);

    let (emoji, headline) = match verdict.level {
        Level::Fresh => (":information_source:", format!("Lock {path} held {held}")),
        Level::Warn => (":warning:", format!("Lock held {held}: {path}")),
        Level::ProposeUnlock => (":lock:", format!("Stale lock {path} held {held}")),
        Level::AutoExpire => (
            ":unlock:",
            format!("Expiring stale lock {path} held {held}"),
        ),
    };
    let reminder_note = if reminder { " (reminder)" } else { "" };
    let subject_lead = match verdict.level {
        Level::Fresh | Level::Warn => format!("Lock held {held}: "),
        Level::ProposeUnlock => format!("Stale lock held {held}: "),
        Level::AutoExpire => format!("Expiring stale lock held {held}: "),
    };
    let subject_lead = if reminder {
        format!("Reminder: {subject_lead}")
    } else {
        subject_lead
    };
    let subject = subject(&context.deployment, &subject_lead, &lock.state_path);

    let status = match verdict.level {
        Level::Fresh => "This lock is held, under the warning threshold.".to_owned(),
        Level::Warn if verdict.alive => {
            "This lock is old, but the state was written after it was taken: the holder is probably still at work.".to_owned()
        }
        Level::Warn => "This lock has been held longer than expected.".to_owned(),
        Level::ProposeUnlock => {
            "This lock looks stuck and is proposed for unlock. A person must decide.".to_owned()
        }
        Level::AutoExpire => "This lock looks stuck and auto-expiry is on for its path: lockreaper is releasing it. The outcome follows in this thread.".to_owned(),
    };

    let mut facts = vec![Fact::new("State", path.clone(), Style::Code)];
    if let Some(ws) = &workspace {
        facts.push(Fact::new("Workspace", clip(ws), Style::Code));
    }
    facts.push(Fact::new(
        "Where",
        one_line(&lock.location.to_string()),
        Style::Code,
    ));
    facts.push(Fact::new("Lock ID", clip(&lock.lock_id), Style::Code));
    facts.push(match lock.who.as_deref() {
        Some(who) => Fact::new("Held by", clip(who), Style::Code),
        None => Fact::new("Held by", "unknown", Style::Verbatim),
    });
    if let Some(op) = &lock.operation {
        facts.push(Fact::new("Operation", clip(op), Style::Verbatim));
    }
    facts.push(Fact::new(
        "Tool",
        match &lock.tool_version {
            Some(v) => format!("{} {}", lock.kind.tool(), clip(v)),
            None => lock.kind.tool().to_owned(),
        },
        Style::Verbatim,
    ));
    facts.push(Fact::new(
        "Taken",
        taken_text(lock, verdict.age),
        Style::Verbatim,
    ));
    if let Some(info) = lock.info.as_deref().filter(|i| !i.trim().is_empty()) {
        facts.push(Fact::new("Info", clip(info), Style::Verbatim));
    }
    facts.push(Fact::new(
        "Deployment",
        clip(&context.deployment),
        Style::Verbatim,
    ));

    let sections = vec![
        Section {
            title: "Liveness",
            style: Style::Verbatim,
            items: evidence_lines(lock, verdict),
        },
        Section {
            title: "Why",
            style: Style::Markdown,
            items: verdict.reasons.iter().map(|r| sentence(r)).collect(),
        },
    ];
    let mut machine = serde_json::Map::new();
    machine.insert("lockId".to_owned(), json!(lock.lock_id));
    machine.insert("statePath".to_owned(), json!(lock.state_path));
    machine.insert("lockKind".to_owned(), json!(lock.kind.as_str()));
    machine.insert("level".to_owned(), json!(verdict.level.as_str()));
    let mut keywords = vec![
        "lockreaper".to_owned(),
        lock.kind.as_str().to_owned(),
        verdict.level.as_str().to_owned(),
    ];
    if let Some(ws) = &workspace {
        keywords.push(ws.clone());
    }
    let summary = format!(
        "{} {} lock on {path} ({held})",
        level_word(verdict.level),
        lock.kind.tool(),
    );

    RenderedMessage::of(&Message {
        subject,
        emoji,
        title: format!("{headline}{reminder_note}"),
        plain_title: None,
        status,
        facts,
        fact_column: None,
        sections,
        steps: next_steps(lock, verdict, approval, workspace.as_deref()),
        steps_numbered: true,
        sender: sender(context),
        version: super::VERSION,
        id: format!(
            "{thread}-{}-{}",
            verdict.level.as_str(),
            verdict.age.map_or(0, |a| a.as_secs())
        ),
        thread: Some(thread),
        summary,
        event_type: event,
        keywords,
        related: related_resources(lock, &context.partition),
        context: machine,
        approval: approval.map(ApprovalOffer::approval),
        actions_enabled: true,
        closes: None,
    })
}

/// "Lock released": the lock that was alerted on is gone (released by its holder or unlocked).
/// Same thread as the lock's alerts.
pub fn resolved_alert(
    previous: &AlertState,
    location: &LockLocation,
    state_path: &str,
    context: &AlertContext,
) -> AlertMessage {
    let path = one_line(state_path);
    let where_ = one_line(&location.to_string());
    let thread = thread_id(location);
    let status =
        "The lock lockreaper alerted on is gone: its holder released it or someone unlocked it.";
    let facts = vec![
        Fact::new("State", path.clone(), Style::Code),
        Fact::new("Where", where_, Style::Code),
        Fact::new("Lock ID", clip(&previous.lock_id), Style::Code),
        Fact::new(
            "First alert",
            format!(
                "{} (last: {}, level {})",
                fmt_time(previous.first_alerted),
                fmt_time(previous.last_sent),
                previous.level
            ),
            Style::Verbatim,
        ),
        Fact::new("Deployment", clip(&context.deployment), Style::Verbatim),
    ];
    let advice = "If it was force-unlocked rather than released, review a plan before the next change (`terraform plan`, or `gyro up` for Gyro) to see what the interrupted run left behind.";

    let mut machine = serde_json::Map::new();
    machine.insert("lockId".to_owned(), json!(previous.lock_id));
    machine.insert("statePath".to_owned(), json!(state_path));
    RenderedMessage::of(&Message {
        subject: subject(&context.deployment, "Lock released: ", state_path),
        emoji: ":white_check_mark:",
        title: format!("Lock released: {path}"),
        plain_title: None,
        status: status.to_owned(),
        facts,
        fact_column: None,
        sections: Vec::new(),
        steps: vec![Step::text(advice)],
        steps_numbered: false,
        sender: sender(context),
        version: super::VERSION,
        id: format!("{thread}-resolved-{}", previous.last_sent.timestamp()),
        thread: Some(thread),
        summary: format!("Lock released on {path}"),
        event_type: EVENT_LOCK_RESOLVED,
        keywords: vec!["lockreaper".to_owned(), "resolved".to_owned()],
        related: Vec::new(),
        context: machine,
        approval: None,
        actions_enabled: false,
        // An offer still open in the thread has nothing left to decide.
        closes: (!previous.open_proposals.is_empty()).then_some(Closing::Released),
    })
}

/// "Unparseable lock — inspect by hand": something in a lock store that lockreaper cannot read.
/// Never carries an approval: lockreaper never releases a lock it cannot read.
pub fn unparseable_alert(error: &LockParseError, context: &AlertContext) -> AlertMessage {
    let where_ = one_line(&error.location);
    // `error.location` is the lock location's display form, so this threads with the lock's alerts.
    let thread = thread_id_of(&error.location);
    let problem = clip(&error.failure.to_string());
    let status = "lockreaper found an entry in a lock store that it cannot read as a lock. It never expires or proposes unlocking what it cannot read, so a person must look.";
    let steps = [
        "Inspect the entry by hand, with `aws dynamodb get-item` for a table item or `aws s3 cp` for a lock file.",
        "If it is a lock nobody holds any more, release it with the tool that took it, or delete it by hand once you are sure.",
        "If it is a format lockreaper should understand, report it together with the raw entry.",
    ];
    let mut machine = serde_json::Map::new();
    machine.insert("location".to_owned(), json!(error.location));
    machine.insert("problem".to_owned(), json!(error.failure.to_string()));
    RenderedMessage::of(&Message {
        subject: subject(
            &context.deployment,
            "Unparseable lock - inspect by hand: ",
            &error.location,
        ),
        emoji: ":grey_question:",
        title: format!("Unparseable lock — inspect by hand: {where_}"),
        plain_title: Some("Unparseable lock - inspect by hand".to_owned()),
        status: status.to_owned(),
        facts: vec![
            Fact::new("Where", where_.clone(), Style::Code),
            Fact::new("Problem", problem, Style::Markdown),
            Fact::new("Deployment", clip(&context.deployment), Style::Verbatim),
        ],
        // This alert's e-mail has always aligned its values at column 13.
        fact_column: Some(13),
        sections: Vec::new(),
        steps: steps.into_iter().map(Step::text).collect(),
        steps_numbered: true,
        sender: sender(context),
        version: super::VERSION,
        id: format!("{thread}-unparseable"),
        thread: Some(thread),
        summary: format!("Unparseable lock at {where_}"),
        event_type: EVENT_LOCK_UNPARSEABLE,
        keywords: vec!["lockreaper".to_owned(), "unparseable".to_owned()],
        related: Vec::new(),
        context: machine,
        approval: None,
        actions_enabled: false,
        closes: None,
    })
}

fn next_steps(
    lock: &LockRecord,
    verdict: &Verdict,
    approval: Option<&ApprovalOffer>,
    workspace: Option<&str>,
) -> Vec<Step> {
    let who = lock.who.as_deref().map_or("the holder".to_owned(), |w| {
        format!("`{}`", md_safe(&clip(w)))
    });
    let op = lock.operation.as_deref().map_or(String::new(), |o| {
        format!(" running `{}`", md_safe(&clip(o)))
    });
    let unlock = lock.manual_unlock_command();
    let mut steps = Vec::new();
    if verdict.level == Level::AutoExpire {
        steps.push(Step::text(
            "Nothing to do unless the holder is in fact alive: lockreaper releases this lock with a conditional delete and records it in the audit trail.",
        ));
    } else {
        steps.push(Step::text(format!(
            "Check whether {who}{op} is still at work (CI job, terminal, a prompt waiting for confirmation). Never unlock a lock someone still holds."
        )));
        if verdict.level == Level::Warn && approval.is_none() {
            steps.push(Step::text(format!(
                "If it is still running, there is nothing to do. If it is stuck, lockreaper proposes an unlock once it is held {}.",
                format_duration(verdict.thresholds.expire_after)
            )));
        }
    }
    match approval {
        Some(_) => steps.push(Step::Approve),
        None if verdict.level == Level::ProposeUnlock => steps.push(Step::text(
            "No approval is attached to this message; release the lock by hand as below if you are sure.",
        )),
        None => {}
    }
    let dir = lock.kind.where_to_release(workspace);
    let by_hand = if verdict.level == Level::AutoExpire {
        format!("If the automatic release fails, release it by hand {dir}")
    } else {
        format!("Outside chat, release it by hand {dir}")
    };
    steps.push(Step::with_command(format!("{by_hand}:"), unlock));
    steps.push(Step::text(lock.kind.after_unlocking()));
    steps
}

fn related_resources(lock: &LockRecord, partition: &str) -> Vec<String> {
    let mut related = Vec::new();
    if let LockLocation::S3 { bucket, key } = &lock.location {
        related.push(format!("arn:{partition}:s3:::{bucket}/{key}"));
    }
    if let Some(state) = lock.terraform_state() {
        related.push(format!(
            "arn:{partition}:s3:::{}/{}",
            state.bucket, state.key
        ));
    }
    related
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::Fresh => "Held",
        Level::Warn => "Long-held",
        Level::ProposeUnlock => "Stale",
        Level::AutoExpire => "Expiring stale",
    }
}

/// `5h12m`, `at least 5h12m` (first-seen time), or `for an unknown time`.
fn held_text(lock: &LockRecord, age: Option<std::time::Duration>) -> String {
    match (lock.created, age) {
        (LockCreated::FirstSeen(_), Some(a)) => format!("at least {}", format_duration(a)),
        (_, Some(a)) => format_duration(a),
        (_, None) => "for an unknown time".to_owned(),
    }
}

fn taken_text(lock: &LockRecord, age: Option<std::time::Duration>) -> String {
    let ago = age.map_or(String::new(), |a| format!(", {} ago", format_duration(a)));
    match lock.created {
        LockCreated::Recorded(t) => format!("{}{ago}", fmt_time(t)),
        LockCreated::FirstSeen(t) => format!(
            "before {} (first seen by lockreaper{ago}; the lock records no time)",
            fmt_time(t)
        ),
        LockCreated::Unknown => "unknown (the lock records no time)".to_owned(),
    }
}

/// The signature: `lockreaper (<deployment>)`.
fn sender(context: &AlertContext) -> String {
    format!(
        "lockreaper ({})",
        printable_ascii(&clip(&context.deployment))
    )
}

/// Capitalises the first letter and ends with a full stop.
fn sentence(s: &str) -> String {
    let mut chars = s.trim().chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
