//! slack-notifier: the Slack app mode's poster. Subscribed to the alert topic (SNS protocol
//! `lambda`), it posts every alert, reminder, "resolved" and unlock result to one Slack channel,
//! threaded per lock, and replaces an offer's buttons with the result once force-unlock decided.
//!
//! What it posts is what the reaper and force-unlock published, never a second wording: the
//! envelope's `lambda` form is the chat notification with a `slack` member
//! (`lockreaper_core::messages::slack::member`): `text` and `blocks`, the lock's `thread`, the
//! `approvalToken` its buttons carry, and `closes` (`{token?, line}`) when it closes an offer.
//!
//! For each SNS record, in order:
//!
//! 1. the `slack` member is read; a record without one (or not JSON) is logged with what is wrong
//!    and skipped, never failing the others;
//! 2. unless the ledger says this SNS `MessageId` was already posted, the message is posted: in
//!    its lock's thread (`thread_ts`) when the thread was started, else top level; its `ts` is
//!    recorded against the `MessageId` (conditional put);
//! 3. the first message of a thread starts it (conditional put of its `ts`);
//! 4. an offer (`approvalToken`) is remembered by a digest of its token, with its channel, `ts`
//!    and blocks (the token withheld: the ledger never holds a usable approval);
//! 5. a message that closes an offer (`closes`: a final result for a token, or the lock released
//!    on its own, which closes the thread's open offer) replaces the offer's buttons with the
//!    line (`chat.update` with `replace_buttons`), once: the offer is then marked closed
//!    (conditional update).
//!
//! **At least once.** SNS delivers to Lambda at least once, and Lambda retries a failed
//! asynchronous invocation. Transient failures (Slack HTTP 429 / 5xx, `ratelimited` and Slack's
//! other retryable codes, timeouts, DynamoDB throttling) fail the invocation so that Lambda's retry
//! re-delivers it; the steps above are idempotent by the ledger, so a retry posts nothing twice
//! that was recorded as posted. The one window left: Slack accepted a post and recording its `ts`
//! failed (or the function died in between); that message is posted again on the retry.
//! Permanent refusals (`invalid_auth`, `channel_not_found`, `not_in_channel`, …) are logged with
//! what to fix and not retried: a retry cannot succeed.

use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};
use lockreaper_aws::slack::{SlackApiError, SlackWebApi, SLACK_API_BASE_URL};
use lockreaper_aws::slack_threads::SlackThreads;
use lockreaper_aws::{Aws, AwsError, AwsErrorKind};
use lockreaper_core::config::{check_arn, ConfigError, ConfigErrors, Env};
use lockreaper_core::messages::slack::{offer_key, replace_buttons, withhold_token};
use lockreaper_core::messages::SLACK_MEMBER;
use serde_json::{json, Value};

/// Everything the notifier reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `SLACK_BOT_TOKEN_SECRET_ARN`: the secret holding the Slack app's bot token (`xoxb-…`).
    pub bot_token_secret_arn: String,
    /// `SLACK_CHANNEL_ID`: the channel every message goes to (`C0123ABCDEF`); the bot must be a
    /// member.
    pub channel_id: String,
    /// `SLACK_API_BASE_URL`: where the Web API is (`https://slack.com` unless testing locally).
    pub api_base_url: String,
    /// `LEDGER_TABLE`: lockreaper's own table (threads, offers, deliveries under `slack#…`).
    pub ledger_table: String,
}

impl Config {
    pub const SLACK_BOT_TOKEN_SECRET_ARN: &'static str = "SLACK_BOT_TOKEN_SECRET_ARN";
    pub const SLACK_CHANNEL_ID: &'static str = "SLACK_CHANNEL_ID";
    pub const SLACK_API_BASE_URL: &'static str = "SLACK_API_BASE_URL";
    pub const LEDGER_TABLE: &'static str = lockreaper_core::config::LEDGER_TABLE;

    /// Parses the variables, reporting every problem at once.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let mut env = Env::new(vars);
        let bot_token_secret_arn = env.required(
            Self::SLACK_BOT_TOKEN_SECRET_ARN,
            "the ARN of the Secrets Manager secret holding the Slack app's bot token (xoxb-…)",
        );
        if !bot_token_secret_arn.is_empty() {
            if let Err(problem) = check_arn(
                &bot_token_secret_arn,
                "secretsmanager",
                "a Secrets Manager secret",
            ) {
                env.error(ConfigError::new(Self::SLACK_BOT_TOKEN_SECRET_ARN, problem));
            }
        }
        let channel_id = env.required(
            Self::SLACK_CHANNEL_ID,
            "the Slack channel's ID, e.g. C0123ABCDEF (channel details, at the bottom)",
        );
        if !channel_id.is_empty() && !is_channel_id(&channel_id) {
            env.error(ConfigError::new(
                Self::SLACK_CHANNEL_ID,
                format!(
                    "{channel_id:?} is not a Slack channel ID (C, G or D followed by A-Z and 0-9, e.g. C0123ABCDEF); a channel's name does not work here"
                ),
            ));
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
        let ledger_table = env.required_ledger_table();
        env.finish(Config {
            bot_token_secret_arn,
            channel_id,
            api_base_url,
            ledger_table,
        })
    }
}

/// A conversation ID as Slack gives them: `C…` (channel), `G…` (private channel or group), `D…`
/// (direct message), then upper-case letters and digits.
fn is_channel_id(id: &str) -> bool {
    (2..=32).contains(&id.len())
        && matches!(id.as_bytes()[0], b'C' | b'G' | b'D')
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The notifier, with its clients; built once per cold start.
pub struct SlackNotifier {
    slack: SlackWebApi,
    channel: String,
    threads: SlackThreads,
}

/// What happened to one SNS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Posted (as `ts`), and whatever else the message asked for done.
    Posted { ts: String },
    /// A retried delivery: already posted as `ts`; the remaining steps were (re)done.
    AlreadyPosted { ts: String },
    /// Skipped for good: a malformed record, or Slack refused the call for a reason a retry
    /// cannot change.
    Skipped { reason: String },
    /// A transient failure: the invocation fails so that Lambda retries it.
    Retry { reason: String },
}

/// Why one record could not be handled.
enum Failure {
    /// Retrying cannot help: log and skip.
    Permanent(String),
    /// Retrying may: fail the invocation.
    Transient(String),
}

impl From<SlackApiError> for Failure {
    fn from(e: SlackApiError) -> Failure {
        if slack_transient(&e) {
            Failure::Transient(e.to_string())
        } else {
            Failure::Permanent(match e.code() {
                Some("invalid_auth" | "not_authed" | "token_revoked" | "account_inactive") => format!(
                    "{e}: the bot token in SLACK_BOT_TOKEN_SECRET_ARN is not valid for this workspace; store the app's current Bot User OAuth Token (xoxb-…)"
                ),
                Some("channel_not_found") => format!(
                    "{e}: SLACK_CHANNEL_ID does not name a channel the app can see; use the channel's ID (C…), and invite the app to a private channel"
                ),
                Some("not_in_channel") => format!("{e}: invite the app to the channel (/invite @app)"),
                Some("missing_scope") => format!("{e}: the app needs the chat:write scope"),
                _ => e.to_string(),
            })
        }
    }
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Failure {
        match e.kind {
            AwsErrorKind::Transient => Failure::Transient(e.to_string()),
            _ => Failure::Permanent(e.to_string()),
        }
    }
}

/// Whether a failed Web API call may succeed when retried: no answer (transport, timeout), HTTP
/// 429 (rate limited: "HTTP 429 Too Many Requests … with a Retry-After header",
/// docs.slack.dev/apis/web-api/rate-limits) or a 5xx, and the error codes Slack documents as
/// its own trouble or a rate limit (`ratelimited`, `internal_error`, `fatal_error`,
/// `service_unavailable`, `request_timeout`: docs.slack.dev/reference/methods/chat.postMessage,
/// "Errors").
pub fn slack_transient(e: &SlackApiError) -> bool {
    match e {
        SlackApiError::Transport { .. } | SlackApiError::Timeout { .. } => true,
        SlackApiError::Status { status, .. } => *status == 429 || *status >= 500,
        SlackApiError::Refused { code, .. } => matches!(
            code.as_str(),
            "ratelimited"
                | "internal_error"
                | "fatal_error"
                | "service_unavailable"
                | "request_timeout"
        ),
        SlackApiError::BadAnswer { .. } => false,
    }
}

/// The `slack` member of one record, checked.
struct SlackForm {
    text: String,
    blocks: Vec<Value>,
    thread: Option<String>,
    approval_token: Option<String>,
    /// `(token, line)`.
    closes: Option<(Option<String>, String)>,
    /// The full member, as `post_message` takes it.
    member: Value,
}

/// Reads the `slack` member of an SNS `Message` (the envelope's `lambda` form).
fn slack_form(message: &str) -> Result<SlackForm, String> {
    let form: Value = serde_json::from_str(message).map_err(|e| {
        format!(
            "the SNS message is not JSON ({e}); expected lockreaper's alert-topic `lambda` form"
        )
    })?;
    let member = form.get(SLACK_MEMBER).ok_or(
        "the SNS message has no `slack` member: not published by this lockreaper version's reaper or force-unlock",
    )?;
    let text = member["text"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("`slack.text` is missing or empty")?
        .to_owned();
    let blocks = member["blocks"]
        .as_array()
        .ok_or("`slack.blocks` is not an array")?
        .clone();
    let string = |name: &str| -> Result<Option<String>, String> {
        match member.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(format!("`slack.{name}` is not a non-empty string")),
        }
    };
    let closes = match member.get("closes") {
        None | Some(Value::Null) => None,
        Some(closes) => {
            let line = closes["line"]
                .as_str()
                .filter(|l| !l.is_empty())
                .ok_or("`slack.closes.line` is missing or empty")?
                .to_owned();
            let token = match closes.get("token") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                Some(_) => return Err("`slack.closes.token` is not a non-empty string".into()),
            };
            Some((token, line))
        }
    };
    Ok(SlackForm {
        text,
        blocks,
        thread: string("thread")?,
        approval_token: string("approvalToken")?,
        closes,
        member: member.clone(),
    })
}

/// The offered approval's expiry (`slack.approvalExpiresAt`); else a day from `now` (the ledger
/// item only needs to outlive the results).
fn offer_expiry(member: &Value, now: DateTime<Utc>) -> DateTime<Utc> {
    member["approvalExpiresAt"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(now + chrono::Duration::days(1), |t| t.with_timezone(&Utc))
}

impl SlackNotifier {
    pub fn new(aws: &Aws, config: &Config, bot_token: &str) -> SlackNotifier {
        SlackNotifier {
            slack: SlackWebApi::new(&config.api_base_url, bot_token),
            channel: config.channel_id.clone(),
            threads: SlackThreads::new(aws.dynamodb(), &config.ledger_table),
        }
    }

    /// Loads the bot token from Secrets Manager and builds the notifier.
    pub async fn from_config(aws: &Aws, config: &Config) -> Result<SlackNotifier, Error> {
        let token =
            lockreaper_aws::load_slack_bot_token(&aws.secrets(), &config.bot_token_secret_arn)
                .await?;
        Ok(SlackNotifier::new(aws, config, &token))
    }

    /// The Lambda entry point: the payload as plain JSON, so that no shape of event makes the
    /// runtime fail (and retry) the invocation.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let outcomes = self.handle_event(&event.payload, Utc::now()).await;
        report(&outcomes)
    }

    /// Handles every record of an SNS event at `now`; one outcome per record, in order.
    pub async fn handle_event(&self, payload: &Value, now: DateTime<Utc>) -> Vec<RecordOutcome> {
        let Some(records) = payload.get("Records").and_then(Value::as_array) else {
            tracing::warn!(
                event = "slack-notify",
                outcome = "not-an-sns-event",
                reason = "the payload has no `Records` array; expected an SNS event",
                "ignored an invocation that is not an SNS event"
            );
            return Vec::new();
        };
        let mut outcomes = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let sns = &record["Sns"];
            let (Some(message_id), Some(message)) = (
                sns["MessageId"].as_str().filter(|m| !m.is_empty()),
                sns["Message"].as_str(),
            ) else {
                let reason = "not an SNS notification: no `Sns.MessageId` or `Sns.Message`";
                tracing::error!(
                    event = "slack-notify",
                    outcome = "skipped",
                    record = index,
                    reason,
                    "record skipped"
                );
                outcomes.push(RecordOutcome::Skipped {
                    reason: reason.to_owned(),
                });
                continue;
            };
            let outcome = match self.process(message_id, message, now).await {
                Ok(outcome) => outcome,
                Err(Failure::Permanent(reason)) => {
                    tracing::error!(
                        event = "slack-notify",
                        outcome = "skipped",
                        record = index,
                        sns_message_id = %message_id,
                        reason = %reason,
                        "record skipped: retrying cannot help"
                    );
                    RecordOutcome::Skipped { reason }
                }
                Err(Failure::Transient(reason)) => {
                    tracing::warn!(
                        event = "slack-notify",
                        outcome = "retry",
                        record = index,
                        sns_message_id = %message_id,
                        reason = %reason,
                        "transient failure; the invocation fails so that Lambda retries it"
                    );
                    RecordOutcome::Retry { reason }
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    async fn process(
        &self,
        message_id: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<RecordOutcome, Failure> {
        let form = slack_form(message).map_err(Failure::Permanent)?;
        let thread = match &form.thread {
            Some(key) => self.threads.thread(key).await?,
            None => None,
        };
        let (ts, outcome) = match self.threads.delivery(message_id).await? {
            Some(ts) => {
                tracing::info!(
                    event = "slack-notify",
                    outcome = "already-posted",
                    sns_message_id = %message_id,
                    ts = %ts,
                    "a retried delivery: this message was posted already, not posting it again"
                );
                (ts.clone(), RecordOutcome::AlreadyPosted { ts })
            }
            None => {
                let posted = self
                    .slack
                    .post_message(
                        &self.channel,
                        thread.as_ref().map(|t| t.ts.as_str()),
                        &form.member,
                    )
                    .await?;
                self.threads
                    .record_delivery(message_id, &posted.ts, now)
                    .await?;
                tracing::info!(
                    event = "slack-notify",
                    outcome = "posted",
                    sns_message_id = %message_id,
                    ts = %posted.ts,
                    thread = form.thread.as_deref().unwrap_or("-"),
                    threaded = thread.is_some(),
                    "posted to Slack"
                );
                (posted.ts.clone(), RecordOutcome::Posted { ts: posted.ts })
            }
        };
        if let (Some(key), None) = (&form.thread, &thread) {
            let started = self
                .threads
                .start_thread(key, &self.channel, &ts, now)
                .await?;
            if started.ts != ts {
                tracing::info!(event = "slack-notify", thread = %key, ts = %ts, thread_ts = %started.ts, "another message started this lock's thread first; this one stays top level");
            }
        }
        if let Some(token) = &form.approval_token {
            self.threads
                .record_offer(
                    &offer_key(token),
                    form.thread.as_deref(),
                    &self.channel,
                    &ts,
                    &form.text,
                    &withhold_token(&form.blocks, token),
                    offer_expiry(&form.member, now),
                )
                .await?;
        }
        if let Some((token, line)) = &form.closes {
            self.close_offer(token.as_deref(), form.thread.as_deref(), line, now)
                .await?;
        }
        Ok(outcome)
    }

    /// Replaces the buttons of the offer of `token` (or, without one, the thread's open offer)
    /// with `line`, unless it was closed already.
    async fn close_offer(
        &self,
        token: Option<&str>,
        thread: Option<&str>,
        line: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Failure> {
        let key = match (token, thread) {
            (Some(token), _) => Some(offer_key(token)),
            (None, Some(thread)) => self
                .threads
                .thread(thread)
                .await?
                .and_then(|t| t.open_offer),
            (None, None) => None,
        };
        let Some(key) = key else {
            return Ok(());
        };
        let Some(offer) = self.threads.offer(&key).await? else {
            tracing::info!(event = "slack-notify", offer = %key, "no Slack message recorded for this offer (posted before the Slack app mode, or never posted); nothing to replace");
            return Ok(());
        };
        if offer.closed_at.is_some() {
            return Ok(());
        }
        let blocks = replace_buttons(&offer.blocks, line);
        self.slack
            .update(&offer.channel, &offer.ts, &offer.text, &blocks)
            .await?;
        self.threads.close_offer(&key, &blocks, now).await?;
        tracing::info!(event = "slack-notify", outcome = "offer-closed", offer = %key, ts = %offer.ts, "the offer's buttons were replaced by its result");
        Ok(())
    }
}

/// The invocation's answer: a summary, or an error (so that Lambda retries) when any record
/// failed transiently. Records already posted are not posted again on the retry.
pub fn report(outcomes: &[RecordOutcome]) -> Result<Value, Error> {
    let retry: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match o {
            RecordOutcome::Retry { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    if !retry.is_empty() {
        return Err(format!(
            "transient failure posting to Slack (retrying is safe: what was posted is not posted again): {}",
            retry.join("; ")
        )
        .into());
    }
    let count = |f: fn(&RecordOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    Ok(json!({
        "records": outcomes.len(),
        "posted": count(|o| matches!(o, RecordOutcome::Posted { .. })),
        "alreadyPosted": count(|o| matches!(o, RecordOutcome::AlreadyPosted { .. })),
        "skipped": outcomes.iter().filter_map(|o| match o {
            RecordOutcome::Skipped { reason } => Some(reason.as_str()),
            _ => None,
        }).collect::<Vec<_>>(),
    }))
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
                "SLACK_BOT_TOKEN_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:slack-bot-AbCdEf",
            ),
            ("SLACK_CHANNEL_ID", "C0123ABCDEF"),
            ("LEDGER_TABLE", "lockreaper-ledger"),
        ]))
        .unwrap();
        assert_eq!(config.channel_id, "C0123ABCDEF");
        assert_eq!(config.api_base_url, "https://slack.com");
        assert_eq!(config.ledger_table, "lockreaper-ledger");
        let err = Config::from_env(vars(&[
            ("SLACK_BOT_TOKEN_SECRET_ARN", "xoxb-not-an-arn"),
            ("SLACK_CHANNEL_ID", "#locks"),
            ("SLACK_API_BASE_URL", "slack.com"),
        ]))
        .unwrap_err()
        .to_string();
        for needle in [
            "SLACK_BOT_TOKEN_SECRET_ARN",
            "SLACK_CHANNEL_ID: \"#locks\" is not a Slack channel ID",
            "SLACK_API_BASE_URL: \"slack.com\" is not an http(s) URL",
            "LEDGER_TABLE: is not set",
        ] {
            assert!(err.contains(needle), "{needle} missing: {err}");
        }
        let err = Config::from_env(vars(&[])).unwrap_err().to_string();
        assert!(err.contains("SLACK_CHANNEL_ID: is not set"), "{err}");
        assert!(
            err.contains("SLACK_BOT_TOKEN_SECRET_ARN: is not set"),
            "{err}"
        );
    }

    #[test]
    fn transient_slack_failures_are_told_from_refusals() {
        let m = || "chat.postMessage".to_owned();
        for transient in [
            SlackApiError::Status {
                method: m(),
                status: 429,
            },
            SlackApiError::Status {
                method: m(),
                status: 503,
            },
            SlackApiError::Timeout { method: m() },
            SlackApiError::Refused {
                method: m(),
                code: "ratelimited".into(),
            },
        ] {
            assert!(slack_transient(&transient), "{transient}");
        }
        for refused in ["invalid_auth", "channel_not_found", "invalid_blocks"] {
            let e = SlackApiError::Refused {
                method: m(),
                code: refused.into(),
            };
            assert!(!slack_transient(&e), "{refused}");
        }
        assert!(!slack_transient(&SlackApiError::Status {
            method: m(),
            status: 404
        }));
    }

    #[test]
    fn malformed_slack_members_are_named() {
        for (message, needle) in [
            ("not json", "is not JSON"),
            ("{\"version\":\"1.0\"}", "has no `slack` member"),
            ("{\"slack\":{\"blocks\":[]}}", "`slack.text`"),
            ("{\"slack\":{\"text\":\"t\"}}", "`slack.blocks`"),
            (
                "{\"slack\":{\"text\":\"t\",\"blocks\":[],\"thread\":5}}",
                "`slack.thread`",
            ),
            (
                "{\"slack\":{\"text\":\"t\",\"blocks\":[],\"closes\":{}}}",
                "`slack.closes.line`",
            ),
        ] {
            let Err(problem) = slack_form(message) else {
                panic!("{message} was accepted");
            };
            assert!(problem.contains(needle), "{message}: {problem}");
        }
        let ok = slack_form(
            "{\"slack\":{\"text\":\"t\",\"blocks\":[],\"thread\":\"ab\",\"closes\":{\"line\":\"l\"}}}",
        )
        .map_err(|e| e.to_string());
        let ok = ok.as_ref().map(|f| (f.thread.clone(), f.closes.clone()));
        assert_eq!(
            ok,
            Ok((Some("ab".to_owned()), Some((None, "l".to_owned()))))
        );
    }
}
