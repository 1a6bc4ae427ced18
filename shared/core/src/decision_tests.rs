//! The decision as data: one row per scenario of issue 11 (and the ordinary ones around them).

use chrono::TimeZone;

use super::*;
use crate::model::LockKind;
use crate::model::{DeletePrecondition, LockCreated, LockLocation};
use crate::policy::AlertKind;

const H: i64 = 3600;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

const LOCK_ID: &str = "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7";

fn terraform_lock() -> LockRecord {
    let path = "acme-tfstate/env:/prod/network/terraform.tfstate";
    LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: LockLocation::DynamoDb {
            table: "tf-locks".to_owned(),
            key_attribute: "LockID".to_owned(),
            key: path.to_owned(),
        },
        lock_id: LOCK_ID.to_owned(),
        who: Some("runner@ip-10-0-1-23".to_owned()),
        operation: Some("OperationTypeApply".to_owned()),
        tool_version: Some("1.10.5".to_owned()),
        created: LockCreated::Recorded(t0()),
        state_path: path.to_owned(),
        info: Some(String::new()),
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals("{}".to_owned()),
        raw: "{}".to_owned(),
    }
}

fn gyro_lock() -> LockRecord {
    LockRecord {
        kind: LockKind::GyroDynamoDb,
        location: LockLocation::DynamoDb {
            table: "gyro-locks".to_owned(),
            key_attribute: "LockKey".to_owned(),
            key: "default".to_owned(),
        },
        created: LockCreated::FirstSeen(t0()),
        state_path: "default".to_owned(),
        precondition: DeletePrecondition::GyroIdEquals(LOCK_ID.to_owned()),
        ..terraform_lock()
    }
}

/// A lock stored at the prod path whose own JSON claims a dev path.
fn lock_claiming_dev() -> LockRecord {
    LockRecord {
        raw: r#"{"ID":"f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7","Created":"2025-03-04T09:00:00Z","Path":"acme-tfstate/env:/dev/network/terraform.tfstate"}"#.to_owned(),
        ..terraform_lock()
    }
}

/// AUTO_EXPIRE on, but never for prod.
fn prod_protected() -> StaleLockPolicy {
    StaleLockPolicy {
        overrides: vec![crate::policy::PathOverride::new(
            "acme-tfstate/env:/prod/*",
            None,
            None,
            Some(false),
        )
        .unwrap()],
        ..auto_expire()
    }
}

fn auto_expire() -> StaleLockPolicy {
    StaleLockPolicy {
        auto_expire: true,
        ..StaleLockPolicy::default()
    }
}

fn written(at: DateTime<Utc>) -> Liveness {
    Liveness {
        state_last_modified: Some(at),
        ..Liveness::default()
    }
}

fn throttled_head() -> EvidenceGap {
    EvidenceGap::unreadable(
        EvidenceSource::StateObject,
        "head state object: ThrottlingException: Rate exceeded",
    )
}

fn denied_ledger() -> EvidenceGap {
    EvidenceGap::unreadable(
        EvidenceSource::StateWriteLedger,
        "read last state write from ledger: AccessDeniedException (HTTP 400)",
    )
}

/// The lock's state bucket is not in the deployment's configured state buckets.
fn uncovered_state() -> EvidenceGap {
    crate::coverage::coverage(
        &[crate::BucketScope::parse("other-bucket").unwrap()],
        &crate::StatePath::parse(&terraform_lock().state_path).unwrap(),
    )
    .gap()
    .unwrap()
}

fn proposal(id: &str, lock_id: &str, proposed: DateTime<Utc>) -> OpenProposal {
    OpenProposal {
        proposal_id: id.to_owned(),
        lock_id: lock_id.to_owned(),
        proposed_at: proposed,
        expires_at: proposed + chrono::Duration::hours(24),
    }
}

fn alerted(level: Level, last_sent: DateTime<Utc>, open: Vec<OpenProposal>) -> AlertState {
    AlertState {
        lock_id: LOCK_ID.to_owned(),
        level,
        first_alerted: at(H),
        last_sent,
        snoozed_until: None,
        open_proposals: open,
    }
}

struct Case {
    name: &'static str,
    policy: StaleLockPolicy,
    lock: LockRecord,
    liveness: Liveness,
    gaps: Vec<EvidenceGap>,
    alert: Option<AlertState>,
    snoozed_until: Option<DateTime<Utc>>,
    unlocks_paused: bool,
    now: DateTime<Utc>,
    // Expected:
    level: Level,
    expire: bool,
    send: Option<(AlertKind, Level)>,
    propose: Propose,
    withdraw: &'static [&'static str],
    /// A reason sentence must contain each of these.
    reasons: &'static [&'static str],
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        policy: StaleLockPolicy::default(),
        lock: terraform_lock(),
        liveness: Liveness::default(),
        gaps: Vec::new(),
        alert: None,
        snoozed_until: None,
        unlocks_paused: false,
        now: at(5 * H),
        level: Level::Fresh,
        expire: false,
        send: None,
        propose: Propose::No,
        withdraw: &[],
        reasons: &[],
    }
}

fn cases() -> Vec<Case> {
    let p1 = proposal("P1", LOCK_ID, at(4 * H + 30 * 60));
    vec![
        Case {
            now: at(30 * 60),
            ..case("young: nothing")
        },
        Case {
            policy: auto_expire(),
            gaps: vec![uncovered_state()],
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &[
                "cannot tell — the state bucket `acme-tfstate` is not covered by this deployment (StateBuckets/StateKeyPrefix)",
            ],
            ..case("state bucket not covered by the deployment, silent, AUTO_EXPIRE on: proposed, never expired")
        },
        Case {
            now: at(2 * H),
            level: Level::Warn,
            send: Some((AlertKind::New, Level::Warn)),
            ..case("past WARN_AFTER: one alert, no proposal")
        },
        Case {
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &["auto-expiry is off"],
            ..case("past EXPIRE_AFTER, silent, AUTO_EXPIRE off: propose")
        },
        Case {
            policy: auto_expire(),
            level: Level::AutoExpire,
            expire: true,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            ..case("past EXPIRE_AFTER, every source read, silent, AUTO_EXPIRE on: expire")
        },
        Case {
            policy: auto_expire(),
            liveness: written(at(4 * H + 50 * 60)),
            level: Level::Warn,
            send: Some((AlertKind::New, Level::Warn)),
            reasons: &["holder probably alive"],
            ..case("state written after the lock was taken: alive, never proposed")
        },
        // Item 2: "could not check" is never "dead".
        Case {
            policy: auto_expire(),
            gaps: vec![throttled_head()],
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &[
                "could not check the state object (head state object: ThrottlingException: Rate exceeded)",
                "although auto-expiry is on",
            ],
            ..case("state object unreadable (throttled), AUTO_EXPIRE on: propose, not expire")
        },
        Case {
            policy: auto_expire(),
            gaps: vec![denied_ledger()],
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &["could not check the last state write recorded from the stream (read last state write from ledger: AccessDeniedException"],
            ..case("ledger unreadable (denied), AUTO_EXPIRE on: propose, not expire")
        },
        Case {
            policy: auto_expire(),
            gaps: vec![EvidenceGap::missing(
                EvidenceSource::StateWriteLedger,
                "lock table tf-locks has no stream",
            )],
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &["no liveness evidence from the last state write recorded from the stream: lock table tf-locks has no stream"],
            ..case("a missing evidence source, AUTO_EXPIRE on: propose, not expire")
        },
        Case {
            policy: auto_expire(),
            lock: gyro_lock(),
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &["a Gyro lock has no state object"],
            ..case("Gyro lock (no liveness source at all), AUTO_EXPIRE on: propose, not expire")
        },
        Case {
            policy: auto_expire(),
            liveness: written(at(4 * H + 50 * 60)),
            gaps: vec![denied_ledger()],
            level: Level::Warn,
            send: Some((AlertKind::New, Level::Warn)),
            reasons: &["holder probably alive"],
            ..case("one source unreadable but another shows a write: alive")
        },
        Case {
            now: at(2 * H),
            gaps: vec![throttled_head()],
            level: Level::Warn,
            send: Some((AlertKind::New, Level::Warn)),
            reasons: &["could not check the state object"],
            ..case("warn band with a gap: the alert names it")
        },
        Case {
            policy: auto_expire(),
            liveness: Liveness {
                digest_matches_state: Some(false),
                ..Liveness::default()
            },
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &["state digest"],
            ..case("digest contradicts the state object: a person checks")
        },
        // Item 3: policy by location, a mismatching self-declared path is suspicious.
        Case {
            policy: prod_protected(),
            lock: lock_claiming_dev(),
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &[
                "disabled for this path by the LOCK_POLICY entry `acme-tfstate/env:/prod/*`",
                "suspicious: the lock's own JSON names the state path \"acme-tfstate/env:/dev/network/terraform.tfstate\"",
            ],
            ..case("a prod lock claiming a dev path gets prod's policy and is suspicious")
        },
        Case {
            policy: auto_expire(),
            lock: lock_claiming_dev(),
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &["never releases it automatically"],
            ..case("a path mismatch alone blocks auto-expiry")
        },
        // Item 1: proposals and signs of life.
        Case {
            liveness: written(at(5 * H + 10 * 60)),
            alert: Some(alerted(Level::ProposeUnlock, at(4 * H + 30 * 60), vec![p1.clone()])),
            now: at(5 * H + 15 * 60),
            level: Level::Warn,
            withdraw: &["P1"],
            reasons: &["holder probably alive"],
            ..case("state written after the proposal: withdraw it")
        },
        Case {
            alert: Some(alerted(Level::ProposeUnlock, at(4 * H + 30 * 60), vec![p1.clone()])),
            now: at(5 * H + 31 * 60),
            level: Level::ProposeUnlock,
            send: Some((AlertKind::Reminder, Level::ProposeUnlock)),
            propose: Propose::Reoffer(p1.clone()),
            ..case("reminder while a proposal is open: re-offer it, no second proposal")
        },
        Case {
            alert: Some(alerted(Level::ProposeUnlock, at(29 * H), vec![p1.clone()])),
            now: at(30 * H),
            level: Level::ProposeUnlock,
            send: Some((AlertKind::Reminder, Level::ProposeUnlock)),
            propose: Propose::New,
            ..case("reminder after the open proposal expired: a new one")
        },
        Case {
            alert: Some(alerted(
                Level::ProposeUnlock,
                at(4 * H + 30 * 60),
                vec![proposal("P0", "another-lock-id", at(4 * H))],
            )),
            now: at(5 * H + 31 * 60),
            level: Level::ProposeUnlock,
            send: Some((AlertKind::Reminder, Level::ProposeUnlock)),
            propose: Propose::New,
            withdraw: &["P0"],
            ..case("an open proposal for an earlier lock at the same place: withdrawn")
        },
        Case {
            policy: auto_expire(),
            snoozed_until: Some(at(6 * H)),
            level: Level::AutoExpire,
            ..case("snoozed: no alert and no auto-expiry until the snooze ends")
        },
        Case {
            policy: auto_expire(),
            snoozed_until: Some(at(4 * H)),
            level: Level::AutoExpire,
            expire: true,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            ..case("snooze over: auto-expiry resumes")
        },
        // The kill switch (issue 17): nothing is expired; what would be is proposed, saying why.
        Case {
            policy: auto_expire(),
            unlocks_paused: true,
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &[
                "unlocks are paused on this stack (UnlocksPaused=true): lockreaper does not release it although auto-expiry would",
                "refused without being used up",
            ],
            ..case("paused: a lock auto-expiry would release is proposed instead")
        },
        Case {
            unlocks_paused: true,
            level: Level::ProposeUnlock,
            send: Some((AlertKind::New, Level::ProposeUnlock)),
            propose: Propose::New,
            reasons: &[
                "auto-expiry is off (AUTO_EXPIRE=false)",
                "unlocks are paused on this stack (UnlocksPaused=true): nothing is deleted, not even on approval",
            ],
            ..case("paused: a proposal's alert says approvals are refused while paused")
        },
        Case {
            policy: auto_expire(),
            unlocks_paused: true,
            now: at(2 * H),
            level: Level::Warn,
            send: Some((AlertKind::New, Level::Warn)),
            ..case("paused: a warning stays a warning")
        },
        Case {
            policy: auto_expire(),
            unlocks_paused: true,
            liveness: written(at(5 * H + 10 * 60)),
            alert: Some(alerted(Level::ProposeUnlock, at(4 * H + 30 * 60), vec![p1.clone()])),
            now: at(5 * H + 15 * 60),
            level: Level::Warn,
            withdraw: &["P1"],
            reasons: &["holder probably alive"],
            ..case("paused: a sign of life still withdraws a proposal (a withdrawal deletes nothing)")
        },
    ]
}

#[test]
fn decision_table() {
    for c in cases() {
        let evidence = LockEvidence {
            lock: &c.lock,
            liveness: &c.liveness,
            gaps: &c.gaps,
            alert: c.alert.as_ref(),
            snoozed_until: c.snoozed_until,
            open_proposals: c.alert.as_ref().map_or(&[], |a| &a.open_proposals),
            unlocks_paused: c.unlocks_paused,
        };
        let plan = decide(&c.policy, &evidence, c.now);
        let name = c.name;
        assert_eq!(plan.verdict.level, c.level, "{name}: {plan:#?}");
        assert_eq!(plan.expire, c.expire, "{name}: {plan:#?}");
        let expected_alert = match c.send {
            Some((kind, level)) => AlertAction::Send { kind, level },
            None => AlertAction::None,
        };
        assert_eq!(plan.alert, expected_alert, "{name}: {plan:#?}");
        assert_eq!(plan.propose, c.propose, "{name}: {plan:#?}");
        let withdrawn: Vec<&str> = plan
            .withdraw
            .iter()
            .map(|w| w.proposal.proposal_id.as_str())
            .collect();
        assert_eq!(withdrawn, c.withdraw, "{name}: {plan:#?}");
        for expected in c.reasons {
            assert!(
                plan.verdict.reasons.iter().any(|r| r.contains(expected)),
                "{name}: no reason contains {expected:?}: {:#?}",
                plan.verdict.reasons
            );
        }
        // The safety rule, whatever the row: a gap or a sign of life never expires.
        if !plan.verdict.gaps.is_empty() || plan.verdict.alive {
            assert!(!plan.expire, "{name}");
            assert!(plan.verdict.level < Level::AutoExpire, "{name}");
        }
        // The kill switch, whatever the row: nothing expires, and nothing claims it will.
        if c.unlocks_paused {
            assert!(!plan.expire, "{name}");
            assert!(plan.verdict.level < Level::AutoExpire, "{name}");
            assert!(
                !plan
                    .verdict
                    .reasons
                    .iter()
                    .any(|r| r.contains("lockreaper releases it")),
                "{name}: {:#?}",
                plan.verdict.reasons
            );
        }
    }
}

#[test]
fn withdrawal_says_when_the_holder_wrote_and_when_it_was_proposed() {
    let lock = terraform_lock();
    let p1 = proposal("P1", LOCK_ID, at(4 * H + 30 * 60));
    let plan = decide(
        &StaleLockPolicy::default(),
        &LockEvidence {
            lock: &lock,
            liveness: &written(at(5 * H)),
            gaps: &[],
            alert: None,
            snoozed_until: None,
            open_proposals: std::slice::from_ref(&p1),
            unlocks_paused: false,
        },
        at(5 * H + 60),
    );
    assert_eq!(
        plan.withdraw[0].reason,
        "state written at 2025-03-04 14:00:00 UTC, after the unlock was proposed at 2025-03-04 13:30:00 UTC: the holder is alive"
    );
}

/// force-unlock's final check: the same decision, with the approved proposal as the only open one.
#[test]
fn approval_check_table() {
    let p1 = proposal("P1", LOCK_ID, at(4 * H + 30 * 60));
    let policy = StaleLockPolicy::default();
    let rows: Vec<(&str, LockRecord, Liveness, Vec<EvidenceGap>, &str)> = vec![
        ("silent since the proposal", terraform_lock(), Liveness::default(), vec![], "proceed"),
        (
            "state write before the lock was taken",
            terraform_lock(),
            written(at(-60)),
            vec![],
            "proceed",
        ),
        (
            "the holder resumed writing state after the proposal (the 4h30m RDS create)",
            terraform_lock(),
            written(at(5 * H)),
            vec![],
            "withdraw",
        ),
        (
            "a state write recorded from the stream after the proposal",
            terraform_lock(),
            Liveness {
                last_state_write: Some(at(5 * H)),
                ..Liveness::default()
            },
            vec![],
            "withdraw",
        ),
        (
            "a write after the lock was taken but before the proposal (proposed on incomplete evidence)",
            terraform_lock(),
            written(at(3 * H)),
            vec![],
            "withdraw",
        ),
        (
            "the state object cannot be read now",
            terraform_lock(),
            Liveness::default(),
            vec![throttled_head()],
            "cannot-confirm",
        ),
        (
            "a lock whose state bucket is not covered, approved by a person the alert told so",
            terraform_lock(),
            Liveness::default(),
            vec![uncovered_state()],
            "proceed",
        ),
        (
            "an uncovered state bucket does not hide a state write seen on the stream",
            terraform_lock(),
            written(at(5 * H)),
            vec![uncovered_state()],
            "withdraw",
        ),
        (
            "a Gyro lock a person approved knowing it has no liveness source",
            gyro_lock(),
            Liveness::default(),
            vec![],
            "proceed",
        ),
    ];
    for (name, lock, liveness, gaps, expected) in rows {
        let check = check_approval(&policy, &lock, &liveness, &gaps, &p1, false, at(5 * H + 60));
        assert_eq!(check_name(&check), expected, "{name}: {check:?}");
        // The kill switch answers first, whatever the evidence: it touches nothing (not even a
        // withdrawal), and the approval stays usable until the proposal expires.
        let paused = check_approval(&policy, &lock, &liveness, &gaps, &p1, true, at(5 * H + 60));
        assert_eq!(
            paused,
            ApprovalCheck::UnlocksPaused {
                usable_until: p1.expires_at
            },
            "{name}"
        );
    }
    assert_eq!(unlocks_paused_check(false, &p1), None);
    assert_eq!(
        unlocks_paused_check(true, &p1),
        Some(ApprovalCheck::UnlocksPaused {
            usable_until: at(28 * H + 30 * 60)
        })
    );
    let ApprovalCheck::CannotConfirm(text) = check_approval(
        &policy,
        &terraform_lock(),
        &Liveness::default(),
        &[throttled_head()],
        &p1,
        false,
        at(5 * H),
    ) else {
        panic!("expected cannot-confirm");
    };
    assert!(text.contains("ThrottlingException"), "{text}");
}

fn check_name(check: &ApprovalCheck) -> &'static str {
    match check {
        ApprovalCheck::Proceed => "proceed",
        ApprovalCheck::Withdraw(_) => "withdraw",
        ApprovalCheck::CannotConfirm(_) => "cannot-confirm",
        ApprovalCheck::UnlocksPaused { .. } => "unlocks-paused",
    }
}
