//! Re-reading one lock where it lives, and deleting it only if it is still the lock that was read.
//!
//! Every delete here is conditional on what was read (see `DeletePrecondition`): DynamoDB
//! `DeleteItem` with `#info = :seen` (Terraform/OpenTofu) or `GyroId = :id` (Gyro), S3 `DeleteObject`
//! with `If-Match: <ETag>`. A lock released and re-taken in between fails the condition, and that is
//! reported as [`DeleteOutcome::Changed`], a clean refusal — never retried, never forced.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use lockreaper_core::kinds::{gyro, terraform};
use lockreaper_core::{DeletePrecondition, LockLocation, LockParseError, LockRecord, TableEntry};

use crate::config::MAX_ATTEMPTS;
use crate::error::{AwsError, AwsErrorKind};
use crate::lock_files::LockFiles;
use crate::lock_table::LockTable;

/// What a conditional delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The lock was exactly as read and is now gone.
    Deleted,
    /// The lock is no longer the one that was read (released and re-taken, or rewritten): untouched.
    Changed,
    /// Nothing was there any more.
    AlreadyGone,
    /// An earlier attempt of this delete went unanswered (a lost answer, a reset, a timeout, a
    /// 5xx: it may have been applied), and a later attempt found the lock gone. A delete of
    /// ours whose answer was lost looks exactly like this, and the holder releasing it in the
    /// same instant is the only other explanation: reported as a delete (the forced-release
    /// marker stays), with the ambiguity said in the audit (see `Unlocker`).
    DeletedAnswerLost,
}

/// What a strongly consistent re-read found at a lock's location.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // short-lived, one per unlock
pub enum Reread {
    Lock(LockRecord),
    /// Something is there but it does not parse as a lock: never delete it.
    Unparseable(LockParseError),
    /// A digest item (should never happen for a lock location, but never delete one).
    NotALock,
    Gone,
}

/// Reads and deletes single locks in any store.
#[derive(Clone, Debug)]
pub struct LockStore {
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
}

impl LockStore {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, s3: aws_sdk_s3::Client) -> Self {
        LockStore { dynamodb, s3 }
    }

    /// Re-reads the lock at `location` (strongly consistent for DynamoDB; S3 is read-after-write
    /// consistent).
    pub async fn reread(&self, location: &LockLocation) -> Result<Reread, AwsError> {
        match location {
            LockLocation::DynamoDb {
                table,
                key_attribute,
                key,
            } => {
                let found = LockTable::new(self.dynamodb.clone(), table)
                    .get(key_attribute, key)
                    .await?;
                Ok(match found {
                    None => Reread::Gone,
                    Some(Ok(TableEntry::Lock(lock))) => Reread::Lock(lock),
                    Some(Ok(TableEntry::Digest(_))) => Reread::NotALock,
                    Some(Err(e)) => Reread::Unparseable(e),
                })
            }
            LockLocation::S3 { bucket, key } => {
                let found = LockFiles::new(self.s3.clone()).read(bucket, key).await?;
                Ok(match found {
                    None => Reread::Gone,
                    Some(Ok(lock)) => Reread::Lock(lock),
                    Some(Err(e)) => Reread::Unparseable(e),
                })
            }
        }
    }

    /// Deletes `lock` only if it is still exactly what was read.
    pub async fn delete_if_unchanged(&self, lock: &LockRecord) -> Result<DeleteOutcome, AwsError> {
        let resource = lock.location.to_string();
        let result = match (&lock.location, &lock.precondition) {
            (
                LockLocation::DynamoDb {
                    table,
                    key_attribute,
                    key,
                },
                DeletePrecondition::InfoEquals(seen),
            ) => {
                self.delete_item(table, key_attribute, key, terraform::INFO_ATTRIBUTE, seen, &resource)
                    .await
            }
            (
                LockLocation::DynamoDb {
                    table,
                    key_attribute,
                    key,
                },
                DeletePrecondition::GyroIdEquals(seen),
            ) => {
                self.delete_item(table, key_attribute, key, gyro::ID_ATTRIBUTE, seen, &resource)
                    .await
            }
            // An empty ETag would go out as `If-Match: `, which S3 (or a proxy) may treat as no
            // condition at all: a lock file read without its ETag is never deleted.
            (LockLocation::S3 { .. }, DeletePrecondition::ETagMatches(etag))
                if etag.trim().is_empty() =>
            {
                return Err(AwsError {
                    kind: AwsErrorKind::Other,
                    action: "delete lock file",
                    resource,
                    message: "the lock file was read without an ETag, so a delete could not be conditional on it; refusing to delete".to_owned(),
                });
            }
            (LockLocation::S3 { bucket, key }, DeletePrecondition::ETagMatches(etag)) => {
                attempts(|| async {
                    self.s3
                        .delete_object()
                        .bucket(bucket)
                        .key(key)
                        .if_match(etag)
                        .customize()
                        .config_override(
                            aws_sdk_s3::config::Builder::default()
                                .retry_config(RetryConfig::disabled()),
                        )
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| AwsError::from_sdk(e, "delete lock file", resource.clone()))
                })
                .await
            }
            (location, precondition) => {
                return Err(AwsError {
                    kind: AwsErrorKind::Other,
                    action: "delete lock",
                    resource,
                    message: format!(
                        "precondition {precondition:?} does not fit a lock stored at {location}; refusing to delete"
                    ),
                })
            }
        };
        let Attempted {
            result,
            unanswered_before,
        } = result;
        match result {
            Ok(()) => Ok(DeleteOutcome::Deleted),
            Err(e)
                if unanswered_before
                    && matches!(
                        e.kind,
                        AwsErrorKind::ConditionFailed | AwsErrorKind::NotFound
                    ) =>
            {
                // Our own earlier attempt may have deleted it: if it is gone now, say so.
                match self.reread(&lock.location).await {
                    Ok(Reread::Gone) => Ok(DeleteOutcome::DeletedAnswerLost),
                    _ => Ok(DeleteOutcome::Changed),
                }
            }
            // Every attempt went unanswered, at least one possibly applied: if the lock is gone
            // now, that was our delete (as above); if it is still there, the delete failed.
            Err(e) if unanswered_before && e.kind == AwsErrorKind::Transient => {
                match self.reread(&lock.location).await {
                    Ok(Reread::Gone) => Ok(DeleteOutcome::DeletedAnswerLost),
                    _ => Err(e),
                }
            }
            Err(e) if e.kind == AwsErrorKind::ConditionFailed => {
                // DynamoDB cannot tell "changed" from "gone" in a failed condition (a missing item
                // fails the condition too); S3 says 412 for a different ETag. Either way the lock
                // we judged is not there as it was; one more consistent read says which, so a lock
                // its holder released in the meantime is reported as gone, not as changed.
                match self.reread(&lock.location).await {
                    Ok(Reread::Gone) => Ok(DeleteOutcome::AlreadyGone),
                    _ => Ok(DeleteOutcome::Changed),
                }
            }
            Err(e) if e.kind == AwsErrorKind::NotFound => Ok(DeleteOutcome::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    async fn delete_item(
        &self,
        table: &str,
        key_attribute: &str,
        key: &str,
        attribute: &str,
        seen: &str,
        resource: &str,
    ) -> Attempted {
        attempts(|| async {
            self.dynamodb
                .delete_item()
                .table_name(table)
                .key(key_attribute, AttributeValue::S(key.to_owned()))
                // Aliased: never depend on which attribute names DynamoDB reserves.
                .condition_expression("#seen = :seen")
                .expression_attribute_names("#seen", attribute)
                .expression_attribute_values(":seen", AttributeValue::S(seen.to_owned()))
                .customize()
                .config_override(
                    aws_sdk_dynamodb::config::Builder::default()
                        .retry_config(RetryConfig::disabled()),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| AwsError::from_sdk(e, "delete lock item", resource))
        })
        .await
    }
}

/// A conditional delete, tried up to [`MAX_ATTEMPTS`] times.
struct Attempted {
    result: Result<(), AwsError>,
    /// An earlier attempt failed in a way that may have been applied (not a throttle).
    unanswered_before: bool,
}

/// Runs a conditional delete with the retries the SDK would make, but here, where they are
/// visible: the SDK's own retry of a delete whose answer was lost fails its condition (the lock
/// is gone: we deleted it), which it would report as if the first attempt had never happened.
/// Knowing that an earlier attempt went unanswered lets the caller tell "deleted, answer lost"
/// from "released by its holder" (issue 12, `a_lost_delete_answer_is_audited_as_a_delete`).
async fn attempts<F, Fut>(mut call: F) -> Attempted
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), AwsError>>,
{
    let mut unanswered_before = false;
    let mut attempt = 1;
    loop {
        let result = call().await;
        match result {
            Err(e) if e.kind == AwsErrorKind::Transient && attempt < MAX_ATTEMPTS => {
                // A throttle is a refusal (nothing applied); anything else transient (a reset, a
                // timeout, a 5xx, a lost answer) may have been applied.
                if !is_throttle(&e) {
                    unanswered_before = true;
                }
                // The SDK's standard mode backs off exponentially from about 1 s, capped at 20 s;
                // two retries at 0.2 s and 0.4 s keep the whole delete well inside its budget.
                tokio::time::sleep(Duration::from_millis(200 << (attempt - 1))).await;
                attempt += 1;
            }
            result => {
                return Attempted {
                    result,
                    unanswered_before,
                }
            }
        }
    }
}

fn is_throttle(e: &AwsError) -> bool {
    let m = e.message.to_ascii_lowercase();
    m.contains("throttl")
        || m.contains("slowdown")
        || m.contains("slow down")
        || m.contains("provisionedthroughputexceeded")
        || m.contains("toomanyrequests")
        || m.contains("requestlimitexceeded")
}
