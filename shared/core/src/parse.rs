//! Parsers from what AWS returns into the [lock model](crate::model).
//!
//! One entry point per shape: [`parse_table_item`] for a DynamoDB item (a Scan/GetItem result or a
//! stream image; adapters convert SDK attribute maps into [`serde_dynamo::Item`] first) and
//! [`parse_lock_file`] for an S3 `.tflock` object. Both classify by *attributes*, never by key suffix
//! alone, and both fail with a [`LockParseError`] that names the item and the reason. A malformed lock
//! is something a person must look at: callers report it and never delete it.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};

use crate::kinds::{gyro, terraform};
use crate::model::{
    DeletePrecondition, DigestRecord, LockCreated, LockKind, LockLocation, LockRecord, TableEntry,
};
use crate::path::{StatePath, DIGEST_SUFFIX, LOCK_FILE_SUFFIX};

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
    fn at(location: &LockLocation, failure: ParseFailure) -> Self {
        LockParseError {
            location: location.to_string(),
            failure,
        }
    }
}

/// Terraform's `statemgr.LockInfo` as JSON. Unknown fields are ignored (forward compatibility);
/// missing string fields read as empty, as Go would marshal its zero values.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TerraformLockInfo {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    info: String,
    #[serde(default)]
    who: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    created: Option<String>,
    /// Read only to bound its size (an oversized `Path` would make the lock's alert, which names a
    /// mismatching declared path, too large for SNS). A lock is judged by where it is stored, never
    /// by this (`LockRecord::declared_path_mismatch` compares the two).
    #[serde(default)]
    path: String,
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
        let err = |failure| LockParseError::at(&location, failure);
        if let Some(info) = item.get(terraform::INFO_ATTRIBUTE) {
            let info = string_attribute(terraform::INFO_ATTRIBUTE, info).map_err(err)?;
            return parse_terraform_info(location.clone(), info, None, |info| {
                DeletePrecondition::InfoEquals(info.to_owned())
            })
            .map(TableEntry::Lock);
        }
        if let Some(digest) = item.get(terraform::DIGEST_ATTRIBUTE) {
            let digest = string_attribute(terraform::DIGEST_ATTRIBUTE, digest).map_err(err)?;
            return Ok(TableEntry::Digest(digest_record(table, key, Some(digest))));
        }
        if key.ends_with(DIGEST_SUFFIX) {
            // Terragrunt's `backend migrate` writes a digest item holding only `LockID`.
            return Ok(TableEntry::Digest(digest_record(table, key, None)));
        }
        return Err(err(ParseFailure::Unrecognised {
            attributes: attribute_names(item),
        }));
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
        return parse_gyro(location, key, item).map(TableEntry::Lock);
    }
    Err(LockParseError {
        location: format!(
            "dynamodb://{table} (item with attributes {})",
            attribute_names(item)
        ),
        failure: ParseFailure::NoLockKey,
    })
}

/// Parses an S3 `.tflock` object (Terraform/OpenTofu ≥ 1.10, `use_lockfile = true`).
///
/// `etag` is exactly as S3 returned it (with its quotes); it becomes the `If-Match` precondition.
pub fn parse_lock_file(
    bucket: &str,
    key: &str,
    body: &[u8],
    etag: &str,
    last_modified: Option<DateTime<Utc>>,
) -> Result<LockRecord, LockParseError> {
    let location = LockLocation::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    };
    let err = |failure| LockParseError::at(&location, failure);
    let state =
        StatePath::from_lock_file(bucket, key).ok_or_else(|| err(ParseFailure::NotALockFile))?;
    // The ETag is the delete's only precondition: a blank one (the SDK's answer had none) would
    // send `If-Match: ` and leave it to S3 whether that still conditions anything.
    if etag.trim().is_empty() {
        return Err(err(ParseFailure::MissingETag));
    }
    let text = std::str::from_utf8(body).map_err(|_| err(ParseFailure::NotUtf8))?;
    parse_terraform_info(location.clone(), text, Some(state.lock_path()), |_| {
        DeletePrecondition::ETagMatches(etag.to_owned())
    })
    .map(|mut record| {
        record.kind = LockKind::TerraformS3LockFile;
        record.last_modified = last_modified;
        record
    })
}

fn parse_terraform_info(
    location: LockLocation,
    raw: &str,
    fallback_path: Option<String>,
    precondition: impl FnOnce(&str) -> DeletePrecondition,
) -> Result<LockRecord, LockParseError> {
    let err = |failure| LockParseError::at(&location, failure);
    check_size(raw.len()).map_err(err)?;
    // serde reads a struct from a JSON array of its field values too; Terraform writes an object,
    // and an array of bare values is nothing a person could check before approving an unlock.
    if raw
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('[')
    {
        return Err(err(ParseFailure::NotJson {
            detail: "it is a JSON array; Terraform's lock info is a JSON object".to_owned(),
        }));
    }
    let info: TerraformLockInfo = serde_json::from_str(raw).map_err(|e| {
        err(ParseFailure::NotJson {
            detail: e.to_string(),
        })
    })?;
    if info.id.trim().is_empty() {
        return Err(err(ParseFailure::MissingId));
    }
    check_id_size(&info.id).map_err(err)?;
    if info.path.len() > MAX_STATE_PATH_BYTES {
        return Err(err(ParseFailure::PathTooLong {
            size: info.path.len(),
            limit: MAX_STATE_PATH_BYTES,
        }));
    }
    let created = match info.created.as_deref() {
        None | Some("") => return Err(err(ParseFailure::MissingCreated)),
        Some(value) => parse_created(value).map_err(err)?,
    };
    // Where the lock is (its `LockID`, or the lock file's key), never the path its JSON claims:
    // policy, liveness and alerts must be about the state this lock actually blocks. A `Path`
    // that disagrees is reported as suspicious ([`LockRecord::declared_path_mismatch`]).
    let state_path = fallback_path.unwrap_or_else(|| location.key().to_owned());
    let precondition = precondition(raw);
    Ok(LockRecord {
        kind: LockKind::TerraformDynamoDb,
        lock_id: info.id,
        who: non_empty(info.who),
        operation: non_empty(info.operation),
        tool_version: non_empty(info.version),
        created: LockCreated::Recorded(created),
        state_path,
        info: non_empty(info.info),
        last_modified: None,
        precondition,
        raw: raw.to_owned(),
        location,
    })
}

fn parse_gyro(
    location: LockLocation,
    key: &str,
    item: &Item,
) -> Result<LockRecord, LockParseError> {
    let err = |failure| LockParseError::at(&location, failure);
    let gyro_id = match item.get(gyro::ID_ATTRIBUTE) {
        Some(v) => string_attribute(gyro::ID_ATTRIBUTE, v).map_err(err)?,
        None => return Err(err(ParseFailure::MissingGyroId)),
    };
    if gyro_id.trim().is_empty() {
        return Err(err(ParseFailure::MissingGyroId));
    }
    check_id_size(gyro_id).map_err(err)?;
    let lock_info = match item.get(gyro::INFO_ATTRIBUTE) {
        Some(v) => Some(string_attribute(gyro::INFO_ATTRIBUTE, v).map_err(err)?),
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

/// Parses Go's `time.Time` JSON (RFC 3339 with 0–9 fractional digits) into UTC.
pub fn parse_created(value: &str) -> Result<DateTime<Utc>, ParseFailure> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ParseFailure::BadCreated {
            value: value.to_owned(),
            detail: e.to_string(),
        })
}

fn digest_record(table: &str, key: &str, digest: Option<&str>) -> DigestRecord {
    DigestRecord {
        table: table.to_owned(),
        item_key: key.to_owned(),
        state_path: key.strip_suffix(DIGEST_SUFFIX).unwrap_or(key).to_owned(),
        digest: digest.map(str::to_owned),
    }
}

fn check_size(size: usize) -> Result<(), ParseFailure> {
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

fn check_id_size(id: &str) -> Result<(), ParseFailure> {
    if id.len() > MAX_LOCK_ID_BYTES {
        Err(ParseFailure::IdTooLong {
            size: id.len(),
            limit: MAX_LOCK_ID_BYTES,
        })
    } else {
        Ok(())
    }
}

fn string_attribute<'a>(
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

fn attribute_names(item: &Item) -> String {
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Whether an S3 key names a Terraform lock file.
pub fn is_lock_file_key(key: &str) -> bool {
    key.len() > LOCK_FILE_SUFFIX.len() && key.ends_with(LOCK_FILE_SUFFIX)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
