//! lock-metrics' second event source against the emulator: S3 `Object Created` / `Object Deleted`
//! events from EventBridge, for Terraform's S3-native lock files with **no DynamoDB lock table**.
//!
//! The events are the ones ministack's EventBridge delivered to an SQS target for real Terraform
//! 1.15 `use_lockfile = true` applies (`infra/fixtures/s3-events/terraform-lockfile-events.json`,
//! written by `infra/fixtures/capture_s3_events.py`; moto's delivery has a constant `sequencer`
//! and a numeric `time`, not AWS's shape). Each test moves them to its own bucket (only the
//! bucket name changes) and feeds them through the function's own entry point, in-process, with
//! the emulator as the ledger. Metrics are read from the EMF lines, as CloudWatch extracts them.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use common::*;
use lambda_runtime::{Context, LambdaEvent};
use lock_metrics::s3_events::S3EventOutcome;
use lock_metrics::LockMetrics;
use lockreaper_aws::liveness::gather_liveness;
use lockreaper_aws::state::StateObjects;
use lockreaper_aws::unlock::{UnlockRequest, UnlockResult, Unlocker};
use lockreaper_aws::LockFiles;
use lockreaper_core::approval::ApprovalSource;
use lockreaper_core::s3_events::{ObjectChange, Sequencer};
use lockreaper_core::LockLocation;
use lockreaper_testkit::{LockMode, Terraform};
use serde_json::{json, Value};

const CAPTURED: &str =
    include_str!("../../../infra/fixtures/s3-events/terraform-lockfile-events.json");
const KIND: Option<&str> = Some("terraform-s3-lockfile");

/// The captured events, moved to `bucket`.
fn captured(bucket: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(CAPTURED).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e["detail"]["bucket"]["name"] = json!(bucket);
            e["resources"] = json!([format!("arn:aws:s3:::{bucket}")]);
            e
        })
        .collect()
}

fn time_of(e: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(e["time"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn function(setup: &Setup) -> LockMetrics {
    LockMetrics::new(setup.ledger(), setup.metrics_sink())
}

fn outcome_name(o: &S3EventOutcome) -> &'static str {
    match o {
        S3EventOutcome::Counted(_) => "counted",
        S3EventOutcome::Duplicate(_) => "duplicate",
        S3EventOutcome::Ignored(_) => "ignored",
        S3EventOutcome::Unparseable { .. } => "unparseable",
    }
}

#[tokio::test]
async fn terraform_lock_files_in_delivery_order_give_the_stream_paths_metrics() {
    let setup = Setup::new("s3-events-in-order").await;
    let bucket = setup.env.name("state");
    let events = captured(&bucket);
    let f = function(&setup);
    for e in &events {
        let outcome = f.process_s3_event(e, Utc::now()).await.unwrap();
        assert_eq!(outcome_name(&outcome), "counted", "{e}");
    }
    assert_eq!(setup.count("LocksAcquired", &bucket, KIND).await, 4.0);
    assert_eq!(setup.count("LocksReleased", &bucket, KIND).await, 3.0);
    assert_eq!(setup.count("StateWrites", &bucket, KIND).await, 3.0);
    assert_eq!(setup.count("ForcedReleases", &bucket, KIND).await, 0.0);
    // One hold time per release, from its own acquisition's event time.
    let holds = setup
        .metric("LockHoldSeconds", &bucket, KIND, "SampleCount")
        .await;
    assert_eq!(holds, Some(3.0));
    let longest = (0..events.len())
        .filter(|&i| events[i]["detail-type"] == "Object Deleted")
        .map(|i| (time_of(&events[i]) - time_of(&events[i - 2])).num_milliseconds())
        .max()
        .unwrap();
    let max = setup
        .metric("LockHoldSeconds", &bucket, KIND, "Maximum")
        .await
        .unwrap();
    assert_eq!(max, ((longest + 500) / 1000) as f64);
    // The same dimensions as the stream path, the store in the kind's value.
    assert_eq!(setup.dimension_names().await, ["LockKind", "LockTable"]);

    let ledger = setup.ledger();
    // State writes of every workspace, as proof of life.
    let default_write = ledger
        .last_state_write(&format!("{bucket}/app/terraform.tfstate"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(default_write.written_at, time_of(&events[1]));
    assert_eq!(default_write.digest, None);
    let staging_write = ledger
        .last_state_write(&format!("{bucket}/env:/staging/app/terraform.tfstate"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(staging_write.written_at, time_of(&events[7]));
    // The killed apply's lock file is held; the staging workspace's was released.
    assert!(ledger
        .lock_file_history(&bucket, "app/terraform.tfstate.tflock")
        .await
        .unwrap()
        .is_held());
    assert!(!ledger
        .lock_file_history(&bucket, "env:/staging/app/terraform.tfstate.tflock")
        .await
        .unwrap()
        .is_held());
}

#[tokio::test]
async fn late_duplicated_and_reordered_events_count_once_and_never_make_a_wrong_hold() {
    let setup = Setup::new("s3-events-reordered").await;
    let bucket = setup.env.name("state");
    let events = captured(&bucket);
    let f = function(&setup);
    // Every release arrives before its acquisition.
    let mut outcomes = Vec::new();
    for e in events.iter().rev() {
        outcomes.push(outcome_name(
            &f.process_s3_event(e, Utc::now()).await.unwrap(),
        ));
    }
    assert!(outcomes.iter().all(|o| *o == "counted"), "{outcomes:?}");
    // EventBridge retries every event; S3 sends a duplicate of one operation with a new event ID.
    for e in &events {
        let outcome = f.process_s3_event(e, Utc::now()).await.unwrap();
        assert_eq!(outcome_name(&outcome), "duplicate", "{e}");
    }
    let mut duplicate = events[0].clone();
    duplicate["id"] = json!("a-new-event-id-for-the-same-operation");
    let outcome = f.process_s3_event(&duplicate, Utc::now()).await.unwrap();
    assert_eq!(outcome_name(&outcome), "duplicate");

    assert_eq!(setup.count("LocksAcquired", &bucket, KIND).await, 4.0);
    assert_eq!(setup.count("LocksReleased", &bucket, KIND).await, 3.0);
    assert_eq!(setup.count("StateWrites", &bucket, KIND).await, 3.0);
    // No release had its acquisition recorded before it: no hold time rather than a wrong one.
    assert_eq!(
        setup
            .metric("LockHoldSeconds", &bucket, KIND, "SampleCount")
            .await,
        None
    );
    let ledger = setup.ledger();
    // The last state write wins, whatever arrived last.
    let staging_write = ledger
        .last_state_write(&format!("{bucket}/env:/staging/app/terraform.tfstate"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(staging_write.written_at, time_of(&events[7]));
    // The released lock is not live although its acquisition arrived last; the stuck one is.
    assert!(!ledger
        .lock_file_history(&bucket, "env:/staging/app/terraform.tfstate.tflock")
        .await
        .unwrap()
        .is_held());
    assert!(ledger
        .lock_file_history(&bucket, "app/terraform.tfstate.tflock")
        .await
        .unwrap()
        .is_held());
    // Every operation is claimed once, by object and sequencer.
    let mut claimed = HashSet::new();
    for e in &events {
        let change = if e["detail-type"] == "Object Created" {
            ObjectChange::Created
        } else {
            ObjectChange::Deleted
        };
        let key = e["detail"]["object"]["key"].as_str().unwrap();
        let seq = Sequencer::parse(e["detail"]["object"]["sequencer"].as_str().unwrap()).unwrap();
        assert!(ledger
            .is_s3_event_claimed(&bucket, key, change, &seq)
            .await
            .unwrap());
        claimed.insert((key.to_owned(), seq));
    }
    assert_eq!(claimed.len(), events.len());
}

#[tokio::test]
async fn a_release_lockreaper_forced_is_counted_as_forced() {
    let setup = Setup::new("s3-events-forced").await;
    let bucket = setup.env.name("state");
    let events = captured(&bucket);
    let f = function(&setup);
    // The Unlocker marks the lock as forced before it deletes the lock file (events[2]).
    f.process_s3_event(&events[0], Utc::now()).await.unwrap();
    let location = LockLocation::S3 {
        bucket: bucket.clone(),
        key: "app/terraform.tfstate.tflock".to_owned(),
    };
    setup
        .ledger()
        .record_forced_release(
            &location,
            "5b8f0c1e-0000-4000-8000-000000000000",
            time_of(&events[2]) - ChronoDuration::milliseconds(20),
            "alice",
        )
        .await
        .unwrap();
    f.process_s3_event(&events[2], Utc::now()).await.unwrap();
    assert_eq!(setup.count("ForcedReleases", &bucket, KIND).await, 1.0);
    assert_eq!(setup.count("LocksReleased", &bucket, KIND).await, 1.0);
    // The staging workspace's release was not forced: no marker at its location.
    f.process_s3_event(&events[3], Utc::now()).await.unwrap();
    f.process_s3_event(&events[5], Utc::now()).await.unwrap();
    assert_eq!(setup.count("ForcedReleases", &bucket, KIND).await, 1.0);
    assert_eq!(setup.count("LocksReleased", &bucket, KIND).await, 2.0);
}

#[tokio::test]
async fn unreadable_events_are_counted_and_not_retried() {
    let setup = Setup::new("s3-events-unreadable").await;
    let bucket = setup.env.name("state");
    let f = function(&setup);
    // What moto 5.2.5 delivers: `time` as a number.
    let mut moto_shaped = captured(&bucket)[0].clone();
    moto_shaped["time"] = json!(1_764_528_327);
    match f.process_s3_event(&moto_shaped, Utc::now()).await.unwrap() {
        S3EventOutcome::Unparseable { reason } => assert!(reason.contains("`time`"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(setup.count("UnparseableRecords", &bucket, None).await, 1.0);
    assert_eq!(setup.count("LocksAcquired", &bucket, KIND).await, 0.0);
}

#[tokio::test]
async fn the_lambda_entry_point_takes_eventbridge_events() {
    let setup = Setup::new("s3-events-handler").await;
    let bucket = setup.env.name("state");
    let events = captured(&bucket);
    let f = function(&setup);
    let answer = f
        .handle(LambdaEvent::new(events[0].clone(), Context::default()))
        .await
        .unwrap();
    assert_eq!(answer, json!({"outcome": "counted"}));
    let answer = f
        .handle(LambdaEvent::new(events[0].clone(), Context::default()))
        .await
        .unwrap();
    assert_eq!(answer, json!({"outcome": "duplicate"}));
    // A stream batch still gets its partial batch response.
    let answer = f
        .handle(LambdaEvent::new(json!({"Records": []}), Context::default()))
        .await
        .unwrap();
    assert_eq!(failures(&answer), Vec::<String>::new());
    assert_eq!(setup.count("LocksAcquired", &bucket, KIND).await, 1.0);
}

/// A real Terraform lock file, stuck, with no DynamoDB table: a state write recorded from S3
/// events is liveness evidence for it, read the way the reaper and the CLI read it.
#[tokio::test]
async fn a_state_write_from_s3_events_is_liveness_for_a_real_lock_file() {
    let setup = Setup::new("s3-events-liveness").await;
    let bucket = setup.env.name("state");
    setup.env.create_state_bucket(&bucket).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "app/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    let stuck = tf.stuck();
    assert!(stuck.lockfile && !stuck.dynamodb);
    let lock = LockFiles::new(setup.env.aws.s3())
        .read(&bucket, "app/terraform.tfstate.tflock")
        .await
        .unwrap()
        .expect("the stuck lock file")
        .unwrap();
    let ledger = setup.ledger();
    let state = StateObjects::new(setup.env.aws.s3());
    // The deployment covers the bucket (STATE_BUCKETS), as the template configures it.
    let covered = [lockreaper_core::path::BucketScope::parse(&bucket).unwrap()];
    let before = gather_liveness(&lock, Some(&ledger), &state, None, Some(&covered)).await;
    assert!(before.errors.is_empty(), "{:?}", before.errors);
    assert_eq!(before.liveness.last_state_write, None);

    // The holder writes its state after taking the lock: the captured state write, later.
    let created = lock.created.at().unwrap();
    let mut write = captured(&bucket)[1].clone();
    assert_eq!(write["detail"]["object"]["key"], "app/terraform.tfstate");
    write["time"] = json!((created + ChronoDuration::seconds(20))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let written_at = time_of(&write);
    let f = function(&setup);
    let outcome = f.process_s3_event(&write, Utc::now()).await.unwrap();
    assert_eq!(outcome_name(&outcome), "counted");

    let after = gather_liveness(&lock, Some(&ledger), &state, None, Some(&covered)).await;
    assert!(after.errors.is_empty(), "{:?}", after.errors);
    assert_eq!(after.liveness.last_state_write, Some(written_at));
    assert!(after.liveness.holder_probably_alive(Some(created)));
}

/// lockreaper's own release of a real Terraform lock file (the `Unlocker`, as force-unlock and the
/// auto-expiring reaper run it) is counted as forced from the lock file's S3 `Object Deleted`
/// event: the Unlocker leaves its forced-release marker at the lock file's location too, not
/// only at a DynamoDB item's. (`make demo` found this: the marker was written for DynamoDB
/// items only, so every force-unlocked lock file was counted as a normal release.)
#[tokio::test]
async fn the_unlockers_release_of_a_real_lock_file_is_counted_as_forced() {
    let setup = Setup::new("s3-events-unlocker").await;
    let bucket = setup.env.name("state");
    setup.env.create_state_bucket(&bucket).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "app/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    let stuck = tf.stuck();
    assert!(stuck.lockfile && !stuck.dynamodb);
    let lock = LockFiles::new(setup.env.aws.s3())
        .read(&bucket, "app/terraform.tfstate.tflock")
        .await
        .unwrap()
        .expect("the stuck lock file")
        .unwrap();
    let created = lock.created.at().unwrap();
    let f = function(&setup);
    // The lock file's `Object Created` (the captured event of this key, at the lock's time).
    let events = captured(&bucket);
    let mut acquired = events[0].clone();
    assert_eq!(
        acquired["detail"]["object"]["key"],
        "app/terraform.tfstate.tflock"
    );
    acquired["time"] = json!(created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    f.process_s3_event(&acquired, Utc::now()).await.unwrap();

    let report = Unlocker::new(
        setup.env.aws.dynamodb(),
        setup.env.aws.s3(),
        &setup.ledger_table,
    )
    .unlock(
        UnlockRequest {
            locks: std::slice::from_ref(&lock),
            source: ApprovalSource::Json,
            approver: Some("ana".into()),
            approver_groups: Vec::new(),
            reason: None,
            proposal_id: None,
            audit_id: format!("audit-{}", setup.env.id),
        },
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(report.result, UnlockResult::Unlocked);
    assert!(LockFiles::new(setup.env.aws.s3())
        .read(&bucket, "app/terraform.tfstate.tflock")
        .await
        .unwrap()
        .is_none());

    // Its `Object Deleted` (the captured event of this key, now).
    let mut released = events[2].clone();
    assert_eq!(
        released["detail"]["object"]["key"],
        "app/terraform.tfstate.tflock"
    );
    assert_eq!(released["detail-type"], "Object Deleted");
    released["time"] = json!(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let outcome = f.process_s3_event(&released, Utc::now()).await.unwrap();
    assert_eq!(outcome_name(&outcome), "counted");
    assert_eq!(setup.count("LocksReleased", &bucket, KIND).await, 1.0);
    assert_eq!(setup.count("ForcedReleases", &bucket, KIND).await, 1.0);

    // The next apply takes the lock at once and releases it itself; its release's event is
    // handled before its acquisition's (concurrent asynchronous invocations). The marker is still
    // there, but it is older than the forced release: this release is a normal one. (`make demo`
    // counted it forced: the window started at the forced lock's acquisition.)
    let after_unlock = Utc::now();
    let mut next_acquired = events[9].clone();
    assert_eq!(
        next_acquired["detail"]["object"]["key"],
        "app/terraform.tfstate.tflock"
    );
    assert_eq!(next_acquired["detail-type"], "Object Created");
    next_acquired["time"] = json!((after_unlock + ChronoDuration::milliseconds(300))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let mut next_released = released.clone();
    // The sequencer after the captured acquisition's (0000066182D00CC221).
    next_released["detail"]["object"]["sequencer"] = json!("0000066182D00CC222");
    next_released["id"] = json!("6c1b1f7e-0000-4000-8000-000000000222");
    next_released["time"] = json!((after_unlock + ChronoDuration::milliseconds(900))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let outcome = f
        .process_s3_event(&next_released, Utc::now())
        .await
        .unwrap();
    assert_eq!(outcome_name(&outcome), "counted");
    let outcome = f
        .process_s3_event(&next_acquired, Utc::now())
        .await
        .unwrap();
    assert_eq!(outcome_name(&outcome), "counted");
    assert_eq!(setup.count("LocksReleased", &bucket, KIND).await, 2.0);
    assert_eq!(setup.count("ForcedReleases", &bucket, KIND).await, 1.0);
}
