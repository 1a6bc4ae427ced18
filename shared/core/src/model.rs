//! The lock model: one [`LockRecord`] for every kind of lock lockreaper understands, whatever store it
//! came from, plus the [`DigestRecord`] that Terraform keeps beside its DynamoDB locks.
//!
//! A record carries two things at once: what a person needs to judge the lock (who, what, since when)
//! and what a machine needs to delete exactly this lock and no other ([`DeletePrecondition`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::kinds::LockKind;

/// Where a lock (or digest) physically lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(tag = "store", rename_all = "kebab-case")]
pub enum LockLocation {
    /// A DynamoDB item, addressed by its single string partition key.
    #[serde(rename = "dynamodb")]
    DynamoDb {
        table: String,
        /// `LockID` for Terraform/OpenTofu, `LockKey` for Gyro.
        key_attribute: String,
        key: String,
    },
    /// An S3 object.
    #[serde(rename = "s3")]
    S3 { bucket: String, key: String },
}

impl LockLocation {
    /// The table or bucket name: the unit people configure and the `LockTable` metric dimension.
    pub fn container(&self) -> &str {
        match self {
            LockLocation::DynamoDb { table, .. } => table,
            LockLocation::S3 { bucket, .. } => bucket,
        }
    }

    /// A stable, compact key for this location in lockreaper's ledger table:
    /// `dynamodb/<table>/<key>` or `s3/<bucket>/<key>` (table and bucket names cannot contain `/`).
    pub fn ledger_key(&self) -> String {
        match self {
            LockLocation::DynamoDb { table, key, .. } => format!("dynamodb/{table}/{key}"),
            LockLocation::S3 { bucket, key } => format!("s3/{bucket}/{key}"),
        }
    }

    /// The key inside the container.
    pub fn key(&self) -> &str {
        match self {
            LockLocation::DynamoDb { key, .. } | LockLocation::S3 { key, .. } => key,
        }
    }
}

impl std::fmt::Display for LockLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockLocation::DynamoDb {
                table,
                key_attribute,
                key,
            } => write!(f, "dynamodb://{table} ({key_attribute} = {key:?})"),
            LockLocation::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// The exact thing a delete must be conditional on, as read from the store. Deleting with this
/// precondition removes the lock that was judged, and fails cleanly if it was released and re-taken.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "condition", content = "value", rename_all = "kebab-case")]
pub enum DeletePrecondition {
    /// DynamoDB `ConditionExpression "#info = :seen"` with the raw `Info` string byte for byte.
    InfoEquals(String),
    /// S3 `DeleteObject` with `If-Match: <ETag>` (the ETag exactly as S3 returned it, quotes included).
    ETagMatches(String),
    /// DynamoDB `ConditionExpression "GyroId = :id"`, exactly what `gyro state force-unlock` does.
    GyroIdEquals(String),
}

/// When a lock was taken, as far as anyone can know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", content = "at", rename_all = "kebab-case")]
pub enum LockCreated {
    /// The lock itself says when it was taken (Terraform's `Created`).
    Recorded(DateTime<Utc>),
    /// The format has no usable timestamp (Gyro); this is when lockreaper first saw the lock,
    /// from the stream INSERT or the first sweep that found it. The real age is at least this.
    FirstSeen(DateTime<Utc>),
    /// No timestamp and not seen before: the caller must record a first-seen time.
    Unknown,
}

impl LockCreated {
    /// The best known lower bound of when the lock was taken.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        match self {
            LockCreated::Recorded(t) | LockCreated::FirstSeen(t) => Some(*t),
            LockCreated::Unknown => None,
        }
    }
}

/// One state lock, whatever tool and store it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub kind: LockKind,
    pub location: LockLocation,
    /// The lock ID a tool's `force-unlock` takes (Terraform `Info.ID`, Gyro `GyroId`).
    pub lock_id: String,
    /// `user@host` for Terraform; the `user.name` Gyro recorded, when it did.
    pub who: Option<String>,
    /// `OperationTypeApply`, `OperationTypePlan`, … for Terraform; the Gyro command line.
    pub operation: Option<String>,
    /// The tool version that took the lock (Terraform/OpenTofu only).
    pub tool_version: Option<String>,
    pub created: LockCreated,
    /// The state this lock protects, from where the lock is stored: `<bucket>/<key>` for Terraform
    /// (the `LockID`, or the lock file's key without `.tflock`; never the lock JSON's `Path`), the
    /// lock key for Gyro.
    pub state_path: String,
    /// Terraform's free-form `Info.Info` (empty for every CLI caller), or Gyro's `GyroLockInfo` text.
    pub info: Option<String>,
    /// The S3 object's LastModified, for lock files.
    pub last_modified: Option<DateTime<Utc>>,
    /// What a conditional delete must match.
    pub precondition: DeletePrecondition,
    /// The lock exactly as stored: the `Info` string, the lock file body, or the Gyro item as JSON.
    /// Recorded in the audit trail before any delete, so nothing is ever lost.
    pub raw: String,
}

impl LockRecord {
    /// The `Path` a Terraform lock's own JSON names, when it is not where the lock is stored
    /// (`state_path`, from the `LockID` or the lock file's key). Terraform writes the two alike,
    /// so a difference means the lock was written by hand or by something else: suspicious.
    pub fn declared_path_mismatch(&self) -> Option<String> {
        if !self.kind.is_terraform() {
            return None;
        }
        let declared = crate::kinds::terraform::declared_path(&self.raw)?;
        (!declared.is_empty() && declared != self.state_path).then_some(declared)
    }

    /// The Terraform state location this lock protects, when it is a Terraform lock.
    pub fn terraform_state(&self) -> Option<crate::path::StatePath> {
        if !self.kind.is_terraform() {
            return None;
        }
        crate::path::StatePath::parse(&self.state_path).ok()
    }

    /// How long the lock has been held at `now`, as far as is known (at least this long for a
    /// first-seen time). `None` when the creation time is unknown.
    pub fn age(&self, now: DateTime<Utc>) -> Option<std::time::Duration> {
        let created = self.created.at()?;
        Some((now - created).to_std().unwrap_or_default())
    }

    /// The command that releases this lock by hand, for people outside chat.
    pub fn manual_unlock_command(&self) -> String {
        self.kind.manual_unlock_command(&self.lock_id)
    }
}

/// Terraform's `<bucket>/<key>-md5` item: the MD5 of the last state it wrote. Never a lock, never deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestRecord {
    pub table: String,
    /// The item's `LockID`, `<bucket>/<key>-md5`.
    pub item_key: String,
    /// `<bucket>/<key>`: the lock path of the state this digest belongs to.
    pub state_path: String,
    /// Lowercase hex MD5 of the state bytes. `None` for the `LockID`-only items Terragrunt's
    /// `backend migrate` writes.
    pub digest: Option<String>,
}

/// What one item of a lock table turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "kebab-case")]
#[allow(clippy::large_enum_variant)] // almost every entry is a lock; boxing would only add allocations
pub enum TableEntry {
    Lock(LockRecord),
    Digest(DigestRecord),
}

#[cfg(test)]
mod tests {
    use super::LockKind;

    #[test]
    fn kind_serializes_as_its_stable_name() {
        for kind in [
            LockKind::TerraformDynamoDb,
            LockKind::TerraformS3LockFile,
            LockKind::GyroDynamoDb,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<LockKind>(&json).unwrap(), kind);
        }
    }
}
