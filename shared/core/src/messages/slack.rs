//! The Slack app renderer: a [`Message`] as Block Kit, the `text` and `blocks` of a
//! `chat.postMessage` / `chat.update` call, with **Approve / Deny / Snooze 2h** buttons whose
//! `value` is the approval token; and, once someone pressed one, the same blocks with the buttons
//! replaced by who decided what ("Approved by <@U…> at 14:02 UTC — unlocked"), so nobody presses
//! twice.
//!
//! Block Kit's documented limits, which every rendering keeps (checked by the tests):
//! - at most [`MAX_BLOCKS`] (50) blocks in a message (docs.slack.dev/reference/block-kit/blocks:
//!   "You can include up to 50 blocks in each message");
//! - a section's `text` at most [`SECTION_TEXT_MAX`] (3000) characters (section block reference:
//!   "Maximum length for the text in this field is 3000 characters");
//! - a button's `text` at most [`BUTTON_TEXT_MAX`] (75) characters and its `value` at most
//!   [`BUTTON_VALUE_MAX`] (2000) (button element reference);
//! - at most [`ACTIONS_MAX`] (25) elements in an actions block (actions block reference: "There is
//!   a maximum of 25 elements in each action block").
//!
//! Text is Slack `mrkdwn`: `*bold*` and `` `code` `` as in the chat Markdown the builders write,
//! and `&`, `<`, `>` escaped as `&amp;`, `&lt;`, `&gt;` (Slack's "Escaping text" rules), so no
//! lock field or approver can become a mention, a link or a `<!channel>` ping. The only mention
//! in any rendering is the verified approver's `<@U…>`, written here.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::chatbot::{styled, APPROVE_BUTTON, DENY_BUTTON, SNOOZE_BUTTON};
use super::text::{clip, md_text};
use super::{fmt_time, Closing, Decider, Message, Step};
use crate::approval::{ApprovalAction, SlackIdentity};

/// Most blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Most characters in a section's text.
pub const SECTION_TEXT_MAX: usize = 3000;
/// Most characters in a button's text.
pub const BUTTON_TEXT_MAX: usize = 75;
/// Most characters in a button's value.
pub const BUTTON_VALUE_MAX: usize = 2000;
/// Most elements in an actions block.
pub const ACTIONS_MAX: usize = 25;

/// The `block_id` of the actions block holding the approval buttons; the block the result
/// replaces.
pub const ACTIONS_BLOCK_ID: &str = "lockreaper-approval";
/// `action_id` of the button that approves the unlock.
pub const APPROVE_ACTION_ID: &str = "lockreaper-approve";
/// `action_id` of the button that denies the proposal.
pub const DENY_ACTION_ID: &str = "lockreaper-deny";
/// `action_id` of the button that snoozes the proposal for [`SNOOZE_FOR`].
pub const SNOOZE_ACTION_ID: &str = "lockreaper-snooze-2h";
/// How long the Snooze button snoozes.
pub const SNOOZE_FOR: &str = "2h";

/// What a button press asks for: the action and, for a snooze, its duration. `None` for an
/// `action_id` that is not one of ours.
pub fn button_action(action_id: &str) -> Option<(ApprovalAction, Option<&'static str>)> {
    match action_id {
        APPROVE_ACTION_ID => Some((ApprovalAction::Approve, None)),
        DENY_ACTION_ID => Some((ApprovalAction::Deny, None)),
        SNOOZE_ACTION_ID => Some((ApprovalAction::Snooze, Some(SNOOZE_FOR))),
        _ => None,
    }
}

/// `{"text", "blocks"}` for `message`: `text` is the notification fallback (the summary), the
/// blocks say what (title, status), the facts (who holds it, age, evidence), the sections, what to
/// do, the approval buttons when the message offers an approval and allows actions, and who sent
/// it.
pub fn render(message: &Message) -> Value {
    let mut body: Vec<Value> = Vec::new();
    body.push(section(&format!("{} *{}*", message.emoji, message.title)));
    body.push(section(&message.status));
    if !message.facts.is_empty() {
        let mut facts = String::new();
        for fact in &message.facts {
            let _ = writeln!(
                facts,
                "*{}:* {}",
                fact.label,
                styled(&fact.value, fact.style)
            );
        }
        body.push(section(&facts));
    }
    for part in message.sections.iter().filter(|s| !s.items.is_empty()) {
        let mut text = format!("*{}*\n", part.title);
        for item in &part.items {
            let _ = writeln!(text, "• {}", styled(item, part.style));
        }
        body.push(section(&text));
    }

    let mut tail: Vec<Value> = Vec::new();
    let steps: Vec<String> = message
        .steps
        .iter()
        .filter_map(|s| step(message, s))
        .collect();
    if !steps.is_empty() {
        let mut text = "*What to do*\n".to_owned();
        for (n, s) in steps.iter().enumerate() {
            if message.steps_numbered {
                let _ = writeln!(text, "{}. {s}", n + 1);
            } else {
                let _ = writeln!(text, "• {s}");
            }
        }
        tail.push(section(&text));
    }
    if let Some(buttons) = buttons(message) {
        tail.push(buttons);
    }
    tail.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": escape(&format!("Sent by {} · {}", message.sender, message.footer()))}],
    }));

    // Keep the buttons and the footer whatever the number of sections.
    body.truncate(MAX_BLOCKS - tail.len());
    body.extend(tail);
    json!({
        "text": escape(&message.summary),
        "blocks": body,
    })
}

/// The Slack member of the programs' form ([`super::RenderedMessage::program_form`]): what the
/// Slack notifier posts and how it threads and edits it.
///
/// - `text`, `blocks`: [`render`];
/// - `thread`: the lock's thread key ([`Message::thread`]), absent for a message on its own;
/// - `approvalToken`, `approvalExpiresAt`: the token the message's buttons carry, when it shows
///   them, and its expiry (the notifier remembers where it posted this offer, keyed by a digest
///   of the token, until a while after the expiry);
/// - `closes`: `{"token", "line"}` when the message closes an offer ([`Message::closes`]): the
///   offer's token (absent: whatever offer is open in the thread) and the line that replaces its
///   buttons ([`closing_line`]).
pub fn member(message: &Message) -> Value {
    let mut member = render(message);
    if let Some(thread) = &message.thread {
        member["thread"] = json!(thread);
    }
    if let Some(approval) = message
        .approval
        .as_ref()
        .filter(|a| message.actions_enabled && a.token.chars().count() <= BUTTON_VALUE_MAX)
    {
        member["approvalToken"] = json!(approval.token);
        member["approvalExpiresAt"] = json!(approval
            .expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    if let Some(closing) = &message.closes {
        let mut closes = json!({"line": closing_line(closing)});
        if let Closing::Decided { token, .. } = closing {
            closes["token"] = json!(token);
        }
        member["closes"] = closes;
    }
    member
}

/// The key the Slack notifier remembers an offer by: the first 32 hex digits of the SHA-256 of
/// its token. Never the token itself, so reading the ledger does not give anyone an approval
/// (the token is a bearer credential until it is used or expires).
pub fn offer_key(token: &str) -> String {
    use sha2::{Digest as _, Sha256};
    hex::encode(&Sha256::digest(token.as_bytes())[..16])
}

/// What stands where an offer's token was in [`withhold_token`]'s blocks.
pub const TOKEN_WITHHELD: &str = "(approval closed)";

/// `blocks` with every occurrence of `token` (the buttons' values, the approve command in the
/// steps) replaced by [`TOKEN_WITHHELD`]: what the notifier keeps of an offer, so that its ledger
/// never holds a usable approval; the buttons are replaced by the result before anyone sees these
/// blocks again.
pub fn withhold_token(blocks: &[Value], token: &str) -> Vec<Value> {
    fn walk(value: &Value, token: &str) -> Value {
        match value {
            Value::String(s) => Value::String(s.replace(token, TOKEN_WITHHELD)),
            Value::Array(items) => Value::Array(items.iter().map(|v| walk(v, token)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), walk(v, token)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if token.is_empty() {
        return blocks.to_vec();
    }
    blocks.iter().map(|b| walk(b, token)).collect()
}

/// The line that replaces an offer's buttons when `closing` closes it: [`decided_line`] for a
/// decision, and for a lock released on its own "Lock released before anyone decided — nothing
/// to unlock".
pub fn closing_line(closing: &Closing) -> String {
    match closing {
        Closing::Decided {
            action,
            by,
            at,
            outcome,
            ..
        } => decided_line(*action, by.clone(), *at, outcome),
        Closing::Released => "Lock released before anyone decided — nothing to unlock".to_owned(),
    }
}

/// The line that replaces the buttons once `by` decided at `at`:
/// `Approved by <@U0456EFGH> at 14:02 UTC — unlocked`. `outcome` is force-unlock's short result
/// (`unlocked`, `lock changed: not unlocked`, …), escaped.
///
/// Only a verified Slack identity ([`Decider::Slack`]) becomes a mention; a name from a CLI or
/// JSON approval is the publisher's own word and is shown as escaped text (`Approved by
/// ana@example.com at …`), a Chatbot button carries no identity (`Approved via a chat button
/// at …`).
pub fn decided_line(
    action: ApprovalAction,
    by: impl Into<Decider>,
    at: DateTime<Utc>,
    outcome: &str,
) -> String {
    let verb = match action {
        ApprovalAction::Approve => "Approved",
        ApprovalAction::Deny => "Denied",
        ApprovalAction::Snooze => "Snoozed for two hours",
    };
    let who = match by.into() {
        // The user ID is A-Z/0-9 only (`SlackIdentity::new`), so the mention cannot be bent.
        Decider::Slack(identity) => format!("by <@{}>", identity.user_id),
        Decider::Named(name) => format!("by {}", escape(&md_text(&clip(&name)))),
        Decider::ChatButton => "via a chat button".to_owned(),
        Decider::Unnamed => "by an unnamed approver".to_owned(),
    };
    format!(
        "{verb} {who} at {} — {}",
        at.format("%H:%M UTC"),
        escape(outcome.trim())
    )
}

/// The line that replaces the buttons the moment `by` pressed one at `at`, before force-unlock's
/// result is known: `Approve unlock pressed by <@U0456EFGH> at 14:02 UTC — lockreaper is checking
/// it; the result follows in this thread`. Nobody presses twice, and nobody reads it as done.
pub fn pressed_line(action: ApprovalAction, by: &SlackIdentity, at: DateTime<Utc>) -> String {
    let button = match action {
        ApprovalAction::Approve => APPROVE_BUTTON,
        ApprovalAction::Deny => DENY_BUTTON,
        ApprovalAction::Snooze => SNOOZE_BUTTON,
    };
    format!(
        "*{button}* pressed by <@{}> at {} — lockreaper is checking it; the result follows in this thread",
        by.user_id,
        at.format("%H:%M UTC")
    )
}

/// `blocks` (a message's blocks as Slack returns them in an interaction payload) with the approval
/// buttons replaced by a section saying `line` ([`decided_line`]); every other block kept as it
/// is. When there is no approval block (already decided), the line is appended in its place, so a
/// second result still reads in order.
pub fn replace_buttons(blocks: &[Value], line: &str) -> Vec<Value> {
    let decided = json!({
        "type": "section",
        "block_id": ACTIONS_BLOCK_ID.to_owned() + "-decided",
        "text": {"type": "mrkdwn", "text": cap(line)},
    });
    let mut out: Vec<Value> = Vec::with_capacity(blocks.len() + 1);
    let mut replaced = false;
    for block in blocks {
        if block["block_id"] == ACTIONS_BLOCK_ID {
            out.push(decided.clone());
            replaced = true;
        } else {
            out.push(block.clone());
        }
    }
    if !replaced {
        // Before the footer (the last block), as the buttons were.
        let at = out.len().saturating_sub(1);
        out.insert(at, decided);
        out.truncate(MAX_BLOCKS);
    }
    out
}

fn buttons(message: &Message) -> Option<Value> {
    let approval = message
        .approval
        .as_ref()
        .filter(|_| message.actions_enabled)?;
    // Tokens are 58 characters; one that could not be a button value is offered by command only.
    if approval.token.chars().count() > BUTTON_VALUE_MAX {
        return None;
    }
    let button = |text: &str, action_id: &str, style: Option<&str>| {
        let mut b = json!({
            "type": "button",
            "text": {"type": "plain_text", "text": text, "emoji": true},
            "action_id": action_id,
            "value": approval.token,
        });
        if let Some(style) = style {
            b["style"] = json!(style);
        }
        b
    };
    Some(json!({
        "type": "actions",
        "block_id": ACTIONS_BLOCK_ID,
        "elements": [
            button(APPROVE_BUTTON, APPROVE_ACTION_ID, Some("primary")),
            button(DENY_BUTTON, DENY_ACTION_ID, Some("danger")),
            button(SNOOZE_BUTTON, SNOOZE_ACTION_ID, None),
        ],
    }))
}

/// A step's Slack form; the approval step only when an approval is attached.
fn step(message: &Message, step: &Step) -> Option<String> {
    match (step, &message.approval) {
        (Step::Do { text, command: None }, _) => Some(text.clone()),
        (
            Step::Do {
                text,
                command: Some(command),
            },
            _,
        ) => Some(format!("{text} {}", styled(command, super::Style::Code))),
        (Step::Approve, Some(approval)) => Some(format!(
            "If nobody holds it, press *{APPROVE_BUTTON}* below, or run {}; *{DENY_BUTTON}* drops the proposal, *{SNOOZE_BUTTON}* silences it for two hours. The approval expires at {}.",
            styled(&approval.command, super::Style::Code),
            fmt_time(approval.expires_at)
        )),
        (Step::Approve, None) => None,
    }
}

/// A mrkdwn section of `text`, escaped and capped.
fn section(text: &str) -> Value {
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": cap(&escape(text.trim_end()))},
    })
}

/// Slack's three control characters in mrkdwn.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most [`SECTION_TEXT_MAX`] characters, `…` when cut.
fn cap(text: &str) -> String {
    if text.chars().count() <= SECTION_TEXT_MAX {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(SECTION_TEXT_MAX - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
#[path = "slack_tests.rs"]
mod tests;
