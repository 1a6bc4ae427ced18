//! Lock lifecycle metrics: the lock events of one batch aggregated into CloudWatch metric data.
//!
//! Dimensions are `LockTable` and `LockKind` (`terraform-dynamodb`, `gyro-dynamodb`) — never the
//! lock path or ID: every distinct dimension value is a separately billed custom metric, so those
//! go into the structured log line instead. `UnparseableRecords` has `LockTable` only (an item
//! that cannot be parsed has no known kind).
//!
//! | metric | unit | what |
//! | --- | --- | --- |
//! | [`LOCKS_ACQUIRED`] | Count | lock items inserted |
//! | [`LOCKS_RELEASED`] | Count | lock items removed, however |
//! | [`LOCK_HOLD_SECONDS`] | Seconds | one value per release with a known hold time, sent as `Values`/`Counts` so p50/p99/max work |
//! | [`FORCED_RELEASES`] | Count | releases done by lockreaper's force-unlock (also counted in `LocksReleased`) |
//! | [`EXPIRED_RELEASES`] | Count | releases done by DynamoDB TTL (also counted in `LocksReleased`) |
//! | [`STATE_WRITES`] | Count | Terraform digest writes: a lock holder is alive and writing state |
//! | [`UNPARSEABLE_RECORDS`] | Count | records that could not be understood (logged with the reason) |
//!
//! Each datum is stamped with the minute its records happened in, so a batch that is retried
//! hours later still lands where the locks happened (clamped to what PutMetricData accepts).
//! [`plan_calls`] groups the records of a batch into as few PutMetricData calls as the API limits
//! allow — one in the normal case — such that every record is counted by exactly one call: a
//! failed call then names exactly the records to report back to Lambda.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use serde::Serialize;

use crate::stream::{Classified, LockEvent, Release};

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

/// PutMetricData: at most 1000 metric data per request.
pub const MAX_DATA_PER_CALL: usize = 1000;
/// PutMetricData: at most 150 values in one datum's `Values` array.
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// PutMetricData requests are limited to 1 MB; this leaves room for the envelope and estimate error.
pub const MAX_CALL_BYTES: usize = 900_000;
/// PutMetricData accepts timestamps up to two weeks old (kept a day inside) and two hours ahead.
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
    /// `Values` and `Counts` of the same length (≤ [`MAX_VALUES_PER_DATUM`] each once split).
    Distribution {
        values: Vec<f64>,
        counts: Vec<f64>,
    },
}

impl MetricValue {
    fn len(&self) -> usize {
        match self {
            MetricValue::Single(_) => 1,
            MetricValue::Distribution { values, .. } => values.len(),
        }
    }
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

impl MetricDatum {
    /// A rough upper bound of this datum's size in a PutMetricData (awsQuery) request.
    pub fn estimated_bytes(&self) -> usize {
        let dims: usize = self
            .dimensions
            .iter()
            .map(|(n, v)| 90 + n.len() + v.len())
            .sum();
        180 + self.name.len() + dims + 100 * self.value.len()
    }

    /// Splits a distribution into data of at most `max_values` values each.
    pub fn split(self, max_values: usize) -> Vec<MetricDatum> {
        let max_values = max_values.max(1);
        match &self.value {
            MetricValue::Distribution { values, counts } if values.len() > max_values => values
                .chunks(max_values)
                .zip(counts.chunks(max_values))
                .map(|(v, c)| MetricDatum {
                    value: MetricValue::Distribution {
                        values: v.to_vec(),
                        counts: c.to_vec(),
                    },
                    ..self.clone()
                })
                .collect(),
            _ => vec![self],
        }
    }
}

/// Splits data into requests within the PutMetricData limits: values per datum, data per request,
/// bytes per request. Order is kept.
pub fn split_into_calls(data: Vec<MetricDatum>) -> Vec<Vec<MetricDatum>> {
    let mut calls: Vec<Vec<MetricDatum>> = Vec::new();
    let mut current: Vec<MetricDatum> = Vec::new();
    let mut bytes = 0;
    for datum in data.into_iter().flat_map(|d| d.split(MAX_VALUES_PER_DATUM)) {
        let size = datum.estimated_bytes();
        if !current.is_empty()
            && (current.len() >= MAX_DATA_PER_CALL || bytes + size > MAX_CALL_BYTES)
        {
            calls.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(datum);
    }
    if !current.is_empty() {
        calls.push(current);
    }
    calls
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

    /// The (counter keys, hold key and seconds) one record contributes.
    fn contributions(&self, c: &Classified) -> (Vec<Key>, Option<(Key, u64)>) {
        let minute = self.minute(c.at);
        let kind = c.event.kind().map(|k| k.as_str());
        let key = |metric: &'static str, kind: Option<&'static str>| Key {
            metric,
            table: c.table.clone(),
            kind,
            minute,
        };
        match &c.event {
            LockEvent::Acquired { .. } => (vec![key(LOCKS_ACQUIRED, kind)], None),
            LockEvent::Released { release, hold, .. } => {
                let mut counters = vec![key(LOCKS_RELEASED, kind)];
                match release {
                    Release::Forced => counters.push(key(FORCED_RELEASES, kind)),
                    Release::Expired => counters.push(key(EXPIRED_RELEASES, kind)),
                    Release::Normal => {}
                }
                let hold = hold.map(|h| (key(LOCK_HOLD_SECONDS, kind), h.as_secs()));
                (counters, hold)
            }
            LockEvent::StateWritten { .. } => (vec![key(STATE_WRITES, kind)], None),
            LockEvent::Unparseable { .. } => (vec![key(UNPARSEABLE_RECORDS, None)], None),
            LockEvent::Modified { .. } | LockEvent::Ignored { .. } => (vec![], None),
        }
    }

    /// Adds one classified record.
    pub fn add(&mut self, c: &Classified) {
        let (counters, hold) = self.contributions(c);
        for key in counters {
            *self.counters.entry(key).or_insert(0) += 1;
        }
        if let Some((key, secs)) = hold {
            *self.holds.entry(key).or_default().entry(secs).or_insert(0) += 1;
        }
    }

    /// How many more data and estimated bytes adding `c` would cost.
    fn cost_of(&self, c: &Classified) -> (usize, usize) {
        let (counters, hold) = self.contributions(c);
        let mut data = 0;
        let mut bytes = 0;
        for key in counters {
            if !self.counters.contains_key(&key) {
                data += 1;
                bytes += key_bytes(&key) + 100;
            }
        }
        if let Some((key, secs)) = hold {
            match self.holds.get(&key) {
                None => {
                    data += 1;
                    bytes += key_bytes(&key) + 100;
                }
                Some(values) if !values.contains_key(&secs) => {
                    if values.len() % MAX_VALUES_PER_DATUM == 0 {
                        data += 1;
                        bytes += key_bytes(&key);
                    }
                    bytes += 100;
                }
                Some(_) => {}
            }
        }
        (data, bytes)
    }

    /// The number of data [`Self::data`] returns.
    pub fn datum_count(&self) -> usize {
        self.counters.len()
            + self
                .holds
                .values()
                .map(|v| v.len().div_ceil(MAX_VALUES_PER_DATUM))
                .sum::<usize>()
    }

    /// The estimated request size of [`Self::data`].
    pub fn estimated_bytes(&self) -> usize {
        self.data().iter().map(MetricDatum::estimated_bytes).sum()
    }

    /// The metric data, distributions already split to ≤ [`MAX_VALUES_PER_DATUM`] values.
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
            let datum = MetricDatum {
                name: key.metric,
                dimensions: dims(key),
                unit: Unit::Seconds,
                timestamp: key.minute,
                value: MetricValue::Distribution {
                    values: values.keys().map(|s| *s as f64).collect(),
                    counts: values.values().map(|n| *n as f64).collect(),
                },
            };
            data.extend(datum.split(MAX_VALUES_PER_DATUM));
        }
        data
    }
}

fn key_bytes(key: &Key) -> usize {
    180 + key.metric.len() + 90 + DIM_TABLE.len() + key.table.len() + 90 + DIM_KIND.len() + 20
}

/// One PutMetricData call: the records it counts (indices into the caller's list) and its data.
#[derive(Debug, Clone)]
pub struct PlannedCall {
    pub records: Vec<usize>,
    pub data: Vec<MetricDatum>,
}

/// Groups counted records into PutMetricData calls, each within the API limits, each record in
/// exactly one call. Records that contribute no metric are put in the call of their neighbours.
/// `records` are `(caller's index, record)`; the order is kept.
pub fn plan_calls<'a>(
    records: impl IntoIterator<Item = (usize, &'a Classified)>,
    now: DateTime<Utc>,
) -> Vec<PlannedCall> {
    let mut calls = Vec::new();
    let mut current = BatchMetrics::new(now);
    let mut members: Vec<usize> = Vec::new();
    let (mut data, mut bytes) = (0usize, 0usize);
    for (index, record) in records {
        let (more_data, more_bytes) = current.cost_of(record);
        if !members.is_empty()
            && (data + more_data > MAX_DATA_PER_CALL || bytes + more_bytes > MAX_CALL_BYTES)
        {
            calls.push(PlannedCall {
                records: std::mem::take(&mut members),
                data: current.data(),
            });
            current = BatchMetrics::new(now);
            (data, bytes) = current.cost_of(record);
        } else {
            data += more_data;
            bytes += more_bytes;
        }
        current.add(record);
        members.push(index);
    }
    if !members.is_empty() {
        calls.push(PlannedCall {
            records: members,
            data: current.data(),
        });
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        DeletePrecondition, DigestRecord, LockCreated, LockKind, LockLocation, LockRecord,
    };
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
        assert_eq!(m.datum_count(), data.len());
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
    fn distributions_split_at_150_values() {
        let mut m = BatchMetrics::new(now());
        for secs in 0..400 {
            m.add(&released("t", secs, Release::Normal));
        }
        let hold = m
            .data()
            .into_iter()
            .filter(|d| d.name == LOCK_HOLD_SECONDS)
            .collect::<Vec<_>>();
        assert_eq!(hold.len(), 3);
        let lens: Vec<usize> = hold.iter().map(|d| d.value.len()).collect();
        assert_eq!(lens, vec![150, 150, 100]);
        assert_eq!(m.datum_count(), 4);
    }

    #[test]
    fn split_into_calls_respects_limits() {
        let datum = |i: usize| MetricDatum {
            name: LOCKS_ACQUIRED,
            dimensions: vec![(DIM_TABLE, format!("t{i}"))],
            unit: Unit::Count,
            timestamp: now(),
            value: MetricValue::Single(1.0),
        };
        let calls = split_into_calls((0..2500).map(datum).collect());
        assert_eq!(
            calls.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1000, 1000, 500]
        );
        let big = MetricDatum {
            value: MetricValue::Distribution {
                values: (0..1000).map(f64::from).collect(),
                counts: vec![1.0; 1000],
            },
            ..datum(0)
        };
        let calls = split_into_calls(vec![big]);
        let data: Vec<&MetricDatum> = calls.iter().flatten().collect();
        assert_eq!(data.len(), 7);
        assert!(data.iter().all(|d| d.value.len() <= MAX_VALUES_PER_DATUM));
        // 20 000 values: the byte limit splits the calls long before 1000 data.
        let huge = MetricDatum {
            value: MetricValue::Distribution {
                values: (0..20_000).map(f64::from).collect(),
                counts: vec![1.0; 20_000],
            },
            ..datum(0)
        };
        let calls = split_into_calls(vec![huge]);
        assert!(calls.len() >= 2, "{}", calls.len());
        for call in &calls {
            let bytes: usize = call.iter().map(MetricDatum::estimated_bytes).sum();
            assert!(bytes <= MAX_CALL_BYTES, "{bytes}");
        }
    }

    #[test]
    fn a_normal_batch_is_one_call() {
        let records: Vec<Classified> = (0..1000)
            .map(|i| released("t", i % 600, Release::Normal))
            .collect();
        let calls = plan_calls(records.iter().enumerate(), now());
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].records.len(), 1000);
        let values: usize = calls[0].data.iter().map(|d| d.value.len()).sum();
        assert_eq!(values, 1 + 600, "LocksReleased + 600 distinct hold values");
    }

    #[test]
    fn a_batch_over_the_limit_is_split_by_record() {
        // 1500 tables, one acquisition each: 1500 distinct data.
        let records: Vec<Classified> = (0..1500)
            .map(|i| {
                let table = format!("t{i}");
                record(
                    &table,
                    now(),
                    LockEvent::Acquired {
                        lock: lock(&table, LockKind::TerraformDynamoDb),
                    },
                )
            })
            .collect();
        let calls = plan_calls(records.iter().enumerate(), now());
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].records, (0..1000).collect::<Vec<_>>());
        assert_eq!(calls[1].records, (1000..1500).collect::<Vec<_>>());
        for call in &calls {
            assert!(call.data.len() <= MAX_DATA_PER_CALL);
            assert_eq!(call.data.len(), call.records.len());
        }
    }
}
