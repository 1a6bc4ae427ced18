//! The `lockreaper` binary as an operator runs it, against the project's own emulator, with locks
//! left behind by real Terraform killed mid-apply. Every run starts from an empty environment plus
//! the emulator's standard AWS variables, so nothing from the developer's shell leaks in.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use chrono::Utc;
use lockreaper_aws::unlock::{UnlockRequest, UnlockResult, Unlocker};
use lockreaper_aws::LockTable;
use lockreaper_core::approval::{
    ApprovalMessage, ApprovalSource, ApprovalToken, LockFingerprint, SigningKey,
};
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::{LockMode, Terraform, TestEnv};
use serde_json::{json, Value};

/// One run of the binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `lockreaper args…` with only `vars` (plus PATH) in its environment.
fn run_with(vars: &[(String, String)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_lockreaper"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Never ask EC2 instance metadata for a region or credentials.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .args(args)
        .output()
        .expect("run the lockreaper binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `lockreaper` against the emulator with `vars` on top of its AWS environment.
fn lockreaper(env: &TestEnv, vars: &[(&str, &str)], args: &[&str]) -> Run {
    let mut all = env.emulator.env();
    all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    run_with(&all, args)
}

fn token(expires_in: chrono::Duration) -> String {
    let key = SigningKey::from_secret(&"s".repeat(48)).unwrap();
    ApprovalToken::issue(
        &key,
        [9; 12],
        LockFingerprint::from_bytes([3; 8]),
        Utc::now() + expires_in,
    )
}

/// A one-line `lockreaper: …` error naming `what`, exit code 1.
fn assert_usage_error(run: &Run, what: &str) {
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    let line = run.stderr.trim_end();
    assert!(line.starts_with("lockreaper: "), "{run:?}");
    assert!(!line.contains('\n'), "one line expected: {run:?}");
    assert!(line.contains(what), "expected {what:?} in: {line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn locks_lists_real_terraform_locks_oldest_first_with_evidence_and_level() {
    let env = TestEnv::new("cli-locks").await;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let started = Utc::now();

    // A DynamoDB lock on a state with history (the apply wrote state and its -md5 digest)…
    let network = Terraform::init(
        &env,
        &bucket,
        "network/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let (code, out) = network.apply();
    assert_eq!(code, 0, "first apply should succeed:\n{out}");
    let older = network.stuck();
    // …then, later, a lock-file lock in a new workspace.
    let app = Terraform::init(
        &env,
        &bucket,
        "app/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    app.workspace("staging");
    let newer = app.stuck();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let vars = [
        ("LOCK_TABLES", table.as_str()),
        ("LOCK_BUCKETS", bucket.as_str()),
        ("WARN_AFTER", "1s"),
        ("EXPIRE_AFTER", "1s"),
    ];
    let run = lockreaper(&env, &vars, &["locks", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    assert_eq!(report["schema"], "lockreaper.locks/v1");
    assert_eq!(report["complete"], true, "{report:#}");
    assert_eq!(report["digest_items"], 1, "{report:#}");
    let locks = report["locks"].as_array().unwrap();
    assert_eq!(locks.len(), 2, "{report:#}");

    let (a, b) = (&locks[0], &locks[1]);
    assert_eq!(
        a["lock_id"],
        older.lock_id.as_str(),
        "oldest first: {report:#}"
    );
    assert_eq!(a["kind"], "terraform-dynamodb");
    assert_eq!(a["state_path"], older.path.as_str());
    assert_eq!(a["location"]["store"], "dynamodb");
    assert_eq!(a["location"]["table"], table.as_str());
    assert_eq!(a["operation"], "OperationTypeApply");
    assert!(a["who"].as_str().unwrap().contains('@'), "{a:#}");
    assert_eq!(a["created_source"], "recorded");
    assert_eq!(b["lock_id"], newer.lock_id.as_str());
    assert_eq!(b["kind"], "terraform-s3-lockfile");
    assert_eq!(
        b["state_path"],
        format!("{bucket}/env:/staging/app/terraform.tfstate")
    );
    assert_eq!(b["location"]["store"], "s3");

    let elapsed = (Utc::now() - started).num_seconds() as u64 + 1;
    for lock in [a, b] {
        let age = lock["age_seconds"].as_u64().unwrap();
        assert!(
            (1..=elapsed).contains(&age),
            "age {age}s, test ran {elapsed}s: {lock:#}"
        );
        let created: chrono::DateTime<Utc> = lock["created"].as_str().unwrap().parse().unwrap();
        assert!(
            created >= started - chrono::Duration::seconds(2),
            "{lock:#}"
        );
        assert_eq!(lock["liveness"]["holder_probably_alive"], false, "{lock:#}");
        assert_eq!(lock["liveness"]["state_written_after_lock"], Value::Null);
        assert_eq!(lock["level"], "propose-unlock", "{lock:#}");
        assert_eq!(
            lock["unlock_command"],
            format!(
                "terraform force-unlock {}",
                lock["lock_id"].as_str().unwrap()
            )
        );
    }
    assert!(a["age_seconds"].as_u64() >= b["age_seconds"].as_u64());
    // The state written by the first apply (and by `workspace new`) predates each lock.
    for lock in [a, b] {
        assert_eq!(lock["liveness"]["state_object_exists"], true, "{lock:#}");
        let written: chrono::DateTime<Utc> = lock["liveness"]["state_last_modified"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let created: chrono::DateTime<Utc> = lock["created"].as_str().unwrap().parse().unwrap();
        assert!(written <= created, "{lock:#}");
    }
    // Only the DynamoDB lock's state has a -md5 digest item, and it matches the state.
    assert_eq!(a["liveness"]["digest_matches_state"], true, "{a:#}");
    assert_eq!(b["liveness"]["digest_matches_state"], Value::Null, "{b:#}");

    // The same, as a person reads it.
    let run = lockreaper(&env, &vars, &["locks"]);
    assert_eq!(run.code, 0, "{run:?}");
    let text = &run.stdout;
    assert!(
        text.starts_with("2 locks in 1 table and 1 bucket, oldest first"),
        "{text}"
    );
    let header = text.lines().find(|l| l.starts_with("AGE")).unwrap();
    for column in [
        "LEVEL", "KIND", "STATE", "LOCK ID", "HOLDER", "OP", "EVIDENCE",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let row_a = text.lines().find(|l| l.contains(&older.lock_id)).unwrap();
    let row_b = text.lines().find(|l| l.contains(&newer.lock_id)).unwrap();
    assert!(
        text.find(row_a).unwrap() < text.find(row_b).unwrap(),
        "oldest first:\n{text}"
    );
    assert!(
        row_a.contains("propose-unlock") && row_a.contains("tf/dynamodb"),
        "{row_a}"
    );
    assert!(row_a.contains(" apply "), "{row_a}");
    assert!(row_a.contains("no state write since the lock"), "{row_a}");
    assert!(row_a.contains("digest matches state"), "{row_a}");
    assert!(
        row_b.contains("tf/lockfile") && row_b.contains("no state write since the lock"),
        "{row_b}"
    );
    let age = row_a.split_whitespace().next().unwrap();
    assert!(
        age.ends_with('s') || age.ends_with('m'),
        "AGE column of a lock a few seconds old: {row_a}"
    );
    assert!(
        text.contains(&format!("terraform force-unlock {}", older.lock_id)),
        "{text}"
    );

    // With the default policy, the same locks are fresh.
    let run = lockreaper(&env, &vars[..2], &["locks", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    for lock in run.json()["locks"].as_array().unwrap() {
        assert_eq!(lock["level"], "fresh", "{lock:#}");
    }

    // The kill switch, as the reaper judges it: no lock is shown as auto-expiring, and the
    // listing says unlocks are paused and by what.
    let auto = [
        ("LOCK_TABLES", table.as_str()),
        ("LOCK_BUCKETS", bucket.as_str()),
        ("WARN_AFTER", "1s"),
        ("EXPIRE_AFTER", "1s"),
        ("AUTO_EXPIRE", "true"),
    ];
    let run = lockreaper(&env, &auto, &["locks", "--json"]);
    let levels = |report: &Value| -> Vec<String> {
        report["locks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["level"].as_str().unwrap().to_owned())
            .collect()
    };
    let unpaused = run.json();
    assert_eq!(unpaused["policy"]["unlocks_paused"], false);
    assert!(
        !unpaused.to_string().contains("unlocks are paused"),
        "{unpaused:#}"
    );
    let paused_vars: Vec<(&str, &str)> = auto
        .iter()
        .copied()
        .chain([("UNLOCKS_PAUSED", "true")])
        .collect();
    let run = lockreaper(&env, &paused_vars, &["locks", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let paused = run.json();
    assert_eq!(paused["policy"]["unlocks_paused"], true);
    assert_eq!(
        levels(&paused),
        ["propose-unlock", "propose-unlock"],
        "{paused:#}"
    );
    for lock in paused["locks"].as_array().unwrap() {
        assert!(
            lock.to_string()
                .contains("unlocks are paused on this stack (UnlocksPaused=true)"),
            "every proposed lock says approvals are refused: {lock:#}"
        );
    }
    let run = lockreaper(&env, &paused_vars, &["locks"]);
    assert!(
        run.stdout.starts_with(
            "Unlocks are paused (UNLOCKS_PAUSED=true, the stack's UnlocksPaused=true)"
        ),
        "{run:?}"
    );
    let bad: Vec<(&str, &str)> = auto
        .iter()
        .copied()
        .chain([("UNLOCKS_PAUSED", "paused")])
        .collect();
    let run = lockreaper(&env, &bad, &["locks"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains(
            "UNLOCKS_PAUSED (--unlocks-paused): \"paused\" is neither `true` nor `false`"
        ),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn locks_lists_unparseable_locks_and_unreachable_sources_after_the_table() {
    let env = TestEnv::new("cli-broken").await;
    let table = env.name("locks");
    env.create_lock_table(&table, "LockID").await;
    // Not a Terraform lock: no Terraform writes this, so it is written by hand.
    env.aws
        .dynamodb()
        .put_item()
        .table_name(&table)
        .item("LockID", AttributeValue::S("b/broken.tfstate".into()))
        .item("Info", AttributeValue::S("not json".into()))
        .send()
        .await
        .unwrap();
    let missing_table = env.name("gone");
    let missing_bucket = env.name("nobucket");
    let tables = format!("{table},{missing_table}");
    let vars = [
        ("LOCK_TABLES", tables.as_str()),
        ("LOCK_BUCKETS", missing_bucket.as_str()),
    ];

    let run = lockreaper(&env, &vars, &["locks"]);
    assert_eq!(run.code, 2, "{run:?}");
    let text = &run.stdout;
    assert!(
        text.starts_with("No locks in 2 tables and 1 bucket."),
        "{text}"
    );
    assert!(
        text.contains("1 unparseable lock (inspect by hand"),
        "{text}"
    );
    assert!(text.contains("b/broken.tfstate"), "{text}");
    assert!(text.contains("2 sources could not be read"), "{text}");
    assert!(
        text.contains(&missing_table) && text.contains(&missing_bucket),
        "{text}"
    );

    let run = lockreaper(&env, &vars, &["locks", "--json"]);
    assert_eq!(run.code, 2, "{run:?}");
    let report = run.json();
    assert_eq!(report["complete"], false);
    assert_eq!(
        report["unparseable"].as_array().unwrap().len(),
        1,
        "{report:#}"
    );
    let unreachable = report["unreachable"].as_array().unwrap();
    assert_eq!(unreachable.len(), 2, "{report:#}");
    assert!(
        unreachable.iter().all(|u| u["kind"] == "not-found"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_deny_and_snooze_publish_what_force_unlock_reads() {
    let env = TestEnv::new("cli-approve").await;
    let approvals = env.topic_with_queue("approvals").await;
    let topic = approvals.topic_arn.as_str();
    let t = token(chrono::Duration::hours(2));

    let run = lockreaper(
        &env,
        &[("APPROVAL_TOPIC_ARN", topic)],
        &[
            "approve",
            &t,
            "--approver",
            "ana",
            "--reason",
            "runner was killed",
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("SNS message id"), "{run:?}");
    assert!(
        run.stdout
            .contains("force-unlock function verifies the token"),
        "{run:?}"
    );
    assert!(
        !run.stdout.contains(&t),
        "the whole token is not echoed: {run:?}"
    );
    let got = env
        .drain(&approvals.queue_url, Duration::from_secs(5))
        .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].json,
        Some(
            json!({"action": "approve", "token": t, "approver": "ana", "reason": "runner was killed"})
        )
    );
    let parsed = ApprovalMessage::parse(&got[0].message).unwrap();
    assert_eq!(parsed.source, ApprovalSource::Json);
    assert_eq!(
        parsed.message,
        ApprovalMessage::Approve {
            token: t.clone(),
            approver: Some("ana".into()),
            reason: Some("runner was killed".into()),
        }
    );

    // Snooze, with the token as pasted from chat (quoted, padded) and the approver from the environment.
    let quoted = format!(" \"{t}\" ");
    let run = lockreaper(
        &env,
        &[("APPROVAL_TOPIC_ARN", topic), ("LOCKREAPER_APPROVER", "bo")],
        &["snooze", &quoted, "2h"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("for 2h"), "{run:?}");
    let got = env
        .drain(&approvals.queue_url, Duration::from_secs(5))
        .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].json,
        Some(json!({"action": "snooze", "token": t, "approver": "bo", "for": "2h"}))
    );

    // Deny; the flag overrides a wrong APPROVAL_TOPIC_ARN in the environment.
    let run = lockreaper(
        &env,
        &[(
            "APPROVAL_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:no-such-topic",
        )],
        &["deny", &t, "--approval-topic-arn", topic],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let got = env
        .drain(&approvals.queue_url, Duration::from_secs(5))
        .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].json, Some(json!({"action": "deny", "token": t})));

    // Refused locally, nothing published.
    let run = lockreaper(
        &env,
        &[("APPROVAL_TOPIC_ARN", topic)],
        &["snooze", &t, "9d"],
    );
    assert_usage_error(&run, "longer than the 7d maximum");
    let run = lockreaper(
        &env,
        &[("APPROVAL_TOPIC_ARN", topic)],
        &["snooze", &t, "2x"],
    );
    assert_usage_error(&run, "bad snooze duration");
    let run = lockreaper(
        &env,
        &[("APPROVAL_TOPIC_ARN", topic)],
        &["approve", &t[..30]],
    );
    assert_usage_error(&run, "TOKEN has 30 characters, expected 58");
    let expired = token(chrono::Duration::hours(-1));
    let run = lockreaper(
        &env,
        &[("APPROVAL_TOPIC_ARN", topic)],
        &["approve", &expired],
    );
    assert_usage_error(&run, "the token expired at");
    assert!(env
        .drain(&approvals.queue_url, Duration::from_secs(2))
        .await
        .is_empty());

    // A topic that does not exist: AWS refuses, exit 2.
    let run = lockreaper(
        &env,
        &[(
            "APPROVAL_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:no-such-topic",
        )],
        &["approve", &t],
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .starts_with("lockreaper: publish to arn:aws:sns:us-east-1:123456789012:no-such-topic"),
        "{run:?}"
    );
}

/// A table keyed on `key`, with a stream of `view` type if given.
async fn create_table(env: &TestEnv, table: &str, key: &str, view: Option<StreamViewType>) {
    let stream = view.map(|v| {
        StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(v)
            .build()
            .unwrap()
    });
    env.aws
        .dynamodb()
        .create_table()
        .table_name(table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(key)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(key)
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .set_stream_specification(stream)
        .send()
        .await
        .unwrap();
}

async fn enable_ttl(env: &TestEnv, table: &str) {
    env.aws
        .dynamodb()
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// The lines of the section titled `title` in doctor's output.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| !l.starts_with(title))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_a_good_deployment() {
    let env = TestEnv::new("cli-doctor-ok").await;
    let (tf_table, gyro_table, bucket, ledger) = (
        env.name("locks"),
        env.name("gyro"),
        env.name("state"),
        env.name("ledger"),
    );
    env.create_lock_table(&tf_table, "LockID").await;
    env.create_lock_table(&gyro_table, "LockKey").await;
    env.create_state_bucket(&bucket).await;
    create_ledger_table(&env, &ledger).await;
    enable_ttl(&env, &ledger).await;
    let approvals = env.topic_with_queue("approvals").await;
    let alerts = env.topic_with_queue("alerts").await;
    // What the SAM template does: force-unlock subscribed to the approvals topic.
    env.aws
        .sns()
        .subscribe()
        .topic_arn(&approvals.topic_arn)
        .protocol("lambda")
        .endpoint("arn:aws:lambda:us-east-1:123456789012:function:lockreaper-force-unlock")
        .send()
        .await
        .unwrap();
    let tables = format!("{tf_table},{gyro_table}");
    let buckets = format!("{bucket}/env:/");

    let run = lockreaper(
        &env,
        &[
            ("LOCK_TABLES", tables.as_str()),
            ("LOCK_BUCKETS", buckets.as_str()),
            ("LEDGER_TABLE", ledger.as_str()),
            ("APPROVAL_TOPIC_ARN", approvals.topic_arn.as_str()),
            ("ALERT_TOPIC_ARN", alerts.topic_arn.as_str()),
        ],
        &["doctor"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let text = &run.stdout;
    assert!(!text.contains("FAIL "), "{text}");
    assert!(text.contains("\n0 FAIL, "), "{text}");
    let tf = section(text, &format!("lock table {tf_table}"));
    assert_eq!(
        tf,
        [
            "  OK    exists, keyed on LockID (S): a Terraform/OpenTofu lock table",
            "  OK    stream enabled with NEW_AND_OLD_IMAGES",
            "  OK    Scan works (how the reaper and `lockreaper locks` read locks)",
        ],
        "{text}"
    );
    let gyro = section(text, &format!("lock table {gyro_table}"));
    assert!(
        gyro[0].contains("keyed on LockKey (S): a Gyro lock table"),
        "{text}"
    );
    let b = section(text, &format!("bucket s3://{bucket}/env:/"));
    assert_eq!(b[0], "  OK    exists", "{text}");
    // moto may answer GetBucketVersioning in a shape the SDK cannot parse: then a WARN, never a FAIL.
    assert!(
        b[1].starts_with("  OK    versioning enabled")
            || b[1].starts_with("  WARN  could not read versioning"),
        "{text}"
    );
    assert!(
        b.iter()
            .any(|l| l.starts_with("  OK    ListObjectsV2 works on")),
        "{text}"
    );
    let l = section(text, &format!("ledger {ledger}"));
    assert_eq!(
        l,
        [
            "  OK    exists, keyed on pk (S) and sk (S)",
            "  OK    TTL enabled on expires_at",
            "  OK    GetItem works (how `audit` and the liveness evidence read it)",
        ],
        "{text}"
    );
    assert_eq!(
        section(text, &format!("approvals topic {}", approvals.topic_arn)),
        [
            "  OK    exists",
            "  OK    Lambda subscribed: lockreaper-force-unlock (the force-unlock function receives approvals)",
        ],
        "{text}"
    );
    assert_eq!(
        section(text, &format!("alert topic {}", alerts.topic_arn)),
        ["  OK    exists", "  OK    1 confirmed subscription(s): sqs"],
        "{text}"
    );
}

/// Issue 17: a role check that could not be simulated is never a pass. moto does not implement
/// iam:SimulatePrincipalPolicy, so here the simulation fails: the role is reported NOT checked
/// (WARN), with the role's section present and no OK for it. That it is OK or FAILs correctly
/// when IAM answers is checked against ministack's policy evaluator by infra/sam/deploy_local.py,
/// and the wording of each outcome by doctor_roles.rs's unit tests.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_never_passes_a_role_it_could_not_simulate() {
    let env = TestEnv::new("cli-doctor-roles").await;
    let table = env.name("locks");
    env.create_lock_table(&table, "LockID").await;
    let run = lockreaper(
        &env,
        &[
            ("LOCK_TABLES", table.as_str()),
            (
                "REAPER_ROLE_ARN",
                "arn:aws:iam::123456789012:role/lockreaper-reaper",
            ),
        ],
        &["doctor", "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    let roles = report["roles"].as_array().expect("roles");
    assert_eq!(roles.len(), 1, "{report:#}");
    assert_eq!(roles[0]["function"], "reaper");
    assert_eq!(roles[0]["simulated"], 0, "{report:#}");
    assert!(roles[0]["error"].is_string(), "{report:#}");
    let section = report["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .find(|s| s["title"] == "functions' roles (iam:SimulatePrincipalPolicy)")
        .expect("the roles' section");
    assert_eq!(section["checks"][0]["status"], "warn", "{report:#}");
    assert!(
        section["checks"][0]["what"]
            .as_str()
            .unwrap()
            .starts_with("reaper's role NOT checked"),
        "{report:#}"
    );
    // A role ARN that is not one is a usage error naming the variable and flag.
    let bad = lockreaper(
        &env,
        &[
            ("LOCK_TABLES", table.as_str()),
            ("FORCE_UNLOCK_ROLE_ARN", "force-unlock"),
        ],
        &["doctor"],
    );
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr
            .contains("FORCE_UNLOCK_ROLE_ARN (--force-unlock-role-arn): \"force-unlock\" is not an IAM role ARN"),
        "{bad:?}"
    );
    // The Slack app mode's roles (issue 13) are checked the same way, by their own variables.
    let slack = lockreaper(
        &env,
        &[
            ("LOCK_TABLES", table.as_str()),
            (
                "SLACK_INTERACTIONS_ROLE_ARN",
                "arn:aws:iam::123456789012:role/lockreaper-slack-press",
            ),
        ],
        &["doctor", "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(&slack.stdout).expect("JSON");
    let roles = report["roles"].as_array().expect("roles");
    assert_eq!(roles.len(), 1, "{report:#}");
    assert_eq!(roles[0]["function"], "slack-interactions", "{report:#}");
    assert_eq!(roles[0]["simulated"], 0, "{report:#}");
    let bad = lockreaper(
        &env,
        &[
            ("LOCK_TABLES", table.as_str()),
            ("SLACK_NOTIFIER_ROLE_ARN", "slack-notifier"),
        ],
        &["doctor"],
    );
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.contains(
            "SLACK_NOTIFIER_ROLE_ARN (--slack-notifier-role-arn): \"slack-notifier\" is not an IAM role ARN"
        ),
        "{bad:?}"
    );
}

/// Issue 15: a section per configured bucket (once, whatever its prefixes) saying whether it
/// sends its S3 events to EventBridge, never a FAIL. moto 5.2.5 cannot answer this question
/// (with EventBridge on it returns an empty configuration; with nothing configured, a
/// `GetBucketNotificationResponse` the SDK cannot parse), so what each answer means is checked
/// in doctor.rs's unit tests; here, that each bucket gets exactly one such check and a fix.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_checks_each_buckets_s3_events_once() {
    let env = TestEnv::new("cli-doctor-s3ev").await;
    let (first, second) = (env.name("first"), env.name("second"));
    env.create_state_bucket(&first).await;
    env.create_state_bucket(&second).await;
    let buckets = format!("{first}/a/,{first}/b/,{second}");
    let run = lockreaper(&env, &[("LOCK_BUCKETS", buckets.as_str())], &["doctor"]);
    let text = &run.stdout;
    for bucket in [&first, &second] {
        let title = format!("S3 events of bucket {bucket}");
        assert_eq!(text.lines().filter(|l| *l == title).count(), 1, "{text}");
        let checks = section(text, &title);
        assert!(
            checks[0].starts_with("  WARN  ") || checks[0].starts_with("  OK    "),
            "{text}"
        );
        if checks[0].starts_with("  WARN  ") {
            assert!(checks[1].contains("eventbridge = true"), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_fails_with_fixes_for_a_broken_deployment() {
    let env = TestEnv::new("cli-doctor-bad").await;
    let (no_stream, wrong_key, missing_bucket, ledger) = (
        env.name("nostream"),
        env.name("wrongkey"),
        env.name("nobucket"),
        env.name("ledger"),
    );
    create_table(&env, &no_stream, "LockID", None).await;
    create_table(&env, &wrong_key, "id", None).await;
    let keys_only = env.name("keysonly");
    create_table(&env, &keys_only, "LockID", Some(StreamViewType::KeysOnly)).await;
    create_ledger_table(&env, &ledger).await; // no TTL
    let tables = format!("{no_stream},{wrong_key},{keys_only}");
    let run = lockreaper(
        &env,
        &[
            ("LOCK_TABLES", tables.as_str()),
            ("LOCK_BUCKETS", missing_bucket.as_str()),
            ("LEDGER_TABLE", ledger.as_str()),
            (
                "APPROVAL_TOPIC_ARN",
                "arn:aws:sns:us-east-1:123456789012:no-such-approvals",
            ),
        ],
        &["doctor"],
    );
    assert_eq!(run.code, 2, "{run:?}");
    let text = &run.stdout;

    let t = section(text, &format!("lock table {no_stream}"));
    assert!(
        t[0].starts_with("  OK    exists, keyed on LockID"),
        "{text}"
    );
    assert_eq!(
        t[1], "  FAIL  no stream enabled: lock-metrics cannot see locks being taken and released",
        "{text}"
    );
    assert!(
        t[2].starts_with(
            "        fix: in Terraform's aws_dynamodb_table set stream_enabled = true"
        ),
        "{text}"
    );
    assert!(t[2].contains(&format!("--table-name {no_stream} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES")), "{text}");

    let t = section(text, &format!("lock table {keys_only}"));
    assert_eq!(
        t[1],
        "  FAIL  stream view type is KEYS_ONLY; lock-metrics needs NEW_AND_OLD_IMAGES to see what each lock was",
        "{text}"
    );
    assert!(
        t[2].starts_with("        fix: disable the stream, then in Terraform"),
        "{text}"
    );

    let t = section(text, &format!("lock table {wrong_key}"));
    assert!(
        t[0].starts_with("  FAIL  keyed on id, not LockID (Terraform/OpenTofu) or LockKey (Gyro)"),
        "{text}"
    );

    let b = section(text, &format!("bucket s3://{missing_bucket}"));
    assert_eq!(
        b,
        [
            "  FAIL  does not exist",
            "        fix: create it, or correct LOCK_BUCKETS (--buckets): it must name the bucket of your S3 backend",
        ],
        "{text}"
    );

    let l = section(text, &format!("ledger {ledger}"));
    assert!(
        l.iter().any(|line| line.starts_with("  WARN  TTL is off")),
        "{text}"
    );
    assert!(
        l.iter().any(|line| line.contains("update-time-to-live")),
        "{text}"
    );

    let a = section(
        text,
        "approvals topic arn:aws:sns:us-east-1:123456789012:no-such-approvals",
    );
    assert_eq!(a[0], "  FAIL  does not exist", "{text}");
    let alert = section(text, "alert topic");
    assert!(
        alert[0].starts_with("  WARN  ALERT_TOPIC_ARN (--alert-topic-arn) is not set"),
        "{text}"
    );
    assert!(
        text.contains("FAIL, ") && text.trim_end().ends_with("fix the FAIL lines above"),
        "{text}"
    );

    // `doctor --json` reports exactly the same checks, for scripts.
    let vars = [
        ("LOCK_TABLES", tables.as_str()),
        ("LOCK_BUCKETS", missing_bucket.as_str()),
        ("LEDGER_TABLE", ledger.as_str()),
        (
            "APPROVAL_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:no-such-approvals",
        ),
    ];
    let json_run = lockreaper(&env, &vars, &["doctor", "--json"]);
    assert_eq!(json_run.code, 2, "{json_run:?}");
    let doc = json_run.json();
    assert_eq!(doc["schema"], "lockreaper.doctor/v1", "{doc:#}");
    assert_eq!(doc["passed"], false, "{doc:#}");
    let sections = doc["sections"].as_array().unwrap();
    let text_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  OK") || l.starts_with("  WARN") || l.starts_with("  FAIL"))
        .collect();
    let json_checks: Vec<String> = sections
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .map(|c| {
            format!(
                "{} {}",
                c["status"].as_str().unwrap().to_uppercase(),
                c["what"].as_str().unwrap()
            )
        })
        .collect();
    let text_checks: Vec<String> = text_lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let json_checks: Vec<String> = json_checks
        .iter()
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(json_checks, text_checks);
    let fails = json_checks.iter().filter(|c| c.starts_with("FAIL")).count();
    assert_eq!(doc["counts"]["fail"], fails, "{doc:#}");
    let no_stream_section = sections
        .iter()
        .find(|s| s["title"] == format!("lock table {no_stream}"))
        .unwrap();
    assert_eq!(no_stream_section["checks"][1]["status"], "fail");
    assert!(no_stream_section["checks"][1]["fix"]
        .as_str()
        .unwrap()
        .contains("stream_enabled = true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_shows_the_record_an_unlock_wrote() {
    let env = TestEnv::new("cli-audit").await;
    let (table, bucket, ledger) = (env.name("locks"), env.name("state"), env.name("ledger"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    create_ledger_table(&env, &ledger).await;
    let tf = Terraform::init(
        &env,
        &bucket,
        "db/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let stuck = tf.stuck();

    // Nothing released yet.
    let vars = [("LEDGER_TABLE", ledger.as_str())];
    let run = lockreaper(&env, &vars, &["audit", &stuck.path]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with(&format!(
            "No audit records for {} in ledger table {ledger}",
            stuck.path
        )),
        "{run:?}"
    );

    let scan = LockTable::new(env.aws.dynamodb(), &table)
        .scan(1)
        .await
        .unwrap();
    assert_eq!(scan.locks.len(), 1, "{scan:?}");
    let report = Unlocker::new(env.aws.dynamodb(), env.aws.s3(), &ledger)
        .unlock(
            UnlockRequest {
                locks: &scan.locks,
                source: ApprovalSource::Json,
                approver: Some("ana".into()),
                approver_groups: Vec::new(),
                reason: Some("runner was killed".into()),
                proposal_id: Some("cHJvcG9zYWwtMDAx".into()),
                audit_id: format!("audit-{}", env.id),
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(report.result, UnlockResult::Unlocked);

    let run = lockreaper(&env, &vars, &["audit", &format!("s3://{}", stuck.path)]);
    assert_eq!(run.code, 0, "{run:?}");
    let text = &run.stdout;
    assert!(
        text.starts_with(&format!(
            "Audit trail of {} (ledger table {ledger}), newest first:",
            stuck.path
        )),
        "{text}"
    );
    let head = text.lines().find(|l| l.contains(&stuck.lock_id)).unwrap();
    assert!(head.contains(" UTC  unlocked  lock "), "{head}");
    assert!(
        text.contains("by:        ana, via a JSON message (CLI or integration)"),
        "{text}"
    );
    assert!(text.contains("reason:    runner was killed"), "{text}");
    assert!(text.contains("proposal:  cHJvcG9zYWwtMDAx"), "{text}");
    assert!(text.contains("OperationTypeApply"), "{text}");
    assert!(
        text.contains(&format!(
            "artefacts: dynamodb://{table} (LockID = \"{}\") → deleted",
            stuck.path
        )),
        "{text}"
    );

    let run = lockreaper(
        &env,
        &vars,
        &["audit", &stuck.path, "--json", "--limit", "5"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let v = run.json();
    assert_eq!(v["schema"], "lockreaper.audit/v1");
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{v:#}");
    assert_eq!(records[0]["lock_id"], stuck.lock_id.as_str());
    assert_eq!(records[0]["approver"], "ana");
    assert_eq!(records[0]["outcomes"], json!(["deleted"]));

    // Another state has no trail.
    let other = format!("{bucket}/other/terraform.tfstate");
    let run = lockreaper(&env, &vars, &["audit", &other, "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.json()["records"], json!([]));
}

#[test]
fn bad_configuration_exits_1_naming_the_variable_or_flag() {
    let good = token(chrono::Duration::hours(1));
    let region = [("AWS_REGION".to_owned(), "us-east-1".to_owned())];
    let none: [(String, String); 0] = [];

    assert_usage_error(
        &run_with(&none, &["locks"]),
        "LOCK_TABLES (--tables): neither LOCK_TABLES nor LOCK_BUCKETS is set",
    );
    let vars = [
        ("LOCK_TABLES".to_owned(), "t1".to_owned()),
        ("WARN_AFTER".to_owned(), "4x".to_owned()),
        ("EXPIRE_AFTER".to_owned(), "30m".to_owned()),
    ];
    let run = run_with(&vars, &["locks"]);
    assert_usage_error(
        &run,
        "WARN_AFTER (--warn-after): \"4x\" has an unknown unit",
    );
    assert_usage_error(&run, "expected a duration such as `90m`");
    assert_usage_error(
        &run_with(&region, &["locks", "--buckets", "/x"]),
        "LOCK_BUCKETS (--buckets): \"/x\" has no bucket name; expected `bucket` or `bucket/prefix`",
    );
    assert_usage_error(
        &run_with(&region, &["approve", &good]),
        "APPROVAL_TOPIC_ARN (--approval-topic-arn): is not set",
    );
    assert_usage_error(
        &run_with(&region, &["approve", &good, "--approval-topic-arn", "lockreaper-approvals"]),
        "APPROVAL_TOPIC_ARN (--approval-topic-arn): \"lockreaper-approvals\" is not the ARN of an SNS topic",
    );
    assert_usage_error(
        &run_with(&region, &["audit", "b/k"]),
        "LEDGER_TABLE (--ledger-table): is not set",
    );
    assert_usage_error(
        &run_with(&none, &["locks", "--tables", "t"]),
        "no AWS region is configured; set AWS_REGION",
    );
    assert_usage_error(
        &run_with(&none, &["approve", "not-a-token"]),
        "TOKEN does not start with `lr1.`",
    );
    assert_usage_error(
        &run_with(&none, &["locks", "--jsn"]),
        "unexpected argument '--jsn'",
    );
    assert_usage_error(
        &run_with(&none, &["approve"]),
        "required arguments were not provided: <TOKEN>",
    );

    // --dry-run needs no AWS at all and prints the exact message.
    let run = run_with(
        &none,
        &["deny", &good, "--reason", "still running", "--dry-run"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let printed: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(
        printed,
        json!({"action": "deny", "token": good, "reason": "still running"})
    );

    let help = run_with(&none, &["--help"]);
    assert_eq!(help.code, 0);
    for needle in [
        "LOCK_TABLES",
        "doctor",
        "Exit codes: 0 done; 1 usage",
        "[env: WARN_AFTER",
    ] {
        assert!(help.stdout.contains(needle), "{needle}: {}", help.stdout);
    }
}

/// Shell completions come from the same clap definition that parses the command line: every
/// command is offered, and bash accepts the script (`bash -n` parses it without running it).
#[test]
fn completions_offer_every_command_and_bash_parses_the_script() {
    let bash = run_with(&[], &["completions", "bash"]);
    assert_eq!(bash.code, 0, "{bash:?}");
    for command in [
        "locks", "approve", "deny", "snooze", "audit", "doctor", "man",
    ] {
        assert!(
            bash.stdout.contains(command),
            "{command} missing:\n{}",
            bash.stdout
        );
    }
    let dir = std::env::temp_dir().join(format!("lockreaper-completions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("lockreaper.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = run_with(&[], &["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {run:?}");
        assert!(run.stdout.contains("doctor"), "{shell}:\n{}", run.stdout);
    }
    let unknown = run_with(&[], &["completions", "tcsh"]);
    assert_eq!(
        unknown.code, 1,
        "an unknown shell is a usage error: {unknown:?}"
    );
    assert!(unknown.stderr.contains("tcsh"), "{}", unknown.stderr);
}

/// The man page is roff that `man` itself renders; with `--dir`, one page per command.
#[test]
fn man_pages_render_and_name_every_command() {
    let page = run_with(&[], &["man"]);
    assert_eq!(page.code, 0, "{page:?}");
    assert!(
        page.stdout.contains("\n.TH lockreaper 1 "),
        "{}",
        page.stdout
    );
    assert!(
        page.stdout.contains("LOCK_TABLES"),
        "the page documents the environment:\n{}",
        page.stdout
    );

    let dir = std::env::temp_dir().join(format!("lockreaper-man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = run_with(&[], &["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    for name in [
        "lockreaper",
        "lockreaper-locks",
        "lockreaper-approve",
        "lockreaper-doctor",
    ] {
        let file = dir.join(format!("{name}.1"));
        assert!(file.is_file(), "{} not written", file.display());
    }
    // `man -l` renders a local file; groff is what renders it, and it must not complain.
    if Command::new("man").arg("--version").output().is_ok() {
        let rendered = Command::new("man")
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0")
            .args(["-l", "-P", "cat"])
            .arg(dir.join("lockreaper-locks.1"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            rendered.status.success(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        assert!(text.contains("--json"), "{text}");
    }
}

/// Progress goes to stderr only when asked for or on a terminal, is erased before the result, and
/// never touches stdout (what scripts read).
#[tokio::test(flavor = "multi_thread")]
async fn progress_is_drawn_on_stderr_only_and_erased() {
    let env = TestEnv::new("cli-progress").await;
    let table = env.name("locks");
    create_table(
        &env,
        &table,
        "LockID",
        Some(StreamViewType::NewAndOldImages),
    )
    .await;
    let vars = [
        ("LOCK_TABLES", table.as_str()),
        ("LOCKREAPER_PROGRESS", "always"),
        ("LOCKREAPER_PROGRESS_AFTER_MS", "0"),
    ];
    let shown = lockreaper(&env, &vars, &["locks", "--json"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(
        shown
            .stderr
            .contains("reading 1 lock table(s) and 0 bucket(s)…"),
        "{shown:?}"
    );
    assert!(
        shown.stderr.ends_with("\r\x1b[2K"),
        "erased at the end: {shown:?}"
    );
    assert_eq!(shown.json()["schema"], "lockreaper.locks/v1");

    // Not a terminal (as here), nothing asked: not a byte of progress.
    let quiet = lockreaper(
        &env,
        &[("LOCK_TABLES", table.as_str())],
        &["locks", "--json"],
    );
    assert_eq!(quiet.code, 0, "{quiet:?}");
    assert!(!quiet.stderr.contains('\x1b'), "{quiet:?}");
    assert_eq!(
        quiet.stdout,
        shown.stdout.replace(
            &shown.json()["generated_at"].to_string(),
            &quiet.json()["generated_at"].to_string()
        )
    );
}

/// Issue 17, evidence coverage, as the CLI shows it: two real stale Terraform locks in one lock
/// table, one whose state is in the configured state bucket and one in a bucket the deployment
/// does not cover. `locks` says "cannot tell" for the second (EVIDENCE column and JSON), and
/// `doctor` groups the table's state paths by bucket with each bucket's coverage.
#[tokio::test(flavor = "multi_thread")]
async fn locks_and_doctor_show_a_state_bucket_the_deployment_does_not_cover() {
    let env = TestEnv::new("cli-coverage").await;
    let (table, covered, elsewhere) = (env.name("locks"), env.name("state"), env.name("other"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&covered).await;
    env.create_state_bucket(&elsewhere).await;
    let mut stuck = Vec::new();
    for bucket in [&covered, &elsewhere] {
        let tf = Terraform::init(
            &env,
            bucket,
            "net/terraform.tfstate",
            Some(&table),
            LockMode::DynamoDb,
        );
        let (code, out) = tf.apply();
        assert_eq!(code, 0, "{out}");
        stuck.push(tf.stuck());
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let vars = [
        ("LOCK_TABLES", table.as_str()),
        ("STATE_BUCKETS", covered.as_str()),
        ("WARN_AFTER", "1s"),
        ("EXPIRE_AFTER", "1s"),
    ];

    let run = lockreaper(&env, &vars, &["locks", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let report = run.json();
    let by_path = |path: &str| {
        report["locks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["state_path"] == path)
            .cloned()
            .unwrap_or_else(|| panic!("no lock at {path}: {report:#}"))
    };
    let inside = by_path(&stuck[0].path);
    assert_eq!(
        inside["liveness"]["state_not_covered"],
        Value::Null,
        "{inside:#}"
    );
    let outside = by_path(&stuck[1].path);
    let why = outside["liveness"]["state_not_covered"].as_str().unwrap();
    assert!(
        why.starts_with(&format!(
            "the state bucket `{elsewhere}` is not covered by this deployment (StateBuckets/StateKeyPrefix)"
        )),
        "{outside:#}"
    );
    assert!(
        outside["reasons"]
            .to_string()
            .contains("cannot tell — the state bucket"),
        "{outside:#}"
    );

    let text = lockreaper(&env, &vars, &["locks"]).stdout;
    let row = |path: &str| {
        text.lines()
            .find(|l| l.contains(path) && l.contains("propose-unlock"))
            .unwrap_or_else(|| panic!("no row for {path}:\n{text}"))
            .to_owned()
    };
    assert!(
        row(&stuck[1].path).contains("CANNOT TELL: state bucket not covered"),
        "{text}"
    );
    assert!(!row(&stuck[0].path).contains("CANNOT TELL"), "{text}");

    // doctor: the table's state paths (lock and digest items) grouped by bucket.
    let doctor = lockreaper(&env, &vars, &["doctor", "--json"]);
    let doc = doctor.json();
    assert_eq!(doc["schema"], "lockreaper.doctor/v1", "{doc:#}");
    let source = doc["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["source"] == format!("lock table {table}"))
        .unwrap_or_else(|| panic!("{doc:#}"))
        .clone();
    assert_eq!(source["capped"], false, "{source:#}");
    let bucket = |name: &str| {
        source["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["bucket"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name}: {source:#}"))
    };
    let (a, b) = (bucket(&covered), bucket(&elsewhere));
    assert_eq!(
        (
            a["listed"].clone(),
            a["state_paths"].clone(),
            a["covered"].clone()
        ),
        (json!(true), json!(1), json!(1)),
        "{a:#}"
    );
    assert_eq!(
        (
            b["listed"].clone(),
            b["state_paths"].clone(),
            b["covered"].clone()
        ),
        (json!(false), json!(1), json!(0)),
        "{b:#}"
    );
    // The emulator has no IAM: the uncovered bucket is readable, which is why coverage comes
    // from the configuration.
    assert_eq!(b["readable"], true, "{b:#}");
    assert_eq!(b["same_region"], true, "{b:#}");
    let human = lockreaper(&env, &vars, &["doctor"]).stdout;
    let lines = section(&human, &format!("state buckets of lock table {table}"));
    assert!(
        lines.iter().any(|l| l.starts_with("  WARN  s3://")
            && l.contains(&elsewhere)
            && l.contains("NOT covered")),
        "{human}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("  OK    s3://")
            && l.contains(&covered)
            && l.contains("all covered")),
        "{human}"
    );
}

/// Issue 17: a state bucket in another region than the functions' is refused by `doctor`, with
/// the region named and what to do, while a bucket in the home region passes. moto keeps buckets
/// in several regions and answers HeadBucket's `x-amz-bucket-region` for each.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_refuses_a_bucket_in_another_region() {
    let env = TestEnv::new("cli-doctor-region").await;
    let (home, away) = (env.name("home"), env.name("away"));
    env.create_state_bucket(&home).await;
    let west = aws_sdk_s3::config::Builder::from(&env.aws.sdk)
        .region(aws_sdk_s3::config::Region::new("us-west-2"))
        .force_path_style(env.aws.s3_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(west)
        .create_bucket()
        .bucket(&away)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {away} in us-west-2: {e:?}"));
    let home_region = env
        .aws
        .sdk
        .region()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert_ne!(
        home_region, "us-west-2",
        "the test needs another home region"
    );
    let buckets = format!("{home}/network/,{away}/env:/prod/");
    let run = lockreaper(&env, &[("LOCK_BUCKETS", buckets.as_str())], &["doctor"]);
    assert_eq!(run.code, 2, "{run:?}");
    let text = &run.stdout;
    let b = section(text, &format!("bucket s3://{away}/env:/prod/"));
    assert_eq!(
        b,
        [
            format!("  FAIL  is in us-west-2, not {home_region} where lockreaper runs: buckets in another region are not supported").as_str(),
            format!("        fix: deploy a lockreaper stack in us-west-2 and list {away} there, and remove it from LOCK_BUCKETS (StateBuckets) here").as_str(),
        ],
        "{text}"
    );
    let h = section(text, &format!("bucket s3://{home}/network/"));
    assert_eq!(h[0], "  OK    exists", "{text}");
}
