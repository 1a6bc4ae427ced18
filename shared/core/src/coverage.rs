//! Evidence coverage: whether a lock's state object lives where this deployment may read it.
//!
//! A deployment is given the state buckets (and key prefix) its roles may read, `STATE_BUCKETS`
//! (the template's `StateBuckets` + `StateKeyPrefix`). A Terraform lock whose state lies outside
//! them cannot be checked for signs of life: in AWS the read is refused by IAM, and on an emulator
//! with no IAM it may even succeed. So coverage is decided here, from the configuration alone, and
//! never from whether a read happened to work: an uncovered state is "cannot tell"
//! ([`GapCause::NotCovered`]), which blocks auto-expiry and is named in the alert and the CLI.
//!
//! What is only found when reading (a bucket policy that denies, a bucket in another region) is
//! the same gap, built by [`denied_gap`] and [`other_region_gap`] from the read's error.

use crate::config::{ConfigError, Env};
use crate::decision::{EvidenceGap, EvidenceSource, GapCause};
use crate::path::{BucketScope, StatePath};

/// One configured place state objects may be read: a bucket, optionally only under a key prefix.
/// Today's configuration gives every bucket the one `StateKeyPrefix`; the shape already allows a
/// prefix per bucket (`bucket/prefix` entries).
pub type StateLocation = BucketScope;

/// The variable listing the state locations (`bucket` or `bucket/prefix`, comma-separated).
pub const STATE_BUCKETS: &str = "STATE_BUCKETS";

/// The parameters a deployer changes to cover a bucket, named in every coverage gap.
pub const COVERAGE_PARAMETERS: &str = "StateBuckets/StateKeyPrefix";

/// Whether one state object is covered by the configured locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    Covered,
    /// No configured location names the bucket.
    BucketNotListed {
        bucket: String,
    },
    /// The bucket is listed, but the key lies outside every prefix configured for it.
    OutsidePrefix {
        bucket: String,
        key: String,
        prefixes: Vec<String>,
    },
}

/// Decides whether `state` lies in one of the `configured` locations: its bucket listed, and its
/// key under that entry's prefix (an entry without a prefix covers the whole bucket).
pub fn coverage(configured: &[StateLocation], state: &StatePath) -> Coverage {
    let entries: Vec<&StateLocation> = configured
        .iter()
        .filter(|c| c.bucket == state.bucket)
        .collect();
    if entries.is_empty() {
        return Coverage::BucketNotListed {
            bucket: state.bucket.clone(),
        };
    }
    let under_a_prefix = entries.iter().any(|c| match &c.prefix {
        None => true,
        Some(prefix) => state.key.starts_with(prefix.as_str()),
    });
    if under_a_prefix {
        Coverage::Covered
    } else {
        Coverage::OutsidePrefix {
            bucket: state.bucket.clone(),
            key: state.key.clone(),
            prefixes: entries.iter().filter_map(|c| c.prefix.clone()).collect(),
        }
    }
}

impl Coverage {
    pub fn is_covered(&self) -> bool {
        matches!(self, Coverage::Covered)
    }

    /// The evidence gap an uncovered state leaves (`None` when covered).
    pub fn gap(&self) -> Option<EvidenceGap> {
        let problem = match self {
            Coverage::Covered => return None,
            Coverage::BucketNotListed { bucket } => format!(
                "{}: it is not one of the state buckets configured ({STATE_BUCKETS})",
                not_covered(bucket)
            ),
            Coverage::OutsidePrefix {
                bucket,
                key,
                prefixes,
            } => format!(
                "{}: the key `{key}` is outside its configured key prefix {} ({STATE_BUCKETS})",
                not_covered(bucket),
                prefixes
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        };
        Some(EvidenceGap {
            source: EvidenceSource::StateObject,
            cause: GapCause::NotCovered,
            problem,
        })
    }
}

fn not_covered(bucket: &str) -> String {
    format!("the state bucket `{bucket}` is not covered by this deployment ({COVERAGE_PARAMETERS})")
}

/// The gap when reading `state` was refused (AccessDenied): a bucket policy, an SCP or the role's
/// own policy does not let this deployment read it, whatever the configuration says.
pub fn denied_gap(state: &StatePath, error: &str) -> EvidenceGap {
    EvidenceGap {
        source: EvidenceSource::StateObject,
        cause: GapCause::NotCovered,
        problem: format!(
            "{}: reading {state} was denied ({error}); a bucket policy, an SCP or the role's policy refuses it",
            not_covered(&state.bucket)
        ),
    }
}

/// The gap when S3 answered that `state`'s bucket is in another region than this deployment's.
pub fn other_region_gap(state: &StatePath, error: &str) -> EvidenceGap {
    EvidenceGap {
        source: EvidenceSource::StateObject,
        cause: GapCause::NotCovered,
        problem: format!(
            "{}: its bucket is in another region than this deployment ({error})",
            not_covered(&state.bucket)
        ),
    }
}

/// `STATE_BUCKETS`, when set: the state locations this deployment covers. `None` when it is not
/// set (callers choose their fallback: the reaper and the CLI use `LOCK_BUCKETS`).
pub fn state_locations_from_env(env: &mut Env) -> Option<Vec<StateLocation>> {
    env.get(STATE_BUCKETS)?;
    let mut locations = Vec::new();
    for spec in env.list(STATE_BUCKETS) {
        match BucketScope::parse(&spec) {
            Ok(location) => locations.push(location),
            Err(problem) => env.error(ConfigError::new(STATE_BUCKETS, problem)),
        }
    }
    Some(locations)
}

/// How the state paths one lock source points at fall on one bucket, for `lockreaper doctor`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BucketCoverage {
    pub bucket: String,
    /// The key prefixes configured for the bucket (`STATE_BUCKETS`): empty when the bucket is not
    /// listed, or listed without a prefix (`listed` tells which).
    pub configured_prefixes: Vec<String>,
    /// Whether any configured entry names the bucket.
    pub listed: bool,
    /// State paths seen in the bucket.
    pub state_paths: usize,
    /// Of those, how many lie where the deployment may read (bucket listed, key under a prefix).
    pub covered: usize,
    /// One key of the bucket that is not covered (the first seen), to show people.
    pub uncovered_example: Option<String>,
    /// One key of the bucket (the first seen), for a read probe.
    pub example_key: String,
}

/// Groups the `states` one lock table (or bucket) points at by bucket, each with its coverage
/// against `configured`, in order of first appearance. Pure: `lockreaper doctor` adds the reads.
pub fn group_by_bucket(configured: &[StateLocation], states: &[StatePath]) -> Vec<BucketCoverage> {
    let mut groups: Vec<BucketCoverage> = Vec::new();
    for state in states {
        let index = match groups.iter().position(|g| g.bucket == state.bucket) {
            Some(i) => i,
            None => {
                let entries = configured.iter().filter(|c| c.bucket == state.bucket);
                groups.push(BucketCoverage {
                    bucket: state.bucket.clone(),
                    configured_prefixes: entries.clone().filter_map(|c| c.prefix.clone()).collect(),
                    listed: entries.count() > 0,
                    state_paths: 0,
                    covered: 0,
                    uncovered_example: None,
                    example_key: state.key.clone(),
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        group.state_paths += 1;
        if coverage(configured, state).is_covered() {
            group.covered += 1;
        } else if group.uncovered_example.is_none() {
            group.uncovered_example = Some(state.key.clone());
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locations(specs: &[&str]) -> Vec<StateLocation> {
        specs
            .iter()
            .map(|s| BucketScope::parse(s).unwrap())
            .collect()
    }

    fn state(path: &str) -> StatePath {
        StatePath::parse(path).unwrap()
    }

    #[test]
    fn a_listed_bucket_without_a_prefix_covers_every_key() {
        let configured = locations(&["acme-tfstate", "other"]);
        for path in [
            "acme-tfstate/network/terraform.tfstate",
            "acme-tfstate/env:/prod/app.tfstate",
            "other/x",
        ] {
            assert_eq!(coverage(&configured, &state(path)), Coverage::Covered);
        }
        // The template writes `bucket/` when StateKeyPrefix is empty: the whole bucket.
        assert!(coverage(&locations(&["acme-tfstate/"]), &state("acme-tfstate/a/b")).is_covered());
    }

    #[test]
    fn an_unlisted_bucket_is_not_covered_and_the_gap_says_so() {
        let configured = locations(&["acme-tfstate"]);
        let c = coverage(
            &configured,
            &state("team-b-state/network/terraform.tfstate"),
        );
        assert_eq!(
            c,
            Coverage::BucketNotListed {
                bucket: "team-b-state".into()
            }
        );
        let gap = c.gap().unwrap();
        assert_eq!(gap.cause, GapCause::NotCovered);
        assert_eq!(gap.source, EvidenceSource::StateObject);
        assert_eq!(
            gap.sentence(),
            "cannot tell — the state bucket `team-b-state` is not covered by this deployment (StateBuckets/StateKeyPrefix): it is not one of the state buckets configured (STATE_BUCKETS); a lock whose state lockreaper may not read is never released automatically"
        );
        // Nothing configured covers nothing.
        assert!(!coverage(&[], &state("acme-tfstate/a")).is_covered());
        // Bucket names are compared exactly: a name that only starts the same is another bucket.
        assert!(!coverage(&configured, &state("acme-tfstate-2/a")).is_covered());
    }

    #[test]
    fn a_key_outside_the_prefix_is_not_covered() {
        let configured = locations(&["acme-tfstate/env/"]);
        assert!(coverage(&configured, &state("acme-tfstate/env/prod.tfstate")).is_covered());
        let c = coverage(&configured, &state("acme-tfstate/legacy/prod.tfstate"));
        assert_eq!(
            c,
            Coverage::OutsidePrefix {
                bucket: "acme-tfstate".into(),
                key: "legacy/prod.tfstate".into(),
                prefixes: vec!["env/".into()],
            }
        );
        let sentence = c.gap().unwrap().sentence();
        assert!(
            sentence.contains(
                "the key `legacy/prod.tfstate` is outside its configured key prefix `env/`"
            ),
            "{sentence}"
        );
        // A prefix is a string prefix, as IAM's `${StateKeyPrefix}*` resource is.
        assert!(!coverage(&configured, &state("acme-tfstate/envy.tfstate")).is_covered());
        assert!(coverage(
            &locations(&["acme-tfstate/env"]),
            &state("acme-tfstate/envy")
        )
        .is_covered());
    }

    #[test]
    fn any_entry_for_the_bucket_may_cover_the_key() {
        // Per-bucket prefixes (several entries for one bucket): covered if under any of them.
        let configured = locations(&["acme/env/", "acme/legacy/", "other"]);
        assert!(coverage(&configured, &state("acme/legacy/a.tfstate")).is_covered());
        let c = coverage(&configured, &state("acme/misc/a.tfstate"));
        assert!(
            c.gap()
                .unwrap()
                .problem
                .contains("prefix `env/` or `legacy/`"),
            "{c:?}"
        );
    }

    #[test]
    fn denials_and_other_regions_found_when_reading_are_coverage_gaps() {
        let s = state("locked-down/app.tfstate");
        let denied = denied_gap(&s, "AccessDenied: Access Denied");
        assert_eq!(denied.cause, GapCause::NotCovered);
        assert!(
            denied.sentence().starts_with(
                "cannot tell — the state bucket `locked-down` is not covered by this deployment (StateBuckets/StateKeyPrefix): reading s3://locked-down/app.tfstate was denied (AccessDenied: Access Denied)"
            ),
            "{}",
            denied.sentence()
        );
        let far = other_region_gap(&s, "HTTP 301");
        assert!(
            far.sentence().contains("in another region"),
            "{}",
            far.sentence()
        );
    }

    #[test]
    fn doctor_groups_state_paths_by_bucket_with_their_coverage() {
        let configured = locations(&["acme/env/", "other"]);
        let states: Vec<StatePath> = [
            "acme/env/a.tfstate",
            "team-b/x.tfstate",
            "acme/legacy/b.tfstate",
            "acme/env/c.tfstate",
            "other/y",
            "team-b/z.tfstate",
        ]
        .iter()
        .map(|p| state(p))
        .collect();
        let groups = group_by_bucket(&configured, &states);
        let summary: Vec<(&str, bool, usize, usize, Option<&str>)> = groups
            .iter()
            .map(|g| {
                (
                    g.bucket.as_str(),
                    g.listed,
                    g.state_paths,
                    g.covered,
                    g.uncovered_example.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("acme", true, 3, 2, Some("legacy/b.tfstate")),
                ("team-b", false, 2, 0, Some("x.tfstate")),
                ("other", true, 1, 1, None),
            ]
        );
        assert_eq!(groups[0].configured_prefixes, vec!["env/"]);
        assert_eq!(groups[0].example_key, "env/a.tfstate");
        assert!(groups[1].configured_prefixes.is_empty());
        assert!(group_by_bucket(&configured, &[]).is_empty());
    }

    #[test]
    fn state_buckets_are_read_from_the_environment() {
        let mut env = Env::new([(
            STATE_BUCKETS.to_owned(),
            "acme-tfstate/env/, other".to_owned(),
        )]);
        assert_eq!(
            state_locations_from_env(&mut env),
            Some(locations(&["acme-tfstate/env/", "other"]))
        );
        assert!(env.finish(()).is_ok());
        let mut unset = Env::new([]);
        assert_eq!(state_locations_from_env(&mut unset), None);
        let mut bad = Env::new([(STATE_BUCKETS.to_owned(), "/x".to_owned())]);
        assert_eq!(state_locations_from_env(&mut bad), Some(Vec::new()));
        let text = bad.finish(()).unwrap_err().to_string();
        assert!(
            text.contains("STATE_BUCKETS: \"/x\" has no bucket name"),
            "{text}"
        );
    }
}
