//! The liveness model: what evidence says a lock's holder is still at work.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Evidence about whether a lock's holder is still at work, gathered by the reaper.
///
/// Only a **positive** signal exists: a state write after the lock was taken means the holder made
/// progress recently. The absence of a write proves nothing (lock-formats.md §1.8): plans never
/// write state, Terraform before 1.5 wrote it only at the end of an apply, and since 1.5 it writes
/// at most every 20 s *when a resource operation completes*, so a single 40-minute RDS create
/// produces no write at all. Hence an old `LastModified` never makes a lock look dead; it only
/// fails to make it look alive.
///
/// A digest mismatch is not liveness either. It means the last state write was half-done or S3
/// lagged (Terraform then tells people to fix the digest by hand), which is exactly the situation
/// where a person must look: it blocks auto-expiry and escalates to a human.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    /// The state object's S3 `LastModified` (HeadObject on the key the lock's path names).
    pub state_last_modified: Option<DateTime<Utc>>,
    /// The last state write lockreaper recorded from the lock table's stream (a `-md5` digest
    /// MODIFY for the same path) or, for a lock file, from the state bucket's S3 events (the
    /// state object's `Object Created`), from the ledger: the same evidence, whichever source.
    pub last_state_write: Option<DateTime<Utc>>,
    /// Whether the `-md5` digest item matches the state object's MD5; `None` when not checked
    /// (lock files, Gyro, no digest item).
    pub digest_matches_state: Option<bool>,
}

impl Liveness {
    /// The latest state write strictly after `lock_created`: evidence that the holder is probably
    /// alive. `None` when there is no such write, or when the lock's creation time is unknown (a
    /// write cannot be placed after an unknown time).
    ///
    /// For a first-seen time (Gyro) the real creation is earlier, so a write after it is after the
    /// lock was taken too. Clock skew between the locking client (Terraform's `Created`) and S3 can
    /// only make an old write look recent, which errs on the side of "alive".
    pub fn write_after(&self, lock_created: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        let created = lock_created?;
        [self.state_last_modified, self.last_state_write]
            .into_iter()
            .flatten()
            .filter(|t| *t > created)
            .max()
    }

    /// Whether there is evidence the holder of a lock taken at `lock_created` is alive.
    pub fn holder_probably_alive(&self, lock_created: Option<DateTime<Utc>>) -> bool {
        self.write_after(lock_created).is_some()
    }

    /// The digest is known to disagree with the state object: never auto-expire, ask a person.
    pub fn digest_mismatch(&self) -> bool {
        self.digest_matches_state == Some(false)
    }
}
