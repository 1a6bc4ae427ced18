//! Publishing metrics with CloudWatch `PutMetricData`.
//!
//! Data come from [`lockreaper_core::metrics`] as plain structs and are sent in as few calls as the
//! API limits allow (≤ 1000 data per call, ≤ 150 values per datum, ≤ 1 MB per request; see
//! [`lockreaper_core::metrics::split_into_calls`]).
//!
//! aws-sdk-cloudwatch is pinned to 1.99.0, the last awsQuery release: later releases speak Smithy
//! RPC-v2 CBOR, which the local emulators answer with 404 (real CloudWatch accepts both).

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum as SdkDatum, StandardUnit};
use lockreaper_core::metrics::{split_into_calls, MetricDatum, MetricValue, Unit};

use crate::error::AwsError;

/// Puts metric data into one namespace.
#[derive(Clone, Debug)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
    namespace: String,
}

impl CloudWatchMetrics {
    pub fn new(client: aws_sdk_cloudwatch::Client, namespace: impl Into<String>) -> Self {
        CloudWatchMetrics {
            client,
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Sends `data`, split into as few PutMetricData calls as the limits allow; returns how many
    /// calls were made. Stops at the first failed call (earlier calls stay sent): callers that
    /// must know exactly what was counted pass data that fit one call
    /// ([`lockreaper_core::metrics::plan_calls`] plans them so).
    pub async fn put(&self, data: Vec<MetricDatum>) -> Result<usize, AwsError> {
        let mut calls = 0;
        for call in split_into_calls(data) {
            self.client
                .put_metric_data()
                .namespace(&self.namespace)
                .set_metric_data(Some(call.iter().map(to_sdk).collect()))
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk(e, "put metric data into namespace", &self.namespace)
                })?;
            calls += 1;
        }
        Ok(calls)
    }
}

fn to_sdk(datum: &MetricDatum) -> SdkDatum {
    let dimensions = datum
        .dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(*name).value(value).build())
        .collect();
    let builder = SdkDatum::builder()
        .metric_name(datum.name)
        .set_dimensions(Some(dimensions))
        .unit(match datum.unit {
            Unit::Count => StandardUnit::Count,
            Unit::Seconds => StandardUnit::Seconds,
        })
        .timestamp(aws_smithy_types::DateTime::from_secs(
            datum.timestamp.timestamp(),
        ));
    match &datum.value {
        MetricValue::Single(value) => builder.value(*value),
        MetricValue::Distribution { values, counts } => builder
            .set_values(Some(values.clone()))
            .set_counts(Some(counts.clone())),
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use lockreaper_core::metrics::{DIM_KIND, DIM_TABLE, LOCK_HOLD_SECONDS};

    #[test]
    fn data_convert_to_sdk_types() {
        let datum = MetricDatum {
            name: LOCK_HOLD_SECONDS,
            dimensions: vec![
                (DIM_TABLE, "tf-locks".to_owned()),
                (DIM_KIND, "terraform-dynamodb".to_owned()),
            ],
            unit: Unit::Seconds,
            timestamp: Utc.with_ymd_and_hms(2026, 11, 26, 0, 3, 0).unwrap(),
            value: MetricValue::Distribution {
                values: vec![3.0, 10.0],
                counts: vec![2.0, 1.0],
            },
        };
        let sdk = to_sdk(&datum);
        assert_eq!(sdk.metric_name(), Some("LockHoldSeconds"));
        assert_eq!(sdk.dimensions().len(), 2);
        assert_eq!(sdk.dimensions()[0].name(), Some("LockTable"));
        assert_eq!(sdk.dimensions()[0].value(), Some("tf-locks"));
        assert_eq!(sdk.values(), &[3.0, 10.0]);
        assert_eq!(sdk.counts(), &[2.0, 1.0]);
        assert_eq!(sdk.value(), None);
        assert_eq!(sdk.unit(), Some(&StandardUnit::Seconds));
        assert_eq!(sdk.timestamp().map(|t| t.secs()), Some(1_795_651_380));
    }
}
