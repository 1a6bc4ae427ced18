//! lock-metrics end to end, against the project's emulator: real Terraform (or, for Gyro, the SDK
//! writing Gyro's documented items) changes a lock table with a stream; the stream records are read
//! back from the emulator's DynamoDB Streams API and wrapped as Lambda's event source mapping does;
//! the function runs behind the real Lambda Runtime API (`cargo lambda watch`) and is invoked with
//! `cargo lambda invoke --data-file`; the metrics are read back from the function's output, its
//! EMF lines extracted as CloudWatch Logs extracts them from the log group Lambda writes stdout to.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use common::*;
use lockreaper_core::LockLocation;
use lockreaper_testkit::lambda::{stream_event, stream_records, LambdaWatch};
use lockreaper_testkit::{LockMode, Terraform};
use serde_json::{json, Value};

const TF: Option<&str> = Some("terraform-dynamodb");
const GYRO: Option<&str> = Some("gyro-dynamodb");

fn record_time(record: &Value) -> DateTime<Utc> {
    DateTime::from_timestamp(
        record["dynamodb"]["ApproximateCreationDateTime"]
            .as_i64()
            .unwrap(),
        0,
    )
    .unwrap()
}

fn names(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let key = &r["dynamodb"]["Keys"];
            let key = key["LockID"]["S"]
                .as_str()
                .or(key["LockKey"]["S"].as_str())
                .unwrap_or("?");
            let kind = if key.ends_with("-md5") {
                "digest"
            } else {
                "lock"
            };
            format!("{} {kind}", r["eventName"].as_str().unwrap())
        })
        .collect()
}

/// Real Terraform: a quick apply, an apply that holds its lock for 3 s, and a stuck lock.
#[tokio::test(flavor = "multi_thread")]
async fn terraform_lock_lifecycle_becomes_metrics() {
    let setup = Setup::new("tf-lifecycle").await;
    let env = &setup.env;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let watch = setup.watch().await;

    let tf = Terraform::init(
        env,
        &bucket,
        "network/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "{out}");
    let held = tf.hold(3);
    wait_for_group_exit(held.pid.unwrap()).await;
    let stuck = tf.stuck();

    let records = stream_records(env, &table).await;
    assert_eq!(
        names(&records),
        [
            "INSERT lock",
            "INSERT digest",
            "REMOVE lock",
            "INSERT lock",
            "MODIFY digest",
            "REMOVE lock",
            "INSERT lock"
        ],
        "what real Terraform writes"
    );
    let response = watch.invoke(PACKAGE, &stream_event(records.clone())).await;
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");

    assert_eq!(setup.count("LocksAcquired", &table, TF).await, 3.0);
    assert_eq!(setup.count("LocksReleased", &table, TF).await, 2.0);
    assert_eq!(setup.count("StateWrites", &table, TF).await, 2.0);
    assert_eq!(setup.count("ForcedReleases", &table, TF).await, 0.0);
    assert_eq!(setup.count("UnparseableRecords", &table, None).await, 0.0);
    let hold = |stat| setup.metric("LockHoldSeconds", &table, TF, stat);
    assert_eq!(hold("SampleCount").await, Some(2.0));
    let (min, max) = (
        hold("Minimum").await.unwrap(),
        hold("Maximum").await.unwrap(),
    );
    assert!((0.0..=10.0).contains(&min), "quick apply held {min} s");
    // The removal time is rounded down to the second by DynamoDB: up to 1 s short.
    assert!(
        (2.0..=60.0).contains(&max),
        "the held apply slept 3 s holding the lock; measured {max} s"
    );

    // The exact hold time: removal record time minus Terraform's Created, in whole seconds.
    let remove = &records[5];
    let info: Value = serde_json::from_str(
        remove["dynamodb"]["OldImage"]["Info"]["S"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let created = DateTime::parse_from_rfc3339(info["Created"].as_str().unwrap())
        .unwrap()
        .to_utc();
    let expected = ((record_time(remove) - created).num_milliseconds() as f64 / 1000.0)
        .round()
        .max(0.0);
    assert_eq!(max, expected);

    // Path and lock ID are in the log lines, never in metric dimensions.
    assert_eq!(setup.dimension_names().await, ["LockKind", "LockTable"]);
    let lines = lock_event_lines(&watch, &table);
    assert_eq!(lines.len(), 7, "one line per lock event: {lines:#?}");
    let released: Vec<&Value> = lines.iter().filter(|l| l["event"] == "released").collect();
    assert_eq!(released.len(), 2);
    let long = released
        .iter()
        .find(|l| l["lock_id"] == held.lock_id)
        .unwrap();
    assert_eq!(long["path"], held.path);
    assert_eq!(long["hold_seconds"], json!(max as u64));
    assert_eq!(long["operation"], "OperationTypeApply");
    assert_eq!(long["release"], "normal");
    assert!(long["who"].as_str().unwrap().contains('@'), "{long}");
    let last = lines.last().unwrap();
    assert_eq!(
        (last["event"].as_str(), last["lock_id"].as_str()),
        (Some("acquired"), Some(stuck.lock_id.as_str()))
    );

    // The last state write is in the ledger for the reaper.
    let write = setup
        .ledger()
        .last_state_write(&stuck.path)
        .await
        .unwrap()
        .expect("last state write recorded");
    assert_eq!(write.written_at, record_time(&records[4]));
    assert_eq!(write.digest.as_ref().map(String::len), Some(32));
}

/// A retried batch (Lambda redelivers the same records) is not counted twice.
#[tokio::test(flavor = "multi_thread")]
async fn retried_batch_is_not_double_counted() {
    let setup = Setup::new("tf-retry").await;
    let env = &setup.env;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let watch = setup.watch().await;
    let tf = Terraform::init(
        env,
        &bucket,
        "app/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "{out}");
    let records = stream_records(env, &table).await;
    assert_eq!(
        names(&records),
        ["INSERT lock", "INSERT digest", "REMOVE lock"]
    );
    let event = stream_event(records.clone());

    for attempt in 0..3 {
        let response = watch.invoke(PACKAGE, &event).await;
        assert_eq!(
            failures(&response),
            Vec::<String>::new(),
            "attempt {attempt}"
        );
    }
    // And a redelivery from the middle (as after a partial failure) adds nothing either.
    let response = watch
        .invoke(PACKAGE, &stream_event(records[1..].to_vec()))
        .await;
    assert_eq!(failures(&response), Vec::<String>::new());

    assert_eq!(setup.count("LocksAcquired", &table, TF).await, 1.0);
    assert_eq!(setup.count("LocksReleased", &table, TF).await, 1.0);
    assert_eq!(setup.count("StateWrites", &table, TF).await, 1.0);
    assert_eq!(
        setup
            .metric("LockHoldSeconds", &table, TF, "SampleCount")
            .await,
        Some(1.0)
    );
    assert_eq!(lock_event_lines(&watch, &table).len(), 3, "logged once too");
    let ledger = setup.ledger();
    for seq in sequence_numbers(&records) {
        assert!(ledger.is_claimed(&table, &seq).await.unwrap(), "{seq}");
    }
}

/// Malformed records are counted and logged with their reason; the batch does not fail.
#[tokio::test(flavor = "multi_thread")]
async fn mixed_good_and_malformed_records() {
    let setup = Setup::new("mixed").await;
    let env = &setup.env;
    let (table, bucket, other) = (env.name("locks"), env.name("state"), env.name("users"));
    env.create_lock_table(&table, "LockID").await;
    env.create_lock_table(&other, "pk").await; // any table with a stream: not a lock table
    env.create_state_bucket(&bucket).await;
    let watch = setup.watch().await;

    let tf = Terraform::init(
        env,
        &bucket,
        "db/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "{out}");
    put(
        env,
        &table,
        &[("LockID", s("b/not-json")), ("Info", s("{oops"))],
    )
    .await;
    put(
        env,
        &table,
        &[
            ("LockID", s("b/number")),
            ("Info", AttributeValue::N("7".into())),
        ],
    )
    .await;
    put(
        env,
        &table,
        &[
            ("LockID", s("b/no-id")),
            ("Info", s(r#"{"Created":"2025-01-01T00:00:00Z"}"#)),
        ],
    )
    .await;
    put(env, &other, &[("pk", s("user#1")), ("name", s("Ann"))]).await;

    let mut records = stream_records(env, &table).await;
    let foreign = stream_records(env, &other).await;
    assert_eq!(foreign.len(), 1);
    // A record that is not even a stream record (fields missing), with a sequence number.
    let arn = records[0]["eventSourceARN"].clone();
    let broken = json!({"eventID": "broken", "eventName": "INSERT", "eventSourceARN": arn,
                        "dynamodb": {"SequenceNumber": "99999999999999999999999"}});
    // Interleave: good, bad, good, ...
    records.insert(1, foreign[0].clone());
    records.insert(3, broken);
    let response = watch.invoke(PACKAGE, &stream_event(records)).await;
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");

    assert_eq!(setup.count("LocksAcquired", &table, TF).await, 1.0);
    assert_eq!(setup.count("LocksReleased", &table, TF).await, 1.0);
    assert_eq!(setup.count("StateWrites", &table, TF).await, 1.0);
    assert_eq!(setup.count("UnparseableRecords", &table, None).await, 4.0);
    assert_eq!(setup.count("UnparseableRecords", &other, None).await, 1.0);

    let mut reasons: Vec<String> = lock_event_lines(&watch, &table)
        .into_iter()
        .chain(lock_event_lines(&watch, &other))
        .filter(|l| l["event"] == "unparseable")
        .map(|l| {
            assert_eq!(l["level"], "WARN");
            l["reason"].as_str().unwrap().to_owned()
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    for expected in [
        "(LockID = \"b/not-json\"): lock info is not Terraform lock JSON",
        "(LockID = \"b/no-id\"): lock info has no `ID`",
        "`Info` is of DynamoDB type N",
        "is this a lock table?",
        "not a DynamoDB stream record: missing field",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no reason contains {expected:?}: {reasons:#?}"
        );
    }
}

/// Gyro: INSERT `{LockKey, GyroId}`, MODIFY adding `GyroLockInfo`, REMOVE — delivered in two
/// batches, so the hold time must come from the first-seen time remembered in the ledger.
#[tokio::test(flavor = "multi_thread")]
async fn gyro_insert_modify_remove_hold_time_from_the_ledger() {
    let setup = Setup::new("gyro").await;
    let env = &setup.env;
    let table = env.name("gyro");
    env.create_lock_table(&table, "LockKey").await;
    let watch = setup.watch().await;
    let db = env.aws.dynamodb();
    let id = "adf4feb3-3333-447e-89d9-819da078618d";

    put(env, &table, &[("LockKey", s("default")), ("GyroId", s(id))]).await;
    db.update_item()
        .table_name(&table)
        .key("LockKey", s("default"))
        .update_expression("SET GyroLockInfo = :i")
        .expression_attribute_values(
            ":i",
            s("Locked by 'gyro-user' running 'up ec2/ami.gyro' at '16:38:29 EDT, Apr-27'."),
        )
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    db.delete_item()
        .table_name(&table)
        .key("LockKey", s("default"))
        .send()
        .await
        .unwrap();

    let records = stream_records(env, &table).await;
    let changes: Vec<&str> = records
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["INSERT", "MODIFY", "REMOVE"]);
    let response = watch
        .invoke(PACKAGE, &stream_event(records[..1].to_vec()))
        .await;
    assert_eq!(failures(&response), Vec::<String>::new());
    let location = LockLocation::DynamoDb {
        table: table.clone(),
        key_attribute: "LockKey".to_owned(),
        key: "default".to_owned(),
    };
    assert_eq!(
        setup.ledger().first_seen(&location, id).await.unwrap(),
        Some(record_time(&records[0])),
        "the INSERT's time is remembered"
    );
    let response = watch
        .invoke(PACKAGE, &stream_event(records[1..].to_vec()))
        .await;
    assert_eq!(failures(&response), Vec::<String>::new());

    assert_eq!(setup.count("LocksAcquired", &table, GYRO).await, 1.0);
    assert_eq!(setup.count("LocksReleased", &table, GYRO).await, 1.0);
    let expected = (record_time(&records[2]) - record_time(&records[0])).num_seconds() as f64;
    assert!(expected >= 2.0, "{expected}");
    assert_eq!(
        setup
            .metric("LockHoldSeconds", &table, GYRO, "Maximum")
            .await,
        Some(expected)
    );
    let lines = lock_event_lines(&watch, &table);
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["acquired", "modified", "released"]);
    assert_eq!(lines[1]["who"], "gyro-user");
    assert_eq!(lines[1]["operation"], "up ec2/ami.gyro");
    assert_eq!(lines[2]["lock_id"], id);
    assert_eq!(lines[2]["path"], "default");
    assert_eq!(lines[2]["hold_seconds"], json!(expected as u64));
}

/// A lock that lockreaper force-unlocked (marker in the ledger, then Terraform's force-unlock
/// deletes it) counts as a forced release.
#[tokio::test(flavor = "multi_thread")]
async fn force_unlock_recorded_in_the_ledger_is_a_forced_release() {
    let setup = Setup::new("forced").await;
    let env = &setup.env;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let watch = setup.watch().await;
    let tf = Terraform::init(
        env,
        &bucket,
        "net/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let stuck = tf.stuck();
    let location = LockLocation::DynamoDb {
        table: table.clone(),
        key_attribute: "LockID".to_owned(),
        key: stuck.path.clone(),
    };
    setup
        .ledger()
        .record_forced_release(&location, &stuck.lock_id, Utc::now(), "test")
        .await
        .unwrap();
    let (code, out, err) = tf.run(&["force-unlock".into(), "--id".into(), stuck.lock_id.clone()]);
    assert_eq!(code, 0, "{out}\n{err}");

    let records = stream_records(env, &table).await;
    assert_eq!(names(&records), ["INSERT lock", "REMOVE lock"]);
    let response = watch.invoke(PACKAGE, &stream_event(records)).await;
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(setup.count("LocksReleased", &table, TF).await, 1.0);
    assert_eq!(setup.count("ForcedReleases", &table, TF).await, 1.0);
    let lines = lock_event_lines(&watch, &table);
    assert_eq!(lines[1]["release"], "forced");
}

/// The ledger unreachable (what can still fail now that metrics are EMF lines, not an API call;
/// this replaces the test of an unreachable CloudWatch): every record that counts is reported in
/// batchItemFailures, nothing is counted and no claim is left; the retry (with the ledger back)
/// counts each record exactly once, and a further redelivery counts nothing.
#[tokio::test(flavor = "multi_thread")]
async fn ledger_unreachable_reports_the_records_and_the_retry_counts_them_once() {
    let setup = Setup::new("ledger-down").await;
    let env = &setup.env;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let tf = Terraform::init(
        env,
        &bucket,
        "k/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "{out}");
    let records = stream_records(env, &table).await;
    let event = stream_event(records.clone());
    let all = sequence_numbers(&records);

    {
        // A port nothing listens on: every ledger call fails (after the SDK's retries).
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
        drop(closed);
        let mut vars = setup.function_env();
        vars.push(("AWS_ENDPOINT_URL_DYNAMODB".to_owned(), dead));
        let down = LambdaWatch::start(PACKAGE, vars).await;
        setup.track(&down);
        let response = down.invoke(PACKAGE, &event).await;
        assert_eq!(failures(&response), all, "{response}");
        assert!(
            down.log().contains("record failed; reported for retry"),
            "{}",
            down.log()
        );
        let ledger = setup.ledger();
        for seq in &all {
            assert!(
                !ledger.is_claimed(&table, seq).await.unwrap(),
                "no claim for {seq}"
            );
        }
    }
    assert_eq!(setup.count("LocksAcquired", &table, TF).await, 0.0);

    let watch = setup.watch().await;
    let response = watch.invoke(PACKAGE, &event).await;
    assert_eq!(failures(&response), Vec::<String>::new());
    let response = watch.invoke(PACKAGE, &event).await;
    assert_eq!(failures(&response), Vec::<String>::new());
    assert_eq!(setup.count("LocksAcquired", &table, TF).await, 1.0);
    assert_eq!(setup.count("LocksReleased", &table, TF).await, 1.0);
    assert_eq!(setup.count("StateWrites", &table, TF).await, 1.0);
}

/// Issue 12: a claim is recognised as the claiming invocation's own by its token, so the SDK's
/// retry of a claim whose answer was lost (it finds its own claim) still counts the record, while
/// another delivery's claim is skipped; a release removes only the releaser's own claim.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_is_told_apart_from_another_deliverys_by_its_token() {
    use lockreaper_aws::Claim;
    let setup = Setup::new("claim-token").await;
    let ledger = setup.ledger();
    let (table, seq) = ("tf-locks", "1100000000017454423009");
    assert_eq!(
        ledger.claim_record(table, seq, "mine").await.unwrap(),
        Claim::Claimed
    );
    // What the SDK's retry of the same request meets after a lost answer.
    assert_eq!(
        ledger.claim_record(table, seq, "mine").await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        ledger.claim_record(table, seq, "another").await.unwrap(),
        Claim::AlreadyClaimed
    );
    ledger.release_claim(table, seq, "another").await.unwrap();
    assert!(
        ledger.is_claimed(table, seq).await.unwrap(),
        "not its claim"
    );
    ledger.release_claim(table, seq, "mine").await.unwrap();
    assert!(!ledger.is_claimed(table, seq).await.unwrap());
    assert_eq!(
        ledger.claim_record(table, seq, "another").await.unwrap(),
        Claim::Claimed
    );
}

/// The ledger table is missing: every record that would be counted is reported for retry, and
/// nothing is counted.
#[tokio::test(flavor = "multi_thread")]
async fn ledger_failure_reports_every_record() {
    let setup = Setup::new("no-ledger").await;
    let env = &setup.env;
    let table = env.name("locks");
    env.create_lock_table(&table, "LockID").await;
    let event = stream_event(
        serde_json::from_str::<Value>(include_str!(
            "../../../infra/fixtures/terraform/stream-records.json"
        ))
        .unwrap()["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["eventSourceARN"] = json!(format!(
                    "arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-26T00:03:29.152"
                ));
                r
            }),
    );
    let missing = env.name("missing");
    let watch = LambdaWatch::start(
        PACKAGE,
        [
            ("LEDGER_TABLE", missing.as_str()),
            ("METRICS_NAMESPACE", setup.namespace.as_str()),
        ],
    )
    .await;
    setup.track(&watch);
    let response = watch.invoke(PACKAGE, &event).await;
    assert_eq!(
        failures(&response),
        [
            "1100000000017454423009",
            "1100000000017454423010",
            "1100000000017454423011",
            "1100000000017454423012"
        ]
    );
    assert_eq!(setup.count("LocksAcquired", &table, TF).await, 0.0);
    assert!(
        watch.log().contains("ResourceNotFoundException"),
        "{}",
        watch.log()
    );
}

/// A configuration error stops the function at init with a message naming the variable.
#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_fails_at_init() {
    let setup = Setup::new("bad-config").await;
    let watch = LambdaWatch::start(
        PACKAGE,
        [
            ("LEDGER_TABLE", setup.ledger_table.as_str()),
            ("METRICS_NAMESPACE", "AWS/Locks"),
        ],
    )
    .await;
    let err = watch
        .try_invoke(PACKAGE, &stream_event([]))
        .await
        .expect_err("the function must not answer with an invalid configuration");
    assert!(err.contains("the function exited"), "{err}");
    let log = watch.log();
    let line = watch
        .json_log()
        .into_iter()
        .find(|l| l["message"] == "lock-metrics cannot start")
        .unwrap_or_else(|| panic!("no init error line:\n{log}"));
    assert_eq!(line["level"], "ERROR");
    let error = line["error"].as_str().unwrap();
    assert!(
        error.contains("METRICS_NAMESPACE: \"AWS/Locks\" starts with `AWS/`"),
        "{error}"
    );
    assert!(error.contains("expected a CloudWatch namespace"), "{error}");
}

/// Issue 11 item 7: an invocation that claimed a record and then died (a Lambda timeout) must not
/// cost the reaper its liveness evidence. The digest record of a real Terraform state write is
/// claimed in the ledger as if by that earlier attempt; the retry still records the state write
/// (and does not count the record's metrics a second time).
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_left_by_a_timed_out_attempt_never_loses_the_state_write() {
    let setup = Setup::new("tf-claimed").await;
    let env = &setup.env;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let watch = setup.watch().await;
    let tf = Terraform::init(
        env,
        &bucket,
        "db/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "{out}");
    let records = stream_records(env, &table).await;
    assert_eq!(
        names(&records),
        ["INSERT lock", "INSERT digest", "REMOVE lock"]
    );
    let digest_record = &records[1];
    let sequence = sequence_numbers(std::slice::from_ref(digest_record)).remove(0);
    let ledger = setup.ledger();
    // The earlier attempt got as far as the claim.
    assert!(matches!(
        ledger
            .claim_record(&table, &sequence, "the-timed-out-attempt")
            .await
            .unwrap(),
        lockreaper_aws::Claim::Claimed
    ));

    let response = watch.invoke(PACKAGE, &stream_event(records.clone())).await;
    assert_eq!(failures(&response), Vec::<String>::new(), "{response}");

    let path = format!("{bucket}/db/terraform.tfstate");
    let write = ledger
        .last_state_write(&path)
        .await
        .unwrap()
        .expect("the state write is recorded despite the earlier claim");
    assert_eq!(write.written_at, record_time(digest_record));
    assert_eq!(setup.count("LocksAcquired", &table, TF).await, 1.0);
    assert_eq!(
        setup.count("StateWrites", &table, TF).await,
        0.0,
        "the claimed record is not counted again"
    );
}
