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
//! 4. when `APPROVER_ALLOW_LIST` (the same value as force-unlock's) names Slack user groups
//!    (`slack:S…`, `slack:<team>/S…`), the presser's membership of each is looked up now, at
//!    press time, with `usergroups.users.list`, all groups at once and each bounded by
//!    [`GROUP_LOOKUP_TIMEOUT`]. A lookup that fails or times out is "cannot tell": that group is
//!    attested as unchecked, never as membership, and the press still goes on (force-unlock then
//!    refuses it unless another entry allows the presser, and says why);
//! 5. when the bot token is configured (`SLACK_BOT_TOKEN_SECRET_ARN`), the pressed message's
//!    buttons are replaced at once with who pressed what ([`pressed_line`], `chat.update` at
//!    `SLACK_API_BASE_URL`), so nobody presses twice; a failure there is logged and the press
//!    still goes on. This comes *before* the publish: once the approval is published,
//!    force-unlock and the notifier may replace the buttons with the outcome ("Approved by … —
//!    unlocked"), and a "pressed" update landing after that would overwrite it;
//! 6. the press becomes an approval, denial or snooze attested with the presser's Slack identity
//!    and group membership ([`ButtonPress::approval_message`], signed with the key in
//!    `SLACK_ATTESTATION_SECRET_ARN` that only this function and force-unlock can read) and is
//!    published to the approvals topic; **200**. force-unlock does the rest, as for every approval
//!    (single use, the final check, the allow-list, the audit). If the publish fails, the
//!    buttons are put back (the blocks Slack sent with the press) and Slack is answered **500**,
//!    so the person can press again.
//!
//! Nothing here touches a lock or the ledger, so the answer is the group lookups (concurrent,
//! [`GROUP_LOOKUP_TIMEOUT`]), one SNS publish and at most one Slack update (bounded by
//! [`UPDATE_TIMEOUT`] and by what is left of [`RESPONSE_BUDGET`]) away: within Slack's three
//! seconds. A request replayed within the five minutes publishes the same approval
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
use lockreaper_core::approval::{
    names_slack_groups, slack_groups_to_check, SigningKey, SlackGroups,
};
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
    /// `APPROVER_ALLOW_LIST` (optional; the same value as force-unlock's): only its Slack user
    /// group entries matter here, as the groups whose membership is looked up at press time.
    pub approver_allow_list: Vec<String>,
}

impl Config {
    pub const SLACK_SIGNING_SECRET_ARN: &'static str = "SLACK_SIGNING_SECRET_ARN";
    pub const SLACK_ATTESTATION_SECRET_ARN: &'static str = "SLACK_ATTESTATION_SECRET_ARN";
    pub const APPROVAL_TOPIC_ARN: &'static str = "APPROVAL_TOPIC_ARN";
    pub const SLACK_BOT_TOKEN_SECRET_ARN: &'static str = "SLACK_BOT_TOKEN_SECRET_ARN";
    pub const SLACK_API_BASE_URL: &'static str = "SLACK_API_BASE_URL";
    pub const APPROVER_ALLOW_LIST: &'static str = "APPROVER_ALLOW_LIST";

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
        let approver_allow_list = env.list(Self::APPROVER_ALLOW_LIST);
        if names_slack_groups(&approver_allow_list) && bot_token_secret_arn.is_none() {
            env.error(ConfigError::new(
                Self::APPROVER_ALLOW_LIST,
                format!(
                    "names Slack user groups, whose members are looked up with the bot token \
                     (scope `usergroups:read`); set {} too",
                    Self::SLACK_BOT_TOKEN_SECRET_ARN
                ),
            ));
        }
        env.finish(Config {
            approver_allow_list,
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
    /// Replaces the buttons of a pressed message and looks up user groups, when a bot token is
    /// configured.
    slack: Option<SlackWebApi>,
    allow_list: Vec<String>,
}

/// The longest the button replacement may take.
pub const UPDATE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// The longest one user group's member lookup may take before its membership is "cannot tell".
/// The lookups run concurrently, so this is also the most they add to an answer.
pub const GROUP_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// Slack expects the HTTP 200 acknowledging an interaction within 3 seconds (the endpoint's
/// existing contract, module docs; docs.slack.dev/interactivity/handling-user-interaction). The
/// button replacement only uses what is left of this, keeping a margin for the function URL and
/// the network.
pub const RESPONSE_BUDGET: std::time::Duration = std::time::Duration::from_millis(2500);

/// What the button replacement leaves of [`RESPONSE_BUDGET`] for the publish after it (one SNS
/// call, tens of milliseconds when SNS is well).
pub const PUBLISH_RESERVE: std::time::Duration = std::time::Duration::from_millis(500);

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
            allow_list: config.approver_allow_list.clone(),
        }
    }

    /// Replaces the buttons of pressed messages, and looks up user groups, through `slack`.
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
        let started = std::time::Instant::now();
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
        let groups = self.group_membership(&press).await;
        self.publish(&press, groups.as_ref(), now, started).await
    }

    /// The presser's membership of the allow-list's user groups (for their workspace), looked up
    /// now; `None` when the allow-list names none. A lookup that fails or takes longer than
    /// [`GROUP_LOOKUP_TIMEOUT`] leaves its group unchecked.
    async fn group_membership(&self, press: &ButtonPress) -> Option<SlackGroups> {
        let wanted = slack_groups_to_check(&self.allow_list, &press.identity.team_id);
        if wanted.is_empty() {
            return None;
        }
        let mut groups = SlackGroups::default();
        let Some(slack) = &self.slack else {
            // Config refuses a group allow-list without a bot token; should it get here anyway,
            // nothing can be told.
            groups.unchecked = wanted;
            return Some(groups);
        };
        let lookups = wanted.iter().map(|group| async move {
            let members =
                tokio::time::timeout(GROUP_LOOKUP_TIMEOUT, slack.usergroup_members(group)).await;
            (group, members)
        });
        let user = press.identity.user_id();
        for (group, members) in futures::future::join_all(lookups).await {
            let problem = match members {
                Ok(Ok(members)) => {
                    if members.iter().any(|m| m == user) {
                        groups.member_of.push(group.clone());
                    }
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!(
                    "usergroups.users.list took longer than {} ms",
                    GROUP_LOOKUP_TIMEOUT.as_millis()
                ),
            };
            tracing::warn!(
                event = "slack-interaction",
                outcome = "group-not-checked",
                usergroup = %group,
                approver = %press.identity.approver_name(),
                reason = %problem,
                "cannot tell whether the presser is in this user group; it is not counted"
            );
            groups.unchecked.push(group.clone());
        }
        Some(groups)
    }

    async fn publish(
        &self,
        press: &ButtonPress,
        groups: Option<&SlackGroups>,
        now: DateTime<Utc>,
        started: std::time::Instant,
    ) -> Value {
        let message = press.approval_message(&self.attestation_key, groups, now);
        let approver = press.identity.approver_name();
        let left = RESPONSE_BUDGET
            .saturating_sub(started.elapsed())
            .saturating_sub(PUBLISH_RESERVE);
        let line = pressed_line(press.action, &press.identity, now);
        let replaced = self
            .update_message(
                press,
                &replace_buttons(&press.blocks, &line),
                left.min(UPDATE_TIMEOUT),
                "the press goes on, but its message still shows the buttons",
            )
            .await;
        match self.approvals.publish_text(&message).await {
            Ok(message_id) => {
                tracing::info!(
                    event = "slack-interaction",
                    outcome = "published",
                    action = press.action.name(),
                    approver = %approver,
                    sns_message_id = %message_id,
                    groups = ?groups.map(|g| &g.member_of),
                    groups_unchecked = ?groups.map(|g| &g.unchecked),
                    "button press verified and published to the approvals topic"
                );
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
                if replaced {
                    // Nothing was published, so the buttons come back for the next press.
                    let left = RESPONSE_BUDGET
                        .saturating_sub(started.elapsed())
                        .max(RESTORE_TIMEOUT_FLOOR);
                    self.update_message(
                        press,
                        &press.blocks,
                        left.min(UPDATE_TIMEOUT),
                        "the press was not recorded and its message still shows who pressed; the CLI command in the alert still works",
                    )
                    .await;
                }
                response(
                    500,
                    "lockreaper could not record this press; please press again",
                )
            }
        }
    }
}

/// However late a failed publish is noticed, putting the buttons back gets at least this long.
const RESTORE_TIMEOUT_FLOOR: std::time::Duration = std::time::Duration::from_millis(300);

impl SlackInteractions {
    /// Shows `blocks` in place of the pressed message, when a bot token is configured and the
    /// press came from a message; `true` when Slack took it. Failures are logged (`if_failed`
    /// says what that leaves), never answered.
    async fn update_message(
        &self,
        press: &ButtonPress,
        blocks: &[Value],
        timeout: std::time::Duration,
        if_failed: &str,
    ) -> bool {
        let (Some(slack), Some(channel), Some(ts)) =
            (&self.slack, &press.channel_id, &press.message_ts)
        else {
            return false;
        };
        if press.blocks.is_empty() {
            return false;
        }
        let text = press.text.as_deref().unwrap_or("lockreaper");
        match tokio::time::timeout(timeout, slack.update(channel, ts, text, blocks)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(
                    event = "slack-interaction",
                    outcome = "message-not-updated",
                    reason = %e,
                    "{if_failed}"
                );
                false
            }
            Err(_) => {
                tracing::warn!(
                    event = "slack-interaction",
                    outcome = "message-not-updated",
                    reason = "chat.update took longer than the time left to answer Slack",
                    "{if_failed}"
                );
                false
            }
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
    fn a_user_group_allow_list_needs_the_bot_token() {
        let base = [
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
        ];
        let mut with_groups = base.to_vec();
        with_groups.push((
            "APPROVER_ALLOW_LIST",
            "ops@example.com, slack:U0456EFGH, slack:T0123ABCD/S0OPS0001",
        ));
        let err = Config::from_env(vars(&with_groups))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("APPROVER_ALLOW_LIST: names Slack user groups")
                && err.contains("SLACK_BOT_TOKEN_SECRET_ARN"),
            "{err}"
        );
        with_groups.push((
            "SLACK_BOT_TOKEN_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:slack-bot-AbCdEf",
        ));
        let config = Config::from_env(vars(&with_groups)).unwrap();
        assert_eq!(
            config.approver_allow_list,
            [
                "ops@example.com",
                "slack:U0456EFGH",
                "slack:T0123ABCD/S0OPS0001"
            ]
        );
        // Users only: nothing to look up, no token needed.
        let mut users_only = base.to_vec();
        users_only.push(("APPROVER_ALLOW_LIST", "slack:U0456EFGH"));
        assert!(Config::from_env(vars(&users_only)).is_ok());
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
