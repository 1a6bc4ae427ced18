//! The reaper against the emulator, through the real Lambda Runtime API (`cargo lambda watch` +
//! `cargo lambda invoke --data-file`) with a real EventBridge scheduled-event JSON, on locks left by
//! real Terraform: one killed mid-apply (dead), one in a live apply that keeps writing state.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lockreaper_core::metrics::emf;
use lockreaper_testkit::lambda::{create_ledger_table, LambdaWatch};
use lockreaper_testkit::{eventually, repo_root, LockMode, Terraform, TestEnv};
use serde_json::Value;

const SECRET: &str = "test-signing-key-0123456789abcdef0123456789";

fn scheduled_event() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("infra/events/scheduled-event.json")).unwrap(),
    )
    .unwrap()
}

struct Deployment {
    table: String,
    bucket: String,
    ledger: String,
    alerts: lockreaper_testkit::notifications::TopicWithQueue,
    namespace: String,
    env: Vec<(String, String)>,
}

async fn deploy(env: &TestEnv, extra: &[(&str, &str)]) -> Deployment {
    let (table, bucket, ledger) = (env.name("locks"), env.name("state"), env.name("ledger"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    create_ledger_table(env, &ledger).await;
    let alerts = env.topic_with_queue("alerts").await;
    let approvals = env.topic_with_queue("approvals").await;
    let secret = env.create_secret("signing", SECRET).await;
    let namespace = format!("LockReaperTest/{}", env.id);
    let mut vars: Vec<(String, String)> = [
        ("LOCK_TABLES", table.as_str()),
        ("LOCK_BUCKETS", bucket.as_str()),
        // The buckets the deployment may read state in, as the template sets it.
        ("STATE_BUCKETS", bucket.as_str()),
        ("LEDGER_TABLE", ledger.as_str()),
        ("ALERT_TOPIC_ARN", alerts.topic_arn.as_str()),
        ("APPROVAL_TOPIC_ARN", approvals.topic_arn.as_str()),
        ("APPROVAL_SECRET_ARN", secret.as_str()),
        ("METRICS_NAMESPACE", namespace.as_str()),
        ("WARN_AFTER", "1s"),
        ("EXPIRE_AFTER", "3s"),
        ("REMIND_EVERY", "1h"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        vars.retain(|(name, _)| name != k);
        vars.push(((*k).to_owned(), (*v).to_owned()));
    }
    Deployment {
        table,
        bucket,
        ledger,
        alerts,
        namespace,
        env: vars,
    }
}

fn locks_by_path<'a>(outcome: &'a Value, path: &str) -> Vec<&'a Value> {
    outcome["locks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["state_path"] == path)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_once_proposes_only_the_dead_lock_and_resolves() {
    let env = TestEnv::new("reaper").await;
    let d = deploy(&env, &[]).await;

    // A dead lock (both stores) and a live apply that writes state while holding its lock.
    let dead_tf = Terraform::init(
        &env,
        &d.bucket,
        "network/terraform.tfstate",
        Some(&d.table),
        LockMode::Both,
    );
    let (code, out) = dead_tf.apply();
    assert_eq!(code, 0, "{out}");
    let dead = dead_tf.stuck();
    let live_tf = Terraform::init(
        &env,
        &d.bucket,
        "app/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    let live = live_tf.hold_live(21);
    let s3 = env.aws.s3();
    eventually(
        "the live apply to persist its state",
        Duration::from_secs(60),
        || {
            let s3 = s3.clone();
            let bucket = d.bucket.clone();
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
    tokio::time::sleep(Duration::from_secs(3)).await; // past EXPIRE_AFTER for both

    let watch = LambdaWatch::start("reaper", d.env.clone()).await;
    let first = watch.invoke("reaper", &scheduled_event()).await;

    let dead_path = format!("{}/network/terraform.tfstate", d.bucket);
    let live_path = format!("{}/app/terraform.tfstate", d.bucket);
    let dead_judged = locks_by_path(&first, &dead_path);
    assert_eq!(
        dead_judged.len(),
        1,
        "both artefacts are one lock: {first:#}"
    );
    assert_eq!(dead_judged[0]["lock_id"], dead.lock_id.as_str());
    assert_eq!(dead_judged[0]["locations"].as_array().unwrap().len(), 2);
    assert_eq!(dead_judged[0]["level"], "propose-unlock", "{first:#}");
    assert!(dead_judged[0]["proposal_id"].is_string());
    let live_judged = locks_by_path(&first, &live_path);
    assert_eq!(live_judged.len(), 1, "{first:#}");
    assert_eq!(live_judged[0]["lock_id"], live.lock.lock_id.as_str());
    assert_eq!(live_judged[0]["alive"], true, "{first:#}");
    assert_eq!(
        live_judged[0]["level"], "warn",
        "a live lock is never proposed: {first:#}"
    );
    assert!(live_judged[0]["proposal_id"].is_null());
    assert_eq!(first["alerts_sent"], 2, "{first:#}");

    let delivered = env.drain(&d.alerts.queue_url, Duration::from_secs(5)).await;
    assert_eq!(delivered.len(), 2, "{delivered:#?}");
    let chat = |path: &str| {
        delivered
            .iter()
            .filter_map(|m| m.json.as_ref())
            .find(|j| j["metadata"]["additionalContext"]["statePath"] == path)
            .unwrap_or_else(|| panic!("no alert for {path}: {delivered:#?}"))
            .clone()
    };
    let dead_chat = chat(&dead_path);
    assert_eq!(dead_chat["version"], "1.0");
    assert_eq!(dead_chat["source"], "custom");
    let token = dead_chat["metadata"]["additionalContext"]["approvalToken"]
        .as_str()
        .unwrap();
    assert!(token.starts_with("lr1.") && !token.contains(' '), "{token}");
    // The chat buttons' `topic` variable (template.yaml: EQUALS this stack's approvals topic).
    let approval_topic = d
        .env
        .iter()
        .find(|(name, _)| name == "APPROVAL_TOPIC_ARN")
        .map(|(_, arn)| arn.as_str());
    assert_eq!(
        dead_chat["metadata"]["additionalContext"]["approvalTopic"].as_str(),
        approval_topic
    );
    assert!(dead_chat["content"]["description"]
        .as_str()
        .unwrap()
        .contains(&dead.lock_id));
    let live_chat = chat(&live_path);
    assert!(live_chat["metadata"]["additionalContext"]["approvalToken"].is_null());
    assert!(live_chat["metadata"]["additionalContext"]["approvalTopic"].is_null());
    assert_ne!(
        dead_chat["metadata"]["threadId"],
        live_chat["metadata"]["threadId"]
    );

    // The proposal is in the ledger, bound to the dead lock.
    let proposal_id = dead_judged[0]["proposal_id"].as_str().unwrap();
    let item = env
        .aws
        .dynamodb()
        .get_item()
        .table_name(&d.ledger)
        .key("pk", AttributeValue::S(format!("proposal#{proposal_id}")))
        .key("sk", AttributeValue::S("proposal".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["status"].as_s().unwrap(), "open");
    assert!(item["proposal"].as_s().unwrap().contains(&dead.lock_id));

    // A second sweep sends nothing new: one alert per lock per level.
    let second = watch.invoke("reaper", &scheduled_event()).await;
    assert_eq!(second["alerts_sent"], 0, "{second:#}");
    assert!(env
        .drain(&d.alerts.queue_url, Duration::from_secs(2))
        .await
        .is_empty());

    // Metrics per lock table and bucket, from the function's EMF output (what CloudWatch Logs
    // extracts from the log group): one value per sweep.
    let emitted = watch.emf_metrics();
    let active = emf::values(
        &emitted,
        &d.namespace,
        "ActiveLocks",
        &[("LockTable", &d.bucket)],
    );
    assert_eq!(active.len(), 2, "one value per sweep: {active:?}");
    assert_eq!(
        active.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        2.0,
        "two lock files in the bucket: {active:?}"
    );
    let oldest = emf::values(
        &emitted,
        &d.namespace,
        "OldestLockAgeSeconds",
        &[("LockTable", &d.table)],
    )
    .into_iter()
    .fold(f64::NEG_INFINITY, f64::max);
    assert!(oldest >= 3.0, "{oldest}");

    // The dead lock is released by hand: the next sweep says "resolved" in its thread.
    let (code, out, err) =
        dead_tf.run(&["force-unlock".into(), "--id".into(), dead.lock_id.clone()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let third = watch.invoke("reaper", &scheduled_event()).await;
    assert_eq!(third["resolved_sent"], 1, "{third:#}");
    let resolved = env.drain(&d.alerts.queue_url, Duration::from_secs(5)).await;
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    let resolved = resolved[0].json.as_ref().unwrap();
    assert_eq!(
        resolved["metadata"]["threadId"],
        dead_chat["metadata"]["threadId"]
    );
    drop(live);
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_expiry_removes_only_stale_unprotected_terraform_locks_and_audits_them() {
    let env = TestEnv::new("autoexp").await;
    let gyro_table = env.name("gyro");
    env.create_lock_table(&gyro_table, "LockKey").await;
    let missing_table = env.name("missing");
    let d = deploy(&env, &[("AUTO_EXPIRE", "true")]).await;
    let mut vars = d.env.clone();
    let protected_glob = format!("{}/protected/*", d.bucket);
    let policy = format!(r#"[{{"path": "{protected_glob}", "auto_expire": false}}]"#);
    vars.retain(|(k, _)| k != "LOCK_TABLES");
    vars.push((
        "LOCK_TABLES".into(),
        format!("{},{},{}", d.table, gyro_table, missing_table),
    ));
    vars.push(("LOCK_POLICY".into(), policy));

    let stale_tf = Terraform::init(
        &env,
        &d.bucket,
        "stale/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    );
    assert_eq!(stale_tf.apply().0, 0);
    let stale = stale_tf.stuck();
    let protected_tf = Terraform::init(
        &env,
        &d.bucket,
        "protected/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    );
    let protected = protected_tf.stuck();
    // Gyro: no timestamp in the item; the ledger says it was first seen an hour ago.
    env.aws
        .dynamodb()
        .put_item()
        .table_name(&gyro_table)
        .item("LockKey", AttributeValue::S("default".into()))
        .item(
            "GyroId",
            AttributeValue::S("adf4feb3-3333-447e-89d9-819da078618d".into()),
        )
        .item(
            "GyroLockInfo",
            AttributeValue::S(
                "Locked by 'gyro-user' running 'up ec2/ami.gyro' at '16:38:29 EDT, Apr-27'.".into(),
            ),
        )
        .send()
        .await
        .unwrap();
    let gyro_location = lockreaper_core::LockLocation::DynamoDb {
        table: gyro_table.clone(),
        key_attribute: "LockKey".into(),
        key: "default".into(),
    };
    lockreaper_aws::ledger::Ledger::new(env.aws.dynamodb(), &d.ledger)
        .record_first_seen(
            &gyro_location,
            "adf4feb3-3333-447e-89d9-819da078618d",
            chrono::Utc::now() - chrono::Duration::hours(1),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let watch = LambdaWatch::start("reaper", vars).await;
    let outcome = watch.invoke("reaper", &scheduled_event()).await;

    // The invocation result is the bounded summary: lists are {count, first}.
    assert_eq!(outcome["unreachable"]["count"], 1, "{outcome:#}");
    assert!(outcome["unreachable"]["first"][0]
        .as_str()
        .unwrap()
        .contains(&missing_table));
    let by_id = |id: &str| {
        outcome["locks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["lock_id"] == id)
            .unwrap_or_else(|| panic!("{id} not judged: {outcome:#}"))
            .clone()
    };
    assert_eq!(by_id(&stale.lock_id)["expired"], "unlocked", "{outcome:#}");
    // Gyro writes nothing lockreaper can see: nothing can tell its holder is alive, so "no sign
    // of life" proves nothing and a person decides.
    let gyro_judged = by_id("adf4feb3-3333-447e-89d9-819da078618d");
    assert!(gyro_judged["expired"].is_null(), "{outcome:#}");
    assert_eq!(gyro_judged["level"], "propose-unlock", "{outcome:#}");
    assert!(gyro_judged["proposal_id"].is_string(), "{outcome:#}");
    assert!(
        gyro_judged["evidence_gaps"][0]
            .as_str()
            .unwrap()
            .contains("a Gyro lock has no state object"),
        "{outcome:#}"
    );
    let protected_judged = by_id(&protected.lock_id);
    assert!(protected_judged["expired"].is_null(), "{outcome:#}");
    assert_eq!(protected_judged["level"], "propose-unlock");

    // Gone from the stores; the protected lock and every digest item are still there.
    let scan = lockreaper_aws::LockTable::new(env.aws.dynamodb(), &d.table)
        .scan(1)
        .await
        .unwrap();
    let ids: Vec<&str> = scan.locks.iter().map(|l| l.lock_id.as_str()).collect();
    assert_eq!(ids, vec![protected.lock_id.as_str()]);
    assert_eq!(
        scan.digests.len(),
        1,
        "the stale state's -md5 digest item is untouched"
    );
    let gyro = lockreaper_aws::LockTable::new(env.aws.dynamodb(), &gyro_table)
        .scan(1)
        .await
        .unwrap();
    assert_eq!(
        gyro.locks.len(),
        1,
        "the Gyro lock is proposed, not expired"
    );

    // Audited first, with the full lock content.
    let trail =
        lockreaper_aws::unlock::audit_trail(&env.aws.dynamodb(), &d.ledger, &stale.path, 10)
            .await
            .unwrap();
    assert_eq!(trail.len(), 1, "{trail:#?}");
    assert_eq!(trail[0].source.as_str(), "auto-expire");
    assert_eq!(trail[0].locks[0].lock_id, stale.lock_id);
    assert!(trail[0].locks[0].raw.contains(&stale.lock_id));

    // Terraform works again on the expired state; the protected one is still blocked.
    let (code, out) = stale_tf.apply();
    assert_eq!(code, 0, "{out}");
    let (code, out) = protected_tf.apply();
    assert_ne!(code, 0);
    assert!(out.contains("Error acquiring the state lock"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reports_and_changes_nothing() {
    let env = TestEnv::new("dryrun").await;
    let d = deploy(&env, &[("AUTO_EXPIRE", "true"), ("DRY_RUN", "true")]).await;
    let tf = Terraform::init(
        &env,
        &d.bucket,
        "dry/terraform.tfstate",
        Some(&d.table),
        LockMode::Both,
    );
    let stuck = tf.stuck();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let watch = LambdaWatch::start("reaper", d.env.clone()).await;
    let outcome = watch.invoke("reaper", &scheduled_event()).await;
    assert_eq!(outcome["dry_run"], true);
    let judged = &outcome["locks"][0];
    assert!(judged.is_object(), "{outcome:#}");
    assert_eq!(judged["lock_id"], stuck.lock_id.as_str());
    assert_eq!(judged["level"], "auto-expire", "{outcome:#}");
    assert!(judged["expired"].is_null());
    assert_eq!(outcome["alerts_sent"], 0);
    assert!(env
        .drain(&d.alerts.queue_url, Duration::from_secs(2))
        .await
        .is_empty());
    let (code, out) = tf.apply();
    assert_ne!(code, 0, "the lock is still there: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_fails_at_start_naming_the_variables() {
    let env = TestEnv::new("badcfg").await;
    let watch = LambdaWatch::start(
        "reaper",
        [
            ("LOCK_BUCKETS", "/nobucket"),
            ("WARN_AFTER", "soon"),
            ("ALERT_TOPIC_ARN", "alerts"),
        ],
    )
    .await;
    let err = watch
        .try_invoke("reaper", &scheduled_event())
        .await
        .unwrap_err();
    let log = watch.log();
    for expected in [
        "LOCK_BUCKETS",
        "WARN_AFTER",
        "ALERT_TOPIC_ARN: \"alerts\" is not the ARN of an SNS topic",
        "LEDGER_TABLE: is not set",
    ] {
        assert!(
            log.contains(expected) || err.contains(expected),
            "{expected:?} not reported:\n{err}\n{log}"
        );
    }
    drop(env);
}

/// The Lambda deadline: a sweep with too little time left starts no lock, says which it did not
/// reach, sends nothing (no half-sent alert, no premature "resolved") and still counts the locks
/// in its metrics; the next sweep picks them up. Called on the library (the same `sweep` the
/// handler calls) because the local Runtime API gives no deadline to run short of.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_cut_short_by_the_deadline_sends_nothing_and_the_next_one_continues() {
    use lockreaper_core::approval::SigningKey;
    use lockreaper_core::config::Env;
    use reaper::{Reaper, ReaperConfig};

    let env = TestEnv::new("deadline").await;
    let d = deploy(&env, &[]).await;
    let mut vars = Env::new(d.env.clone());
    let config = ReaperConfig::from_env(&mut vars);
    let config = vars.finish(config).unwrap();
    let mut reaper = Reaper::new(&env.aws, config, SigningKey::from_secret(SECRET).unwrap());
    let (metrics, emitted) = lockreaper_aws::EmfMetrics::capture(&d.namespace);
    reaper.metrics = metrics;
    let tf = Terraform::init(
        &env,
        &d.bucket,
        "late/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    );
    let stuck = tf.stuck();
    tokio::time::sleep(Duration::from_secs(2)).await; // past WARN_AFTER

    let almost_out_of_time = Some(std::time::Instant::now() + Duration::from_secs(1));
    let cut_short = reaper.sweep(chrono::Utc::now(), almost_out_of_time).await;
    assert!(cut_short.locks.is_empty(), "{cut_short:#?}");
    assert_eq!(
        cut_short.not_reached,
        vec![format!(
            "dynamodb://{} (LockID = \"{}/late/terraform.tfstate\")",
            d.table, d.bucket
        )],
    );
    assert_eq!(cut_short.alerts_sent, 0);
    let active = emitted.values(&d.namespace, "ActiveLocks", &[("LockTable", &d.table)]);
    assert_eq!(active, [1.0], "a lock not reached is still counted");

    let full = reaper.sweep(chrono::Utc::now(), None).await;
    assert!(full.not_reached.is_empty());
    assert_eq!(full.locks.len(), 1, "{full:#?}");
    assert_eq!(full.locks[0].lock_id, stuck.lock_id);
    assert_eq!(full.alerts_sent, 1);
    assert_eq!(
        env.drain(&d.alerts.queue_url, Duration::from_secs(5))
            .await
            .len(),
        1
    );

    // Released by hand; a sweep cut short must not conclude it is gone, the next full one does.
    let (code, out, err) = tf.run(&["force-unlock".into(), "--id".into(), stuck.lock_id.clone()]);
    assert_eq!(code, 0, "{out}\n{err}");
    // Another stuck lock, so that the sweep cut short has something it did not reach.
    Terraform::init(
        &env,
        &d.bucket,
        "other/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    )
    .stuck();
    let cut_short = reaper
        .sweep(chrono::Utc::now(), Some(std::time::Instant::now()))
        .await;
    assert_eq!(cut_short.not_reached.len(), 1, "{cut_short:#?}");
    assert_eq!(cut_short.resolved_sent, 0, "{cut_short:#?}");
    let full = reaper.sweep(chrono::Utc::now(), None).await;
    assert_eq!(full.resolved_sent, 1, "{full:#?}");
    assert_eq!(full.locks.len(), 1, "{full:#?}");
}

/// Issue 11 item 2: "could not check" is never "no sign of life". A live apply (real Terraform,
/// writing state while it holds its DynamoDB lock) under `AUTO_EXPIRE=true`, with the state
/// bucket unreachable for the reaper (its S3 endpoint is cut; everything else answers): the lock is
/// proposed, never released, and the alert says which evidence could not be read. Once S3 answers
/// again, the next sweep sees the holder alive and withdraws that proposal in the lock's thread
/// (item 1).
#[tokio::test(flavor = "multi_thread")]
async fn auto_expiry_never_releases_a_lock_whose_liveness_could_not_be_read() {
    use lockreaper_testkit::cuttable::CuttableEndpoint;
    use lockreaper_testkit::Emulator;

    let env = TestEnv::new("unread").await;
    let d = deploy(&env, &[("AUTO_EXPIRE", "true")]).await;
    let s3_endpoint = CuttableEndpoint::to(&Emulator::shared().endpoint).await;
    let mut vars = d.env.clone();
    // Only the lock table is swept: the one S3 read left is the liveness check of the state.
    vars.retain(|(k, _)| k != "LOCK_BUCKETS");
    vars.push(("AWS_ENDPOINT_URL_S3".into(), s3_endpoint.url().to_owned()));

    let tf = Terraform::init(
        &env,
        &d.bucket,
        "busy/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    );
    let live = tf.hold_live(21);
    let s3 = env.aws.s3();
    let written = eventually(
        "the live apply to persist its state",
        Duration::from_secs(60),
        || {
            let s3 = s3.clone();
            let bucket = d.bucket.clone();
            async move {
                s3.head_object()
                    .bucket(bucket)
                    .key("busy/terraform.tfstate")
                    .send()
                    .await
                    .ok()
            }
        },
    )
    .await;
    assert!(written.last_modified.is_some());
    tokio::time::sleep(Duration::from_secs(4)).await; // past EXPIRE_AFTER

    let watch = LambdaWatch::start("reaper", vars).await;
    s3_endpoint.cut();
    let outcome = watch.invoke("reaper", &scheduled_event()).await;
    s3_endpoint.restore();

    let path = format!("{}/busy/terraform.tfstate", d.bucket);
    let judged = locks_by_path(&outcome, &path);
    assert_eq!(judged.len(), 1, "{outcome:#}");
    let judged = judged[0];
    assert_eq!(judged["lock_id"], live.lock.lock_id.as_str());
    assert!(
        judged["expired"].is_null(),
        "a lock whose liveness could not be read was expired: {outcome:#}"
    );
    assert_eq!(judged["level"], "propose-unlock", "{outcome:#}");
    let gaps = judged["evidence_gaps"].as_array().unwrap();
    assert!(
        gaps.iter().any(|g| g
            .as_str()
            .unwrap()
            .starts_with("could not check the state object (")),
        "{outcome:#}"
    );

    // Still held, by the same apply.
    let scan = lockreaper_aws::LockTable::new(env.aws.dynamodb(), &d.table)
        .scan(1)
        .await
        .unwrap();
    let ids: Vec<&str> = scan.locks.iter().map(|l| l.lock_id.as_str()).collect();
    assert_eq!(ids, vec![live.lock.lock_id.as_str()]);
    let trail = lockreaper_aws::unlock::audit_trail(&env.aws.dynamodb(), &d.ledger, &path, 10)
        .await
        .unwrap();
    assert!(trail.is_empty(), "nothing was released: {trail:#?}");

    // The alert proposes (a person decides) and says why lockreaper did not release it.
    let delivered = env.drain(&d.alerts.queue_url, Duration::from_secs(5)).await;
    let chat = delivered
        .iter()
        .filter_map(|m| m.json.as_ref())
        .find(|j| j["metadata"]["additionalContext"]["statePath"] == path.as_str())
        .unwrap_or_else(|| panic!("no alert for {path}: {delivered:#?}"));
    assert!(chat["metadata"]["additionalContext"]["approvalToken"].is_string());
    let description = chat["content"]["description"]
        .as_str()
        .unwrap()
        .to_lowercase();
    for expected in [
        "could not check the state object",
        "a lock whose liveness cannot be checked is never released automatically",
        "although auto-expiry is on for this path, lockreaper does not release it",
    ] {
        assert!(
            description.contains(expected),
            "{expected:?} missing:\n{description}"
        );
    }

    // S3 answers again: the state written after the lock was taken shows the holder alive, so
    // the proposal made without that evidence is withdrawn, and its thread says so.
    let proposal_id = judged["proposal_id"].as_str().unwrap().to_owned();
    let thread = chat["metadata"]["threadId"].clone();
    let seen = watch.invoke("reaper", &scheduled_event()).await;
    let now_judged = locks_by_path(&seen, &path);
    assert_eq!(now_judged[0]["alive"], true, "{seen:#}");
    assert_eq!(now_judged[0]["level"], "warn", "{seen:#}");
    assert_eq!(
        now_judged[0]["withdrawn"],
        serde_json::json!([proposal_id]),
        "{seen:#}"
    );
    let record = lockreaper_aws::Proposals::new(env.aws.dynamodb(), &d.ledger)
        .record(&proposal_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.status,
        lockreaper_core::proposal::ProposalStatus::Withdrawn
    );
    let told = env.drain(&d.alerts.queue_url, Duration::from_secs(5)).await;
    let withdrawn = told
        .iter()
        .filter_map(|m| m.json.as_ref())
        .find(|j| j["metadata"]["threadId"] == thread)
        .unwrap_or_else(|| panic!("no message in the lock's thread: {told:#?}"));
    let text = withdrawn["content"]["description"].as_str().unwrap();
    assert!(text.contains("the holder is alive"), "{text}");
    assert!(text.contains("Nothing was deleted"), "{text}");
    drop(live);
}

/// Issue 11 item 4: a sweep that could not read a bucket says nothing about the locks in it. A
/// real Terraform lock file is alerted on; the next sweep cannot reach S3 (its endpoint is cut):
/// no "resolved" message, the alert state is kept (so the sweep after that does not alert
/// afresh); once the lock is really released, "resolved" follows.
#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_not_read_in_a_sweep_gets_no_false_resolved_message() {
    use lockreaper_testkit::cuttable::CuttableEndpoint;
    use lockreaper_testkit::Emulator;

    let env = TestEnv::new("unreadbkt").await;
    let d = deploy(&env, &[]).await;
    let s3_endpoint = CuttableEndpoint::to(&Emulator::shared().endpoint).await;
    let mut vars = d.env.clone();
    vars.push(("AWS_ENDPOINT_URL_S3".into(), s3_endpoint.url().to_owned()));
    let tf = Terraform::init(
        &env,
        &d.bucket,
        "files/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    let stuck = tf.stuck();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let watch = LambdaWatch::start("reaper", vars).await;
    let first = watch.invoke("reaper", &scheduled_event()).await;
    assert_eq!(first["alerts_sent"], 1, "{first:#}");
    assert_eq!(
        env.drain(&d.alerts.queue_url, Duration::from_secs(5))
            .await
            .len(),
        1
    );

    s3_endpoint.cut();
    let blind = watch.invoke("reaper", &scheduled_event()).await;
    s3_endpoint.restore();
    assert_eq!(blind["resolved_sent"], 0, "{blind:#}");
    assert!(
        blind["incomplete_sources"]["first"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == d.bucket.as_str()),
        "{blind:#}"
    );
    assert!(env
        .drain(&d.alerts.queue_url, Duration::from_secs(3))
        .await
        .is_empty());

    let again = watch.invoke("reaper", &scheduled_event()).await;
    assert_eq!(again["resolved_sent"], 0, "{again:#}");
    assert_eq!(
        again["alerts_sent"], 0,
        "the alert state survived: {again:#}"
    );

    let (code, out, err) = tf.run(&["force-unlock".into(), "--id".into(), stuck.lock_id.clone()]);
    assert_eq!(code, 0, "{out}\n{err}");
    let after = watch.invoke("reaper", &scheduled_event()).await;
    assert_eq!(after["resolved_sent"], 1, "{after:#}");
}

/// Issue 11 item 2, a missing evidence source: a lock table created without a stream (so
/// lock-metrics never sees its state writes). With `AUTO_EXPIRE=true` a stuck real Terraform lock
/// in it is proposed, never released, and the alert names the missing stream.
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_table_without_a_stream_blocks_auto_expiry() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };

    let env = TestEnv::new("nostream").await;
    let d = deploy(&env, &[("AUTO_EXPIRE", "true")]).await;
    let table = env.name("nostream");
    env.aws
        .dynamodb()
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("LockID")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("LockID")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let mut vars = d.env.clone();
    vars.retain(|(k, _)| k != "LOCK_TABLES" && k != "LOCK_BUCKETS");
    vars.push(("LOCK_TABLES".into(), table.clone()));
    let tf = Terraform::init(
        &env,
        &d.bucket,
        "quiet/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let stuck = tf.stuck();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let watch = LambdaWatch::start("reaper", vars).await;
    let outcome = watch.invoke("reaper", &scheduled_event()).await;
    let path = format!("{}/quiet/terraform.tfstate", d.bucket);
    let judged = locks_by_path(&outcome, &path);
    assert_eq!(judged.len(), 1, "{outcome:#}");
    assert!(judged[0]["expired"].is_null(), "{outcome:#}");
    assert_eq!(judged[0]["level"], "propose-unlock", "{outcome:#}");
    assert!(
        judged[0]["evidence_gaps"][0]
            .as_str()
            .unwrap()
            .contains(&format!("lock table {table} has no stream")),
        "{outcome:#}"
    );
    let scan = lockreaper_aws::LockTable::new(env.aws.dynamodb(), &table)
        .scan(1)
        .await
        .unwrap();
    assert_eq!(scan.locks.len(), 1, "the lock is still there");
    assert_eq!(scan.locks[0].lock_id, stuck.lock_id);
}

/// Issue 11, item 3: the policy is chosen by where a lock is stored, never by the `Path` its own
/// JSON claims. A lock stored under a path whose policy says `auto_expire: false`, whose `Info`
/// was rewritten to name an unprotected path, is judged by the protected path's policy, reported as
/// suspicious, and never expired (before, its claimed path's policy applied and auto-expiry
/// deleted it).
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_claiming_another_path_is_judged_where_it_is_stored_and_never_auto_expired() {
    let env = TestEnv::new("disguised").await;
    let d = deploy(&env, &[("AUTO_EXPIRE", "true")]).await;
    let mut vars = d.env.clone();
    let protected_glob = format!("{}/protected/*", d.bucket);
    vars.push((
        "LOCK_POLICY".into(),
        format!(r#"[{{"path": "{protected_glob}", "auto_expire": false}}]"#),
    ));
    let tf = Terraform::init(
        &env,
        &d.bucket,
        "protected/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    );
    let stuck = tf.stuck();
    // Rewrite the lock's own JSON to claim an unprotected path (Terraform never does this; a buggy
    // or hostile writer could).
    let key = AttributeValue::S(stuck.path.clone());
    let item = env
        .aws
        .dynamodb()
        .get_item()
        .table_name(&d.table)
        .key("LockID", key.clone())
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut info: Value = serde_json::from_str(item["Info"].as_s().unwrap()).unwrap();
    let claimed = format!("{}/scratch/terraform.tfstate", d.bucket);
    info["Path"] = Value::String(claimed.clone());
    let rewritten = info.to_string();
    env.aws
        .dynamodb()
        .put_item()
        .table_name(&d.table)
        .item("LockID", key.clone())
        .item("Info", AttributeValue::S(rewritten.clone()))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let watch = LambdaWatch::start("reaper", vars).await;
    let outcome = watch.invoke("reaper", &scheduled_event()).await;
    let judged = locks_by_path(&outcome, &stuck.path);
    assert_eq!(judged.len(), 1, "judged where it is stored: {outcome:#}");
    let judged = judged[0];
    assert!(judged["expired"].is_null(), "{outcome:#}");
    assert_eq!(judged["level"], "propose-unlock", "{outcome:#}");
    let reasons = judged["reasons"].to_string();
    assert!(
        reasons.contains(&protected_glob),
        "the protected path's policy: {reasons}"
    );
    assert!(reasons.contains("suspicious"), "{reasons}");
    assert!(reasons.contains(&claimed), "{reasons}");
    assert!(locks_by_path(&outcome, &claimed).is_empty(), "{outcome:#}");

    // Still there, exactly as rewritten.
    let still = env
        .aws
        .dynamodb()
        .get_item()
        .table_name(&d.table)
        .key("LockID", key)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the lock is still held");
    assert_eq!(still["Info"].as_s().unwrap(), &rewritten);
}

/// Issue 17, evidence coverage: a real Terraform lock (killed mid-apply, stale, silent) in the
/// deployment's lock table whose state lives in a bucket the deployment does not cover (not in
/// `STATE_BUCKETS`). On the emulator there is no IAM, so the state object *can* be read, which is
/// why coverage is decided from the configuration: with `AUTO_EXPIRE=true` the lock is proposed,
/// never released, and the alert says the state bucket is not covered. (Before, the read
/// succeeded here, nothing was missing, and the lock was expired; in AWS the read was refused and
/// reported as a failed read.)
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_whose_state_bucket_is_not_covered_is_proposed_never_auto_expired() {
    let env = TestEnv::new("uncovered").await;
    let d = deploy(&env, &[("AUTO_EXPIRE", "true")]).await;
    let elsewhere = env.name("elsewhere");
    env.create_state_bucket(&elsewhere).await;
    let tf = Terraform::init(
        &env,
        &elsewhere,
        "team-b/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "{out}");
    let stuck = tf.stuck();
    // Readable with the emulator's (IAM-less) credentials: a read would have "worked".
    env.aws
        .s3()
        .head_object()
        .bucket(&elsewhere)
        .key("team-b/terraform.tfstate")
        .send()
        .await
        .expect("the emulator lets anyone read the state");
    tokio::time::sleep(Duration::from_secs(4)).await; // past EXPIRE_AFTER

    let watch = LambdaWatch::start("reaper", d.env.clone()).await;
    let outcome = watch.invoke("reaper", &scheduled_event()).await;
    let path = format!("{elsewhere}/team-b/terraform.tfstate");
    let judged = locks_by_path(&outcome, &path);
    assert_eq!(judged.len(), 1, "{outcome:#}");
    let judged = judged[0];
    assert_eq!(judged["lock_id"], stuck.lock_id.as_str());
    assert!(
        judged["expired"].is_null(),
        "a lock whose state is not covered was expired: {outcome:#}"
    );
    assert_eq!(judged["level"], "propose-unlock", "{outcome:#}");
    let not_covered = format!(
        "cannot tell — the state bucket `{elsewhere}` is not covered by this deployment (StateBuckets/StateKeyPrefix)"
    );
    let gaps = judged["evidence_gaps"].as_array().unwrap();
    assert!(
        gaps.iter()
            .any(|g| g.as_str().unwrap().starts_with(&not_covered)),
        "{outcome:#}"
    );
    // Configuration, not a failed read: the sweep has no error to report.
    assert_eq!(outcome["errors"]["count"], 0, "{outcome:#}");

    // Still held, nothing audited as released.
    let scan = lockreaper_aws::LockTable::new(env.aws.dynamodb(), &d.table)
        .scan(1)
        .await
        .unwrap();
    let ids: Vec<&str> = scan.locks.iter().map(|l| l.lock_id.as_str()).collect();
    assert_eq!(ids, vec![stuck.lock_id.as_str()]);
    let trail = lockreaper_aws::unlock::audit_trail(&env.aws.dynamodb(), &d.ledger, &path, 10)
        .await
        .unwrap();
    assert!(trail.is_empty(), "nothing was released: {trail:#?}");

    // The alert proposes (a person decides) and names the coverage gap.
    let delivered = env.drain(&d.alerts.queue_url, Duration::from_secs(5)).await;
    let chat = delivered
        .iter()
        .filter_map(|m| m.json.as_ref())
        .find(|j| j["metadata"]["additionalContext"]["statePath"] == path.as_str())
        .unwrap_or_else(|| panic!("no alert for {path}: {delivered:#?}"));
    assert!(chat["metadata"]["additionalContext"]["approvalToken"].is_string());
    let description = chat["content"]["description"].as_str().unwrap();
    for expected in [
        not_covered.as_str(),
        "although auto-expiry is on for this path, lockreaper does not release it",
    ] {
        assert!(
            description
                .to_lowercase()
                .contains(&expected.to_lowercase()),
            "{expected:?} missing:\n{description}"
        );
    }
}

/// Issue 17, coverage found when reading: the state bucket is configured, but S3 refuses the
/// reaper's read of the state object (403 `AccessDenied`, as a bucket policy or an SCP would, from
/// the fault proxy). With `AUTO_EXPIRE=true` the stale real Terraform lock is proposed, never
/// released, and the gap says the bucket is not covered because the read was denied.
#[tokio::test(flavor = "multi_thread")]
async fn a_denied_state_read_is_a_coverage_gap_and_blocks_auto_expiry() {
    use lockreaper_testkit::faults::{Fault, FaultProxy, Rule};
    use lockreaper_testkit::Emulator;

    let env = TestEnv::new("denied").await;
    let d = deploy(&env, &[("AUTO_EXPIRE", "true")]).await;
    let tf = Terraform::init(
        &env,
        &d.bucket,
        "guarded/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "{out}");
    let stuck = tf.stuck();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let proxy = FaultProxy::start(
        &Emulator::shared().endpoint,
        17,
        vec![Rule::new("s3", "HeadObject", 1.0, Fault::AccessDenied)],
    )
    .await;
    let mut vars = d.env.clone();
    // Only the lock table is swept: the one S3 read left is the state object's HeadObject.
    vars.retain(|(k, _)| k != "LOCK_BUCKETS");
    vars.push(("AWS_ENDPOINT_URL_S3".into(), proxy.url().to_owned()));
    let watch = LambdaWatch::start("reaper", vars).await;
    let outcome = watch.invoke("reaper", &scheduled_event()).await;
    assert!(
        proxy.faulted_count("s3", "HeadObject", "AccessDenied") >= 1,
        "{}",
        proxy.report()
    );

    let judged = locks_by_path(&outcome, &stuck.path);
    assert_eq!(judged.len(), 1, "{outcome:#}");
    assert!(judged[0]["expired"].is_null(), "{outcome:#}");
    assert_eq!(judged[0]["level"], "propose-unlock", "{outcome:#}");
    let expected = format!(
        "cannot tell — the state bucket `{}` is not covered by this deployment (StateBuckets/StateKeyPrefix): reading s3://{}/guarded/terraform.tfstate was denied (",
        d.bucket, d.bucket
    );
    assert!(
        judged[0]["evidence_gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g.as_str().unwrap().starts_with(&expected)),
        "{outcome:#}"
    );
    let scan = lockreaper_aws::LockTable::new(env.aws.dynamodb(), &d.table)
        .scan(1)
        .await
        .unwrap();
    let ids: Vec<&str> = scan.locks.iter().map(|l| l.lock_id.as_str()).collect();
    assert_eq!(ids, vec![stuck.lock_id.as_str()]);
}

/// Issue 15: with S3-native locking only (no DynamoDB table), a state write lock-metrics recorded
/// from the state bucket's S3 events (`state#<bucket>/<key>` in the ledger, exactly as a `-md5`
/// digest change on a stream) is liveness evidence for the lock file: the decision keeps the
/// lock whose holder wrote state after taking it, and auto-expires the silent one.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_write_from_s3_events_keeps_a_lock_file_from_auto_expiry() {
    let env = TestEnv::new("s3evlive").await;
    let d = deploy(&env, &[("AUTO_EXPIRE", "true")]).await;
    let mut vars = d.env.clone();
    vars.retain(|(k, _)| k != "LOCK_TABLES");
    let writing = Terraform::init(
        &env,
        &d.bucket,
        "writing/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    assert_eq!(writing.apply().0, 0);
    let writing_lock = writing.stuck();
    let silent = Terraform::init(
        &env,
        &d.bucket,
        "silent/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    assert_eq!(silent.apply().0, 0);
    let silent_lock = silent.stuck();
    assert!(writing_lock.lockfile && !writing_lock.dynamodb);
    // What lock-metrics records for the state object's `Object Created` event
    // (functions/lock-metrics/tests/s3_events.rs feeds the real events through it).
    lockreaper_aws::ledger::Ledger::new(env.aws.dynamodb(), &d.ledger)
        .record_state_write(&writing_lock.path, chrono::Utc::now(), None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let watch = LambdaWatch::start("reaper", vars).await;
    let outcome = watch.invoke("reaper", &scheduled_event()).await;
    let alive = locks_by_path(&outcome, &writing_lock.path);
    assert_eq!(alive.len(), 1, "{outcome:#}");
    assert!(alive[0]["expired"].is_null(), "{outcome:#}");
    let dead = locks_by_path(&outcome, &silent_lock.path);
    assert_eq!(dead.len(), 1, "{outcome:#}");
    assert_eq!(dead[0]["expired"], "unlocked", "{outcome:#}");
    // The lock file whose holder wrote state is still there.
    let files = lockreaper_aws::LockFiles::new(env.aws.s3());
    assert!(files
        .read(&d.bucket, "writing/terraform.tfstate.tflock")
        .await
        .unwrap()
        .is_some());
    assert!(files
        .read(&d.bucket, "silent/terraform.tfstate.tflock")
        .await
        .unwrap()
        .is_none());
}

/// The kill switch (`UNLOCKS_PAUSED=true`) with `AUTO_EXPIRE=true`: a dead lock (real Terraform,
/// killed mid-apply) that auto-expiry would release is proposed instead, its alert says unlocks
/// are paused and by which parameter, and nothing is deleted. The same sweep unpaused releases it,
/// so it was the switch, not missing evidence, that held it. Called on the library (the `sweep` the
/// handler calls), configured from the environment as at a cold start.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_stack_proposes_what_auto_expiry_would_release_and_deletes_nothing() {
    use lockreaper_core::approval::SigningKey;
    use lockreaper_core::config::Env;
    use lockreaper_core::policy::Level;
    use reaper::{Reaper, ReaperConfig};

    let env = TestEnv::new("paused").await;
    let d = deploy(&env, &[("AUTO_EXPIRE", "true")]).await;
    let reaper_with = |unlocks_paused: &str| {
        let mut vars = d.env.clone();
        vars.push(("UNLOCKS_PAUSED".into(), unlocks_paused.into()));
        let mut vars = Env::new(vars);
        let config = ReaperConfig::from_env(&mut vars);
        let config = vars.finish(config).unwrap();
        Reaper::new(&env.aws, config, SigningKey::from_secret(SECRET).unwrap())
    };
    let tf = Terraform::init(
        &env,
        &d.bucket,
        "dead/terraform.tfstate",
        Some(&d.table),
        LockMode::DynamoDb,
    );
    assert_eq!(tf.apply().0, 0);
    let stuck = tf.stuck();
    tokio::time::sleep(Duration::from_secs(4)).await; // past EXPIRE_AFTER

    let paused = reaper_with("true").sweep(chrono::Utc::now(), None).await;
    assert_eq!(paused.locks.len(), 1, "{paused:#?}");
    let judged = &paused.locks[0];
    assert_eq!(judged.lock_id, stuck.lock_id);
    assert_eq!(judged.level, Level::ProposeUnlock, "{judged:#?}");
    assert_eq!(judged.expired, None, "{judged:#?}");
    assert!(judged.evidence_gaps.is_empty(), "{judged:#?}");
    assert!(judged.proposal_id.is_some(), "{judged:#?}");
    let lock_item = env
        .aws
        .dynamodb()
        .get_item()
        .table_name(&d.table)
        .key("LockID", AttributeValue::S(stuck.path.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(lock_item.item.is_some(), "nothing was deleted");
    let alerts = env.drain(&d.alerts.queue_url, Duration::from_secs(5)).await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let chat = alerts[0].json.as_ref().unwrap().to_string().to_lowercase();
    assert!(
        chat.contains("unlocks are paused on this stack (unlockspaused=true): lockreaper does not release it although auto-expiry would"),
        "{chat}"
    );
    assert!(!chat.contains("lockreaper releases it"), "{chat}");

    // Unpaused, the same lock is released by auto-expiry: the switch was what held it.
    let resumed = reaper_with("false").sweep(chrono::Utc::now(), None).await;
    assert_eq!(resumed.locks.len(), 1, "{resumed:#?}");
    assert_eq!(
        resumed.locks[0].expired.as_deref(),
        Some("unlocked"),
        "{resumed:#?}"
    );
}
