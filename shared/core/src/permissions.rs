//! What each function's role must be allowed to do on the deployment's resources: the one list
//! `lockreaper doctor` asks IAM about (`iam:SimulatePrincipalPolicy`) and that
//! `shared/core/tests/permissions_template.rs` checks against the template's grants as resolved
//! by `infra/sam/test_effective_permissions.py` (its recorded fixture).
//!
//! Each entry names the code that makes the call. IAM actions are not always the API's name:
//! `HeadObject` is authorized as `s3:GetObject`, `ListObjectsV2` as `s3:ListBucket`,
//! `ListObjectVersions` as `s3:ListBucketVersions`, a `HeadObject` answers 404 (not 403) for a
//! missing key only with `s3:ListBucket` (S3 API reference, HeadObject, "Permissions"), and
//! `TransactWriteItems` is authorized as the `PutItem`/`UpdateItem`/`DeleteItem` it contains
//! (DynamoDB developer guide, "Using IAM with DynamoDB transactions").
//!
//! Not in the list: the functions' own log groups and dead-letter queues (the CLI is not told
//! their names), KMS keys (the functions are not told them either: the template grants
//! `kms:Decrypt` through `kms:ViaService`, which a simulation without that context cannot answer).

use crate::coverage::StateLocation;
use crate::path::BucketScope;

/// A Lambda function of the stack, by its role's stack output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Function {
    Reaper,
    LockMetrics,
    ForceUnlock,
    /// The Slack app mode's notifier (only with the template's `SlackAppChannelId`).
    SlackNotifier,
    /// The Slack app mode's interactivity endpoint (only with `SlackAppChannelId`).
    SlackInteractions,
}

impl Function {
    pub const ALL: [Function; 5] = [
        Function::Reaper,
        Function::LockMetrics,
        Function::ForceUnlock,
        Function::SlackNotifier,
        Function::SlackInteractions,
    ];

    /// `reaper`, `lock-metrics`, `force-unlock`, `slack-notifier`, `slack-interactions`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Reaper => "reaper",
            Function::LockMetrics => "lock-metrics",
            Function::ForceUnlock => "force-unlock",
            Function::SlackNotifier => "slack-notifier",
            Function::SlackInteractions => "slack-interactions",
        }
    }

    /// The stack output holding the function's role ARN.
    pub fn role_output(self) -> &'static str {
        match self {
            Function::Reaper => "ReaperRoleArn",
            Function::LockMetrics => "LockMetricsRoleArn",
            Function::ForceUnlock => "ForceUnlockRoleArn",
            Function::SlackNotifier => "SlackNotifierRoleArn",
            Function::SlackInteractions => "SlackInteractionsRoleArn",
        }
    }

    /// The template's logical ID of the role.
    pub fn role_logical_id(self) -> &'static str {
        match self {
            Function::Reaper => "ReaperRole",
            Function::LockMetrics => "LockMetricsRole",
            Function::ForceUnlock => "ForceUnlockRole",
            Function::SlackNotifier => "SlackNotifierRole",
            Function::SlackInteractions => "SlackInteractionsRole",
        }
    }
}

/// The resources a deployment's functions work on, as the CLI (or the template) configures them.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    /// `aws`, `aws-cn`, … (from the role's ARN).
    pub partition: String,
    pub region: String,
    pub account: String,
    /// `LOCK_TABLES`.
    pub lock_tables: Vec<String>,
    /// The lock tables' stream ARNs (lock-metrics' event sources).
    pub stream_arns: Vec<String>,
    /// `LOCK_BUCKETS`: where `.tflock` files are searched.
    pub lock_buckets: Vec<BucketScope>,
    /// `STATE_BUCKETS` (default: `LOCK_BUCKETS`): where state objects are read.
    pub state_locations: Vec<StateLocation>,
    /// `LEDGER_TABLE`.
    pub ledger_table: Option<String>,
    /// `ALERT_TOPIC_ARN`.
    pub alert_topic_arn: Option<String>,
    /// `APPROVAL_SECRET_ARN`: the approval token signing key.
    pub approval_secret_arn: Option<String>,
    /// `APPROVAL_TOPIC_ARN`: where the Slack app's endpoint publishes approvals.
    pub approval_topic_arn: Option<String>,
    /// `SLACK_BOT_TOKEN_SECRET_ARN` (Slack app mode): the app's bot token.
    pub slack_bot_token_secret_arn: Option<String>,
    /// `SLACK_SIGNING_SECRET_ARN` (Slack app mode): the app's signing secret.
    pub slack_signing_secret_arn: Option<String>,
    /// `SLACK_ATTESTATION_SECRET_ARN` (Slack app mode): the key verified approvals are attested
    /// with (the endpoint signs, force-unlock verifies).
    pub slack_attestation_secret_arn: Option<String>,
    /// `AUTO_EXPIRE`: the reaper deletes locks itself (the template grants its deletes only then).
    pub auto_expire: bool,
}

/// One permission a function needs: `action` on `resource`, with the `dynamodb:LeadingKeys`
/// value its requests carry (the template scopes ledger writes by partition key prefix).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Needed {
    pub action: &'static str,
    pub resource: String,
    /// A partition key the request writes (`dynamodb:LeadingKeys`), for ledger writes.
    pub leading_key: Option<String>,
    /// What the function does with it.
    pub why: &'static str,
}

/// The ledger write actions of a partition key whose items are put, updated and deleted.
const WRITE_UPDATE_DELETE: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
];
/// ... and of one whose items are only put and deleted.
const WRITE_DELETE: &[&str] = &["dynamodb:PutItem", "dynamodb:DeleteItem"];

/// ... and of one whose items are put and updated, never deleted.
const WRITE_UPDATE: &[&str] = &["dynamodb:PutItem", "dynamodb:UpdateItem"];

/// A partition key of each kind each function writes in the ledger (`shared/aws/src/ledger.rs`,
/// `alert_state.rs`, `proposals.rs`, `unlock.rs`, `slack_threads.rs`), with the actions it writes
/// them with.
fn ledger_writes(function: Function) -> &'static [(&'static str, &'static [&'static str])] {
    match function {
        // alert_state.rs (alerts#, unparseable), proposals.rs (proposal#), ledger.rs (lock#:
        // Gyro first-seen times)
        Function::Reaper => &[
            ("alerts#lockreaper-doctor", WRITE_UPDATE_DELETE),
            ("lock#lockreaper-doctor", WRITE_UPDATE_DELETE),
            ("proposal#lockreaper-doctor", WRITE_UPDATE_DELETE),
            ("unparseable", WRITE_UPDATE_DELETE),
        ],
        // ledger.rs: stream claims (stream#), state writes seen (state#), lock lifecycle (lock#)
        Function::LockMetrics => &[
            ("stream#lockreaper-doctor", WRITE_DELETE),
            ("state#lockreaper-doctor", WRITE_DELETE),
            ("lock#lockreaper-doctor", WRITE_DELETE),
        ],
        // unlock.rs (audit#: written once, never changed), proposals.rs (proposal#, lock#)
        Function::ForceUnlock => &[
            ("audit#lockreaper-doctor", &["dynamodb:PutItem"]),
            ("lock#lockreaper-doctor", WRITE_UPDATE_DELETE),
            ("proposal#lockreaper-doctor", WRITE_UPDATE_DELETE),
        ],
        // slack_threads.rs: each lock's channel message (its thread), written conditionally
        // (issue 13's contract: `slack#` partition keys only)
        Function::SlackNotifier => &[("slack#lockreaper-doctor", WRITE_UPDATE)],
        // the endpoint keeps no ledger items
        Function::SlackInteractions => &[],
    }
}

/// A key under `scope` ending in `suffix`: what a state (or `.tflock`) object there is named
/// like, for a simulation on one concrete object.
pub fn example_key(scope: &BucketScope, suffix: &str) -> String {
    format!(
        "{}lockreaper-doctor/terraform.tfstate{suffix}",
        scope.prefix.as_deref().unwrap_or("")
    )
}

fn push(out: &mut Vec<Needed>, action: &'static str, resource: &str, why: &'static str) {
    out.push(Needed {
        action,
        resource: resource.to_owned(),
        leading_key: None,
        why,
    });
}

/// Every permission `function` needs on `deployment`'s resources, in a stable order.
pub fn needed(function: Function, deployment: &Deployment) -> Vec<Needed> {
    let d = deployment;
    let table_arn = |name: &str| {
        format!(
            "arn:{}:dynamodb:{}:{}:table/{name}",
            d.partition, d.region, d.account
        )
    };
    let bucket_arn = |bucket: &str| format!("arn:{}:s3:::{bucket}", d.partition);
    let object_arn = |scope: &BucketScope, suffix: &str| {
        format!(
            "arn:{}:s3:::{}/{}",
            d.partition,
            scope.bucket,
            example_key(scope, suffix)
        )
    };
    let mut out = Vec::new();
    // Lock tables.
    for table in &d.lock_tables {
        let arn = table_arn(table);
        match function {
            Function::Reaper => {
                // lock_table.rs: which key (LockID/LockKey) the table has
                push(
                    &mut out,
                    "dynamodb:DescribeTable",
                    &arn,
                    "tell a Terraform table from a Gyro one",
                );
                push(&mut out, "dynamodb:Scan", &arn, "read the locks (sweep)");
                push(
                    &mut out,
                    "dynamodb:GetItem",
                    &arn,
                    "re-read a lock (and its -md5 digest) before acting",
                );
                if d.auto_expire {
                    push(
                        &mut out,
                        "dynamodb:DeleteItem",
                        &arn,
                        "auto-expire: delete a stale lock (conditionally)",
                    );
                }
            }
            Function::ForceUnlock => {
                push(
                    &mut out,
                    "dynamodb:GetItem",
                    &arn,
                    "re-read the approved lock",
                );
                push(
                    &mut out,
                    "dynamodb:DeleteItem",
                    &arn,
                    "delete the approved lock (conditionally)",
                );
            }
            Function::LockMetrics | Function::SlackNotifier | Function::SlackInteractions => {}
        }
    }
    // Lock table streams (lock-metrics' event source mappings read them on its behalf).
    if function == Function::LockMetrics {
        for stream in &d.stream_arns {
            for action in [
                "dynamodb:DescribeStream",
                "dynamodb:GetShardIterator",
                "dynamodb:GetRecords",
            ] {
                push(
                    &mut out,
                    action,
                    stream,
                    "read the lock table's stream (event source mapping)",
                );
            }
        }
        if !d.stream_arns.is_empty() {
            push(
                &mut out,
                "dynamodb:ListStreams",
                "*",
                "find the stream (event source mapping)",
            );
        }
    }
    // Lock files (`LOCK_BUCKETS`): the reaper searches them (lock_files.rs).
    if function == Function::Reaper {
        for scope in &d.lock_buckets {
            push(
                &mut out,
                "s3:ListBucket",
                &bucket_arn(&scope.bucket),
                "list the .tflock files",
            );
            push(
                &mut out,
                "s3:GetObject",
                &object_arn(scope, ".tflock"),
                "read a .tflock file",
            );
            if d.auto_expire {
                push(
                    &mut out,
                    "s3:DeleteObject",
                    &object_arn(scope, ".tflock"),
                    "auto-expire: delete a stale .tflock file",
                );
            }
        }
    }
    // State objects (`STATE_BUCKETS`): the liveness evidence and, before an unlock, the state check
    // (state.rs); force-unlock also deletes lock files there (locks.rs).
    let unlocks = match function {
        Function::Reaper => d.auto_expire,
        Function::ForceUnlock => true,
        Function::LockMetrics | Function::SlackNotifier | Function::SlackInteractions => false,
    };
    if matches!(function, Function::Reaper | Function::ForceUnlock) {
        for scope in &d.state_locations {
            let bucket = bucket_arn(&scope.bucket);
            push(
                &mut out,
                "s3:ListBucket",
                &bucket,
                "tell a missing state (404) from a denied one",
            );
            push(
                &mut out,
                "s3:GetObject",
                &object_arn(scope, ""),
                "read the state object (liveness evidence)",
            );
            if unlocks {
                push(
                    &mut out,
                    "s3:GetBucketVersioning",
                    &bucket,
                    "state check before an unlock: versioning",
                );
                push(
                    &mut out,
                    "s3:ListBucketVersions",
                    &bucket,
                    "state check before an unlock: versions",
                );
            }
            if function == Function::ForceUnlock {
                push(
                    &mut out,
                    "s3:DeleteObject",
                    &object_arn(scope, ".tflock"),
                    "delete an approved .tflock file",
                );
            }
        }
    }
    // The ledger (the Slack app's endpoint keeps none; the notifier reads its items by key only).
    if let Some(ledger) = d
        .ledger_table
        .as_ref()
        .filter(|_| function != Function::SlackInteractions)
    {
        let arn = table_arn(ledger);
        push(&mut out, "dynamodb:GetItem", &arn, "read ledger items");
        if function != Function::SlackNotifier {
            push(&mut out, "dynamodb:Query", &arn, "read ledger partitions");
        }
        if function == Function::LockMetrics {
            push(
                &mut out,
                "dynamodb:BatchGetItem",
                &arn,
                "read ledger items in batches",
            );
        }
        for (key, actions) in ledger_writes(function) {
            for action in *actions {
                out.push(Needed {
                    action,
                    resource: arn.clone(),
                    leading_key: Some((*key).to_owned()),
                    why: "write its ledger items",
                });
            }
        }
    }
    // Alerts (notify.rs) and the approval signing key (secrets.rs).
    if matches!(function, Function::Reaper | Function::ForceUnlock) {
        if let Some(topic) = &d.alert_topic_arn {
            push(&mut out, "sns:Publish", topic, "publish alerts and results");
        }
        if let Some(secret) = &d.approval_secret_arn {
            push(
                &mut out,
                "secretsmanager:GetSecretValue",
                secret,
                "sign and verify approval tokens",
            );
        }
    }
    // The Slack app mode (issue 13): the app's secrets, and the endpoint's approvals.
    let secret = |out: &mut Vec<Needed>, arn: &Option<String>, why: &'static str| {
        if let Some(arn) = arn {
            push(out, "secretsmanager:GetSecretValue", arn, why);
        }
    };
    match function {
        Function::ForceUnlock => secret(
            &mut out,
            &d.slack_attestation_secret_arn,
            "verify the attestation of a Slack-verified approval",
        ),
        Function::SlackNotifier => secret(
            &mut out,
            &d.slack_bot_token_secret_arn,
            "post and update Slack messages (bot token)",
        ),
        Function::SlackInteractions => {
            secret(
                &mut out,
                &d.slack_signing_secret_arn,
                "verify Slack's request signature",
            );
            secret(
                &mut out,
                &d.slack_attestation_secret_arn,
                "attest a verified approval",
            );
            secret(
                &mut out,
                &d.slack_bot_token_secret_arn,
                "replace a pressed message's buttons (bot token)",
            );
            if let Some(topic) = &d.approval_topic_arn {
                push(
                    &mut out,
                    "sns:Publish",
                    topic,
                    "publish a verified, attested approval",
                );
            }
        }
        Function::Reaper | Function::LockMetrics => {}
    }
    out
}

/// The partition and account of an IAM role ARN (`arn:<partition>:iam::<account>:role/<name>`).
pub fn role_partition_and_account(role_arn: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = role_arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource.starts_with("role/") =>
        {
            Ok(((*partition).to_owned(), (*account).to_owned()))
        }
        _ => Err(format!(
            "{role_arn:?} is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(auto_expire: bool) -> Deployment {
        Deployment {
            partition: "aws".into(),
            region: "eu-west-1".into(),
            account: "123456789012".into(),
            lock_tables: vec!["tf-locks".into()],
            stream_arns: vec![
                "arn:aws:dynamodb:eu-west-1:123456789012:table/tf-locks/stream/1".into(),
            ],
            lock_buckets: vec![BucketScope::parse("acme-tfstate/env/").expect("valid")],
            state_locations: vec![BucketScope::parse("acme-tfstate/env/").expect("valid")],
            ledger_table: Some("ledger".into()),
            alert_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:alerts".into()),
            approval_secret_arn: Some(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:s".into(),
            ),
            approval_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:ok".into()),
            slack_bot_token_secret_arn: Some(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bot".into(),
            ),
            slack_signing_secret_arn: Some(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signing".into(),
            ),
            slack_attestation_secret_arn: Some(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:attest".into(),
            ),
            auto_expire,
        }
    }

    fn has(list: &[Needed], action: &str, resource: &str) -> bool {
        list.iter()
            .any(|n| n.action == action && n.resource == resource)
    }

    #[test]
    fn the_reaper_deletes_only_with_auto_expire() {
        let table = "arn:aws:dynamodb:eu-west-1:123456789012:table/tf-locks";
        let lock_file = "arn:aws:s3:::acme-tfstate/env/lockreaper-doctor/terraform.tfstate.tflock";
        let off = needed(Function::Reaper, &deployment(false));
        assert!(has(&off, "dynamodb:Scan", table));
        assert!(!off
            .iter()
            .any(|n| n.action.contains("Delete") && n.leading_key.is_none()));
        assert!(!has(&off, "dynamodb:DeleteItem", table));
        assert!(!has(
            &off,
            "s3:ListBucketVersions",
            "arn:aws:s3:::acme-tfstate"
        ));
        let on = needed(Function::Reaper, &deployment(true));
        assert!(has(&on, "dynamodb:DeleteItem", table));
        assert!(has(&on, "s3:DeleteObject", lock_file));
        assert!(has(
            &on,
            "s3:ListBucketVersions",
            "arn:aws:s3:::acme-tfstate"
        ));
    }

    #[test]
    fn lock_metrics_reads_streams_and_writes_only_its_ledger_prefixes() {
        let list = needed(Function::LockMetrics, &deployment(false));
        assert!(has(
            &list,
            "dynamodb:GetRecords",
            "arn:aws:dynamodb:eu-west-1:123456789012:table/tf-locks/stream/1"
        ));
        assert!(has(&list, "dynamodb:ListStreams", "*"));
        assert!(!list
            .iter()
            .any(|n| n.action.starts_with("s3:") || n.action.starts_with("sns:")));
        let keys: Vec<&str> = list
            .iter()
            .filter_map(|n| n.leading_key.as_deref())
            .collect();
        assert!(
            keys.iter().all(|k| k.starts_with("stream#")
                || k.starts_with("state#")
                || k.starts_with("lock#")),
            "{keys:?}"
        );
        assert!(keys.contains(&"state#lockreaper-doctor"));
    }

    #[test]
    fn force_unlock_writes_audit_records_and_deletes_lock_files_in_state_buckets() {
        let mut d = deployment(false);
        d.lock_buckets.clear();
        let list = needed(Function::ForceUnlock, &d);
        assert!(list.iter().any(|n| n.action == "dynamodb:PutItem"
            && n.leading_key.as_deref() == Some("audit#lockreaper-doctor")));
        assert!(!list.iter().any(|n| n.action != "dynamodb:PutItem"
            && n.leading_key
                .as_deref()
                .is_some_and(|k| k.starts_with("audit#"))));
        assert!(has(
            &list,
            "s3:DeleteObject",
            "arn:aws:s3:::acme-tfstate/env/lockreaper-doctor/terraform.tfstate.tflock"
        ));
        assert!(has(
            &list,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:s"
        ));
    }

    #[test]
    fn the_slack_app_functions_need_only_their_secrets_topic_and_thread_items() {
        let d = deployment(true);
        let notifier = needed(Function::SlackNotifier, &d);
        let actions = |list: &[Needed]| {
            let mut a: Vec<&str> = list.iter().map(|n| n.action).collect();
            a.sort_unstable();
            a.dedup();
            a
        };
        assert_eq!(
            actions(&notifier),
            [
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "secretsmanager:GetSecretValue"
            ]
        );
        assert!(notifier
            .iter()
            .filter_map(|n| n.leading_key.as_deref())
            .all(|k| k.starts_with("slack#")));
        assert!(has(
            &notifier,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bot"
        ));
        let endpoint = needed(Function::SlackInteractions, &d);
        assert_eq!(
            actions(&endpoint),
            ["secretsmanager:GetSecretValue", "sns:Publish"]
        );
        assert!(has(
            &endpoint,
            "sns:Publish",
            "arn:aws:sns:eu-west-1:123456789012:ok"
        ));
        for secret in ["bot", "signing", "attest"] {
            let arn = format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{secret}");
            assert!(has(&endpoint, "secretsmanager:GetSecretValue", &arn));
        }
        // force-unlock verifies the attestation; the reaper is told nothing of Slack
        assert!(has(
            &needed(Function::ForceUnlock, &d),
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:attest"
        ));
        assert!(!needed(Function::Reaper, &d)
            .iter()
            .any(|n| n.resource.contains("secret:attest") || n.resource.ends_with(":ok")));
    }

    #[test]
    fn nothing_configured_needs_nothing() {
        for f in Function::ALL {
            assert_eq!(needed(f, &Deployment::default()), Vec::new());
        }
    }

    #[test]
    fn role_arns() {
        assert_eq!(
            role_partition_and_account("arn:aws-cn:iam::123456789012:role/x-reaper"),
            Ok(("aws-cn".into(), "123456789012".into()))
        );
        assert!(role_partition_and_account("arn:aws:iam::123456789012:user/x").is_err());
        assert!(role_partition_and_account("reaper").is_err());
    }
}
