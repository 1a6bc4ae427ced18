//! Everything people read, in one place: **what** is said is a channel-neutral [`Message`]; **how**
//! it looks is a renderer per channel.
//!
//! - Builders (what is said): [`alert`] (the reaper's alerts: a held lock, a released lock, an
//!   unparseable entry) and [`unlock`] (force-unlock's result after an approval, denial or snooze).
//!   They decide the title, facts, sections, steps, thread and machine-readable context, and never
//!   format for a channel.
//! - Words for the decision's values: [`reasons`] (a verdict's reasons, liveness evidence and
//!   evidence gaps, withdrawals), used by every builder and by the CLI.
//! - Renderers (how it looks): [`chatbot`] (the Amazon Q Developer in chat applications, ex-AWS
//!   Chatbot, custom notification JSON), [`email`] (plain text wrapped near 72 columns) and [`sns`]
//!   (the `MessageStructure=json` envelope that carries both to every subscription), and [`slack`]
//!   (Block Kit for the Slack app mode, with approval buttons whose presses are verified).
//!
//! A new channel is one new renderer of [`Message`]; no builder changes.
//! Time appears everywhere as [`fmt_time`]; text from outside (lock fields, approvers, errors) is
//! put on one line and capped by the helpers in `text` before it enters a message.

pub mod alert;
pub mod chatbot;
pub mod email;
pub mod reasons;
pub mod slack;
pub mod sns;
pub(crate) mod text;
pub mod unlock;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use text::{fmt_time, SUBJECT_MAX};

/// lockreaper's version: the workspace version (`version.workspace = true` in this crate's
/// manifest), the one `make package` stamps on the release and the functions log. Every message
/// carries it ([`Message::version`]), so an operator reading an alert knows which release sent it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The member of the programs' form ([`RenderedMessage::program_form`]) holding the Slack app
/// mode's rendering.
pub const SLACK_MEMBER: &str = "slack";

/// One message, whatever channel carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The SNS `Subject` (e-mail's subject line): printable ASCII, at most [`SUBJECT_MAX`]
    /// characters (see `text::subject`).
    pub subject: String,
    /// A chat emoji shortcode (`:lock:`) shown before the title where a channel has emoji.
    pub emoji: &'static str,
    /// The headline, as chat Markdown.
    pub title: String,
    /// A shorter or ASCII-only headline for channels that show the title as a plain heading
    /// (e-mail), when it differs from `title`.
    pub plain_title: Option<String>,
    /// The first sentence(s): what happened or what this lock's state is. Chat Markdown.
    pub status: String,
    /// Labelled facts, in order.
    pub facts: Vec<Fact>,
    /// The column at which e-mail aligns fact values; `None` for one column past the longest
    /// label plus a space.
    pub fact_column: Option<usize>,
    /// Titled lists after the facts (liveness, reasons, state check, errors); empty ones are not
    /// shown.
    pub sections: Vec<Section>,
    /// What to do next.
    pub steps: Vec<Step>,
    /// Whether the steps are a sequence (numbered) or a list of advice (bulleted).
    pub steps_numbered: bool,
    /// Who sent it, for a signature line: `lockreaper (prod-stack)`.
    pub sender: String,
    /// The lockreaper version that sent it ([`VERSION`] in every builder), shown by every
    /// channel: the chat description's last line and the e-mail's signature ([`Message::footer`]).
    pub version: &'static str,
    /// A stable ID for this message (chat notification `id`).
    pub id: String,
    /// Messages about one lock location share a thread ([`alert::thread_id`]); `None` posts it on
    /// its own.
    pub thread: Option<String>,
    /// One line for previews and notifications.
    pub summary: String,
    /// The kind of event (`LockStale`, `LockUnlocked`, …) for filters.
    pub event_type: &'static str,
    /// Search keywords.
    pub keywords: Vec<String>,
    /// ARNs of the resources the message is about.
    pub related: Vec<String>,
    /// Machine-readable context (`lockId`, `statePath`, `outcome`, …) for programs and chat
    /// actions.
    pub context: serde_json::Map<String, Value>,
    /// The approval offered with this message, if any (the chat buttons act on it).
    pub approval: Option<Approval>,
    /// Whether the channel may offer its actions (chat buttons) on this message at all; each
    /// action still applies only when its criteria match (an approval token is present).
    pub actions_enabled: bool,
    /// The offered approval this message closes, if any: force-unlock's final result for a token,
    /// or a lock released on its own while an offer was open. Channels that can edit the offer
    /// (the Slack app mode) replace its buttons with [`Closing::line`](slack::closing_line).
    pub closes: Option<Closing>,
}

impl Message {
    /// The line naming the version that sent the message: `lockreaper 0.1.0`.
    pub fn footer(&self) -> String {
        format!("lockreaper {}", self.version)
    }
}

/// A labelled fact: `State: acme/net.tfstate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
    pub style: Style,
}

impl Fact {
    pub fn new(label: &'static str, value: impl Into<String>, style: Style) -> Fact {
        Fact {
            label,
            value: value.into(),
            style,
        }
    }
}

/// What kind of text a value is, so each channel can show it safely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// An identifier (path, lock ID, location, error): a code span where the channel has them.
    Code,
    /// Written by lockreaper, shown as it is in every channel.
    Verbatim,
    /// Text from outside (approver, reason, quoted lock fields) outside code: chat neutralises
    /// backticks and angle brackets, which would open code spans, mentions and links.
    Quoted,
    /// Sentences that may carry chat Markdown code spans: plain channels drop the backticks and
    /// wrap the text.
    Markdown,
}

/// A titled list: `Liveness`, `Why`, `State check`, `Errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: &'static str,
    pub style: Style,
    pub items: Vec<String>,
}

/// One thing to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A sentence (chat Markdown) and, optionally, a command that plain channels set apart on a
    /// line of its own.
    Do {
        text: String,
        command: Option<String>,
    },
    /// Approve the offered unlock ([`Message::approval`]): channels with buttons point at them;
    /// every channel gives the command.
    Approve,
}

impl Step {
    /// A sentence with no command.
    pub fn text(text: impl Into<String>) -> Step {
        Step::Do {
            text: text.into(),
            command: None,
        }
    }

    /// A sentence followed by a command.
    pub fn with_command(text: impl Into<String>, command: impl Into<String>) -> Step {
        Step::Do {
            text: text.into(),
            command: Some(command.into()),
        }
    }
}

/// What closes an offered approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closing {
    /// Someone decided on the offer of `token` and force-unlock is done with it: approved
    /// (unlocked or not), denied, snoozed, or refused for good (already used, expired, withdrawn).
    Decided {
        /// The token the decision named: the offer it closes.
        token: String,
        action: crate::approval::ApprovalAction,
        by: Decider,
        at: DateTime<Utc>,
        /// force-unlock's short result (`unlocked`, `the lock changed: not unlocked`, …).
        outcome: String,
    },
    /// The lock went away (released by its holder, or by hand) while an offer was open: the
    /// thread's open offer has nothing left to decide.
    Released,
}

/// Who decided, as far as lockreaper can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decider {
    /// A Slack user whose identity the interactivity endpoint verified and attested.
    Slack(crate::approval::SlackIdentity),
    /// A name the message gave (CLI, JSON or text command): the publisher's word, not verified.
    Named(String),
    /// A Chatbot button: the message carries no identity.
    ChatButton,
    /// Nobody named (a text command or JSON without an approver).
    Unnamed,
}

impl From<&crate::approval::SlackIdentity> for Decider {
    fn from(identity: &crate::approval::SlackIdentity) -> Decider {
        Decider::Slack(identity.clone())
    }
}

/// A signed approval offered with a message: the token, the topic that takes it, and the
/// command that publishes it by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub token: String,
    pub topic_arn: String,
    pub expires_at: DateTime<Utc>,
    /// `aws sns publish --topic-arn … --message …`.
    pub command: String,
}

/// A message rendered for SNS: subject, chat notification and e-mail text.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedMessage {
    /// SNS `Subject` (used by email): printable ASCII, at most [`SUBJECT_MAX`] characters.
    pub subject: String,
    /// The Amazon Q Developer / AWS Chatbot custom notification.
    pub chat: Value,
    /// Plain text for email, wrapped near 72 columns.
    pub email: String,
    /// The Slack app mode's form ([`slack::member`]): the `chat.postMessage` fields `text`
    /// (notification fallback) and Block Kit `blocks` ([`slack::render`]), and what the notifier
    /// needs to thread and edit: `thread`, `approvalToken` (the offer the buttons act on) and
    /// `closes` (`{token, line}`: the offer this message closes and the line replacing its
    /// buttons). Carried as the member `"slack"` of the chat notification in the envelope's
    /// `lambda` and `sqs` forms ([`RenderedMessage::program_form`]).
    pub slack: Value,
}

impl RenderedMessage {
    /// Renders `message` for every channel SNS delivers to.
    pub fn of(message: &Message) -> RenderedMessage {
        RenderedMessage {
            subject: message.subject.clone(),
            chat: chatbot::render(message),
            email: email::render(message),
            slack: slack::member(message),
        }
    }

    /// The SNS `Message` for `Publish` with `MessageStructure=json` (see [`sns::envelope`] for
    /// which protocol reads which form).
    pub fn sns_message(&self) -> String {
        sns::envelope(&self.subject, &self.chat, &self.program_form(), &self.email)
    }

    /// The form programs read (the envelope's `lambda` and `sqs` keys): the chat notification
    /// with one added member, [`SLACK_MEMBER`], holding [`RenderedMessage::slack`]. One JSON for
    /// the Slack notifier (a Lambda subscriber) and for tests reading an SQS subscription, so both
    /// see the same bytes; the Chatbot form (`https`) stays the schema's own.
    pub fn program_form(&self) -> Value {
        let mut form = self.chat.clone();
        if let Some(object) = form.as_object_mut() {
            object.insert(SLACK_MEMBER.to_owned(), self.slack.clone());
        }
        form
    }

    /// The chat thread this message is posted in, if any.
    pub fn thread_id(&self) -> Option<&str> {
        self.chat["metadata"]["threadId"].as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn message() -> Message {
        Message {
            subject: "[dev] Test: a/b".to_owned(),
            emoji: ":lock:",
            title: "Test `a/b`".to_owned(),
            plain_title: None,
            status: "Something about `a/b`.".to_owned(),
            facts: vec![
                Fact::new("State", "a/b", Style::Code),
                Fact::new("By", "<@U1> `x`", Style::Quoted),
            ],
            fact_column: None,
            sections: vec![
                Section {
                    title: "Empty",
                    style: Style::Verbatim,
                    items: Vec::new(),
                },
                Section {
                    title: "Why",
                    style: Style::Markdown,
                    items: vec!["held `5h`".to_owned()],
                },
            ],
            steps: vec![Step::Approve, Step::with_command("Run:", "tf plan")],
            steps_numbered: false,
            sender: "lockreaper (dev)".to_owned(),
            version: "9.8.7",
            id: "id-1".to_owned(),
            thread: None,
            summary: "sum".to_owned(),
            event_type: "Test",
            keywords: vec!["k".to_owned()],
            related: Vec::new(),
            context: serde_json::Map::new(),
            approval: None,
            actions_enabled: false,
            closes: None,
        }
    }

    /// What each renderer does with the model: styles, empty sections, an approval step with no
    /// approval attached, bulleted steps, the signature, and a message posted on its own.
    #[test]
    fn renderers_apply_the_model() {
        let rendered = RenderedMessage::of(&message());
        let chat = &rendered.chat;
        assert_eq!(chat["content"]["title"], ":lock: Test `a/b`");
        assert_eq!(
            chat["content"]["description"],
            "Something about `a/b`.\n• State: `a/b`\n• By: ‹@U1› 'x'\n\nWhy:\n• held `5h`\n\n_lockreaper 9.8.7_"
        );
        assert_eq!(
            chat["content"]["nextSteps"],
            serde_json::json!(["Run: `tf plan`"])
        );
        assert_eq!(rendered.thread_id(), None);
        assert!(chat["metadata"].get("threadId").is_none());
        assert_eq!(
            rendered.email,
            "Test `a/b`\n==========\n\nSomething about a/b.\n\nState: a/b\nBy:    <@U1> `x`\n\nWhy\n  - held 5h\n\nWhat to do\n  - Run:\n\n       tf plan\n\n\n--\nSent by lockreaper (dev).\nlockreaper 9.8.7\n"
        );
    }

    /// An approval puts its token where the chat buttons read it and its command in every form.
    #[test]
    fn an_approval_reaches_every_channel() {
        let mut m = message();
        m.approval = Some(Approval {
            token: "v1.tok".to_owned(),
            topic_arn: "arn:aws:sns:us-east-1:1:t".to_owned(),
            expires_at: Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap(),
            command: "aws sns publish --topic-arn arn:aws:sns:us-east-1:1:t --message v1.tok"
                .to_owned(),
        });
        let rendered = RenderedMessage::of(&m);
        let context = &rendered.chat["metadata"]["additionalContext"];
        assert_eq!(context[chatbot::APPROVAL_TOKEN_KEY], "v1.tok");
        assert_eq!(
            context[chatbot::APPROVAL_TOPIC_KEY],
            "arn:aws:sns:us-east-1:1:t"
        );
        let first = rendered.chat["content"]["nextSteps"][0].as_str().unwrap();
        assert!(first.contains("*Approve unlock*"), "{first}");
        assert!(first.contains("`aws sns publish"), "{first}");
        assert!(rendered
            .email
            .contains("press \"Approve unlock\" in\n    chat, or run the command below. The approval expires at 2025-03-04\n    09:00:00 UTC.\n\n       aws sns publish"), "{}", rendered.email);
        let envelope: Value = serde_json::from_str(&rendered.sns_message()).unwrap();
        assert_eq!(envelope["sms"], "[dev] Test: a/b");
        assert_eq!(envelope["email"], rendered.email.as_str());
    }

    /// The version reaches every form SNS delivers except the SMS (its subject alone), and the
    /// builders stamp the workspace version.
    #[test]
    fn the_version_is_in_every_channel() {
        let rendered = RenderedMessage::of(&message());
        let envelope: Value = serde_json::from_str(&rendered.sns_message()).unwrap();
        for protocol in [
            "default",
            "email",
            "https",
            "http",
            "sqs",
            "lambda",
            "email-json",
            "firehose",
        ] {
            let form = envelope[protocol].as_str().unwrap();
            assert!(form.contains("lockreaper 9.8.7"), "{protocol}: {form}");
        }
        assert!(!envelope["sms"].as_str().unwrap().contains("9.8.7"));
        assert!(!VERSION.is_empty());
        assert_eq!(VERSION, env!("CARGO_PKG_VERSION"));
    }
}
