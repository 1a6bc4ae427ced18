//! Property tests for every parser of untrusted input (issue 12, "Hostile input").
//!
//! What is untrusted: anything in a lock table or bucket (anyone with write access to the table can
//! put any item there, any attribute types, up to DynamoDB's 400 KB item limit), stream records
//! (images of those items), messages on the approvals topic and the tokens in them, and every
//! configuration value. For each parser the properties are:
//!
//! - it never panics, whatever the input;
//! - it never allocates without bound: the size caps (`MAX_LOCK_BYTES`, `MAX_MESSAGE_BYTES`) are
//!   enforced whatever the content, checked at and around the boundary and at 400 KB;
//! - what lockreaper writes itself round-trips (approval tokens, approval messages as the CLI and
//!   chat publish them, durations as lockreaper formats them, `LOCK_POLICY` entries);
//! - **a malformed lock is never classified as deletable**: a parse result that can be deleted is
//!   compared with an oracle written independently here from `shared/reference/lock-formats.md`,
//!   and its `DeletePrecondition` is exactly, and completely, what was read.
//!
//! Generators are *near-valid*: mutations of the real Terraform items and lock files captured in
//! `infra/fixtures/terraform/`, and structured lock JSON whose every field may be missing, of the
//! wrong type or oddly formed, not only random noise.
//!
//! `cargo test` runs proptest's default of 256 cases per property; set `PROPTEST_CASES` for more
//! (e.g. `PROPTEST_CASES=20000 cargo test -p lockreaper-core --test hostile_input`). Inputs that
//! ever failed are kept twice: proptest's seeds in `hostile_input.proptest-regressions` beside this
//! file (replayed first on every run) and as plain `#[test]`s with the literal input at the end of this file.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use lockreaper_core::approval::{
    strip_token_decoration, ApprovalMessage, ApprovalMessageError, ApprovalSource, ApprovalToken,
    LockFingerprint, SigningKey, TokenError, MAX_MESSAGE_BYTES, MAX_SNOOZE, PROPOSAL_ID_LEN,
};
use lockreaper_core::config::{
    check_arn, check_table_name, format_duration, parse_bool, parse_duration, Env, LockSources,
};
use lockreaper_core::parse::{MAX_LOCK_BYTES, MAX_LOCK_ID_BYTES, MAX_STATE_PATH_BYTES};
use lockreaper_core::policy::StaleLockPolicy;
use lockreaper_core::stream::{
    classify, table_from_stream_arn, LockEvent, StreamRecord, UserIdentity,
};
use lockreaper_core::{
    parse_lock_file, parse_table_item, AttributeValue, BucketScope, DeletePrecondition,
    LockCreated, LockKind, LockLocation, LockRecord, ParseFailure, StatePath, TableEntry,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_dynamo::Item;
use serde_json::{json, Value};

/// proptest's defaults (256 cases, or `PROPTEST_CASES`), with failing seeds kept beside this
/// file in `hostile_input.proptest-regressions` (the default location looks for a `lib.rs` next to
/// the test, which integration tests do not have).
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The real inputs every near-valid generator starts from
// ---------------------------------------------------------------------------------------------

const LOCK_ITEM: &str = include_str!("../../../infra/fixtures/terraform/dynamodb-lock-item.json");
const DIGEST_ITEM: &str =
    include_str!("../../../infra/fixtures/terraform/dynamodb-digest-item.json");
const LOCKFILE_BODY: &str = include_str!("../../../infra/fixtures/terraform/lockfile-body.json");
const WORKSPACE_LOCKFILE_BODY: &str =
    include_str!("../../../infra/fixtures/terraform/workspace-lockfile-body.json");
const STREAM_RECORDS: &str = include_str!("../../../infra/fixtures/terraform/stream-records.json");
/// Gyro's documented item (lock-formats.md §3): no Gyro runs here.
const GYRO_ITEM: &str = r#"{"LockKey":{"S":"default"},"GyroId":{"S":"adf4feb3-3333-447e-89d9-819da078618d"},"GyroLockInfo":{"S":"Locked by 'gyro-user' running 'up ec2/ami.gyro' at '16:38:29 EDT, Apr-27'."}}"#;
const STREAM_ARN: &str =
    "arn:aws:dynamodb:us-east-1:123456789012:table/terraform-locks/stream/2026-11-26T00:03:29.152218";
const TABLE: &str = "terraform-locks";
/// DynamoDB's maximum item size, attribute names included.
const DYNAMODB_ITEM_LIMIT: usize = 400 * 1024;

fn fixture_item(json: &str) -> Item {
    serde_json::from_str(json).expect("fixture is DynamoDB JSON")
}

/// Every real lock `Info` / lock file body captured from Terraform (plus the reference example).
fn real_infos() -> Vec<String> {
    let mut infos = vec![
        LOCKFILE_BODY.trim().to_owned(),
        WORKSPACE_LOCKFILE_BODY.trim().to_owned(),
        r#"{"ID":"f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7","Operation":"OperationTypeApply","Info":"","Who":"runner@ip-10-0-1-23","Version":"1.10.5","Created":"2025-03-04T09:15:27.483920118Z","Path":"acme-tfstate/env:/staging/network/terraform.tfstate"}"#.to_owned(),
    ];
    if let Some(AttributeValue::S(info)) = fixture_item(LOCK_ITEM).get("Info") {
        infos.push(info.clone());
    }
    infos
}

/// The images of the captured stream records (locks and digests, as Terraform wrote them).
fn real_images() -> Vec<Item> {
    let records: Value = serde_json::from_str(STREAM_RECORDS).expect("fixture is JSON");
    let mut images = Vec::new();
    for record in records["Records"].as_array().into_iter().flatten() {
        for image in ["NewImage", "OldImage"] {
            if let Some(v) = record["dynamodb"].get(image) {
                images.push(serde_json::from_value(v.clone()).expect("DynamoDB JSON image"));
            }
        }
    }
    images.push(fixture_item(LOCK_ITEM));
    images.push(fixture_item(DIGEST_ITEM));
    images.push(fixture_item(GYRO_ITEM));
    images
}

// ---------------------------------------------------------------------------------------------
// The oracle: what the formats say, written independently of `parse.rs`
// ---------------------------------------------------------------------------------------------

/// Fields of Terraform's `statemgr.LockInfo` (lock-formats.md §1.2). All strings, no JSON tags.
const LOCK_INFO_FIELDS: [&str; 7] = [
    "ID",
    "Operation",
    "Info",
    "Who",
    "Version",
    "Created",
    "Path",
];

/// The top-level keys of a JSON object, in order, duplicates kept (a `Value` would keep only the
/// last one). Fails on anything but an object.
struct ObjectKeys(Vec<String>);

impl<'de> Deserialize<'de> for ObjectKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = ObjectKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(ObjectKeys(keys))
            }
        }
        deserializer.deserialize_map(Keys)
    }
}

/// A lock JSON that a person and a machine can act on: what the parser must return for it.
#[derive(Debug, Clone, PartialEq)]
struct WellFormedInfo {
    id: String,
    created: DateTime<Utc>,
    path: Option<String>,
    who: Option<String>,
    operation: Option<String>,
    version: Option<String>,
    info: Option<String>,
}

/// `Some` exactly when `raw` is a Terraform lock JSON lockreaper may act on: a JSON *object*
/// (not an array, not a string holding JSON) of at most `MAX_LOCK_BYTES`, each LockInfo field at
/// most once and a string when present, a non-blank `ID` of ID size, a `Path` that could name an
/// S3 object, and an RFC 3339 `Created`.
fn well_formed_info(raw: &str) -> Option<WellFormedInfo> {
    if raw.is_empty() || raw.len() > MAX_LOCK_BYTES {
        return None;
    }
    let ObjectKeys(keys) = serde_json::from_str(raw).ok()?;
    for field in LOCK_INFO_FIELDS {
        if keys.iter().filter(|k| k.as_str() == field).count() > 1 {
            return None;
        }
    }
    let Value::Object(map) = serde_json::from_str::<Value>(raw).ok()? else {
        return None;
    };
    let mut strings = HashMap::new();
    for field in LOCK_INFO_FIELDS {
        match map.get(field) {
            None => {}
            Some(Value::String(s)) => {
                strings.insert(field, s.clone());
            }
            Some(_) => return None,
        }
    }
    let text = |field: &str| strings.get(field).filter(|s| !s.is_empty()).cloned();
    // IDs are 36 characters; paths name an S3 object (bucket ≤ 63, key ≤ 1,024 bytes).
    let id = text("ID").filter(|id| !id.trim().is_empty() && id.len() <= MAX_LOCK_ID_BYTES)?;
    if text("Path").is_some_and(|p| p.len() > MAX_STATE_PATH_BYTES) {
        return None;
    }
    let created = DateTime::parse_from_rfc3339(&text("Created")?)
        .ok()?
        .with_timezone(&Utc);
    Some(WellFormedInfo {
        id,
        created,
        path: text("Path"),
        who: text("Who"),
        operation: text("Operation"),
        version: text("Version"),
        info: text("Info"),
    })
}

/// What one lock-table item is, by lock-formats.md §1.3, §1.4, §3 and §4.
#[derive(Debug)]
enum ExpectedEntry {
    TerraformLock {
        key: String,
        raw_info: String,
        info: WellFormedInfo,
    },
    GyroLock {
        key: String,
        gyro_id: String,
        lock_info: Option<String>,
    },
    Digest {
        key: String,
        digest: Option<String>,
    },
    Malformed,
}

fn expected_entry(item: &Item) -> ExpectedEntry {
    let string = |name: &str| match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    };
    match string("LockID") {
        Err(()) => ExpectedEntry::Malformed,
        Ok(Some(key)) => match (string("Info"), string("Digest")) {
            (Err(()), _) => ExpectedEntry::Malformed,
            (Ok(Some(raw_info)), _) => match well_formed_info(&raw_info) {
                Some(info) => ExpectedEntry::TerraformLock {
                    key,
                    raw_info,
                    info,
                },
                None => ExpectedEntry::Malformed,
            },
            (Ok(None), Err(())) => ExpectedEntry::Malformed,
            (Ok(None), Ok(Some(digest))) => ExpectedEntry::Digest {
                key,
                digest: Some(digest),
            },
            // Terragrunt's `backend migrate` writes `-md5` items holding only `LockID` (§4).
            (Ok(None), Ok(None)) if key.ends_with("-md5") => {
                ExpectedEntry::Digest { key, digest: None }
            }
            (Ok(None), Ok(None)) => ExpectedEntry::Malformed,
        },
        Ok(None) => match (string("LockKey"), string("GyroId"), string("GyroLockInfo")) {
            (Ok(Some(key)), Ok(Some(gyro_id)), Ok(lock_info))
                if !gyro_id.trim().is_empty() && gyro_id.len() <= MAX_LOCK_ID_BYTES =>
            {
                // The Gyro lock's raw content is the item as JSON; it too is capped.
                let raw = json!({"LockKey": key, "GyroId": gyro_id, "GyroLockInfo": lock_info})
                    .to_string();
                if raw.len() > MAX_LOCK_BYTES {
                    ExpectedEntry::Malformed
                } else {
                    ExpectedEntry::GyroLock {
                        key,
                        gyro_id,
                        lock_info,
                    }
                }
            }
            _ => ExpectedEntry::Malformed,
        },
    }
}

/// Checks a parsed Terraform lock against the oracle: the lock is the one that was read, and its
/// delete precondition is exactly (and completely) what was read. Its state path is where the lock
/// is stored (`location_path`: the `LockID`, or the lock file's key without `.tflock`), never what
/// its own JSON claims; a `Path` that names another place is reported as a mismatch.
fn assert_terraform_lock(
    lock: &LockRecord,
    info: &WellFormedInfo,
    raw: &str,
    location_path: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&lock.lock_id, &info.id);
    prop_assert_eq!(lock.created, LockCreated::Recorded(info.created));
    prop_assert_eq!(&lock.raw, raw);
    prop_assert_eq!(&lock.state_path, location_path);
    prop_assert_eq!(
        lock.declared_path_mismatch(),
        info.path
            .clone()
            .filter(|declared| declared != location_path)
    );
    prop_assert_eq!(&lock.who, &info.who);
    prop_assert_eq!(&lock.operation, &info.operation);
    prop_assert_eq!(&lock.tool_version, &info.version);
    prop_assert_eq!(&lock.info, &info.info);
    Ok(())
}

/// The one property every table item must satisfy: the parser agrees with the oracle.
fn check_table_item(item: &Item) -> Result<(), TestCaseError> {
    let parsed = parse_table_item(TABLE, item);
    match (expected_entry(item), parsed) {
        (
            ExpectedEntry::TerraformLock {
                key,
                raw_info,
                info,
            },
            Ok(TableEntry::Lock(lock)),
        ) => {
            prop_assert_eq!(lock.kind, LockKind::TerraformDynamoDb);
            prop_assert_eq!(
                &lock.location,
                &LockLocation::DynamoDb {
                    table: TABLE.to_owned(),
                    key_attribute: "LockID".to_owned(),
                    key: key.clone(),
                }
            );
            prop_assert_eq!(
                &lock.precondition,
                &DeletePrecondition::InfoEquals(raw_info.clone())
            );
            assert_terraform_lock(&lock, &info, &raw_info, &key)?;
        }
        (
            ExpectedEntry::GyroLock {
                key,
                gyro_id,
                lock_info,
            },
            Ok(TableEntry::Lock(lock)),
        ) => {
            prop_assert_eq!(lock.kind, LockKind::GyroDynamoDb);
            prop_assert_eq!(&lock.lock_id, &gyro_id);
            prop_assert_eq!(
                &lock.precondition,
                &DeletePrecondition::GyroIdEquals(gyro_id.clone())
            );
            prop_assert_eq!(lock.created, LockCreated::Unknown);
            prop_assert_eq!(&lock.state_path, &key);
            prop_assert_eq!(&lock.info, &lock_info);
            prop_assert!(lock.raw.len() <= MAX_LOCK_BYTES);
        }
        (ExpectedEntry::Digest { key, digest }, Ok(TableEntry::Digest(record))) => {
            prop_assert_eq!(&record.item_key, &key);
            prop_assert_eq!(&record.digest, &digest);
        }
        (ExpectedEntry::Malformed, Err(error)) => {
            // Reported, never deleted; the report is linear in the item, not in anything else.
            let message = error.to_string();
            prop_assert!(
                message.starts_with("dynamodb://terraform-locks"),
                "{}",
                message
            );
            prop_assert!(message.len() <= 3 * item_size(item) + 1024);
        }
        (expected, parsed) => {
            return Err(TestCaseError::fail(format!(
                "item {item:?}\n  expected {expected:?}\n  parsed   {parsed:?}"
            )))
        }
    }
    Ok(())
}

/// An item's size as DynamoDB counts it (names plus values), roughly: enough for the caps.
fn item_size(item: &Item) -> usize {
    fn value_size(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::B(b) => b.len(),
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
            AttributeValue::Bs(v) => v.iter().map(Vec::len).sum(),
            AttributeValue::L(v) => v.iter().map(value_size).sum::<usize>() + 3,
            AttributeValue::M(m) => {
                m.iter()
                    .map(|(k, v)| k.len() + value_size(v))
                    .sum::<usize>()
                    + 3
            }
        }
    }
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// Any DynamoDB attribute value, nested up to three levels.
fn any_attribute() -> BoxedStrategy<AttributeValue> {
    let leaf = prop_oneof![
        "\\PC{0,24}".prop_map(AttributeValue::S),
        "-?[0-9]{1,6}(\\.[0-9]{1,3})?".prop_map(AttributeValue::N),
        any::<bool>().prop_map(AttributeValue::Bool),
        any::<bool>().prop_map(AttributeValue::Null),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(AttributeValue::B),
        prop::collection::vec("\\PC{0,8}", 0..3).prop_map(AttributeValue::Ss),
        prop::collection::vec("[0-9]{1,4}", 0..3).prop_map(AttributeValue::Ns),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..6), 0..3)
            .prop_map(AttributeValue::Bs),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
            prop::collection::hash_map("\\PC{0,8}", inner, 0..4).prop_map(AttributeValue::M),
        ]
    })
    .boxed()
}

/// JSON values that are not strings, for fields that must be strings.
fn odd_json() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        "\\PC{0,12}".prop_map(|s| json!([s])),
        Just(json!({"ID": "nested"})),
    ]
    .boxed()
}

/// Lock IDs: Terraform's (8-4-4-4-12 hex), Gyro's, and the blank and odd ones.
fn lock_id() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        1 => Just(String::new()),
        1 => "[ \t\n\u{a0}\u{2003}]{1,3}",
        1 => "\\PC{1,40}",
        1 => "[\u{0}-\u{1f}]{1,4}",
    ]
    .boxed()
}

/// `Created` values: Go's RFC 3339 with 0–9 fraction digits in UTC, offsets, lower case, and
/// near misses (no zone, a space, impossible fields, epoch seconds, nothing).
fn created() -> BoxedStrategy<String> {
    let valid = (
        1970i32..2200,
        1u32..=12,
        1u32..=28,
        0u32..24,
        0u32..60,
        0u32..60,
        prop::option::of("[0-9]{1,9}"),
        prop_oneof![
            Just("Z".to_owned()),
            Just("z".to_owned()),
            (0u32..24, 0u32..60, any::<bool>())
                .prop_map(|(h, m, plus)| format!("{}{h:02}:{m:02}", if plus { '+' } else { '-' })),
        ],
        prop_oneof![Just('T'), Just('t')],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, zone, t)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{mo:02}-{d:02}{t}{h:02}:{mi:02}:{s:02}{frac}{zone}")
        });
    prop_oneof![
        6 => valid,
        1 => Just(String::new()),
        1 => prop::sample::select(vec![
            "2025-03-04T09:15:27",
            "2025-03-04 09:15:27Z",
            "2025-13-04T09:15:27Z",
            "2025-02-30T09:15:27Z",
            "2025-03-04T24:00:00Z",
            "2025-03-04T09:15:60Z",
            "2025-03-04T09:15:27+24:00",
            "0000-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "2025-03-04T09:15:27.1234567890123Z",
            "1741079727",
            "yesterday",
            " 2025-03-04T09:15:27Z",
        ]).prop_map(str::to_owned),
        1 => "\\PC{0,30}",
    ]
    .boxed()
}

/// A value for one LockInfo field: usually a string of the right kind, sometimes missing or of
/// another JSON type.
fn field(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        6 => valid.prop_map(|s| Some(Value::String(s))),
        1 => Just(None),
        1 => odd_json().prop_map(Some),
    ]
    .boxed()
}

/// How the fields are put together: as Terraform does, and as it never does.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Object,
    /// The LockInfo values, in order, as a JSON array: serde reads a struct from that too.
    Array,
    /// The object, JSON-encoded once more (a string holding JSON).
    DoubleEncoded,
    /// The object inside another object.
    Nested,
    /// Leading and trailing JSON whitespace.
    Padded,
    /// The object followed by something else.
    TrailingGarbage,
}

/// Structured lock JSON: every field present, missing, odd or duplicated, unknown fields added,
/// in any order, in any of the [`Shape`]s.
fn structured_info() -> BoxedStrategy<String> {
    let fields = (
        field(lock_id()),
        field(prop_oneof![
            Just("OperationTypeApply".to_owned()),
            Just("OperationTypePlan".to_owned()),
            "\\PC{0,20}"
        ]),
        field(prop_oneof![Just(String::new()), "\\PC{0,20}"]),
        field(prop_oneof![Just("root@vm".to_owned()), "\\PC{0,20}"]),
        field(prop_oneof![Just("1.15.5".to_owned()), "\\PC{0,8}"]),
        field(created()),
        field(prop_oneof![
            Just("acme-tfstate/network/terraform.tfstate".to_owned()),
            Just(String::new()),
            "\\PC{0,30}"
        ]),
    );
    let extra = prop::collection::vec(
        (
            prop_oneof![
                3 => "\\PC{0,10}",
                1 => prop::sample::select(LOCK_INFO_FIELDS.to_vec()).prop_map(str::to_owned),
                1 => Just("id".to_owned()),
            ],
            prop_oneof![odd_json(), "\\PC{0,10}".prop_map(Value::String)],
        ),
        0..3,
    );
    let shape = prop_oneof![
        12 => Just(Shape::Object),
        2 => Just(Shape::Array),
        1 => Just(Shape::DoubleEncoded),
        1 => Just(Shape::Nested),
        2 => Just(Shape::Padded),
        1 => Just(Shape::TrailingGarbage),
    ];
    (fields, extra, shape, any::<Index>(), "[ \t\r\n]{0,3}")
        .prop_map(
            |((id, op, info, who, version, created, path), extra, shape, rotate, ws)| {
                let mut members: Vec<(String, Value)> = [id, op, info, who, version, created, path]
                    .into_iter()
                    .zip(LOCK_INFO_FIELDS)
                    .filter_map(|(value, name)| value.map(|v| (name.to_owned(), v)))
                    .collect();
                // The values in Go's declaration order, as an array of them would list them.
                let in_order: Vec<String> = members.iter().map(|(_, v)| v.to_string()).collect();
                members.extend(extra);
                if !members.is_empty() {
                    let at = rotate.index(members.len());
                    members.rotate_left(at);
                }
                let object = format!(
                    "{{{}}}",
                    members
                        .iter()
                        .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                        .collect::<Vec<_>>()
                        .join(",")
                );
                match shape {
                    Shape::Object => object,
                    Shape::Array => format!("[{}]", in_order.join(",")),
                    Shape::DoubleEncoded => Value::String(object).to_string(),
                    Shape::Nested => format!("{{\"Info\":{object}}}"),
                    Shape::Padded => format!("{ws}{object}{ws}"),
                    Shape::TrailingGarbage => format!("{object}{ws}x"),
                }
            },
        )
        .boxed()
}

/// One edit of a real lock JSON.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index, usize),
    Insert(Index, String),
    Replace(Index, char),
    Truncate(Index),
    Duplicate(Index, usize),
}

fn edit() -> BoxedStrategy<Edit> {
    let snippet = prop_oneof![
        prop::sample::select(vec![
            "\"",
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "null",
            "\\",
            "\\u0000",
            "\u{0}",
            "é",
            "\u{feff}",
            "\"ID\":\"x\",",
            "\"ID\":\"\",",
            "\"ID\":null,",
            "\"Created\":\"\",",
            "\"Created\":\"2025-03-04T09:15:27Z\",",
            "\"x\":[1,{\"y\":2}],",
            " ",
            "\n",
        ])
        .prop_map(str::to_owned),
        "\\PC{1,4}",
    ];
    prop_oneof![
        (any::<Index>(), 1usize..12).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), snippet).prop_map(|(i, s)| Edit::Insert(i, s)),
        (any::<Index>(), any::<char>()).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), 1usize..40).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
    .boxed()
}

fn apply_edits(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
        match edit {
            Edit::Delete(i, n) => {
                let start = at(i, chars.len());
                let end = (start + n).min(chars.len());
                chars.drain(start..end);
            }
            Edit::Insert(i, s) => {
                let pos = at(i, chars.len() + 1);
                chars.splice(pos..pos, s.chars());
            }
            Edit::Replace(i, c) => {
                if !chars.is_empty() {
                    let pos = at(i, chars.len());
                    chars[pos] = *c;
                }
            }
            Edit::Truncate(i) => {
                let pos = at(i, chars.len() + 1);
                chars.truncate(pos);
            }
            Edit::Duplicate(i, n) => {
                let start = at(i, chars.len());
                let end = (start + n).min(chars.len());
                let copy: Vec<char> = chars[start..end].to_vec();
                chars.splice(end..end, copy);
            }
        }
    }
    chars.into_iter().collect()
}

/// A real lock JSON with a few edits: mostly near-valid, sometimes still valid.
fn mutated_info() -> BoxedStrategy<String> {
    (
        prop::sample::select(real_infos()),
        prop::collection::vec(edit(), 0..4),
    )
        .prop_map(|(info, edits)| apply_edits(&info, &edits))
        .boxed()
}

/// A well-formed lock JSON padded (with an unknown field) to exactly `size` bytes, when it can be.
fn info_of_size(size: usize) -> String {
    let base = r#"{"ID":"f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7","Operation":"OperationTypeApply","Info":"","Who":"runner@ip-10-0-1-23","Version":"1.10.5","Created":"2025-03-04T09:15:27.483920118Z","Path":"acme-tfstate/prod/terraform.tfstate","Pad":""}"#;
    let padding = size.saturating_sub(base.len());
    base.replacen(
        r#""Pad":"""#,
        &format!(r#""Pad":"{}""#, "x".repeat(padding)),
        1,
    )
}

/// Sizes around the lock cap and up to the DynamoDB item limit.
fn boundary_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => Just(MAX_LOCK_BYTES),
        3 => Just(MAX_LOCK_BYTES + 1),
        6 => (MAX_LOCK_BYTES - 64)..(MAX_LOCK_BYTES + 64),
        1 => (MAX_LOCK_BYTES + 64)..=DYNAMODB_ITEM_LIMIT,
        1 => Just(DYNAMODB_ITEM_LIMIT),
    ]
}

fn lock_info_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => mutated_info(),
        3 => structured_info(),
        1 => "\\PC{0,40}",
    ]
    .boxed()
}

/// An attribute that is usually a string of the expected kind, sometimes anything at all.
fn attribute(
    valid: impl Strategy<Value = String> + 'static,
) -> BoxedStrategy<Option<AttributeValue>> {
    prop_oneof![
        5 => valid.prop_map(|s| Some(AttributeValue::S(s))),
        3 => Just(None),
        1 => any_attribute().prop_map(Some),
    ]
    .boxed()
}

/// Lock-table items: Terraform locks and digests, Gyro locks, and everything in between.
fn table_item() -> BoxedStrategy<Item> {
    let path = prop_oneof![
        Just("acme-tfstate/network/terraform.tfstate".to_owned()),
        Just("acme-tfstate/env:/staging/app/terraform.tfstate-md5".to_owned()),
        Just("-md5".to_owned()),
        Just(String::new()),
        "\\PC{0,30}",
    ];
    let terraform = (
        attribute(path),
        attribute(lock_info_text()),
        attribute("[0-9a-f]{32}|\\PC{0,8}"),
    );
    let gyro = (
        attribute(prop_oneof![Just("default".to_owned()), "\\PC{0,16}"]),
        attribute(lock_id()),
        attribute(prop_oneof![
            Just(
                "Locked by 'gyro-user' running 'up ec2/ami.gyro' at '16:38:29 EDT, Apr-27'."
                    .to_owned()
            ),
            "\\PC{0,40}"
        ]),
    );
    let extra = prop::collection::hash_map("\\PC{0,10}", any_attribute(), 0..3);
    (any::<bool>(), terraform, gyro, extra)
        .prop_map(
            |(terraform_first, (lock_id, info, digest), (lock_key, gyro_id, gyro_info), extra)| {
                let mut attributes: HashMap<String, AttributeValue> = extra;
                let mut put = |name: &str, value: Option<AttributeValue>| {
                    if let Some(v) = value {
                        attributes.insert(name.to_owned(), v);
                    }
                };
                // Mostly one tool's attributes; sometimes a mixture.
                if terraform_first {
                    put("LockID", lock_id);
                    put("Info", info);
                    put("Digest", digest);
                    if gyro_id.is_some() && lock_key.is_none() {
                        put("GyroId", gyro_id);
                    }
                } else {
                    put("LockKey", lock_key);
                    put("GyroId", gyro_id);
                    put("GyroLockInfo", gyro_info);
                    if info.is_some() && lock_id.is_none() {
                        put("Info", info);
                    }
                }
                Item::from(attributes)
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// DynamoDB lock items
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// The real items parse as what they are (the generators' starting points are sound).
    #[test]
    fn real_items_agree_with_the_oracle(image in prop::sample::select(real_images())) {
        prop_assert!(!matches!(expected_entry(&image), ExpectedEntry::Malformed));
        check_table_item(&image)?;
    }

    /// Any item of any attribute types: the parser never panics and agrees with the oracle, so a
    /// malformed lock is never a lock, and a lock's precondition is exactly what was read.
    #[test]
    fn table_items_agree_with_the_oracle(item in table_item()) {
        check_table_item(&item)?;
    }

    /// Real lock items with a few edits to their `Info`.
    #[test]
    fn mutated_real_lock_items_agree_with_the_oracle(
        info in mutated_info(),
        key in prop_oneof![Just("acme-tfstate/network/terraform.tfstate".to_owned()), "\\PC{0,30}"],
    ) {
        let mut item = fixture_item(LOCK_ITEM);
        item.insert("Info".to_owned(), AttributeValue::S(info));
        item.insert("LockID".to_owned(), AttributeValue::S(key));
        check_table_item(&item)?;
    }

    /// Structured lock JSON in every shape.
    #[test]
    fn structured_lock_json_agrees_with_the_oracle(info in structured_info()) {
        let item = Item::from(HashMap::from([
            ("LockID".to_owned(), AttributeValue::S("acme-tfstate/network/terraform.tfstate".to_owned())),
            ("Info".to_owned(), AttributeValue::S(info)),
        ]));
        check_table_item(&item)?;
    }

    /// Up to DynamoDB's 400 KB item limit: the cap holds whatever the content, at the byte.
    #[test]
    fn lock_size_cap_holds_up_to_the_item_limit(size in boundary_size(), gyro in any::<bool>()) {
        let item = if gyro {
            let mut item = fixture_item(GYRO_ITEM);
            item.insert("GyroLockInfo".to_owned(), AttributeValue::S("é".repeat(size / 2)));
            item
        } else {
            let info = info_of_size(size);
            prop_assert_eq!(info.len(), size);
            let mut item = fixture_item(LOCK_ITEM);
            item.insert("Info".to_owned(), AttributeValue::S(info));
            item
        };
        check_table_item(&item)?;
        let parsed = parse_table_item(TABLE, &item);
        match &parsed {
            Ok(TableEntry::Lock(lock)) => prop_assert!(lock.raw.len() <= MAX_LOCK_BYTES),
            Ok(other) => prop_assert!(false, "not a lock: {:?}", other),
            Err(e) => {
                prop_assert!(
                    matches!(e.failure, ParseFailure::TooLarge { .. }),
                    "{}", e
                );
                // The refusal names the size, not the content.
                prop_assert!(e.to_string().len() < 512);
            }
        }
    }

    /// A 400 KB item of many attributes (names and values of any type) is refused or parsed in
    /// bounded form, never echoed whole.
    #[test]
    fn items_at_the_item_limit_are_bounded(
        names in prop::collection::vec("[A-Za-z]{1,8}", 1..8),
        value in any_attribute(),
        with_lock_id in any::<bool>(),
    ) {
        let mut attributes = HashMap::new();
        let per_name = DYNAMODB_ITEM_LIMIT / names.len();
        for (i, name) in names.iter().enumerate() {
            attributes.insert(format!("{name}{i}"), AttributeValue::S("x".repeat(per_name - 16)));
        }
        attributes.insert("Odd".to_owned(), value);
        if with_lock_id {
            attributes.insert("LockID".to_owned(), AttributeValue::S("acme-tfstate/k".to_owned()));
        }
        let item = Item::from(attributes);
        check_table_item(&item)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Stream records → lock events
// ---------------------------------------------------------------------------------------------

fn stream_record() -> BoxedStrategy<StreamRecord> {
    let image = prop_oneof![
        3 => table_item(),
        2 => prop::sample::select(real_images()),
        1 => Just(Item::default()),
    ];
    (
        prop_oneof![
            4 => prop::sample::select(vec!["INSERT", "MODIFY", "REMOVE"]).prop_map(str::to_owned),
            1 => prop::sample::select(vec!["insert", "", "DELETE", "REMOVE "]).prop_map(str::to_owned),
            1 => "\\PC{0,10}",
        ],
        prop_oneof![
            6 => Just(Some(STREAM_ARN.to_owned())),
            1 => Just(None),
            1 => Just(Some("arn:aws:dynamodb:us-east-1:1:table//stream/x".to_owned())),
            1 => Just(Some("arn:aws:sqs:us-east-1:1:table/t/stream/x".to_owned())),
            1 => "\\PC{0,40}".prop_map(Some),
        ],
        prop::option::of("[0-9]{1,22}|\\PC{0,4}"),
        prop::option::of(-62_135_596_800i64..253_402_300_799),
        prop::option::of((
            prop_oneof![Just("Service".to_owned()), "\\PC{0,8}"],
            prop_oneof![Just("dynamodb.amazonaws.com".to_owned()), "\\PC{0,8}"],
        )),
        image.clone(),
        image,
        "\\PC{0,12}",
    )
        .prop_map(
            |(event_name, arn, sequence, at, identity, old_image, new_image, event_id)| StreamRecord {
                event_id,
                event_name,
                event_source_arn: arn,
                sequence_number: sequence,
                approximate_creation: at.and_then(|s| DateTime::from_timestamp(s, 0)),
                user_identity: identity.map(|(kind, principal_id)| UserIdentity { kind, principal_id }),
                keys: Item::default(),
                old_image,
                new_image,
            },
        )
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// Every record becomes exactly one event; a lock event only ever carries a lock the oracle
    /// calls well-formed, with the precondition of the image it came from.
    #[test]
    fn stream_records_never_make_a_malformed_lock(
        record in stream_record(),
        first_seen in -62_135_596_800i64..253_402_300_799,
    ) {
        let received = Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).single().expect("valid time");
        let classified = classify(&record, received);
        prop_assert!(!classified.record_id.is_empty());
        let image = match record.event_name.as_str() {
            "REMOVE" => &record.old_image,
            _ => &record.new_image,
        };
        let table_known = record.table().is_some();
        match &classified.event {
            LockEvent::Acquired { lock } | LockEvent::Modified { lock, .. } | LockEvent::Released { lock, .. } => {
                prop_assert!(table_known);
                let Ok(TableEntry::Lock(parsed)) = parse_table_item(&classified.table, image) else {
                    return Err(TestCaseError::fail(format!("lock event from an image that is not a lock: {image:?}")));
                };
                prop_assert!(!matches!(expected_entry(image), ExpectedEntry::Malformed));
                prop_assert_eq!(&lock.precondition, &parsed.precondition);
                prop_assert_eq!(&lock.lock_id, &parsed.lock_id);
                prop_assert_eq!(&lock.raw, &parsed.raw);
                prop_assert_eq!(&lock.location, &parsed.location);
                if let LockEvent::Released { hold, .. } = &classified.event {
                    prop_assert_eq!(hold.is_some(), lock.created.at().is_some());
                }
            }
            LockEvent::StateWritten { digest } => {
                prop_assert!(digest.digest.is_some());
                let is_digest = matches!(expected_entry(image), ExpectedEntry::Digest { .. });
                prop_assert!(is_digest);
            }
            LockEvent::Ignored { .. } => {
                let is_digest = matches!(expected_entry(image), ExpectedEntry::Digest { .. });
                prop_assert!(is_digest);
            }
            LockEvent::Unparseable { reason } => prop_assert!(!reason.is_empty()),
        }
        if let (true, Some(_), ExpectedEntry::Malformed) = (
            table_known,
            lockreaper_core::stream::Change::parse(&record.event_name),
            expected_entry(image),
        ) {
            let unparseable = matches!(classified.event, LockEvent::Unparseable { .. });
            prop_assert!(unparseable);
        }
        // A Gyro release gets its hold time from the remembered first-seen time, whatever it is
        // (the ledger is lockreaper's own, but its clock is not the record's).
        let mut released = classified.clone();
        let needed = released.needs_first_seen().is_some();
        released.set_first_seen(DateTime::from_timestamp(first_seen, 0).expect("in range"));
        released.mark_forced();
        if needed {
            let hold_known = matches!(released.event, LockEvent::Released { hold: Some(_), .. });
            prop_assert!(hold_known);
        }
    }

    /// The table name comes out of a stream ARN or nothing does; no ARN makes it panic.
    #[test]
    fn stream_arns_never_panic(arn in prop_oneof![
        "arn:aws:dynamodb:[a-z0-9-]{0,12}:[0-9]{0,12}:table/[A-Za-z0-9_.-]{0,12}/stream/[0-9T:.-]{0,26}",
        "\\PC{0,60}",
    ]) {
        if let Some(table) = table_from_stream_arn(&arn) {
            prop_assert!(!table.is_empty());
            let resource = format!(":table/{table}/stream/");
            prop_assert!(arn.contains(&resource));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `.tflock` bodies
// ---------------------------------------------------------------------------------------------

fn lock_file_key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just("network/terraform.tfstate.tflock".to_owned()),
        2 => Just("env:/staging/app/terraform.tfstate.tflock".to_owned()),
        1 => Just(".tflock".to_owned()),
        1 => Just("network/terraform.tfstate".to_owned()),
        1 => "\\PC{0,20}(\\.tflock)?",
    ]
    .boxed()
}

fn etag() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "\"[0-9a-f]{32}\"",
        1 => "\"[0-9a-f]{32}-[0-9]{1,3}\"",
        1 => Just(String::new()),
        1 => "[ \t]{1,3}",
        1 => "\\PC{0,10}",
    ]
    .boxed()
}

fn lock_file_body() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => lock_info_text().prop_map(String::into_bytes),
        // Byte-level damage: invalid UTF-8, NULs, a BOM.
        2 => (
            prop::sample::select(real_infos()),
            prop::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        )
            .prop_map(|(info, edits)| {
                let mut bytes = info.into_bytes();
                for (at, byte) in edits {
                    let pos = at.index(bytes.len());
                    bytes[pos] = byte;
                }
                bytes
            }),
        1 => prop::sample::select(real_infos()).prop_map(|i| [&b"\xef\xbb\xbf"[..], i.as_bytes()].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
    .boxed()
}

fn check_lock_file(bucket: &str, key: &str, body: &[u8], etag: &str) -> Result<(), TestCaseError> {
    let last_modified = Utc.with_ymd_and_hms(2026, 11, 26, 0, 3, 30).single();
    let parsed = parse_lock_file(bucket, key, body, etag, last_modified);
    let stem = key.strip_suffix(".tflock").filter(|s| !s.is_empty());
    let text = std::str::from_utf8(body).ok();
    let expected = match (stem, text) {
        (Some(stem), Some(text)) if !etag.trim().is_empty() => {
            well_formed_info(text).map(|info| (stem, text, info))
        }
        _ => None,
    };
    match (expected, parsed) {
        (Some((stem, text, info)), Ok(lock)) => {
            prop_assert_eq!(lock.kind, LockKind::TerraformS3LockFile);
            prop_assert_eq!(
                &lock.location,
                &LockLocation::S3 { bucket: bucket.to_owned(), key: key.to_owned() }
            );
            // If-Match on exactly the ETag S3 returned, quotes and all.
            prop_assert_eq!(&lock.precondition, &DeletePrecondition::ETagMatches(etag.to_owned()));
            prop_assert_eq!(lock.last_modified, last_modified);
            assert_terraform_lock(&lock, &info, text, &format!("{bucket}/{stem}"))?;
        }
        (None, Err(error)) => {
            let message = error.to_string();
            prop_assert!(message.starts_with(&format!("s3://{bucket}/")), "{}", message);
            prop_assert!(message.len() <= 3 * (body.len() + key.len()) + 1024);
        }
        (expected, parsed) => {
            return Err(TestCaseError::fail(format!(
                "lock file {bucket}/{key} etag {etag:?} body {:?}\n  expected {expected:?}\n  parsed   {parsed:?}",
                String::from_utf8_lossy(body)
            )))
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any lock file: the parser agrees with the oracle; a lock file that can be deleted has a
    /// non-blank ETag as its precondition.
    #[test]
    fn lock_files_agree_with_the_oracle(
        key in lock_file_key(),
        body in lock_file_body(),
        etag in etag(),
    ) {
        check_lock_file("acme-tfstate", &key, &body, &etag)?;
    }

    /// The cap holds for lock files too, at the byte and up to 400 KB.
    #[test]
    fn lock_file_size_cap_holds(size in boundary_size()) {
        let body = info_of_size(size);
        prop_assert_eq!(body.len(), size);
        check_lock_file("acme-tfstate", "network/terraform.tfstate.tflock", body.as_bytes(), "\"22d3aec8eb8752f44cd935e871cf1070\"")?;
        let parsed = parse_lock_file("acme-tfstate", "network/terraform.tfstate.tflock", body.as_bytes(), "\"e\"", None);
        prop_assert_eq!(parsed.is_ok(), size <= MAX_LOCK_BYTES);
    }
}

// ---------------------------------------------------------------------------------------------
// Approval tokens
// ---------------------------------------------------------------------------------------------

fn signing_key() -> impl Strategy<Value = SigningKey> {
    prop::collection::vec(any::<u8>(), SigningKey::MIN_LEN..96)
        .prop_map(|bytes| SigningKey::from_bytes(&bytes).expect("long enough"))
}

fn fingerprint() -> impl Strategy<Value = LockFingerprint> {
    any::<[u8; LockFingerprint::LEN]>().prop_map(LockFingerprint::from_bytes)
}

/// Expiry times, including before 1970 and after 2106 (the u32 range of the token).
fn expiry() -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        4 => 1_700_000_000i64..1_900_000_000,
        1 => -100_000_000_000i64..0,
        1 => (i64::from(u32::MAX) - 10)..(i64::from(u32::MAX) + 100_000),
    ]
    .prop_map(|secs| DateTime::from_timestamp(secs, 123_456_789).expect("in range"))
}

/// A token mangled the ways copy and paste mangle it: cut, doubled, one character changed.
#[derive(Debug, Clone)]
enum TokenEdit {
    Change(Index, char),
    Cut(Index),
    Insert(Index, char),
    Double,
    Swap(Index),
}

fn token_edit() -> impl Strategy<Value = TokenEdit> {
    let base64url = prop_oneof![
        4 => prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".chars().collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ];
    prop_oneof![
        (any::<Index>(), base64url.clone()).prop_map(|(i, c)| TokenEdit::Change(i, c)),
        any::<Index>().prop_map(TokenEdit::Cut),
        (any::<Index>(), base64url).prop_map(|(i, c)| TokenEdit::Insert(i, c)),
        Just(TokenEdit::Double),
        any::<Index>().prop_map(TokenEdit::Swap),
    ]
}

fn edit_token(token: &str, edit: &TokenEdit) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    match edit {
        TokenEdit::Change(i, c) if !chars.is_empty() => {
            let pos = i.index(chars.len());
            chars[pos] = *c;
        }
        TokenEdit::Cut(i) if !chars.is_empty() => chars.truncate(i.index(chars.len())),
        TokenEdit::Insert(i, c) => chars.insert(i.index(chars.len() + 1), *c),
        TokenEdit::Double => return format!("{token}{token}"),
        TokenEdit::Swap(i) if chars.len() >= 2 => {
            let pos = i.index(chars.len() - 1);
            chars.swap(pos, pos + 1);
        }
        _ => {}
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config())]

    /// Issue then verify: the same proposal, fingerprint and (whole-second, clamped) expiry,
    /// valid strictly before the expiry and refused from it on.
    #[test]
    fn tokens_round_trip(
        key in signing_key(),
        proposal in any::<[u8; PROPOSAL_ID_LEN]>(),
        fingerprint in fingerprint(),
        expires in expiry(),
        before in 1i64..1_000_000,
    ) {
        let token = ApprovalToken::issue(&key, proposal, fingerprint, expires);
        prop_assert_eq!(token.len(), ApprovalToken::LEN);
        prop_assert!(token.starts_with(ApprovalToken::PREFIX));
        prop_assert!(token.bytes().all(|b| (0x21..0x7f).contains(&b)), "{}", token);
        let stored = expires.timestamp().clamp(0, i64::from(u32::MAX));
        let stored_at = DateTime::from_timestamp(stored, 0).expect("in range");
        match ApprovalToken::verify(&key, &token, stored_at - chrono::Duration::seconds(before)) {
            Ok(verified) => {
                prop_assert_eq!(verified.fingerprint, fingerprint);
                prop_assert_eq!(verified.expires_at, stored_at);
                prop_assert_eq!(
                    verified.proposal_id,
                    lockreaper_core::approval::encode_proposal_id(&proposal)
                );
            }
            Err(e) => prop_assert!(false, "a fresh token was refused: {}", e),
        }
        let expired = ApprovalToken::verify(&key, &token, stored_at);
        prop_assert_eq!(expired, Err(TokenError::Expired { expired_at: stored_at }));
        // Decoration that chat and shells add is tolerated.
        let decorated = format!("  '`{token}`'\n");
        prop_assert!(ApprovalToken::verify(&key, &decorated, stored_at - chrono::Duration::seconds(before)).is_ok());
    }

    /// No edit of a valid token verifies, and no other key accepts it.
    #[test]
    fn altered_tokens_never_verify(
        key in signing_key(),
        other_key in signing_key(),
        proposal in any::<[u8; PROPOSAL_ID_LEN]>(),
        fingerprint in fingerprint(),
        edits in prop::collection::vec(token_edit(), 1..3),
    ) {
        let expires = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().expect("valid time");
        let now = expires - chrono::Duration::hours(1);
        let token = ApprovalToken::issue(&key, proposal, fingerprint, expires);
        let mut altered = token.clone();
        for edit in &edits {
            altered = edit_token(&altered, edit);
        }
        // Surrounding whitespace and quote pairs are decoration the verifier removes on purpose.
        if strip_token_decoration(&altered) != token {
            let result = ApprovalToken::verify(&key, &altered, now);
            prop_assert!(result.is_err(), "{:?} verified after {:?}", altered, edits);
        }
        let other = ApprovalToken::verify(&other_key, &token, now);
        let own = ApprovalToken::verify(&key, &token, now);
        prop_assert!(own.is_ok());
        prop_assert!(other.is_err() || other == own);
    }

    /// Arbitrary text never verifies and never panics; errors never quote it.
    #[test]
    fn arbitrary_tokens_never_verify(
        key in signing_key(),
        text in prop_oneof![
            "\\PC{0,80}",
            "lr1\\.[A-Za-z0-9_-]{54}",
            "lr[0-9]{1,3}\\.[A-Za-z0-9_-]{0,60}",
            "[\"'` \t]{0,3}lr1\\.[A-Za-z0-9_-]{50,58}[\"'` \t]{0,3}",
        ],
    ) {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid time");
        match ApprovalToken::verify(&key, &text, now) {
            Ok(v) => prop_assert!(false, "{:?} verified: {:?}", text, v),
            Err(e) => {
                let message = e.to_string();
                let stripped = strip_token_decoration(&text);
                prop_assert!(stripped.len() < 8 || !message.contains(stripped), "{}", message);
            }
        }
    }

    /// Fingerprints: hex round-trip, and any text either parses to 8 bytes or is refused.
    #[test]
    fn fingerprints_round_trip(fingerprint in fingerprint(), text in "\\PC{0,20}|[0-9a-fA-F]{14,18}") {
        prop_assert_eq!(LockFingerprint::from_hex(&fingerprint.to_string()), Ok(fingerprint));
        if let Ok(parsed) = LockFingerprint::from_hex(&text) {
            prop_assert_eq!(parsed.to_string(), text.to_ascii_lowercase());
        }
    }

    /// Signing keys: accepted exactly when at least 32 bytes after trimming.
    #[test]
    fn signing_keys_from_any_secret(secret in "\\PC{0,48}|[ \t\n]{0,2}[!-~]{28,36}[ \t\n]{0,2}") {
        let key = SigningKey::from_secret(&secret);
        prop_assert_eq!(key.is_ok(), secret.trim().len() >= SigningKey::MIN_LEN);
        if let Ok(key) = key {
            prop_assert_eq!(format!("{key:?} {key}"), "SigningKey(redacted) SigningKey(redacted)");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Messages on the approvals topic
// ---------------------------------------------------------------------------------------------

fn token_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (signing_key(), any::<[u8; PROPOSAL_ID_LEN]>(), fingerprint(), expiry())
            .prop_map(|(k, p, f, e)| ApprovalToken::issue(&k, p, f, e)),
        1 => "[!-~]{1,60}".prop_filter("a token: not an action word, not only quotes", |t| {
            !["approve", "deny", "snooze"].contains(&t.to_ascii_lowercase().as_str())
                && !strip_token_decoration(t).is_empty()
        }),
    ]
    .boxed()
}

/// Free text as people type it into `--reason` / `--approver`.
fn free_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        "\\PC{1,60}",
        "[a-z]{1,10}( [a-z]{1,10}){0,5}",
    ]
}

/// Durations as people write them (and as lockreaper formats them).
fn duration_text() -> BoxedStrategy<String> {
    prop_oneof![
        (1u64..=7 * 86_400).prop_map(|s| format_duration(Duration::from_secs(s))),
        prop::sample::select(vec![
            "2h", "1d", "1h30m", "7d", "90m", "0s", "8d", "1x", "", "h"
        ])
        .prop_map(str::to_owned),
        "[0-9]{1,4}[smhd]{1,2}",
    ]
    .boxed()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    Approve,
    Deny,
    Snooze,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Approve),
        Just(Action::Deny),
        Just(Action::Snooze)
    ]
}

fn non_blank(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// What a parsed message must hold, given what was asked.
fn check_parsed(
    parsed: Result<lockreaper_core::approval::ParsedApproval, ApprovalMessageError>,
    action: Action,
    token: &str,
    duration: &str,
    approver: Option<String>,
    reason: Option<String>,
    source: ApprovalSource,
) -> Result<(), TestCaseError> {
    let expected_duration = parse_duration(duration)
        .ok()
        .filter(|d| !d.is_zero() && *d <= MAX_SNOOZE);
    let parsed = match (action, expected_duration, parsed) {
        (Action::Snooze, None, Err(_)) => return Ok(()),
        (_, _, Ok(parsed)) => parsed,
        (_, _, Err(e)) => return Err(TestCaseError::fail(format!("refused: {e}"))),
    };
    prop_assert_eq!(parsed.source, source);
    let message = parsed.message;
    prop_assert_eq!(message.token(), token);
    prop_assert_eq!(message.approver().map(str::to_owned), approver);
    prop_assert_eq!(message.reason().map(str::to_owned), reason);
    match (action, &message) {
        (Action::Approve, ApprovalMessage::Approve { .. })
        | (Action::Deny, ApprovalMessage::Deny { .. }) => {}
        (Action::Snooze, ApprovalMessage::Snooze { duration, .. }) => {
            prop_assert_eq!(Some(*duration), expected_duration);
        }
        _ => prop_assert!(false, "asked {:?}, parsed {:?}", action, message),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// The JSON the CLI publishes (`shared/cli/src/approve.rs` `message`: the fields it sets, blank
    /// ones left out) parses back to exactly what was asked.
    #[test]
    fn json_messages_round_trip(
        action in action(),
        token in token_text(),
        duration in duration_text(),
        approver in free_text(),
        reason in free_text(),
    ) {
        let name = match action { Action::Approve => "approve", Action::Deny => "deny", Action::Snooze => "snooze" };
        let mut fields = serde_json::Map::new();
        fields.insert("action".into(), Value::from(name));
        fields.insert("token".into(), Value::from(token.as_str()));
        if let Some(a) = non_blank(&approver) {
            fields.insert("approver".into(), Value::from(a));
        }
        if let Some(r) = non_blank(&reason) {
            fields.insert("reason".into(), Value::from(r));
        }
        if action == Action::Snooze {
            fields.insert("for".into(), Value::from(duration.trim()));
        }
        let text = Value::Object(fields).to_string();
        prop_assume!(text.len() <= MAX_MESSAGE_BYTES);
        check_parsed(
            ApprovalMessage::parse(&text), action, strip_token_decoration(&token), &duration,
            non_blank(&approver), non_blank(&reason), ApprovalSource::Json,
        )?;
    }

    /// Text commands and the bare token a chat button publishes parse back too (reasons with
    /// their whitespace collapsed to single spaces, as words are split).
    #[test]
    fn text_messages_round_trip(
        action in prop::option::of(action()),
        token in token_text(),
        duration in "[1-9][0-9]{0,2}[mh]",
        reason in "[a-z]{1,10}( [a-z]{1,10}){0,5}|",
        upper in any::<bool>(),
    ) {
        let (text, source, action) = match action {
            None => (format!(" \"{token}\"\n"), ApprovalSource::ChatButton, Action::Approve),
            Some(action) => {
                let mut name = match action { Action::Approve => "approve", Action::Deny => "deny", Action::Snooze => "snooze" }.to_owned();
                if upper {
                    name = name.to_ascii_uppercase();
                }
                let duration = if action == Action::Snooze { format!(" {duration}") } else { String::new() };
                (format!("{name}  {token}{duration}\t{reason}"), ApprovalSource::Text, action)
            }
        };
        let reason = if source == ApprovalSource::ChatButton { None } else { non_blank(&reason) };
        check_parsed(
            ApprovalMessage::parse(&text), action, strip_token_decoration(&token), &duration,
            None, reason, source,
        )?;
    }

    /// Any message: never panics, the 4096-byte cap holds at the byte, and whatever parses has a
    /// non-empty undecorated token and a snooze within (0, 7d].
    #[test]
    fn any_message_is_bounded_and_never_panics(
        text in prop_oneof![
            3 => "\\PC{0,120}",
            2 => "(approve|deny|snooze|APPROVE|Snooze) \\PC{0,60}",
            2 => "\\{\"(action|token|approver|reason|for|aprover)\": ?(\"\\PC{0,20}\"|null|1|\\[\\]|\\{\\})(, ?\"(action|token|for)\": ?\"\\PC{0,10}\"){0,3}\\}",
            1 => (4090usize..4100, "[a-z ]").prop_map(|(n, c)| c.repeat(n)),
            1 => (4000usize..4200).prop_map(|n| format!("{{\"token\":\"lr1.x\",\"reason\":\"{}\"}}", "r".repeat(n))),
        ],
    ) {
        let result = ApprovalMessage::parse(&text);
        if text.len() > MAX_MESSAGE_BYTES {
            prop_assert_eq!(result, Err(ApprovalMessageError::TooLarge { size: text.len(), max: MAX_MESSAGE_BYTES }));
        } else {
            match result {
                Ok(parsed) => {
                    let token = parsed.message.token();
                    prop_assert!(!token.is_empty());
                    prop_assert_eq!(strip_token_decoration(token), token);
                    if let ApprovalMessage::Snooze { duration, .. } = parsed.message {
                        prop_assert!(!duration.is_zero() && duration <= MAX_SNOOZE);
                    }
                }
                // Errors quote at most 80 characters of the input.
                Err(e) => prop_assert!(e.to_string().chars().count() < 600, "{}", e),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Durations and the other configuration values
// ---------------------------------------------------------------------------------------------

/// `d` as `format_duration` shows it: seconds only under a minute, minutes under an hour, hours
/// and minutes under a day, days and hours above.
fn shown(d: Duration) -> Duration {
    let s = d.as_secs();
    Duration::from_secs(match s {
        0..=59 => s,
        60..=86_399 => s - s % 60,
        _ => s - s % 3600,
    })
}

/// The duration grammar, written out: `(<digits><s|m|h|d>)+` after trimming.
fn is_duration_syntax(text: &str) -> bool {
    let text = text.trim();
    let mut saw_digit = false;
    let mut saw_unit = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            saw_digit = true;
        } else if "smhd".contains(c) && saw_digit {
            saw_digit = false;
            saw_unit = true;
        } else {
            return false;
        }
    }
    saw_unit && !saw_digit
}

proptest! {
    #![proptest_config(config())]

    /// Formatted then parsed: what the format shows, exactly; and formatting is stable.
    #[test]
    fn durations_round_trip(secs in prop_oneof![0u64..100_000, 0u64..10_000_000, any::<u64>()]) {
        let d = Duration::from_secs(secs);
        let text = format_duration(d);
        prop_assert_eq!(parse_duration(&text), Ok(shown(d)), "{}", text);
        prop_assert_eq!(format_duration(shown(d)), text);
    }

    /// Written from components as people write them, parsed to their sum.
    #[test]
    fn duration_components_parse_to_their_sum(parts in prop::collection::vec((0u64..1000, prop::sample::select(vec![('s', 1u64), ('m', 60), ('h', 3600), ('d', 86_400)])), 1..5)) {
        let text: String = parts.iter().map(|(n, (unit, _))| format!("{n}{unit}")).collect();
        let sum: u64 = parts.iter().map(|(n, (_, secs))| n * secs).sum();
        prop_assert_eq!(parse_duration(&format!(" {text} ")), Ok(Duration::from_secs(sum)));
    }

    /// Any text: never panics, parses exactly when it has the grammar (and fits), and every
    /// error names the expected form or the overflow.
    #[test]
    fn any_duration_text(text in prop_oneof![
        "\\PC{0,20}",
        "[0-9smhdx ]{0,12}",
        "[0-9]{15,30}[smhd]",
        "٣h|１h|1H|1.5h|-1h|\\+1h|1h 30m",
    ]) {
        match parse_duration(&text) {
            Ok(_) => prop_assert!(is_duration_syntax(&text), "{:?} parsed", text),
            Err(problem) => prop_assert!(
                !is_duration_syntax(&text) || problem.contains("too long"),
                "{:?}: {}", text, problem
            ),
        }
    }

    /// Booleans, table names, ARNs: no panic, and exactly the documented forms are accepted.
    #[test]
    fn scalar_config_values(text in prop_oneof![
        "\\PC{0,20}",
        "(true|false|TRUE|yes|No|1|0|on)",
        "[A-Za-z0-9_.-]{0,4}|[A-Za-z0-9_.-]{250,260}",
        "arn:(aws)?:(sns|sqs|secretsmanager)?:[a-z0-9-]{0,3}:[0-9]{0,3}:\\PC{0,10}",
    ]) {
        let lower = text.trim().to_ascii_lowercase();
        match parse_bool(&text) {
            Ok(b) => prop_assert_eq!(b, ["true", "1", "yes"].contains(&lower.as_str())),
            Err(p) => {
                prop_assert!(!["true", "1", "yes", "false", "0", "no"].contains(&lower.as_str()));
                prop_assert!(p.contains("expected `true` or `false`"));
            }
        }
        let table_ok = (3..=255).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        prop_assert_eq!(check_table_name(&text).is_ok(), table_ok);
        let fields: Vec<&str> = text.splitn(6, ':').collect();
        let arn_ok = fields.len() == 6
            && fields[0] == "arn"
            && fields[2] == "sns"
            && [1, 3, 4, 5].iter().all(|&i| !fields[i].is_empty());
        prop_assert_eq!(check_arn(&text, "sns", "an SNS topic").is_ok(), arn_ok);
    }

    /// `LOCK_BUCKETS` entries and state paths.
    #[test]
    fn bucket_scopes_and_state_paths(text in "\\PC{0,30}|[a-z0-9.-]{0,8}/[\\PC/]{0,20}") {
        if let Ok(scope) = BucketScope::parse(&text) {
            prop_assert!(!scope.bucket.is_empty());
            prop_assert!(!scope.bucket.contains('/'));
            prop_assert!(scope.prefix.as_deref() != Some(""));
        }
        if let Ok(path) = StatePath::parse(&text) {
            prop_assert_eq!(path.lock_path(), text.clone());
            prop_assert_eq!(StatePath::from_lock_file(&path.bucket, &path.lock_file_key()), Some(path));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// LOCK_POLICY and the whole reaper configuration
// ---------------------------------------------------------------------------------------------

/// A `LOCK_POLICY` entry: valid fields as the README documents them, and their near misses.
fn policy_entry() -> BoxedStrategy<Value> {
    let glob = prop_oneof![
        4 => prop::sample::select(vec![
            "acme-tfstate/prod/*", "*", "acme-tfstate/{prod,staging}/**", "a/[abc]?/x", "b/\\*",
        ]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["", "  ", "a/[", "a/{b,{c}}", "a/[z-a]", "\\", "{"]).prop_map(str::to_owned),
        1 => "[\\PC*?\\[\\]{},\\\\]{0,16}",
    ];
    let json_field = |valid: BoxedStrategy<Value>| {
        prop_oneof![
            4 => valid.prop_map(Some),
            3 => Just(None),
            1 => odd_json().prop_map(Some),
        ]
    };
    (
        json_field(glob.prop_map(Value::from).boxed()),
        json_field(duration_text().prop_map(Value::from).boxed()),
        json_field(duration_text().prop_map(Value::from).boxed()),
        json_field(any::<bool>().prop_map(Value::from).boxed()),
        prop::option::of(("[a-z_]{1,12}", odd_json())),
    )
        .prop_map(|(path, warn, expire, auto, unknown)| {
            let mut entry = serde_json::Map::new();
            for (name, value) in [
                ("path", path),
                ("warn_after", warn),
                ("expire_after", expire),
                ("auto_expire", auto),
            ] {
                if let Some(v) = value {
                    entry.insert(name.to_owned(), v);
                }
            }
            if let Some((name, value)) = unknown {
                entry.insert(name, value);
            }
            Value::Object(entry)
        })
        .boxed()
}

fn lock_policy_text() -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::collection::vec(policy_entry(), 0..4).prop_map(|e| Value::Array(e).to_string()),
        1 => policy_entry().prop_map(|e| e.to_string()),
        1 => mutated_policy(),
        1 => "\\PC{0,30}",
        // Deep nesting: refused by the JSON parser's recursion limit, not by the stack.
        1 => (100usize..2000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
    ]
    .boxed()
}

fn mutated_policy() -> impl Strategy<Value = String> {
    prop::collection::vec(edit(), 1..4).prop_map(|edits| {
        apply_edits(
            r#"[{"path": "acme-tfstate/prod/*", "warn_after": "30m", "expire_after": "2h", "auto_expire": false}]"#,
            &edits,
        )
    })
}

fn config_value(valid: BoxedStrategy<String>) -> BoxedStrategy<Option<String>> {
    prop_oneof![
        3 => Just(None),
        4 => valid.prop_map(Some),
        1 => "\\PC{0,12}".prop_map(Some),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// The reaper's whole policy configuration from any environment: never panics; when it is
    /// accepted, every rule the README states holds; when not, every error names its variable.
    #[test]
    fn policy_configuration_from_any_environment(
        warn in config_value(duration_text().boxed()),
        expire in config_value(duration_text().boxed()),
        remind in config_value(duration_text().boxed()),
        auto in config_value(prop_oneof![Just("true".to_owned()), Just("false".to_owned())].boxed()),
        policy in config_value(lock_policy_text().boxed()),
        tables in config_value("[a-z-]{0,10}(, ?[a-z-]{0,10}){0,3}".boxed()),
        buckets in config_value("([a-z0-9-]{0,8}(/[\\PC/]{0,8})?)(,[a-z0-9-]{0,8}(/[a-z/]{0,8})?){0,2}".boxed()),
    ) {
        let vars: Vec<(String, String)> = [
            ("WARN_AFTER", warn), ("EXPIRE_AFTER", expire), ("REMIND_EVERY", remind),
            ("AUTO_EXPIRE", auto), ("LOCK_POLICY", policy.clone()),
            ("LOCK_TABLES", tables), ("LOCK_BUCKETS", buckets),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
        let mut env = Env::new(vars.clone());
        let policy_config = StaleLockPolicy::from_env(&mut env);
        let sources = LockSources::from_env(&mut env);
        match env.finish((policy_config, sources)) {
            Ok((p, sources)) => {
                prop_assert!(!p.warn_after.is_zero() && !p.expire_after.is_zero() && !p.remind_every.is_zero());
                prop_assert!(p.expire_after >= p.warn_after);
                for o in &p.overrides {
                    prop_assert!(!o.pattern().trim().is_empty());
                    prop_assert!(o.warn_after.is_some() || o.expire_after.is_some() || o.auto_expire.is_some());
                    prop_assert!(o.warn_after.is_none_or(|d| !d.is_zero()));
                    prop_assert!(o.expire_after.is_none_or(|d| !d.is_zero()));
                    if o.warn_after.is_some() || o.expire_after.is_some() {
                        let warn = o.warn_after.unwrap_or(p.warn_after);
                        let expire = o.expire_after.unwrap_or(p.expire_after);
                        prop_assert!(expire >= warn, "{:?}", o);
                    }
                }
                // Every entry of an accepted LOCK_POLICY became an override, in order.
                if let Some(Value::Array(entries)) = policy.as_deref().and_then(|t| serde_json::from_str::<Value>(t.trim()).ok()) {
                    prop_assert_eq!(entries.len(), p.overrides.len());
                    for (entry, o) in entries.iter().zip(&p.overrides) {
                        prop_assert_eq!(entry.get("path").and_then(Value::as_str), Some(o.pattern()));
                    }
                }
                prop_assert!(!sources.tables.is_empty() || !sources.buckets.is_empty());
            }
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                let mut named: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
                // Neither source set is reported on LOCK_TABLES; a WARN_AFTER above the default
                // EXPIRE_AFTER is reported on EXPIRE_AFTER, the one to set.
                named.push("LOCK_TABLES");
                if named.contains(&"WARN_AFTER") {
                    named.push("EXPIRE_AFTER");
                }
                for error in &errors.0 {
                    prop_assert!(
                        named.contains(&error.variable),
                        "{} names a variable that was not set", error
                    );
                }
            }
        }
    }

    /// `LOCK_POLICY` written from valid entries is read back entry for entry.
    #[test]
    fn lock_policy_round_trips(entries in prop::collection::vec((
        prop::sample::select(vec!["acme-tfstate/prod/*", "*", "b/{x,y}/**", "gyro-?"]),
        prop::option::of(1u64..3600),
        prop::option::of(0u64..3600),
        prop::option::of(any::<bool>()),
    ), 1..5)) {
        let json: Vec<Value> = entries.iter().map(|(path, warn, extra, auto)| {
            let mut e = serde_json::Map::new();
            e.insert("path".into(), Value::from(*path));
            // warn ≤ expire within an entry, both set or neither, so every entry is valid.
            if let (Some(w), Some(x)) = (warn, extra) {
                e.insert("warn_after".into(), Value::from(format_duration(Duration::from_secs(w * 60))));
                e.insert("expire_after".into(), Value::from(format_duration(Duration::from_secs((w + x) * 60))));
            }
            if let Some(a) = auto {
                e.insert("auto_expire".into(), Value::from(*a));
            } else if warn.is_none() || extra.is_none() {
                e.insert("auto_expire".into(), Value::from(false));
            }
            Value::Object(e)
        }).collect();
        let mut env = Env::new([("LOCK_POLICY".to_owned(), Value::Array(json.clone()).to_string())]);
        let policy = StaleLockPolicy::from_env(&mut env);
        let policy = match env.finish(policy) {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        prop_assert_eq!(policy.overrides.len(), json.len());
        for (entry, o) in json.iter().zip(&policy.overrides) {
            prop_assert_eq!(entry["path"].as_str(), Some(o.pattern()));
            let minutes = |name: &str| entry.get(name).and_then(Value::as_str).map(|t| parse_duration(t).expect("written by format_duration"));
            prop_assert_eq!(o.warn_after, minutes("warn_after"));
            prop_assert_eq!(o.expire_after, minutes("expire_after"));
            prop_assert_eq!(o.auto_expire, entry.get("auto_expire").and_then(Value::as_bool));
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// The fingerprint an approval is bound to is the lock as read: the same item always gives the
    /// same one, and any other lock content at the same place a different one, so an approval
    /// can never apply to a lock that changed after it was proposed.
    #[test]
    fn fingerprints_bind_the_lock_as_read(a in structured_info(), b in structured_info()) {
        let parse = |info: &str| {
            let mut item = fixture_item(LOCK_ITEM);
            item.insert("Info".to_owned(), AttributeValue::S(info.to_owned()));
            match parse_table_item(TABLE, &item) {
                Ok(TableEntry::Lock(lock)) => Some(lock),
                _ => None,
            }
        };
        if let (Some(first), Some(again)) = (parse(&a), parse(&a)) {
            prop_assert_eq!(LockFingerprint::of(&first), LockFingerprint::of(&again));
            if let Some(other) = parse(&b) {
                prop_assert_eq!(LockFingerprint::of(&first) == LockFingerprint::of(&other), a == b);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the reaper does with a parsed lock: the verdict and the alert
// ---------------------------------------------------------------------------------------------

/// A well-formed lock whose one free-form field (or `ID`, or `Path`) is as large as the lock cap
/// allows, of characters that need escaping in JSON, Markdown or e-mail.
fn lock_with_a_huge_field() -> BoxedStrategy<String> {
    (
        prop::sample::select(vec!["ID", "Operation", "Info", "Who", "Version", "Path"]),
        prop::sample::select(vec!["x", "é", "\n", "`", "\"", "<", " ", "\u{1F512}"]),
        prop_oneof![
            4 => 0usize..4096,
            // Around the path and ID caps, and at the lock cap.
            1 => (MAX_STATE_PATH_BYTES - 64)..(MAX_STATE_PATH_BYTES + 64),
            1 => (MAX_LOCK_ID_BYTES + 160)..(MAX_LOCK_ID_BYTES + 320),
            1 => (MAX_LOCK_BYTES - 256)..=MAX_LOCK_BYTES,
        ],
    )
        .prop_map(|(field, unit, size)| {
            let mut info = json!({
                "ID": "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7",
                "Operation": "OperationTypeApply",
                "Info": "",
                "Who": "runner@ip-10-0-1-23",
                "Version": "1.10.5",
                "Created": "2025-03-04T09:15:27.483920118Z",
                "Path": "acme-tfstate/prod/terraform.tfstate",
            });
            let base = info.to_string().len();
            // Escaped width of one unit in JSON, so the whole lock stays within the cap.
            let width = Value::String(unit.to_owned()).to_string().len() - 2;
            let count = size.saturating_sub(base) / width;
            let prefix = if field == "Path" { "acme-tfstate/" } else { "" };
            info[field] = Value::String(format!("{prefix}{}", unit.repeat(count)));
            info.to_string()
        })
        .boxed()
}

/// SNS's limit on a published message: the `Publish` API's `Message` constraints say "at most 256
/// KB in size (262,144 bytes, not 262,144 characters)", and the SNS Developer Guide ("Publishing
/// large messages") says topics default to a `MaximumMessageSize` of 262,144 bytes and answer a
/// larger publish with `InvalidParameter`. An alert over it is refused, so the lock goes unalerted.
const SNS_MESSAGE_MAX: usize = 262_144;

/// DynamoDB's longest partition key value, 2,048 bytes (DynamoDB Developer Guide, "Constraints in
/// Amazon DynamoDB", Partition key length).
const DYNAMODB_KEY_MAX: usize = 2048;

proptest! {
    #![proptest_config(config())]

    /// Whatever a lock holds, judging it and rendering its alert never panics, and the alert fits
    /// in one SNS message at every level, with an approval offer when one is made.
    #[test]
    fn any_parsed_lock_can_be_judged_and_alerted(
        info in prop_oneof![3 => lock_with_a_huge_field(), 2 => lock_info_text()],
        gyro in any::<bool>(),
        hours_later in prop_oneof![0i64..48, -1_000_000i64..1_000_000],
        written in prop::option::of(-100i64..100),
        digest_matches in prop::option::of(any::<bool>()),
        key_length in prop_oneof![3 => Just(None), 1 => (0usize..=DYNAMODB_KEY_MAX).prop_map(Some)],
    ) {
        // The item's key, up to the longest DynamoDB allows: it is shown whole in alerts too.
        let key = key_length.map(|n| AttributeValue::S("k".repeat(n.max(1))));
        let item = if gyro {
            let mut item = fixture_item(GYRO_ITEM);
            item.insert("GyroLockInfo".to_owned(), AttributeValue::S(info));
            if let Some(key) = key {
                item.insert("LockKey".to_owned(), key);
            }
            item
        } else {
            let mut item = fixture_item(LOCK_ITEM);
            item.insert("Info".to_owned(), AttributeValue::S(info));
            if let Some(key) = key {
                item.insert("LockID".to_owned(), key);
            }
            item
        };
        let context = lockreaper_core::alert::AlertContext::new("lockreaper");
        let lock = match parse_table_item(TABLE, &item) {
            Ok(TableEntry::Lock(lock)) => lock,
            Ok(TableEntry::Digest(_)) => return Err(TestCaseError::fail("a lock item became a digest")),
            Err(error) => {
                let alert = lockreaper_core::alert::unparseable_alert(&error, &context);
                prop_assert!(alert.sns_message().len() <= SNS_MESSAGE_MAX);
                return Ok(());
            }
        };
        let created = Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).single().expect("valid time");
        let now = lock.created.at().unwrap_or(created)
            .checked_add_signed(chrono::Duration::hours(hours_later))
            .unwrap_or(created);
        let lock = match lock.created {
            LockCreated::Unknown => LockRecord { created: LockCreated::FirstSeen(created), ..lock },
            _ => lock,
        };
        let liveness = lockreaper_core::policy::Liveness {
            state_last_modified: None,
            last_state_write: written.and_then(|h| now.checked_add_signed(chrono::Duration::hours(h))),
            digest_matches_state: digest_matches,
        };
        let verdict = StaleLockPolicy::default().evaluate(&lock, &liveness, &[], now);
        let offer = lockreaper_core::alert::ApprovalOffer {
            token: ApprovalToken::issue(
                &SigningKey::from_secret("0123456789abcdef0123456789abcdef-test-only").expect("long enough"),
                [7; PROPOSAL_ID_LEN],
                LockFingerprint::of(&lock),
                now + chrono::Duration::hours(24),
            ),
            approval_topic_arn: "arn:aws:sns:us-east-1:123456789012:lockreaper-approvals".to_owned(),
            expires_at: now + chrono::Duration::hours(24),
        };
        for kind in [
            lockreaper_core::policy::AlertKind::New,
            lockreaper_core::policy::AlertKind::Escalated,
            lockreaper_core::policy::AlertKind::Reminder,
        ] {
            for approval in [None, Some(&offer)] {
                let alert = lockreaper_core::alert::lock_alert(&lock, &verdict, kind, approval, &context);
                let message = alert.sns_message();
                prop_assert!(
                    message.len() <= SNS_MESSAGE_MAX,
                    "{} bytes for a lock of {} bytes", message.len(), lock.raw.len()
                );
                prop_assert!(alert.subject.len() <= lockreaper_core::alert::SUBJECT_MAX);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed regression cases: inputs the properties above once caught, kept literally
// ---------------------------------------------------------------------------------------------

/// Found by `structured_lock_json_agrees_with_the_oracle`: serde reads a struct from a JSON array
/// of its field values, so this `Info` was a lock with ID `A`, created in 1970, and so proposed
/// for unlock. Terraform writes an object; anything else is for a person to inspect.
#[test]
fn regression_lock_info_as_a_json_array_is_not_a_lock() {
    let info = r#"["A","OperationTypeApply","","root@vm","1.15.5","1970-01-01T00:00:00Z","acme-tfstate/network/terraform.tfstate"]"#;
    let item = Item::from(HashMap::from([
        (
            "LockID".to_owned(),
            AttributeValue::S("acme-tfstate/network/terraform.tfstate".to_owned()),
        ),
        ("Info".to_owned(), AttributeValue::S(format!(" \n{info}"))),
    ]));
    let error = parse_table_item(TABLE, &item).expect_err("an array is not lock info");
    assert!(
        matches!(&error.failure, ParseFailure::NotJson { detail } if detail.contains("JSON array")),
        "{error}"
    );
    let body = info.as_bytes();
    let error = parse_lock_file(
        "acme-tfstate",
        "network/terraform.tfstate.tflock",
        body,
        "\"e\"",
        None,
    )
    .expect_err("an array is not a lock file");
    assert!(error.to_string().contains("JSON object"), "{error}");
}

/// Found by `lock_files_agree_with_the_oracle`: with no ETag in S3's answer the adapter passes
/// `""`, and the lock became deletable with `If-Match: ` (an empty header) as its precondition.
#[test]
fn regression_lock_file_without_etag_is_not_deletable() {
    let body = LOCKFILE_BODY.trim().as_bytes();
    for etag in ["", "  ", "\t"] {
        let error = parse_lock_file(
            "acme-tfstate",
            "network/terraform.tfstate.tflock",
            body,
            etag,
            None,
        )
        .expect_err("no ETag, no conditional delete");
        assert_eq!(error.failure, ParseFailure::MissingETag);
        assert_eq!(
            error.to_string(),
            "s3://acme-tfstate/network/terraform.tfstate.tflock: S3 returned no ETag for the lock file, so it cannot be deleted conditionally (`If-Match: <ETag>`)"
        );
    }
    let lock = parse_lock_file(
        "acme-tfstate",
        "network/terraform.tfstate.tflock",
        body,
        "\"22d3aec8eb8752f44cd935e871cf1070\"",
        None,
    )
    .expect("the real lock file parses");
    assert_eq!(
        lock.precondition,
        DeletePrecondition::ETagMatches("\"22d3aec8eb8752f44cd935e871cf1070\"".to_owned())
    );
}

/// Found by `policy_configuration_from_any_environment`: `LOCK_BUCKETS=","` names no bucket, yet
/// counted as set, so a reaper with nothing to watch started without a word.
#[test]
fn regression_lock_sources_of_only_commas_are_refused() {
    for (name, value) in [
        ("LOCK_BUCKETS", ","),
        ("LOCK_BUCKETS", " , "),
        ("LOCK_TABLES", ",,"),
    ] {
        let mut env = Env::new([(name.to_owned(), value.to_owned())]);
        let sources = LockSources::from_env(&mut env);
        let errors = env.finish(sources).expect_err("nothing to watch");
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].variable, "LOCK_TABLES");
        assert!(
            errors.0[0].problem.contains("only commas and blanks"),
            "{errors}"
        );
    }
}

/// Found by `any_duration_text`: a number beyond u64 failed to parse and was reported as "a unit
/// without a number".
#[test]
fn regression_duration_beyond_u64_is_too_long() {
    for text in ["20000000000000000000s", "99999999999999999999999999d"] {
        let problem = parse_duration(text).expect_err("does not fit");
        assert_eq!(problem, format!("{text:?} is too long"));
    }
    assert!(parse_duration("h")
        .expect_err("no number")
        .contains("a unit without a number"));
    // Leading zeros are still just a number.
    assert_eq!(
        parse_duration("000000000000000000000001h"),
        Ok(Duration::from_secs(3600))
    );
}

/// Found by `any_parsed_lock_can_be_judged_and_alerted`: `Info.Path` (shown whole in every alert,
/// as it names the state) and `ID` were unbounded below the 64 KiB lock cap, so a lock with a
/// 7 KB path or a 17 KB ID produced an alert over SNS's 256 KiB, which SNS refuses: the lock
/// was never alerted on. No S3 state path is over 1,088 bytes and no tool's ID over 36.
#[test]
fn regression_oversized_path_or_id_is_unparseable_and_alertable() {
    let context = lockreaper_core::alert::AlertContext::new("lockreaper");
    let with = |field: &str, value: String| {
        let mut info: Value = serde_json::from_str(LOCKFILE_BODY).expect("fixture is JSON");
        info[field] = Value::String(value);
        let mut item = fixture_item(LOCK_ITEM);
        item.insert("Info".to_owned(), AttributeValue::S(info.to_string()));
        parse_table_item(TABLE, &item)
    };
    let path = format!("acme-tfstate/{}", "x".repeat(7000));
    let error = with("Path", path).expect_err("no state path is 7 KB");
    assert_eq!(
        error.failure,
        ParseFailure::PathTooLong {
            size: 7013,
            limit: MAX_STATE_PATH_BYTES
        }
    );
    let alert = lockreaper_core::alert::unparseable_alert(&error, &context);
    assert!(alert.sns_message().len() <= SNS_MESSAGE_MAX);

    let error = with("ID", "x".repeat(17_000)).expect_err("no lock ID is 17 KB");
    assert_eq!(
        error.failure,
        ParseFailure::IdTooLong {
            size: 17_000,
            limit: MAX_LOCK_ID_BYTES
        }
    );
    let mut gyro = fixture_item(GYRO_ITEM);
    gyro.insert("GyroId".to_owned(), AttributeValue::S("a".repeat(257)));
    let error = parse_table_item(TABLE, &gyro).expect_err("no Gyro ID is 257 bytes");
    assert!(matches!(
        error.failure,
        ParseFailure::IdTooLong { size: 257, .. }
    ));

    // The longest real path (63-character bucket, 1,024-byte key) still parses; declared in `Path`
    // where the lock is not, it is named as a mismatch in the alert, and the alert still fits.
    let longest = format!("{}/{}", "b".repeat(63), "k".repeat(1024));
    let Ok(TableEntry::Lock(lock)) = with("Path", longest.clone()) else {
        panic!("a path of {} bytes is a real S3 path", longest.len());
    };
    assert_ne!(lock.state_path, longest, "judged by where it is stored");
    assert_eq!(lock.declared_path_mismatch(), Some(longest.clone()));
    let now = Utc
        .with_ymd_and_hms(2026, 11, 30, 0, 0, 0)
        .single()
        .expect("valid time");
    let verdict = StaleLockPolicy::default().evaluate(
        &lock,
        &lockreaper_core::policy::Liveness::default(),
        &[],
        now,
    );
    let alert = lockreaper_core::alert::lock_alert(
        &lock,
        &verdict,
        lockreaper_core::policy::AlertKind::New,
        None,
        &context,
    );
    assert!(alert.sns_message().len() <= SNS_MESSAGE_MAX);
}

// ---------------------------------------------------------------------------------------------
// S3 events from EventBridge (issue 15)
// ---------------------------------------------------------------------------------------------

/// What ministack's EventBridge delivered for real Terraform `use_lockfile` applies.
const S3_EVENTS: &str =
    include_str!("../../../infra/fixtures/s3-events/terraform-lockfile-events.json");

fn real_s3_events() -> Vec<Value> {
    let v: Value = serde_json::from_str(S3_EVENTS).expect("captured S3 events");
    v["events"].as_array().expect("events").clone()
}

/// The JSON paths of an S3 event lockreaper reads.
const S3_EVENT_FIELDS: &[&[&str]] = &[
    &["source"],
    &["detail-type"],
    &["id"],
    &["time"],
    &["detail"],
    &["detail", "bucket"],
    &["detail", "bucket", "name"],
    &["detail", "object"],
    &["detail", "object", "key"],
    &["detail", "object", "sequencer"],
    &["detail", "object", "version-id"],
    &["detail", "object", "etag"],
    &["detail", "reason"],
    &["detail", "deletion-type"],
];

/// A value for a field: near-valid strings (hex sequencers, keys, times), odd JSON, or removal.
fn s3_field_value() -> BoxedStrategy<Option<Value>> {
    prop_oneof![
        Just(None),
        odd_json().prop_map(Some),
        "[0-9A-Fa-f]{0,70}".prop_map(|s| Some(Value::from(s))),
        "\\PC{0,40}".prop_map(|s| Some(Value::from(s))),
        "[a-z:/._-]{0,30}(\\.tflock)?".prop_map(|s| Some(Value::from(s))),
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-][01][0-9]:[0-5][0-9])?"
            .prop_map(|s| Some(Value::from(s))),
        (1_000usize..1_100).prop_map(|n| Some(Value::from("k".repeat(n)))),
    ]
    .boxed()
}

fn set_path(event: &mut Value, path: &[&str], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = event;
    for p in parents {
        match node.get_mut(*p) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        match value {
            Some(v) => {
                map.insert((*last).to_owned(), v);
            }
            None => {
                map.remove(*last);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Any edit of a real event either reads with every field as documented, or fails naming a
    /// field; classifying whatever reads never panics and never gives a release a hold time that
    /// is not from an earlier acquisition.
    #[test]
    fn s3_events_read_as_documented_or_name_the_wrong_field(
        base in prop::sample::select(real_s3_events()),
        edits in prop::collection::vec((prop::sample::select(S3_EVENT_FIELDS.to_vec()), s3_field_value()), 0..4),
        earlier in prop::option::of("[0-9A-F]{1,20}"),
    ) {
        use lockreaper_core::lifecycle::Lifecycle;
        use lockreaper_core::s3_events::{classify, parse_event, LockFileHistory, Sequencer, MAX_KEY_BYTES, SEQUENCER_WIDTH, SOURCE};
        let mut event = base;
        for (path, value) in edits {
            set_path(&mut event, path, value);
        }
        match parse_event(&event) {
            Ok(e) => {
                prop_assert_eq!(event["source"].as_str(), Some(SOURCE));
                prop_assert!(!e.key.is_empty() && e.key.len() <= MAX_KEY_BYTES);
                prop_assert!(!e.bucket.is_empty() && !e.bucket.contains('/'));
                prop_assert_eq!(e.sequencer.as_str().len(), SEQUENCER_WIDTH);
                prop_assert!(e.sequencer.as_str().chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
                let created = earlier
                    .as_deref()
                    .and_then(|s| Sequencer::parse(s).ok())
                    .map(|s| (s, e.time - chrono::Duration::seconds(7)));
                let history = LockFileHistory { created: created.clone(), deleted: None }
                    .with_event(e.change, &e.sequencer, e.time);
                let seq = e.sequencer.clone();
                let c = classify(e, &history, false);
                if let Lifecycle::Released { hold: Some(_), .. } = c.lifecycle.lifecycle {
                    let (acquired, _) = history.created.clone().expect("a hold needs an acquisition");
                    prop_assert!(acquired < seq);
                }
            }
            Err(err) => {
                prop_assert!(!err.field.is_empty());
                prop_assert!(err.to_string().contains(err.field));
            }
        }
    }
}

/// The Slack app mode's member rides in the envelope's `lambda` and `sqs` forms, and Slack's
/// escaping makes `<`, `>` and `&` four or five bytes each: the largest alert a real lock can
/// produce (the longest state path, every free-form field at its cap and made of characters
/// Slack escapes, an approval offered) still fits in one SNS message.
#[test]
fn the_slack_member_keeps_the_largest_alert_within_sns() {
    let context = lockreaper_core::alert::AlertContext::new("<&>".repeat(40));
    let mut info: Value = serde_json::from_str(LOCKFILE_BODY).expect("fixture is JSON");
    for field in ["Who", "Operation", "Info", "Version"] {
        info[field] = Value::String("<&>".repeat(400));
    }
    // The longest state path a lock may name (63-character bucket, 1,024-byte key).
    let key = format!("{}/{}", "b".repeat(63), "<".repeat(1024));
    info["Path"] = Value::String(key.clone());
    let mut item = fixture_item(LOCK_ITEM);
    item.insert("Info".to_owned(), AttributeValue::S(info.to_string()));
    item.insert("LockID".to_owned(), AttributeValue::S(key));
    let lock = match parse_table_item(TABLE, &item) {
        Ok(TableEntry::Lock(lock)) => lock,
        other => panic!("the lock parses: {other:?}"),
    };
    let now = lock.created.at().expect("created") + chrono::Duration::hours(30);
    let verdict = StaleLockPolicy::default().evaluate(
        &lock,
        &lockreaper_core::policy::Liveness::default(),
        &[],
        now,
    );
    let offer = lockreaper_core::alert::ApprovalOffer {
        token: "lr1.".to_owned() + &"A".repeat(54),
        approval_topic_arn: format!("arn:aws:sns:us-east-1:123456789012:{}", "t".repeat(256)),
        expires_at: now + chrono::Duration::hours(6),
    };
    for kind in [
        lockreaper_core::policy::AlertKind::New,
        lockreaper_core::policy::AlertKind::Reminder,
    ] {
        let alert =
            lockreaper_core::alert::lock_alert(&lock, &verdict, kind, Some(&offer), &context);
        assert!(alert.slack.get("approvalToken").is_some());
        let size = alert.sns_message().len();
        assert!(size <= SNS_MESSAGE_MAX, "{size} bytes");
    }
}
