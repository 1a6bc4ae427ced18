//! Parsers from what AWS returns into the [lock model](crate::model).
//!
//! One entry point per shape: [`parse_table_item`] for a DynamoDB item (a Scan/GetItem result or a
//! stream image; adapters convert SDK attribute maps into [`serde_dynamo::Item`] first) and
//! [`parse_lock_file`] for an S3 `.tflock` object. Both classify by *attributes*, never by key suffix
//! alone, and both fail with a [`LockParseError`] that names the item and the reason. A malformed lock
//! is something a person must look at: callers report it and never delete it.
//!
//! This module recognises which tool an item belongs to and holds what every format shares (size
//! limits, errors, attribute reading); each tool's own format is parsed in its module under
//! [`crate::kinds`].

use chrono::{DateTime, Utc};
use serde_dynamo::{AttributeValue, Item};

pub use crate::kinds::terraform::{is_lock_file_key, parse_lock_file};
use crate::kinds::{gyro, terraform};
use crate::model::{LockLocation, TableEntry};

/// Terraform's lock JSON is ~250 bytes; anything near this size is not a lock we understand, and
/// reading it whole into alerts and audit records would do harm.
pub const MAX_LOCK_BYTES: usize = 64 * 1024;

/// Terraform's and OpenTofu's lock IDs are 36 characters (8-4-4-4-12 hex), Gyro's too (a UUID). A
/// far longer one is not an ID anyone types into `force-unlock`; it is repeated in every alert
/// about the lock and is part of the ledger's sort keys (DynamoDB: at most 1,024 bytes, "Constraints
/// in Amazon DynamoDB").
pub const MAX_LOCK_ID_BYTES: usize = 256;

/// Terraform's `Info.Path` is `<bucket>/<key>`: S3 bucket names are at most 63 characters and
/// object keys at most 1,024 bytes of UTF-8 (S3 User Guide, "General purpose bucket naming rules"
/// and "Naming Amazon S3 objects"). The path is shown whole in every alert (it names the
/// state), so a longer one, which no state can have, would swell an alert past SNS's 256 KiB.
pub const MAX_STATE_PATH_BYTES: usize = 63 + 1 + 1024;

/// Terraform/OpenTofu key attribute.
pub const TERRAFORM_KEY: &str = terraform::KEY_ATTRIBUTE;
/// Gyro key attribute.
pub const GYRO_KEY: &str = gyro::KEY_ATTRIBUTE;

/// Why a lock item or lock file could not be understood, and which one it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {failure}")]
pub struct LockParseError {
    /// Where the bad lock lives, e.g. `dynamodb://tf-locks (LockID = "b/k")` or `s3://b/k.tflock`.
    pub location: String,
    pub failure: ParseFailure,
}

/// The specific reason a lock could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseFailure {
    #[error("item has neither a `LockID` (Terraform/OpenTofu) nor a `LockKey` (Gyro) string attribute; is this a lock table?")]
    NoLockKey,
    #[error("attribute `{attribute}` is of DynamoDB type {found}, expected a string (S)")]
    WrongType {
        attribute: &'static str,
        found: &'static str,
    },
    #[error("item is neither a lock (no `Info`) nor a digest (no `Digest`); attributes present: {attributes}")]
    Unrecognised { attributes: String },
    #[error("Gyro lock item has no `GyroId`")]
    MissingGyroId,
    #[error("lock is empty")]
    Empty,
    #[error(
        "lock is {size} bytes; a lock is well under 1 KiB, refusing anything over {limit} bytes"
    )]
    TooLarge { size: usize, limit: usize },
    #[error("lock is not valid UTF-8")]
    NotUtf8,
    #[error("lock info is not Terraform lock JSON: {detail}")]
    NotJson { detail: String },
    #[error("lock info has no `ID`; without it nobody can force-unlock it safely")]
    MissingId,
    #[error("lock info has no `Created` time")]
    MissingCreated,
    #[error("`Created` {value:?} is not an RFC 3339 timestamp: {detail}")]
    BadCreated { value: String, detail: String },
    #[error("object key does not end in `.tflock`, so it is not a Terraform lock file")]
    NotALockFile,
    #[error("lock ID is {size} bytes; Terraform's and Gyro's are 36, refusing anything over {limit} bytes")]
    IdTooLong { size: usize, limit: usize },
    #[error("lock info `Path` is {size} bytes; a state path `<bucket>/<key>` is at most {limit} bytes (S3 bucket names ≤ 63 characters, keys ≤ 1,024 bytes)")]
    PathTooLong { size: usize, limit: usize },
    #[error("S3 returned no ETag for the lock file, so it cannot be deleted conditionally (`If-Match: <ETag>`)")]
    MissingETag,
}

impl LockParseError {
    pub(crate) fn at(location: &LockLocation, failure: ParseFailure) -> Self {
        LockParseError {
            location: location.to_string(),
            failure,
        }
    }
}

/// Parses one item of a lock table (Terraform/OpenTofu or Gyro) into a lock or a digest record.
pub fn parse_table_item(table: &str, item: &Item) -> Result<TableEntry, LockParseError> {
    if let Some(value) = item.get(TERRAFORM_KEY) {
        let key = string_attribute(TERRAFORM_KEY, value).map_err(|failure| LockParseError {
            location: format!("dynamodb://{table} (item without a string LockID)"),
            failure,
        })?;
        let location = LockLocation::DynamoDb {
            table: table.to_owned(),
            key_attribute: TERRAFORM_KEY.to_owned(),
            key: key.to_owned(),
        };
        return terraform::parse_item(table, key, location, item);
    }
    if let Some(value) = item.get(GYRO_KEY) {
        let key = string_attribute(GYRO_KEY, value).map_err(|failure| LockParseError {
            location: format!("dynamodb://{table} (item without a string LockKey)"),
            failure,
        })?;
        let location = LockLocation::DynamoDb {
            table: table.to_owned(),
            key_attribute: GYRO_KEY.to_owned(),
            key: key.to_owned(),
        };
        return gyro::parse_item(location, key, item).map(TableEntry::Lock);
    }
    Err(LockParseError {
        location: format!(
            "dynamodb://{table} (item with attributes {})",
            attribute_names(item)
        ),
        failure: ParseFailure::NoLockKey,
    })
}

/// Parses Go's `time.Time` JSON (RFC 3339 with 0–9 fractional digits) into UTC.
pub fn parse_created(value: &str) -> Result<DateTime<Utc>, ParseFailure> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ParseFailure::BadCreated {
            value: value.to_owned(),
            detail: e.to_string(),
        })
}

pub(crate) fn check_size(size: usize) -> Result<(), ParseFailure> {
    if size == 0 {
        Err(ParseFailure::Empty)
    } else if size > MAX_LOCK_BYTES {
        Err(ParseFailure::TooLarge {
            size,
            limit: MAX_LOCK_BYTES,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn check_id_size(id: &str) -> Result<(), ParseFailure> {
    if id.len() > MAX_LOCK_ID_BYTES {
        Err(ParseFailure::IdTooLong {
            size: id.len(),
            limit: MAX_LOCK_ID_BYTES,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn string_attribute<'a>(
    attribute: &'static str,
    value: &'a AttributeValue,
) -> Result<&'a str, ParseFailure> {
    match value {
        AttributeValue::S(s) => Ok(s),
        other => Err(ParseFailure::WrongType {
            attribute,
            found: type_name(other),
        }),
    }
}

fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::N(_) => "N",
        AttributeValue::S(_) => "S",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::B(_) => "B",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::M(_) => "M",
        AttributeValue::L(_) => "L",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
    }
}

pub(crate) fn attribute_names(item: &Item) -> String {
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
