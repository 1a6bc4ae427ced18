//! Policy cases: every level boundary, overrides, liveness, digest, unknown age, every config error,
//! and the alert dedup/escalation table.

use super::*;
use crate::model::{DeletePrecondition, LockKind, LockLocation};
use chrono::TimeZone;

const H: u64 = 3600;
const M: u64 = 60;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap()
}

fn at(secs: u64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs as i64)
}

fn d(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn tf_lock(path: &str, created: LockCreated) -> LockRecord {
    LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: LockLocation::DynamoDb {
            table: "tf-locks".to_owned(),
            key_attribute: "LockID".to_owned(),
            key: path.to_owned(),
        },
        lock_id: "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7".to_owned(),
        who: Some("runner@ip-10-0-1-23".to_owned()),
        operation: Some("OperationTypeApply".to_owned()),
        tool_version: Some("1.10.5".to_owned()),
        created,
        state_path: path.to_owned(),
        info: Some(String::new()),
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals("{}".to_owned()),
        raw: "{}".to_owned(),
    }
}

fn lock_at(created: DateTime<Utc>) -> LockRecord {
    tf_lock(
        "acme-tfstate/env:/prod/network/terraform.tfstate",
        LockCreated::Recorded(created),
    )
}

fn no_evidence() -> Liveness {
    Liveness::default()
}

fn env(vars: &[(&str, &str)]) -> Env {
    Env::new(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
}

/// Parses a policy from variables; `Err` carries every error as text.
fn policy(vars: &[(&str, &str)]) -> Result<StaleLockPolicy, Vec<String>> {
    let mut e = env(vars);
    let p = StaleLockPolicy::from_env(&mut e);
    e.finish(p)
        .map_err(|errs| errs.0.iter().map(ToString::to_string).collect())
}

fn errors(vars: &[(&str, &str)]) -> Vec<String> {
    match policy(vars) {
        Ok(p) => panic!("expected errors for {vars:?}, got {p:?}"),
        Err(e) => e,
    }
}

fn one_error(vars: &[(&str, &str)]) -> String {
    let errs = errors(vars);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}

// ---------------------------------------------------------------- levels

#[test]
fn defaults() {
    let p = policy(&[]).unwrap();
    assert_eq!(p, StaleLockPolicy::default());
    assert_eq!(p.warn_after, d(H));
    assert_eq!(p.expire_after, d(4 * H));
    assert!(!p.auto_expire);
    assert_eq!(p.remind_every, d(H));
    assert!(p.overrides.is_empty());
}

#[test]
fn every_level_boundary() {
    let manual = StaleLockPolicy::default();
    let auto = StaleLockPolicy {
        auto_expire: true,
        ..StaleLockPolicy::default()
    };
    // (policy, age in seconds, expected level)
    let cases = [
        (&manual, 0, Level::Fresh),
        (&manual, H - 1, Level::Fresh),
        (&manual, H, Level::Warn),
        (&manual, 4 * H - 1, Level::Warn),
        (&manual, 4 * H, Level::ProposeUnlock),
        (&manual, 100 * H, Level::ProposeUnlock),
        (&auto, H - 1, Level::Fresh),
        (&auto, H, Level::Warn),
        (&auto, 4 * H - 1, Level::Warn),
        (&auto, 4 * H, Level::AutoExpire),
        (&auto, 100 * H, Level::AutoExpire),
    ];
    for (policy, age, expected) in cases {
        let v = policy.evaluate(&lock_at(t0()), &no_evidence(), &[], at(age));
        assert_eq!(
            v.level, expected,
            "age {age}s auto={}: {:?}",
            policy.auto_expire, v.reasons
        );
        assert_eq!(v.age, Some(d(age)));
        assert!(!v.alive);
        assert!(!v.reasons.is_empty());
    }
}

#[test]
fn levels_are_ordered() {
    assert!(Level::Fresh < Level::Warn);
    assert!(Level::Warn < Level::ProposeUnlock);
    assert!(Level::ProposeUnlock < Level::AutoExpire);
    assert_eq!(
        serde_json::to_string(&Level::ProposeUnlock).unwrap(),
        "\"propose-unlock\""
    );
    assert_eq!(
        serde_json::from_str::<Level>("\"auto-expire\"").unwrap(),
        Level::AutoExpire
    );
}

#[test]
fn reasons_explain_the_level() {
    let p = StaleLockPolicy::default();
    let warn = p.evaluate(&lock_at(t0()), &no_evidence(), &[], at(H + 5 * M));
    assert_eq!(
        warn.reasons,
        vec!["held 1h5m, past the 1h warning threshold; it will be proposed for unlock at 4h"]
    );
    let stale = p.evaluate(&lock_at(t0()), &no_evidence(), &[], at(5 * H + 12 * M));
    assert_eq!(stale.level, Level::ProposeUnlock);
    assert_eq!(stale.reasons[0], "held 5h12m, past the 4h expiry threshold");
    assert!(stale.reasons[1].starts_with("no state write seen since the lock was taken"));
    assert_eq!(
        stale.reasons[2],
        "auto-expiry is off (AUTO_EXPIRE=false): a person must approve the unlock"
    );
    let fresh = p.evaluate(&lock_at(t0()), &no_evidence(), &[], at(10 * M));
    assert_eq!(
        fresh.reasons,
        vec!["held 10m, under the 1h warning threshold"]
    );
}

#[test]
fn a_lock_from_the_future_is_fresh() {
    // Clock skew: Created after now. Age clamps to zero.
    let v = StaleLockPolicy::default().evaluate(&lock_at(at(60)), &no_evidence(), &[], t0());
    assert_eq!(v.level, Level::Fresh);
    assert_eq!(v.age, Some(Duration::ZERO));
}

// ---------------------------------------------------------------- age sources

#[test]
fn unknown_age_is_fresh_and_never_expired() {
    let auto = StaleLockPolicy {
        auto_expire: true,
        warn_after: d(1),
        expire_after: d(1),
        ..StaleLockPolicy::default()
    };
    let lock = tf_lock("b/k", LockCreated::Unknown);
    let v = auto.evaluate(&lock, &no_evidence(), &[], at(1000 * H));
    assert_eq!(v.level, Level::Fresh);
    assert_eq!(v.age, None);
    assert!(v.reasons[0].starts_with("age unknown until first seen"));
    // Writes cannot be placed after an unknown time: no liveness either.
    let written = Liveness {
        state_last_modified: Some(at(5)),
        ..Liveness::default()
    };
    assert!(!auto.evaluate(&lock, &written, &[], at(H)).alive);
}

#[test]
fn first_seen_age_counts_but_a_gyro_lock_is_never_auto_expired() {
    let auto = StaleLockPolicy {
        auto_expire: true,
        ..StaleLockPolicy::default()
    };
    let mut lock = tf_lock("gyro-locks/app/prod", LockCreated::FirstSeen(t0()));
    lock.kind = LockKind::GyroDynamoDb;
    let v = auto.evaluate(&lock, &no_evidence(), &[], at(4 * H));
    // Nothing can show a Gyro holder is alive, so nothing can show it is dead either.
    assert_eq!(v.level, Level::ProposeUnlock);
    assert!(
        v.reasons[0].starts_with("held at least 4h, past"),
        "{:?}",
        v.reasons
    );
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("a Gyro lock has no state object")),
        "{:?}",
        v.reasons
    );
    assert_eq!(v.gaps.len(), 1);
    let w = auto.evaluate(&lock, &no_evidence(), &[], at(2 * H));
    assert_eq!(w.level, Level::Warn);
    assert!(w.reasons[0].starts_with("held at least 2h,"));
}

// ---------------------------------------------------------------- liveness

#[test]
fn state_write_after_the_lock_means_alive() {
    let auto = StaleLockPolicy {
        auto_expire: true,
        ..StaleLockPolicy::default()
    };
    let lock = lock_at(t0());
    // (state LastModified, ledger write, alive?)
    let cases = [
        (None, None, false),
        (Some(at(0)), None, false), // equal is not after
        (Some(t0() - chrono::Duration::hours(2)), None, false),
        (Some(at(1)), None, true),
        (None, Some(at(3 * H)), true),
        (None, Some(at(0)), false),
        (
            Some(t0() - chrono::Duration::hours(1)),
            Some(at(2 * H)),
            true,
        ),
    ];
    for (lm, ledger, alive) in cases {
        let live = Liveness {
            state_last_modified: lm,
            last_state_write: ledger,
            digest_matches_state: Some(true),
        };
        assert_eq!(live.holder_probably_alive(Some(t0())), alive, "{live:?}");
        let v = auto.evaluate(&lock, &live, &[], at(5 * H));
        assert_eq!(v.alive, alive, "{live:?}");
        if alive {
            assert_eq!(v.level, Level::Warn, "{live:?}");
            assert!(
                v.reasons
                    .iter()
                    .any(|r| r.contains("after the lock was taken: holder probably alive")),
                "{:?}",
                v.reasons
            );
        } else {
            assert_eq!(v.level, Level::AutoExpire, "{live:?}");
        }
        assert_eq!(v.liveness, live);
    }
}

#[test]
fn liveness_reason_names_the_latest_write() {
    let live = Liveness {
        state_last_modified: Some(at(10 * M)),
        last_state_write: Some(at(2 * H)),
        digest_matches_state: None,
    };
    assert_eq!(live.write_after(Some(t0())), Some(at(2 * H)));
    let v = StaleLockPolicy::default().evaluate(&lock_at(t0()), &live, &[], at(5 * H));
    assert_eq!(v.level, Level::Warn);
    assert_eq!(
        v.reasons[1],
        "state written at 2025-03-04 11:00:00 UTC after the lock was taken: holder probably alive, so it is not proposed for unlock"
    );
}

#[test]
fn liveness_in_the_warn_band_is_mentioned() {
    let live = Liveness {
        state_last_modified: Some(at(30 * M)),
        ..Liveness::default()
    };
    let v = StaleLockPolicy::default().evaluate(&lock_at(t0()), &live, &[], at(2 * H));
    assert_eq!(v.level, Level::Warn);
    assert!(v.alive);
    assert!(v.reasons[1].ends_with("holder probably alive"));
}

#[test]
fn digest_mismatch_blocks_auto_expire_but_still_proposes() {
    let auto = StaleLockPolicy {
        auto_expire: true,
        ..StaleLockPolicy::default()
    };
    let mismatch = Liveness {
        digest_matches_state: Some(false),
        ..Liveness::default()
    };
    assert!(mismatch.digest_mismatch());
    assert!(!mismatch.holder_probably_alive(Some(t0())));
    let v = auto.evaluate(&lock_at(t0()), &mismatch, &[], at(5 * H));
    assert_eq!(v.level, Level::ProposeUnlock);
    assert!(!v.alive);
    assert!(
        v.reasons
            .last()
            .unwrap()
            .contains("does not match the state object"),
        "{:?}",
        v.reasons
    );
    // An unchecked digest does not block.
    let unchecked = auto.evaluate(&lock_at(t0()), &no_evidence(), &[], at(5 * H));
    assert_eq!(unchecked.level, Level::AutoExpire);
    // In the warn band the mismatch is reported too; when fresh it is not.
    let warn = auto.evaluate(&lock_at(t0()), &mismatch, &[], at(2 * H));
    assert!(warn.reasons.iter().any(|r| r.contains("digest")));
    let fresh = auto.evaluate(&lock_at(t0()), &mismatch, &[], at(M));
    assert!(!fresh.reasons.iter().any(|r| r.contains("digest")));
}

// ---------------------------------------------------------------- overrides

fn with_policy(json: &str) -> StaleLockPolicy {
    policy(&[("LOCK_POLICY", json)]).unwrap()
}

#[test]
fn globs_match_across_slashes() {
    let o = PathOverride::new("acme-tfstate/prod/*", None, None, Some(false)).unwrap();
    assert!(o.matches("acme-tfstate/prod/network.tfstate"));
    assert!(o.matches("acme-tfstate/prod/deep/nested/app.tfstate"));
    assert!(!o.matches("acme-tfstate/staging/app.tfstate"));
    assert!(!o.matches("other/acme-tfstate/prod/x"));
    let ws = PathOverride::new("acme-tfstate/env:/prod/*", None, None, Some(false)).unwrap();
    assert!(ws.matches("acme-tfstate/env:/prod/network/terraform.tfstate"));
    let alt = PathOverride::new("*/{prod,live}/**", None, None, Some(false)).unwrap();
    assert!(alt.matches("b/live/x/y"));
    let escaped = PathOverride::new(r"b/literal\*", None, None, Some(false)).unwrap();
    assert!(escaped.matches("b/literal*"));
    assert!(!escaped.matches("b/literally"));
    assert_eq!(o.pattern(), "acme-tfstate/prod/*");
}

#[test]
fn first_matching_override_wins_per_field() {
    let p = with_policy(
        r#"[
            {"path": "acme-tfstate/prod/db/*", "warn_after": "10m"},
            {"path": "acme-tfstate/prod/*", "warn_after": "30m", "expire_after": "2h", "auto_expire": false},
            {"path": "*", "expire_after": "8h", "auto_expire": true}
        ]"#,
    );
    let db = p.thresholds_for("acme-tfstate/prod/db/main.tfstate");
    assert_eq!(
        (db.warn_after, db.expire_after, db.auto_expire),
        (d(10 * M), d(2 * H), false)
    );
    assert_eq!(db.auto_expire_from.as_deref(), Some("acme-tfstate/prod/*"));
    assert_eq!(db.matched.len(), 3);

    let prod = p.thresholds_for("acme-tfstate/prod/net.tfstate");
    assert_eq!(
        (prod.warn_after, prod.expire_after, prod.auto_expire),
        (d(30 * M), d(2 * H), false)
    );

    let other = p.thresholds_for("acme-tfstate/staging/net.tfstate");
    assert_eq!(
        (other.warn_after, other.expire_after, other.auto_expire),
        (d(H), d(8 * H), true)
    );
    assert_eq!(other.matched, vec!["*"]);

    let none = StaleLockPolicy::default().thresholds_for("x/y");
    assert_eq!(none.auto_expire_from, None);
    assert!(none.matched.is_empty());
}

#[test]
fn never_auto_expire_override() {
    let mut p = with_policy(r#"[{"path": "acme-tfstate/prod/*", "auto_expire": false}]"#);
    p.auto_expire = true;
    let prod = tf_lock("acme-tfstate/prod/net.tfstate", LockCreated::Recorded(t0()));
    let v = p.evaluate(&prod, &no_evidence(), &[], at(10 * H));
    assert_eq!(v.level, Level::ProposeUnlock);
    assert!(
        v.reasons.iter().any(|r| r
            == "auto-expiry is disabled for this path by the LOCK_POLICY entry `acme-tfstate/prod/*`: a person must approve the unlock"),
        "{:?}",
        v.reasons
    );
    assert!(v.reasons[0].ends_with("(LOCK_POLICY `acme-tfstate/prod/*`)"));
    let dev = tf_lock("acme-tfstate/dev/net.tfstate", LockCreated::Recorded(t0()));
    assert_eq!(
        p.evaluate(&dev, &no_evidence(), &[], at(10 * H)).level,
        Level::AutoExpire
    );
}

#[test]
fn override_can_opt_a_path_into_auto_expire() {
    let p = with_policy(r#"[{"path": "scratch/*", "expire_after": "2h", "auto_expire": true}]"#);
    let lock = tf_lock("scratch/tmp.tfstate", LockCreated::Recorded(t0()));
    assert_eq!(
        p.evaluate(&lock, &no_evidence(), &[], at(2 * H)).level,
        Level::AutoExpire
    );
    assert_eq!(
        p.evaluate(&lock_at(t0()), &no_evidence(), &[], at(2 * H))
            .level,
        Level::Warn
    );
}

#[test]
fn combined_overrides_with_expire_before_warn_propose_at_expire() {
    // Each entry is valid alone; together they give warn 3h, expire 2h.
    let p = with_policy(
        r#"[{"path": "a/*", "warn_after": "3h"}, {"path": "*", "expire_after": "2h", "warn_after": "1h"}]"#,
    );
    let lock = tf_lock("a/x", LockCreated::Recorded(t0()));
    let th = p.thresholds_for("a/x");
    assert_eq!((th.warn_after, th.expire_after), (d(3 * H), d(2 * H)));
    assert_eq!(
        p.evaluate(&lock, &no_evidence(), &[], at(2 * H)).level,
        Level::ProposeUnlock
    );
    assert_eq!(
        p.evaluate(&lock, &no_evidence(), &[], at(H)).level,
        Level::Fresh
    );
}

// ---------------------------------------------------------------- configuration

#[test]
fn reads_every_variable() {
    let p = policy(&[
        ("WARN_AFTER", "90m"),
        ("EXPIRE_AFTER", "1d"),
        ("AUTO_EXPIRE", "TRUE"),
        ("REMIND_EVERY", "2h"),
        (
            "LOCK_POLICY",
            r#"[{"path": "acme-tfstate/prod/*", "warn_after": "30m", "expire_after": "2h", "auto_expire": false}]"#,
        ),
    ])
    .unwrap();
    assert_eq!(p.warn_after, d(90 * M));
    assert_eq!(p.expire_after, d(86_400));
    assert!(p.auto_expire);
    assert_eq!(p.remind_every, d(2 * H));
    assert_eq!(
        p.overrides,
        vec![PathOverride::new(
            "acme-tfstate/prod/*",
            Some(d(30 * M)),
            Some(d(2 * H)),
            Some(false)
        )
        .unwrap()]
    );
    // Blank values are unset.
    assert_eq!(
        policy(&[("WARN_AFTER", " "), ("LOCK_POLICY", "")]).unwrap(),
        StaleLockPolicy::default()
    );
    assert!(policy(&[("LOCK_POLICY", "[]")])
        .unwrap()
        .overrides
        .is_empty());
}

#[test]
fn global_variable_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("WARN_AFTER", "4x")], "WARN_AFTER: \"4x\" has an unknown unit"),
        (&[("EXPIRE_AFTER", "4")], "EXPIRE_AFTER: \"4\" ends in a number without a unit"),
        (&[("REMIND_EVERY", "h")], "REMIND_EVERY: \"h\" has a unit without a number"),
        (&[("AUTO_EXPIRE", "maybe")], "AUTO_EXPIRE: \"maybe\" is not a boolean"),
        (&[("WARN_AFTER", "0s")], "WARN_AFTER: \"0s\" is zero; expected a duration longer than 0s"),
        (&[("EXPIRE_AFTER", "0m")], "EXPIRE_AFTER: \"0m\" is zero"),
        (&[("REMIND_EVERY", "0h")], "REMIND_EVERY: \"0h\" is zero"),
        (
            &[("WARN_AFTER", "2h"), ("EXPIRE_AFTER", "1h")],
            "EXPIRE_AFTER: 1h is shorter than WARN_AFTER 2h; a lock must be warned about before it is proposed for unlock, so set EXPIRE_AFTER ≥ WARN_AFTER",
        ),
        (
            &[("EXPIRE_AFTER", "30m")],
            "EXPIRE_AFTER: 30m is shorter than the default WARN_AFTER 1h",
        ),
        (
            &[("WARN_AFTER", "5h")],
            "EXPIRE_AFTER: the default 4h is shorter than WARN_AFTER 5h",
        ),
    ];
    for (vars, expected) in cases {
        let err = one_error(vars);
        assert!(
            err.starts_with(expected),
            "{vars:?}\n got: {err}\nwant: {expected}"
        );
    }
    // Equal thresholds are fine: the lock goes straight to a proposal.
    assert!(policy(&[("WARN_AFTER", "2h"), ("EXPIRE_AFTER", "2h")]).is_ok());
}

#[test]
fn a_bad_threshold_does_not_cause_a_second_spurious_error() {
    // WARN_AFTER is bad, so the default stands in; comparing it with EXPIRE_AFTER would be noise.
    let errs = errors(&[("WARN_AFTER", "x"), ("EXPIRE_AFTER", "30m")]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("WARN_AFTER:"));
}

#[test]
fn all_problems_are_reported_at_once() {
    let errs = errors(&[
        ("WARN_AFTER", "x"),
        ("AUTO_EXPIRE", "sometimes"),
        ("REMIND_EVERY", "0s"),
        (
            "LOCK_POLICY",
            r#"[{"path": "a/*", "warn": "1h"}, {"path": "b/[", "auto_expire": false}]"#,
        ),
    ]);
    assert_eq!(errs.len(), 5, "{errs:#?}");
}

#[test]
fn lock_policy_errors_name_the_variable_the_entry_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "[{\"path\": \"a/*\",}]",
            "LOCK_POLICY: is not valid JSON (trailing comma at line 1 column 17); expected an array such as [{\"path\": \"acme-tfstate/prod/*\"",
        ),
        (
            r#"{"path": "a/*"}"#,
            "LOCK_POLICY: is a JSON object, not an array; expected an array such as",
        ),
        (
            r#"[{"path": "a/*", "warn": "1h"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): unknown field `warn`, expected one of `path`, `warn_after`, `expire_after`, `auto_expire`",
        ),
        (
            r#"[{"warn_after": "1h"}]"#,
            "LOCK_POLICY: entry 0: missing field `path`",
        ),
        (r#"["a/*"]"#, "LOCK_POLICY: entry 0: invalid type: string \"a/*\""),
        (
            r#"[{"path": "ok/*", "auto_expire": false}, {"path": "a/[", "auto_expire": false}]"#,
            "LOCK_POLICY: entry 1 (\"a/[\"): bad glob: error parsing glob 'a/[': unclosed character class",
        ),
        (
            r#"[{"path": "a/*", "warn_after": "30x"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): warn_after: \"30x\" has an unknown unit",
        ),
        (
            r#"[{"path": "a/*", "expire_after": 7200}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): invalid type: integer `7200`, expected a string",
        ),
        (
            r#"[{"path": "a/*", "expire_after": "0s"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): expire_after \"0s\" is zero",
        ),
        (
            r#"[{"path": "a/*", "auto_expire": "no"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): invalid type: string \"no\", expected a boolean",
        ),
        (
            r#"[{"path": "a/*", "warn_after": "3h", "expire_after": "2h"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): expire_after 2h is shorter than warn_after 3h; a lock must be warned about before it is proposed for unlock",
        ),
        (
            r#"[{"path": "a/*", "warn_after": "5h"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): expire_after 4h (from EXPIRE_AFTER) is shorter than warn_after 5h;",
        ),
        (
            r#"[{"path": "a/*", "expire_after": "30m"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): expire_after 30m is shorter than warn_after 1h (from WARN_AFTER);",
        ),
        (
            r#"[{"path": "a/*"}]"#,
            "LOCK_POLICY: entry 0 (\"a/*\"): sets none of `warn_after`, `expire_after`, `auto_expire`, so it would have no effect",
        ),
        (
            r#"[{"path": " ", "auto_expire": false}]"#,
            "LOCK_POLICY: entry 0 (\" \"): `path` is empty",
        ),
    ];
    for (json, expected) in cases {
        let err = one_error(&[("LOCK_POLICY", json)]);
        assert!(
            err.starts_with(expected),
            "{json}\n got: {err}\nwant: {expected}"
        );
    }
}

#[test]
fn lock_policy_reports_every_bad_entry_and_keeps_none_of_them() {
    let mut e = env(&[(
        "LOCK_POLICY",
        r#"[{"path": "good/*", "auto_expire": false},
            {"path": "a/*", "warn_after": "x", "expire_after": "y"},
            {"path": "b/*", "nope": 1}]"#,
    )]);
    let p = StaleLockPolicy::from_env(&mut e);
    assert_eq!(p.overrides.len(), 1);
    let errs = e.finish(()).unwrap_err().0;
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(text[0].starts_with("LOCK_POLICY: entry 1 (\"a/*\"): warn_after:"));
    assert!(text[1].starts_with("LOCK_POLICY: entry 1 (\"a/*\"): expire_after:"));
    assert!(text[2].starts_with("LOCK_POLICY: entry 2 (\"b/*\"): unknown field `nope`"));
    assert!(errs.iter().all(|e| e.variable == "LOCK_POLICY"));
}

#[test]
fn entries_that_set_no_threshold_are_not_blamed_for_the_globals() {
    let errs = errors(&[
        ("WARN_AFTER", "5h"),
        ("LOCK_POLICY", r#"[{"path": "a/*", "auto_expire": false}]"#),
    ]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("EXPIRE_AFTER:"));
}

#[test]
fn entry_order_check_is_skipped_when_globals_are_invalid() {
    let errs = errors(&[
        ("WARN_AFTER", "bad"),
        ("LOCK_POLICY", r#"[{"path": "a/*", "expire_after": "30m"}]"#),
    ]);
    assert_eq!(errs.len(), 1, "{errs:?}");
}

// ---------------------------------------------------------------- alert dedup

fn state(lock_id: &str, level: Level, last_sent: DateTime<Utc>) -> AlertState {
    AlertState {
        lock_id: lock_id.to_owned(),
        level,
        first_alerted: t0(),
        last_sent,
        snoozed_until: None,
        open_proposals: Vec::new(),
    }
}

fn send(kind: AlertKind, level: Level) -> AlertAction {
    AlertAction::Send { kind, level }
}

/// (previous state, lock id, level, now, expected action)
type Case<'a> = (
    Option<&'a AlertState>,
    &'a str,
    Level,
    DateTime<Utc>,
    AlertAction,
);

#[test]
fn alert_action_table() {
    let remind = d(H);
    let warn_sent = state("L1", Level::Warn, at(H));
    let stale_sent = state("L1", Level::ProposeUnlock, at(H));
    let snoozed = AlertState {
        snoozed_until: Some(at(10 * H)),
        ..stale_sent.clone()
    };
    // (previous, lock id, level, now, expected)
    let cases: Vec<Case> = vec![
        // Fresh: never.
        (None, "L1", Level::Fresh, at(H), AlertAction::None),
        (
            Some(&warn_sent),
            "L1",
            Level::Fresh,
            at(9 * H),
            AlertAction::None,
        ),
        // Nothing sent yet, or sent for another lock: New.
        (
            None,
            "L1",
            Level::Warn,
            at(H),
            send(AlertKind::New, Level::Warn),
        ),
        (
            None,
            "L1",
            Level::ProposeUnlock,
            at(H),
            send(AlertKind::New, Level::ProposeUnlock),
        ),
        (
            Some(&warn_sent),
            "L2",
            Level::Warn,
            at(H),
            send(AlertKind::New, Level::Warn),
        ),
        (
            Some(&snoozed),
            "L2",
            Level::Warn,
            at(2 * H),
            send(AlertKind::New, Level::Warn),
        ),
        // Level rose: Escalated, even right after the last alert.
        (
            Some(&warn_sent),
            "L1",
            Level::ProposeUnlock,
            at(H),
            send(AlertKind::Escalated, Level::ProposeUnlock),
        ),
        (
            Some(&stale_sent),
            "L1",
            Level::AutoExpire,
            at(H + 1),
            send(AlertKind::Escalated, Level::AutoExpire),
        ),
        // Same level: reminder only after remind_every.
        (
            Some(&warn_sent),
            "L1",
            Level::Warn,
            at(H),
            AlertAction::None,
        ),
        (
            Some(&warn_sent),
            "L1",
            Level::Warn,
            at(2 * H - 1),
            AlertAction::None,
        ),
        (
            Some(&warn_sent),
            "L1",
            Level::Warn,
            at(2 * H),
            send(AlertKind::Reminder, Level::Warn),
        ),
        (
            Some(&stale_sent),
            "L1",
            Level::ProposeUnlock,
            at(5 * H),
            send(AlertKind::Reminder, Level::ProposeUnlock),
        ),
        // Level fell (liveness appeared): reminder cadence at the lower level.
        (
            Some(&stale_sent),
            "L1",
            Level::Warn,
            at(H + 30 * M),
            AlertAction::None,
        ),
        (
            Some(&stale_sent),
            "L1",
            Level::Warn,
            at(2 * H),
            send(AlertKind::Reminder, Level::Warn),
        ),
        // Snoozed: nothing, not even escalation; after the snooze, normal rules.
        (
            Some(&snoozed),
            "L1",
            Level::ProposeUnlock,
            at(5 * H),
            AlertAction::None,
        ),
        (
            Some(&snoozed),
            "L1",
            Level::AutoExpire,
            at(10 * H - 1),
            AlertAction::None,
        ),
        (
            Some(&snoozed),
            "L1",
            Level::ProposeUnlock,
            at(10 * H),
            send(AlertKind::Reminder, Level::ProposeUnlock),
        ),
        (
            Some(&snoozed),
            "L1",
            Level::AutoExpire,
            at(10 * H),
            send(AlertKind::Escalated, Level::AutoExpire),
        ),
        // last_sent in the future (skew between overlapping sweeps): nothing.
        (Some(&warn_sent), "L1", Level::Warn, t0(), AlertAction::None),
    ];
    for (i, (previous, id, level, now, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            alert_action(previous, id, level, now, remind),
            expected,
            "case {i}: {previous:?} {id} {level} {now}"
        );
    }
}

#[test]
fn alert_state_after_send_and_resolved() {
    let first = AlertState::after_send(None, "L1", Level::Warn, at(H));
    assert_eq!(first, state("L1", Level::Warn, at(H)).with_first(at(H)));
    let mut snoozed = first.clone();
    snoozed.snoozed_until = Some(at(3 * H));
    let second = AlertState::after_send(Some(&snoozed), "L1", Level::ProposeUnlock, at(4 * H));
    assert_eq!(second.first_alerted, at(H));
    assert_eq!(second.last_sent, at(4 * H));
    assert_eq!(second.level, Level::ProposeUnlock);
    assert_eq!(second.snoozed_until, Some(at(3 * H)));
    let other = AlertState::after_send(Some(&second), "L2", Level::Warn, at(5 * H));
    assert_eq!(
        other,
        state("L2", Level::Warn, at(5 * H)).with_first(at(5 * H))
    );

    assert!(first.wants_resolved_message());
    assert!(second.wants_resolved_message());
    assert!(!state("L", Level::Fresh, t0()).wants_resolved_message());
}

#[test]
fn alert_state_round_trips_as_json() {
    let s = AlertState {
        snoozed_until: Some(at(2 * H)),
        ..state("L1", Level::ProposeUnlock, at(H))
    };
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"level\":\"propose-unlock\""), "{json}");
    assert_eq!(serde_json::from_str::<AlertState>(&json).unwrap(), s);
    // snoozed_until may be absent.
    let bare: AlertState = serde_json::from_str(
        r#"{"lock_id":"L","level":"warn","first_alerted":"2025-03-04T09:00:00Z","last_sent":"2025-03-04T10:00:00Z"}"#,
    )
    .unwrap();
    assert_eq!(bare.snoozed_until, None);
    assert_eq!(
        serde_json::to_string(&AlertKind::Escalated).unwrap(),
        "\"escalated\""
    );
}

impl AlertState {
    fn with_first(mut self, t: DateTime<Utc>) -> Self {
        self.first_alerted = t;
        self
    }
}
