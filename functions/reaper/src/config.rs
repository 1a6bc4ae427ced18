//! The reaper's configuration, from its environment variables (see README), every problem named
//! at once.

use std::time::Duration;

use lockreaper_core::config::{
    check_arn, parse_approval_ttl, parse_bool, parse_scan_segments, ConfigError, Env, LockSources,
};
use lockreaper_core::metrics::{parse_namespace, DEFAULT_NAMESPACE};
use lockreaper_core::policy::StaleLockPolicy;

/// Everything the reaper is configured with (environment variables; see README).
#[derive(Debug, Clone)]
pub struct ReaperConfig {
    pub sources: LockSources,
    pub policy: StaleLockPolicy,
    pub alert_topic_arn: String,
    pub approval_topic_arn: String,
    pub approval_secret_arn: String,
    pub approval_ttl: Duration,
    pub ledger_table: String,
    pub metrics_namespace: String,
    pub dry_run: bool,
    /// A label for people: which deployment sent the alert (`DEPLOYMENT_NAME`, default `lockreaper`).
    pub deployment: String,
    /// `SCAN_SEGMENTS`: parallel Scan segments per lock table (1–64, default 1; raise for tables
    /// with tens of thousands of items).
    pub scan_segments: u32,
    /// `UNLOCKS_PAUSED` (the kill switch, `UnlocksPaused`): nothing is expired, what would be is
    /// proposed, and every proposal's alert says approvals are refused while it is on.
    pub unlocks_paused: bool,
}

impl ReaperConfig {
    pub fn from_env(env: &mut Env) -> ReaperConfig {
        let sources = LockSources::from_env(env);
        let policy = StaleLockPolicy::from_env(env);
        let dry_run = env.parsed("DRY_RUN", false, parse_bool);
        let unlocks_paused = env.unlocks_paused();
        let arn = "an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:lockreaper-alerts";
        let alert_topic_arn = env.required("ALERT_TOPIC_ARN", arn);
        let approval_topic_arn = env.required("APPROVAL_TOPIC_ARN", arn);
        let approval_secret_arn = env.required(
            "APPROVAL_SECRET_ARN",
            "a Secrets Manager secret ARN holding the approval signing key",
        );
        let ledger_table = env.required_ledger_table();
        let metrics_namespace = env.parsed(
            "METRICS_NAMESPACE",
            DEFAULT_NAMESPACE.to_owned(),
            parse_namespace,
        );
        let approval_ttl = env.parsed(
            "APPROVAL_TTL",
            Duration::from_secs(24 * 3600),
            parse_approval_ttl,
        );
        for (name, value) in [
            ("ALERT_TOPIC_ARN", &alert_topic_arn),
            ("APPROVAL_TOPIC_ARN", &approval_topic_arn),
        ] {
            if !value.is_empty() {
                if let Err(problem) = check_arn(value, "sns", "an SNS topic") {
                    env.error(ConfigError::new(name, problem));
                }
            }
        }
        let deployment = env
            .get("DEPLOYMENT_NAME")
            .unwrap_or("lockreaper")
            .to_owned();
        let scan_segments = env.parsed("SCAN_SEGMENTS", 1, parse_scan_segments);
        ReaperConfig {
            sources,
            policy,
            alert_topic_arn,
            approval_topic_arn,
            approval_secret_arn,
            approval_ttl,
            ledger_table,
            metrics_namespace,
            dry_run,
            deployment,
            scan_segments,
            unlocks_paused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env::new(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    const GOOD: &[(&str, &str)] = &[
        ("LOCK_TABLES", "tf-locks, gyro-locks"),
        ("LOCK_BUCKETS", "acme-tfstate/env:/"),
        (
            "ALERT_TOPIC_ARN",
            "arn:aws:sns:eu-west-1:123456789012:lockreaper-alerts",
        ),
        (
            "APPROVAL_TOPIC_ARN",
            "arn:aws:sns:eu-west-1:123456789012:lr-ok",
        ),
        (
            "APPROVAL_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:lr-AbCdEf",
        ),
        ("LEDGER_TABLE", "lockreaper-ledger"),
    ];

    #[test]
    fn defaults_are_safe() {
        let mut e = env(GOOD);
        let config = ReaperConfig::from_env(&mut e);
        let config = e.finish(config).unwrap();
        assert_eq!(config.sources.tables, vec!["tf-locks", "gyro-locks"]);
        assert_eq!(config.sources.buckets[0].prefix.as_deref(), Some("env:/"));
        assert!(!config.policy.auto_expire, "auto-expiry is opt-in");
        assert!(!config.dry_run);
        assert_eq!(config.approval_ttl, Duration::from_secs(86_400));
        assert_eq!(config.metrics_namespace, "LockReaper");
        assert_eq!(config.scan_segments, 1);
        assert!(!config.unlocks_paused);
    }

    #[test]
    fn every_bad_variable_is_named_at_once() {
        let mut vars: Vec<(&str, &str)> = GOOD
            .iter()
            .filter(|(k, _)| *k != "LEDGER_TABLE")
            .copied()
            .collect();
        vars.extend([
            ("ALERT_TOPIC_ARN", "alerts"),
            ("APPROVAL_TTL", "30d"),
            ("SCAN_SEGMENTS", "0"),
            ("DRY_RUN", "maybe"),
            ("UNLOCKS_PAUSED", "yes"),
        ]);
        vars.retain(|(k, v)| *k != "ALERT_TOPIC_ARN" || *v == "alerts");
        let mut e = env(&vars);
        let config = ReaperConfig::from_env(&mut e);
        let text = e.finish(config).unwrap_err().to_string();
        for expected in [
            "LEDGER_TABLE: is not set",
            "ALERT_TOPIC_ARN: \"alerts\" is not the ARN of an SNS topic",
            "APPROVAL_TTL: \"30d\" is out of range; expected between 1m and 7d",
            "SCAN_SEGMENTS: \"0\" is not a segment count",
            "DRY_RUN: \"maybe\" is not a boolean",
            "UNLOCKS_PAUSED: \"yes\" is neither `true` nor `false`",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }
}
