//! The Slack notifier against the project's emulator (the ledger in moto, the bot token in its
//! Secrets Manager) and the local stand-in of the Slack Web API, through the library entry point
//! the Lambda handler calls (`SlackNotifier::from_config`, then `handle_event` with SNS events).
//!
//! Every event carries what SNS really delivered: the messages are built by the real builders
//! (the reaper's `lock_alert` / `resolved_alert`, force-unlock's `result_message`), published to
//! an emulated topic as the functions publish them (`MessageStructure=json`), read back from an
//! SQS subscription (the envelope's `sqs` form, byte for byte the `lambda` form) and wrapped in
//! the SNS event Lambda receives, with the `MessageId` SNS gave the publish.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lockreaper_aws::notify::Notifier;
use lockreaper_core::alert::{lock_alert, resolved_alert, thread_id, AlertContext, ApprovalOffer};
use lockreaper_core::approval::{ApprovalSource, ApprovalToken, LockFingerprint, SigningKey};
use lockreaper_core::decision::OpenProposal;
use lockreaper_core::messages::slack::{offer_key, ACTIONS_BLOCK_ID};
use lockreaper_core::messages::RenderedMessage;
use lockreaper_core::model::{DeletePrecondition, LockCreated, LockKind, LockLocation, LockRecord};
use lockreaper_core::policy::{AlertKind, AlertState, Level, Liveness, StaleLockPolicy};
use lockreaper_core::proposal::{ArtefactOutcome, Proposal};
use lockreaper_core::unlock_message::{result_message, Decision, Outcome};
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::notifications::TopicWithQueue;
use lockreaper_testkit::slack_api::{SlackApi, SlackMessage};
use lockreaper_testkit::TestEnv;
use serde_json::{json, Value};
use slack_notifier::{report, Config, RecordOutcome, SlackNotifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BOT_TOKEN: &str = "xoxb-1111-2222-notifiertest";
const CHANNEL: &str = "C0LOCKS01";
const PATH: &str = "acme-tfstate/env:/prod/network.tfstate";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).unwrap()
}

struct World {
    env: TestEnv,
    alerts_topic: TopicWithQueue,
    alerts: Notifier,
    slack: SlackApi,
    config: Config,
    notifier: SlackNotifier,
}

impl World {
    /// The stand-in knows `BOT_TOKEN` and `CHANNEL`; the notifier is configured with
    /// `token`/`channel` (which may differ, to be refused).
    async fn with(test: &str, token: &str, channel: &str) -> World {
        let env = TestEnv::new(test).await;
        let ledger = env.name("ledger");
        create_ledger_table(&env, &ledger).await;
        let alerts_topic = env.topic_with_queue("alerts").await;
        let alerts = Notifier::new(env.aws.sns(), &alerts_topic.topic_arn);
        let slack = SlackApi::start(BOT_TOKEN, &[CHANNEL]).await;
        let config = Config {
            bot_token_secret_arn: env.create_secret("slack-bot", token).await,
            channel_id: channel.to_owned(),
            api_base_url: slack.base_url.clone(),
            ledger_table: ledger,
        };
        let notifier = SlackNotifier::from_config(&env.aws, &config).await.unwrap();
        World {
            env,
            alerts_topic,
            alerts,
            slack,
            config,
            notifier,
        }
    }

    async fn new(test: &str) -> World {
        World::with(test, BOT_TOKEN, CHANNEL).await
    }

    /// Publishes `message` as the reaper and force-unlock do, and returns the SNS record Lambda
    /// receives for it.
    async fn publish(&self, message: &RenderedMessage) -> Value {
        let message_id = self
            .alerts
            .publish_structured(&message.subject, &message.sns_message())
            .await
            .unwrap();
        let delivered = self
            .env
            .drain(&self.alerts_topic.queue_url, Duration::from_secs(10))
            .await;
        assert_eq!(delivered.len(), 1);
        sns_record(
            &message_id,
            &self.alerts_topic.topic_arn,
            &delivered[0].message,
        )
    }

    async fn handle(&self, records: Vec<Value>) -> Vec<RecordOutcome> {
        self.notifier
            .handle_event(&json!({ "Records": records }), Utc::now())
            .await
    }

    async fn ledger_items(&self) -> Vec<Value> {
        let out = self
            .env
            .aws
            .dynamodb()
            .scan()
            .table_name(&self.config.ledger_table)
            .send()
            .await
            .unwrap();
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                let pairs: serde_json::Map<String, Value> = item
                    .into_iter()
                    .map(|(k, v)| (k, json!(format!("{v:?}"))))
                    .collect();
                Value::Object(pairs)
            })
            .collect()
    }
}

/// An SNS notification record as Lambda receives it
/// (docs.aws.amazon.com/lambda/latest/dg/with-sns.html, "Example SNS message event").
fn sns_record(message_id: &str, topic_arn: &str, message: &str) -> Value {
    json!({
        "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic_arn}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"),
        "EventSource": "aws:sns",
        "Sns": {
            "SignatureVersion": "1",
            "Timestamp": "2025-03-04T14:02:00.000Z",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
            "MessageId": message_id,
            "Message": message,
            "MessageAttributes": {},
            "Type": "Notification",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "TopicArn": topic_arn,
            "Subject": "lockreaper",
        }
    })
}

fn lock() -> LockRecord {
    LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: LockLocation::DynamoDb {
            table: "tf-locks".to_owned(),
            key_attribute: "LockID".to_owned(),
            key: PATH.to_owned(),
        },
        lock_id: "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7".to_owned(),
        who: Some("runner@ip-10-0-1-23".to_owned()),
        operation: Some("OperationTypeApply".to_owned()),
        tool_version: Some("1.10.5".to_owned()),
        created: LockCreated::Recorded(t0()),
        state_path: PATH.to_owned(),
        info: Some(String::new()),
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals("{}".to_owned()),
        raw: "{}".to_owned(),
    }
}

fn token(lock: &LockRecord) -> String {
    let key = SigningKey::from_secret("fixture-signing-key-0123456789abcdef-not-secret").unwrap();
    ApprovalToken::issue(
        &key,
        [7; 12],
        LockFingerprint::of(lock),
        t0() + chrono::Duration::hours(6),
    )
}

fn context() -> AlertContext {
    AlertContext::new("lockreaper-prod us-east-1")
}

/// The reaper's stale-lock alert offering an approval (or its reminder, without a new offer).
fn stale_alert(kind: AlertKind, offer: bool) -> RenderedMessage {
    let lock = lock();
    let verdict = StaleLockPolicy::default().evaluate(
        &lock,
        &Liveness::default(),
        &[],
        t0() + chrono::Duration::minutes(312),
    );
    assert_eq!(verdict.level, Level::ProposeUnlock);
    let offer = offer.then(|| ApprovalOffer {
        token: token(&lock),
        approval_topic_arn: "arn:aws:sns:us-east-1:123456789012:lockreaper-approvals".to_owned(),
        expires_at: t0() + chrono::Duration::hours(6),
    });
    lock_alert(&lock, &verdict, kind, offer.as_ref(), &context())
}

/// force-unlock's result for Ana's verified Slack approval of the offer.
fn unlocked_result() -> RenderedMessage {
    let lock = lock();
    let proposal = Proposal {
        proposal_id: "BwcHBwcHBwcHBwcH".to_owned(),
        thread_id: thread_id(&lock.location),
        locks: vec![lock.clone()],
        proposed_at: t0(),
        expires_at: t0() + chrono::Duration::hours(6),
        reasons: vec!["held for 5h".to_owned()],
    };
    let token = token(&lock);
    let decision = Decision {
        action: Some("approve"),
        source: Some(ApprovalSource::SlackVerified),
        approver: Some("slack:T0123ABCD/U0456EFGH"),
        reason: None,
        token: Some(&token),
        at: Utc.with_ymd_and_hms(2025, 3, 4, 14, 2, 0).unwrap(),
    };
    let outcome = Outcome::Unlocked {
        audit_id: "a1b2c3".to_owned(),
        artefacts: vec![ArtefactOutcome::Deleted],
        state: None,
        errors: Vec::new(),
    };
    result_message(Some(&proposal), &decision, &outcome)
}

/// The reaper's "released" message for the lock, with the offer still open.
fn released_with_offer_open() -> RenderedMessage {
    let lock = lock();
    let at = t0() + chrono::Duration::minutes(312);
    let mut state = AlertState::after_send(None, &lock.lock_id, Level::ProposeUnlock, at);
    state.open_proposals.push(OpenProposal {
        proposal_id: "BwcHBwcHBwcHBwcH".to_owned(),
        lock_id: lock.lock_id.clone(),
        proposed_at: at,
        expires_at: at + chrono::Duration::hours(6),
    });
    resolved_alert(&state, &lock.location, &lock.state_path, &context())
}

fn has_buttons(message: &SlackMessage) -> bool {
    message
        .blocks
        .iter()
        .any(|b| b["block_id"] == ACTIONS_BLOCK_ID)
}

fn block_texts(message: &SlackMessage) -> String {
    message
        .blocks
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn first_alert_top_level_reminder_in_thread_and_the_result_replaces_the_buttons() {
    let world = World::new("slacknotify").await;

    let offer = world.publish(&stale_alert(AlertKind::New, true)).await;
    let outcomes = world.handle(vec![offer]).await;
    assert!(
        matches!(outcomes[..], [RecordOutcome::Posted { .. }]),
        "{outcomes:?}"
    );
    let shown = world.slack.messages();
    assert_eq!(shown.len(), 1);
    let top = shown[0].clone();
    assert_eq!(top.channel, CHANNEL);
    assert_eq!(
        top.thread_ts, None,
        "the first message of a thread is top level"
    );
    assert!(has_buttons(&top));

    let reminder = world
        .publish(&stale_alert(AlertKind::Reminder, false))
        .await;
    world.handle(vec![reminder]).await;
    let shown = world.slack.messages();
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[1].thread_ts.as_deref(), Some(top.ts.as_str()));

    // Ana's verified approval unlocked it: the result goes in the thread, and the offer's
    // buttons give way to who decided what.
    let result = world.publish(&unlocked_result()).await;
    let outcomes = world.handle(vec![result]).await;
    assert!(
        matches!(outcomes[..], [RecordOutcome::Posted { .. }]),
        "{outcomes:?}"
    );
    let shown = world.slack.messages();
    assert_eq!(shown.len(), 3);
    assert_eq!(shown[2].thread_ts.as_deref(), Some(top.ts.as_str()));
    assert!(
        block_texts(&shown[2]).contains("Unlocked"),
        "{:?}",
        shown[2]
    );
    let offer_now = &shown[0];
    assert!(!has_buttons(offer_now), "{offer_now:?}");
    assert!(
        block_texts(offer_now).contains("Approved by <@U0456EFGH> at 14:02 UTC — unlocked"),
        "{offer_now:?}"
    );
    // Everything else of the offer is as it was.
    assert_eq!(offer_now.blocks.len(), top.blocks.len());
    assert_eq!(offer_now.blocks[0], top.blocks[0]);

    // The ledger holds a digest of the token, never the token, and only `slack#` items.
    let token = token(&lock());
    let items = world.ledger_items().await;
    assert!(!items.is_empty());
    for item in &items {
        let text = item.to_string();
        assert!(!text.contains(&token), "the token is stored: {text}");
        assert!(item["pk"].as_str().unwrap().contains("slack#"), "{text}");
        assert!(item.get("expires_at").is_some(), "no TTL: {text}");
    }
    assert!(items.iter().any(|i| i["pk"]
        .as_str()
        .unwrap()
        .contains(&format!("slack#offer#{}", offer_key(&token)))));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_delivery_posts_once_and_replaces_once() {
    let world = World::new("slackretry").await;
    let offer = world.publish(&stale_alert(AlertKind::New, true)).await;
    world.handle(vec![offer.clone()]).await;
    // SNS (or Lambda's retry) delivers the same message again.
    let outcomes = world.handle(vec![offer]).await;
    assert!(
        matches!(&outcomes[..], [RecordOutcome::AlreadyPosted { ts }] if *ts == world.slack.messages()[0].ts),
        "{outcomes:?}"
    );
    assert_eq!(world.slack.messages().len(), 1);

    let result = world.publish(&unlocked_result()).await;
    world.handle(vec![result.clone()]).await;
    world.handle(vec![result]).await;
    assert_eq!(world.slack.messages().len(), 2);
    let updates = world
        .slack
        .calls()
        .iter()
        .filter(|(method, _)| method == "chat.update")
        .count();
    assert_eq!(updates, 1, "{:?}", world.slack.calls());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_released_on_its_own_closes_the_open_offer() {
    let world = World::new("slackreleased").await;
    let offer = world.publish(&stale_alert(AlertKind::New, true)).await;
    world.handle(vec![offer]).await;
    let released = world.publish(&released_with_offer_open()).await;
    world.handle(vec![released]).await;
    let shown = world.slack.messages();
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[1].thread_ts.as_deref(), Some(shown[0].ts.as_str()));
    assert!(!has_buttons(&shown[0]));
    assert!(block_texts(&shown[0]).contains("Lock released before anyone decided"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_record_does_not_stop_the_batch() {
    let world = World::new("slackmalformed").await;
    let good = world.publish(&stale_alert(AlertKind::New, true)).await;
    let topic = world.alerts_topic.topic_arn.clone();
    let records = vec![
        sns_record("11111111-aaaa", &topic, "plain text, as e-mail reads it"),
        json!({"EventSource": "aws:sns", "Sns": {}}),
        sns_record(
            "22222222-bbbb",
            &topic,
            &json!({"version": "1.0", "source": "custom"}).to_string(),
        ),
        good,
    ];
    let outcomes = world.handle(records).await;
    assert_eq!(outcomes.len(), 4);
    let reasons: Vec<String> = outcomes[..3]
        .iter()
        .map(|o| match o {
            RecordOutcome::Skipped { reason } => reason.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(reasons[0].contains("is not JSON"), "{reasons:?}");
    assert!(reasons[1].contains("no `Sns.MessageId`"), "{reasons:?}");
    assert!(reasons[2].contains("no `slack` member"), "{reasons:?}");
    assert!(matches!(outcomes[3], RecordOutcome::Posted { .. }));
    assert_eq!(world.slack.messages().len(), 1);
    // Skipped records are not retried: the invocation succeeds, naming them.
    let answer = report(&outcomes).unwrap();
    assert_eq!(answer["posted"], 1);
    assert_eq!(answer["skipped"].as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_refusing_is_a_clear_error_and_not_retried() {
    for (test, token, channel, code, hint) in [
        (
            "slackauth",
            "xoxb-9999-revoked",
            CHANNEL,
            "invalid_auth",
            "SLACK_BOT_TOKEN_SECRET_ARN",
        ),
        (
            "slackchannel",
            BOT_TOKEN,
            "C0NOSUCH99",
            "channel_not_found",
            "SLACK_CHANNEL_ID",
        ),
    ] {
        let world = World::with(test, token, channel).await;
        let offer = world.publish(&stale_alert(AlertKind::New, true)).await;
        let outcomes = world.handle(vec![offer]).await;
        let [RecordOutcome::Skipped { reason }] = &outcomes[..] else {
            panic!("{test}: {outcomes:?}");
        };
        assert!(
            reason.contains(&format!("Slack chat.postMessage refused the call: {code}")),
            "{reason}"
        );
        assert!(reason.contains(hint), "{reason}");
        assert!(report(&outcomes).is_ok(), "a refusal is not retried");
        assert!(world.slack.messages().is_empty());
        assert!(
            world.ledger_items().await.is_empty(),
            "nothing recorded as posted"
        );
    }
}

/// A server answering every call as Slack does when rate limited: HTTP 429 with `Retry-After`
/// (docs.slack.dev/apis/web-api/rate-limits). Returns its base URL.
async fn rate_limited_slack() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head and the body it announces, then answer.
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length: usize = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let body = r#"{"ok":false,"error":"ratelimited"}"#;
                let answer = format!(
                    "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_fails_the_invocation_and_the_retry_posts_once() {
    let world = World::new("slack429").await;
    let offer = world.publish(&stale_alert(AlertKind::New, true)).await;
    let limited = SlackNotifier::new(
        &world.env.aws,
        &Config {
            api_base_url: rate_limited_slack().await,
            ..world.config.clone()
        },
        BOT_TOKEN,
    );
    let outcomes = limited
        .handle_event(&json!({"Records": [offer.clone()]}), Utc::now())
        .await;
    let [RecordOutcome::Retry { reason }] = &outcomes[..] else {
        panic!("{outcomes:?}");
    };
    assert!(reason.contains("HTTP 429"), "{reason}");
    let error = report(&outcomes).unwrap_err().to_string();
    assert!(
        error.contains("transient failure posting to Slack"),
        "{error}"
    );
    assert!(world.ledger_items().await.is_empty());

    // Lambda's retry re-delivers the same event, and Slack answers this time.
    let outcomes = world.handle(vec![offer.clone()]).await;
    assert!(
        matches!(outcomes[..], [RecordOutcome::Posted { .. }]),
        "{outcomes:?}"
    );
    let outcomes = world.handle(vec![offer]).await;
    assert!(
        matches!(outcomes[..], [RecordOutcome::AlreadyPosted { .. }]),
        "{outcomes:?}"
    );
    assert_eq!(world.slack.messages().len(), 1);
}
