//! The Terraform state object a lock protects: evidence of life, and the rollback point.
//!
//! A state write after a lock was taken means its holder is probably alive (Terraform ≥ 1.5
//! persists state every 20 s while resources complete). The `-md5` digest item says what the
//! state *should* hash to; a mismatch means a half-finished write that a person must look at.

use aws_sdk_s3::types::BucketVersioningStatus;
use chrono::{DateTime, Utc};
use lockreaper_core::StatePath;
use md5::{Digest, Md5};

use crate::error::AwsError;
use crate::lock_files::to_chrono;

/// What HeadObject says about a state object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateObject {
    pub last_modified: Option<DateTime<Utc>>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub size: Option<i64>,
}

impl StateObject {
    /// The object's MD5 as lowercase hex when its ETag is one (single-part upload, no SSE-KMS);
    /// `None` when the ETag cannot tell.
    pub fn md5_from_etag(&self) -> Option<String> {
        let etag = self.etag.as_deref()?.trim_matches('"');
        (etag.len() == 32 && etag.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| etag.to_ascii_lowercase())
    }
}

/// A version of the state object, newest first in listings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateVersion {
    pub version_id: String,
    pub last_modified: Option<DateTime<Utc>>,
    pub is_latest: bool,
}

/// Reads state objects.
#[derive(Clone, Debug)]
pub struct StateObjects {
    s3: aws_sdk_s3::Client,
}

impl StateObjects {
    pub fn new(s3: aws_sdk_s3::Client) -> Self {
        StateObjects { s3 }
    }

    /// HeadObject on the state key; `None` when there is no state yet.
    pub async fn head(&self, state: &StatePath) -> Result<Option<StateObject>, AwsError> {
        match self
            .s3
            .head_object()
            .bucket(&state.bucket)
            .key(&state.key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(StateObject {
                last_modified: out.last_modified.and_then(to_chrono),
                etag: out.e_tag,
                version_id: out.version_id,
                size: out.content_length,
            })),
            Err(e) => {
                let err = AwsError::from_sdk(e, "read state object", state.to_string());
                if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The MD5 of the state's bytes, computed by reading it (exact, whatever the ETag is).
    pub async fn md5(&self, state: &StatePath) -> Result<Option<String>, AwsError> {
        let out = match self
            .s3
            .get_object()
            .bucket(&state.bucket)
            .key(&state.key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let err = AwsError::from_sdk(e, "read state object", state.to_string());
                return if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                };
            }
        };
        let mut hasher = Md5::new();
        let mut body = out.body;
        while let Some(chunk) = body.try_next().await.map_err(|e| AwsError {
            kind: crate::error::AwsErrorKind::Transient,
            action: "read state object",
            resource: state.to_string(),
            message: e.to_string(),
        })? {
            hasher.update(&chunk);
        }
        Ok(Some(hex::encode(hasher.finalize())))
    }

    /// Whether the bucket keeps old versions (the rollback point after an unlock).
    pub async fn versioning_enabled(&self, bucket: &str) -> Result<bool, AwsError> {
        let out = self
            .s3
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "read versioning of bucket", bucket))?;
        Ok(out.status == Some(BucketVersioningStatus::Enabled))
    }

    /// The newest versions of the state object (current first), at most `limit`.
    pub async fn versions(
        &self,
        state: &StatePath,
        limit: usize,
    ) -> Result<Vec<StateVersion>, AwsError> {
        let out = self
            .s3
            .list_object_versions()
            .bucket(&state.bucket)
            .prefix(&state.key)
            .max_keys(i32::try_from(limit.saturating_mul(4).min(1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "list versions of", state.to_string()))?;
        let mut versions: Vec<StateVersion> = out
            .versions
            .unwrap_or_default()
            .into_iter()
            .filter(|v| v.key.as_deref() == Some(state.key.as_str()))
            .filter_map(|v| {
                Some(StateVersion {
                    version_id: v.version_id?,
                    last_modified: v.last_modified.and_then(to_chrono),
                    is_latest: v.is_latest.unwrap_or(false),
                })
            })
            .collect();
        versions.sort_by(|a, b| {
            b.is_latest
                .cmp(&a.is_latest)
                .then(b.last_modified.cmp(&a.last_modified))
        });
        versions.truncate(limit);
        Ok(versions)
    }
}
