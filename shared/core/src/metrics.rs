//! Lock lifecycle metrics: the lock events of one batch aggregated into CloudWatch metric data.
//!
//! The events are [`crate::lifecycle`]'s model, from a lock table's stream or a bucket's S3 events.
//! Dimensions are `LockTable` (table or bucket) and `LockKind` (`terraform-dynamodb`, `gyro-dynamodb`,
//! `terraform-s3-lockfile`: the store is in the kind) — never the
//! lock path or ID: every distinct dimension value is a separately billed custom metric, so those
//! go into the structured log line instead. `UnparseableRecords` has `LockTable` only (an item
//! that cannot be parsed has no known kind).
//!
//! | metric | unit | what |
//! | --- | --- | --- |
//! | [`LOCKS_ACQUIRED`] | Count | lock items inserted |
//! | [`LOCKS_RELEASED`] | Count | lock items removed, however |
//! | [`LOCK_HOLD_SECONDS`] | Seconds | one value per release with a known hold time, each a value of the EMF metric array so p50/p99/max work |
//! | [`FORCED_RELEASES`] | Count | releases done by lockreaper's force-unlock (also counted in `LocksReleased`) |
//! | [`EXPIRED_RELEASES`] | Count | releases done by DynamoDB TTL or an S3 Lifecycle expiration rule (also counted in `LocksReleased`) |
//! | [`STATE_WRITES`] | Count | Terraform digest writes: a lock holder is alive and writing state |
//! | [`UNPARSEABLE_RECORDS`] | Count | records that could not be understood (logged with the reason) |
//!
//! Each datum is stamped with the minute its records happened in, so a batch that is retried
//! hours later still lands where the locks happened (clamped to what CloudWatch accepts). The data
//! are published as CloudWatch Embedded Metric Format log lines ([`emf`]): a line on stdout per
//! dimension set and minute, no API call.

pub mod emf;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use serde::Serialize;

use crate::lifecycle::{Lifecycle, LifecycleEvent, Release};
use crate::stream::Classified;

pub const LOCKS_ACQUIRED: &str = "LocksAcquired";
pub const LOCKS_RELEASED: &str = "LocksReleased";
pub const LOCK_HOLD_SECONDS: &str = "LockHoldSeconds";
pub const FORCED_RELEASES: &str = "ForcedReleases";
pub const EXPIRED_RELEASES: &str = "ExpiredReleases";
pub const STATE_WRITES: &str = "StateWrites";
pub const UNPARSEABLE_RECORDS: &str = "UnparseableRecords";

/// Dimension: the lock table's name.
pub const DIM_TABLE: &str = "LockTable";
/// Dimension: the tool kind ([`crate::LockKind::as_str`]).
pub const DIM_KIND: &str = "LockKind";

/// `METRICS_NAMESPACE` when unset.
pub const DEFAULT_NAMESPACE: &str = "LockReaper";

/// CloudWatch accepts metric timestamps (EMF's too) up to two weeks old (kept a day inside) and two
/// hours ahead.
const MAX_PAST: ChronoDuration = ChronoDuration::days(13);
const MAX_FUTURE: ChronoDuration = ChronoDuration::hours(1);

/// Validates a CloudWatch namespace: 1–255 characters, no leading colon, not starting with `AWS/`
/// (reserved for AWS), and only the characters CloudWatch allows.
pub fn parse_namespace(text: &str) -> Result<String, String> {
    let expected = "expected a CloudWatch namespace of 1–255 characters (letters, digits and . - _ / # : space), not starting with `:` or `AWS/`, e.g. `LockReaper`";
    let ns = text.trim();
    if ns.is_empty() {
        return Err(format!("is empty; {expected}"));
    }
    if ns.chars().count() > 255 {
        return Err(format!(
            "is {} characters long; {expected}",
            ns.chars().count()
        ));
    }
    if ns.starts_with(':') {
        return Err(format!("{ns:?} starts with `:`; {expected}"));
    }
    if ns.starts_with("AWS/") {
        return Err(format!(
            "{ns:?} starts with `AWS/`, which is reserved for AWS services; {expected}"
        ));
    }
    if let Some(bad) = ns
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_/#: ".contains(*c)))
    {
        return Err(format!("{ns:?} contains {bad:?}; {expected}"));
    }
    Ok(ns.to_owned())
}

/// The unit of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    Count,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
        }
    }
}

/// A datum's value: one number, or a distribution of values with how often each occurred.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum MetricValue {
    Single(f64),
    /// `values` and `counts` of the same length: each value occurred `counts[i]` times.
    Distribution {
        values: Vec<f64>,
        counts: Vec<f64>,
    },
}

/// One CloudWatch metric datum, without SDK types.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDatum {
    pub name: &'static str,
    /// `(name, value)` pairs, in a fixed order.
    pub dimensions: Vec<(&'static str, String)>,
    pub unit: Unit,
    /// Whole minutes, UTC.
    pub timestamp: DateTime<Utc>,
    pub value: MetricValue,
}

/// What a datum is about: metric, table, kind, minute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    metric: &'static str,
    table: String,
    kind: Option<&'static str>,
    minute: DateTime<Utc>,
}

/// The metrics of a set of lock events, aggregated.
#[derive(Debug, Clone)]
pub struct BatchMetrics {
    now: DateTime<Utc>,
    counters: BTreeMap<Key, u64>,
    /// Hold times in whole seconds → how many releases held that long.
    holds: BTreeMap<Key, BTreeMap<u64, u64>>,
}

impl BatchMetrics {
    /// `now` bounds the timestamps to what PutMetricData accepts.
    pub fn new(now: DateTime<Utc>) -> Self {
        BatchMetrics {
            now,
            counters: BTreeMap::new(),
            holds: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.holds.is_empty()
    }

    fn minute(&self, at: DateTime<Utc>) -> DateTime<Utc> {
        let at = at.clamp(self.now - MAX_PAST, self.now + MAX_FUTURE);
        at.duration_trunc(ChronoDuration::minutes(1)).unwrap_or(at)
    }

    /// The (counter keys, hold key and seconds) one lifecycle event contributes.
    fn contributions(&self, e: &LifecycleEvent) -> (Vec<Key>, Option<(Key, u64)>) {
        let minute = self.minute(e.at);
        let kind = e.kind.map(|k| k.as_str());
        let key = |metric: &'static str, kind: Option<&'static str>| Key {
            metric,
            table: e.container.clone(),
            kind,
            minute,
        };
        match &e.lifecycle {
            Lifecycle::Acquired => (vec![key(LOCKS_ACQUIRED, kind)], None),
            Lifecycle::Released { release, hold } => {
                let mut counters = vec![key(LOCKS_RELEASED, kind)];
                match release {
                    Release::Forced => counters.push(key(FORCED_RELEASES, kind)),
                    Release::Expired => counters.push(key(EXPIRED_RELEASES, kind)),
                    Release::Normal => {}
                }
                let hold = hold.map(|h| (key(LOCK_HOLD_SECONDS, kind), h.as_secs()));
                (counters, hold)
            }
            Lifecycle::StateWritten => (vec![key(STATE_WRITES, kind)], None),
            Lifecycle::Unparseable => (vec![key(UNPARSEABLE_RECORDS, None)], None),
            Lifecycle::Uncounted => (vec![], None),
        }
    }

    /// Adds one classified stream record.
    pub fn add(&mut self, c: &Classified) {
        self.add_event(&c.lifecycle());
    }

    /// Adds one lifecycle event, from whichever source.
    pub fn add_event(&mut self, e: &LifecycleEvent) {
        let (counters, hold) = self.contributions(e);
        for key in counters {
            *self.counters.entry(key).or_insert(0) += 1;
        }
        if let Some((key, secs)) = hold {
            *self.holds.entry(key).or_default().entry(secs).or_insert(0) += 1;
        }
    }

    /// The metric data: one per metric, table, kind and minute (a hold distribution whole; EMF
    /// rendering splits it into arrays within the limits).
    pub fn data(&self) -> Vec<MetricDatum> {
        let dims = |key: &Key| {
            let mut dims = vec![(DIM_TABLE, key.table.clone())];
            if let Some(kind) = key.kind {
                dims.push((DIM_KIND, kind.to_owned()));
            }
            dims
        };
        let mut data: Vec<MetricDatum> = self
            .counters
            .iter()
            .map(|(key, n)| MetricDatum {
                name: key.metric,
                dimensions: dims(key),
                unit: Unit::Count,
                timestamp: key.minute,
                value: MetricValue::Single(*n as f64),
            })
            .collect();
        for (key, values) in &self.holds {
            data.push(MetricDatum {
                name: key.metric,
                dimensions: dims(key),
                unit: Unit::Seconds,
                timestamp: key.minute,
                value: MetricValue::Distribution {
                    values: values.keys().map(|s| *s as f64).collect(),
                    counts: values.values().map(|n| *n as f64).collect(),
                },
            });
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        DeletePrecondition, DigestRecord, LockCreated, LockKind, LockLocation, LockRecord,
    };
    use crate::stream::LockEvent;
    use chrono::TimeZone;
    use std::time::Duration;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
    }

    fn lock(table: &str, kind: LockKind) -> LockRecord {
        LockRecord {
            kind,
            location: LockLocation::DynamoDb {
                table: table.to_owned(),
                key_attribute: "LockID".to_owned(),
                key: "b/k".to_owned(),
            },
            lock_id: "id-1".to_owned(),
            who: None,
            operation: None,
            tool_version: None,
            created: LockCreated::Recorded(now()),
            state_path: "b/k".to_owned(),
            info: None,
            last_modified: None,
            precondition: DeletePrecondition::InfoEquals(String::new()),
            raw: String::new(),
        }
    }

    fn record(table: &str, at: DateTime<Utc>, event: LockEvent) -> Classified {
        Classified {
            table: table.to_owned(),
            record_id: "1".to_owned(),
            event_id: "e".to_owned(),
            change: None,
            at,
            removed_by: None,
            event,
        }
    }

    fn released(table: &str, secs: u64, release: Release) -> Classified {
        record(
            table,
            now(),
            LockEvent::Released {
                lock: lock(table, LockKind::TerraformDynamoDb),
                release,
                hold: Some(Duration::from_secs(secs)),
            },
        )
    }

    fn find<'a>(data: &'a [MetricDatum], name: &str, table: &str) -> Vec<&'a MetricDatum> {
        data.iter()
            .filter(|d| d.name == name && d.dimensions[0].1 == table)
            .collect()
    }

    #[test]
    fn namespaces_follow_cloudwatch_rules() {
        assert_eq!(parse_namespace("LockReaper"), Ok("LockReaper".to_owned()));
        assert_eq!(
            parse_namespace("Acme/Locks: prod#1"),
            Ok("Acme/Locks: prod#1".to_owned())
        );
        for (bad, why) in [
            ("", "is empty"),
            ("   ", "is empty"),
            (":Locks", "starts with `:`"),
            ("AWS/DynamoDB", "reserved for AWS"),
            ("Lock$Reaper", "contains '$'"),
        ] {
            let err = parse_namespace(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains("expected a CloudWatch namespace"), "{err}");
        }
        assert!(parse_namespace(&"x".repeat(255)).is_ok());
        assert!(parse_namespace(&"x".repeat(256))
            .unwrap_err()
            .contains("256 characters"));
    }

    #[test]
    fn counts_are_summed_per_table_kind_and_minute() {
        let mut m = BatchMetrics::new(now());
        let tf = LockKind::TerraformDynamoDb;
        for _ in 0..3 {
            m.add(&record(
                "a",
                now(),
                LockEvent::Acquired {
                    lock: lock("a", tf),
                },
            ));
        }
        m.add(&record(
            "b",
            now() + ChronoDuration::seconds(30),
            LockEvent::Acquired {
                lock: lock("b", LockKind::GyroDynamoDb),
            },
        ));
        m.add(&record(
            "a",
            now() + ChronoDuration::seconds(61),
            LockEvent::Acquired {
                lock: lock("a", tf),
            },
        ));
        m.add(&record(
            "a",
            now(),
            LockEvent::Unparseable {
                reason: "x".to_owned(),
            },
        ));
        m.add(&record(
            "a",
            now(),
            LockEvent::Ignored {
                reason: "x".to_owned(),
            },
        ));
        m.add(&record(
            "a",
            now(),
            LockEvent::StateWritten {
                digest: DigestRecord {
                    table: "a".to_owned(),
                    item_key: "b/k-md5".to_owned(),
                    state_path: "b/k".to_owned(),
                    digest: Some("d".to_owned()),
                },
            },
        ));
        let data = m.data();
        let acquired_a = find(&data, LOCKS_ACQUIRED, "a");
        assert_eq!(acquired_a.len(), 2, "one datum per minute: {acquired_a:?}");
        assert_eq!(acquired_a[0].value, MetricValue::Single(3.0));
        assert_eq!(acquired_a[0].timestamp, now());
        assert_eq!(
            acquired_a[0].dimensions,
            vec![
                (DIM_TABLE, "a".to_owned()),
                (DIM_KIND, "terraform-dynamodb".to_owned())
            ]
        );
        assert_eq!(acquired_a[1].value, MetricValue::Single(1.0));
        assert_eq!(
            acquired_a[1].timestamp,
            now() + ChronoDuration::minutes(1),
            "truncated to the minute"
        );
        let acquired_b = find(&data, LOCKS_ACQUIRED, "b");
        assert_eq!(
            acquired_b[0].dimensions[1],
            (DIM_KIND, "gyro-dynamodb".to_owned())
        );
        let bad = find(&data, UNPARSEABLE_RECORDS, "a");
        assert_eq!(bad[0].value, MetricValue::Single(1.0));
        assert_eq!(
            bad[0].dimensions.len(),
            1,
            "unparseable records have no kind"
        );
        assert_eq!(
            find(&data, STATE_WRITES, "a")[0].value,
            MetricValue::Single(1.0)
        );
        assert_eq!(data.len(), 5, "ignored records add nothing: {data:#?}");
        for d in &data {
            assert!(
                d.dimensions
                    .iter()
                    .all(|(n, _)| *n == DIM_TABLE || *n == DIM_KIND),
                "never the lock path or ID as a dimension"
            );
        }
    }

    #[test]
    fn releases_count_kinds_and_hold_distribution() {
        let mut m = BatchMetrics::new(now());
        for (secs, release) in [
            (5, Release::Normal),
            (5, Release::Normal),
            (7, Release::Forced),
            (9000, Release::Expired),
        ] {
            m.add(&released("t", secs, release));
        }
        // A Gyro release with an unknown first-seen time: counted, no hold value.
        m.add(&record(
            "t",
            now(),
            LockEvent::Released {
                lock: lock("t", LockKind::TerraformDynamoDb),
                release: Release::Normal,
                hold: None,
            },
        ));
        let data = m.data();
        assert_eq!(
            find(&data, LOCKS_RELEASED, "t")[0].value,
            MetricValue::Single(5.0)
        );
        assert_eq!(
            find(&data, FORCED_RELEASES, "t")[0].value,
            MetricValue::Single(1.0)
        );
        assert_eq!(
            find(&data, EXPIRED_RELEASES, "t")[0].value,
            MetricValue::Single(1.0)
        );
        let hold = find(&data, LOCK_HOLD_SECONDS, "t");
        assert_eq!(hold.len(), 1);
        assert_eq!(hold[0].unit, Unit::Seconds);
        assert_eq!(
            hold[0].value,
            MetricValue::Distribution {
                values: vec![5.0, 7.0, 9000.0],
                counts: vec![2.0, 1.0, 1.0]
            }
        );
    }

    #[test]
    fn timestamps_are_clamped_to_what_cloudwatch_accepts() {
        let mut m = BatchMetrics::new(now());
        m.add(&record(
            "t",
            DateTime::<Utc>::UNIX_EPOCH,
            LockEvent::Unparseable {
                reason: "no time".to_owned(),
            },
        ));
        let ts = m.data()[0].timestamp;
        assert!(ts >= now() - ChronoDuration::days(14), "{ts}");
    }

    #[test]
    fn a_batch_of_1000_releases_is_a_few_emf_lines_counting_each_record_once() {
        let records: Vec<Classified> = (0..1000)
            .map(|i| released("t", i % 600, Release::Normal))
            .collect();
        let mut m = BatchMetrics::new(now());
        for r in &records {
            m.add(r);
        }
        let lines = emf::render("LockReaper", &m.data()).unwrap();
        // LocksReleased once, 1000 hold values in arrays of 100.
        assert_eq!(lines.len(), 10, "{lines:#?}");
        let read = emf::read_output(&lines.join("\n")).unwrap();
        let dims = [(DIM_TABLE, "t"), (DIM_KIND, "terraform-dynamodb")];
        assert_eq!(emf::sum(&read, "LockReaper", LOCKS_RELEASED, &dims), 1000.0);
        let holds = emf::values(&read, "LockReaper", LOCK_HOLD_SECONDS, &dims);
        assert_eq!(holds.len(), 1000, "one value per release");
        assert_eq!(
            holds.iter().filter(|v| **v == 5.0).count(),
            2,
            "5 s: i = 5 and 605"
        );
    }

    #[test]
    fn a_batch_over_many_tables_renders_one_document_per_table() {
        let mut m = BatchMetrics::new(now());
        for i in 0..1500 {
            let table = format!("t{i}");
            m.add(&record(
                &table,
                now(),
                LockEvent::Acquired {
                    lock: lock(&table, LockKind::TerraformDynamoDb),
                },
            ));
        }
        let lines = emf::render("LockReaper", &m.data()).unwrap();
        assert_eq!(lines.len(), 1500);
        let read = emf::read_output(&lines.join("\n")).unwrap();
        assert_eq!(read.len(), 1500);
        assert!(read
            .iter()
            .all(|x| x.name == LOCKS_ACQUIRED && x.values == [1.0]));
    }
}
