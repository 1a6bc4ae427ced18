//! The sweep's CloudWatch metrics (EMF lines on stdout, see `lockreaper_aws::emf`): per table or bucket, locks, stale locks, the oldest lock's age
//! and unparseable locks; and the sweep's errors.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use lockreaper_core::metrics::{MetricDatum, MetricValue, Unit};
use lockreaper_core::LockParseError;

use crate::{LockGroup, Reaper, SweepOutcome};

/// Metric names of the sweep.
pub const ACTIVE_LOCKS: &str = "ActiveLocks";
pub const STALE_LOCKS: &str = "StaleLocks";
pub const OLDEST_LOCK_AGE_SECONDS: &str = "OldestLockAgeSeconds";
pub const UNPARSEABLE_LOCKS: &str = "UnparseableLocks";
pub const SWEEP_ERRORS: &str = "SweepErrors";

impl Reaper {
    pub(crate) async fn put_metrics(
        &self,
        per_container: &BTreeMap<String, ContainerStats>,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) {
        let mut data = Vec::new();
        let minute = now;
        for (container, stats) in per_container {
            let datum = |name: &'static str, unit: Unit, value: f64| MetricDatum {
                name,
                dimensions: vec![("LockTable", container.clone())],
                unit,
                timestamp: minute,
                value: MetricValue::Single(value),
            };
            data.push(datum(ACTIVE_LOCKS, Unit::Count, stats.active as f64));
            data.push(datum(STALE_LOCKS, Unit::Count, stats.stale as f64));
            data.push(datum(
                OLDEST_LOCK_AGE_SECONDS,
                Unit::Seconds,
                stats.oldest as f64,
            ));
            data.push(datum(
                UNPARSEABLE_LOCKS,
                Unit::Count,
                stats.unparseable as f64,
            ));
        }
        let errors = (out.unreachable.len() + out.errors.len()) as f64;
        data.push(MetricDatum {
            name: SWEEP_ERRORS,
            dimensions: Vec::new(),
            unit: Unit::Count,
            timestamp: minute,
            value: MetricValue::Single(errors),
        });
        // EMF lines on stdout: no AWS call, so nothing to add to `aws_calls`.
        if let Err(e) = self.metrics.emit(&data) {
            tracing::error!(event = "metrics-failed", error = %e);
            out.errors.push(e.to_string());
        }
    }
}

/// Adds one lock group (every artefact, in its own table or bucket) to the per-container stats.
pub(crate) fn count_group(
    per_container: &mut BTreeMap<String, ContainerStats>,
    group: &LockGroup,
    age_seconds: u64,
    stale: bool,
) {
    for lock in &group.locks {
        let stats = per_container
            .entry(lock.location.container().to_owned())
            .or_default();
        stats.active += 1;
        if stale {
            stats.stale += 1;
        }
        stats.oldest = stats.oldest.max(age_seconds);
    }
}

#[derive(Debug, Default)]
pub(crate) struct ContainerStats {
    pub(crate) active: usize,
    pub(crate) stale: usize,
    pub(crate) oldest: u64,
    pub(crate) unparseable: usize,
}

pub(crate) fn container_of_error(e: &LockParseError) -> String {
    // `dynamodb://<table> (...)` or `s3://<bucket>/<key>`.
    let rest = e
        .location
        .strip_prefix("dynamodb://")
        .or_else(|| e.location.strip_prefix("s3://"))
        .unwrap_or(&e.location);
    rest.split([' ', '/']).next().unwrap_or(rest).to_owned()
}
