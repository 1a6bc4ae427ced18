//! The interactivity endpoint against the project's emulator, through the library entry point the
//! Lambda handler calls (`SlackInteractions::from_config` with both secrets read from the
//! emulator's Secrets Manager, then `handle_request` with function URL events): requests signed
//! exactly as Slack documents (`v0:<timestamp>:<raw body>`, HMAC-SHA256 with the signing secret,
//! `X-Slack-Signature: v0=<hex>`), and forged, stale, replayed and malformed ones. What reaches the
//! approvals topic is read from an SQS queue subscribed to it, and parsed and verified as
//! force-unlock does.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lockreaper_core::approval::{ApprovalAction, ApprovalMessage, ApprovalSource, SigningKey};
use lockreaper_core::slack::SlackSigningSecret;
use lockreaper_testkit::notifications::TopicWithQueue;
use lockreaper_testkit::slack_api::SlackApi;
use lockreaper_testkit::TestEnv;
use serde_json::{json, Value};
use slack_interactions::{Config, SlackInteractions};

const TOKEN: &str = "lr1.BwcHBwcHBwcHBwcHZ8cZD7wLM_p-NWO4m3eb7Ci-0NYCA33vbggFrQ";

struct World {
    env: TestEnv,
    approvals: TopicWithQueue,
    endpoint: SlackInteractions,
    signing_secret: SlackSigningSecret,
    attestation_key: SigningKey,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

impl World {
    async fn new(test: &str) -> World {
        World::with_slack(test, None).await
    }

    /// With `slack` = (the stand-in's base URL, the bot token): the endpoint replaces buttons.
    async fn with_slack(test: &str, slack: Option<(&str, &str)>) -> World {
        let env = TestEnv::new(test).await;
        let approvals = env.topic_with_queue("approvals").await;
        // A signing secret as Slack shows one (32 hex characters), and a generated key.
        let signing = random_hex()[..32].to_owned();
        let attestation = random_hex();
        let config = Config {
            signing_secret_arn: env.create_secret("slack-signing", &signing).await,
            attestation_secret_arn: env.create_secret("slack-attest", &attestation).await,
            approval_topic_arn: approvals.topic_arn.clone(),
            bot_token_secret_arn: match slack {
                Some((_, token)) => Some(env.create_secret("slack-bot", token).await),
                None => None,
            },
            api_base_url: slack.map_or("https://slack.com", |(url, _)| url).to_owned(),
        };
        let endpoint = SlackInteractions::from_config(&env.aws, &config)
            .await
            .unwrap();
        World {
            env,
            approvals,
            endpoint,
            signing_secret: SlackSigningSecret::from_secret(&signing).unwrap(),
            attestation_key: SigningKey::from_secret(&attestation).unwrap(),
        }
    }

    /// Everything published to the approvals topic so far (waits up to `wait` for the first).
    async fn published(&self, wait: Duration) -> Vec<String> {
        self.env
            .drain(&self.approvals.queue_url, wait)
            .await
            .into_iter()
            .map(|d| d.message)
            .collect()
    }
}

/// A `block_actions` payload in the documented shape
/// (docs.slack.dev/reference/interaction-payloads/block_actions-payload).
fn block_actions(action_id: &str, user: &str) -> Value {
    json!({
        "type": "block_actions",
        "user": {"id": user, "username": "ana", "name": "ana", "team_id": "T0123ABCD"},
        "api_app_id": "A0APP0001",
        "container": {"type": "message", "message_ts": "1741086927.000200", "channel_id": "C0LOCKS01", "is_ephemeral": false},
        "trigger_id": "1741086990.000001.abc",
        "team": {"id": "T0123ABCD", "domain": "acme"},
        "channel": {"id": "C0LOCKS01", "name": "locks"},
        "message": {"type": "message", "ts": "1741086927.000200", "text": "Stale lock", "blocks": []},
        "response_url": "https://hooks.slack.com/actions/T0123ABCD/1/abc",
        "actions": [{
            "action_id": action_id, "block_id": "lockreaper-approval",
            "text": {"type": "plain_text", "text": "Approve unlock", "emoji": true},
            "value": TOKEN, "type": "button", "action_ts": "1741086990.000300"
        }]
    })
}

/// The raw body Slack POSTs: `payload=` and the URL-encoded JSON.
fn form(payload: &Value) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

/// A function URL request (payload format 2.0) carrying `body` with Slack's two headers.
fn request(body: &str, timestamp: &str, signature: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/x-www-form-urlencoded",
            "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "x-slack-request-timestamp": timestamp,
            "x-slack-signature": signature,
        },
        "requestContext": {
            "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "3.2.1.0", "userAgent": "Slackbot 1.0"},
            "timeEpoch": 1_741_086_990_000_i64,
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

/// `body` signed by Slack at `at`.
fn signed(world: &World, body: &str, at: DateTime<Utc>) -> Value {
    let timestamp = at.timestamp().to_string();
    let signature = world.signing_secret.sign(&timestamp, body.as_bytes());
    request(body, &timestamp, &signature)
}

fn status(response: &Value) -> i64 {
    response["statusCode"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_press_is_published_as_a_verified_approval_within_three_seconds() {
    let world = World::new("slackok").await;
    let now = Utc::now();
    for (action_id, action) in [
        ("lockreaper-approve", ApprovalAction::Approve),
        ("lockreaper-deny", ApprovalAction::Deny),
        ("lockreaper-snooze-2h", ApprovalAction::Snooze),
    ] {
        let body = form(&block_actions(action_id, "U0456EFGH"));
        let started = Instant::now();
        let response = world
            .endpoint
            .handle_request(&signed(&world, &body, now), now)
            .await;
        // Slack wants the 200 within 3 s; the endpoint's work is one SNS publish.
        assert!(started.elapsed() < Duration::from_secs(3), "{action_id}");
        assert_eq!(status(&response), 200, "{action_id}: {response}");
        let published = world.published(Duration::from_secs(10)).await;
        assert_eq!(published.len(), 1, "{action_id}: {published:?}");

        // What force-unlock does with it.
        let mut parsed = ApprovalMessage::parse(&published[0]).unwrap();
        assert_eq!(
            parsed.message.approver(),
            None,
            "nothing trusted before verifying"
        );
        parsed.verify_slack(Some(&world.attestation_key)).unwrap();
        assert_eq!(parsed.source, ApprovalSource::SlackVerified);
        assert_eq!(parsed.message.kind(), action);
        assert_eq!(parsed.message.token(), TOKEN);
        assert_eq!(parsed.message.approver(), Some("slack:T0123ABCD/U0456EFGH"));
    }

    // The function URL may hand the body over base64-encoded; the signature is over the bytes.
    let body = form(&block_actions("lockreaper-approve", "U0456EFGH"));
    let mut encoded = signed(&world, &body, now);
    encoded["body"] = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .encode(&body)
            .into()
    };
    encoded["isBase64Encoded"] = true.into();
    let response = world.endpoint.handle_request(&encoded, now).await;
    assert_eq!(status(&response), 200, "{response}");
    assert_eq!(world.published(Duration::from_secs(10)).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_stale_replayed_and_malformed_requests_publish_nothing() {
    let world = World::new("slackbad").await;
    let now = Utc::now();
    let body = form(&block_actions("lockreaper-approve", "U0456EFGH"));
    let genuine = signed(&world, &body, now);

    // Forged: signed with another app's secret, or a body altered after signing (another user).
    let other = SlackSigningSecret::from_secret("0123456789abcdef0123456789abcdef").unwrap();
    let timestamp = now.timestamp().to_string();
    let forged = request(&body, &timestamp, &other.sign(&timestamp, body.as_bytes()));
    let mut altered = genuine.clone();
    altered["body"] = form(&block_actions("lockreaper-approve", "U0EVE0000")).into();
    // Stale: a request Slack signed ten minutes ago.
    let stale = signed(&world, &body, now - chrono::Duration::minutes(10));
    // Missing and malformed headers.
    let mut unsigned = genuine.clone();
    unsigned["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-slack-signature");
    let mut no_timestamp = genuine.clone();
    no_timestamp["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-slack-request-timestamp");
    let mut bad_signature = genuine.clone();
    bad_signature["headers"]["x-slack-signature"] = "sha256=abc".into();
    for (what, request) in [
        ("forged", &forged),
        ("altered body", &altered),
        ("stale", &stale),
        ("no signature", &unsigned),
        ("no timestamp", &no_timestamp),
        ("malformed signature", &bad_signature),
    ] {
        let response = world.endpoint.handle_request(request, now).await;
        assert_eq!(status(&response), 401, "{what}: {response}");
        assert_eq!(response["body"], "invalid request signature", "{what}");
    }

    // Replayed: the genuine request again, eleven minutes after Slack sent it.
    let later = now + chrono::Duration::minutes(11);
    let response = world.endpoint.handle_request(&genuine, later).await;
    assert_eq!(status(&response), 401, "replayed: {response}");

    // Signed but not an interaction payload, or not a POST.
    let not_a_payload = signed(&world, "token=x&user_id=U0456EFGH", now);
    assert_eq!(
        status(&world.endpoint.handle_request(&not_a_payload, now).await),
        400
    );
    let mut get = genuine.clone();
    get["requestContext"]["http"]["method"] = "GET".into();
    assert_eq!(status(&world.endpoint.handle_request(&get, now).await), 405);
    let mut mention = block_actions("lockreaper-approve", "U0456EFGH");
    mention["user"]["id"] = "<!channel>".into();
    let response = world
        .endpoint
        .handle_request(&signed(&world, &form(&mention), now), now)
        .await;
    assert_eq!(status(&response), 400);

    // Another app's button in the same workspace: acknowledged, nothing published.
    let other_button = form(&block_actions("someone-elses-button", "U0456EFGH"));
    let response = world
        .endpoint
        .handle_request(&signed(&world, &other_button, now), now)
        .await;
    assert_eq!(status(&response), 200);

    assert_eq!(
        world.published(Duration::from_secs(3)).await,
        Vec::<String>::new()
    );

    // And the genuine request, in time, still goes through.
    let response = world.endpoint.handle_request(&genuine, now).await;
    assert_eq!(status(&response), 200);
    assert_eq!(world.published(Duration::from_secs(10)).await.len(), 1);
}

/// With the bot token configured, the pressed message's buttons give way at once to who pressed
/// what (`chat.update` on the stand-in of Slack's Web API), and the press is published as ever.
#[tokio::test(flavor = "multi_thread")]
async fn a_press_replaces_the_buttons_at_once() {
    const BOT_TOKEN: &str = "xoxb-0000000000-0000000000000-standinstandinstandin";
    let slack = SlackApi::start(BOT_TOKEN, &["C0LOCKS01"]).await;
    let world = World::with_slack("slackupd", Some((&slack.base_url, BOT_TOKEN))).await;
    // The alert as posted: a section and the approval buttons.
    let blocks = json!([
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Stale lock*"}},
        {"type": "actions", "block_id": "lockreaper-approval", "elements": [
            {"type": "button", "action_id": "lockreaper-approve", "text": {"type": "plain_text", "text": "Approve unlock"}, "value": TOKEN}
        ]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "Sent by lockreaper"}]}
    ]);
    let posted = lockreaper_aws::slack::SlackWebApi::new(&slack.base_url, BOT_TOKEN)
        .post_message(
            "C0LOCKS01",
            None,
            &json!({"text": "Stale lock", "blocks": blocks}),
        )
        .await
        .unwrap();

    let mut payload = block_actions("lockreaper-approve", "U0456EFGH");
    payload["container"]["message_ts"] = posted.ts.clone().into();
    payload["message"]["ts"] = posted.ts.clone().into();
    payload["message"]["blocks"] = blocks.clone();
    let now = Utc::now();
    let started = Instant::now();
    let response = world
        .endpoint
        .handle_request(&signed(&world, &form(&payload), now), now)
        .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(status(&response), 200, "{response}");
    assert_eq!(world.published(Duration::from_secs(10)).await.len(), 1);

    let shown = &slack.messages()[0];
    assert!(
        shown.blocks.iter().all(|b| b["type"] != "actions"),
        "{shown:?}"
    );
    let line = shown.blocks[1]["text"]["text"].as_str().unwrap();
    assert!(
        line.starts_with("*Approve unlock* pressed by <@U0456EFGH> at "),
        "{line}"
    );
    assert_eq!(shown.blocks[0], blocks[0]);
    assert_eq!(shown.blocks[2], blocks[2]);

    // Slack refusing the update (a message deleted meanwhile) does not undo the press.
    payload["container"]["message_ts"] = "1.000000".into();
    let response = world
        .endpoint
        .handle_request(&signed(&world, &form(&payload), now), now)
        .await;
    assert_eq!(status(&response), 200);
    assert_eq!(world.published(Duration::from_secs(10)).await.len(), 1);
    assert_eq!(
        slack.calls().last().unwrap(),
        &(
            "chat.update".to_owned(),
            Some("message_not_found".to_owned())
        )
    );
}
