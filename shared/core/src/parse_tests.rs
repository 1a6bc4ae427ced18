//! Parser cases, one per shape the real tools write and per way an item can be malformed.
//! Fixtures under `infra/fixtures/terraform/` were captured from real Terraform 1.15 (see its README).

use super::*;
use crate::model::{DeletePrecondition, DigestRecord, LockCreated, LockKind, LockRecord};
use std::collections::HashMap;

const TF_INFO: &str = r#"{"ID":"f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7","Operation":"OperationTypeApply","Info":"","Who":"runner@ip-10-0-1-23","Version":"1.10.5","Created":"2025-03-04T09:15:27.483920118Z","Path":"acme-tfstate/env:/staging/network/terraform.tfstate"}"#;

fn item(attrs: &[(&str, AttributeValue)]) -> Item {
    attrs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect::<HashMap<_, _>>()
        .into()
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn tf_item(lock_id: &str, info: &str) -> Item {
    item(&[("LockID", s(lock_id)), ("Info", s(info))])
}

fn lock(entry: TableEntry) -> LockRecord {
    match entry {
        TableEntry::Lock(l) => l,
        TableEntry::Digest(d) => panic!("expected a lock, got digest {d:?}"),
    }
}

fn failure(result: Result<TableEntry, LockParseError>) -> LockParseError {
    match result {
        Err(e) => e,
        Ok(entry) => panic!("expected an error, got {entry:?}"),
    }
}

/// Parses a DynamoDB-JSON fixture (`{"LockID":{"S":..}}`) the way the low-level API returns it.
fn fixture_item(json: &str) -> Item {
    serde_json::from_str(json).expect("fixture is DynamoDB JSON")
}

#[test]
fn terraform_dynamodb_lock_in_a_workspace() {
    let path = "acme-tfstate/env:/staging/network/terraform.tfstate";
    let l = lock(parse_table_item("tf-locks", &tf_item(path, TF_INFO)).unwrap());
    assert_eq!(l.kind, LockKind::TerraformDynamoDb);
    assert_eq!(l.lock_id, "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7");
    assert_eq!(l.who.as_deref(), Some("runner@ip-10-0-1-23"));
    assert_eq!(l.operation.as_deref(), Some("OperationTypeApply"));
    assert_eq!(l.tool_version.as_deref(), Some("1.10.5"));
    assert_eq!(l.info, None, "Terraform CLI callers leave Info empty");
    assert_eq!(l.state_path, path);
    assert_eq!(
        l.created
            .at()
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "2025-03-04T09:15:27.483920118Z"
    );
    assert_eq!(
        l.precondition,
        DeletePrecondition::InfoEquals(TF_INFO.to_owned())
    );
    assert_eq!(l.raw, TF_INFO);
    assert_eq!(
        l.location,
        LockLocation::DynamoDb {
            table: "tf-locks".into(),
            key_attribute: "LockID".into(),
            key: path.into()
        }
    );
    let state = l.terraform_state().unwrap();
    assert_eq!(state.workspace(None), Some("staging"));
    assert_eq!(
        l.manual_unlock_command(),
        "terraform force-unlock f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7"
    );
}

#[test]
fn created_with_zero_to_nine_fraction_digits() {
    let cases = [
        ("2025-03-04T09:15:27Z", 0),
        ("2025-03-04T09:15:27.4Z", 400_000_000),
        ("2025-03-04T09:15:27.48Z", 480_000_000),
        ("2025-03-04T09:15:27.483Z", 483_000_000),
        ("2025-03-04T09:15:27.483920Z", 483_920_000),
        ("2025-03-04T09:15:27.48392011Z", 483_920_110),
        ("2025-03-04T09:15:27.483920118Z", 483_920_118),
        ("2025-03-04T10:15:27.5+01:00", 500_000_000),
    ];
    for (created, nanos) in cases {
        let info = TF_INFO.replace("2025-03-04T09:15:27.483920118Z", created);
        let l = lock(parse_table_item("t", &tf_item("b/k", &info)).unwrap());
        let at = l.created.at().unwrap();
        assert_eq!(at.timestamp(), 1_741_079_727, "{created}");
        assert_eq!(at.timestamp_subsec_nanos(), nanos, "{created}");
    }
}

#[test]
fn unknown_fields_and_odd_keys_parse() {
    let path = "b/équipe réseau/état final.tfstate";
    let info = format!(
        r#"{{"ID":"abc","Operation":"OperationTypePlan","Info":"from CI","Who":"","Version":"1.99.0","Created":"2030-01-01T00:00:00Z","Path":"{path}","Future":{{"x":[1,2]}},"Lease":7}}"#
    );
    let l = lock(parse_table_item("t", &tf_item(path, &info)).unwrap());
    assert_eq!(l.lock_id, "abc");
    assert_eq!(l.who, None, "an empty Who is unknown, not an empty name");
    assert_eq!(l.info.as_deref(), Some("from CI"));
    assert_eq!(l.state_path, path);
    assert_eq!(l.raw, info, "raw keeps the unknown fields byte for byte");
}

#[test]
fn missing_path_falls_back_to_the_lock_id() {
    let info = r#"{"ID":"abc","Created":"2025-03-04T09:15:27Z"}"#;
    let l = lock(parse_table_item("t", &tf_item("b/custom/k.tfstate", info)).unwrap());
    assert_eq!(l.state_path, "b/custom/k.tfstate");
    assert_eq!(l.operation, None);
}

#[test]
fn digest_items_are_never_locks() {
    let d = parse_table_item(
        "t",
        &item(&[
            ("LockID", s("acme/network/terraform.tfstate-md5")),
            ("Digest", s("9e107d9d372bb6826bd81d3542a419d6")),
        ]),
    )
    .unwrap();
    assert_eq!(
        d,
        TableEntry::Digest(DigestRecord {
            table: "t".into(),
            item_key: "acme/network/terraform.tfstate-md5".into(),
            state_path: "acme/network/terraform.tfstate".into(),
            digest: Some("9e107d9d372bb6826bd81d3542a419d6".into()),
        })
    );
    // Terragrunt's `backend migrate` leaves `-md5` items with only a LockID.
    let bare = parse_table_item("t", &item(&[("LockID", s("acme/k-md5"))])).unwrap();
    assert!(matches!(
        bare,
        TableEntry::Digest(DigestRecord { digest: None, .. })
    ));
}

#[test]
fn classification_is_by_attribute_not_suffix() {
    // A state key that itself ends in "-md5" is still a lock when it carries Info.
    let info = r#"{"ID":"abc","Created":"2025-03-04T09:15:27Z","Path":"b/weird-md5"}"#;
    let l = lock(parse_table_item("t", &tf_item("b/weird-md5", info)).unwrap());
    assert_eq!(l.lock_id, "abc");
}

#[test]
fn gyro_lock_with_and_without_info() {
    let full = item(&[
        ("LockKey", s("default")),
        ("GyroId", s("adf4feb3-3333-447e-89d9-819da078618d")),
        (
            "GyroLockInfo",
            s("Locked by 'gyro-user' running 'up ec2/ami.gyro' at '16:38:29 EDT, Apr-27'."),
        ),
    ]);
    let l = lock(parse_table_item("gyro-locks", &full).unwrap());
    assert_eq!(l.kind, LockKind::GyroDynamoDb);
    assert_eq!(l.lock_id, "adf4feb3-3333-447e-89d9-819da078618d");
    assert_eq!(l.who.as_deref(), Some("gyro-user"));
    assert_eq!(l.operation.as_deref(), Some("up ec2/ami.gyro"));
    assert_eq!(l.created, LockCreated::Unknown, "Gyro's time has no year");
    assert_eq!(
        l.precondition,
        DeletePrecondition::GyroIdEquals("adf4feb3-3333-447e-89d9-819da078618d".into())
    );
    assert_eq!(l.state_path, "default");
    assert_eq!(
        l.manual_unlock_command(),
        "gyro state force-unlock --lock-id adf4feb3-3333-447e-89d9-819da078618d"
    );
    let raw: serde_json::Value = serde_json::from_str(&l.raw).unwrap();
    assert_eq!(raw["LockKey"], "default");

    // `gyro state copy` locks without GyroLockInfo.
    let bare = item(&[("LockKey", s("proj-a")), ("GyroId", s("1234"))]);
    let l = lock(parse_table_item("gyro-locks", &bare).unwrap());
    assert_eq!((l.who, l.operation, l.info), (None, None, None));
}

#[test]
fn malformed_items_name_the_item_and_the_reason() {
    let long = format!(
        r#"{{"ID":"x","Created":"2025-03-04T09:15:27Z","Info":"{}"}}"#,
        "a".repeat(MAX_LOCK_BYTES)
    );
    let cases: Vec<(Item, &str)> = vec![
        (tf_item("b/k", "not json"), "is not Terraform lock JSON"),
        (tf_item("b/k", ""), "lock is empty"),
        (tf_item("b/k", &long), "refusing anything over 65536 bytes"),
        (
            tf_item("b/k", r#"{"Created":"2025-03-04T09:15:27Z"}"#),
            "has no `ID`",
        ),
        (tf_item("b/k", r#"{"ID":"  "}"#), "has no `ID`"),
        (tf_item("b/k", r#"{"ID":"x"}"#), "no `Created` time"),
        (
            tf_item("b/k", r#"{"ID":"x","Created":"yesterday"}"#),
            "`Created` \"yesterday\" is not an RFC 3339 timestamp",
        ),
        (
            tf_item("b/k", r#"{"ID":7,"Created":"2025-03-04T09:15:27Z"}"#),
            "is not Terraform lock JSON",
        ),
        (
            item(&[
                ("LockID", s("b/k")),
                ("Info", AttributeValue::N("1".into())),
            ]),
            "attribute `Info` is of DynamoDB type N, expected a string (S)",
        ),
        (
            item(&[("LockID", AttributeValue::B(vec![1]))]),
            "item without a string LockID",
        ),
        (
            item(&[("LockID", s("b/k")), ("Other", s("x"))]),
            "attributes present: LockID, Other",
        ),
        (item(&[("LockKey", s("default"))]), "has no `GyroId`"),
        (
            item(&[
                ("LockKey", s("default")),
                ("GyroId", AttributeValue::Bool(true)),
            ]),
            "`GyroId` is of DynamoDB type BOOL",
        ),
        (item(&[("pk", s("x"))]), "is this a lock table?"),
        (item(&[]), "attributes (none)"),
    ];
    for (bad, expected) in cases {
        let err = failure(parse_table_item("tf-locks", &bad));
        let text = err.to_string();
        assert!(
            text.contains(expected),
            "{text:?} should contain {expected:?}"
        );
        assert!(
            text.contains("dynamodb://tf-locks"),
            "{text:?} should name the table"
        );
    }
    let err = failure(parse_table_item("tf-locks", &tf_item("b/k", "{")));
    assert!(err
        .to_string()
        .starts_with(r#"dynamodb://tf-locks (LockID = "b/k"): "#));
}

#[test]
fn lock_file_parses_with_etag_precondition() {
    let body = TF_INFO;
    let l = parse_lock_file(
        "acme-tfstate",
        "env:/staging/network/terraform.tfstate.tflock",
        body.as_bytes(),
        "\"0123abcd\"",
        None,
    )
    .unwrap();
    assert_eq!(l.kind, LockKind::TerraformS3LockFile);
    assert_eq!(
        l.precondition,
        DeletePrecondition::ETagMatches("\"0123abcd\"".into())
    );
    assert_eq!(
        l.state_path,
        "acme-tfstate/env:/staging/network/terraform.tfstate"
    );
    assert_eq!(
        l.location.to_string(),
        "s3://acme-tfstate/env:/staging/network/terraform.tfstate.tflock"
    );
}

#[test]
fn malformed_lock_files_are_errors() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("k.tflock", vec![], "lock is empty"),
        ("k.tflock", vec![0xff, 0xfe], "not valid UTF-8"),
        ("k.tflock", b"{}".to_vec(), "has no `ID`"),
        (
            "k.tflock",
            vec![b' '; MAX_LOCK_BYTES + 1],
            "refusing anything over",
        ),
        (
            "k.tfstate",
            TF_INFO.as_bytes().to_vec(),
            "does not end in `.tflock`",
        ),
    ];
    for (key, body, expected) in cases {
        let err = parse_lock_file("b", key, &body, "\"e\"", None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(expected),
            "{text:?} should contain {expected:?}"
        );
        assert!(text.starts_with(&format!("s3://b/{key}: ")), "{text:?}");
    }
}

#[test]
fn real_terraform_fixtures_parse() {
    let lock_item = fixture_item(include_str!(
        "../../../infra/fixtures/terraform/dynamodb-lock-item.json"
    ));
    let l = lock(parse_table_item("tf-locks", &lock_item).unwrap());
    assert_eq!(l.kind, LockKind::TerraformDynamoDb);
    assert_eq!(l.tool_version.as_deref(), Some("1.15.5"));
    assert_eq!(l.operation.as_deref(), Some("OperationTypeApply"));
    assert!(l.state_path.ends_with("/network/terraform.tfstate"));

    let digest = fixture_item(include_str!(
        "../../../infra/fixtures/terraform/dynamodb-digest-item.json"
    ));
    match parse_table_item("tf-locks", &digest).unwrap() {
        TableEntry::Digest(d) => {
            assert_eq!(d.state_path, l.state_path);
            assert_eq!(d.digest.as_deref().map(str::len), Some(32));
        }
        other => panic!("digest parsed as {other:?}"),
    }

    let body = include_bytes!("../../../infra/fixtures/terraform/lockfile-body.json");
    let head: serde_json::Value = serde_json::from_str(include_str!(
        "../../../infra/fixtures/terraform/lockfile-head.json"
    ))
    .unwrap();
    let file = parse_lock_file(
        head["bucket"].as_str().unwrap(),
        head["key"].as_str().unwrap(),
        body,
        head["etag"].as_str().unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(
        file.lock_id, l.lock_id,
        "Terraform writes one ID to both stores"
    );
    assert_eq!(file.raw, l.raw, "and the same JSON bytes");

    let ws_body = include_bytes!("../../../infra/fixtures/terraform/workspace-lockfile-body.json");
    let ws_head: serde_json::Value = serde_json::from_str(include_str!(
        "../../../infra/fixtures/terraform/workspace-lockfile-head.json"
    ))
    .unwrap();
    let ws = parse_lock_file(
        ws_head["bucket"].as_str().unwrap(),
        ws_head["key"].as_str().unwrap(),
        ws_body,
        ws_head["etag"].as_str().unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(
        ws.terraform_state().unwrap().workspace(None),
        Some("staging")
    );
}

#[test]
fn the_state_path_is_where_the_lock_is_not_what_its_json_claims() {
    let info =
        r#"{"ID":"abc","Created":"2025-03-04T09:15:27Z","Path":"acme/dev/terraform.tfstate"}"#;
    let l = lock(parse_table_item("t", &tf_item("acme/prod/terraform.tfstate", info)).unwrap());
    assert_eq!(l.state_path, "acme/prod/terraform.tfstate");
    assert_eq!(
        l.declared_path_mismatch().as_deref(),
        Some("acme/dev/terraform.tfstate")
    );
    let honest =
        r#"{"ID":"abc","Created":"2025-03-04T09:15:27Z","Path":"acme/prod/terraform.tfstate"}"#;
    let l = lock(parse_table_item("t", &tf_item("acme/prod/terraform.tfstate", honest)).unwrap());
    assert_eq!(l.declared_path_mismatch(), None);
}
