//! The e-mail renderer: a [`Message`] as plain text wrapped near 72 columns: an underlined
//! heading, the status, aligned facts, bulleted sections, the steps with commands on lines of
//! their own, and a signature naming the sender and the version.

use std::fmt::Write as _;

use super::chatbot::APPROVE_BUTTON;
use super::text::{heading, plain, wrap};
use super::{fmt_time, Message, Step, Style};

/// The e-mail body for `message`.
pub fn render(message: &Message) -> String {
    let mut email = heading(message.plain_title.as_deref().unwrap_or(&message.title));
    email.push_str(&wrap(&plain(&message.status), "", ""));
    email.push('\n');
    let column = message.fact_column.unwrap_or_else(|| {
        message
            .facts
            .iter()
            .map(|f| f.label.len())
            .max()
            .unwrap_or(0)
            + 2
    });
    for fact in &message.facts {
        let lead = format!("{:<column$}", format!("{}:", fact.label));
        match fact.style {
            Style::Markdown => {
                email.push_str(&wrap(&plain(&fact.value), &lead, &" ".repeat(column)))
            }
            Style::Code | Style::Verbatim | Style::Quoted => {
                let _ = writeln!(email, "{lead}{}", fact.value);
            }
        }
    }
    for section in message.sections.iter().filter(|s| !s.items.is_empty()) {
        let _ = write!(email, "\n{}\n", section.title);
        for item in &section.items {
            let text = match section.style {
                Style::Markdown => plain(item),
                Style::Code | Style::Verbatim | Style::Quoted => item.clone(),
            };
            email.push_str(&wrap(&text, "  - ", "    "));
        }
    }
    if !message.steps.is_empty() {
        email.push_str("\nWhat to do\n");
        for (i, step) in message.steps.iter().enumerate() {
            let (lead, indent) = if message.steps_numbered {
                (format!("  {}. ", i + 1), "     ")
            } else {
                ("  - ".to_owned(), "    ")
            };
            let (text, command) = match (step, &message.approval) {
                (Step::Do { text, command }, _) => (plain(text), command.as_deref()),
                (Step::Approve, Some(approval)) => (
                    format!(
                        "If nobody holds it, approve the unlock: press \"{APPROVE_BUTTON}\" in chat, or run the command below. The approval expires at {}.",
                        fmt_time(approval.expires_at)
                    ),
                    Some(approval.command.as_str()),
                ),
                (Step::Approve, None) => continue,
            };
            email.push_str(&wrap(&text, &lead, indent));
            if let Some(command) = command {
                let _ = writeln!(email, "\n       {command}\n");
            }
        }
    }
    let _ = write!(
        email,
        "\n--\nSent by {}.\n{}\n",
        message.sender,
        message.footer()
    );
    email
}
