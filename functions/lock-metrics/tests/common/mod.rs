//! Shared helpers of the lock-metrics behaviour tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use std::path::PathBuf;
use std::sync::Mutex;

use lockreaper_aws::{EmfCapture, EmfMetrics};
use lockreaper_core::metrics::emf::{self, ExtractedMetric};
use lockreaper_testkit::lambda::{create_ledger_table, LambdaWatch};
use lockreaper_testkit::TestEnv;
use serde_json::Value;

pub const PACKAGE: &str = "lock-metrics";

/// One test's world: a ledger table, a metrics namespace of its own, and a running function.
pub struct Setup {
    pub env: TestEnv,
    pub ledger_table: String,
    pub namespace: String,
    /// The output files of the functions this test started (see [`Setup::track`]).
    logs: Mutex<Vec<PathBuf>>,
    /// The EMF lines of in-process handlers built with [`Setup::metrics_sink`].
    sink: (EmfMetrics, EmfCapture),
}

impl Setup {
    pub async fn new(test: &str) -> Setup {
        let env = TestEnv::new(test).await;
        let ledger_table = env.name("ledger");
        create_ledger_table(&env, &ledger_table).await;
        let namespace = format!("LockReaperTest/{}", env.id);
        Setup {
            sink: EmfMetrics::capture(&namespace),
            env,
            ledger_table,
            namespace,
            logs: Mutex::new(Vec::new()),
        }
    }

    /// The function's own variables (the emulator's are added by the harness).
    pub fn function_env(&self) -> Vec<(String, String)> {
        vec![
            ("LEDGER_TABLE".to_owned(), self.ledger_table.clone()),
            ("METRICS_NAMESPACE".to_owned(), self.namespace.clone()),
        ]
    }

    pub fn ledger(&self) -> lockreaper_aws::Ledger {
        lockreaper_aws::Ledger::new(self.env.aws.dynamodb(), &self.ledger_table)
    }

    /// Starts the function and keeps its output as a source of metrics for [`Self::metric`].
    pub async fn watch(&self) -> LambdaWatch {
        let watch = LambdaWatch::start(PACKAGE, self.function_env()).await;
        self.track(&watch);
        watch
    }

    /// Adds a function started by hand to the outputs metrics are read from.
    pub fn track(&self, watch: &LambdaWatch) {
        self.logs.lock().unwrap().push(watch.dir.join("watch.log"));
    }

    /// A metrics sink for an in-process handler: its EMF lines are read by [`Self::metric`].
    pub fn metrics_sink(&self) -> EmfMetrics {
        self.sink.0.clone()
    }

    /// Every metric of this test's namespace in the output of every function it started, read
    /// from the EMF lines as CloudWatch Logs extracts them from the function's log group.
    pub fn emf_metrics(&self) -> Vec<ExtractedMetric> {
        let mut all = self.sink.1.metrics();
        for path in self.logs.lock().unwrap().iter() {
            let output = std::fs::read_to_string(path).unwrap_or_default();
            let metrics = emf::read_output(&output)
                .unwrap_or_else(|e| panic!("invalid EMF document in {}: {e}", path.display()));
            all.extend(
                metrics
                    .into_iter()
                    .filter(|m| m.namespace == self.namespace),
            );
        }
        all
    }

    /// A statistic (`Sum`, `SampleCount`, `Minimum`, `Maximum`) of one metric over every value
    /// the functions emitted, as CloudWatch computes it from the extracted values; `None` when
    /// there is no value.
    pub async fn metric(
        &self,
        name: &str,
        table: &str,
        kind: Option<&str>,
        stat: &str,
    ) -> Option<f64> {
        let mut dimensions = vec![("LockTable", table)];
        if let Some(kind) = kind {
            dimensions.push(("LockKind", kind));
        }
        let values = emf::values(&self.emf_metrics(), &self.namespace, name, &dimensions);
        if values.is_empty() {
            return None;
        }
        Some(match stat {
            "Sum" => values.iter().sum(),
            "SampleCount" => values.len() as f64,
            "Minimum" => values.iter().copied().fold(f64::INFINITY, f64::min),
            "Maximum" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            other => panic!("statistic {other} is not computed by the tests"),
        })
    }

    /// `Sum` of a count metric, 0 when there is no datapoint.
    pub async fn count(&self, name: &str, table: &str, kind: Option<&str>) -> f64 {
        self.metric(name, table, kind, "Sum").await.unwrap_or(0.0)
    }

    /// Every dimension name used in this test's namespace.
    pub async fn dimension_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .emf_metrics()
            .into_iter()
            .flat_map(|m| m.dimensions.into_iter().map(|(name, _)| name))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// The failed item identifiers of a DynamoDB partial batch response.
pub fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a DynamoDB batch response: {response}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// The sequence numbers of stream records.
pub fn sequence_numbers(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["dynamodb"]["SequenceNumber"].as_str().unwrap().to_owned())
        .collect()
}

/// The lock event log lines the function wrote for one table.
pub fn lock_event_lines(watch: &LambdaWatch, table: &str) -> Vec<Value> {
    watch
        .json_log()
        .into_iter()
        .filter(|l| l["table"] == table && l.get("event").is_some())
        .collect()
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

pub async fn put(env: &TestEnv, table: &str, item: &[(&str, AttributeValue)]) {
    let item: HashMap<String, AttributeValue> = item
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    env.aws
        .dynamodb()
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

/// Waits until a process group no longer exists (a `hold` apply that finished).
pub async fn wait_for_group_exit(pgid: i32) {
    lockreaper_testkit::eventually(
        "the held terraform apply to exit",
        Duration::from_secs(120),
        || async move {
            let alive = std::process::Command::new("kill")
                .args(["-0", "--", &format!("-{pgid}")])
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            (!alive).then_some(())
        },
    )
    .await;
}
