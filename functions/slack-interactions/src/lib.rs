//! slack-interactions: the Slack app mode's interactivity endpoint, behind a Lambda function URL.
//!
//! Slack POSTs every button press to the app's Request URL as `application/x-www-form-urlencoded`
//! `payload=<JSON>`, signed with the app's signing secret, and wants an HTTP 200 within three
//! seconds. For each request, stopping at the first "no":
//!
//! 1. it is a POST;
//! 2. the signature verifies over the raw body and the timestamp is within five minutes
//!    ([`SlackSigningSecret::verify`]), else **401** with no detail (the detail is logged);
//! 3. the body is an interaction payload ([`parse_interaction`]), else **400**; an interaction
//!    that is not one of lockreaper's buttons is acknowledged (**200**) and ignored;
//! 4. the press becomes an approval, denial or snooze attested with the presser's Slack identity
//!    ([`ButtonPress::approval_message`], signed with the key in `SLACK_ATTESTATION_SECRET_ARN`
//!    that only this function and force-unlock can read) and is published to the approvals topic;
//!    **200**. force-unlock does the rest, as for every approval (single use, the final check,
//!    the allow-list, the audit);
//! 5. when the bot token is configured (`SLACK_BOT_TOKEN_SECRET_ARN`), the pressed message's
//!    buttons are replaced at once with who pressed what ([`pressed_line`], `chat.update` at
//!    `SLACK_API_BASE_URL`), so nobody presses twice; a failure there is logged and the press
//!    still stands.
//!
//! Nothing here touches a lock or the ledger, so the answer is one SNS publish and at most one
//! Slack call (bounded by [`UPDATE_TIMEOUT`]) away: within Slack's three seconds. A request replayed within the five minutes publishes the same approval
//! again, which force-unlock answers "already used".
//!
//! The event is the function URL's payload format 2.0 (docs.aws.amazon.com/lambda/latest/dg/
//! urls-invocation.html#urls-payloads): `headers` (lower-case names), `body`, `isBase64Encoded`,
//! `requestContext.http.method`; the response is `{"statusCode", "headers", "body"}`. It is taken
//! as plain JSON so that no shape of request can make the runtime fail the invocation.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};
use lockreaper_aws::notify::Notifier;
use lockreaper_aws::slack::{SlackWebApi, SLACK_API_BASE_URL};
use lockreaper_aws::Aws;
use lockreaper_core::approval::SigningKey;
use lockreaper_core::config::{check_arn, ConfigError, ConfigErrors, Env};
use lockreaper_core::messages::slack::{pressed_line, replace_buttons};
use lockreaper_core::slack::{
    parse_interaction, ButtonPress, Interaction, SlackSigningSecret, SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
};
use serde_json::{json, Value};

/// Everything the endpoint reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SLACK_SIGNING_SECRET_ARN`: the secret holding the Slack app's signing secret.
    pub signing_secret_arn: String,
    /// `SLACK_ATTESTATION_SECRET_ARN`: the secret holding the key verified approvals are attested
    /// with (force-unlock reads the same secret).
    pub attestation_secret_arn: String,
    /// `APPROVAL_TOPIC_ARN`: the approvals topic force-unlock is subscribed to.
    pub approval_topic_arn: String,
    /// `SLACK_BOT_TOKEN_SECRET_ARN` (optional): the secret holding the app's bot token; unset, the
    /// buttons are not replaced on a press.
    pub bot_token_secret_arn: Option<String>,
    /// `SLACK_API_BASE_URL`: where the Web API is (`https://slack.com` unless testing locally).
    pub api_base_url: String,
}

impl Config {
    pub const SLACK_SIGNING_SECRET_ARN: &'static str = "SLACK_SIGNING_SECRET_ARN";
    pub const SLACK_ATTESTATION_SECRET_ARN: &'static str = "SLACK_ATTESTATION_SECRET_ARN";
    pub const APPROVAL_TOPIC_ARN: &'static str = "APPROVAL_TOPIC_ARN";
    pub const SLACK_BOT_TOKEN_SECRET_ARN: &'static str = "SLACK_BOT_TOKEN_SECRET_ARN";
    pub const SLACK_API_BASE_URL: &'static str = "SLACK_API_BASE_URL";

    /// Parses the variables, reporting every problem at once.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let mut env = Env::new(vars);
        let arn = |env: &mut Env, name: &'static str, service: &str, what: &str, hint: &str| {
            let value = env.required(name, hint);
            if !value.is_empty() {
                if let Err(problem) = check_arn(&value, service, what) {
                    env.error(ConfigError::new(name, problem));
                }
            }
            value
        };
        let signing_secret_arn = arn(
            &mut env,
            Self::SLACK_SIGNING_SECRET_ARN,
            "secretsmanager",
            "a Secrets Manager secret",
            "the ARN of the Secrets Manager secret holding the Slack app's signing secret",
        );
        let attestation_secret_arn = arn(
            &mut env,
            Self::SLACK_ATTESTATION_SECRET_ARN,
            "secretsmanager",
            "a Secrets Manager secret",
            "the ARN of the Secrets Manager secret holding the Slack attestation key",
        );
        let approval_topic_arn = arn(
            &mut env,
            Self::APPROVAL_TOPIC_ARN,
            "sns",
            "an SNS topic",
            "the ARN of the approvals SNS topic force-unlock is subscribed to",
        );
        let bot_token_secret_arn = env
            .get(Self::SLACK_BOT_TOKEN_SECRET_ARN)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        if let Some(value) = &bot_token_secret_arn {
            if let Err(problem) = check_arn(value, "secretsmanager", "a Secrets Manager secret") {
                env.error(ConfigError::new(Self::SLACK_BOT_TOKEN_SECRET_ARN, problem));
            }
        }
        let api_base_url = env
            .get(Self::SLACK_API_BASE_URL)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or(SLACK_API_BASE_URL)
            .trim_end_matches('/')
            .to_owned();
        if !(api_base_url.starts_with("https://") || api_base_url.starts_with("http://")) {
            env.error(ConfigError::new(
                Self::SLACK_API_BASE_URL,
                format!(
                    "{api_base_url:?} is not an http(s) URL; expected e.g. `{SLACK_API_BASE_URL}`"
                ),
            ));
        }
        env.finish(Config {
            signing_secret_arn,
            attestation_secret_arn,
            approval_topic_arn,
            bot_token_secret_arn,
            api_base_url,
        })
    }
}

/// The endpoint, with its secrets and client; built once per cold start.
pub struct SlackInteractions {
    signing_secret: SlackSigningSecret,
    attestation_key: SigningKey,
    approvals: Notifier,
    /// Replaces the buttons of a pressed message, when a bot token is configured.
    slack: Option<SlackWebApi>,
}

/// The longest the button replacement may take; the press is already published by then.
pub const UPDATE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

impl SlackInteractions {
    pub fn new(
        aws: &Aws,
        config: &Config,
        signing_secret: SlackSigningSecret,
        attestation_key: SigningKey,
    ) -> SlackInteractions {
        SlackInteractions {
            signing_secret,
            attestation_key,
            approvals: Notifier::new(aws.sns(), &config.approval_topic_arn),
            slack: None,
        }
    }

    /// Replaces the buttons of pressed messages through `slack`.
    pub fn with_slack(mut self, slack: SlackWebApi) -> SlackInteractions {
        self.slack = Some(slack);
        self
    }

    /// Loads both secrets from Secrets Manager and builds the endpoint.
    pub async fn from_config(aws: &Aws, config: &Config) -> Result<SlackInteractions, Error> {
        let secrets = aws.secrets();
        let signing_secret =
            lockreaper_aws::load_slack_signing_secret(&secrets, &config.signing_secret_arn).await?;
        let attestation_key =
            lockreaper_aws::load_signing_key(&secrets, &config.attestation_secret_arn).await?;
        let endpoint = SlackInteractions::new(aws, config, signing_secret, attestation_key);
        Ok(match &config.bot_token_secret_arn {
            Some(arn) => {
                let token = lockreaper_aws::load_slack_bot_token(&secrets, arn).await?;
                endpoint.with_slack(SlackWebApi::new(&config.api_base_url, &token))
            }
            None => endpoint,
        })
    }

    /// The Lambda entry point: always a response, never an error (Slack shows its own error to the
    /// user for anything but a 200, and retries nothing).
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        Ok(self.handle_request(&event.payload, Utc::now()).await)
    }

    /// Answers one function URL request at `now`.
    pub async fn handle_request(&self, request: &Value, now: DateTime<Utc>) -> Value {
        let method = request["requestContext"]["http"]["method"]
            .as_str()
            .unwrap_or_default();
        if !method.eq_ignore_ascii_case("POST") {
            return refused(
                405,
                "method-not-allowed",
                &format!("{method:?} is not POST"),
            );
        }
        let body = match body_bytes(request) {
            Ok(body) => body,
            Err(problem) => return refused(400, "bad-body", &problem),
        };
        if let Err(e) = self.signing_secret.verify(
            header(request, TIMESTAMP_HEADER),
            header(request, SIGNATURE_HEADER),
            &body,
            now,
        ) {
            return refused(401, "not-from-slack", &e.to_string());
        }
        let press = match parse_interaction(&body) {
            Ok(Interaction::Press(press)) => press,
            Ok(Interaction::Other { kind, action_id }) => {
                tracing::info!(
                    event = "slack-interaction",
                    outcome = "ignored",
                    kind = %kind,
                    action_id = action_id.as_deref().unwrap_or("-"),
                    "not one of lockreaper's buttons; acknowledged"
                );
                return response(200, "");
            }
            Err(e) => return refused(400, "bad-payload", &e.to_string()),
        };
        self.publish(&press, now).await
    }

    async fn publish(&self, press: &ButtonPress, now: DateTime<Utc>) -> Value {
        let message = press.approval_message(&self.attestation_key, now);
        let approver = press.identity.approver_name();
        match self.approvals.publish_text(&message).await {
            Ok(message_id) => {
                tracing::info!(
                    event = "slack-interaction",
                    outcome = "published",
                    action = press.action.name(),
                    approver = %approver,
                    sns_message_id = %message_id,
                    "button press verified and published to the approvals topic"
                );
                self.replace_buttons(press, now).await;
                response(200, "")
            }
            Err(e) => {
                tracing::error!(
                    event = "slack-interaction",
                    outcome = "publish-failed",
                    action = press.action.name(),
                    approver = %approver,
                    reason = %e,
                    "could not publish the verified press; Slack shows the user an error, press again"
                );
                response(
                    500,
                    "lockreaper could not record this press; please press again",
                )
            }
        }
    }
}

impl SlackInteractions {
    /// Replaces the pressed message's buttons with who pressed what, when a bot token is
    /// configured and the press came from a message; failures are logged, never answered.
    async fn replace_buttons(&self, press: &ButtonPress, now: DateTime<Utc>) {
        let (Some(slack), Some(channel), Some(ts)) =
            (&self.slack, &press.channel_id, &press.message_ts)
        else {
            return;
        };
        if press.blocks.is_empty() {
            return;
        }
        let line = pressed_line(press.action, &press.identity, now);
        let blocks = replace_buttons(&press.blocks, &line);
        let text = press.text.as_deref().unwrap_or("lockreaper");
        match tokio::time::timeout(UPDATE_TIMEOUT, slack.update(channel, ts, text, &blocks)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(
                event = "slack-interaction",
                outcome = "buttons-not-replaced",
                reason = %e,
                "the press is published, but its message still shows the buttons"
            ),
            Err(_) => tracing::warn!(
                event = "slack-interaction",
                outcome = "buttons-not-replaced",
                reason = "chat.update took longer than the time left to answer Slack",
                "the press is published, but its message still shows the buttons"
            ),
        }
    }
}

/// `name`'s value, matching the name case-insensitively (function URLs send lower-case names;
/// HTTP names are case-insensitive anyway).
fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// The raw body, exactly as Slack sent it (decoded from base64 when the function URL encoded it).
fn body_bytes(request: &Value) -> Result<Vec<u8>, String> {
    let body = request["body"].as_str().unwrap_or_default();
    if request["isBase64Encoded"].as_bool().unwrap_or(false) {
        STANDARD
            .decode(body)
            .map_err(|e| format!("the body is marked base64 but does not decode: {e}"))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

fn response(status: u16, body: &str) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "text/plain; charset=utf-8"},
        "body": body,
    })
}

/// A refusal: the detail goes to the log, the caller gets the status and a fixed word.
fn refused(status: u16, outcome: &'static str, reason: &str) -> Value {
    tracing::warn!(
        event = "slack-interaction",
        outcome,
        status,
        reason,
        "request refused"
    );
    let body = match status {
        401 => "invalid request signature",
        405 => "method not allowed",
        _ => "bad request",
    };
    response(status, body)
}

/// JSON log lines, as every lockreaper function writes them.
pub fn init_logging() {
    lockreaper_aws::logging::init_json_logging();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn config_reads_and_names_every_bad_variable() {
        let config = Config::from_env(vars(&[
            (
                "SLACK_SIGNING_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:slack-signing-AbCdEf",
            ),
            (
                "SLACK_ATTESTATION_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:slack-attest-AbCdEf",
            ),
            (
                "APPROVAL_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:111122223333:lockreaper-approvals",
            ),
        ]))
        .unwrap();
        assert_eq!(
            config.approval_topic_arn,
            "arn:aws:sns:eu-west-1:111122223333:lockreaper-approvals"
        );
        assert_eq!(config.bot_token_secret_arn, None);
        assert_eq!(config.api_base_url, "https://slack.com");
        let err = Config::from_env(vars(&[
            ("APPROVAL_TOPIC_ARN", "approvals"),
            ("SLACK_BOT_TOKEN_SECRET_ARN", "xoxb-not-an-arn"),
            ("SLACK_API_BASE_URL", "slack.com"),
        ]))
        .unwrap_err()
        .to_string();
        for needle in [
            "SLACK_SIGNING_SECRET_ARN: is not set",
            "SLACK_ATTESTATION_SECRET_ARN: is not set",
            "APPROVAL_TOPIC_ARN: \"approvals\" is not the ARN of an SNS topic",
            "SLACK_BOT_TOKEN_SECRET_ARN",
            "SLACK_API_BASE_URL: \"slack.com\" is not an http(s) URL",
        ] {
            assert!(err.contains(needle), "{needle} missing: {err}");
        }
    }

    #[test]
    fn headers_match_case_insensitively_and_bodies_decode() {
        let request = json!({
            "headers": {"X-Slack-Signature": "v0=ab", "x-slack-request-timestamp": "1"},
            "body": "cGF5bG9hZD0lN0IlN0Q=",
            "isBase64Encoded": true,
        });
        assert_eq!(header(&request, SIGNATURE_HEADER), Some("v0=ab"));
        assert_eq!(header(&request, TIMESTAMP_HEADER), Some("1"));
        assert_eq!(header(&request, "x-other"), None);
        assert_eq!(body_bytes(&request).unwrap(), b"payload=%7B%7D");
        let bad = json!({"body": "%%%", "isBase64Encoded": true});
        assert!(body_bytes(&bad).unwrap_err().contains("base64"));
    }
}
