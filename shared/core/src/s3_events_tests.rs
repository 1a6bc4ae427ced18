//! S3 event cases. The documented shape is AWS's example ("EventBridge event message structure",
//! Amazon S3 User Guide); the captured events are `infra/fixtures/s3-events/terraform-lockfile-events.json`,
//! what ministack's EventBridge delivered for real Terraform `use_lockfile` applies.

use super::*;
use chrono::TimeZone;
use serde_json::json;
use std::time::Duration;

/// AWS's documented `Object Created` example, with the key of a lock file.
fn created(key: &str, sequencer: &str, time: &str) -> Value {
    json!({
        "version": "0", "id": format!("id-{sequencer}-c"), "detail-type": "Object Created",
        "source": "aws.s3", "account": "111122223333", "time": time, "region": "ca-central-1",
        "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
        "detail": {"version": "0", "bucket": {"name": "amzn-s3-demo-bucket1"},
                   "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                              "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": sequencer},
                   "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
                   "source-ip-address": "1.2.3.4", "reason": "PutObject"}
    })
}

/// AWS's documented `Object Deleted` (DeleteObject) shape.
fn deleted(key: &str, sequencer: &str, time: &str, reason: &str) -> Value {
    json!({
        "version": "0", "id": format!("id-{sequencer}-d"), "detail-type": "Object Deleted",
        "source": "aws.s3", "account": "111122223333", "time": time, "region": "ca-central-1",
        "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
        "detail": {"version": "0", "bucket": {"name": "amzn-s3-demo-bucket1"},
                   "object": {"key": key, "version-id": "1QW9g1Z99LUNbvaaYVpW9xDlOLU.qxgF", "sequencer": sequencer},
                   "request-id": "0BH729840619AG5K", "requester": "123456789012",
                   "source-ip-address": "1.2.3.4", "reason": reason, "deletion-type": "Delete Marker Created"}
    })
}

fn t(secs: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, secs).unwrap()
}

fn seq(s: &str) -> Sequencer {
    Sequencer::parse(s).unwrap()
}

#[test]
fn reads_the_documented_event() {
    let e = parse_event(&created(
        "env:/staging/app/terraform.tfstate.tflock",
        "617f08299329d189",
        "2021-11-12T00:00:00Z",
    ))
    .unwrap();
    assert_eq!(e.change, ObjectChange::Created);
    assert_eq!(e.bucket, "amzn-s3-demo-bucket1");
    assert_eq!(e.key, "env:/staging/app/terraform.tfstate.tflock");
    assert_eq!(e.event_id, "id-617f08299329d189-c");
    assert_eq!(e.time, Utc.with_ymd_and_hms(2021, 11, 12, 0, 0, 0).unwrap());
    assert_eq!(e.sequencer.short(), "617F08299329D189");
    assert_eq!(
        e.version_id.as_deref(),
        Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
    );
    assert_eq!(e.reason.as_deref(), Some("PutObject"));
    assert_eq!(e.deletion_type, None);
    let d = parse_event(&deleted(
        "k.tflock",
        "617f0837b3a9f4b2",
        "2021-11-12T00:00:05Z",
        "DeleteObject",
    ))
    .unwrap();
    assert_eq!(d.change, ObjectChange::Deleted);
    assert_eq!(d.deletion_type.as_deref(), Some("Delete Marker Created"));
    assert_eq!(d.etag, None);
}

#[test]
fn sequencers_compare_after_left_padding() {
    // AWS: left-pad the shorter with zeros, then compare as strings.
    assert!(seq("FF") < seq("100"));
    assert!(seq("0055AED6DCD90281E5") < seq("0055AED6DCD90281E6"));
    assert_eq!(seq("00ab"), seq("AB"));
    assert_eq!(seq("ab").as_str().len(), SEQUENCER_WIDTH);
    assert!(
        seq("9").as_str() < seq("A").as_str(),
        "ledger strings order like sequencers"
    );
    assert_eq!(Sequencer::from_stored(seq("1F").as_str()), Some(seq("1f")));
    assert_eq!(Sequencer::from_stored("1F"), None);
    assert_eq!(seq("000").short(), "0");
    for bad in ["", "xyz", "12 34", "0x12", &"1".repeat(SEQUENCER_WIDTH + 1)] {
        let err = Sequencer::parse(bad).unwrap_err();
        assert_eq!(err.field, "detail.object.sequencer", "{bad:?}");
    }
}

#[test]
fn every_wrong_field_is_named() {
    let good = created("k.tflock", "1A", "2026-11-30T12:00:00Z");
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("source", Box::new(|v| v["source"] = json!("aws.ec2"))),
        (
            "detail-type",
            Box::new(|v| v["detail-type"] = json!("Object Restore Completed")),
        ),
        ("detail-type", Box::new(|v| v["detail-type"] = json!(7))),
        ("id", Box::new(|v| v["id"] = json!(""))),
        // moto 5.2.5 sends `time` as a number: not AWS's shape, and refused.
        ("time", Box::new(|v| v["time"] = json!(1_764_504_000))),
        ("time", Box::new(|v| v["time"] = json!("yesterday"))),
        ("detail", Box::new(|v| v["detail"] = json!([]))),
        (
            "detail.bucket.name",
            Box::new(|v| v["detail"]["bucket"] = json!({})),
        ),
        (
            "detail.bucket.name",
            Box::new(|v| v["detail"]["bucket"]["name"] = json!("a/b")),
        ),
        (
            "detail.object.key",
            Box::new(|v| v["detail"]["object"]["key"] = json!(null)),
        ),
        (
            "detail.object.key",
            Box::new(|v| v["detail"]["object"]["key"] = json!("k".repeat(MAX_KEY_BYTES + 1))),
        ),
        (
            "detail.object.sequencer",
            Box::new(|v| v["detail"]["object"]["sequencer"] = json!(12)),
        ),
        (
            "detail.reason",
            Box::new(|v| v["detail"]["reason"] = json!({"x": 1})),
        ),
    ];
    for (field, edit) in cases {
        let mut v = good.clone();
        edit(&mut v);
        let err = parse_event(&v).unwrap_err();
        assert_eq!(err.field, field, "{v}");
        assert!(err.to_string().contains(field), "{err}");
    }
    assert_eq!(parse_event(&json!("x")).unwrap_err().field, "(event)");
    let (id, bucket) = unreadable_identity(&good);
    assert_eq!(id.as_deref(), Some("id-1A-c"));
    assert_eq!(bucket.as_deref(), Some("amzn-s3-demo-bucket1"));
    assert_eq!(unreadable_identity(&json!([1])), (None, None));
}

#[test]
fn keys_map_to_lock_files_and_states_in_every_workspace() {
    let role = object_role("b", "env:/staging/app/terraform.tfstate.tflock");
    assert_eq!(
        role,
        ObjectRole::LockFile {
            state: StatePath {
                bucket: "b".into(),
                key: "env:/staging/app/terraform.tfstate".into()
            }
        }
    );
    assert_eq!(
        role.state().lock_path(),
        "b/env:/staging/app/terraform.tfstate"
    );
    assert!(matches!(
        object_role("b", "app/terraform.tfstate"),
        ObjectRole::State { .. }
    ));
    assert_eq!(
        object_role("b", "app/terraform.tfstate")
            .state()
            .lock_path(),
        "b/app/terraform.tfstate"
    );
    // `.tflock` alone names no state: it is an object like any other.
    assert!(matches!(
        object_role("b", ".tflock"),
        ObjectRole::State { .. }
    ));
}

fn history(created: Option<(&str, u32)>, deleted: Option<(&str, u32)>) -> LockFileHistory {
    LockFileHistory {
        created: created.map(|(s, at)| (seq(s), t(at))),
        deleted: deleted.map(|(s, at)| (seq(s), t(at))),
    }
}

fn event(v: Value) -> S3ObjectEvent {
    parse_event(&v).unwrap()
}

#[test]
fn an_acquisition_then_its_release_in_order() {
    let acquired = classify(
        event(created("k.tflock", "10", "2026-11-30T12:00:00Z")),
        &history(Some(("10", 0)), None),
        false,
    );
    assert_eq!(acquired.lifecycle.lifecycle, Lifecycle::Acquired);
    assert_eq!(acquired.lifecycle.kind, Some(LockKind::TerraformS3LockFile));
    assert_eq!(acquired.lifecycle.container, "amzn-s3-demo-bucket1");
    assert_eq!(acquired.state_path(), "amzn-s3-demo-bucket1/k");
    assert!(!acquired.late);
    let released = classify(
        event(deleted(
            "k.tflock",
            "20",
            "2026-11-30T12:00:42Z",
            "DeleteObject",
        )),
        &history(Some(("10", 0)), Some(("20", 42))),
        false,
    );
    assert_eq!(
        released.lifecycle.lifecycle,
        Lifecycle::Released {
            release: Release::Normal,
            hold: Some(Duration::from_secs(42))
        }
    );
    assert!(!released.late);
}

#[test]
fn a_release_before_its_acquisition_has_no_hold_and_leaves_no_live_lock() {
    // The release arrives first: nothing acquired is recorded before it.
    let h = history(None, Some(("20", 42)));
    let released = classify(
        event(deleted(
            "k.tflock",
            "20",
            "2026-11-30T12:00:42Z",
            "DeleteObject",
        )),
        &h,
        false,
    );
    assert_eq!(
        released.lifecycle.lifecycle,
        Lifecycle::Released {
            release: Release::Normal,
            hold: None
        }
    );
    assert!(!h.is_held());
    // Then the acquisition: counted, but late, and the lock is not live.
    let h = history(Some(("10", 0)), Some(("20", 42)));
    let acquired = classify(
        event(created("k.tflock", "10", "2026-11-30T12:00:00Z")),
        &h,
        false,
    );
    assert_eq!(acquired.lifecycle.lifecycle, Lifecycle::Acquired);
    assert!(acquired.late);
    assert!(!h.is_held());
}

#[test]
fn a_late_release_never_takes_a_later_acquisitions_time() {
    // C1(10) D1(20) C2(30): D1 arrives after C2 was recorded. Its own acquisition's time is gone,
    // and C2's would make a negative hold: no hold at all.
    let h = history(Some(("30", 50)), Some(("20", 42)));
    let released = classify(
        event(deleted(
            "k.tflock",
            "20",
            "2026-11-30T12:00:42Z",
            "DeleteObject",
        )),
        &h,
        false,
    );
    assert_eq!(
        released.lifecycle.lifecycle,
        Lifecycle::Released {
            release: Release::Normal,
            hold: None
        }
    );
    assert!(released.late);
    assert!(h.is_held(), "C2 is held");
}

#[test]
fn clock_skew_never_makes_a_negative_hold() {
    let h = history(Some(("10", 30)), Some(("20", 5)));
    let released = classify(
        event(deleted(
            "k.tflock",
            "20",
            "2026-11-30T12:00:05Z",
            "DeleteObject",
        )),
        &h,
        false,
    );
    assert_eq!(
        released.lifecycle.lifecycle,
        Lifecycle::Released {
            release: Release::Normal,
            hold: Some(Duration::ZERO)
        }
    );
}

#[test]
fn forced_and_expired_releases() {
    let h = history(Some(("10", 0)), Some(("20", 9)));
    let forced = classify(
        event(deleted(
            "k.tflock",
            "20",
            "2026-11-30T12:00:09Z",
            "DeleteObject",
        )),
        &h,
        true,
    );
    assert!(matches!(
        forced.lifecycle.lifecycle,
        Lifecycle::Released {
            release: Release::Forced,
            ..
        }
    ));
    let expired = classify(
        event(deleted(
            "k.tflock",
            "20",
            "2026-11-30T12:00:09Z",
            LIFECYCLE_EXPIRATION,
        )),
        &h,
        false,
    );
    assert!(matches!(
        expired.lifecycle.lifecycle,
        Lifecycle::Released {
            release: Release::Expired,
            ..
        }
    ));
}

#[test]
fn state_objects_are_state_writes_and_their_deletes_count_nothing() {
    let none = LockFileHistory::default();
    let written = classify(
        event(created(
            "env:/staging/app/terraform.tfstate",
            "30",
            "2026-11-30T12:00:30Z",
        )),
        &none,
        false,
    );
    assert_eq!(written.lifecycle.lifecycle, Lifecycle::StateWritten);
    assert_eq!(written.lifecycle.at, t(30));
    assert_eq!(
        written.state_path(),
        "amzn-s3-demo-bucket1/env:/staging/app/terraform.tfstate"
    );
    let gone = classify(
        event(deleted(
            "app/terraform.tfstate",
            "40",
            "2026-11-30T12:00:40Z",
            "DeleteObject",
        )),
        &none,
        false,
    );
    assert_eq!(gone.lifecycle.lifecycle, Lifecycle::Uncounted);
}

#[test]
fn an_unreadable_event_counts_under_its_bucket() {
    let e = unparseable(Some("b"), t(1));
    assert_eq!(e.container, "b");
    assert_eq!(e.lifecycle, Lifecycle::Unparseable);
    assert_eq!(
        unparseable(None, t(1)).container,
        crate::stream::UNKNOWN_TABLE
    );
}

#[test]
fn metrics_count_both_sources_under_the_same_names() {
    use crate::metrics::{BatchMetrics, LOCKS_ACQUIRED, LOCK_HOLD_SECONDS};
    let mut m = BatchMetrics::new(t(0));
    let h = history(Some(("10", 0)), Some(("20", 42)));
    m.add_event(
        &classify(
            event(created("k.tflock", "10", "2026-11-30T12:00:00Z")),
            &h,
            false,
        )
        .lifecycle,
    );
    m.add_event(
        &classify(
            event(deleted(
                "k.tflock",
                "20",
                "2026-11-30T12:00:42Z",
                "DeleteObject",
            )),
            &h,
            false,
        )
        .lifecycle,
    );
    let data = m.data();
    let acquired = data.iter().find(|d| d.name == LOCKS_ACQUIRED).unwrap();
    assert_eq!(
        acquired.dimensions,
        vec![
            ("LockTable", "amzn-s3-demo-bucket1".to_owned()),
            ("LockKind", "terraform-s3-lockfile".to_owned())
        ]
    );
    let hold = data.iter().find(|d| d.name == LOCK_HOLD_SECONDS).unwrap();
    assert_eq!(
        hold.value,
        crate::metrics::MetricValue::Distribution {
            values: vec![42.0],
            counts: vec![1.0]
        }
    );
}

const CAPTURED: &str =
    include_str!("../../../infra/fixtures/s3-events/terraform-lockfile-events.json");

fn captured() -> Vec<Value> {
    let v: Value = serde_json::from_str(CAPTURED).unwrap();
    v["events"].as_array().unwrap().clone()
}

/// Replays events through the lifecycle model the way lock-metrics does (each lock file's
/// history recorded first, then read back), returning the classified events and the histories.
fn replay(
    events: &[Value],
) -> (
    Vec<S3Classified>,
    std::collections::HashMap<String, LockFileHistory>,
) {
    let mut histories: std::collections::HashMap<String, LockFileHistory> = Default::default();
    let mut out = Vec::new();
    for v in events {
        let e = parse_event(v).unwrap();
        let h = if matches!(object_role(&e.bucket, &e.key), ObjectRole::LockFile { .. }) {
            let h = histories.remove(&e.key).unwrap_or_default().with_event(
                e.change,
                &e.sequencer,
                e.time,
            );
            histories.insert(e.key.clone(), h.clone());
            h
        } else {
            LockFileHistory::default()
        };
        out.push(classify(e, &h, false));
    }
    (out, histories)
}

fn names(classified: &[S3Classified]) -> Vec<(String, &'static str)> {
    classified
        .iter()
        .map(|c| {
            let name = match c.lifecycle.lifecycle {
                Lifecycle::Acquired => "acquired",
                Lifecycle::Released { hold: Some(_), .. } => "released",
                Lifecycle::Released { hold: None, .. } => "released-no-hold",
                Lifecycle::StateWritten => "state-written",
                Lifecycle::Unparseable => "unparseable",
                Lifecycle::Uncounted => "uncounted",
            };
            (c.event.key.clone(), name)
        })
        .collect()
}

#[test]
fn the_captured_terraform_events_in_delivery_order() {
    let (classified, histories) = replay(&captured());
    let got = names(&classified);
    let expect = [
        ("app/terraform.tfstate.tflock", "acquired"),
        ("app/terraform.tfstate", "state-written"),
        ("app/terraform.tfstate.tflock", "released"),
        ("env:/staging/app/terraform.tfstate.tflock", "acquired"),
        ("env:/staging/app/terraform.tfstate", "state-written"),
        ("env:/staging/app/terraform.tfstate.tflock", "released"),
        ("env:/staging/app/terraform.tfstate.tflock", "acquired"),
        ("env:/staging/app/terraform.tfstate", "state-written"),
        ("env:/staging/app/terraform.tfstate.tflock", "released"),
        ("app/terraform.tfstate.tflock", "acquired"),
    ];
    assert_eq!(got, expect.map(|(k, n)| (k.to_owned(), n)));
    assert!(classified.iter().all(|c| !c.late));
    assert_eq!(
        classified[4].state_path(),
        "acme-tfstate/env:/staging/app/terraform.tfstate"
    );
    // The killed apply's lock file is held; the staging one is not.
    assert!(histories["app/terraform.tfstate.tflock"].is_held());
    assert!(!histories["env:/staging/app/terraform.tfstate.tflock"].is_held());
}

#[test]
fn the_captured_events_reversed_count_the_same_and_never_a_wrong_hold() {
    let mut events = captured();
    events.reverse();
    let (classified, histories) = replay(&events);
    let count = |n: &str| names(&classified).iter().filter(|(_, x)| *x == n).count();
    assert_eq!(count("acquired"), 4);
    assert_eq!(count("state-written"), 3);
    // Every release arrived before its acquisition: counted, with no hold time.
    assert_eq!(count("released-no-hold"), 3);
    assert_eq!(count("released"), 0);
    // The final state is the same as in delivery order.
    assert!(histories["app/terraform.tfstate.tflock"].is_held());
    assert!(!histories["env:/staging/app/terraform.tfstate.tflock"].is_held());
}

#[test]
fn recording_an_event_twice_changes_nothing() {
    let (_, once) = replay(&captured());
    let twice: Vec<Value> = captured()
        .into_iter()
        .flat_map(|e| [e.clone(), e])
        .collect();
    let (_, histories) = replay(&twice);
    assert_eq!(once, histories);
}
