//! The Slack app mode's posting path end to end, with every part real but Slack: Terraform leaves
//! a stuck lock (both stores), the reaper's sweep (`Reaper::sweep`) alerts with an offer, the alert
//! topic delivers it (read from its SQS subscription: the `sqs` form is the `lambda` form), the
//! notifier posts it to the Slack stand-in; a Chatbot button press (the bare token) reaches
//! force-unlock (`ForceUnlock::handle_event`), which unlocks and publishes its result to the alert
//! topic; the notifier posts the result in the lock's thread and replaces the offer's buttons.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use force_unlock::ForceUnlock;
use lockreaper_core::approval::SigningKey;
use lockreaper_core::config::Env;
use lockreaper_core::messages::slack::ACTIONS_BLOCK_ID;
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::slack_api::SlackApi;
use lockreaper_testkit::{LockMode, Terraform, TestEnv};
use reaper::{Reaper, ReaperConfig};
use serde_json::{json, Value};
use slack_notifier::{Config, RecordOutcome, SlackNotifier};

const SECRET: &str = "end-to-end-signing-key-0123456789abcdef-not-secret";
const BOT_TOKEN: &str = "xoxb-3333-4444-endtoend";
const CHANNEL: &str = "C0LOCKS02";

fn sns_event(messages: &[(String, String)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, message)| {
            json!({
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:0b4bd2a4-6cd7-4f4c-9a6e-6c3d1e1b7a55",
                "EventSource": "aws:sns",
                "Sns": {
                    "SignatureVersion": "1",
                    "Timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "Signature": "EXAMPLE",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
                    "MessageId": id,
                    "Message": message,
                    "MessageAttributes": {},
                    "Type": "Notification",
                    "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
                    "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                    "Subject": null
                }
            })
        })
        .collect();
    json!({ "Records": records })
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_sweep_and_a_real_unlock_reach_slack_threaded_with_the_buttons_replaced() {
    let env = TestEnv::new("slack-e2e").await;
    let (table, bucket, ledger) = (env.name("locks"), env.name("state"), env.name("ledger"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    create_ledger_table(&env, &ledger).await;
    let alerts = env.topic_with_queue("alerts").await;
    let approvals = env.topic_with_queue("approvals").await;
    let secret = env.create_secret("signing", SECRET).await;
    let slack = SlackApi::start(BOT_TOKEN, &[CHANNEL]).await;
    let notifier = SlackNotifier::from_config(
        &env.aws,
        &Config {
            bot_token_secret_arn: env.create_secret("slack-bot", BOT_TOKEN).await,
            channel_id: CHANNEL.to_owned(),
            api_base_url: slack.base_url.clone(),
            ledger_table: ledger.clone(),
        },
    )
    .await
    .unwrap();
    // What the alert topic delivered since last asked, as SNS records for the notifier.
    // (SNS gives each publish its own MessageId; `phase` keeps these distinct.)
    let delivered = |phase: &'static str, wait: u64| {
        let (env, queue) = (&env, alerts.queue_url.clone());
        async move {
            env.drain(&queue, Duration::from_secs(wait))
                .await
                .into_iter()
                .enumerate()
                .map(|(n, d)| (format!("{}-{phase}-{n}", env.id), d.message))
                .collect::<Vec<_>>()
        }
    };

    let terraform = Terraform::init(
        &env,
        &bucket,
        "app/terraform.tfstate",
        Some(&table),
        LockMode::Both,
    );
    let _stuck = terraform.stuck();
    tokio::time::sleep(Duration::from_secs(3)).await; // past EXPIRE_AFTER

    let mut vars = Env::new(owned(&[
        ("LOCK_TABLES", &table),
        ("LOCK_BUCKETS", &bucket),
        ("LEDGER_TABLE", &ledger),
        ("ALERT_TOPIC_ARN", &alerts.topic_arn),
        ("APPROVAL_TOPIC_ARN", &approvals.topic_arn),
        ("APPROVAL_SECRET_ARN", &secret),
        ("METRICS_NAMESPACE", &format!("LockReaperTest/{}", env.id)),
        ("WARN_AFTER", "1s"),
        ("EXPIRE_AFTER", "2s"),
        ("REMIND_EVERY", "1h"),
    ]));
    let config = ReaperConfig::from_env(&mut vars);
    let config = vars.finish(config).unwrap();
    let reaper = Reaper::new(&env.aws, config, SigningKey::from_secret(SECRET).unwrap());
    let sweep = reaper.sweep(Utc::now(), None).await;
    assert!(sweep.errors.is_empty(), "{:?}", sweep.errors);

    let published = delivered("sweep", 5).await;
    assert_eq!(
        published.len(),
        1,
        "one alert for the stuck lock: {published:?}"
    );
    let outcomes = notifier
        .handle_event(&sns_event(&published), Utc::now())
        .await;
    assert!(
        matches!(outcomes[..], [RecordOutcome::Posted { .. }]),
        "{outcomes:?}"
    );
    let shown = slack.messages();
    assert_eq!(shown.len(), 1);
    let offer = shown[0].clone();
    assert_eq!(offer.thread_ts, None);
    let buttons = offer
        .blocks
        .iter()
        .find(|b| b["block_id"] == ACTIONS_BLOCK_ID)
        .expect("the offer shows the buttons");
    let token = buttons["elements"][0]["value"].as_str().unwrap().to_owned();

    // A Chatbot button publishes the bare token; force-unlock unlocks and publishes its result.
    let force_unlock = ForceUnlock::from_config(
        &env.aws,
        &force_unlock::Config::from_env(owned(&[
            ("LEDGER_TABLE", &ledger),
            ("ALERT_TOPIC_ARN", &alerts.topic_arn),
            ("APPROVAL_SECRET_ARN", &secret),
        ]))
        .unwrap(),
    )
    .await
    .unwrap();
    force_unlock
        .handle_event(
            sns_event(&[(format!("{}-press", env.id), token.clone())]),
            Utc::now(),
        )
        .await
        .unwrap();
    let results = delivered("result", 10).await;
    assert_eq!(results.len(), 1, "{results:?}");
    let outcomes = notifier
        .handle_event(&sns_event(&results), Utc::now())
        .await;
    assert!(
        matches!(outcomes[..], [RecordOutcome::Posted { .. }]),
        "{outcomes:?}"
    );

    let shown = slack.messages();
    assert_eq!(shown.len(), 2);
    assert_eq!(shown[1].thread_ts.as_deref(), Some(offer.ts.as_str()));
    let closed = &shown[0];
    assert!(
        closed.blocks.iter().all(|b| b["type"] != "actions"),
        "{closed:?}"
    );
    let line = closed
        .blocks
        .iter()
        .find(|b| b["block_id"] == format!("{ACTIONS_BLOCK_ID}-decided"))
        .and_then(|b| b["text"]["text"].as_str())
        .unwrap()
        .to_owned();
    assert!(line.starts_with("Approved via a chat button at "), "{line}");
    assert!(line.ends_with("— unlocked"), "{line}");
    assert!(!Value::Array(closed.blocks.clone())
        .to_string()
        .contains(&token));
}
