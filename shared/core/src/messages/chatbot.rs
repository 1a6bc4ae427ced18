//! The chat renderer: a [`Message`] as an Amazon Q Developer in chat applications (ex-AWS Chatbot)
//! custom notification. Schema: `version`, `source` and `content.description` are required;
//! `content.textType: client-markdown` lets Slack and Teams render code spans and bold text;
//! `metadata.threadId` groups messages; `metadata.additionalContext` carries the values the custom
//! actions (the buttons in `template.yaml`) read; `metadata.enableCustomActions` lets them show.
//! The description ends with the sending version in italics (`_lockreaper 0.1.0_`): the schema has
//! no footer field, and `source` must stay `custom`.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::text::{md_code, md_text};
use super::{fmt_time, Message, Step, Style};

/// Where the approval token sits in the chat notification: `metadata.additionalContext.approvalToken`
/// (the custom actions' variable `token` = `event.metadata.additionalContext.approvalToken`, with a
/// `HAS_VALUE` criterion; see `template.yaml`).
pub const APPROVAL_TOKEN_KEY: &str = "approvalToken";
/// Where the approvals topic's ARN sits beside the token: the custom actions' variable `topic`, with
/// an `EQUALS` criterion on the stack's own topic. Carried in the notification so the buttons'
/// commands stay under Chatbot's 100-character `CommandText` limit whatever the topic ARN's length.
pub const APPROVAL_TOPIC_KEY: &str = "approvalTopic";
/// The chat button text people are told to press; the custom action's `ButtonText` must match.
pub const APPROVE_BUTTON: &str = "Approve unlock";
/// The chat button that denies the proposal (publishes `deny <token>`).
pub const DENY_BUTTON: &str = "Deny";
/// The chat button that snoozes the proposal's alerts for two hours (publishes `snooze <token> 2h`).
pub const SNOOZE_BUTTON: &str = "Snooze 2h";

/// The custom notification for `message`.
pub fn render(message: &Message) -> Value {
    let mut description = format!("{}\n", message.status);
    for fact in &message.facts {
        let _ = writeln!(
            description,
            "• {}: {}",
            fact.label,
            styled(&fact.value, fact.style)
        );
    }
    for section in message.sections.iter().filter(|s| !s.items.is_empty()) {
        let _ = write!(description, "\n{}:\n", section.title);
        for item in &section.items {
            let _ = writeln!(description, "• {}", styled(item, section.style));
        }
    }
    let next_steps: Vec<String> = message
        .steps
        .iter()
        .filter_map(|s| step(message, s))
        .collect();

    let mut additional = message.context.clone();
    if let Some(approval) = &message.approval {
        additional.insert(APPROVAL_TOKEN_KEY.to_owned(), json!(approval.token));
        additional.insert(APPROVAL_TOPIC_KEY.to_owned(), json!(approval.topic_arn));
    }
    let mut metadata = serde_json::Map::new();
    if let Some(thread) = &message.thread {
        metadata.insert("threadId".to_owned(), json!(thread));
    }
    metadata.insert("summary".to_owned(), json!(message.summary));
    metadata.insert("eventType".to_owned(), json!(message.event_type));
    metadata.insert("relatedResources".to_owned(), json!(message.related));
    metadata.insert("additionalContext".to_owned(), Value::Object(additional));
    metadata.insert(
        "enableCustomActions".to_owned(),
        json!(message.actions_enabled),
    );
    json!({
        "version": "1.0",
        "source": "custom",
        "id": message.id,
        "content": {
            "textType": "client-markdown",
            "title": format!("{} {}", message.emoji, message.title),
            "description": format!("{}\n\n_{}_", description.trim_end(), message.footer()),
            "nextSteps": next_steps,
            "keywords": message.keywords,
        },
        "metadata": metadata,
    })
}

/// A value in chat Markdown by its style (shared with the Slack renderer, whose mrkdwn has the
/// same code spans).
pub(super) fn styled(value: &str, style: Style) -> String {
    match style {
        Style::Code => md_code(value),
        Style::Quoted => md_text(value),
        Style::Verbatim | Style::Markdown => value.to_owned(),
    }
}

/// A step's chat form; the approval step only when an approval is attached.
fn step(message: &Message, step: &Step) -> Option<String> {
    match (step, &message.approval) {
        (Step::Do { text, command: None }, _) => Some(text.clone()),
        (
            Step::Do {
                text,
                command: Some(command),
            },
            _,
        ) => Some(format!("{text} {}", md_code(command))),
        (Step::Approve, Some(approval)) => Some(format!(
            "If nobody holds it, press *{APPROVE_BUTTON}* below, or run `{}`; *{DENY_BUTTON}* drops the proposal, *{SNOOZE_BUTTON}* silences it for two hours. The approval expires at {}.",
            approval.command,
            fmt_time(approval.expires_at)
        )),
        (Step::Approve, None) => None,
    }
}
