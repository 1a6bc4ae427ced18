//! lock-metrics: subscribed to the DynamoDB Streams (`NEW_AND_OLD_IMAGES`) of Terraform/OpenTofu and
//! Gyro lock tables, and (optionally) the target of an EventBridge rule for the state buckets' S3
//! events, it turns lock item changes and `.tflock`/state object events into lock lifecycle metrics
//! in CloudWatch (EMF log lines) and one structured JSON log line per lock event. See README.md for the metrics and configuration.
//!
//! The decisions are pure and live in the core crate ([`lockreaper_core::stream`] classifies a
//! record, [`lockreaper_core::s3_events`] reads an S3 event, [`lockreaper_core::metrics`] aggregates); the ledger adapter and the EMF metrics sink live in
//! `lockreaper-aws`; [`handler`] is the Lambda glue between them ([`s3_events`] for EventBridge events).

pub mod handler;
pub mod s3_events;

use lockreaper_core::config::{ConfigErrors, Env};
use lockreaper_core::metrics::{parse_namespace, DEFAULT_NAMESPACE};

pub use handler::LockMetrics;

/// The function's configuration, from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `LEDGER_TABLE`: lockreaper's own DynamoDB table (required).
    pub ledger_table: String,
    /// `METRICS_NAMESPACE`: the CloudWatch namespace (default `LockReaper`).
    pub namespace: String,
}

impl Config {
    pub const LEDGER_TABLE: &'static str = lockreaper_core::config::LEDGER_TABLE;
    pub const METRICS_NAMESPACE: &'static str = "METRICS_NAMESPACE";

    /// Reads and checks every variable; reports every problem at once, each naming the variable
    /// and the expected form.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let mut env = Env::new(vars);
        let ledger_table = env.required_ledger_table();
        let namespace = env.parsed(
            Self::METRICS_NAMESPACE,
            DEFAULT_NAMESPACE.to_owned(),
            parse_namespace,
        );
        env.finish(Config {
            ledger_table,
            namespace,
        })
    }
}

/// JSON log lines, one object per line (see `lockreaper_aws::logging`).
pub fn init_logging() {
    lockreaper_aws::logging::init_json_logging();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_and_values() {
        let c = Config::from_env(vars(&[("LEDGER_TABLE", "lockreaper-ledger")])).unwrap();
        assert_eq!(c.ledger_table, "lockreaper-ledger");
        assert_eq!(c.namespace, "LockReaper");
        let c = Config::from_env(vars(&[
            ("LEDGER_TABLE", "l.e_d-g"),
            ("METRICS_NAMESPACE", "Acme/Locks"),
        ]))
        .unwrap();
        assert_eq!(c.namespace, "Acme/Locks");
    }

    #[test]
    fn errors_name_the_variable_and_the_expected_form() {
        let err = Config::from_env(vars(&[("METRICS_NAMESPACE", "AWS/Locks")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "LEDGER_TABLE: is not set; expected the name of lockreaper's DynamoDB ledger table"
            ),
            "{err}"
        );
        assert!(
            err.contains("METRICS_NAMESPACE: \"AWS/Locks\" starts with `AWS/`"),
            "{err}"
        );
        assert!(err.contains("expected a CloudWatch namespace"), "{err}");

        let err = Config::from_env(vars(&[("LEDGER_TABLE", "arn:aws:dynamodb:x")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("LEDGER_TABLE: \"arn:aws:dynamodb:x\" is not a DynamoDB table name"),
            "{err}"
        );

        let err = Config::from_env(vars(&[
            ("LEDGER_TABLE", "ok-table"),
            ("METRICS_NAMESPACE", ":x"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("METRICS_NAMESPACE: \":x\" starts with `:`"),
            "{err}"
        );
    }
}
