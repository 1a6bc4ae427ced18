//! The Slack Web API calls of the Slack app mode: `chat.postMessage` (an alert, a reminder, a result),
//! `chat.update` (the buttons replaced by who decided what) and `usergroups.users.list` (who is in
//! a user group the approver allow-list names).
//!
//! Calls go over the AWS SDK's own HTTP stack (`aws-smithy-http-client`: hyper 1 + rustls with
//! aws-lc, already in every function), so the Slack mode adds no second HTTP client or TLS stack.
//! Each call is `POST <base URL>/api/<method>`, `Authorization: Bearer <bot token>`, a JSON body
//! (a form body for a method that does not accept JSON); Slack answers HTTP 200 with `{"ok": true, …}` or `{"ok": false, "error": "<code>"}`
//! (docs.slack.dev/apis/web-api). The base URL is configurable (`https://slack.com` in production)
//! so that the whole path runs against a local stand-in (`lockreaper_testkit::slack_api`).

use std::time::Duration;

use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use aws_smithy_http_client::Connector;
use aws_smithy_runtime_api::client::http::HttpConnector;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::{json, Value};

/// Slack's Web API in production.
pub const SLACK_API_BASE_URL: &str = "https://slack.com";

/// The whole call, connect to last byte; Slack's methods answer in well under a second.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a Web API call failed. Never contains the bot token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackApiError {
    #[error("Slack {method}: the request could not be made: {problem}")]
    Transport { method: String, problem: String },
    #[error("Slack {method}: no answer within {} s", CALL_TIMEOUT.as_secs())]
    Timeout { method: String },
    #[error("Slack {method}: HTTP {status}")]
    Status { method: String, status: u16 },
    #[error("Slack {method}: the answer is not the Web API's JSON: {problem}")]
    BadAnswer { method: String, problem: String },
    /// `{"ok": false, "error": code}`: e.g. `invalid_auth`, `channel_not_found`,
    /// `message_not_found`.
    #[error("Slack {method} refused the call: {code}")]
    Refused { method: String, code: String },
}

impl SlackApiError {
    /// The Web API's error code, for a refused call.
    pub fn code(&self) -> Option<&str> {
        match self {
            SlackApiError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Where a posted message is: its channel and `ts` (what `chat.update` and `thread_ts` name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostedMessage {
    pub channel: String,
    pub ts: String,
}

/// A Slack Web API client for one bot token. `Debug` does not print the token.
pub struct SlackWebApi {
    connector: Connector,
    base_url: String,
    bot_token: String,
}

impl std::fmt::Debug for SlackWebApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackWebApi")
            .field("base_url", &self.base_url)
            .field("bot_token", &"redacted")
            .finish()
    }
}

impl SlackWebApi {
    /// A client calling `<base_url>/api/<method>` (e.g. [`SLACK_API_BASE_URL`]) as the bot.
    pub fn new(base_url: &str, bot_token: &str) -> SlackWebApi {
        SlackWebApi {
            connector: Connector::builder()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .build(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            bot_token: bot_token.trim().to_owned(),
        }
    }

    /// Posts `message` (`{"text", "blocks"}`, as `messages::slack::render` makes it) to `channel`,
    /// in the thread of `thread_ts` when given.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: &Value,
    ) -> Result<PostedMessage, SlackApiError> {
        let mut args = json!({
            "channel": channel,
            "text": message["text"],
            "blocks": message["blocks"],
            // Links in lock fields stay text.
            "unfurl_links": false,
            "unfurl_media": false,
        });
        if let Some(thread) = thread_ts {
            args["thread_ts"] = json!(thread);
        }
        let answer = self.call("chat.postMessage", &args).await?;
        posted("chat.postMessage", &answer)
    }

    /// Replaces the message at `channel`/`ts` with `text` and `blocks`.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &[Value],
    ) -> Result<PostedMessage, SlackApiError> {
        let args = json!({"channel": channel, "ts": ts, "text": text, "blocks": blocks});
        let answer = self.call("chat.update", &args).await?;
        posted("chat.update", &answer)
    }

    /// The members of user group `usergroup` (an `S…` ID), as user IDs: `usergroups.users.list`
    /// (docs.slack.dev/reference/methods/usergroups.users.list; bot scope `usergroups:read`).
    /// Slack documents its accepted content type as `application/x-www-form-urlencoded` only
    /// ("This method does not currently accept application/json"), so the arguments go as a
    /// form body; the answer is `{"ok": true, "users": ["U060R4BJ4", "W123A4BC5"]}`. A disabled
    /// group is not asked for (`include_disabled` left out), so its members count as none. Errors
    /// include `no_such_subteam`, `plan_upgrade_required` (no user groups on the free plan),
    /// `missing_scope`, `ratelimited` (Tier 2).
    pub async fn usergroup_members(&self, usergroup: &str) -> Result<Vec<String>, SlackApiError> {
        const METHOD: &str = "usergroups.users.list";
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("usergroup", usergroup)
            .finish();
        let answer = self
            .send(METHOD, form, "application/x-www-form-urlencoded")
            .await?;
        let bad = |problem: &str| SlackApiError::BadAnswer {
            method: METHOD.to_owned(),
            problem: problem.to_owned(),
        };
        answer["users"]
            .as_array()
            .ok_or_else(|| bad("no `users` array"))?
            .iter()
            .map(|user| {
                user.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("a `users` entry is not a string"))
            })
            .collect()
    }

    /// Calls Web API `method` with the JSON object `args`; the answer when `ok` is true.
    pub async fn call(&self, method: &str, args: &Value) -> Result<Value, SlackApiError> {
        self.send(method, args.to_string(), "application/json; charset=utf-8")
            .await
    }

    /// POSTs `body` of `content_type` to Web API `method`; the answer when `ok` is true.
    async fn send(
        &self,
        method: &str,
        body: String,
        content_type: &'static str,
    ) -> Result<Value, SlackApiError> {
        let transport = |problem: String| SlackApiError::Transport {
            method: method.to_owned(),
            problem,
        };
        let mut request = HttpRequest::new(SdkBody::from(body));
        request
            .set_method("POST")
            .map_err(|e| transport(e.to_string()))?;
        request
            .set_uri(format!("{}/api/{method}", self.base_url))
            .map_err(|e| transport(format!("bad base URL {:?}: {e}", self.base_url)))?;
        let headers = request.headers_mut();
        headers.insert("content-type", content_type);
        headers.insert("authorization", format!("Bearer {}", self.bot_token));
        let call = async {
            let response = self
                .connector
                .call(request)
                .await
                .map_err(|e| transport(format!("{e:?}")))?;
            let status = response.status().as_u16();
            let body = ByteStream::new(response.into_body())
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .into_bytes();
            Ok::<_, SlackApiError>((status, body))
        };
        let (status, body) = tokio::time::timeout(CALL_TIMEOUT, call)
            .await
            .map_err(|_| SlackApiError::Timeout {
                method: method.to_owned(),
            })??;
        if status != 200 {
            return Err(SlackApiError::Status {
                method: method.to_owned(),
                status,
            });
        }
        let answer: Value =
            serde_json::from_slice(&body).map_err(|e| SlackApiError::BadAnswer {
                method: method.to_owned(),
                problem: e.to_string(),
            })?;
        match answer["ok"].as_bool() {
            Some(true) => Ok(answer),
            Some(false) => Err(SlackApiError::Refused {
                method: method.to_owned(),
                code: answer["error"].as_str().unwrap_or("unknown").to_owned(),
            }),
            None => Err(SlackApiError::BadAnswer {
                method: method.to_owned(),
                problem: "no boolean `ok`".into(),
            }),
        }
    }
}

fn posted(method: &str, answer: &Value) -> Result<PostedMessage, SlackApiError> {
    match (answer["channel"].as_str(), answer["ts"].as_str()) {
        (Some(channel), Some(ts)) => Ok(PostedMessage {
            channel: channel.to_owned(),
            ts: ts.to_owned(),
        }),
        _ => Err(SlackApiError::BadAnswer {
            method: method.to_owned(),
            problem: "no `channel` and `ts`".into(),
        }),
    }
}
