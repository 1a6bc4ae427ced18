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

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lockreaper_core::approval::SigningKey;
use lockreaper_core::config::Env;
use lockreaper_testkit::fault_runs::{FaultRun, FaultSettings};
use lockreaper_testkit::faults::{Fault, FaultProxy, Rule};
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::notifications::Delivered;
use lockreaper_testkit::{eventually, LiveApply, LockMode, Terraform, TerraformLock, TestEnv};
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

/// Two stuck Terraform locks (applies killed while holding their locks, both stores) and a live
/// apply's lock, all past `EXPIRE_AFTER`, with `AUTO_EXPIRE=false`.
struct StuckAndLive {
    env: TestEnv,
    table: String,
    bucket: String,
    alerts_queue: String,
    /// The reaper's variables but `LEDGER_TABLE` (each seed gets a ledger of its own, so each
    /// seed starts with nothing alerted).
    vars: Vec<(String, String)>,
    stuck: Vec<TerraformLock>,
    _terraforms: Vec<Terraform>,
    live: LiveApply,
}

async fn stuck_and_live(test: &str) -> StuckAndLive {
    let env = TestEnv::new(test).await;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let alerts = env.topic_with_queue("alerts").await;
    let approvals = env.topic_with_queue("approvals").await;
    let secret = env.create_secret("signing", SECRET).await;
    let namespace = format!("LockReaperTest/{}", env.id);
    let vars: Vec<(String, String)> = [
        ("LOCK_TABLES", table.as_str()),
        ("LOCK_BUCKETS", bucket.as_str()),
        ("ALERT_TOPIC_ARN", alerts.topic_arn.as_str()),
        ("APPROVAL_TOPIC_ARN", approvals.topic_arn.as_str()),
        ("APPROVAL_SECRET_ARN", secret.as_str()),
        ("METRICS_NAMESPACE", namespace.as_str()),
        ("WARN_AFTER", "1s"),
        ("EXPIRE_AFTER", "3s"),
        // No reminder falls due during the test: every alert delivered is a first alert (one
        // per lock and level) or a duplicate of one.
        ("REMIND_EVERY", "1h"),
        ("AUTO_EXPIRE", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    // The live apply first: its first resource takes 21 s before it persists the state, time
    // in which the two stuck locks are made.
    let terraform = Terraform::init(
        &env,
        &bucket,
        "live/terraform.tfstate",
        Some(&table),
        LockMode::Both,
    );
    let live = terraform.hold_live(21);
    let mut terraforms = vec![terraform];
    let mut stuck = Vec::new();
    for name in ["stuck-a", "stuck-b"] {
        let terraform = Terraform::init(
            &env,
            &bucket,
            &format!("{name}/terraform.tfstate"),
            Some(&table),
            LockMode::Both,
        );
        stuck.push(terraform.stuck());
        terraforms.push(terraform);
    }
    let s3 = env.aws.s3();
    eventually(
        "the live apply to persist its state",
        Duration::from_secs(60),
        || {
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move {
                s3.head_object()
                    .bucket(bucket)
                    .key("live/terraform.tfstate")
                    .send()
                    .await
                    .ok()
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // past EXPIRE_AFTER
    StuckAndLive {
        env,
        table,
        bucket,
        alerts_queue: alerts.queue_url,
        vars,
        stuck,
        _terraforms: terraforms,
        live,
    }
}

impl StuckAndLive {
    fn reaper(&self, aws: &lockreaper_aws::Aws, ledger: &str) -> Reaper {
        let mut vars = self.vars.clone();
        vars.push(("LEDGER_TABLE".to_owned(), ledger.to_owned()));
        let mut vars = Env::new(vars);
        let config = ReaperConfig::from_env(&mut vars);
        let config = vars.finish(config).unwrap();
        Reaper::new(aws, config, SigningKey::from_secret(SECRET).unwrap())
    }

    /// Whether `lock` is still held in both stores, read from the emulator itself: the DynamoDB
    /// item's `Info` and the `.tflock` file both name its lock ID.
    async fn held(&self, lock: &TerraformLock) -> bool {
        let item = self
            .env
            .aws
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .key("LockID", AttributeValue::S(lock.path.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item;
        let item_held = item
            .as_ref()
            .and_then(|i| i.get("Info"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|i| i.contains(&lock.lock_id));
        let file_held = match self
            .env
            .aws
            .s3()
            .get_object()
            .bucket(&self.bucket)
            .key(format!("{}.tflock", lock.state_key))
            .send()
            .await
        {
            Ok(out) => String::from_utf8_lossy(&out.body.collect().await.unwrap().into_bytes())
                .contains(&lock.lock_id),
            Err(_) => false,
        };
        item_held && file_held
    }
}

/// One alert as delivered to the alert topic's queue (read from SQS, past the proxy).
#[derive(Debug)]
struct DeliveredAlert {
    event_type: String,
    state_path: String,
    level: String,
    reminder: bool,
    offers_approval: bool,
    /// The alert tells the approver that the lock's liveness could not be checked (an unreadable
    /// evidence gap, `messages::reasons::gap_sentence`).
    says_liveness_unchecked: bool,
}

fn delivered_alert(m: &Delivered) -> Option<DeliveredAlert> {
    let json = m.json.as_ref()?;
    let metadata = &json["metadata"];
    let context = &metadata["additionalContext"];
    Some(DeliveredAlert {
        event_type: metadata["eventType"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        state_path: context["statePath"].as_str().unwrap_or_default().to_owned(),
        level: context["level"].as_str().unwrap_or_default().to_owned(),
        reminder: m
            .subject
            .as_deref()
            .is_some_and(|s| s.contains("Reminder:")),
        offers_approval: context["approvalToken"].is_string(),
        says_liveness_unchecked: json["content"]["description"]
            .as_str()
            .is_some_and(|d| d.to_lowercase().contains("could not check")),
    })
}

/// The sweep invariants of issue 12 under every kind of fault, checked in what the alert topic
/// delivered (its SQS subscription, read past the proxy) and in the lock stores:
///
/// two stuck Terraform locks and a live one; per seed a fresh ledger, three sweeps through a
/// proxy that throttles, fails (5xx), resets, loses and delays (past the SDK's attempt timeout,
/// at most once a seed: each costs 10 s) a seeded share of DynamoDB, S3 and SNS requests, then
/// one sweep without faults (the faults are over: what the next sweep must catch up on). Then:
/// - every stuck lock was alerted at its final level (`propose-unlock`) at least once, and never
///   as a reminder (none is due with `REMIND_EVERY=1h`);
/// - first alerts are not repeated, except by a `Publish` that was applied while its answer was
///   lost or delayed (the SDK, or the next sweep, publishes again): per seed, the alerts beyond
///   one per lock and level are at most the `Publish` requests the proxy lost or delayed answers
///   to — that is the at-least-once guarantee, duplicates bounded, README "Reliability";
/// - the live lock is alerted beyond `warn`, or offered for approval, only by an alert that says
///   its liveness could not be checked (a state read failed past the SDK's retries: "cannot tell"
///   is shown to the person asked to approve, and force-unlock's final check reads it again),
///   never as plainly stale; the withdrawal of such a proposal (when a later sweep reads the
///   state again) is the one other message it may get;
/// - no "resolved" message (every lock still exists) and every lock still held in both stores.
#[tokio::test(flavor = "multi_thread")]
async fn sweeps_under_faults_alert_every_stuck_lock_once_per_level_and_never_say_resolved() {
    // One seed in `make test`: most of this scenario's time is its Terraform setup and the
    // delayed answers (10 s each); `make faults` runs many.
    let settings = FaultSettings::from_env(1, 0.3);
    let mut run = FaultRun::new("reaper: stuck + live locks, alerts, all faults", &settings);
    let world = stuck_and_live("faults-stuck-alerts").await;
    let live_path = world.live.lock.path.clone();
    let stuck_paths: Vec<String> = world.stuck.iter().map(|l| l.path.clone()).collect();
    let delay = lockreaper_aws::config::ATTEMPT_TIMEOUT + Duration::from_secs(1);
    for &seed in &settings.seeds {
        let rate = settings.rate;
        let ledger = world.env.name(&format!("ledger-{seed}"));
        create_ledger_table(&world.env, &ledger).await;
        let mut rules = Vec::new();
        for service in ["dynamodb", "s3", "sns"] {
            rules.extend([
                Rule::new(service, "*", rate * 0.3, Fault::Throttle),
                Rule::new(service, "*", rate * 0.15, Fault::InternalError),
                Rule::new(service, "*", rate * 0.2, Fault::ConnectionReset),
                Rule::new(service, "*", rate * 0.25, Fault::LostAnswer),
            ]);
        }
        // A delayed answer is a lost answer that also costs the SDK its attempt timeout: once
        // a seed, on a write whose answer matters (the alert state's PutItem or SNS Publish).
        rules.push(
            Rule::new(
                "dynamodb",
                "PutItem",
                rate * 0.5,
                Fault::DelayedAnswer(delay),
            )
            .at_most(1),
        );
        rules.push(Rule::new("sns", "Publish", rate * 0.5, Fault::DelayedAnswer(delay)).at_most(1));
        let proxy = FaultProxy::start(&world.env.emulator.endpoint, seed, rules).await;
        let reaper = world.reaper(&proxy.function_aws(&world.env.aws), &ledger);
        for sweep in 1..=3 {
            let outcome = reaper.sweep(chrono::Utc::now(), None).await;
            eprintln!(
                "seed {seed} sweep {sweep}: alerts sent {}, locks judged {:?}, errors {:?}",
                outcome.alerts_sent,
                outcome
                    .locks
                    .iter()
                    .map(|l| (&l.state_path, l.level.as_str(), &l.alert))
                    .collect::<Vec<_>>(),
                outcome.errors,
            );
        }
        let clean = FaultProxy::start(&world.env.emulator.endpoint, seed, vec![]).await;
        let outcome = world
            .reaper(&clean.function_aws(&world.env.aws), &ledger)
            .sweep(chrono::Utc::now(), None)
            .await;
        eprintln!(
            "seed {seed} sweep without faults: alerts sent {}, errors {:?}",
            outcome.alerts_sent, outcome.errors
        );
        let lost_publishes = proxy.faulted_count("sns", "Publish", "LostAnswer")
            + proxy.faulted_count("sns", "Publish", "DelayedAnswer");
        eprintln!("seed {seed}: requests faulted:\n{}", proxy.report());

        let delivered = world
            .env
            .drain(&world.alerts_queue, Duration::from_secs(3))
            .await;
        let alerts: Vec<DeliveredAlert> = delivered.iter().filter_map(delivered_alert).collect();
        run.check(alerts.len() == delivered.len(), || {
            format!("seed {seed}: a delivered message is not a chat notification: {delivered:#?}")
        });
        for path in &stuck_paths {
            let stale = alerts
                .iter()
                .filter(|a| &a.state_path == path && a.level == "propose-unlock")
                .count();
            run.check(stale >= 1, || {
                format!(
                    "seed {seed}: the stuck lock {path} was never alerted as stale: {alerts:#?}"
                )
            });
        }
        run.check(alerts.iter().all(|a| !a.reminder), || {
            format!("seed {seed}: a reminder before REMIND_EVERY: {alerts:#?}")
        });
        let mut per_lock_and_level: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for a in &alerts {
            *per_lock_and_level
                .entry((a.state_path.as_str(), a.level.as_str()))
                .or_default() += 1;
        }
        let repeated: u64 = per_lock_and_level.values().map(|n| n - 1).sum();
        run.check(repeated <= lost_publishes, || {
            format!(
                "seed {seed}: {repeated} alerts repeated, but only {lost_publishes} Publish \
                 answers were lost or delayed: {per_lock_and_level:?}"
            )
        });
        run.check(
            alerts
                .iter()
                .filter(|a| a.state_path == live_path)
                .all(|a| {
                    (a.level == "warn" && !a.offers_approval && a.event_type == "LockWarning")
                        || a.says_liveness_unchecked
                        // The proposal withdrawn once a later sweep reads the state again.
                        || (a.event_type == "LockNotUnlocked" && !a.offers_approval)
                }),
            || {
                format!(
                    "seed {seed}: the live lock was alerted beyond warn without saying its \
                     liveness could not be checked: {alerts:#?}"
                )
            },
        );
        run.check(
            alerts.iter().all(|a| a.event_type != "LockResolved"),
            || format!("seed {seed}: \"resolved\" while every lock still exists: {alerts:#?}"),
        );
        for lock in world.stuck.iter().chain([&world.live.lock]) {
            let held = world.held(lock).await;
            run.check(held, || {
                format!("seed {seed}: the lock on {} was released", lock.path)
            });
        }
        run.add_proxy(&proxy);
    }
    run.finish();
}

/// The alerts scenario's repeated alerts (seed 12 at 0.4), made deterministic: a sweep that cannot
/// scan the lock table still lists the `.tflock` files, and a lock file is the primary only when
/// its DynamoDB item was not read. The lock's alert state is kept under the item's location, so
/// judged by the file alone an already alerted lock looked new and was alerted again. Now a lock
/// file is not acted on while a lock table went unread: one alert per stuck lock, read from what
/// the alert topic delivered.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_that_cannot_scan_the_lock_table_does_not_alert_a_lock_file_again() {
    let world = stuck_and_live("faults-scan-fails").await;
    let ledger = world.env.name("ledger");
    create_ledger_table(&world.env, &ledger).await;

    let clean = FaultProxy::start(&world.env.emulator.endpoint, 0, vec![]).await;
    let first = world
        .reaper(&clean.function_aws(&world.env.aws), &ledger)
        .sweep(chrono::Utc::now(), None)
        .await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);

    // Every Scan fails past the SDK's retries: the lock table is not read in this sweep.
    let no_scan = FaultProxy::start(
        &world.env.emulator.endpoint,
        0,
        vec![Rule::new("dynamodb", "Scan", 1.0, Fault::InternalError)],
    )
    .await;
    let second = world
        .reaper(&no_scan.function_aws(&world.env.aws), &ledger)
        .sweep(chrono::Utc::now(), None)
        .await;
    assert!(
        second.incomplete_sources.contains(&world.table),
        "the table should have gone unread: {:?}",
        second.incomplete_sources
    );

    let delivered = world
        .env
        .drain(&world.alerts_queue, Duration::from_secs(3))
        .await;
    let alerts: Vec<DeliveredAlert> = delivered.iter().filter_map(delivered_alert).collect();
    for lock in &world.stuck {
        let stale = alerts
            .iter()
            .filter(|a| a.state_path == lock.path && a.level == "propose-unlock")
            .count();
        assert_eq!(
            stale, 1,
            "{} alerted {stale} times at propose-unlock: {alerts:#?}",
            lock.path
        );
    }
    for lock in world.stuck.iter().chain([&world.live.lock]) {
        assert!(world.held(lock).await, "{} was released", lock.path);
    }
}
