//! Gyro locks (`aws::dynamo-db` lock backend): what lockreaper knows about them in one place.
//!
//! Item `{LockKey, GyroId, GyroLockInfo?}`: no timestamp (the age counts from first sight), no
//! state object and no writes lockreaper can see (so nothing can show the holder is alive, and a
//! Gyro lock is never released automatically). A delete is conditional on `GyroId`
//! ([`crate::DeletePrecondition::GyroIdEquals`]), exactly what `gyro state force-unlock` does.
//! Parsing is in [`crate::parse`].

/// For people.
pub const TOOL_NAME: &str = "Gyro";
/// The lock table's partition key.
pub const KEY_ATTRIBUTE: &str = "LockKey";
/// The lock's ID; what a delete is conditional on.
pub const ID_ATTRIBUTE: &str = "GyroId";
/// Free text Gyro adds after taking the lock (the command line, the user).
pub const INFO_ATTRIBUTE: &str = "GyroLockInfo";

/// `gyro state force-unlock --lock-id <id>`.
pub fn manual_unlock_command(lock_id: &str) -> String {
    format!("gyro state force-unlock --lock-id {lock_id}")
}

/// Where to run the unlock command.
pub fn where_to_release() -> String {
    "from the Gyro project".to_owned()
}

/// An alert's advice for after the unlock.
pub const AFTER_UNLOCKING: &str = "After unlocking, run `gyro up` and read the proposed changes before confirming, to see what the interrupted run left behind.";

/// The advice after a forced release.
pub const AFTER_RELEASE: &str = "Review `gyro diff` before the next `gyro up`: the interrupted run may have changed some resources and not others.";

/// Why no liveness evidence can exist for a Gyro lock (an evidence gap every Gyro lock has).
pub const NO_LIVENESS: &str =
    "a Gyro lock has no state object and Gyro writes nothing lockreaper can see";
