//! Classification cases. The Terraform records are `infra/fixtures/terraform/stream-records.json`,
//! captured from real Terraform 1.15 and shaped as Lambda's event source mapping delivers them.

use super::*;
use crate::model::DeletePrecondition;
use chrono::TimeZone;
use serde_dynamo::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;

const FIXTURE: &str = include_str!("../../../infra/fixtures/terraform/stream-records.json");
const ARN: &str =
    "arn:aws:dynamodb:us-east-1:123456789012:table/terraform-locks/stream/2026-11-26T00:03:29.152218";

/// Reads a Lambda-shaped record the way the function does (minus the aws_lambda_events types).
fn from_lambda_json(r: &Value) -> StreamRecord {
    let image = |name: &str| -> Item {
        r["dynamodb"]
            .get(name)
            .map(|v| serde_json::from_value(v.clone()).expect("DynamoDB JSON image"))
            .unwrap_or_default()
    };
    StreamRecord {
        event_id: r["eventID"].as_str().unwrap().to_owned(),
        event_name: r["eventName"].as_str().unwrap().to_owned(),
        event_source_arn: r["eventSourceARN"].as_str().map(str::to_owned),
        sequence_number: r["dynamodb"]["SequenceNumber"].as_str().map(str::to_owned),
        approximate_creation: r["dynamodb"]["ApproximateCreationDateTime"]
            .as_i64()
            .map(|s| Utc.timestamp_opt(s, 0).unwrap()),
        user_identity: r.get("userIdentity").map(|u| UserIdentity {
            kind: u["type"].as_str().unwrap_or_default().to_owned(),
            principal_id: u["principalId"].as_str().unwrap_or_default().to_owned(),
        }),
        keys: image("Keys"),
        old_image: image("OldImage"),
        new_image: image("NewImage"),
    }
}

fn fixture() -> Vec<StreamRecord> {
    let v: Value = serde_json::from_str(FIXTURE).unwrap();
    v["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(from_lambda_json)
        .collect()
}

fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap()
}

fn item(attrs: &[(&str, &str)]) -> Item {
    attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned())))
        .collect::<HashMap<_, _>>()
        .into()
}

fn gyro(change: &str, old: Item, new: Item, at: i64) -> StreamRecord {
    StreamRecord {
        event_id: format!("gyro-{change}"),
        event_name: change.to_owned(),
        event_source_arn: Some(
            "arn:aws:dynamodb:eu-west-1:111122223333:table/gyro-locks/stream/2025-01-01T00:00:00.000"
                .to_owned(),
        ),
        sequence_number: Some(format!("{at}00")),
        approximate_creation: Some(Utc.timestamp_opt(at, 0).unwrap()),
        user_identity: None,
        keys: item(&[("LockKey", "default")]),
        old_image: old,
        new_image: new,
    }
}

const GYRO_ID: &str = "adf4feb3-3333-447e-89d9-819da078618d";
const GYRO_INFO: &str =
    "Locked by 'gyro-user' running 'up ec2/ami.gyro' at '16:38:29 EDT, Apr-27'.";

#[test]
fn table_names_come_from_the_stream_arn() {
    assert_eq!(table_from_stream_arn(ARN), Some("terraform-locks"));
    assert_eq!(
        table_from_stream_arn(
            "arn:aws-cn:dynamodb:cn-north-1:1:table/a.b-c_d/stream/2025-01-01T00:00:00.000"
        ),
        Some("a.b-c_d")
    );
    for bad in [
        "",
        "arn:aws:s3:::bucket",
        "arn:aws:dynamodb:us-east-1:1:table/t",
        "arn:aws:dynamodb:us-east-1:1:table//stream/x",
        "arn:aws:kinesis:us-east-1:1:table/t/stream/x",
        "nonsense:aws:dynamodb:us-east-1:1:table/t/stream/x",
    ] {
        assert_eq!(table_from_stream_arn(bad), None, "{bad}");
    }
}

#[test]
fn real_terraform_records_in_order() {
    let records = fixture();
    assert_eq!(records.len(), 4);
    let c: Vec<Classified> = records.iter().map(|r| classify(r, received())).collect();
    let at = Utc.timestamp_opt(1_795_651_410, 0).unwrap();
    for x in &c {
        assert_eq!(x.table, "terraform-locks");
        assert_eq!(x.at, at, "the record's time, not the receive time");
        assert!(x.counts());
    }
    assert_eq!(c[0].record_id, "1100000000017454423009");
    assert_eq!(c[0].event_id, "1b205c3af0e04bbdbf06e1fb36d9491b");
    assert_eq!(c[0].change, Some(Change::Insert));

    // 1. INSERT lock: acquired, with Terraform's own Created time.
    let LockEvent::Acquired { lock } = &c[0].event else {
        panic!("{:?}", c[0].event)
    };
    assert_eq!(lock.kind, LockKind::TerraformDynamoDb);
    assert_eq!(lock.lock_id, "44c394d3-feeb-2050-3e79-2ea2cab34f41");
    assert_eq!(lock.state_path, "acme-tfstate/network/terraform.tfstate");
    assert_eq!(lock.who.as_deref(), Some("root@vm"));
    assert!(matches!(lock.created, LockCreated::Recorded(_)));
    assert!(
        c[0].first_seen_to_record().is_none(),
        "Terraform records its own time"
    );

    // 2. INSERT digest: the state was written.
    let LockEvent::StateWritten { digest } = &c[1].event else {
        panic!("{:?}", c[1].event)
    };
    assert_eq!(digest.state_path, "acme-tfstate/network/terraform.tfstate");
    assert_eq!(
        digest.digest.as_deref(),
        Some("f20289b063a531619078d68bf8975bb8")
    );
    assert_eq!(c[1].event.kind(), Some(LockKind::TerraformDynamoDb));

    // 3. REMOVE lock: released. Created 00:03:30.079651085, removed "00:03:30" (rounded down):
    // the hold time is whole seconds and never negative.
    let LockEvent::Released {
        lock,
        release,
        hold,
    } = &c[2].event
    else {
        panic!("{:?}", c[2].event)
    };
    assert_eq!(lock.lock_id, "44c394d3-feeb-2050-3e79-2ea2cab34f41");
    assert_eq!(*release, Release::Normal);
    assert_eq!(*hold, Some(Duration::ZERO));
    assert_eq!(c[2].removed_by, None);
    assert!(c[2].needs_first_seen().is_none());

    // 4. INSERT of the stuck lock.
    let LockEvent::Acquired { lock } = &c[3].event else {
        panic!("{:?}", c[3].event)
    };
    assert_eq!(lock.lock_id, "e66c726a-82b5-e5e2-0d99-6ab436f94221");
    assert!(matches!(&lock.precondition, DeletePrecondition::InfoEquals(raw) if raw == &lock.raw));
}

#[test]
fn hold_times_are_whole_seconds() {
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let created = t("2026-11-26T00:03:30.079651085Z");
    assert_eq!(
        hold_time(created, t("2026-11-26T00:03:30Z")),
        Duration::ZERO
    );
    assert_eq!(
        hold_time(created, t("2026-11-26T00:03:40Z")),
        Duration::from_secs(10)
    );
    assert_eq!(
        hold_time(created, t("2026-11-26T00:03:41Z")),
        Duration::from_secs(11)
    );
    assert_eq!(
        hold_time(t("2026-11-26T00:03:30.6Z"), t("2026-11-26T00:03:41Z")),
        Duration::from_secs(10),
        "10.4 s rounds to 10"
    );
    assert_eq!(
        hold_time(created, t("2026-11-25T00:00:00Z")),
        Duration::ZERO
    );
}

#[test]
fn removal_later_than_creation_gives_the_hold_time() {
    let mut records = fixture();
    records[2].approximate_creation = Some(Utc.timestamp_opt(1_795_651_410 + 3600, 0).unwrap());
    let c = classify(&records[2], received());
    let LockEvent::Released { hold, .. } = c.event else {
        panic!()
    };
    // 01:03:30 - 00:03:30.0797 = 3599.92 s → 3600 s.
    assert_eq!(hold, Some(Duration::from_secs(3600)));
}

#[test]
fn ttl_deletion_is_an_expiry() {
    let mut record = fixture().remove(2);
    record.user_identity = Some(UserIdentity {
        kind: "Service".to_owned(),
        principal_id: TTL_PRINCIPAL.to_owned(),
    });
    let c = classify(&record, received());
    assert_eq!(c.removed_by.as_deref(), Some(TTL_PRINCIPAL));
    let LockEvent::Released { release, .. } = c.event else {
        panic!()
    };
    assert_eq!(release, Release::Expired);

    // Another service principal is not TTL.
    record.user_identity = Some(UserIdentity {
        kind: "Service".to_owned(),
        principal_id: "example.amazonaws.com".to_owned(),
    });
    let c = classify(&record, received());
    assert!(matches!(
        c.event,
        LockEvent::Released {
            release: Release::Normal,
            ..
        }
    ));
}

#[test]
fn forced_release_is_marked_from_the_ledger() {
    let mut c = classify(&fixture()[2], received());
    assert!(c.released_lock().is_some());
    c.mark_forced();
    assert!(matches!(
        c.event,
        LockEvent::Released {
            release: Release::Forced,
            ..
        }
    ));
    // Marking anything else does nothing.
    let mut acquired = classify(&fixture()[0], received());
    let before = acquired.clone();
    acquired.mark_forced();
    assert_eq!(acquired, before);
}

#[test]
fn digest_modify_is_a_state_write_and_remove_is_ignored() {
    let mut modify = fixture().remove(1);
    modify.event_name = "MODIFY".to_owned();
    modify.old_image = modify.new_image.clone();
    let c = classify(&modify, received());
    assert!(matches!(c.event, LockEvent::StateWritten { .. }), "{c:?}");

    let mut remove = fixture().remove(1);
    remove.event_name = "REMOVE".to_owned();
    remove.old_image = std::mem::take(&mut remove.new_image);
    let c = classify(&remove, received());
    assert!(matches!(c.event, LockEvent::Ignored { .. }), "{c:?}");
    assert!(!c.counts());

    // Terragrunt's digest item without a Digest.
    let mut migrated = fixture().remove(1);
    migrated.new_image = item(&[("LockID", "acme-tfstate/network/terraform.tfstate-md5")]);
    let c = classify(&migrated, received());
    let LockEvent::Ignored { reason } = &c.event else {
        panic!("{c:?}")
    };
    assert!(reason.contains("Terragrunt"), "{reason}");
}

#[test]
fn gyro_insert_modify_remove() {
    let bare = item(&[("LockKey", "default"), ("GyroId", GYRO_ID)]);
    let full = item(&[
        ("LockKey", "default"),
        ("GyroId", GYRO_ID),
        ("GyroLockInfo", GYRO_INFO),
    ]);
    let t0 = 1_800_000_000;

    let insert = classify(
        &gyro("INSERT", Item::default(), bare.clone(), t0),
        received(),
    );
    let LockEvent::Acquired { lock } = &insert.event else {
        panic!("{insert:?}")
    };
    assert_eq!(lock.kind, LockKind::GyroDynamoDb);
    assert_eq!(insert.table, "gyro-locks");
    let (seen_lock, seen_at) = insert.first_seen_to_record().unwrap();
    assert_eq!(seen_lock.lock_id, GYRO_ID);
    assert_eq!(seen_at, Utc.timestamp_opt(t0, 0).unwrap());

    let modify = classify(&gyro("MODIFY", bare, full.clone(), t0 + 1), received());
    let LockEvent::Modified {
        lock,
        previous_lock_id,
    } = &modify.event
    else {
        panic!("{modify:?}")
    };
    assert_eq!(lock.who.as_deref(), Some("gyro-user"));
    assert_eq!(lock.operation.as_deref(), Some("up ec2/ami.gyro"));
    assert_eq!(previous_lock_id.as_deref(), Some(GYRO_ID));
    assert!(modify.counts());
    assert!(
        modify.first_seen_to_record().is_some(),
        "a MODIFY also proves the lock was there"
    );

    let mut remove = classify(&gyro("REMOVE", full, Item::default(), t0 + 125), received());
    let lock = remove
        .needs_first_seen()
        .expect("Gyro hold needs the first-seen time");
    assert_eq!(lock.lock_id, GYRO_ID);
    assert!(matches!(
        remove.event,
        LockEvent::Released { hold: None, .. }
    ));
    remove.set_first_seen(Utc.timestamp_opt(t0, 0).unwrap());
    let LockEvent::Released { lock, hold, .. } = &remove.event else {
        panic!()
    };
    assert_eq!(*hold, Some(Duration::from_secs(125)));
    assert_eq!(
        lock.created,
        LockCreated::FirstSeen(Utc.timestamp_opt(t0, 0).unwrap())
    );
    assert!(remove.needs_first_seen().is_none());
}

fn reason(c: &Classified) -> &str {
    match &c.event {
        LockEvent::Unparseable { reason } => reason,
        other => panic!("expected unparseable, got {other:?}"),
    }
}

#[test]
fn malformed_records_are_unparseable_with_a_reason() {
    let base = fixture().remove(0);

    let mut not_json = base.clone();
    not_json.new_image = item(&[("LockID", "b/k"), ("Info", "{oops")]);
    assert!(reason(&classify(&not_json, received())).contains("not Terraform lock JSON"));

    let mut wrong_type = base.clone();
    let mut image = item(&[("LockID", "b/k")]);
    image.insert("Info".to_owned(), AttributeValue::N("7".to_owned()));
    wrong_type.new_image = image;
    assert!(reason(&classify(&wrong_type, received())).contains("`Info` is of DynamoDB type N"));

    let mut not_a_lock_table = base.clone();
    not_a_lock_table.new_image = item(&[("pk", "user#1"), ("name", "Ann")]);
    assert!(reason(&classify(&not_a_lock_table, received())).contains("is this a lock table?"));

    let mut no_id = base.clone();
    no_id.new_image = item(&[
        ("LockID", "b/k"),
        ("Info", r#"{"Created":"2025-01-01T00:00:00Z"}"#),
    ]);
    assert!(reason(&classify(&no_id, received())).contains("no `ID`"));

    let mut keys_only = base.clone();
    keys_only.new_image = Item::default();
    assert!(reason(&classify(&keys_only, received())).contains("NEW_AND_OLD_IMAGES"));

    let mut remove_keys_only = fixture().remove(2);
    remove_keys_only.old_image = Item::default();
    assert!(reason(&classify(&remove_keys_only, received())).contains("no OldImage"));

    let mut bad_name = base.clone();
    bad_name.event_name = "UPSERT".to_owned();
    let c = classify(&bad_name, received());
    assert!(reason(&c).contains("\"UPSERT\""));
    assert_eq!(c.table, "terraform-locks");
    assert_eq!(c.change, None);

    let mut no_arn = base.clone();
    no_arn.event_source_arn = None;
    let c = classify(&no_arn, received());
    assert!(reason(&c).contains("no eventSourceARN"));
    assert_eq!(c.table, UNKNOWN_TABLE);

    let mut bad_arn = base.clone();
    bad_arn.event_source_arn = Some("arn:aws:sqs:us-east-1:1:queue".to_owned());
    assert!(reason(&classify(&bad_arn, received())).contains("not a DynamoDB stream ARN"));

    let mut gyro_without_id = gyro("INSERT", Item::default(), item(&[("LockKey", "x")]), 1);
    gyro_without_id.keys = item(&[("LockKey", "x")]);
    assert!(reason(&classify(&gyro_without_id, received())).contains("GyroId"));

    // Every unparseable record still counts (UnparseableRecords) and so is claimed once.
    assert!(classify(&no_arn, received()).counts());
}

#[test]
fn missing_time_falls_back_to_the_receive_time() {
    let mut r = fixture().remove(0);
    r.approximate_creation = None;
    assert_eq!(classify(&r, received()).at, received());
}

#[test]
fn record_identity() {
    let records = fixture();
    assert_eq!(records[0].record_id(), "1100000000017454423009");
    let mut no_seq = records[0].clone();
    no_seq.sequence_number = None;
    assert_eq!(no_seq.record_id(), "event:1b205c3af0e04bbdbf06e1fb36d9491b");
}

#[test]
fn unreadable_records_keep_what_identity_they_have() {
    let record = StreamRecord {
        event_id: "e1".to_owned(),
        event_source_arn: Some(ARN.to_owned()),
        sequence_number: Some("42".to_owned()),
        ..StreamRecord::default()
    };
    let c = classify_unreadable(&record, "missing field `SizeBytes`", received());
    assert_eq!(c.table, "terraform-locks");
    assert_eq!(c.record_id, "42");
    assert_eq!(c.at, received());
    assert!(c.counts());
    assert!(reason(&c).contains("not a DynamoDB stream record: missing field `SizeBytes`"));
}
