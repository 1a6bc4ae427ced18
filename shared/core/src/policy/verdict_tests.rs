//! Policy cases: every level boundary, overrides, liveness, digest and unknown age.

use crate::policy::test_support::*;
use crate::policy::*;

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
