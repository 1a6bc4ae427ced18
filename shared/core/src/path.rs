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
    /// Parses one entry of a bucket list: `bucket` (the whole bucket), `bucket/` (the same, written
    /// out) or `bucket/prefix`. The bucket must be a valid S3 bucket name and the prefix must not
    /// hold IAM wildcard or policy-variable characters (`*`, `?`, `$`): the template grants object
    /// access to `arn:…:s3:::<bucket>/<prefix>*`, and a wildcard inside the prefix would silently
    /// widen that grant beyond what the entry says.
    pub fn parse(spec: &str) -> Result<Self, String> {
        const FORM: &str = "expected `bucket` or `bucket/prefix`";
        let spec = spec.trim();
        let (bucket, prefix) = match spec.split_once('/') {
            Some((b, p)) => (b, (!p.is_empty()).then(|| p.to_owned())),
            None => (spec, None),
        };
        if bucket.is_empty() {
            return Err(format!("{spec:?} has no bucket name; {FORM}"));
        }
        check_bucket_name(bucket).map_err(|problem| format!("{spec:?}: {problem}; {FORM}"))?;
        if let Some(c) = prefix
            .as_deref()
            .and_then(|p| p.chars().find(|c| matches!(c, '*' | '?' | '$')))
        {
            return Err(format!(
                "{spec:?}: the prefix holds {c:?}, which IAM reads as a wildcard or a policy variable; {FORM} with a literal key prefix"
            ));
        }
        Ok(BucketScope {
            bucket: bucket.to_owned(),
            prefix,
        })
    }

    /// Whether every key this scope covers is also covered by `other` (same bucket, and `other`
    /// has no prefix or a prefix this one starts with).
    pub fn is_within(&self, other: &BucketScope) -> bool {
        self.bucket == other.bucket
            && match (&self.prefix, &other.prefix) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(mine), Some(theirs)) => mine.starts_with(theirs.as_str()),
            }
    }

    /// Whether this scope covers the object `key` in `bucket`.
    pub fn covers(&self, bucket: &str, key: &str) -> bool {
        self.bucket == bucket && self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
    }
}

/// S3's naming rules for general purpose buckets (docs.aws.amazon.com/AmazonS3/latest/userguide/
/// bucketnamingrules.html): 3–63 characters of lowercase letters, digits, `.` and `-`, beginning
/// and ending with a letter or digit, no `..`, and not shaped like an IP address.
fn check_bucket_name(name: &str) -> Result<(), String> {
    let rules = "a bucket name is 3–63 lowercase letters, digits, `.` and `-`, beginning and ending with a letter or digit";
    let edges_ok =
        |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !(3..=63).contains(&name.len())
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        || !edges_ok(name.chars().next())
        || !edges_ok(name.chars().last())
    {
        return Err(format!("{name:?} is not a valid S3 bucket name ({rules})"));
    }
    if name.contains("..") || name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err(format!(
            "{name:?} is not a valid S3 bucket name (no `..`, not an IP address)"
        ));
    }
    Ok(())
}

/// Parses a comma-separated bucket list (`StateBuckets` in the template, `LOCK_BUCKETS` in the
/// functions and the CLI): entries `bucket`, `bucket/` or `bucket/prefix` ([`BucketScope::parse`]),
/// blanks ignored. Every bad entry is reported, not only the first. Two entries of which one covers
/// the other (`acme` and `acme/network/`, or the same entry twice) are refused: the same lock
/// files would be listed, alerted on and counted twice.
pub fn parse_bucket_list(text: &str) -> Result<Vec<BucketScope>, Vec<String>> {
    let mut scopes: Vec<BucketScope> = Vec::new();
    let mut problems = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let scope = match BucketScope::parse(entry) {
            Ok(scope) => scope,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        if let Some(wider) = scopes
            .iter()
            .find(|s| scope.is_within(s) || s.is_within(&scope))
        {
            let (inner, outer) = if scope.is_within(wider) {
                (&scope, wider)
            } else {
                (wider, &scope)
            };
            problems.push(if inner == outer {
                format!("{entry:?} is listed twice; list each bucket or prefix once")
            } else {
                format!(
                    "{inner} is inside {outer}, which is also listed: its locks would be seen twice; list only {outer}"
                )
            });
            continue;
        }
        scopes.push(scope);
    }
    if problems.is_empty() {
        Ok(scopes)
    } else {
        Err(problems)
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
    fn bucket_names_follow_s3_rules() {
        for good in ["abc", "acme-tfstate", "acme.tfstate.eu-west-1", "0bucket9"] {
            assert!(BucketScope::parse(good).is_ok(), "{good:?} should parse");
        }
        for bad in [
            "ab",
            "Acme",
            "acme_tfstate",
            "-acme",
            "acme-",
            "acme..state",
            "192.168.1.10",
            "s3://acme",
            "acme tfstate",
        ] {
            let problem = BucketScope::parse(bad).unwrap_err();
            assert!(problem.contains("bucket name"), "{bad:?}: {problem}");
        }
        assert!(BucketScope::parse(&"a".repeat(64)).is_err());
        assert!(BucketScope::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn prefixes_with_iam_wildcards_are_refused() {
        for bad in ["acme/env:/*/", "acme/a?b/", "acme/${aws:username}/"] {
            let problem = BucketScope::parse(bad).unwrap_err();
            assert!(problem.contains("wildcard"), "{bad:?}: {problem}");
        }
    }

    #[test]
    fn bucket_list_keeps_order_and_prefixes() {
        let scopes =
            parse_bucket_list(" acme-network/env:/prod/ ,, acme-data/,acme-dns/team-a/ ").unwrap();
        let shown: Vec<String> = scopes.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "s3://acme-network/env:/prod/",
                "s3://acme-data",
                "s3://acme-dns/team-a/"
            ]
        );
        assert_eq!(parse_bucket_list(" , ").unwrap(), []);
        // Two prefixes of one bucket that do not overlap are two sources.
        assert_eq!(
            parse_bucket_list("acme/network/,acme/dns/").unwrap().len(),
            2
        );
    }

    #[test]
    fn bucket_list_reports_every_bad_entry() {
        let problems = parse_bucket_list("Bad_Name,acme,acme/x/,acme,/k,acme2/p*").unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].contains("\"Bad_Name\""), "{problems:?}");
        assert!(
            problems[1].contains("s3://acme/x/ is inside s3://acme"),
            "{problems:?}"
        );
        assert!(
            problems[2].contains("\"acme\" is listed twice"),
            "{problems:?}"
        );
        assert!(problems[3].contains("has no bucket name"), "{problems:?}");
        assert!(problems[4].contains("wildcard"), "{problems:?}");
        // The narrower entry first, the wider one second: still refused, naming the wider one.
        let problems = parse_bucket_list("acme/x/y/,acme/x/").unwrap_err();
        assert_eq!(
            problems,
            ["s3://acme/x/y/ is inside s3://acme/x/, which is also listed: its locks would be seen twice; list only s3://acme/x/"]
        );
    }

    #[test]
    fn the_readme_example_of_forty_root_modules_parses() {
        // README.md, "Many root modules: buckets and prefixes"
        let scopes = parse_bucket_list("acme-tfstate-network,acme-tfstate-platform/teams/,acme-tfstate-platform/shared/,acme-tfstate-data/env:/prod/,acme-tfstate-data/prod/,acme-legacy-state/terraform/").unwrap();
        assert_eq!(scopes.len(), 6);
        assert!(scopes[3].covers("acme-tfstate-data", "env:/prod/etl/terraform.tfstate"));
    }

    #[test]
    fn scope_coverage() {
        let scope = BucketScope::parse("acme/env:/prod/").unwrap();
        assert!(scope.covers("acme", "env:/prod/net/terraform.tfstate"));
        assert!(!scope.covers("acme", "env:/staging/net/terraform.tfstate"));
        assert!(!scope.covers("other", "env:/prod/net/terraform.tfstate"));
        assert!(BucketScope::parse("acme")
            .unwrap()
            .covers("acme", "anything"));
    }

    #[test]
    fn lock_file_key_maps_back_to_state() {
        let p = StatePath::from_lock_file("b", "env:/x/k.tfstate.tflock").unwrap();
        assert_eq!(p.key, "env:/x/k.tfstate");
        assert!(StatePath::from_lock_file("b", "k.tfstate").is_none());
        assert!(StatePath::from_lock_file("b", ".tflock").is_none());
    }
}
