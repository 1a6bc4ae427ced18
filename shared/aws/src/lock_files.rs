//! Reading Terraform/OpenTofu S3-native lock files (`<state key>.tflock`).
//!
//! Listing is cheap and tells each lock file's age (`LastModified`); the body (needed for the lock
//! ID and holder) costs a GET, so callers fetch it only for lock files old enough to matter.

use aws_smithy_types::date_time::Format;
use chrono::{DateTime, Utc};
use lockreaper_core::parse::is_lock_file_key;
use lockreaper_core::{parse_lock_file, BucketScope, LockParseError, LockRecord};

use crate::error::AwsError;

/// What a listing says about a lock file, before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockFileHead {
    pub bucket: String,
    pub key: String,
    pub etag: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    pub size: i64,
}

/// Lists and reads lock files in one bucket.
#[derive(Clone, Debug)]
pub struct LockFiles {
    client: aws_sdk_s3::Client,
}

impl LockFiles {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        LockFiles { client }
    }

    /// Every `*.tflock` object under the scope (all pages). Also returns the number of pages.
    pub async fn list(&self, scope: &BucketScope) -> Result<(Vec<LockFileHead>, usize), AwsError> {
        let mut heads = Vec::new();
        let mut pages = 0;
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&scope.bucket)
                .set_prefix(scope.prefix.clone())
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(e, "list lock files in", scope.to_string()))?;
            pages += 1;
            for object in out.contents.unwrap_or_default() {
                let Some(key) = object.key else { continue };
                if !is_lock_file_key(&key) {
                    continue;
                }
                heads.push(LockFileHead {
                    bucket: scope.bucket.clone(),
                    key,
                    etag: object.e_tag,
                    last_modified: object.last_modified.and_then(to_chrono),
                    size: object.size.unwrap_or_default(),
                });
            }
            match out.next_continuation_token {
                Some(t) if out.is_truncated == Some(true) => token = Some(t),
                _ => break,
            }
        }
        Ok((heads, pages))
    }

    /// Reads and parses one lock file. `Ok(None)` when it is gone (released since the listing).
    pub async fn read(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Result<LockRecord, LockParseError>>, AwsError> {
        let resource = format!("s3://{bucket}/{key}");
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = AwsError::from_sdk(e, "read lock file", resource);
                return if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let etag = out.e_tag.clone().unwrap_or_default();
        let last_modified = out.last_modified.and_then(to_chrono);
        // Read at most one byte more than a lock may be, so a huge object cannot exhaust memory.
        let limit = lockreaper_core::parse::MAX_LOCK_BYTES + 1;
        let mut body = Vec::new();
        let mut stream = out.body;
        while let Some(chunk) = stream.try_next().await.map_err(|e| AwsError {
            kind: crate::error::AwsErrorKind::Transient,
            action: "read lock file",
            resource: resource.clone(),
            message: e.to_string(),
        })? {
            let room = limit.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= limit {
                break;
            }
        }
        Ok(Some(parse_lock_file(
            bucket,
            key,
            &body,
            &etag,
            last_modified,
        )))
    }
}

/// SDK timestamp → chrono.
pub fn to_chrono(t: aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&t.fmt(Format::DateTime).ok()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
