//! Slack app mode, the pure parts: verifying that an HTTP request really comes from Slack, and
//! reading a button press out of it.
//!
//! Slack signs every request it sends to an app (interactivity, events, slash commands) with the
//! app's *signing secret* (api.slack.com/authentication/verifying-requests-from-slack):
//!
//! - base string `v0:<X-Slack-Request-Timestamp>:<raw request body>` (the body exactly as received,
//!   before any form or JSON decoding);
//! - `X-Slack-Signature` = `v0=` + lowercase hex of HMAC-SHA256(signing secret, base string);
//! - a request whose timestamp is more than five minutes from the receiver's clock is to be
//!   refused, so a captured request cannot be replayed later (Slack's SDKs:
//!   `abs(now - timestamp) > 60 * 5`).
//!
//! A request replayed *within* those five minutes still verifies here; what it asks for is then
//! stopped downstream, where approval tokens are single use (force-unlock's conditional ledger
//! write), so a replayed button press changes nothing.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::approval::{ApprovalAction, ApprovalRequest, SigningKey, SlackGroups, SlackIdentity};
use crate::messages::slack::button_action;

type HmacSha256 = Hmac<Sha256>;

/// The header carrying the request's signature (header names are case-insensitive in HTTP).
pub const SIGNATURE_HEADER: &str = "x-slack-signature";
/// The header carrying the request's Unix timestamp, in seconds.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
/// How far a request's timestamp may be from now, either way, in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

const VERSION: &str = "v0";

/// The app's signing secret (Slack app settings → Basic Information → Signing Secret; kept in
/// Secrets Manager). `Debug` prints `SlackSigningSecret(redacted)`.
#[derive(Clone)]
pub struct SlackSigningSecret {
    mac: HmacSha256,
}

/// Why a signing secret was refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningSecretError {
    #[error(
        "the Slack signing secret is empty; copy it from the Slack app's Basic Information page"
    )]
    Empty,
}

impl SlackSigningSecret {
    /// The secret as Slack shows it; surrounding whitespace (a trailing newline) is trimmed. The
    /// key is the secret's UTF-8 bytes, not a hex or base64 decoding of it: Slack's own example
    /// secret `8f742231b10e8888abcd99yyyzzz85a5` is not even hex.
    pub fn from_secret(secret: &str) -> Result<SlackSigningSecret, SigningSecretError> {
        let secret = secret.trim();
        if secret.is_empty() {
            return Err(SigningSecretError::Empty);
        }
        // HMAC takes keys of any length, so this cannot fail; map it anyway rather than panic.
        let mac =
            HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| SigningSecretError::Empty)?;
        Ok(SlackSigningSecret { mac })
    }

    /// `v0=<hex>`: the signature Slack puts on a request with `timestamp` and `body`. What the
    /// tests (and a local stand-in of Slack) sign requests with.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(format!("{VERSION}:{timestamp}:").as_bytes());
        mac.update(body);
        format!("{VERSION}={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Checks a request's headers and raw body at `now`: both headers present, the timestamp a
    /// whole number of seconds within [`MAX_CLOCK_SKEW_SECS`] of `now`, and the signature equal
    /// (constant-time) to the one computed over the raw body. The timestamp is checked after the
    /// signature, so a forger learns nothing but "mismatch".
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<SlackRequestTime, SlackRequestError> {
        let timestamp = timestamp
            .map(str::trim)
            .ok_or(SlackRequestError::MissingHeader(TIMESTAMP_HEADER))?;
        let signature = signature
            .map(str::trim)
            .ok_or(SlackRequestError::MissingHeader(SIGNATURE_HEADER))?;
        let seconds: i64 = timestamp
            .parse()
            .ok()
            .filter(|_| !timestamp.is_empty() && timestamp.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| SlackRequestError::MalformedTimestamp(quote(timestamp)))?;
        let Some(hex_digest) = signature.strip_prefix("v0=") else {
            return Err(SlackRequestError::MalformedSignature(
                "it does not start with `v0=` (the only signature version Slack uses)".into(),
            ));
        };
        let mut given = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut given).map_err(|_| {
            SlackRequestError::MalformedSignature(format!(
                "expected `v0=` and 64 hex characters, got {} characters after `v0=`",
                hex_digest.chars().count()
            ))
        })?;
        let mut mac = self.mac.clone();
        mac.update(format!("{VERSION}:{timestamp}:").as_bytes());
        mac.update(body);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&given)
            .map_err(|_| SlackRequestError::Mismatch)?;
        let sent_at = DateTime::from_timestamp(seconds, 0)
            .ok_or_else(|| SlackRequestError::MalformedTimestamp(quote(timestamp)))?;
        let skew = (now - sent_at).num_seconds();
        if skew.abs() > MAX_CLOCK_SKEW_SECS {
            return Err(SlackRequestError::Stale {
                sent_at,
                skew_secs: skew,
            });
        }
        Ok(SlackRequestTime { sent_at })
    }
}

impl std::fmt::Debug for SlackSigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SlackSigningSecret(redacted)")
    }
}

/// A verified request's timestamp, as Slack stated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlackRequestTime {
    pub sent_at: DateTime<Utc>,
}

/// Why a request was refused as not coming from Slack. Answer all of them with HTTP 401 and no
/// detail; log the detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackRequestError {
    #[error("the request has no `{0}` header; Slack signs every request it sends")]
    MissingHeader(&'static str),
    #[error("the `x-slack-request-timestamp` header {0:?} is not a Unix time in whole seconds")]
    MalformedTimestamp(String),
    #[error("the `x-slack-signature` header is malformed: {0}")]
    MalformedSignature(String),
    #[error(
        "the request was signed at {} ({skew_secs} s from now), more than {MAX_CLOCK_SKEW_SECS} s \
         away: refused as a replay (or a clock off by minutes)",
        sent_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    Stale {
        sent_at: DateTime<Utc>,
        skew_secs: i64,
    },
    #[error(
        "the request's signature does not match its body: it was forged, altered in transit, or \
         signed with another app's signing secret"
    )]
    Mismatch,
}

/// At most 40 characters of a header value in an error.
fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

// ---------------------------------------------------------------------------------------------
// Interaction payloads
// ---------------------------------------------------------------------------------------------

/// A press of one of lockreaper's approval buttons, read from a verified interactivity request.
#[derive(Debug, Clone, PartialEq)]
pub struct ButtonPress {
    /// Who pressed it (the payload's `user.id` and its workspace).
    pub identity: SlackIdentity,
    pub action: ApprovalAction,
    /// A snooze's duration (`2h`), for the Snooze button.
    pub duration: Option<&'static str>,
    /// The approval token, the button's `value`.
    pub token: String,
    /// Where the message with the buttons is, to replace them with the result (`chat.update`).
    pub channel_id: Option<String>,
    pub message_ts: Option<String>,
    /// The message's blocks and notification text as Slack sent them back.
    pub blocks: Vec<Value>,
    pub text: Option<String>,
}

/// What a verified interactivity request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Interaction {
    /// One of lockreaper's buttons was pressed.
    Press(ButtonPress),
    /// Any other interaction (another app's block, a shortcut, a view): acknowledged and ignored.
    /// The type and the first action's `action_id`, for the log line.
    Other {
        kind: String,
        action_id: Option<String>,
    },
}

/// Why a verified request's body is not an interaction payload lockreaper can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractionError {
    #[error("the request body has no `payload` form field; Slack sends interactions as `payload=<JSON>`")]
    NoPayload,
    #[error("the `payload` form field is not JSON: {0}")]
    NotJson(String),
    #[error("the block_actions payload has no {0}")]
    Missing(&'static str),
    #[error("the block_actions payload's {0}")]
    BadIdentity(String),
    #[error("the button's value is {chars} characters; an approval token is {max} at most here")]
    ValueTooLong { chars: usize, max: usize },
}

/// The longest button value taken as a token (Block Kit's limit; tokens are 58 characters).
const VALUE_MAX: usize = 2000;

/// Reads an interactivity request's raw body (`application/x-www-form-urlencoded`, one field
/// `payload` holding JSON; docs.slack.dev/interactivity/handling-user-interaction): a
/// `block_actions` payload whose first action is one of lockreaper's buttons is a
/// [`ButtonPress`] (`user.id`, the team from `user.team_id` or `team.id`, the action's `value`,
/// `container`/`channel` and `message`), anything else [`Interaction::Other`]. Call only after
/// [`SlackSigningSecret::verify`] accepted the same bytes.
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, InteractionError> {
    let payload = form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value.into_owned())
        .ok_or(InteractionError::NoPayload)?;
    let payload: Value =
        serde_json::from_str(&payload).map_err(|e| InteractionError::NotJson(e.to_string()))?;
    let kind = payload["type"].as_str().unwrap_or_default().to_owned();
    let first = &payload["actions"][0];
    let action_id = first["action_id"].as_str();
    let pressed = match (kind.as_str(), action_id.and_then(button_action)) {
        ("block_actions", Some(pressed)) => pressed,
        _ => {
            return Ok(Interaction::Other {
                kind,
                action_id: action_id.map(str::to_owned),
            })
        }
    };
    let (action, duration) = pressed;
    let user_id = payload["user"]["id"]
        .as_str()
        .ok_or(InteractionError::Missing("user.id"))?;
    let team_id = payload["user"]["team_id"]
        .as_str()
        .or_else(|| payload["team"]["id"].as_str())
        .ok_or(InteractionError::Missing("team.id"))?;
    let identity = SlackIdentity::new(team_id, user_id).map_err(InteractionError::BadIdentity)?;
    let token = first["value"].as_str().ok_or(InteractionError::Missing(
        "actions[0].value (the approval token)",
    ))?;
    let chars = token.chars().count();
    if chars > VALUE_MAX {
        return Err(InteractionError::ValueTooLong {
            chars,
            max: VALUE_MAX,
        });
    }
    let text = |v: &Value| v.as_str().map(str::to_owned);
    Ok(Interaction::Press(ButtonPress {
        identity,
        action,
        duration,
        token: token.to_owned(),
        channel_id: text(&payload["container"]["channel_id"])
            .or_else(|| text(&payload["channel"]["id"])),
        message_ts: text(&payload["container"]["message_ts"])
            .or_else(|| text(&payload["message"]["ts"])),
        blocks: payload["message"]["blocks"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        text: text(&payload["message"]["text"]),
    }))
}

impl ButtonPress {
    /// The message the endpoint publishes to the approvals topic: this press, attested with `key`
    /// as verified at `at`, with the allow-list's user groups the presser was found in when the
    /// endpoint looked them up (`None`: the allow-list names no group, nothing was looked up)
    /// ([`ApprovalRequest::slack_verified_with_groups`]).
    pub fn approval_message(
        &self,
        key: &SigningKey,
        groups: Option<&SlackGroups>,
        at: DateTime<Utc>,
    ) -> String {
        ApprovalRequest::slack_verified_with_groups(
            key,
            self.action,
            &self.token,
            self.duration,
            &self.identity,
            groups,
            at,
        )
        .to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented worked example (api.slack.com/authentication/verifying-requests-from-slack,
    // "Validating a request"): this secret, timestamp and slash-command body give this signature.
    const DOC_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TIMESTAMP: &str = "1531420618";
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn secret() -> SlackSigningSecret {
        SlackSigningSecret::from_secret(DOC_SECRET).unwrap()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    const DOC_TIME: i64 = 1_531_420_618;

    fn verify_doc(
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &str,
        now: i64,
    ) -> Result<SlackRequestTime, SlackRequestError> {
        secret().verify(timestamp, signature, body.as_bytes(), at(now))
    }

    #[test]
    fn the_documented_example_signs_and_verifies() {
        assert_eq!(
            secret().sign(DOC_TIMESTAMP, DOC_BODY.as_bytes()),
            DOC_SIGNATURE
        );
        // A trailing newline on the stored secret does not change the key.
        let padded = SlackSigningSecret::from_secret(&format!("{DOC_SECRET}\n")).unwrap();
        assert_eq!(
            padded.sign(DOC_TIMESTAMP, DOC_BODY.as_bytes()),
            DOC_SIGNATURE
        );
        let verified = verify_doc(
            Some(DOC_TIMESTAMP),
            Some(DOC_SIGNATURE),
            DOC_BODY,
            DOC_TIME + 30,
        );
        assert_eq!(
            verified,
            Ok(SlackRequestTime {
                sent_at: at(DOC_TIME)
            })
        );
    }

    #[test]
    fn the_window_is_five_minutes_either_way() {
        for now in [DOC_TIME - 300, DOC_TIME, DOC_TIME + 300] {
            assert!(verify_doc(Some(DOC_TIMESTAMP), Some(DOC_SIGNATURE), DOC_BODY, now).is_ok());
        }
        for now in [DOC_TIME - 301, DOC_TIME + 301, DOC_TIME + 86_400] {
            let err =
                verify_doc(Some(DOC_TIMESTAMP), Some(DOC_SIGNATURE), DOC_BODY, now).unwrap_err();
            assert!(matches!(err, SlackRequestError::Stale { .. }), "{err}");
            assert!(err.to_string().contains("replay"), "{err}");
        }
    }

    /// A replay: the very request Slack signed, sent again ten minutes later.
    #[test]
    fn a_replayed_request_is_refused_once_stale() {
        let err = verify_doc(
            Some(DOC_TIMESTAMP),
            Some(DOC_SIGNATURE),
            DOC_BODY,
            DOC_TIME + 600,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SlackRequestError::Stale {
                sent_at: at(DOC_TIME),
                skew_secs: 600
            }
        );
    }

    /// A replay with a fresh timestamp but the old signature, and forged or altered requests.
    #[test]
    fn forged_and_altered_requests_do_not_match() {
        let fresh = (DOC_TIME + 600).to_string();
        let cases: [(&str, &str, String); 5] = [
            ("re-dated replay", &fresh, DOC_BODY.to_owned()),
            (
                "altered body",
                DOC_TIMESTAMP,
                DOC_BODY.replace("U2CERLKJA", "U0EVE0000"),
            ),
            ("one extra byte", DOC_TIMESTAMP, format!("{DOC_BODY}&")),
            ("empty body", DOC_TIMESTAMP, String::new()),
            ("decoded body", DOC_TIMESTAMP, DOC_BODY.replace("%2F", "/")),
        ];
        for (what, timestamp, body) in cases {
            let err = verify_doc(Some(timestamp), Some(DOC_SIGNATURE), &body, DOC_TIME + 600)
                .unwrap_err();
            assert_eq!(err, SlackRequestError::Mismatch, "{what}");
        }
        // Signed with another app's secret.
        let other = SlackSigningSecret::from_secret("another-apps-signing-secret").unwrap();
        let forged = other.sign(DOC_TIMESTAMP, DOC_BODY.as_bytes());
        assert_eq!(
            verify_doc(Some(DOC_TIMESTAMP), Some(&forged), DOC_BODY, DOC_TIME),
            Err(SlackRequestError::Mismatch)
        );
        // Upper-case hex is the same bytes: still the right signature.
        let upper = format!("v0={}", DOC_SIGNATURE[3..].to_uppercase());
        assert!(verify_doc(Some(DOC_TIMESTAMP), Some(&upper), DOC_BODY, DOC_TIME).is_ok());
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        assert_eq!(
            verify_doc(None, Some(DOC_SIGNATURE), DOC_BODY, DOC_TIME),
            Err(SlackRequestError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify_doc(Some(DOC_TIMESTAMP), None, DOC_BODY, DOC_TIME),
            Err(SlackRequestError::MissingHeader(SIGNATURE_HEADER))
        );
        for bad in [
            "",
            "-1531420618",
            "1531420618.5",
            "soon",
            "99999999999999999999",
        ] {
            let err = verify_doc(Some(bad), Some(DOC_SIGNATURE), DOC_BODY, DOC_TIME).unwrap_err();
            assert!(
                matches!(err, SlackRequestError::MalformedTimestamp(_)),
                "{bad:?}: {err}"
            );
        }
        for bad in [
            "",
            "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=",
            "v0=a2114d57",
            "v0=zz114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ] {
            let err = verify_doc(Some(DOC_TIMESTAMP), Some(bad), DOC_BODY, DOC_TIME).unwrap_err();
            assert!(
                matches!(err, SlackRequestError::MalformedSignature(_)),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn an_empty_secret_is_refused_and_never_printed() {
        assert_eq!(
            SlackSigningSecret::from_secret(" \n").unwrap_err(),
            SigningSecretError::Empty
        );
        assert_eq!(format!("{:?}", secret()), "SlackSigningSecret(redacted)");
    }

    // --- interaction payloads ---------------------------------------------------------------

    /// A `block_actions` payload in the documented shape
    /// (docs.slack.dev/reference/interaction-payloads/block_actions-payload), trimmed to the
    /// fields Slack always sends with a button press in a channel message.
    fn block_actions(action_id: &str, value: &str) -> Value {
        serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U0456EFGH", "username": "ana", "name": "ana", "team_id": "T0123ABCD"},
            "api_app_id": "A0APP0001",
            "token": "deprecated-verification-token",
            "container": {"type": "message", "message_ts": "1741086927.000200", "channel_id": "C0LOCKS01", "is_ephemeral": false},
            "trigger_id": "1741086990.000001.abc",
            "team": {"id": "T0123ABCD", "domain": "acme"},
            "channel": {"id": "C0LOCKS01", "name": "locks"},
            "message": {"type": "message", "ts": "1741086927.000200", "text": "Stale lock", "blocks": [
                {"type": "section", "block_id": "a1", "text": {"type": "mrkdwn", "text": "*Stale lock*"}},
                {"type": "actions", "block_id": "lockreaper-approval", "elements": []}
            ]},
            "response_url": "https://hooks.slack.com/actions/T0123ABCD/1/abc",
            "actions": [{
                "action_id": action_id, "block_id": "lockreaper-approval",
                "text": {"type": "plain_text", "text": "Approve unlock", "emoji": true},
                "value": value, "type": "button", "action_ts": "1741086990.000300"
            }]
        })
    }

    /// The request body as Slack sends it: `payload=` and the URL-encoded JSON.
    fn form(payload: &Value) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    const TOKEN: &str = "lr1.BwcHBwcHBwcHBwcHZ8cZD7wLM_p-NWO4m3eb7Ci-0NYCA33vbggFrQ";

    #[test]
    fn a_button_press_is_read_from_the_form_body() {
        let body = form(&block_actions("lockreaper-approve", TOKEN));
        assert!(body.starts_with(b"payload=%7B%22"), "form-encoded JSON");
        let Ok(Interaction::Press(press)) = parse_interaction(&body) else {
            panic!("not a press");
        };
        assert_eq!(
            press.identity,
            SlackIdentity::new("T0123ABCD", "U0456EFGH").unwrap()
        );
        assert_eq!(press.action, ApprovalAction::Approve);
        assert_eq!(press.duration, None);
        assert_eq!(press.token, TOKEN);
        assert_eq!(press.channel_id.as_deref(), Some("C0LOCKS01"));
        assert_eq!(press.message_ts.as_deref(), Some("1741086927.000200"));
        assert_eq!(press.blocks.len(), 2);
        assert_eq!(press.text.as_deref(), Some("Stale lock"));

        let Ok(Interaction::Press(snooze)) =
            parse_interaction(&form(&block_actions("lockreaper-snooze-2h", TOKEN)))
        else {
            panic!("not a press");
        };
        assert_eq!(snooze.action, ApprovalAction::Snooze);
        assert_eq!(snooze.duration, Some("2h"));
    }

    /// What the endpoint publishes is what force-unlock parses and verifies, naming the presser.
    #[test]
    fn a_press_becomes_a_verified_approval() {
        use crate::approval::{ApprovalMessage, ApprovalSource};
        let key =
            SigningKey::from_secret("slack-attestation-key-for-tests-only-0123456789").unwrap();
        for (action_id, expected) in [
            ("lockreaper-approve", ApprovalAction::Approve),
            ("lockreaper-deny", ApprovalAction::Deny),
            ("lockreaper-snooze-2h", ApprovalAction::Snooze),
        ] {
            let Ok(Interaction::Press(press)) =
                parse_interaction(&form(&block_actions(action_id, TOKEN)))
            else {
                panic!("not a press");
            };
            let message = press.approval_message(&key, None, at(DOC_TIME));
            let mut parsed = ApprovalMessage::parse(&message).unwrap();
            parsed.verify_slack(Some(&key)).unwrap();
            assert_eq!(parsed.source, ApprovalSource::SlackVerified);
            assert_eq!(parsed.message.kind(), expected);
            assert_eq!(parsed.message.token(), TOKEN);
            assert_eq!(parsed.message.approver(), Some("slack:T0123ABCD/U0456EFGH"));
        }
    }

    #[test]
    fn other_interactions_are_acknowledged_not_acted_on() {
        let other_button = parse_interaction(&form(&block_actions("someone-elses-button", "x")));
        assert_eq!(
            other_button,
            Ok(Interaction::Other {
                kind: "block_actions".into(),
                action_id: Some("someone-elses-button".into())
            })
        );
        let mut view = block_actions("lockreaper-approve", TOKEN);
        view["type"] = "view_submission".into();
        assert!(matches!(
            parse_interaction(&form(&view)),
            Ok(Interaction::Other { .. })
        ));
    }

    #[test]
    fn bad_payloads_are_named() {
        assert_eq!(
            parse_interaction(b"token=x&user_id=U1"),
            Err(InteractionError::NoPayload)
        );
        assert!(matches!(
            parse_interaction(b"payload=%7Bnot-json"),
            Err(InteractionError::NotJson(_))
        ));
        let mut no_user = block_actions("lockreaper-approve", TOKEN);
        no_user["user"] = Value::Null;
        assert_eq!(
            parse_interaction(&form(&no_user)),
            Err(InteractionError::Missing("user.id"))
        );
        let mut no_team = block_actions("lockreaper-approve", TOKEN);
        no_team["user"]["team_id"] = Value::Null;
        no_team["team"] = Value::Null;
        assert_eq!(
            parse_interaction(&form(&no_team)),
            Err(InteractionError::Missing("team.id"))
        );
        // The team from `team.id` when the user object has none.
        no_team["team"] = serde_json::json!({"id": "T0123ABCD"});
        assert!(matches!(
            parse_interaction(&form(&no_team)),
            Ok(Interaction::Press(_))
        ));
        let mut mention = block_actions("lockreaper-approve", TOKEN);
        mention["user"]["id"] = "<@U0EVE>".into();
        assert!(matches!(
            parse_interaction(&form(&mention)),
            Err(InteractionError::BadIdentity(_))
        ));
        let mut no_value = block_actions("lockreaper-approve", TOKEN);
        no_value["actions"][0]["value"] = Value::Null;
        assert!(matches!(
            parse_interaction(&form(&no_value)),
            Err(InteractionError::Missing(_))
        ));
        let long = parse_interaction(&form(&block_actions(
            "lockreaper-approve",
            &"x".repeat(2001),
        )));
        assert_eq!(
            long,
            Err(InteractionError::ValueTooLong {
                chars: 2001,
                max: 2000
            })
        );
    }
}
