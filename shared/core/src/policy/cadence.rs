//! Alert cadence: one alert per lock per level, reminders every `REMIND_EVERY`, none while
//! snoozed, and the alert state stored between sweeps.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Level;

/// What the stored alert state of a lock looks like (kept in the ledger as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// The lock ID the alerts were about; a different ID at the same location is a new lock.
    pub lock_id: String,
    /// The level of the last alert sent.
    pub level: Level,
    pub first_alerted: DateTime<Utc>,
    pub last_sent: DateTime<Utc>,
    /// No alerts for this lock ID until then.
    #[serde(default)]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// Proposals offered for this lock ID and not yet withdrawn by the reaper (used or denied
    /// ones may still be listed: the approvals path records those on the proposal itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_proposals: Vec<crate::decision::OpenProposal>,
}

impl AlertState {
    /// The state to store after sending an alert at `level`: keeps `first_alerted` and any snooze
    /// when the previous state is for the same lock ID, starts afresh otherwise.
    pub fn after_send(
        previous: Option<&AlertState>,
        lock_id: &str,
        level: Level,
        now: DateTime<Utc>,
    ) -> AlertState {
        match previous {
            Some(p) if p.lock_id == lock_id => AlertState {
                lock_id: lock_id.to_owned(),
                level,
                first_alerted: p.first_alerted,
                last_sent: now,
                snoozed_until: p.snoozed_until,
                open_proposals: p.open_proposals.clone(),
            },
            _ => AlertState {
                lock_id: lock_id.to_owned(),
                level,
                first_alerted: now,
                last_sent: now,
                snoozed_until: None,
                open_proposals: Vec::new(),
            },
        }
    }

    /// Whether a lock with this stored state deserves a "lock released" message when it goes away
    /// (or is replaced by a lock with another ID).
    pub fn wants_resolved_message(&self) -> bool {
        self.level >= Level::Warn
    }
}

/// Why an alert is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    /// First alert for this lock ID.
    New,
    /// The lock reached a higher level than the last alert.
    Escalated,
    /// Same (or lower) level, `remind_every` after the last alert.
    Reminder,
}

/// What this sweep should do about alerting for one lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    None,
    Send { kind: AlertKind, level: Level },
}

/// Decides whether to alert about a lock with ID `lock_id` judged at `level`, given the state
/// stored after the last alert for its location.
///
/// - `Fresh`: never.
/// - No stored state, or stored state for another lock ID: `New` (snoozes do not carry over).
/// - Snoozed (`now < snoozed_until`): nothing, not even an escalation.
/// - Level above the stored one: `Escalated`.
/// - Otherwise, `now − last_sent ≥ remind_every`: `Reminder` at the current level. A level that
///   fell (liveness appeared) is reported by that reminder, so a later rise escalates again.
/// - A `last_sent` in the future (clock skew between overlapping sweeps) sends nothing.
///
/// When the stored lock ID differs, the caller should also send the resolved message for the old
/// lock ([`AlertState::wants_resolved_message`]).
pub fn alert_action(
    previous: Option<&AlertState>,
    lock_id: &str,
    level: Level,
    now: DateTime<Utc>,
    remind_every: Duration,
) -> AlertAction {
    if level == Level::Fresh {
        return AlertAction::None;
    }
    let send = |kind| AlertAction::Send { kind, level };
    let previous = match previous {
        Some(p) if p.lock_id == lock_id => p,
        _ => return send(AlertKind::New),
    };
    if previous.snoozed_until.is_some_and(|until| now < until) {
        return AlertAction::None;
    }
    if level > previous.level {
        return send(AlertKind::Escalated);
    }
    match (now - previous.last_sent).to_std() {
        Ok(since) if since >= remind_every => send(AlertKind::Reminder),
        _ => AlertAction::None,
    }
}

#[cfg(test)]
#[path = "cadence_tests.rs"]
mod tests;
