//! force-unlock's configuration, from the environment, with errors that name the variable.

use lockreaper_core::config::{check_arn, ConfigError, ConfigErrors, Env};

/// Everything force-unlock reads from its environment (besides the standard AWS SDK variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `LEDGER_TABLE`: lockreaper's own DynamoDB table (proposals, audit records, snoozes).
    pub ledger_table: String,
    /// `ALERT_TOPIC_ARN`: where results are published (chat and email subscribe to it).
    pub alert_topic_arn: String,
    /// `APPROVAL_SECRET_ARN`: the Secrets Manager secret holding the token signing key.
    pub approval_secret_arn: String,
    /// `APPROVER_ALLOW_LIST`: comma-separated approver names; empty means anyone may approve.
    pub approver_allow_list: Vec<String>,
    /// `UNLOCKS_PAUSED` (the kill switch, the stack's `UnlocksPaused`): every approval is refused
    /// before anything is touched, and stays usable until it expires.
    pub unlocks_paused: bool,
}

impl Config {
    pub const LEDGER_TABLE: &'static str = lockreaper_core::config::LEDGER_TABLE;
    pub const ALERT_TOPIC_ARN: &'static str = "ALERT_TOPIC_ARN";
    pub const APPROVAL_SECRET_ARN: &'static str = "APPROVAL_SECRET_ARN";
    pub const APPROVER_ALLOW_LIST: &'static str = "APPROVER_ALLOW_LIST";

    /// Parses the variables (`std::env::vars()` in `main`), reporting every problem at once.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        let mut env = Env::new(vars);
        let ledger_table = env.required_ledger_table();
        let alert_topic_arn = env.required(
            Self::ALERT_TOPIC_ARN,
            "the ARN of the alert SNS topic, e.g. `arn:aws:sns:eu-west-1:111122223333:lockreaper-alerts`",
        );
        if !alert_topic_arn.is_empty() {
            if let Err(problem) = check_arn(&alert_topic_arn, "sns", "an SNS topic") {
                env.error(ConfigError::new(Self::ALERT_TOPIC_ARN, problem));
            }
        }
        let approval_secret_arn = env.required(
            Self::APPROVAL_SECRET_ARN,
            "the ARN of the Secrets Manager secret holding the approval signing key",
        );
        if !approval_secret_arn.is_empty() {
            if let Err(problem) = check_arn(
                &approval_secret_arn,
                "secretsmanager",
                "a Secrets Manager secret",
            ) {
                env.error(ConfigError::new(Self::APPROVAL_SECRET_ARN, problem));
            }
        }
        let approver_allow_list = env.list(Self::APPROVER_ALLOW_LIST);
        let unlocks_paused = env.unlocks_paused();
        env.finish(Config {
            ledger_table,
            alert_topic_arn,
            approval_secret_arn,
            approver_allow_list,
            unlocks_paused,
        })
    }
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
    fn reads_everything() {
        let config = Config::from_env(vars(&[
            ("LEDGER_TABLE", "lockreaper-ledger"),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:111122223333:alerts",
            ),
            (
                "APPROVAL_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:lockreaper-key-AbCdEf",
            ),
            ("APPROVER_ALLOW_LIST", "ana@example.com, bob ,"),
        ]))
        .unwrap();
        assert_eq!(config.ledger_table, "lockreaper-ledger");
        assert_eq!(config.approver_allow_list, ["ana@example.com", "bob"]);
        assert!(!config.unlocks_paused, "unset: not paused");
    }

    #[test]
    fn names_every_bad_variable() {
        let err = Config::from_env(vars(&[
            ("LEDGER_TABLE", "x"),
            ("ALERT_TOPIC_ARN", "alerts"),
            ("UNLOCKS_PAUSED", "on"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("LEDGER_TABLE: \"x\" is not a DynamoDB table name"),
            "{err}"
        );
        assert!(
            err.contains("ALERT_TOPIC_ARN: \"alerts\" is not the ARN of an SNS topic"),
            "{err}"
        );
        assert!(err.contains("APPROVAL_SECRET_ARN: is not set"), "{err}");
        assert!(
            err.contains("UNLOCKS_PAUSED: \"on\" is neither `true` nor `false`"),
            "{err}"
        );
        let err = Config::from_env(vars(&[
            ("LEDGER_TABLE", "ledger"),
            ("ALERT_TOPIC_ARN", "arn:aws:sqs:eu-west-1:1:q"),
            (
                "APPROVAL_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:1:secret:k",
            ),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("ALERT_TOPIC_ARN"), "{err}");
        assert!(!err.contains("APPROVAL_SECRET_ARN"), "{err}");
    }
}
