//! Terraform state paths: `<bucket>/<key>`, the string Terraform puts in `LockID` and `Info.Path`.
//!
//! The S3 backend stores a workspace's state at `<workspace_key_prefix>/<workspace>/<key>` (prefix
//! `env:` by default) and the default workspace's at `<key>`; its lock file is `<that key>.tflock` and
//! its digest item is `<bucket>/<that key>-md5`.

use serde::{Deserialize, Serialize};

pub use crate::kinds::terraform::{DIGEST_SUFFIX, LOCK_FILE_SUFFIX};
/// Terraform's default `workspace_key_prefix`.
pub const DEFAULT_WORKSPACE_KEY_PREFIX: &str = "env:";

/// Where a Terraform state object lives in S3.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatePath {
    pub bucket: String,
    pub key: String,
}

/// A lock path that cannot name an S3 object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state path {path:?} is not of the form <bucket>/<key>")]
pub struct StatePathError {
    pub path: String,
}

impl StatePath {
    /// Splits `<bucket>/<key>` at the first `/` (bucket names cannot contain one; keys can).
    pub fn parse(lock_path: &str) -> Result<Self, StatePathError> {
        match lock_path.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(StatePath {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }),
            _ => Err(StatePathError {
                path: lock_path.to_owned(),
            }),
        }
    }

    /// The state for a lock file at `bucket`/`lock_file_key` (which ends in `.tflock`).
    pub fn from_lock_file(bucket: &str, lock_file_key: &str) -> Option<Self> {
        let key = lock_file_key.strip_suffix(LOCK_FILE_SUFFIX)?;
        (!key.is_empty()).then(|| StatePath {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// `<bucket>/<key>`: the `LockID` of the DynamoDB lock item and `Info.Path`.
    pub fn lock_path(&self) -> String {
        format!("{}/{}", self.bucket, self.key)
    }

    /// The key of the S3-native lock file.
    pub fn lock_file_key(&self) -> String {
        format!("{}{LOCK_FILE_SUFFIX}", self.key)
    }

    /// The `LockID` of the digest item.
    pub fn digest_item_key(&self) -> String {
        format!("{}/{}{DIGEST_SUFFIX}", self.bucket, self.key)
    }

    /// The workspace name, assuming the given `workspace_key_prefix` (`None` → Terraform's default
    /// `env:`). Returns `None` for the default workspace.
    pub fn workspace(&self, workspace_key_prefix: Option<&str>) -> Option<&str> {
        let prefix = workspace_key_prefix.unwrap_or(DEFAULT_WORKSPACE_KEY_PREFIX);
        let rest = if prefix.is_empty() {
            // With an empty prefix Terraform stores `<workspace>/<key>`, indistinguishable from a
            // default-workspace key that contains a `/`; we cannot tell, so we do not guess.
            return None;
        } else {
            self.key.strip_prefix(prefix)?.strip_prefix('/')?
        };
        let (workspace, key) = rest.split_once('/')?;
        (!workspace.is_empty() && !key.is_empty()).then_some(workspace)
    }
}

impl std::fmt::Display for StatePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// A configured place to look for lock files: a bucket, optionally narrowed to a key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketScope {
    pub bucket: String,
    pub prefix: Option<String>,
}

impl BucketScope {
    /// Parses `bucket` or `bucket/prefix`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        let (bucket, prefix) = match spec.split_once('/') {
            Some((b, p)) => (b, (!p.is_empty()).then(|| p.to_owned())),
            None => (spec, None),
        };
        if bucket.is_empty() {
            return Err(format!(
                "{spec:?} has no bucket name; expected `bucket` or `bucket/prefix`"
            ));
        }
        Ok(BucketScope {
            bucket: bucket.to_owned(),
            prefix,
        })
    }
}

impl std::fmt::Display for BucketScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.prefix {
            Some(p) => write!(f, "s3://{}/{}", self.bucket, p),
            None => write!(f, "s3://{}", self.bucket),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_slash_only() {
        let p = StatePath::parse("acme-tfstate/env:/staging/network/terraform.tfstate").unwrap();
        assert_eq!(p.bucket, "acme-tfstate");
        assert_eq!(p.key, "env:/staging/network/terraform.tfstate");
        assert_eq!(p.workspace(None), Some("staging"));
        assert_eq!(
            p.lock_file_key(),
            "env:/staging/network/terraform.tfstate.tflock"
        );
        assert_eq!(
            p.digest_item_key(),
            "acme-tfstate/env:/staging/network/terraform.tfstate-md5"
        );
        assert_eq!(
            p.lock_path(),
            "acme-tfstate/env:/staging/network/terraform.tfstate"
        );
    }

    #[test]
    fn default_workspace_has_no_workspace() {
        let p = StatePath::parse("b/network/terraform.tfstate").unwrap();
        assert_eq!(p.workspace(None), None);
    }

    #[test]
    fn custom_workspace_prefix() {
        let p = StatePath::parse("b/workspaces/dev/app.tfstate").unwrap();
        assert_eq!(p.workspace(Some("workspaces")), Some("dev"));
        assert_eq!(p.workspace(None), None);
        assert_eq!(p.workspace(Some("")), None);
    }

    #[test]
    fn unicode_and_spaces_survive() {
        let p = StatePath::parse("b/équipe réseau/état final.tfstate").unwrap();
        assert_eq!(p.key, "équipe réseau/état final.tfstate");
        assert_eq!(p.lock_file_key(), "équipe réseau/état final.tfstate.tflock");
    }

    #[test]
    fn rejects_paths_without_a_key() {
        for bad in ["", "bucket", "bucket/", "/key"] {
            assert!(StatePath::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn bucket_scopes() {
        let plain = BucketScope::parse("acme").unwrap();
        assert_eq!((plain.bucket.as_str(), plain.prefix), ("acme", None));
        // The template writes `bucket/` when no prefix is configured: that means no prefix.
        assert_eq!(BucketScope::parse("acme/").unwrap().prefix, None);
        let scoped = BucketScope::parse(" acme/env:/prod/ ").unwrap();
        assert_eq!(scoped.prefix.as_deref(), Some("env:/prod/"));
        assert_eq!(scoped.to_string(), "s3://acme/env:/prod/");
        assert!(BucketScope::parse("/x")
            .unwrap_err()
            .contains("has no bucket name"));
    }

    #[test]
    fn lock_file_key_maps_back_to_state() {
        let p = StatePath::from_lock_file("b", "env:/x/k.tfstate.tflock").unwrap();
        assert_eq!(p.key, "env:/x/k.tfstate");
        assert!(StatePath::from_lock_file("b", "k.tfstate").is_none());
        assert!(StatePath::from_lock_file("b", ".tflock").is_none());
    }
}
