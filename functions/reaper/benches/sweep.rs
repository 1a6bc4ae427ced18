//! `make bench`: one reaper sweep over 10,000 DynamoDB lock items and 1,000 S3 lock files, against
//! the emulator: wall time, AWS calls made (vs. the minimum the APIs allow), CPU time and peak memory.
//!
//! The locks are 30 minutes old with the default thresholds (warn 1 h), i.e. the steady state of a
//! busy account: every lock must be found and judged, none needs an alert, and lock files too young
//! to matter are not fetched (their listing says enough). A second run with `WARN_AFTER=1m`-like
//! thresholds would measure alerting, which is bounded by SNS, not by the sweep.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use lockreaper_core::approval::SigningKey;
use lockreaper_core::config::{Env, LockSources};
use lockreaper_core::policy::StaleLockPolicy;
use lockreaper_testkit::bench::{rss_kib, Meter};
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::TestEnv;
use reaper::{Reaper, ReaperConfig};

const ITEMS: usize = 10_000;
const FILES: usize = 1_000;

#[tokio::main]
async fn main() {
    let env = TestEnv::new("bench-sweep").await;
    let (table, bucket, ledger) = (env.name("locks"), env.name("state"), env.name("ledger"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    create_ledger_table(&env, &ledger).await;
    let topic = env.topic_with_queue("alerts").await;

    eprintln!("writing {ITEMS} lock items and {FILES} lock files into the emulator…");
    let created = (chrono::Utc::now() - chrono::Duration::minutes(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let dynamodb = env.aws.dynamodb();
    let mut item_bytes = 0usize;
    for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(25) {
        let writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                let path = format!("{bucket}/team-{i}/terraform.tfstate");
                let info = format!(
                    r#"{{"ID":"{i:08x}-6b1e-9c07-2a5d-8e41b9f0c3a7","Operation":"OperationTypeApply","Info":"","Who":"ci@runner-{i}","Version":"1.15.5","Created":"{created}","Path":"{path}"}}"#
                );
                item_bytes += path.len() + info.len() + 10;
                let item: HashMap<String, AttributeValue> = [
                    ("LockID".to_owned(), AttributeValue::S(path)),
                    ("Info".to_owned(), AttributeValue::S(info)),
                ]
                .into();
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build()
            })
            .collect();
        dynamodb
            .batch_write_item()
            .request_items(&table, writes)
            .send()
            .await
            .unwrap();
    }
    let s3 = env.aws.s3();
    for i in 0..FILES {
        let key = format!("files/team-{i}/terraform.tfstate.tflock");
        let body = format!(
            r#"{{"ID":"{i:08x}-aaaa-9c07-2a5d-8e41b9f0c3a7","Operation":"OperationTypePlan","Info":"","Who":"dev@laptop-{i}","Version":"1.15.5","Created":"{created}","Path":"{bucket}/files/team-{i}/terraform.tfstate"}}"#
        );
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
    }

    let mut vars = Env::new([
        ("LOCK_TABLES".to_owned(), table.clone()),
        ("LOCK_BUCKETS".to_owned(), bucket.clone()),
    ]);
    let sources = LockSources::from_env(&mut vars);
    let config = ReaperConfig {
        sources,
        policy: StaleLockPolicy::default(),
        alert_topic_arn: topic.topic_arn.clone(),
        approval_topic_arn: topic.topic_arn.clone(),
        approval_secret_arn: "unused".into(),
        approval_ttl: std::time::Duration::from_secs(86_400),
        ledger_table: ledger.clone(),
        metrics_namespace: format!("LockReaperBench/{}", env.id),
        dry_run: false,
        deployment: "bench".into(),
        scan_segments: 1,
        unlocks_paused: false,
    };
    let signing_key = SigningKey::from_secret("bench-signing-key-0123456789abcdef0123").unwrap();
    let reaper = Reaper::new(&env.aws, config, signing_key);

    let rss_before = rss_kib();
    let meter = Meter::start();
    let outcome = reaper.sweep(chrono::Utc::now(), None).await;
    let m = meter.stop();
    assert_eq!(outcome.locks.len(), ITEMS, "every lock item judged");
    assert_eq!(
        outcome.young_lock_files, FILES,
        "young lock files are listed, not fetched"
    );
    assert!(
        outcome.errors.is_empty() && outcome.unreachable.is_empty(),
        "{:?} {:?}",
        outcome.errors,
        outcome.unreachable
    );

    // The least the APIs allow: Scan returns at most 1 MB per page, ListObjectsV2 1,000 keys per
    // page, PutMetricData takes up to 1,000 data per call.
    let min_scan_pages = item_bytes.div_ceil(1024 * 1024).max(1);
    let min_list_pages = FILES.div_ceil(1000);
    let minimum = min_scan_pages + min_list_pages + 1;
    println!("reaper: one sweep of {ITEMS} lock items + {FILES} lock files");
    println!(
        "  wall time          {:>8.0} ms  (includes the emulator's answers)",
        m.wall.as_secs_f64() * 1000.0
    );
    println!(
        "  CPU time           {:>8.0} ms  (this process)",
        m.cpu.as_secs_f64() * 1000.0
    );
    println!(
        "  peak RSS           {:>8} KiB (process; {rss_before} KiB before the sweep)",
        m.peak_rss_kib
    );
    println!(
        "  AWS calls          {:>8}     (minimum the APIs allow: {minimum} = {min_scan_pages} Scan page(s) of ≤1 MB + {min_list_pages} ListObjectsV2 page(s) + 1 PutMetricData)",
        outcome.aws_calls
    );
}
