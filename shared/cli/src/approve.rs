//! `lockreaper approve|deny|snooze <TOKEN>`: publishes to the approvals topic exactly the JSON
//! message the force-unlock function accepts, as a chat button would publish the bare token.
//!
//! The CLI holds no signing key, so it checks only what it can: the token's shape (the `lr1.`
//! prefix, length and alphabet), its expiry as written in the token (unauthenticated, by this
//! machine's clock: a token that says it expired would be refused anyway), the snooze duration,
//! and that the message it built parses back, with [`ApprovalMessage::parse`], to what was asked.

use chrono::{DateTime, Utc};
use lockreaper_aws::notify::Notifier;
use lockreaper_core::approval::{
    strip_token_decoration, ApprovalMessage, ApprovalRequest, ApprovalToken, TokenFormError,
};

use crate::config::{self, Settings, APPROVAL_TOPIC_ARN};
use crate::failure::{Failure, EXIT_OK};

#[derive(clap::Args, Debug)]
pub struct DecisionArgs {
    /// The approval token from the alert (`lr1.` followed by 54 characters)
    #[arg(value_name = "TOKEN")]
    pub token: String,

    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct SnoozeArgs {
    /// The approval token from the alert (`lr1.` followed by 54 characters)
    #[arg(value_name = "TOKEN")]
    pub token: String,

    /// How long to silence alerts for the lock, e.g. `2h`, `1d`, `1h30m` (at most 7d)
    #[arg(value_name = "DURATION")]
    pub duration: String,

    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct Common {
    /// Who decides, recorded in the audit record (required when force-unlock has an APPROVER_ALLOW_LIST)
    #[arg(long, env = "LOCKREAPER_APPROVER", value_name = "NAME")]
    pub approver: Option<String>,

    /// Why, recorded in the audit record and shown in the alert thread
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// Print the message that would be published, and publish nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// What is asked: the core's approval actions, the same the force-unlock function reads.
pub use lockreaper_core::approval::ApprovalAction as Action;

/// What happens next, for the person who asked.
fn next(action: Action, duration: Option<&str>) -> String {
    let rest = match action {
        Action::Approve => "checks that the lock is still exactly the one proposed, records the audit entry, deletes the lock conditionally".to_owned(),
        Action::Deny => "closes the proposal and leaves the lock alone".to_owned(),
        Action::Snooze => format!(
            "silences alerts for this lock for {}",
            duration.unwrap_or("the given time")
        ),
    };
    format!(
        "Next: the force-unlock function verifies the token (signature, expiry, single use), {rest}, and posts the result to the alert thread."
    )
}

/// Checks the token's shape and written expiry; returns it without decoration.
pub fn check_token(raw: &str, now: DateTime<Utc>) -> Result<String, String> {
    let token = strip_token_decoration(raw);
    let form = format!(
        "a lockreaper approval token is `{}` followed by {} characters, copied whole from the alert",
        ApprovalToken::PREFIX,
        ApprovalToken::LEN - ApprovalToken::PREFIX.len()
    );
    // The token's form and its written expiry, read as the core reads them (no key here, so
    // nothing in it is trusted: a token that says it expired would be refused anyway).
    let decoded = ApprovalToken::decode_unverified(token).map_err(|e| match e {
        TokenFormError::Empty => format!("TOKEN is empty; {form}"),
        TokenFormError::NoPrefix { .. } => format!(
            "TOKEN does not start with `{}`; {form}",
            ApprovalToken::PREFIX
        ),
        TokenFormError::Length { chars } => format!(
            "TOKEN has {} characters, expected {} (truncated or pasted twice?); {form}",
            chars + ApprovalToken::PREFIX.len(),
            ApprovalToken::LEN
        ),
        TokenFormError::NotBase64Character(bad) => format!(
            "TOKEN contains {bad:?}, which is not a base64url character (A-Z, a-z, 0-9, -, _); {form}"
        ),
        TokenFormError::NotBase64(e) => format!("TOKEN is not valid base64url ({e}); {form}"),
        TokenFormError::BodyLength { bytes } => {
            format!("TOKEN decodes to {bytes} bytes, which is not a token; {form}")
        }
        TokenFormError::ExpiryOutOfRange => format!("TOKEN has an impossible expiry; {form}"),
    })?;
    if now >= decoded.expires_at {
        return Err(format!(
            "the token expired at {} (by this machine's clock); the force-unlock function would refuse it: use the token of a newer alert",
            decoded
                .expires_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    Ok(token.to_owned())
}

/// The JSON message, exactly as force-unlock reads it: the core's wire format
/// ([`ApprovalRequest`]; absent fields are left out).
pub fn message(
    action: Action,
    token: &str,
    duration: Option<&str>,
    approver: Option<&str>,
    reason: Option<&str>,
) -> String {
    ApprovalRequest::new(action, token, duration, approver, reason).to_json()
}

pub async fn run(
    settings: &Settings,
    action: Action,
    token: &str,
    duration: Option<&str>,
    common: &Common,
) -> Result<u8, Failure> {
    let now = Utc::now();
    let token = check_token(token, now).map_err(Failure::usage)?;
    let text = message(
        action,
        &token,
        duration,
        common.approver.as_deref(),
        common.reason.as_deref(),
    );
    // What force-unlock will read: refuse here anything it would refuse (snooze too long, a
    // message over the size limit, ...), and make sure it reads what was asked.
    let parsed = ApprovalMessage::parse(&text).map_err(Failure::usage)?;
    if parsed.message.kind() != action || parsed.message.token() != token {
        return Err(Failure::usage(format!(
            "the message {text} would be read as `{}` of another token; please report this",
            parsed.message.action()
        )));
    }
    if common.dry_run {
        println!("{text}");
        return Ok(EXIT_OK);
    }

    let mut env = settings.env();
    let topic = config::topic_arn(&mut env, APPROVAL_TOPIC_ARN);
    let path_style = config::path_style(&mut env);
    if topic.is_none() {
        env.error(lockreaper_core::config::ConfigError::new(
            APPROVAL_TOPIC_ARN,
            "is not set; expected the ARN of the approvals SNS topic the force-unlock function is subscribed to, e.g. `arn:aws:sns:eu-west-1:111122223333:lockreaper-approvals`",
        ));
    }
    let topic = config::finish(env, topic.unwrap_or_default())?;
    let aws = config::aws(settings, path_style).await?;
    let message_id = Notifier::new(aws.sns(), &topic).publish_text(&text).await?;
    let shown: String = token.chars().take(12).collect();
    println!(
        "Published {} for token {shown}… to {topic} (SNS message id {message_id}).",
        action.name()
    );
    println!("{}", next(action, duration.map(str::trim)));
    if action == Action::Approve {
        println!("Afterwards `lockreaper audit <state path>` shows the audit record.");
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockreaper_core::approval::{LockFingerprint, SigningKey, PROPOSAL_ID_LEN};
    use serde_json::Value;

    fn token(expires_at: DateTime<Utc>) -> String {
        let key = SigningKey::from_secret(&"k".repeat(40)).unwrap();
        ApprovalToken::issue(
            &key,
            [7; PROPOSAL_ID_LEN],
            LockFingerprint::from_bytes([1; 8]),
            expires_at,
        )
    }

    #[test]
    fn tokens_are_checked_for_shape_and_expiry() {
        let now = Utc::now();
        let good = token(now + chrono::Duration::hours(1));
        assert_eq!(check_token(&format!(" '{good}' "), now).unwrap(), good);
        assert!(check_token("", now).unwrap_err().contains("empty"));
        assert!(check_token("lr2.abc", now).unwrap_err().contains("`lr1.`"));
        assert!(check_token(&good[..40], now)
            .unwrap_err()
            .contains("40 characters, expected 58"));
        let bad_char = format!("{}!", &good[..57]);
        assert!(check_token(&bad_char, now)
            .unwrap_err()
            .contains("not a base64url character"));
        let old = token(now - chrono::Duration::hours(1));
        assert!(check_token(&old, now).unwrap_err().contains("expired at"));
    }

    #[test]
    fn messages_parse_back_as_force_unlock_reads_them() {
        let t = token(Utc::now() + chrono::Duration::hours(1));
        let text = message(Action::Snooze, &t, Some("2h"), Some("ana"), Some(" "));
        let parsed = ApprovalMessage::parse(&text).unwrap();
        assert_eq!(
            parsed.message,
            ApprovalMessage::Snooze {
                token: t.clone(),
                duration: std::time::Duration::from_secs(7200),
                approver: Some("ana".into()),
                reason: None,
            }
        );
        let v: Value = serde_json::from_str(&message(Action::Deny, &t, None, None, None)).unwrap();
        assert_eq!(v, serde_json::json!({"action": "deny", "token": t}));
    }
}
