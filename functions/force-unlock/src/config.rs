//! force-unlock's configuration, from the environment, with errors that name the variable.

use lockreaper_core::config::{check_arn, ConfigError, ConfigErrors, Env};
use lockreaper_core::coverage::{state_locations_from_env, StateLocation};

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
    /// Entries `slack:<user ID>` or `slack:<team ID>/<user ID>` are matched by Slack-verified
    /// approvals only; user-group entries `slack:<group ID>` or `slack:<team ID>/<group ID>`
    /// (`S…`) by Slack-verified approvals whose attestation says the presser was a member when
    /// they pressed (slack-interactions looks it up, with the same list).
    pub approver_allow_list: Vec<String>,
    /// `SLACK_ATTESTATION_SECRET_ARN` (Slack app mode): the secret holding the key the Slack
    /// endpoint signs verified approvals with. Unset: a message claiming a Slack-verified approver
    /// is refused.
    pub slack_attestation_secret_arn: Option<String>,
    /// `STATE_BUCKETS`: where this deployment may read state objects (as the reaper reads it).
    /// `None` when not set: then only a refused read says a state is not covered.
    pub state_locations: Option<Vec<StateLocation>>,
    /// `UNLOCKS_PAUSED` (the kill switch, the stack's `UnlocksPaused`): every approval is refused
    /// before anything is touched, and stays usable until it expires.
    pub unlocks_paused: bool,
}

impl Config {
    pub const LEDGER_TABLE: &'static str = lockreaper_core::config::LEDGER_TABLE;
    pub const ALERT_TOPIC_ARN: &'static str = "ALERT_TOPIC_ARN";
    pub const APPROVAL_SECRET_ARN: &'static str = "APPROVAL_SECRET_ARN";
    pub const APPROVER_ALLOW_LIST: &'static str = "APPROVER_ALLOW_LIST";
    pub const SLACK_ATTESTATION_SECRET_ARN: &'static str = "SLACK_ATTESTATION_SECRET_ARN";
    /// Core's [`lockreaper_core::coverage::STATE_BUCKETS`], named here for the template's contract
    /// test (`infra/sam/test_template.py` reads each function's own variable names).
    pub const STATE_BUCKETS: &'static str = "STATE_BUCKETS";

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
        let slack_attestation_secret_arn = env
            .get(Self::SLACK_ATTESTATION_SECRET_ARN)
            .map(str::trim)
            .filter(|arn| !arn.is_empty())
            .map(str::to_owned);
        if let Some(arn) = &slack_attestation_secret_arn {
            if let Err(problem) = check_arn(arn, "secretsmanager", "a Secrets Manager secret") {
                env.error(ConfigError::new(
                    Self::SLACK_ATTESTATION_SECRET_ARN,
                    problem,
                ));
            }
        }
        let state_locations = if env.get(Self::STATE_BUCKETS).is_some() {
            state_locations_from_env(&mut env)
        } else {
            None
        };
        let unlocks_paused = env.unlocks_paused();
        env.finish(Config {
            state_locations,
            ledger_table,
            alert_topic_arn,
            approval_secret_arn,
            approver_allow_list,
            slack_attestation_secret_arn,
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
            ("STATE_BUCKETS", "acme-tfstate/env/,other/"),
        ]))
        .unwrap();
        assert_eq!(config.ledger_table, "lockreaper-ledger");
        assert_eq!(config.approver_allow_list, ["ana@example.com", "bob"]);
        let covered: Vec<String> = config
            .state_locations
            .clone()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(covered, ["s3://acme-tfstate/env/", "s3://other"]);
        assert_eq!(
            Config::STATE_BUCKETS,
            lockreaper_core::coverage::STATE_BUCKETS
        );
        assert_eq!(config.slack_attestation_secret_arn, None);
        assert!(!config.unlocks_paused, "unset: not paused");
    }

    #[test]
    fn without_state_buckets_only_a_refused_read_says_a_state_is_not_covered() {
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
        ]))
        .unwrap();
        assert_eq!(config.state_locations, None);
    }

    #[test]
    fn the_slack_attestation_secret_is_optional_but_checked() {
        let base = [
            ("LEDGER_TABLE", "lockreaper-ledger"),
            (
                "ALERT_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:111122223333:alerts",
            ),
            (
                "APPROVAL_SECRET_ARN",
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:lockreaper-key-AbCdEf",
            ),
        ];
        let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:lockreaper-slack-AbCdEf";
        let mut with = base.to_vec();
        with.push(("SLACK_ATTESTATION_SECRET_ARN", arn));
        let config = Config::from_env(vars(&with)).unwrap();
        assert_eq!(config.slack_attestation_secret_arn.as_deref(), Some(arn));
        let mut blank = base.to_vec();
        blank.push(("SLACK_ATTESTATION_SECRET_ARN", " "));
        assert_eq!(
            Config::from_env(vars(&blank))
                .unwrap()
                .slack_attestation_secret_arn,
            None
        );
        let mut bad = base.to_vec();
        bad.push(("SLACK_ATTESTATION_SECRET_ARN", "slack-key"));
        let err = Config::from_env(vars(&bad)).unwrap_err().to_string();
        assert!(err.contains("SLACK_ATTESTATION_SECRET_ARN"), "{err}");
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
