//! Terraform/OpenTofu locks (S3 backend): what lockreaper knows about them in one place.
//!
//! - DynamoDB (`dynamodb_table`): item `{LockID: "<bucket>/<key>", Info: "<lock JSON>"}`; beside
//!   it the digest item `{LockID: "<bucket>/<key>-md5", Digest}` (never a lock). A delete is
//!   conditional on `Info` byte for byte ([`crate::DeletePrecondition::InfoEquals`]).
//! - S3 (`use_lockfile`, ≥ 1.10): object `<state key>.tflock` holding the same lock JSON; a delete
//!   is conditional on its ETag ([`crate::DeletePrecondition::ETagMatches`]).
//!
//! Parsed here (`parse_item` behind [`crate::parse_table_item`], and [`parse_lock_file`]); state
//! paths, workspaces and the lock-file and digest keys are in [`crate::path`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_dynamo::Item;

use crate::model::{
    DeletePrecondition, DigestRecord, LockCreated, LockKind, LockLocation, LockRecord, TableEntry,
};
use crate::parse::{
    attribute_names, check_id_size, check_size, non_empty, parse_created, string_attribute,
    LockParseError, ParseFailure, MAX_STATE_PATH_BYTES,
};
use crate::path::StatePath;

/// For people.
pub const TOOL_NAME: &str = "Terraform/OpenTofu";
/// The lock table's partition key.
pub const KEY_ATTRIBUTE: &str = "LockID";
/// The lock item's attribute holding the lock JSON; what a delete is conditional on.
pub const INFO_ATTRIBUTE: &str = "Info";
/// The digest item's attribute (the MD5 of the last state written).
pub const DIGEST_ATTRIBUTE: &str = "Digest";
/// Suffix of the S3-native lock file (`use_lockfile = true`).
pub const LOCK_FILE_SUFFIX: &str = ".tflock";
/// Suffix of the DynamoDB digest item's `LockID`.
pub const DIGEST_SUFFIX: &str = "-md5";

/// `terraform force-unlock <id>` (OpenTofu's `tofu force-unlock` takes the same ID).
pub fn manual_unlock_command(lock_id: &str) -> String {
    format!("terraform force-unlock {lock_id}")
}

/// Where to run `terraform force-unlock`: the configuration that uses the state, in its workspace.
pub fn where_to_release(workspace: Option<&str>) -> String {
    match workspace {
        Some(ws) => format!("from the configuration that uses this state, in workspace `{ws}`"),
        None => "from the configuration that uses this state".to_owned(),
    }
}

/// The state path a lock's own JSON (`raw`, as stored) declares in `Path`, if it parses. A lock is
/// judged by where it is stored; a different `Path` is suspicious
/// ([`LockRecord::declared_path_mismatch`]).
pub fn declared_path(raw: &str) -> Option<String> {
    let info: serde_json::Value = serde_json::from_str(raw).ok()?;
    Some(info.get("Path")?.as_str()?.to_owned())
}

/// An alert's advice for after the unlock.
pub const AFTER_UNLOCKING: &str = "After unlocking, run `terraform plan` before anything else to see what the interrupted run left behind.";

/// The advice after a forced release.
pub fn after_release(workspace: Option<&str>) -> String {
    match workspace {
        Some(ws) => format!(
            "Run `terraform plan` (in workspace `{ws}`) before the next apply: the interrupted run may have changed some resources and not others."
        ),
        None => "Run `terraform plan` before the next apply: the interrupted run may have changed some resources and not others.".to_owned(),
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

/// A Terraform lock table item keyed `LockID` = `key` at `location`: a lock (it has `Info`), a
/// digest (`Digest`, or a bare `…-md5` key), or an error naming its attributes.
pub(crate) fn parse_item(
    table: &str,
    key: &str,
    location: LockLocation,
    item: &Item,
) -> Result<TableEntry, LockParseError> {
    let err = |failure| LockParseError::at(&location, failure);
    if let Some(info) = item.get(INFO_ATTRIBUTE) {
        let info = string_attribute(INFO_ATTRIBUTE, info).map_err(err)?;
        return parse_terraform_info(location.clone(), info, None, |info| {
            DeletePrecondition::InfoEquals(info.to_owned())
        })
        .map(TableEntry::Lock);
    }
    if let Some(digest) = item.get(DIGEST_ATTRIBUTE) {
        let digest = string_attribute(DIGEST_ATTRIBUTE, digest).map_err(err)?;
        return Ok(TableEntry::Digest(digest_record(table, key, Some(digest))));
    }
    if key.ends_with(DIGEST_SUFFIX) {
        // Terragrunt's `backend migrate` writes a digest item holding only `LockID`.
        return Ok(TableEntry::Digest(digest_record(table, key, None)));
    }
    Err(err(ParseFailure::Unrecognised {
        attributes: attribute_names(item),
    }))
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

fn digest_record(table: &str, key: &str, digest: Option<&str>) -> DigestRecord {
    DigestRecord {
        table: table.to_owned(),
        item_key: key.to_owned(),
        state_path: key.strip_suffix(DIGEST_SUFFIX).unwrap_or(key).to_owned(),
        digest: digest.map(str::to_owned),
    }
}

/// Whether an S3 key names a Terraform lock file.
pub fn is_lock_file_key(key: &str) -> bool {
    key.len() > LOCK_FILE_SUFFIX.len() && key.ends_with(LOCK_FILE_SUFFIX)
}
