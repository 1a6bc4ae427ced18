//! The CLI's configuration: the functions' environment variables, each also a flag (a flag wins).
//!
//! clap merges flag and variable; the merged values are then parsed by the same code the functions
//! use ([`lockreaper_core::config::Env`], [`LockSources`], [`StaleLockPolicy`]), so a value that
//! the reaper rejects is rejected here with the same words, naming the variable and its flag.

use lockreaper_core::config::check_arn;
use lockreaper_core::config::{
    parse_bool, ConfigError, ConfigErrors, Env, LockSources, UNLOCKS_PAUSED,
};
use lockreaper_core::policy::StaleLockPolicy;

use crate::failure::Failure;

pub const LOCK_TABLES: &str = "LOCK_TABLES";
pub const LOCK_BUCKETS: &str = "LOCK_BUCKETS";
pub use lockreaper_core::config::LEDGER_TABLE;
pub use lockreaper_core::coverage::STATE_BUCKETS;
pub const APPROVAL_TOPIC_ARN: &str = "APPROVAL_TOPIC_ARN";
pub const ALERT_TOPIC_ARN: &str = "ALERT_TOPIC_ARN";
pub const S3_FORCE_PATH_STYLE: &str = "S3_FORCE_PATH_STYLE";
pub const REAPER_ROLE_ARN: &str = "REAPER_ROLE_ARN";
pub const LOCK_METRICS_ROLE_ARN: &str = "LOCK_METRICS_ROLE_ARN";
pub const FORCE_UNLOCK_ROLE_ARN: &str = "FORCE_UNLOCK_ROLE_ARN";
pub const APPROVAL_SECRET_ARN: &str = "APPROVAL_SECRET_ARN";
pub const SLACK_NOTIFIER_ROLE_ARN: &str = "SLACK_NOTIFIER_ROLE_ARN";
pub const SLACK_INTERACTIONS_ROLE_ARN: &str = "SLACK_INTERACTIONS_ROLE_ARN";
pub const SLACK_BOT_TOKEN_SECRET_ARN: &str = "SLACK_BOT_TOKEN_SECRET_ARN";
pub const SLACK_SIGNING_SECRET_ARN: &str = "SLACK_SIGNING_SECRET_ARN";
pub const SLACK_ATTESTATION_SECRET_ARN: &str = "SLACK_ATTESTATION_SECRET_ARN";

/// Every setting, as a flag with its environment variable. Global: valid before or after the
/// subcommand.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Settings {
    /// Comma-separated DynamoDB lock tables (Terraform/OpenTofu `LockID` or Gyro `LockKey` tables)
    #[arg(
        long,
        global = true,
        env = "LOCK_TABLES",
        value_name = "TABLE,...",
        help_heading = "Deployment"
    )]
    pub tables: Option<String>,

    /// Comma-separated `bucket` or `bucket/prefix` entries to search for Terraform `.tflock` files
    #[arg(
        long,
        global = true,
        env = "LOCK_BUCKETS",
        value_name = "BUCKET[/PREFIX],...",
        help_heading = "Deployment"
    )]
    pub buckets: Option<String>,

    /// Comma-separated `bucket` or `bucket/prefix` entries this deployment may read state objects
    /// in (the stack's StateBuckets + StateKeyPrefix); a lock whose state lies elsewhere is "cannot
    /// tell" [default: the --buckets entries]
    #[arg(
        long,
        global = true,
        env = "STATE_BUCKETS",
        value_name = "BUCKET[/PREFIX],...",
        help_heading = "Deployment"
    )]
    pub state_buckets: Option<String>,

    /// lockreaper's ledger table (audit trail, state writes seen on the stream, Gyro first-seen times)
    #[arg(
        long,
        global = true,
        env = "LEDGER_TABLE",
        value_name = "TABLE",
        help_heading = "Deployment"
    )]
    pub ledger_table: Option<String>,

    /// The approvals SNS topic the force-unlock function is subscribed to
    #[arg(
        long,
        global = true,
        env = "APPROVAL_TOPIC_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub approval_topic_arn: Option<String>,

    /// The alerts SNS topic (checked by `doctor`)
    #[arg(
        long,
        global = true,
        env = "ALERT_TOPIC_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub alert_topic_arn: Option<String>,

    /// The reaper's role (the stack's ReaperRoleArn output): `doctor` simulates its policies
    #[arg(
        long,
        global = true,
        env = "REAPER_ROLE_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub reaper_role_arn: Option<String>,

    /// lock-metrics' role (the stack's LockMetricsRoleArn output): `doctor` simulates its policies
    #[arg(
        long,
        global = true,
        env = "LOCK_METRICS_ROLE_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub lock_metrics_role_arn: Option<String>,

    /// force-unlock's role (the stack's ForceUnlockRoleArn output): `doctor` simulates its policies
    #[arg(
        long,
        global = true,
        env = "FORCE_UNLOCK_ROLE_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub force_unlock_role_arn: Option<String>,

    /// The approval signing key's secret (the stack's SigningSecretArn output), for `doctor`'s
    /// role check of secretsmanager:GetSecretValue
    #[arg(
        long,
        global = true,
        env = "APPROVAL_SECRET_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub approval_secret_arn: Option<String>,

    /// The Slack app mode's notifier role (the stack's SlackNotifierRoleArn output): `doctor`
    /// simulates its policies
    #[arg(
        long,
        global = true,
        env = "SLACK_NOTIFIER_ROLE_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub slack_notifier_role_arn: Option<String>,

    /// The Slack app mode's interactivity endpoint role (the stack's SlackInteractionsRoleArn
    /// output): `doctor` simulates its policies
    #[arg(
        long,
        global = true,
        env = "SLACK_INTERACTIONS_ROLE_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub slack_interactions_role_arn: Option<String>,

    /// The Slack app's bot token secret (the stack's SlackBotTokenSecretArn parameter), for
    /// `doctor`'s role checks of secretsmanager:GetSecretValue
    #[arg(
        long,
        global = true,
        env = "SLACK_BOT_TOKEN_SECRET_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub slack_bot_token_secret_arn: Option<String>,

    /// The Slack app's signing secret (the stack's SlackSigningSecretArn parameter), for `doctor`'s
    /// role check of the interactivity endpoint
    #[arg(
        long,
        global = true,
        env = "SLACK_SIGNING_SECRET_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub slack_signing_secret_arn: Option<String>,

    /// The Slack attestation key's secret (the stack's SlackAttestationSecret), for `doctor`'s
    /// role checks of force-unlock and the interactivity endpoint
    #[arg(
        long,
        global = true,
        env = "SLACK_ATTESTATION_SECRET_ARN",
        value_name = "ARN",
        help_heading = "Deployment"
    )]
    pub slack_attestation_secret_arn: Option<String>,

    /// Age from which a lock is worth an alert, e.g. `90m` [default: 1h]
    #[arg(
        long,
        global = true,
        env = "WARN_AFTER",
        value_name = "DURATION",
        help_heading = "Policy (as the reaper judges locks)"
    )]
    pub warn_after: Option<String>,

    /// Age from which a lock with no sign of life is proposed for unlock [default: 4h]
    #[arg(
        long,
        global = true,
        env = "EXPIRE_AFTER",
        value_name = "DURATION",
        help_heading = "Policy (as the reaper judges locks)"
    )]
    pub expire_after: Option<String>,

    /// Whether the reaper releases locks past EXPIRE_AFTER by itself [default: false]
    #[arg(
        long,
        global = true,
        env = "AUTO_EXPIRE",
        value_name = "true|false",
        help_heading = "Policy (as the reaper judges locks)"
    )]
    pub auto_expire: Option<String>,

    /// Per-path overrides, JSON: [{"path": "bucket/prod/*", "warn_after": "30m", ...}]
    #[arg(
        long,
        global = true,
        env = "LOCK_POLICY",
        value_name = "JSON",
        help_heading = "Policy (as the reaper judges locks)"
    )]
    pub lock_policy: Option<String>,

    /// The kill switch, as the stack's UnlocksPaused parameter sets it: true shows what the reaper
    /// does while unlocks are paused [default: false]
    #[arg(
        long,
        global = true,
        env = "UNLOCKS_PAUSED",
        value_name = "true|false",
        help_heading = "Policy (as the reaper judges locks)"
    )]
    pub unlocks_paused: Option<String>,

    /// AWS region [default: AWS_REGION or your profile's region]
    #[arg(
        long,
        global = true,
        value_name = "REGION",
        help_heading = "AWS (default: the standard AWS environment)"
    )]
    pub region: Option<String>,

    /// Named AWS profile [default: AWS_PROFILE or `default`]
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "AWS (default: the standard AWS environment)"
    )]
    pub profile: Option<String>,

    /// Endpoint for every AWS service, e.g. a local emulator [default: AWS_ENDPOINT_URL]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        help_heading = "AWS (default: the standard AWS environment)"
    )]
    pub endpoint_url: Option<String>,

    /// Address S3 as endpoint/bucket/key (needed for local emulators) [default: false]
    #[arg(
        long,
        global = true,
        env = "S3_FORCE_PATH_STYLE",
        value_name = "true|false",
        help_heading = "AWS (default: the standard AWS environment)"
    )]
    pub s3_path_style: Option<String>,
}

/// Variable → flag, for error messages.
const FLAGS: &[(&str, &str)] = &[
    (LOCK_TABLES, "--tables"),
    (LOCK_BUCKETS, "--buckets"),
    (STATE_BUCKETS, "--state-buckets"),
    (LEDGER_TABLE, "--ledger-table"),
    (APPROVAL_TOPIC_ARN, "--approval-topic-arn"),
    (ALERT_TOPIC_ARN, "--alert-topic-arn"),
    (REAPER_ROLE_ARN, "--reaper-role-arn"),
    (LOCK_METRICS_ROLE_ARN, "--lock-metrics-role-arn"),
    (FORCE_UNLOCK_ROLE_ARN, "--force-unlock-role-arn"),
    (APPROVAL_SECRET_ARN, "--approval-secret-arn"),
    (SLACK_NOTIFIER_ROLE_ARN, "--slack-notifier-role-arn"),
    (SLACK_INTERACTIONS_ROLE_ARN, "--slack-interactions-role-arn"),
    (SLACK_BOT_TOKEN_SECRET_ARN, "--slack-bot-token-secret-arn"),
    (SLACK_SIGNING_SECRET_ARN, "--slack-signing-secret-arn"),
    (
        SLACK_ATTESTATION_SECRET_ARN,
        "--slack-attestation-secret-arn",
    ),
    (StaleLockPolicy::WARN_AFTER, "--warn-after"),
    (StaleLockPolicy::EXPIRE_AFTER, "--expire-after"),
    (StaleLockPolicy::AUTO_EXPIRE, "--auto-expire"),
    (StaleLockPolicy::LOCK_POLICY, "--lock-policy"),
    (UNLOCKS_PAUSED, "--unlocks-paused"),
    (S3_FORCE_PATH_STYLE, "--s3-path-style"),
];

/// `LOCK_TABLES (--tables)`.
pub fn setting_name(variable: &str) -> String {
    match FLAGS.iter().find(|(v, _)| *v == variable) {
        Some((_, flag)) => format!("{variable} ({flag})"),
        None => variable.to_owned(),
    }
}

/// One line listing every configuration problem, each naming its variable and flag.
pub fn describe(errors: &ConfigErrors) -> String {
    let problems: Vec<String> = errors
        .0
        .iter()
        .map(|e| format!("{}: {}", setting_name(e.variable), e.problem))
        .collect();
    format!("invalid configuration: {}", problems.join("; "))
}

impl Settings {
    /// The merged values as the functions' environment, for [`Env`]-based parsing.
    pub fn env(&self) -> Env {
        let values = [
            (LOCK_TABLES, &self.tables),
            (LOCK_BUCKETS, &self.buckets),
            (STATE_BUCKETS, &self.state_buckets),
            (LEDGER_TABLE, &self.ledger_table),
            (APPROVAL_TOPIC_ARN, &self.approval_topic_arn),
            (ALERT_TOPIC_ARN, &self.alert_topic_arn),
            (REAPER_ROLE_ARN, &self.reaper_role_arn),
            (LOCK_METRICS_ROLE_ARN, &self.lock_metrics_role_arn),
            (FORCE_UNLOCK_ROLE_ARN, &self.force_unlock_role_arn),
            (APPROVAL_SECRET_ARN, &self.approval_secret_arn),
            (SLACK_NOTIFIER_ROLE_ARN, &self.slack_notifier_role_arn),
            (
                SLACK_INTERACTIONS_ROLE_ARN,
                &self.slack_interactions_role_arn,
            ),
            (SLACK_BOT_TOKEN_SECRET_ARN, &self.slack_bot_token_secret_arn),
            (SLACK_SIGNING_SECRET_ARN, &self.slack_signing_secret_arn),
            (
                SLACK_ATTESTATION_SECRET_ARN,
                &self.slack_attestation_secret_arn,
            ),
            (StaleLockPolicy::WARN_AFTER, &self.warn_after),
            (StaleLockPolicy::EXPIRE_AFTER, &self.expire_after),
            (StaleLockPolicy::AUTO_EXPIRE, &self.auto_expire),
            (StaleLockPolicy::LOCK_POLICY, &self.lock_policy),
            (UNLOCKS_PAUSED, &self.unlocks_paused),
            (S3_FORCE_PATH_STYLE, &self.s3_path_style),
        ];
        Env::new(
            values
                .into_iter()
                .filter_map(|(name, value)| value.clone().map(|v| (name.to_owned(), v))),
        )
    }
}

/// Ends parsing: every problem found, as one usage error.
pub fn finish<T>(env: Env, value: T) -> Result<T, Failure> {
    env.finish(value).map_err(|e| Failure::usage(describe(&e)))
}

/// `LOCK_TABLES` and `LOCK_BUCKETS`, as the reaper reads them (one of the two is required).
pub fn sources(env: &mut Env) -> LockSources {
    LockSources::from_env(env)
}

/// A topic ARN variable, checked, when set.
pub fn topic_arn(env: &mut Env, variable: &'static str) -> Option<String> {
    let arn = env.get(variable)?.to_owned();
    if let Err(problem) = check_arn(&arn, "sns", "an SNS topic") {
        env.error(ConfigError::new(variable, problem));
    }
    Some(arn)
}

/// `S3_FORCE_PATH_STYLE` (default false).
pub fn path_style(env: &mut Env) -> bool {
    env.parsed(S3_FORCE_PATH_STYLE, false, parse_bool)
}

/// `WARN_AFTER`, `EXPIRE_AFTER`, `AUTO_EXPIRE`, `REMIND_EVERY`, `LOCK_POLICY`, as the reaper reads them.
pub fn policy(env: &mut Env) -> StaleLockPolicy {
    StaleLockPolicy::from_env(env)
}

/// SDK clients from the standard AWS environment, with `--region`, `--profile` and
/// `--endpoint-url` applied on top. A missing region is a usage error (every call would fail).
pub async fn aws(settings: &Settings, s3_path_style: bool) -> Result<lockreaper_aws::Aws, Failure> {
    let aws = lockreaper_aws::Aws::with_overrides(
        settings.region.as_deref(),
        settings.profile.as_deref(),
        settings.endpoint_url.as_deref(),
        s3_path_style,
    )
    .await;
    if !aws.has_region() {
        return Err(Failure::usage(
            "no AWS region is configured; set AWS_REGION (or pass --region, or give your AWS profile a region), e.g. `AWS_REGION=eu-west-1`",
        ));
    }
    Ok(aws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockreaper_core::config::check_table_name;

    #[test]
    fn errors_name_variable_and_flag() {
        let settings = Settings {
            buckets: Some("/x".into()),
            warn_after: Some("4x".into()),
            ..Settings::default()
        };
        let mut env = settings.env();
        let _ = sources(&mut env);
        let _ = policy(&mut env);
        let Err(Failure::Usage(e)) = finish(env, ()) else {
            panic!("expected a usage error")
        };
        let text = e.to_string();
        assert!(text.starts_with("invalid configuration: "), "{text}");
        assert!(
            text.contains("LOCK_BUCKETS (--buckets): \"/x\" has no bucket name"),
            "{text}"
        );
        assert!(
            text.contains("WARN_AFTER (--warn-after): \"4x\" has an unknown unit"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn arns_and_table_names() {
        assert!(check_arn("arn:aws:sns:us-east-1:123456789012:t", "sns", "x").is_ok());
        assert!(check_arn("arn:aws:sqs:us-east-1:123456789012:t", "sns", "x").is_err());
        assert!(check_arn("lockreaper-approvals", "sns", "x")
            .unwrap_err()
            .contains("arn:<partition>:sns"));
        assert!(check_table_name("lockreaper-ledger").is_ok());
        assert!(check_table_name("ab").is_err());
        assert!(check_table_name("a b c").is_err());
    }
}
