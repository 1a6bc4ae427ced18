//! CloudWatch Embedded Metric Format (EMF): metric data as JSON log lines that CloudWatch Logs turns
//! into metrics, so publishing a metric is a line on stdout, not an API call.
//!
//! Evidence: "Specification: Embedded metric format"
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! - the log event is one JSON object with nothing before or after it (one document per line);
//! - root member `_aws` = `{Timestamp: <ms since epoch>, CloudWatchMetrics: [MetricDirective]}`;
//! - a MetricDirective is `{Namespace, Dimensions: [[dimension name, ...]], Metrics: [{Name, Unit}]}`,
//!   one namespace each, at most [`MAX_METRICS_PER_DIRECTIVE`] metric definitions and at most
//!   [`MAX_DIMENSIONS_PER_SET`] dimensions per dimension set;
//! - every referenced dimension and metric is a top-level member ("target member"): a dimension's
//!   value MUST be a string, a metric's value a number or an array of at most
//!   [`MAX_VALUES_PER_METRIC`] numbers;
//! - an invalid document is stored as a log event but no metric is extracted from it (CloudWatch
//!   counts it in `AWS/Logs` `EMFValidationErrors`/`EMFParsingErrors`). The renderer therefore
//!   only produces documents that pass [`read_line`], which mirrors those rules.
//!
//! EMF has no `Counts` array: a distribution is written as its values, each repeated as often as
//! it occurred, in arrays of at most [`MAX_VALUES_PER_METRIC`]; CloudWatch's statistics over the
//! extracted values are the same as over `Values`/`Counts`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{MetricDatum, MetricValue};

/// At most 100 metric definitions in one MetricDirective.
pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
/// At most 30 dimensions in one dimension set.
pub const MAX_DIMENSIONS_PER_SET: usize = 30;
/// At most 100 values in one metric's array.
pub const MAX_VALUES_PER_METRIC: usize = 100;

/// The documents of one timestamp and dimension set, keyed for grouping.
type GroupKey = (i64, Vec<(&'static str, String)>);

/// Renders metric data of one namespace as EMF documents, one JSON object per returned line.
/// Data with the same timestamp and dimensions share documents; every datum's values end up in
/// exactly one document each (a distribution of more than [`MAX_VALUES_PER_METRIC`] values spans
/// several). Data with more than [`MAX_DIMENSIONS_PER_SET`] dimensions cannot be expressed and
/// are returned as errors instead of becoming documents CloudWatch would drop silently.
pub fn render(namespace: &str, data: &[MetricDatum]) -> Result<Vec<String>, String> {
    // (timestamp, dimensions) → metric name → (unit, values), in a stable order.
    let mut groups: BTreeMap<GroupKey, BTreeMap<&'static str, (&'static str, Vec<f64>)>> =
        BTreeMap::new();
    for datum in data {
        if datum.dimensions.len() > MAX_DIMENSIONS_PER_SET {
            return Err(format!(
                "metric {} has {} dimensions; EMF allows at most {MAX_DIMENSIONS_PER_SET} per dimension set",
                datum.name,
                datum.dimensions.len()
            ));
        }
        let values = groups
            .entry((datum.timestamp.timestamp_millis(), datum.dimensions.clone()))
            .or_default()
            .entry(datum.name)
            .or_insert((datum.unit.as_str(), Vec::new()));
        match &datum.value {
            MetricValue::Single(v) => values.1.push(*v),
            MetricValue::Distribution { values: vs, counts } => {
                for (v, n) in vs.iter().zip(counts) {
                    // Counts are whole numbers of occurrences (see `BatchMetrics::data`).
                    let n = n.max(0.0).round() as usize;
                    values.1.extend(std::iter::repeat_n(*v, n));
                }
            }
        }
    }
    let mut lines = Vec::new();
    for ((timestamp, dimensions), metrics) in groups {
        // Document k carries chunk k of every metric that has one, ≤ 100 metrics per document.
        let chunked: Vec<(&str, &str, Vec<&[f64]>)> = metrics
            .iter()
            .map(|(name, (unit, values))| {
                (*name, *unit, values.chunks(MAX_VALUES_PER_METRIC).collect())
            })
            .collect();
        let rounds = chunked.iter().map(|m| m.2.len()).max().unwrap_or(0);
        for round in 0..rounds {
            let in_round: Vec<(&str, &str, &[f64])> = chunked
                .iter()
                .filter_map(|(name, unit, chunks)| chunks.get(round).map(|c| (*name, *unit, *c)))
                .collect();
            for part in in_round.chunks(MAX_METRICS_PER_DIRECTIVE) {
                lines.push(document(namespace, timestamp, &dimensions, part).to_string());
            }
        }
    }
    Ok(lines)
}

fn document(
    namespace: &str,
    timestamp_ms: i64,
    dimensions: &[(&'static str, String)],
    metrics: &[(&str, &str, &[f64])],
) -> Value {
    let mut root = Map::new();
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions.iter().map(|(n, _)| *n).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).to_owned(), Value::String(value.clone()));
    }
    for (name, _, values) in metrics {
        let value = match values {
            [single] => json!(single),
            many => json!(many),
        };
        root.insert((*name).to_owned(), value);
    }
    Value::Object(root)
}

/// One metric as CloudWatch Logs extracts it from an EMF document: per directive, per dimension
/// set, per metric definition.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedMetric {
    pub namespace: String,
    pub name: String,
    pub unit: Option<String>,
    /// `(dimension name, value)` in the order of the dimension set.
    pub dimensions: Vec<(String, String)>,
    pub timestamp_ms: i64,
    pub values: Vec<f64>,
}

/// Reads one log line the way CloudWatch Logs does. `Ok(None)`: not an EMF document (no `_aws`
/// object at the root of a JSON object), an ordinary log line. `Err`: an EMF document CloudWatch
/// would reject — it extracts nothing from it — with the reason.
pub fn read_line(line: &str) -> Result<Option<Vec<ExtractedMetric>>, String> {
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(line.trim()) else {
        return Ok(None);
    };
    let Some(aws) = root.get("_aws") else {
        return Ok(None);
    };
    let aws = aws.as_object().ok_or("`_aws` is not an object")?;
    let timestamp_ms = aws
        .get("Timestamp")
        .and_then(Value::as_i64)
        .ok_or("`_aws.Timestamp` is missing or not an integer number of milliseconds")?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("`_aws.CloudWatchMetrics` is missing or not an array")?;
    let mut extracted = Vec::new();
    for directive in directives {
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty() && ns.len() <= 255)
            .ok_or("a directive's `Namespace` is missing, empty or longer than 255")?;
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or("a directive's `Dimensions` is missing or not an array")?;
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or("a directive's `Metrics` is missing or not an array")?;
        if metrics.len() > MAX_METRICS_PER_DIRECTIVE {
            return Err(format!(
                "a directive has {} metrics; at most {MAX_METRICS_PER_DIRECTIVE}",
                metrics.len()
            ));
        }
        let mut dimension_sets = Vec::new();
        for set in sets {
            let names = set
                .as_array()
                .ok_or("a dimension set is not an array")?
                .iter()
                .map(|n| n.as_str().ok_or("a dimension name is not a string"))
                .collect::<Result<Vec<_>, _>>()?;
            if names.len() > MAX_DIMENSIONS_PER_SET {
                return Err(format!(
                    "a dimension set has {} dimensions; at most {MAX_DIMENSIONS_PER_SET}",
                    names.len()
                ));
            }
            let mut dims = Vec::new();
            for name in names {
                let value = root.get(name).and_then(Value::as_str).ok_or_else(|| {
                    format!("dimension {name:?} has no string member at the root")
                })?;
                dims.push((name.to_owned(), value.to_owned()));
            }
            dimension_sets.push(dims);
        }
        for metric in metrics {
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("a metric definition has no `Name`")?;
            let unit = metric
                .get("Unit")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let values = match root.get(name) {
                Some(Value::Number(n)) => vec![n.as_f64().ok_or("a metric value is not finite")?],
                Some(Value::Array(items)) if items.len() <= MAX_VALUES_PER_METRIC => items
                    .iter()
                    .map(|v| {
                        v.as_f64()
                            .ok_or_else(|| format!("metric {name:?} has a non-number value"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(Value::Array(items)) => {
                    return Err(format!(
                        "metric {name:?} has {} values; at most {MAX_VALUES_PER_METRIC}",
                        items.len()
                    ))
                }
                _ => {
                    return Err(format!(
                        "metric {name:?} has no number or array member at the root"
                    ))
                }
            };
            for dims in &dimension_sets {
                extracted.push(ExtractedMetric {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    unit: unit.clone(),
                    dimensions: dims.clone(),
                    timestamp_ms,
                    values: values.clone(),
                });
            }
        }
    }
    Ok(Some(extracted))
}

/// Reads every line of a log output; ordinary log lines are skipped, invalid EMF documents are
/// errors (a test that produced one must fail).
pub fn read_output(output: &str) -> Result<Vec<ExtractedMetric>, String> {
    let mut all = Vec::new();
    for (number, line) in output.lines().enumerate() {
        if let Some(metrics) = read_line(line).map_err(|e| format!("line {}: {e}", number + 1))? {
            all.extend(metrics);
        }
    }
    Ok(all)
}

/// The sum of a metric's values over extracted metrics, for one namespace and exact dimensions.
pub fn sum(
    metrics: &[ExtractedMetric],
    namespace: &str,
    name: &str,
    dimensions: &[(&str, &str)],
) -> f64 {
    values(metrics, namespace, name, dimensions).iter().sum()
}

/// Every value of a metric over extracted metrics, for one namespace and exact dimensions.
pub fn values(
    metrics: &[ExtractedMetric],
    namespace: &str,
    name: &str,
    dimensions: &[(&str, &str)],
) -> Vec<f64> {
    metrics
        .iter()
        .filter(|m| {
            m.namespace == namespace
                && m.name == name
                && m.dimensions.len() == dimensions.len()
                && m.dimensions
                    .iter()
                    .zip(dimensions)
                    .all(|((n, v), (wn, wv))| n == wn && v == wv)
        })
        .flat_map(|m| m.values.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{
        Unit, DIM_KIND, DIM_TABLE, LOCKS_ACQUIRED, LOCK_HOLD_SECONDS, STATE_WRITES,
    };
    use chrono::{TimeZone, Utc};

    fn datum(name: &'static str, unit: Unit, value: MetricValue) -> MetricDatum {
        MetricDatum {
            name,
            dimensions: vec![
                (DIM_TABLE, "tf-locks".to_owned()),
                (DIM_KIND, "terraform-dynamodb".to_owned()),
            ],
            unit,
            timestamp: Utc.with_ymd_and_hms(2026, 11, 26, 0, 3, 0).unwrap(),
            value,
        }
    }

    #[test]
    fn a_document_follows_the_specification() {
        let lines = render(
            "LockReaper",
            &[
                datum(LOCKS_ACQUIRED, Unit::Count, MetricValue::Single(3.0)),
                datum(
                    LOCK_HOLD_SECONDS,
                    Unit::Seconds,
                    MetricValue::Distribution {
                        values: vec![3.0, 10.0],
                        counts: vec![2.0, 1.0],
                    },
                ),
            ],
        )
        .unwrap();
        assert_eq!(lines.len(), 1);
        let doc: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": 1_795_651_380_000i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "LockReaper",
                        "Dimensions": [["LockTable", "LockKind"]],
                        "Metrics": [
                            {"Name": "LockHoldSeconds", "Unit": "Seconds"},
                            {"Name": "LocksAcquired", "Unit": "Count"},
                        ],
                    }],
                },
                "LockTable": "tf-locks",
                "LockKind": "terraform-dynamodb",
                "LocksAcquired": 3.0,
                "LockHoldSeconds": [3.0, 3.0, 10.0],
            })
        );
        assert!(!lines[0].contains('\n'), "one document per line");
    }

    #[test]
    fn what_is_rendered_reads_back_as_the_same_metrics() {
        let data = vec![
            datum(LOCKS_ACQUIRED, Unit::Count, MetricValue::Single(3.0)),
            datum(STATE_WRITES, Unit::Count, MetricValue::Single(7.0)),
        ];
        let lines = render("LockReaper", &data).unwrap();
        let read = read_output(&lines.join("\n")).unwrap();
        let dims = [(DIM_TABLE, "tf-locks"), (DIM_KIND, "terraform-dynamodb")];
        assert_eq!(sum(&read, "LockReaper", LOCKS_ACQUIRED, &dims), 3.0);
        assert_eq!(sum(&read, "LockReaper", STATE_WRITES, &dims), 7.0);
        assert_eq!(sum(&read, "Other", STATE_WRITES, &dims), 0.0);
        assert_eq!(sum(&read, "LockReaper", STATE_WRITES, &dims[..1]), 0.0);
        assert_eq!(read[0].unit.as_deref(), Some("Count"));
        assert_eq!(read[0].timestamp_ms, 1_795_651_380_000);
    }

    #[test]
    fn a_long_distribution_spans_documents_of_at_most_100_values() {
        // 250 distinct hold times once each, plus one value seen 60 times: 310 values.
        let mut values: Vec<f64> = (0..250).map(f64::from).collect();
        let mut counts = vec![1.0; 250];
        values.push(1000.0);
        counts.push(60.0);
        let data = vec![
            datum(LOCKS_ACQUIRED, Unit::Count, MetricValue::Single(1.0)),
            datum(
                LOCK_HOLD_SECONDS,
                Unit::Seconds,
                MetricValue::Distribution { values, counts },
            ),
        ];
        let lines = render("LockReaper", &data).unwrap();
        assert_eq!(lines.len(), 4, "310 values → 4 documents");
        let read = read_output(&lines.join("\n")).unwrap();
        assert!(read.iter().all(|m| m.values.len() <= MAX_VALUES_PER_METRIC));
        let dims = [(DIM_TABLE, "tf-locks"), (DIM_KIND, "terraform-dynamodb")];
        let holds = super::values(&read, "LockReaper", LOCK_HOLD_SECONDS, &dims);
        assert_eq!(holds.len(), 310);
        assert_eq!(holds.iter().filter(|v| **v == 1000.0).count(), 60);
        // The counter is in exactly one document.
        assert_eq!(
            super::values(&read, "LockReaper", LOCKS_ACQUIRED, &dims),
            vec![1.0]
        );
    }

    #[test]
    fn more_than_100_metrics_split_into_directives_of_100() {
        let names: Vec<&'static str> = (0..150)
            .map(|i| &*Box::leak(format!("M{i:03}").into_boxed_str()))
            .collect();
        let data: Vec<MetricDatum> = names
            .iter()
            .map(|n| datum(n, Unit::Count, MetricValue::Single(1.0)))
            .collect();
        let lines = render("LockReaper", &data).unwrap();
        assert_eq!(lines.len(), 2);
        let read = read_output(&lines.join("\n")).unwrap();
        assert_eq!(read.len(), 150);
    }

    #[test]
    fn different_timestamps_or_dimensions_are_different_documents() {
        let mut other_minute = datum(LOCKS_ACQUIRED, Unit::Count, MetricValue::Single(1.0));
        other_minute.timestamp = Utc.with_ymd_and_hms(2026, 11, 26, 0, 4, 0).unwrap();
        let mut other_table = datum(LOCKS_ACQUIRED, Unit::Count, MetricValue::Single(1.0));
        other_table.dimensions = vec![(DIM_TABLE, "other".to_owned())];
        let data = vec![
            datum(LOCKS_ACQUIRED, Unit::Count, MetricValue::Single(1.0)),
            other_minute,
            other_table,
        ];
        assert_eq!(render("LockReaper", &data).unwrap().len(), 3);
    }

    #[test]
    fn more_than_30_dimensions_is_an_error_not_a_dropped_document() {
        let mut d = datum(LOCKS_ACQUIRED, Unit::Count, MetricValue::Single(1.0));
        d.dimensions = (0..31).map(|_| (DIM_TABLE, "t".to_owned())).collect();
        let err = render("LockReaper", &[d]).unwrap_err();
        assert!(err.contains("at most 30"), "{err}");
    }

    #[test]
    fn the_reader_rejects_what_cloudwatch_rejects_and_skips_plain_lines() {
        assert_eq!(
            read_line(r#"{"level":"INFO","message":"batch done"}"#),
            Ok(None)
        );
        assert_eq!(read_line("not json"), Ok(None));
        let base = |root: &str| {
            format!(
                r#"{{"_aws":{{"Timestamp":1,"CloudWatchMetrics":[{{"Namespace":"N","Dimensions":[["D"]],"Metrics":[{{"Name":"M","Unit":"Count"}}]}}]}},{root}}}"#
            )
        };
        assert!(read_line(&base(r#""D":"x","M":1"#)).unwrap().is_some());
        // A dimension value that is not a string, a missing metric member, too many values.
        assert!(read_line(&base(r#""D":1,"M":1"#))
            .unwrap_err()
            .contains("dimension"));
        assert!(read_line(&base(r#""D":"x""#))
            .unwrap_err()
            .contains("\"M\""));
        let many = format!("[{}]", vec!["1"; 101].join(","));
        assert!(read_line(&base(&format!(r#""D":"x","M":{many}"#)))
            .unwrap_err()
            .contains("101 values"));
        assert!(read_line(r#"{"_aws":{"CloudWatchMetrics":[]}}"#)
            .unwrap_err()
            .contains("Timestamp"));
    }
}
