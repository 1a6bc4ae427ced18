//! The SNS renderer: one `Publish` carries every channel's form of a message.

/// The SNS `Message` for `Publish` with `MessageStructure=json`: one string per delivery
/// protocol, each subscription reading the key of its protocol and falling back to `default`.
///
/// - `default`, `email`: the plain text (email subscriptions; anything not listed).
/// - `https`: the chat notification JSON. Amazon Q Developer in chat applications (AWS
///   Chatbot) subscribes to the topic over HTTPS and reads this key.
/// - `http`, `email-json`, `firehose`: the chat notification JSON too.
/// - `lambda`, `sqs`: `program`, the chat notification JSON with the Slack app mode's member
///   `slack` added (the Slack notifier subscribes over `lambda`; the end-to-end tests read the
///   same form from an SQS subscription).
/// - `sms`: the subject alone (an SMS carries 140 bytes).
pub fn envelope(
    subject: &str,
    chat: &serde_json::Value,
    program: &serde_json::Value,
    email: &str,
) -> String {
    let chat = chat.to_string();
    let program = program.to_string();
    serde_json::json!({
        "default": email,
        "email": email,
        "https": chat,
        "http": chat,
        "sqs": program,
        "lambda": program,
        "email-json": chat,
        "firehose": chat,
        "sms": subject,
    })
    .to_string()
}
