//! `make bench`: CPU time and peak memory for lock-metrics to process one 1000-record stream batch
//! (the event source mapping's maximum batch size), against the emulator: 250 Terraform lock
//! acquire/release pairs, 250 digest writes and 250 Gyro INSERTs, the batch's ledger work (state
//! writes, first-seen times, forced-release look-ups) and its claims each done for the whole batch
//! at once (BatchGetItem + TransactWriteItems, 100 items a call) and the whole batch's metrics
//! written as EMF lines; then the AWS calls of the same batch, counted by a fault-free proxy.

#![allow(clippy::unwrap_used)]

use lock_metrics::handler::{read_records, LockMetrics};
use lockreaper_aws::{EmfMetrics, Ledger};
use lockreaper_testkit::bench::{rss_kib, Meter};
use lockreaper_testkit::faults::FaultProxy;
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::TestEnv;
use serde_json::{json, Value};

fn record(
    n: usize,
    name: &str,
    keys: Value,
    new: Option<Value>,
    old: Option<Value>,
    table: &str,
) -> Value {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": 1_795_651_410 + (n as i64),
        "Keys": keys,
        "SequenceNumber": format!("{:022}", 1_100_000_000_000_000_000u128 + n as u128),
        "SizeBytes": 400,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(new) = new {
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = old {
        dynamodb["OldImage"] = old;
    }
    json!({
        "eventID": format!("{n:032x}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-26T00:00:00.000"),
    })
}

fn batch(table: &str) -> Value {
    let mut records = Vec::with_capacity(1000);
    for i in 0..250 {
        let path = format!("acme-tfstate/team-{i}/terraform.tfstate");
        let info = format!(
            r#"{{"ID":"{i:08x}-feeb-2050-3e79-2ea2cab34f41","Operation":"OperationTypeApply","Info":"","Who":"ci@runner-{i}","Version":"1.15.5","Created":"2026-11-26T00:03:30.079651085Z","Path":"{path}"}}"#
        );
        let image = json!({"LockID": {"S": path}, "Info": {"S": info}});
        let keys = json!({"LockID": {"S": path}});
        records.push(record(
            records.len(),
            "INSERT",
            keys.clone(),
            Some(image.clone()),
            None,
            table,
        ));
        let digest_key = format!("{path}-md5");
        let digest = json!({"LockID": {"S": digest_key}, "Digest": {"S": "9e107d9d372bb6826bd81d3542a419d6"}});
        records.push(record(
            records.len(),
            "MODIFY",
            json!({"LockID": {"S": digest_key}}),
            Some(digest.clone()),
            Some(digest),
            table,
        ));
        records.push(record(
            records.len(),
            "REMOVE",
            keys,
            None,
            Some(image),
            table,
        ));
        let gyro = json!({"LockKey": {"S": format!("project-{i}")}, "GyroId": {"S": format!("{i:08x}-3333-447e-89d9-819da078618d")}});
        records.push(record(
            records.len(),
            "INSERT",
            json!({"LockKey": {"S": format!("project-{i}")}}),
            Some(gyro),
            None,
            table,
        ));
    }
    json!({ "Records": records })
}

#[tokio::main]
async fn main() {
    let env = TestEnv::new("bench-metrics").await;
    let ledger = env.name("ledger");
    create_ledger_table(&env, &ledger).await;
    // The EMF lines are captured (in the Lambda they go to stdout): the bench measures the
    // rendering, not the terminal.
    let namespace = format!("LockReaperBench/{}", env.id);
    let (metrics, emf) = EmfMetrics::capture(&namespace);
    let function = LockMetrics::new(Ledger::new(env.aws.dynamodb(), &ledger), metrics);
    let payload = batch("bench-locks");
    let payload_bytes = payload.to_string().len();
    let rss_before = rss_kib();
    let meter = Meter::start();
    let records = read_records(payload, chrono::Utc::now()).unwrap();
    let n = records.len();
    let (response, summary) = function.process(records, chrono::Utc::now()).await;
    let m = meter.stop();
    assert!(response.batch_item_failures.is_empty(), "{summary:?}");
    println!(
        "lock-metrics: one batch of {n} stream records ({} KiB of event JSON)",
        payload_bytes / 1024
    );
    println!(
        "  wall time          {:>8.0} ms  (includes the emulator's answers)",
        m.wall.as_secs_f64() * 1000.0
    );
    println!(
        "  CPU time           {:>8.0} ms  (this process: parsing, classifying, SDK requests)",
        m.cpu.as_secs_f64() * 1000.0
    );
    println!(
        "  peak RSS           {:>8} KiB (process; {} KiB before the batch)",
        m.peak_rss_kib, rss_before
    );
    let emf_bytes: usize = emf.lines().iter().map(|l| l.len() + 1).sum();
    println!(
        "  EMF lines          {:>8}     ({} bytes on stdout; no metrics API call)",
        summary.metric_lines, emf_bytes
    );
    assert_eq!(
        emf.metrics()
            .iter()
            .filter(|m| m.namespace == namespace)
            .map(|m| m.values.len())
            .sum::<usize>()
            > 0,
        summary.counted > 0,
        "counted records must show up in the EMF output"
    );
    println!("  summary            {summary:?}");

    // The AWS calls of the same batch, counted by a fault-free proxy in front of the emulator,
    // against a fresh ledger. A separate run: the proxy runs in this process, so its CPU time
    // stays out of the measurement above.
    let counted_ledger = env.name("ledger-counted");
    create_ledger_table(&env, &counted_ledger).await;
    let proxy = FaultProxy::start(&env.emulator.endpoint, 0, vec![]).await;
    let (metrics, _emf) = EmfMetrics::capture(&namespace);
    let function = LockMetrics::new(
        Ledger::new(proxy.function_aws(&env.aws).dynamodb(), &counted_ledger),
        metrics,
    );
    let records = read_records(batch("bench-locks"), chrono::Utc::now()).unwrap();
    let (response, _) = function.process(records, chrono::Utc::now()).await;
    assert!(response.batch_item_failures.is_empty());
    let calls: u64 = proxy.requests().values().sum();
    let batched_calls = proxy.request_count("dynamodb", "BatchGetItem")
        + proxy.request_count("dynamodb", "TransactWriteItems");
    println!(
        "  AWS calls          {calls:>8}     ({batched_calls} of them BatchGetItem + TransactWriteItems: the ledger work's and the claims', 100 items a call)"
    );
    for ((service, operation), count) in proxy.requests() {
        println!("    {service:<8} {operation:<20} {count:>6}");
    }
}
