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
    /// `x-amz-server-side-encryption`: `AES256` (SSE-S3), `aws:kms` (SSE-KMS), `aws:kms:dsse`
    /// (DSSE-KMS); `None` when S3 names none.
    pub server_side_encryption: Option<String>,
    /// `x-amz-server-side-encryption-customer-algorithm`: set when the object is encrypted with a
    /// key the writer supplied (SSE-C).
    pub sse_customer_algorithm: Option<String>,
}

impl StateObject {
    /// The object's MD5 as lowercase hex when its ETag is one; `None` when the ETag cannot tell.
    ///
    /// S3 ("Checking object integrity", Object and ETag in the API reference): objects "encrypted
    /// by SSE-S3 or plaintext, have ETags that are an MD5 digest of their object data"; objects
    /// "encrypted by SSE-C or SSE-KMS, have ETags that are not an MD5 digest", and a multipart
    /// upload's ETag is not one either (it has a `-<parts>` suffix). An SSE-KMS ETag is still 32
    /// hex digits, so the shape alone cannot tell: the encryption header decides first. A caller
    /// that needs the digest of an encrypted state reads it ([`StateObjects::md5`]).
    pub fn md5_from_etag(&self) -> Option<String> {
        etag_md5(
            self.etag.as_deref()?,
            self.server_side_encryption.as_deref(),
            self.sse_customer_algorithm.as_deref(),
        )
    }
}

/// The MD5 an ETag carries, given the object's encryption headers (see
/// [`StateObject::md5_from_etag`]).
fn etag_md5(
    etag: &str,
    server_side_encryption: Option<&str>,
    sse_customer_algorithm: Option<&str>,
) -> Option<String> {
    // SSE-KMS and DSSE-KMS (`aws:kms`, `aws:kms:dsse`), and any KMS-based mode S3 adds under the
    // same prefix; `AES256` (SSE-S3) keeps the MD5 ETag.
    let kms = server_side_encryption.is_some_and(|sse| sse.starts_with("aws:kms"));
    if kms || sse_customer_algorithm.is_some() {
        return None;
    }
    let etag = etag.trim_matches('"');
    (etag.len() == 32 && etag.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| etag.to_ascii_lowercase())
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
                server_side_encryption: out.server_side_encryption.map(|e| e.as_str().to_owned()),
                sse_customer_algorithm: out.sse_customer_algorithm,
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

    /// The MD5 of the state's bytes, computed by reading it (exact, whatever the ETag is: S3
    /// decrypts SSE-KMS objects for a reader allowed `kms:Decrypt` on the key).
    ///
    /// The body is fed to the hasher chunk by chunk as it arrives and each chunk dropped, so memory
    /// stays at one network buffer whatever the state's size (a 200 MB state in a 256 MB
    /// function); the body is never collected.
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

#[cfg(test)]
mod tests {
    use super::etag_md5;

    const MD5: &str = "c0f45e34ed60c6e660c5cd0b292c5b9c";

    #[test]
    fn a_plain_or_sse_s3_single_part_etag_is_the_md5() {
        let quoted = format!("\"{}\"", MD5.to_ascii_uppercase());
        assert_eq!(etag_md5(&quoted, None, None).as_deref(), Some(MD5));
        assert_eq!(etag_md5(MD5, Some("AES256"), None).as_deref(), Some(MD5));
    }

    #[test]
    fn an_sse_kms_or_sse_c_etag_is_never_taken_for_the_md5() {
        // Same 32-hex shape as an MD5: only the encryption headers can tell.
        assert_eq!(etag_md5(MD5, Some("aws:kms"), None), None);
        assert_eq!(etag_md5(MD5, Some("aws:kms:dsse"), None), None);
        assert_eq!(etag_md5(MD5, None, Some("AES256")), None);
        assert_eq!(etag_md5(MD5, Some("AES256"), Some("AES256")), None);
    }

    #[test]
    fn a_multipart_or_malformed_etag_is_not_an_md5() {
        assert_eq!(etag_md5(&format!("\"{MD5}-3\""), None, None), None);
        assert_eq!(etag_md5("", None, None), None);
        assert_eq!(etag_md5(&MD5[..31], None, None), None);
        assert_eq!(etag_md5(&format!("{}zz", &MD5[..30]), None, None), None);
    }
}
