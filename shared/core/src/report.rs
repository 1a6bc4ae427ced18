//! What a sweep found, in the shape people and scripts read: one [`LockSummary`] per lock with its
//! age, plus every lock that could not be parsed and every table or bucket that could not be read.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::format_duration;
use crate::model::{LockCreated, LockRecord};

/// One lock as a person reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockSummary {
    pub kind: &'static str,
    pub location: String,
    /// The table or bucket: the unit of configuration and the `LockTable` metric dimension.
    pub container: String,
    pub lock_id: String,
    pub state_path: String,
    pub who: Option<String>,
    pub operation: Option<String>,
    pub tool_version: Option<String>,
    pub created: Option<DateTime<Utc>>,
    /// `recorded` (the lock says so), `first-seen` (lockreaper saw it first then) or `unknown`.
    pub created_source: &'static str,
    pub age_seconds: Option<u64>,
    /// The age as people write it, e.g. `3h12m`.
    pub age: Option<String>,
    pub unlock_command: String,
}

impl LockSummary {
    pub fn new(lock: &LockRecord, now: DateTime<Utc>) -> Self {
        let age = lock.age(now);
        LockSummary {
            kind: lock.kind.as_str(),
            location: lock.location.to_string(),
            container: lock.location.container().to_owned(),
            lock_id: lock.lock_id.clone(),
            state_path: lock.state_path.clone(),
            who: lock.who.clone(),
            operation: lock.operation.clone(),
            tool_version: lock.tool_version.clone(),
            created: lock.created.at(),
            created_source: match lock.created {
                LockCreated::Recorded(_) => "recorded",
                LockCreated::FirstSeen(_) => "first-seen",
                LockCreated::Unknown => "unknown",
            },
            age_seconds: age.map(|a| a.as_secs()),
            age: age.map(format_duration),
            unlock_command: lock.manual_unlock_command(),
        }
    }
}

/// Everything one sweep saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub swept_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub locks: Vec<LockSummary>,
    /// `-md5` digest items seen (never locks).
    pub digest_items: usize,
    /// Locks that could not be parsed: `<where>: <why>`. Inspect these by hand; they are never expired.
    pub unparseable: Vec<String>,
    /// Tables or buckets that could not be read: `<what>: <why>`.
    pub unreachable: Vec<String>,
    /// AWS API calls the sweep made.
    pub aws_calls: usize,
}

impl SweepReport {
    pub fn sort(&mut self) {
        self.locks.sort_by(|a, b| {
            b.age_seconds
                .cmp(&a.age_seconds)
                .then_with(|| a.location.cmp(&b.location))
        });
        self.unparseable.sort();
        self.unreachable.sort();
    }
}
