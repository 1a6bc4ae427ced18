//! The alert dedup/escalation table and the stored alert state.

use crate::policy::test_support::*;
use crate::policy::*;

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
