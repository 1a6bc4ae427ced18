//! The reaper under AWS faults (`lockreaper_testkit::faults`): sweeps with `AUTO_EXPIRE=true` of a
//! *live* Terraform lock while DynamoDB and S3 throttle. The invariant of the safety issue — a live
//! lock is never released — is checked against the emulator's own state after every sweep, read
//! past the proxy, not against what the sweep reports.
//!
//! The sweeps call the library's `Reaper::sweep` (what the Lambda handler calls) in-process with the
//! SDK configuration the handler builds (the functions' timeouts and standard retries), pointed at
//! the proxy, so that the proxy sees, and the seed decides, every request the sweep makes.
//!
//! Seeds and fault share of the throttling scenario: `FAULT_SEEDS`, `FAULT_RATE`; its result row
//! goes to `FAULT_REPORT` (see `lockreaper_testkit::fault_runs`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lockreaper_core::approval::SigningKey;
use lockreaper_core::config::Env;
use lockreaper_testkit::fault_runs::{FaultRun, FaultSettings};
use lockreaper_testkit::faults::{Fault, FaultProxy, Rule};
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::{eventually, LiveApply, LockMode, Terraform, TestEnv};
use reaper::{Reaper, ReaperConfig};

const SECRET: &str = "test-signing-key-0123456789abcdef0123456789";

struct Setup {
    env: TestEnv,
    table: String,
    bucket: String,
    vars: Vec<(String, String)>,
    _terraform: Terraform,
    live: LiveApply,
}

/// A lock table, a versioned state bucket, the reaper's resources, and a live Terraform apply
/// (both lock stores) that has written its state at least once; then past `EXPIRE_AFTER`.
async fn live_lock(test: &str) -> Setup {
    let env = TestEnv::new(test).await;
    let (table, bucket, ledger) = (env.name("locks"), env.name("state"), env.name("ledger"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    create_ledger_table(&env, &ledger).await;
    let alerts = env.topic_with_queue("alerts").await;
    let approvals = env.topic_with_queue("approvals").await;
    let secret = env.create_secret("signing", SECRET).await;
    let namespace = format!("LockReaperTest/{}", env.id);
    let vars: Vec<(String, String)> = [
        ("LOCK_TABLES", table.as_str()),
        ("LOCK_BUCKETS", bucket.as_str()),
        ("STATE_BUCKETS", bucket.as_str()),
        ("LEDGER_TABLE", ledger.as_str()),
        ("ALERT_TOPIC_ARN", alerts.topic_arn.as_str()),
        ("APPROVAL_TOPIC_ARN", approvals.topic_arn.as_str()),
        ("APPROVAL_SECRET_ARN", secret.as_str()),
        ("METRICS_NAMESPACE", namespace.as_str()),
        ("WARN_AFTER", "1s"),
        ("EXPIRE_AFTER", "3s"),
        ("REMIND_EVERY", "1h"),
        ("AUTO_EXPIRE", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    let terraform = Terraform::init(
        &env,
        &bucket,
        "app/terraform.tfstate",
        Some(&table),
        LockMode::Both,
    );
    // 8 slow resources of 21 s: Terraform persists the state as each completes, for ~3 minutes.
    let live = terraform.hold_live(21);
    let s3 = env.aws.s3();
    eventually(
        "the live apply to persist its state",
        Duration::from_secs(60),
        || {
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move {
                s3.head_object()
                    .bucket(bucket)
                    .key("app/terraform.tfstate")
                    .send()
                    .await
                    .ok()
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // past EXPIRE_AFTER
    Setup {
        env,
        table,
        bucket,
        vars,
        _terraform: terraform,
        live,
    }
}

impl Setup {
    fn reaper(&self, proxy: &FaultProxy) -> Reaper {
        let mut vars = Env::new(self.vars.clone());
        let config = ReaperConfig::from_env(&mut vars);
        let config = vars.finish(config).unwrap();
        Reaper::new(
            &proxy.function_aws(&self.env.aws),
            config,
            SigningKey::from_secret(SECRET).unwrap(),
        )
    }

    /// Whether the live lock's DynamoDB item and its `.tflock` file still hold the live apply's
    /// lock ID, read from the emulator itself.
    async fn live_lock_state(&self) -> (bool, bool) {
        let item = self
            .env
            .aws
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .key("LockID", AttributeValue::S(self.live.lock.path.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item;
        let item_held = item
            .as_ref()
            .and_then(|i| i.get("Info"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|i| i.contains(&self.live.lock.lock_id));
        let file_held = match self
            .env
            .aws
            .s3()
            .get_object()
            .bucket(&self.bucket)
            .key("app/terraform.tfstate.tflock")
            .send()
            .await
        {
            Ok(out) => String::from_utf8_lossy(&out.body.collect().await.unwrap().into_bytes())
                .contains(&self.live.lock.lock_id),
            Err(_) => false,
        };
        (item_held, file_held)
    }

    /// The live lock, read from the emulator itself: the DynamoDB item's `Info` still names the
    /// live apply's lock ID, and the `.tflock` file is still there.
    async fn assert_lock_held(&self, after: &str, proxy: &FaultProxy) {
        let item = self
            .env
            .aws
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .key("LockID", AttributeValue::S(self.live.lock.path.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item;
        let info = item
            .as_ref()
            .and_then(|i| i.get("Info"))
            .and_then(|v| v.as_s().ok());
        assert!(
            info.is_some_and(|i| i.contains(&self.live.lock.lock_id)),
            "the live lock's DynamoDB item was released {after}: {item:?}\nrequests faulted:\n{}",
            proxy.report()
        );
        let lock_file = self
            .env
            .aws
            .s3()
            .get_object()
            .bucket(&self.bucket)
            .key("app/terraform.tfstate.tflock")
            .send()
            .await;
        let body = match lock_file {
            Ok(out) => String::from_utf8_lossy(&out.body.collect().await.unwrap().into_bytes())
                .into_owned(),
            Err(e) => panic!(
                "the live lock's .tflock file was released {after}: {e:?}\nrequests faulted:\n{}",
                proxy.report()
            ),
        };
        assert!(body.contains(&self.live.lock.lock_id), "{body}");
    }
}

/// Sweeps with `AUTO_EXPIRE=true` while a seeded share of every DynamoDB and S3 request is
/// throttled (each a mix of the services' throttling answers and 500s; `FAULT_RATE`, default 0.3),
/// three sweeps per seed (`FAULT_SEEDS`, default 2), each seed with its own proxy and the same live
/// lock: the live lock is never released. A sweep may fail or report errors under these faults; it
/// may not delete. One result row to `FAULT_REPORT`.
#[tokio::test(flavor = "multi_thread")]
async fn sweeps_under_throttling_never_release_a_live_lock() {
    let settings = FaultSettings::from_env(2, 0.3);
    let mut run = FaultRun::new(
        "reaper: live lock, AUTO_EXPIRE, throttling + 5xx",
        &settings,
    );
    let setup = live_lock("faults-live-sweeps").await;
    for &seed in &settings.seeds {
        let rate = settings.rate;
        let proxy = FaultProxy::start(
            &setup.env.emulator.endpoint,
            seed,
            vec![
                Rule::new("dynamodb", "*", rate * 2.0 / 3.0, Fault::Throttle),
                Rule::new(
                    "dynamodb",
                    "*",
                    rate / 6.0,
                    Fault::DynamoDbThrottlingException,
                ),
                Rule::new("dynamodb", "*", rate / 6.0, Fault::InternalError),
                Rule::new("s3", "*", rate * 5.0 / 6.0, Fault::Throttle),
                Rule::new("s3", "*", rate / 6.0, Fault::InternalError),
            ],
        )
        .await;
        let reaper = setup.reaper(&proxy);
        for sweep in 1..=3 {
            let outcome = reaper.sweep(chrono::Utc::now(), None).await;
            eprintln!(
                "seed {seed} sweep {sweep}: locks judged {:?}, errors {:?}, unreachable {:?}",
                outcome
                    .locks
                    .iter()
                    .map(|l| (&l.lock_id, l.level.as_str(), l.alive, &l.expired))
                    .collect::<Vec<_>>(),
                outcome.errors,
                outcome.unreachable
            );
            let (item, file) = setup.live_lock_state().await;
            run.check(item, || {
                format!("seed {seed}: the live lock's DynamoDB item was released by sweep {sweep}")
            });
            run.check(file, || {
                format!("seed {seed}: the live lock's .tflock file was released by sweep {sweep}")
            });
        }
        eprintln!("seed {seed}: requests faulted:\n{}", proxy.report());
        run.add_proxy(&proxy);
    }
    run.finish();
}

/// The same sweep when throttling outlasts the SDK's retries on exactly one read: the state
/// object's HeadObject (all 3 attempts answered `503 SlowDown`) — the evidence that the holder is
/// alive. Nothing else is faulted.
///
/// Before the one decision in core (`decision::decide`) this sweep judged the lock on the evidence
/// it could read (none), found it dead and auto-expired it: the DynamoDB item and the `.tflock`
/// file of a running apply were deleted (issue 11, "a throttled read makes a live lock look dead").
/// Now the unread state object is an evidence gap, which blocks auto-expiry.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_state_read_does_not_make_a_live_lock_look_dead() {
    let setup = live_lock("faults-state-read").await;
    let proxy = FaultProxy::start(
        &setup.env.emulator.endpoint,
        11,
        vec![Rule::new("s3", "HeadObject", 1.0, Fault::Throttle).at_most(3)],
    )
    .await;
    let reaper = setup.reaper(&proxy);

    let outcome = reaper.sweep(chrono::Utc::now(), None).await;
    eprintln!(
        "locks judged {:?}, errors {:?}",
        outcome
            .locks
            .iter()
            .map(|l| (&l.lock_id, l.level.as_str(), l.alive, &l.expired))
            .collect::<Vec<_>>(),
        outcome.errors
    );

    assert_eq!(
        proxy.faulted_count("s3", "HeadObject", "SlowDown"),
        3,
        "{}",
        proxy.report()
    );
    assert!(
        outcome
            .locks
            .iter()
            .all(|l| l.level.as_str() != "auto-expire" && l.expired.is_none()),
        "a lock whose liveness could not be read was judged expirable"
    );
    setup
        .assert_lock_held("after its state read was throttled", &proxy)
        .await;
}
