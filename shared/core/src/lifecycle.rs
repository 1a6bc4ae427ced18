//! The lock lifecycle model, whatever the event source: a lock was acquired, a lock was released
//! (with how long it was held, when known), a state was written (its holder is alive), or an event
//! could not be understood. Metrics ([`crate::metrics`]) count only this model.
//!
//! Two sources map into it:
//!
//! | source | acquired | released | state written |
//! | --- | --- | --- | --- |
//! | a lock table's DynamoDB stream ([`crate::stream`]) | INSERT of a lock item | REMOVE of a lock item | INSERT/MODIFY of the `-md5` digest item |
//! | a state bucket's S3 events through EventBridge ([`crate::s3_events`]) | `Object Created` of `<key>.tflock` | `Object Deleted` of `<key>.tflock` | `Object Created` of the state object `<key>` |
//!
//! The store shows in the `LockKind` dimension value (`terraform-dynamodb`, `gyro-dynamodb`,
//! `terraform-s3-lockfile`) and the container (table or bucket) in `LockTable`: one set of metric
//! names and dimensions for both sources.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::LockKind;

/// How a lock came to be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Release {
    /// Deleted by its holder (or anyone else we cannot tell apart from it).
    Normal,
    /// Deleted by the store's own expiry: DynamoDB's Time to Live process (the stream record's
    /// `userIdentity` says so), or an S3 Lifecycle expiration rule (the event's `reason` says
    /// `Lifecycle Expiration`).
    Expired,
    /// Deleted by lockreaper's force-unlock, which recorded that in the ledger before deleting.
    Forced,
}

impl Release {
    pub fn as_str(self) -> &'static str {
        match self {
            Release::Normal => "normal",
            Release::Expired => "ttl-expired",
            Release::Forced => "forced",
        }
    }
}

/// How long a lock taken at `created` and removed at `removed_at` was held: whole seconds (the
/// removal time has only second precision on the stream), never negative.
pub fn hold_time(created: DateTime<Utc>, removed_at: DateTime<Utc>) -> Duration {
    let millis = (removed_at - created).num_milliseconds();
    if millis <= 0 {
        return Duration::ZERO;
    }
    // Round half up to whole seconds, in integers.
    Duration::from_secs(((millis as u64).saturating_add(500)) / 1000)
}

/// What an event means for a lock's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "lifecycle", rename_all = "kebab-case")]
pub enum Lifecycle {
    Acquired,
    /// `hold`: `None` when the acquisition time is unknown (never a guess, never negative).
    Released {
        release: Release,
        hold: Option<Duration>,
    },
    StateWritten,
    /// Counted as `UnparseableRecords`.
    Unparseable,
    /// Nothing to count (a Gyro lock item modified in place, a digest removed, a state object deleted).
    Uncounted,
}

/// One lifecycle event: what metrics need to count it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifecycleEvent {
    /// The lock table or state bucket: the `LockTable` dimension.
    pub container: String,
    /// The lock kind (and so the store): the `LockKind` dimension; `None` for unparseable events.
    pub kind: Option<LockKind>,
    /// When it happened (the metric's minute).
    pub at: DateTime<Utc>,
    pub lifecycle: Lifecycle,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hold_times_are_whole_seconds_and_never_negative() {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
        assert_eq!(hold_time(t, t), Duration::ZERO);
        assert_eq!(
            hold_time(t, t - chrono::Duration::seconds(5)),
            Duration::ZERO
        );
        assert_eq!(
            hold_time(t, t + chrono::Duration::milliseconds(1_499)),
            Duration::from_secs(1)
        );
        assert_eq!(
            hold_time(t, t + chrono::Duration::milliseconds(1_500)),
            Duration::from_secs(2)
        );
    }
}
