//! lock-metrics under AWS faults (`lockreaper_testkit::faults`): real stream records of real
//! Terraform lock activity, handled by `LockMetrics::handle` (what the Lambda handler calls) with
//! the functions' own SDK timeouts and retries, pointed at a seeded fault proxy in front of the
//! emulator. Lambda's retry of a partial batch failure is simulated as the event source mapping
//! does it: the batch is delivered again from the lowest failed sequence number (the records after
//! it come again too), and the whole batch after an invocation error, until nothing fails.
//!
//! The invariants are checked against what the function left behind, read directly (not through
//! the proxy, and not from the function's own report): the sums of `LocksAcquired`,
//! `LocksReleased`, `StateWrites` and the sample count of `LockHoldSeconds` in its EMF output (read
//! back as CloudWatch Logs extracts them) are exactly what the records hold (nothing double-counted after redelivery, nothing lost), every record's claim is in
//! the ledger, and the ledger's last state write of each state path is the last digest record's.
//!
//! Seeds and fault share: `FAULT_SEEDS`, `FAULT_RATE`; one result row per scenario to
//! `FAULT_REPORT` (see `lockreaper_testkit::fault_runs`). Each seed gets a fresh ledger table and
//! metrics namespace, and the same records.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use lambda_runtime::{Context, LambdaEvent};
use lock_metrics::LockMetrics;
use lockreaper_aws::Ledger;
use lockreaper_core::LockLocation;
use lockreaper_testkit::fault_runs::{FaultRun, FaultSettings};
use lockreaper_testkit::faults::{Fault, FaultProxy, Rule};
use lockreaper_testkit::lambda::{stream_event, stream_records};
use lockreaper_testkit::{LockMode, Terraform, TestEnv};
use serde_json::Value;
use tokio::sync::OnceCell;

const TF: Option<&str> = Some("terraform-dynamodb");
const GYRO: Option<&str> = Some("gyro-dynamodb");
/// Deliveries of one batch before the scenario gives up (Lambda would go on for the records'
/// 24 hours; at the shares used here every batch is done within a few).
const MAX_DELIVERIES: usize = 25;

/// The stream records of real Terraform lock activity in one lock table, and what they must count.
struct Recorded {
    table: String,
    records: Vec<Value>,
    acquired: f64,
    released: f64,
    state_writes: f64,
    /// State path → the time of its last digest record.
    last_writes: BTreeMap<String, DateTime<Utc>>,
}

fn key_of(record: &Value) -> &str {
    record["dynamodb"]["Keys"]["LockID"]["S"].as_str().unwrap()
}

fn sequence_number(record: &Value) -> &str {
    record["dynamodb"]["SequenceNumber"].as_str().unwrap()
}

/// Two state paths in one table: `a` applied twice (lock taken and released twice, its digest
/// inserted then modified), `b` applied once and then left stuck (killed mid-apply).
async fn record_terraform_activity() -> Recorded {
    let env = TestEnv::new("faults-stream-records").await;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let a = Terraform::init(
        &env,
        &bucket,
        "a/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let b = Terraform::init(
        &env,
        &bucket,
        "b/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    for tf in [&a, &a, &b] {
        let (code, out) = tf.apply();
        assert_eq!(code, 0, "{out}");
    }
    b.stuck();
    let records = stream_records(&env, &table).await;
    let recorded = expectations(table, records);
    // What real Terraform wrote: 4 locks taken (one still held), 3 released, 3 state writes.
    assert_eq!(
        (
            recorded.acquired,
            recorded.released,
            recorded.state_writes,
            recorded.records.len()
        ),
        (4.0, 3.0, 3.0, 10),
        "{:?}",
        recorded
            .records
            .iter()
            .map(|r| (key_of(r), r["eventName"].as_str()))
            .collect::<Vec<_>>()
    );
    recorded
}

/// What `records` (of lock table `table`) must count.
fn expectations(table: String, records: Vec<Value>) -> Recorded {
    let mut recorded = Recorded {
        table,
        records: records.clone(),
        acquired: 0.0,
        released: 0.0,
        state_writes: 0.0,
        last_writes: BTreeMap::new(),
    };
    for record in &records {
        let key = key_of(record);
        let change = record["eventName"].as_str().unwrap();
        match (key.strip_suffix("-md5"), change) {
            (None, "INSERT") => recorded.acquired += 1.0,
            (None, "REMOVE") => recorded.released += 1.0,
            (Some(path), "INSERT" | "MODIFY") => {
                recorded.state_writes += 1.0;
                let at = DateTime::from_timestamp(
                    record["dynamodb"]["ApproximateCreationDateTime"]
                        .as_i64()
                        .unwrap(),
                    0,
                )
                .unwrap();
                recorded.last_writes.insert(path.to_owned(), at);
            }
            other => panic!("unexpected record from Terraform: {other:?}"),
        }
    }
    recorded
}

/// `copies` copies of the real records as if from `copies` times as many state paths in the same
/// table: copy `k` has `/c<k>-` in front of each state path's last directory (in the lock ID, the
/// digest item's key and the lock info's `Path`) and `9<k>` in front of each sequence number, so
/// every record of the batch is its own record with its own claim, and every lock its own item.
fn amplified(recorded: &Recorded, copies: usize) -> Recorded {
    let mut records = Vec::with_capacity(recorded.records.len() * copies);
    for copy in 0..copies {
        for record in &recorded.records {
            let text = record
                .to_string()
                .replace(
                    "/a/terraform.tfstate",
                    &format!("/c{copy}-a/terraform.tfstate"),
                )
                .replace(
                    "/b/terraform.tfstate",
                    &format!("/c{copy}-b/terraform.tfstate"),
                );
            let mut record: Value = serde_json::from_str(&text).unwrap();
            let sequence = format!("9{copy:04}{}", sequence_number(&record));
            record["dynamodb"]["SequenceNumber"] = Value::String(sequence);
            records.push(record);
        }
    }
    expectations(recorded.table.clone(), records)
}

/// `records` with `from` replaced by `to` in their `eventSourceARN`.
fn retarget(records: &[Value], from: &str, to: &str) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let arn = r["eventSourceARN"].as_str().unwrap();
            let arn = arn.replace(&format!(":table/{from}/"), &format!(":table/{to}/"));
            assert!(arn.contains(to), "{arn}");
            r["eventSourceARN"] = Value::String(arn);
            r
        })
        .collect()
}

/// One Terraform run per test process, shared by the scenarios (each seed has its own ledger and
/// namespace, so the same records count afresh).
async fn recorded() -> &'static Recorded {
    static RECORDED: OnceCell<Recorded> = OnceCell::const_new();
    RECORDED.get_or_init(record_terraform_activity).await
}

/// Runs `scenario` for every seed: the records delivered (and redelivered) to the handler behind a
/// proxy with `rules(rate)`, then every invariant checked in the emulator.
async fn run(scenario: &str, default_seeds: usize, default_rate: f64, rules: fn(f64) -> Vec<Rule>) {
    run_on(
        recorded().await,
        scenario,
        default_seeds,
        default_rate,
        rules,
    )
    .await;
}

/// [`run`] over the records of `recorded`.
async fn run_on(
    recorded: &Recorded,
    scenario: &str,
    default_seeds: usize,
    default_rate: f64,
    rules: fn(f64) -> Vec<Rule>,
) {
    let settings = FaultSettings::from_env(default_seeds, default_rate);
    let mut run = FaultRun::new(scenario, &settings);
    for &seed in &settings.seeds {
        let world = Setup::new(&format!("faults-stream-{seed}")).await;
        // The records as if from a lock table of this seed's own, so each seed's claims are its
        // own in the ledger.
        let table = world.env.name("locks");
        let records = retarget(&recorded.records, &recorded.table, &table);
        let table = table.as_str();
        let proxy =
            FaultProxy::start(&world.env.emulator.endpoint, seed, rules(settings.rate)).await;
        let aws = proxy.function_aws(&world.env.aws);
        let function = LockMetrics::new(
            Ledger::new(aws.dynamodb(), &world.ledger_table),
            world.metrics_sink(),
        );

        let mut batch = records.clone();
        let mut deliveries = 0;
        let mut invocation_errors = 0;
        let done = loop {
            deliveries += 1;
            let event = LambdaEvent::new(stream_event(batch.clone()), Context::default());
            match function.handle(event).await {
                // Lambda retries the whole batch after an invocation error.
                Err(_) => invocation_errors += 1,
                Ok(response) => {
                    let failed: Vec<String> = common::failures(&response);
                    if failed.is_empty() {
                        break true;
                    }
                    run.check(
                        failed
                            .iter()
                            .all(|f| batch.iter().any(|r| sequence_number(r) == f)),
                        || format!("seed {seed}: a batch item failure names no record of the batch: {failed:?}"),
                    );
                    // The checkpoint is the lowest failed sequence number: from there on, again.
                    let Some(from) = batch
                        .iter()
                        .position(|r| failed.iter().any(|f| f == sequence_number(r)))
                    else {
                        break false;
                    };
                    batch.drain(..from);
                }
            }
            if deliveries >= MAX_DELIVERIES {
                break false;
            }
        };
        eprintln!(
            "seed {seed}: {deliveries} deliveries ({invocation_errors} invocation errors)\n{}",
            proxy.report()
        );
        run.add_proxy(&proxy);
        run.check(done, || {
            format!("seed {seed}: records still failing after {MAX_DELIVERIES} deliveries")
        });

        // The emulator's final state, read past the proxy.
        for (metric, expected) in [
            ("LocksAcquired", recorded.acquired),
            ("LocksReleased", recorded.released),
            ("StateWrites", recorded.state_writes),
        ] {
            let counted = world.count(metric, table, TF).await;
            run.check(counted == expected, || {
                format!("seed {seed}: EMF {metric} = {counted}, the records hold {expected}")
            });
        }
        let samples = world
            .metric("LockHoldSeconds", table, TF, "SampleCount")
            .await
            .unwrap_or(0.0);
        run.check(samples == recorded.released, || {
            format!(
                "seed {seed}: LockHoldSeconds has {samples} samples, {} releases",
                recorded.released
            )
        });
        let ledger = world.ledger();
        for record in &records {
            let seq = sequence_number(record);
            let claimed = ledger.is_claimed(table, seq).await.unwrap();
            run.check(claimed, || {
                format!(
                    "seed {seed}: record {seq} ({}) has no claim in the ledger",
                    key_of(record)
                )
            });
        }
        for (path, at) in &recorded.last_writes {
            let write = ledger.last_state_write(path).await.unwrap();
            let written_at = write.as_ref().map(|w| w.written_at);
            run.check(written_at == Some(*at), || {
                format!("seed {seed}: last state write of {path} in the ledger is {written_at:?}, the last digest record's is {at}")
            });
        }
    }
    run.finish();
}

/// DynamoDB (every ledger call) answers with its throttling errors and 500s. None of these is
/// applied, so everything a retry does is new. (Metrics are EMF lines on stdout: no call to fault.)
#[tokio::test(flavor = "multi_thread")]
async fn stream_batches_under_throttling_and_5xx_count_every_record_once() {
    run("lock-metrics: throttling + 5xx", 2, 0.3, |rate| {
        vec![
            Rule::new("dynamodb", "*", rate / 2.0, Fault::Throttle),
            Rule::new(
                "dynamodb",
                "*",
                rate / 4.0,
                Fault::DynamoDbThrottlingException,
            ),
            Rule::new("dynamodb", "*", rate / 4.0, Fault::InternalError),
        ]
    })
    .await;
}

/// Connections reset before the request reaches DynamoDB (not applied).
#[tokio::test(flavor = "multi_thread")]
async fn stream_batches_under_connection_resets_count_every_record_once() {
    run("lock-metrics: connection resets", 2, 0.3, |rate| {
        vec![Rule::new("dynamodb", "*", rate, Fault::ConnectionReset)]
    })
    .await;
}

/// Lost answers to the ledger's writes (the TransactWriteItems of the ledger work and of the
/// claims — since issue 16 the stream path makes no PutItem — and the DeleteItem that gives a
/// claim back): the write is applied, its answer never arrives, the SDK retries it.
///
/// Found by this scenario (issue 12): the retried claim failed its own `attribute_not_exists(pk)`
/// condition, `Ledger::claim_record` read that as `AlreadyClaimed`, and the handler skipped the
/// record as counted by an earlier delivery — neither counted nor reported, for good. Fixed: the
/// claim holds the invocation's token, and a failed condition is resolved by the claim it found
/// (its own token → counted by this invocation). Claims are now written in transactions; the
/// emulator ignores their `ClientRequestToken`, so the SDK's resent transaction fails its
/// conditions and the cancellation reasons carry the claims holding this invocation's token.
#[tokio::test(flavor = "multi_thread")]
async fn stream_batches_under_lost_claim_answers_count_every_record_once() {
    run(
        "lock-metrics: lost + delayed answers (ledger writes)",
        2,
        0.3,
        |rate| {
            vec![
                // Once a seed, a transaction's answer (the ledger work's or the claims') held back
                // past the SDK's attempt timeout (10 s): another way to lose an answer, and the
                // costly one.
                Rule::new(
                    "dynamodb",
                    "TransactWriteItems",
                    rate,
                    Fault::DelayedAnswer(
                        lockreaper_aws::config::ATTEMPT_TIMEOUT + Duration::from_secs(1),
                    ),
                )
                .at_most(1),
                Rule::new("dynamodb", "TransactWriteItems", rate, Fault::LostAnswer),
                Rule::new("dynamodb", "DeleteItem", rate, Fault::LostAnswer),
            ]
        },
    )
    .await;
}

/// Lost answers to every ledger call (reads and writes): the request is applied, its answer never
/// arrives, the SDK retries it.
///
/// This scenario used to fault PutMetricData, whose lost answer made the SDK's retry store the
/// batch's data twice (issue 12: `LocksAcquired` 8 for 4 records). Metrics are now EMF lines on
/// stdout, which have no answer to lose; what the scenario protects — every record counted exactly
/// once, now in the EMF output — is checked against every call that still has an answer.
#[tokio::test(flavor = "multi_thread")]
async fn stream_batches_under_lost_answers_count_every_record_once_in_the_emf_output() {
    run(
        "lock-metrics: lost answers (every ledger call)",
        2,
        0.3,
        |rate| vec![Rule::new("dynamodb", "*", rate, Fault::LostAnswer)],
    )
    .await;
}

/// Gyro lock records (no Gyro runs here; its items follow the documented format, as in
/// `stream_to_metrics.rs`): `locks` locks, each an INSERT (`{LockKey, GyroId}`) and, `hold`
/// seconds later, its REMOVE, in table `table`'s stream. The hold time can only come from the
/// INSERT's first-seen time, which the ledger work records and the REMOVE looks up.
fn gyro_records(table: &str, locks: usize, hold: i64) -> Vec<Value> {
    let arn = format!(
        "arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-30T00:00:00.000"
    );
    let mut records = Vec::with_capacity(2 * locks);
    for i in 0..locks {
        let keys = serde_json::json!({"LockKey": {"S": format!("gyro-project-{i}")}});
        let image = serde_json::json!({
            "LockKey": {"S": format!("gyro-project-{i}")},
            "GyroId": {"S": format!("{i:08x}-3333-447e-89d9-819da078618d")},
        });
        for (n, (name, at)) in [("INSERT", 1_795_651_410), ("REMOVE", 1_795_651_410 + hold)]
            .into_iter()
            .enumerate()
        {
            let mut change = serde_json::json!({
                "ApproximateCreationDateTime": at,
                "Keys": keys,
                "SequenceNumber": format!("8{i:04}{n}"),
                "SizeBytes": 100,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            });
            change[if name == "INSERT" {
                "NewImage"
            } else {
                "OldImage"
            }] = image.clone();
            records.push(serde_json::json!({
                "eventID": format!("gyro-{i}-{n}"),
                "eventName": name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": change,
                "eventSourceARN": arn,
            }));
        }
    }
    records
}

/// Issue 16: a stream batch costs a bounded number of AWS calls whatever its size, its records'
/// own ledger work included. 300 records that need every kind of it — the real Terraform records
/// as 25 times as many state paths (acquisitions; state writes, two of one state path in each
/// copy, which collapse into the newer; releases, whose forced-release markers are looked up, a
/// third of them forced by lockreaper), plus 25 Gyro locks acquired and released in the same
/// batch (a first-seen time recorded, and used by the release in memory) — through a proxy that
/// faults nothing but counts every request. Every DynamoDB call of the batch (ledger work and
/// claims) is one of at most 5 per 100 records: one BatchGetItem per 100 keys read (at most two
/// per record), one TransactWriteItems per 100 items written (at most one per record), and the
/// claims' BatchGetItem and TransactWriteItems; no record has a call of its own (no PutItem,
/// GetItem, Query or DeleteItem). Measured: 9 calls (5 BatchGetItem, 4 TransactWriteItems); the
/// per-record ledger work before issue 16 made 231 here (100 PutItem, 125 GetItem) and fails this.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_with_every_kind_of_ledger_work_costs_at_most_five_calls_per_100_records() {
    let terraform = amplified(recorded().await, 25);
    let world = Setup::new("ledger-work-bounded").await;
    let table = world.env.name("locks");
    let mut records = retarget(&terraform.records, &terraform.table, &table);
    // A third of the Terraform releases were forced by lockreaper: the marker is written before
    // the lock is deleted (as the `Unlocker` does).
    let mut forced = 0.0;
    for record in records
        .iter()
        .filter(|r| r["eventName"] == "REMOVE")
        .step_by(3)
    {
        let info: Value = serde_json::from_str(
            record["dynamodb"]["OldImage"]["Info"]["S"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let location = LockLocation::DynamoDb {
            table: table.clone(),
            key_attribute: "LockID".to_owned(),
            key: key_of(record).to_owned(),
        };
        world
            .ledger()
            .record_forced_release(&location, info["ID"].as_str().unwrap(), Utc::now(), "test")
            .await
            .unwrap();
        forced += 1.0;
    }
    assert_eq!(forced, 25.0);
    let gyro_locks = 25;
    let gyro_hold = 30;
    records.extend(gyro_records(&table, gyro_locks, gyro_hold));
    let n = records.len();
    assert_eq!(n, 300);
    let proxy = FaultProxy::start(&world.env.emulator.endpoint, 0, vec![]).await;
    let function = LockMetrics::new(
        Ledger::new(
            proxy.function_aws(&world.env.aws).dynamodb(),
            &world.ledger_table,
        ),
        world.metrics_sink(),
    );
    let event = LambdaEvent::new(stream_event(records.clone()), Context::default());
    let response = function.handle(event).await.unwrap();
    assert!(common::failures(&response).is_empty());
    eprintln!("{}", proxy.report());

    let per_100 = n.div_ceil(100) as u64;
    let calls: u64 = proxy
        .requests()
        .iter()
        .filter(|((service, _), _)| service == "dynamodb")
        .map(|(_, count)| count)
        .sum();
    assert!(
        calls <= 5 * per_100,
        "{calls} DynamoDB calls for {n} records; at most {} (5 per 100 records):\n{}",
        5 * per_100,
        proxy.report()
    );
    for operation in ["PutItem", "GetItem", "Query", "DeleteItem", "UpdateItem"] {
        assert_eq!(
            proxy.request_count("dynamodb", operation),
            0,
            "no record has a {operation} of its own:\n{}",
            proxy.report()
        );
    }
    let reads = proxy.request_count("dynamodb", "BatchGetItem");
    let transactions = proxy.request_count("dynamodb", "TransactWriteItems");
    assert!(
        reads <= 3 * per_100 && transactions <= 2 * per_100,
        "{reads} BatchGetItem + {transactions} TransactWriteItems for {n} records"
    );

    // Everything counted once, with what the ledger work found.
    for (metric, kind, expected) in [
        ("LocksAcquired", TF, terraform.acquired),
        ("LocksReleased", TF, terraform.released),
        ("StateWrites", TF, terraform.state_writes),
        ("ForcedReleases", TF, forced),
        ("LocksAcquired", GYRO, gyro_locks as f64),
        ("LocksReleased", GYRO, gyro_locks as f64),
    ] {
        assert_eq!(
            world.count(metric, &table, kind).await,
            expected,
            "{metric} {kind:?}"
        );
    }
    // Every Gyro release has its hold time, from the first-seen time its INSERT recorded in the
    // same batch.
    for (statistic, expected) in [
        ("SampleCount", gyro_locks as f64),
        ("Maximum", gyro_hold as f64),
        ("Minimum", gyro_hold as f64),
    ] {
        assert_eq!(
            world
                .metric("LockHoldSeconds", &table, GYRO, statistic)
                .await,
            Some(expected),
            "Gyro LockHoldSeconds {statistic}"
        );
    }
    let ledger = world.ledger();
    for record in &records {
        assert!(ledger
            .is_claimed(&table, sequence_number(record))
            .await
            .unwrap());
    }
    // The newer of two state writes of one path in the batch is the one recorded.
    for (path, at) in &terraform.last_writes {
        let write = ledger.last_state_write(path).await.unwrap();
        assert_eq!(write.map(|w| w.written_at), Some(*at), "{path}");
    }
    let gyro_location = LockLocation::DynamoDb {
        table: table.clone(),
        key_attribute: "LockKey".to_owned(),
        key: "gyro-project-0".to_owned(),
    };
    assert_eq!(
        ledger
            .first_seen(&gyro_location, "00000000-3333-447e-89d9-819da078618d")
            .await
            .unwrap(),
        DateTime::from_timestamp(1_795_651_410, 0)
    );

    // Delivered again (a retry of the whole batch): every ledger write is found made and every
    // claim taken by the reads, nothing is written, and nothing is counted twice.
    let before = proxy.requests();
    let event = LambdaEvent::new(stream_event(records), Context::default());
    let response = function.handle(event).await.unwrap();
    assert!(common::failures(&response).is_empty());
    let after = proxy.requests();
    let delta = |op: &str| {
        let key = ("dynamodb".to_owned(), op.to_owned());
        after.get(&key).unwrap_or(&0) - before.get(&key).unwrap_or(&0)
    };
    assert!(delta("BatchGetItem") <= 3 * per_100, "{}", proxy.report());
    for operation in ["TransactWriteItems", "PutItem", "GetItem", "DeleteItem"] {
        assert_eq!(delta(operation), 0, "{operation}: {}", proxy.report());
    }
    for (metric, kind, expected) in [
        ("LocksAcquired", TF, terraform.acquired),
        ("LocksReleased", TF, terraform.released),
        ("StateWrites", TF, terraform.state_writes),
        ("ForcedReleases", TF, forced),
        ("LocksReleased", GYRO, gyro_locks as f64),
    ] {
        assert_eq!(
            world.count(metric, &table, kind).await,
            expected,
            "{metric} {kind:?} after redelivery"
        );
    }
}

/// The same 250-record batch with a share of the claim calls faulted: the transactions' answers
/// lost (applied; the SDK resends them), the reads throttled, failed with a 500 or reset. Every
/// record is still counted exactly once and claimed.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_of_250_records_under_claim_faults_counts_every_record_once() {
    let recorded = amplified(recorded().await, 25);
    run_on(
        &recorded,
        "lock-metrics: 250 records, faulted claim calls",
        2,
        0.3,
        |rate| {
            vec![
                Rule::new("dynamodb", "TransactWriteItems", rate, Fault::LostAnswer),
                Rule::new("dynamodb", "BatchGetItem", rate / 2.0, Fault::Throttle),
                Rule::new("dynamodb", "BatchGetItem", rate / 4.0, Fault::InternalError),
                Rule::new(
                    "dynamodb",
                    "BatchGetItem",
                    rate / 4.0,
                    Fault::ConnectionReset,
                ),
                Rule::new(
                    "dynamodb",
                    "TransactWriteItems",
                    rate / 2.0,
                    Fault::InternalError,
                ),
            ]
        },
    )
    .await;
}

/// A record whose claim key DynamoDB would refuse (a sequence number past the 1024-byte sort key
/// limit) fails alone: it would otherwise fail the whole transaction, and with it every record
/// claimed alongside. The real records of the batch are counted once each.
#[tokio::test(flavor = "multi_thread")]
async fn a_record_with_an_unclaimable_key_fails_alone() {
    let recorded = recorded().await;
    let world = Setup::new("claims-bad-key").await;
    let table = world.env.name("locks");
    let mut records = retarget(&recorded.records, &recorded.table, &table);
    let mut hostile = records[0].clone();
    let long = "7".repeat(1100);
    hostile["dynamodb"]["SequenceNumber"] = Value::String(long.clone());
    records.insert(1, hostile);
    let function = LockMetrics::new(
        Ledger::new(world.env.aws.dynamodb(), &world.ledger_table),
        world.metrics_sink(),
    );
    let event = LambdaEvent::new(stream_event(records), Context::default());
    let response = function.handle(event).await.unwrap();
    let failed: Vec<String> = common::failures(&response);
    assert_eq!(failed, vec![long]);
    // The hostile copy of the first INSERT is not counted; every real record is, once.
    for (metric, expected) in [
        ("LocksAcquired", recorded.acquired),
        ("LocksReleased", recorded.released),
        ("StateWrites", recorded.state_writes),
    ] {
        assert_eq!(world.count(metric, &table, TF).await, expected, "{metric}");
    }
}

/// A batch's ledger writes that cannot be made (every attempt of the ledger work's transaction,
/// in all its rounds, answered with a 500; the claims' transaction after it is not faulted) fail
/// exactly the records that depend on them — the state-write records, and with them the later
/// records of their items — while the rest of the batch is claimed and counted. Lambda's retry
/// from the lowest failed sequence number then counts every record exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn ledger_writes_that_cannot_be_made_fail_exactly_the_records_that_depend_on_them() {
    let recorded = recorded().await;
    let world = Setup::new("ledger-work-unsettled").await;
    let table = world.env.name("locks");
    let records = retarget(&recorded.records, &recorded.table, &table);
    // The SDK's attempts per call, times the ledger work's rounds.
    let work_attempts = u64::from(lockreaper_aws::config::MAX_ATTEMPTS)
        * lockreaper_aws::ledger::WORK_ROUNDS as u64;
    let proxy = FaultProxy::start(
        &world.env.emulator.endpoint,
        0,
        vec![
            Rule::new("dynamodb", "TransactWriteItems", 1.0, Fault::InternalError)
                .at_most(work_attempts),
        ],
    )
    .await;
    let function = LockMetrics::new(
        Ledger::new(
            proxy.function_aws(&world.env.aws).dynamodb(),
            &world.ledger_table,
        ),
        world.metrics_sink(),
    );
    let event = LambdaEvent::new(stream_event(records.clone()), Context::default());
    let response = function.handle(event).await.unwrap();
    eprintln!("{}", proxy.report());
    assert_eq!(proxy.total_faulted(), work_attempts);
    let mut failed = common::failures(&response);
    failed.sort();
    let mut state_writes: Vec<String> = records
        .iter()
        .filter(|r| key_of(r).ends_with("-md5"))
        .map(|r| sequence_number(r).to_owned())
        .collect();
    state_writes.sort();
    assert_eq!(failed, state_writes, "exactly the state-write records fail");
    for (metric, expected) in [
        ("LocksAcquired", recorded.acquired),
        ("LocksReleased", recorded.released),
        ("StateWrites", 0.0),
    ] {
        assert_eq!(world.count(metric, &table, TF).await, expected, "{metric}");
    }
    let ledger = world.ledger();
    for path in recorded.last_writes.keys() {
        assert_eq!(ledger.last_state_write(path).await.unwrap(), None, "{path}");
    }

    // Lambda's retry: from the lowest failed sequence number on.
    let from = records
        .iter()
        .position(|r| failed.iter().any(|f| f == sequence_number(r)))
        .unwrap();
    let event = LambdaEvent::new(stream_event(records[from..].to_vec()), Context::default());
    let response = function.handle(event).await.unwrap();
    assert!(common::failures(&response).is_empty(), "{response}");
    for (metric, expected) in [
        ("LocksAcquired", recorded.acquired),
        ("LocksReleased", recorded.released),
        ("StateWrites", recorded.state_writes),
    ] {
        assert_eq!(
            world.count(metric, &table, TF).await,
            expected,
            "{metric} after the retry"
        );
    }
    for (path, at) in &recorded.last_writes {
        let write = ledger.last_state_write(path).await.unwrap();
        assert_eq!(write.map(|w| w.written_at), Some(*at), "{path}");
    }
}

/// The ledger work's transaction applied and its answer lost: the SDK resends it, the emulator
/// (which ignores the `ClientRequestToken`) applies what its conditions allow — a first-seen time
/// already there fails its condition, which is success; the transaction is cancelled, so the state
/// writes beside it are not applied and go to the next round. Nothing fails, every record counts
/// once, and the Gyro releases get their hold time from the first-seen times.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_the_ledger_work_is_settled_by_its_cancellation_reasons() {
    let recorded = recorded().await;
    let world = Setup::new("ledger-work-lost").await;
    let table = world.env.name("locks");
    let mut records = retarget(&recorded.records, &recorded.table, &table);
    let (gyro_locks, gyro_hold) = (5, 42);
    records.extend(gyro_records(&table, gyro_locks, gyro_hold));
    let proxy = FaultProxy::start(
        &world.env.emulator.endpoint,
        0,
        vec![Rule::new("dynamodb", "TransactWriteItems", 1.0, Fault::LostAnswer).at_most(1)],
    )
    .await;
    let function = LockMetrics::new(
        Ledger::new(
            proxy.function_aws(&world.env.aws).dynamodb(),
            &world.ledger_table,
        ),
        world.metrics_sink(),
    );
    let event = LambdaEvent::new(stream_event(records.clone()), Context::default());
    let response = function.handle(event).await.unwrap();
    eprintln!("{}", proxy.report());
    assert_eq!(proxy.total_faulted(), 1);
    assert!(common::failures(&response).is_empty(), "{response}");
    for (metric, kind, expected) in [
        ("LocksAcquired", TF, recorded.acquired),
        ("LocksReleased", TF, recorded.released),
        ("StateWrites", TF, recorded.state_writes),
        ("LocksAcquired", GYRO, gyro_locks as f64),
        ("LocksReleased", GYRO, gyro_locks as f64),
    ] {
        assert_eq!(
            world.count(metric, &table, kind).await,
            expected,
            "{metric} {kind:?}"
        );
    }
    assert_eq!(
        world
            .metric("LockHoldSeconds", &table, GYRO, "Maximum")
            .await,
        Some(gyro_hold as f64)
    );
    let ledger = world.ledger();
    for (path, at) in &recorded.last_writes {
        let write = ledger.last_state_write(path).await.unwrap();
        assert_eq!(write.map(|w| w.written_at), Some(*at), "{path}");
    }
    for record in &records {
        assert!(ledger
            .is_claimed(&table, sequence_number(record))
            .await
            .unwrap());
    }
}
