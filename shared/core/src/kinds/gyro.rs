//! Gyro locks (`aws::dynamo-db` lock backend): what lockreaper knows about them in one place.
//!
//! Item `{LockKey, GyroId, GyroLockInfo?}`: no timestamp (the age counts from first sight), no
//! state object and no writes lockreaper can see (so nothing can show the holder is alive, and a
//! Gyro lock is never released automatically). A delete is conditional on `GyroId`
//! ([`crate::DeletePrecondition::GyroIdEquals`]), exactly what `gyro state force-unlock` does.
//! Parsed here (`parse_item`, behind [`crate::parse_table_item`]).

use serde_dynamo::Item;

use crate::model::{DeletePrecondition, LockCreated, LockKind, LockLocation, LockRecord};
use crate::parse::{check_id_size, check_size, string_attribute, LockParseError, ParseFailure};

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

/// A Gyro lock table item keyed `LockKey` = `key` at `location`.
pub(crate) fn parse_item(
    location: LockLocation,
    key: &str,
    item: &Item,
) -> Result<LockRecord, LockParseError> {
    let err = |failure| LockParseError::at(&location, failure);
    let gyro_id = match item.get(ID_ATTRIBUTE) {
        Some(v) => string_attribute(ID_ATTRIBUTE, v).map_err(err)?,
        None => return Err(err(ParseFailure::MissingGyroId)),
    };
    if gyro_id.trim().is_empty() {
        return Err(err(ParseFailure::MissingGyroId));
    }
    check_id_size(gyro_id).map_err(err)?;
    let lock_info = match item.get(INFO_ATTRIBUTE) {
        Some(v) => Some(string_attribute(INFO_ATTRIBUTE, v).map_err(err)?),
        None => None,
    };
    let raw = serde_json::json!({
        "LockKey": key,
        "GyroId": gyro_id,
        "GyroLockInfo": lock_info,
    })
    .to_string();
    check_size(raw.len()).map_err(err)?;
    let (who, operation) = lock_info.map(parse_gyro_lock_info).unwrap_or((None, None));
    Ok(LockRecord {
        kind: LockKind::GyroDynamoDb,
        lock_id: gyro_id.to_owned(),
        who,
        operation,
        tool_version: None,
        created: LockCreated::Unknown,
        state_path: key.to_owned(),
        info: lock_info.map(str::to_owned),
        last_modified: None,
        precondition: DeletePrecondition::GyroIdEquals(gyro_id.to_owned()),
        raw,
        location,
    })
}

/// Gyro writes `Locked by '<user>' running '<args>' at '<HH:mm:ss zzz, MMM-dd>'.`; the time has no year
/// and a local zone, so only the user and command are worth reading.
fn parse_gyro_lock_info(text: &str) -> (Option<String>, Option<String>) {
    fn quoted_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
        let rest = &text[text.find(marker)? + marker.len()..];
        let end = rest.find('\'')?;
        Some(&rest[..end])
    }
    let who = quoted_after(text, "Locked by '").map(str::to_owned);
    let operation = quoted_after(text, "running '").map(str::to_owned);
    (who, operation)
}
