//! Shared helpers of the lock-metrics behaviour tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use lockreaper_testkit::lambda::{create_ledger_table, LambdaWatch};
use lockreaper_testkit::TestEnv;
use serde_json::Value;

pub const PACKAGE: &str = "lock-metrics";

/// One test's world: a ledger table, a metrics namespace of its own, and a running function.
pub struct Setup {
    pub env: TestEnv,
    pub ledger_table: String,
    pub namespace: String,
}

impl Setup {
    pub async fn new(test: &str) -> Setup {
        let env = TestEnv::new(test).await;
        let ledger_table = env.name("ledger");
        create_ledger_table(&env, &ledger_table).await;
        let namespace = format!("LockReaperTest/{}", env.id);
        Setup {
            env,
            ledger_table,
            namespace,
        }
    }

    /// The function's own variables (the emulator's are added by the harness).
    pub fn function_env(&self) -> Vec<(String, String)> {
        vec![
            ("LEDGER_TABLE".to_owned(), self.ledger_table.clone()),
            ("METRICS_NAMESPACE".to_owned(), self.namespace.clone()),
        ]
    }

    pub async fn watch(&self) -> LambdaWatch {
        LambdaWatch::start(PACKAGE, self.function_env()).await
    }

    pub fn ledger(&self) -> lockreaper_aws::Ledger {
        lockreaper_aws::Ledger::new(self.env.aws.dynamodb(), &self.ledger_table)
    }

    /// A statistic of one metric over the last half hour (one period), read back with
    /// GetMetricData; `None` when there is no datapoint.
    pub async fn metric(
        &self,
        name: &str,
        table: &str,
        kind: Option<&str>,
        stat: &str,
    ) -> Option<f64> {
        let mut dimensions = vec![Dimension::builder().name("LockTable").value(table).build()];
        if let Some(kind) = kind {
            dimensions.push(Dimension::builder().name("LockKind").value(kind).build());
        }
        let now = Utc::now().timestamp();
        let out = self
            .env
            .aws
            .cloudwatch()
            .get_metric_data()
            .metric_data_queries(
                MetricDataQuery::builder()
                    .id("m")
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace(&self.namespace)
                                    .metric_name(name)
                                    .set_dimensions(Some(dimensions))
                                    .build(),
                            )
                            .period(3600)
                            .stat(stat)
                            .build(),
                    )
                    .build(),
            )
            .start_time(aws_smithy_types::DateTime::from_secs(now - 1800))
            .end_time(aws_smithy_types::DateTime::from_secs(now + 1800))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetMetricData {name}: {e:?}"));
        let values: Vec<f64> = out
            .metric_data_results
            .unwrap_or_default()
            .into_iter()
            .flat_map(|r| r.values.unwrap_or_default())
            .collect();
        match values.as_slice() {
            [] => None,
            [v] => Some(*v),
            more => panic!("expected one period for {name} {stat}, got {more:?}"),
        }
    }

    /// `Sum` of a count metric, 0 when there is no datapoint.
    pub async fn count(&self, name: &str, table: &str, kind: Option<&str>) -> f64 {
        self.metric(name, table, kind, "Sum").await.unwrap_or(0.0)
    }

    /// Every dimension name used in this test's namespace (ListMetrics).
    pub async fn dimension_names(&self) -> Vec<String> {
        let out = self
            .env
            .aws
            .cloudwatch()
            .list_metrics()
            .namespace(&self.namespace)
            .send()
            .await
            .unwrap();
        let mut names: Vec<String> = out
            .metrics
            .unwrap_or_default()
            .into_iter()
            .flat_map(|m| m.dimensions.unwrap_or_default())
            .filter_map(|d| d.name)
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
