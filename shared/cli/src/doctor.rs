//! `lockreaper doctor`: checks a deployment's configuration against what AWS says, one line per
//! check (OK, WARN or FAIL) with a one-line fix for each problem. Read-only: it describes, lists and
//! reads, and never writes.
//!
//! - each lock table: exists, keyed on `LockID` or `LockKey` (S), stream on with
//!   `NEW_AND_OLD_IMAGES`, `Scan` allowed;
//! - each bucket: exists, versioning enabled (WARN otherwise, or when it cannot be read),
//!   `ListObjectsV2` allowed on the configured prefix;
//! - each bucket's S3 events: whether it sends them to EventBridge (`EventBridgeConfiguration`),
//!   which S3-native lock files need for lifecycle metrics and state-write liveness (WARN, with the
//!   Terraform to turn it on, when not);
//! - the ledger: exists, keyed on `pk`/`sk` (S), TTL on `expires_at`, `GetItem` allowed;
//! - the approvals topic: exists, a Lambda function (force-unlock) is subscribed;
//! - the alert topic: exists, has confirmed subscriptions;
//! - coverage: for each lock table and searched bucket, the state buckets its locks point at
//!   (bounded read), each covered by `STATE_BUCKETS`, readable by the caller, in this region
//!   ([`SourceCoverage`], `coverage` in `--json`).

use aws_sdk_dynamodb::types::{
    KeyType, ScalarAttributeType, StreamViewType, TableDescription, TimeToLiveStatus,
};
use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::types::BucketVersioningStatus;
use lockreaper_aws::{AwsError, AwsErrorKind, BucketScope};
use lockreaper_core::config::LockSources;
use lockreaper_core::coverage::{group_by_bucket, BucketCoverage, StateLocation};
use lockreaper_core::kinds::{gyro, terraform};
use lockreaper_core::StatePath;

use crate::config::{
    self, setting_name, Settings, ALERT_TOPIC_ARN, APPROVAL_SECRET_ARN, APPROVAL_TOPIC_ARN,
    FORCE_UNLOCK_ROLE_ARN, LOCK_METRICS_ROLE_ARN, REAPER_ROLE_ARN, SLACK_ATTESTATION_SECRET_ARN,
    SLACK_BOT_TOKEN_SECRET_ARN, SLACK_INTERACTIONS_ROLE_ARN, SLACK_NOTIFIER_ROLE_ARN,
    SLACK_SIGNING_SECRET_ARN, STATE_BUCKETS,
};
use crate::doctor_roles::{role_check, roles_section, simulate_role, RoleReport};
use crate::failure::{concise, Failure, EXIT_OK, EXIT_PROBLEMS};
use crate::progress::Progress;
use lockreaper_core::config::ConfigError;
use lockreaper_core::permissions::{role_partition_and_account, Deployment, Function};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub status: Status,
    pub what: String,
    pub fix: Option<String>,
}

pub(crate) fn ok(what: impl Into<String>) -> Check {
    Check {
        status: Status::Ok,
        what: what.into(),
        fix: None,
    }
}

pub(crate) fn warn(what: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        status: Status::Warn,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

pub(crate) fn fail(what: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        status: Status::Fail,
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// The checks of one resource.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section {
    pub title: String,
    pub checks: Vec<Check>,
}

fn err_text(e: &AwsError) -> String {
    concise(&e.message)
}

/// `lockreaper doctor` options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON document for scripts ("schema": "lockreaper.doctor/v1") instead of the report
    #[arg(long)]
    pub json: bool,
}

/// `doctor --json`: the same sections and checks as the text report.
#[derive(Debug, serde::Serialize)]
struct DoctorReport<'a> {
    schema: &'static str,
    region: &'a str,
    sections: &'a [Section],
    /// Added within v1: per lock table and searched bucket, the state buckets its locks point at
    /// and whether each is covered, readable and in this region (also shown as the `state buckets
    /// of …` sections).
    coverage: &'a [SourceCoverage],
    /// Added within v1: per function whose role ARN is set (REAPER_ROLE_ARN, …), what
    /// iam:SimulatePrincipalPolicy said about the permissions it needs (also the `functions'
    /// roles` section).
    roles: &'a [RoleReport],
    counts: Counts,
    /// No check failed (WARN does not fail; the exit code is 2 exactly when this is false).
    passed: bool,
}

#[derive(Debug, Default, serde::Serialize)]
struct Counts {
    ok: usize,
    warn: usize,
    fail: usize,
}

fn counts(sections: &[Section]) -> Counts {
    let mut counts = Counts::default();
    for check in sections.iter().flat_map(|s| &s.checks) {
        match check.status {
            Status::Ok => counts.ok += 1,
            Status::Warn => counts.warn += 1,
            Status::Fail => counts.fail += 1,
        }
    }
    counts
}

pub async fn run(settings: &Settings, args: &Args) -> Result<u8, Failure> {
    let mut env = settings.env();
    let sources = config::sources(&mut env);
    let ledger = env.ledger_table();
    let approval_topic = config::topic_arn(&mut env, APPROVAL_TOPIC_ARN);
    let alert_topic = config::topic_arn(&mut env, ALERT_TOPIC_ARN);
    let path_style = config::path_style(&mut env);
    // The policy is checked as the reaper checks it, so a bad WARN_AFTER is found here too.
    let policy = config::policy(&mut env);
    let approval_secret = env.get(APPROVAL_SECRET_ARN).map(str::to_owned);
    let get = |env: &lockreaper_core::config::Env, name: &str| env.get(name).map(str::to_owned);
    let slack_bot_token_secret = get(&env, SLACK_BOT_TOKEN_SECRET_ARN);
    let slack_signing_secret = get(&env, SLACK_SIGNING_SECRET_ARN);
    let slack_attestation_secret = get(&env, SLACK_ATTESTATION_SECRET_ARN);
    let roles = role_arns(&mut env);
    config::finish(env, ())?;
    let aws = config::aws(settings, path_style).await?;
    let dynamodb = aws.dynamodb();
    let s3 = aws.s3();
    let sns = aws.sns();

    let progress = Progress::start(&format!(
        "checking {} lock table(s), {} bucket(s), the ledger and the topics…",
        sources.tables.len(),
        sources.buckets.len()
    ));
    let tables = futures::future::join_all(sources.tables.iter().map(|t| lock_table(&dynamodb, t)));
    // The region the functions run in (and the S3 client here talks to): a bucket elsewhere is
    // refused, not followed (see `bucket`).
    let home_region = aws
        .sdk
        .region()
        .map(ToString::to_string)
        .unwrap_or_default();
    let buckets =
        futures::future::join_all(sources.buckets.iter().map(|b| bucket(&s3, b, &home_region)));
    // Once per bucket, however many prefixes of it are configured.
    let mut event_buckets: Vec<&str> = Vec::new();
    for b in &sources.buckets {
        if !event_buckets.contains(&b.bucket.as_str()) {
            event_buckets.push(&b.bucket);
        }
    }
    let s3_events =
        futures::future::join_all(event_buckets.iter().map(|b| s3_event_delivery(&s3, b)));
    let ledger_section = async {
        match &ledger {
            Some(name) => ledger_table(&dynamodb, name).await,
            None => Section {
                title: "ledger".to_owned(),
                checks: vec![warn(
                    format!("{} is not set: not checked; `lockreaper audit` and the ledger's liveness evidence in `lockreaper locks` need it", setting_name(config::LEDGER_TABLE)),
                    "set LEDGER_TABLE (or --ledger-table) to the deployment's ledger table",
                )],
            },
        }
    };
    let topics = futures::future::join_all([
        topic(&sns, APPROVAL_TOPIC_ARN, approval_topic.as_deref()),
        topic(&sns, ALERT_TOPIC_ARN, alert_topic.as_deref()),
    ]);
    let coverage = coverage_of_sources(&dynamodb, &s3, &sources, &home_region);
    let deployment = Deployment {
        partition: String::new(),
        account: String::new(),
        region: home_region.clone(),
        lock_tables: sources.tables.clone(),
        stream_arns: Vec::new(),
        lock_buckets: sources.buckets.clone(),
        state_locations: sources.state_locations.clone(),
        ledger_table: ledger.clone(),
        alert_topic_arn: alert_topic.clone(),
        approval_secret_arn: approval_secret,
        approval_topic_arn: approval_topic.clone(),
        slack_bot_token_secret_arn: slack_bot_token_secret,
        slack_signing_secret_arn: slack_signing_secret,
        slack_attestation_secret_arn: slack_attestation_secret,
        auto_expire: policy.auto_expire,
    };
    let role_checks = check_roles(&aws, &dynamodb, &roles, deployment);
    let (tables, buckets, s3_events, ledger_section, topics, coverage, role_checks) = futures::join!(
        tables,
        buckets,
        s3_events,
        ledger_section,
        topics,
        coverage,
        role_checks
    );
    let (role_reports, role_checks): (Vec<RoleReport>, Vec<Check>) =
        role_checks.into_iter().unzip();
    let mut sections = tables;
    sections.extend(buckets);
    sections.extend(s3_events);
    sections.extend(coverage.iter().map(|c| coverage_section(c, &home_region)));
    sections.push(ledger_section);
    sections.extend(topics);
    sections.extend(roles_section(role_checks));

    progress.finish();
    let counts = counts(&sections);
    let failed = counts.fail > 0;
    if args.json {
        let report = DoctorReport {
            schema: "lockreaper.doctor/v1",
            region: &home_region,
            sections: &sections,
            coverage: &coverage,
            roles: &role_reports,
            counts,
            passed: !failed,
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Problem(anyhow::anyhow!("cannot encode the report: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&home_region, &sections));
    }
    Ok(if failed { EXIT_PROBLEMS } else { EXIT_OK })
}

/// The role ARNs set (`REAPER_ROLE_ARN`, `LOCK_METRICS_ROLE_ARN`, `FORCE_UNLOCK_ROLE_ARN`, and in
/// the Slack app mode `SLACK_NOTIFIER_ROLE_ARN`, `SLACK_INTERACTIONS_ROLE_ARN`), each checked to be
/// an IAM role ARN.
fn role_arns(env: &mut lockreaper_core::config::Env) -> Vec<(Function, String)> {
    let mut out = Vec::new();
    for (function, variable) in [
        (Function::Reaper, REAPER_ROLE_ARN),
        (Function::LockMetrics, LOCK_METRICS_ROLE_ARN),
        (Function::ForceUnlock, FORCE_UNLOCK_ROLE_ARN),
        (Function::SlackNotifier, SLACK_NOTIFIER_ROLE_ARN),
        (Function::SlackInteractions, SLACK_INTERACTIONS_ROLE_ARN),
    ] {
        let Some(arn) = env.get(variable).map(str::to_owned) else {
            continue;
        };
        match role_partition_and_account(&arn) {
            Ok(_) => out.push((function, arn)),
            Err(problem) => env.error(ConfigError::new(variable, problem)),
        }
    }
    out
}

/// Simulates each configured role's needed permissions. The lock tables' stream ARNs (what
/// lock-metrics reads) come from DescribeTable; a table that cannot be described is reported by
/// its own section and left out here.
async fn check_roles(
    aws: &lockreaper_aws::Aws,
    dynamodb: &aws_sdk_dynamodb::Client,
    roles: &[(Function, String)],
    mut deployment: Deployment,
) -> Vec<(RoleReport, Check)> {
    if roles.is_empty() {
        return Vec::new();
    }
    if roles.iter().any(|(f, _)| *f == Function::LockMetrics) {
        let streams = futures::future::join_all(
            deployment
                .lock_tables
                .iter()
                .map(|t| describe_table(dynamodb, t)),
        )
        .await;
        deployment.stream_arns = streams
            .into_iter()
            .filter_map(|d| d.ok().and_then(|d| d.latest_stream_arn))
            .collect();
    }
    let iam = aws.iam();
    let iam = &iam;
    let checks = roles.iter().map(|(function, arn)| {
        let mut deployment = deployment.clone();
        async move {
            if let Ok((partition, account)) = role_partition_and_account(arn) {
                deployment.partition = partition;
                deployment.account = account;
            }
            let answers = simulate_role(iam, arn, *function, &deployment).await;
            role_check(*function, arn, answers)
        }
    });
    futures::future::join_all(checks).await
}

pub fn render(region: &str, sections: &[Section]) -> String {
    let mut out = format!("lockreaper doctor ({region})\n");
    let mut counts = [0usize; 3];
    for section in sections {
        out.push_str(&format!("\n{}\n", section.title));
        for check in &section.checks {
            counts[check.status as usize] += 1;
            out.push_str(&format!("  {:<5} {}\n", check.status.label(), check.what));
            if let Some(fix) = &check.fix {
                out.push_str(&format!("        fix: {fix}\n"));
            }
        }
    }
    let [oks, warns, fails] = counts;
    out.push_str(&format!(
        "\n{fails} FAIL, {warns} WARN, {oks} OK{}\n",
        if fails > 0 {
            ": fix the FAIL lines above"
        } else {
            ""
        }
    ));
    out
}

/// The single string hash key, if the table has exactly that (and no range key).
fn single_string_hash_key(desc: &TableDescription) -> Result<String, String> {
    let keys = desc.key_schema();
    let describe = || {
        keys.iter()
            .map(|k| format!("{} ({})", k.attribute_name(), k.key_type().as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let [key] = keys else {
        return Err(format!("the key is {}", describe()));
    };
    if key.key_type() != &KeyType::Hash {
        return Err(format!("the key is {}", describe()));
    }
    let name = key.attribute_name();
    let string = desc
        .attribute_definitions()
        .iter()
        .any(|a| a.attribute_name() == name && a.attribute_type() == &ScalarAttributeType::S);
    if !string {
        return Err(format!("the key {name} is not a string (S)"));
    }
    Ok(name.to_owned())
}

async fn describe_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<TableDescription, AwsError> {
    let out = dynamodb
        .describe_table()
        .table_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(e, "describe table", name))?;
    out.table.ok_or_else(|| AwsError {
        kind: AwsErrorKind::Other,
        action: "describe table",
        resource: name.to_owned(),
        message: "DescribeTable returned no table description".to_owned(),
    })
}

async fn lock_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> Section {
    let mut checks = Vec::new();
    match describe_table(dynamodb, name).await {
        Err(e) if e.kind == AwsErrorKind::NotFound => {
            checks.push(fail(
                "does not exist",
                "create it, or correct LOCK_TABLES (--tables): it must name the table in your backend's `dynamodb_table` (or Gyro's lock table)",
            ));
            return Section {
                title: format!("lock table {name}"),
                checks,
            };
        }
        Err(e) => checks.push(fail(
            format!("cannot describe it, so its key and stream are unchecked: {}", err_text(&e)),
            "allow dynamodb:DescribeTable on it for the role running doctor, and check region and credentials",
        )),
        Ok(desc) => {
            match single_string_hash_key(&desc) {
                Ok(key) if key == terraform::KEY_ATTRIBUTE => {
                    checks.push(ok("exists, keyed on LockID (S): a Terraform/OpenTofu lock table"))
                }
                Ok(key) if key == gyro::KEY_ATTRIBUTE => {
                    checks.push(ok("exists, keyed on LockKey (S): a Gyro lock table"))
                }
                Ok(key) => checks.push(fail(
                    format!("keyed on {key}, not LockID (Terraform/OpenTofu) or LockKey (Gyro): not a lock table"),
                    "correct LOCK_TABLES (--tables) to name your state lock tables",
                )),
                Err(why) => checks.push(fail(
                    format!("{why}; a lock table has one string (S) hash key, LockID (Terraform/OpenTofu) or LockKey (Gyro)"),
                    "correct LOCK_TABLES (--tables) to name your state lock tables",
                )),
            }
            let stream = desc.stream_specification();
            let enable = format!(
                "in Terraform's aws_dynamodb_table set stream_enabled = true and stream_view_type = \"NEW_AND_OLD_IMAGES\", or run `aws dynamodb update-table --table-name {name} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES`"
            );
            match stream {
                Some(s) if s.stream_enabled() => match s.stream_view_type() {
                    Some(StreamViewType::NewAndOldImages) => {
                        checks.push(ok("stream enabled with NEW_AND_OLD_IMAGES"))
                    }
                    other => checks.push(fail(
                        format!(
                            "stream view type is {}; lock-metrics needs NEW_AND_OLD_IMAGES to see what each lock was",
                            other.map(|v| v.as_str()).unwrap_or("unknown")
                        ),
                        format!("disable the stream, then {enable}"),
                    )),
                },
                _ => checks.push(fail(
                    "no stream enabled: lock-metrics cannot see locks being taken and released",
                    enable,
                )),
            }
        }
    }
    match dynamodb
        .scan()
        .table_name(name)
        .limit(1)
        .consistent_read(true)
        .send()
        .await
    {
        Ok(_) => checks.push(ok(
            "Scan works (how the reaper and `lockreaper locks` read locks)",
        )),
        Err(e) => {
            let e = AwsError::from_sdk(e, "scan table", name);
            checks.push(fail(
                format!("Scan failed: {}", err_text(&e)),
                "allow dynamodb:Scan (and dynamodb:GetItem, dynamodb:DeleteItem for unlocks) on the table",
            ))
        }
    }
    Section {
        title: format!("lock table {name}"),
        checks,
    }
}

/// The check for a bucket in another region than the functions'. lockreaper refuses such a bucket
/// rather than following it: every S3 call of the functions (lock files, the state check before an
/// unlock, the lock-file delete) goes through one client for the stack's region, the template's
/// KMS grants are scoped to `s3.<stack region>.amazonaws.com`, and a VPC's S3 gateway endpoint
/// reaches only its own region. A stack per region is the supported layout.
fn other_region(name: &str, bucket_region: &str, home_region: &str) -> Check {
    fail(
        format!("is in {bucket_region}, not {home_region} where lockreaper runs: buckets in another region are not supported"),
        format!("deploy a lockreaper stack in {bucket_region} and list {name} there, and remove it from LOCK_BUCKETS (StateBuckets) here"),
    )
}

async fn bucket(s3: &aws_sdk_s3::Client, scope: &BucketScope, home_region: &str) -> Section {
    let name = &scope.bucket;
    let title = format!("bucket {scope}");
    let mut checks = Vec::new();
    match s3.head_bucket().bucket(name).send().await {
        // HeadBucket answers the bucket's region in `x-amz-bucket-region` (S3 API reference,
        // HeadBucket, "Response Syntax"), also on the 301 a regional endpoint answers for a bucket
        // elsewhere.
        Ok(out) => match out.bucket_region() {
            Some(region) if !home_region.is_empty() && region != home_region => {
                checks.push(other_region(name, region, home_region));
                return Section { title, checks };
            }
            _ => checks.push(ok("exists")),
        },
        Err(e)
            if e.raw_response().is_some_and(|r| r.status().as_u16() == 301)
                && e.raw_response()
                    .and_then(|r| r.headers().get("x-amz-bucket-region"))
                    .is_some_and(|region| region != home_region) =>
        {
            let region = e
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .unwrap_or_default()
                .to_owned();
            checks.push(other_region(name, &region, home_region));
            return Section { title, checks };
        }
        Err(e) => {
            let e = AwsError::from_sdk(e, "find bucket", name);
            if e.kind == AwsErrorKind::NotFound {
                checks.push(fail(
                    "does not exist",
                    "create it, or correct LOCK_BUCKETS (--buckets): it must name the bucket of your S3 backend",
                ));
                return Section { title, checks };
            }
            checks.push(fail(
                format!("HeadBucket failed: {}", err_text(&e)),
                format!(
                    "allow s3:ListBucket on arn:aws:s3:::{name}, and check region and credentials"
                ),
            ));
        }
    }
    let enable = format!(
        "enable versioning so every forced unlock has a rollback point: `aws s3api put-bucket-versioning --bucket {name} --versioning-configuration Status=Enabled`"
    );
    match s3.get_bucket_versioning().bucket(name).send().await {
        Ok(out) => match out.status() {
            Some(BucketVersioningStatus::Enabled) => checks.push(ok(
                "versioning enabled: earlier state versions stay as rollback points",
            )),
            Some(BucketVersioningStatus::Suspended) => {
                checks.push(warn("versioning suspended", enable))
            }
            _ => checks.push(warn("versioning never enabled", enable)),
        },
        // Denied, or (on some emulators) answered in a shape the SDK cannot parse.
        Err(e) => {
            let unreadable =
                e.code().is_none() && e.raw_response().map(|r| r.status().as_u16()) == Some(200);
            let reason = if unreadable {
                "the answer could not be parsed (some emulators answer GetBucketVersioning in a form the AWS SDK cannot read)".to_owned()
            } else {
                err_text(&AwsError::from_sdk(e, "read versioning of bucket", name))
            };
            checks.push(warn(
                format!("could not read versioning: {reason}"),
                format!(
                    "allow s3:GetBucketVersioning, or check versioning of {name} in the console"
                ),
            ))
        }
    }
    match s3
        .list_objects_v2()
        .bucket(name)
        .set_prefix(scope.prefix.clone())
        .max_keys(1)
        .send()
        .await
    {
        Ok(_) => checks.push(ok(format!(
            "ListObjectsV2 works on {scope} (how lock files are found)"
        ))),
        Err(e) => {
            let e = AwsError::from_sdk(e, "list", scope.to_string());
            checks.push(fail(
                format!("ListObjectsV2 failed: {}", err_text(&e)),
                format!("allow s3:ListBucket on arn:aws:s3:::{name} (and s3:GetObject, s3:DeleteObject on its *.tflock keys)"),
            ))
        }
    }
    Section { title, checks }
}

/// Whether `bucket` sends its S3 events to EventBridge: what lets lock-metrics (with the stack's
/// S3EventsEnabled=true) see `.tflock` acquisitions, releases and state writes (issue 15). A
/// WARN, not a FAIL: without it lock files are still found and judged, only without lifecycle
/// metrics and state-write liveness. Read-only: `GetBucketNotificationConfiguration`.
async fn s3_event_delivery(s3: &aws_sdk_s3::Client, bucket: &str) -> Section {
    let answer = match s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(out.event_bridge_configuration().is_some()),
        Err(e) => {
            // Denied, or (moto 5.2.5) answered with a `GetBucketNotificationResponse` root the SDK
            // cannot parse when the bucket has no notification configuration at all.
            let unreadable =
                e.code().is_none() && e.raw_response().map(|r| r.status().as_u16()) == Some(200);
            Err(if unreadable {
                "the answer could not be parsed (some emulators answer GetBucketNotificationConfiguration in a form the AWS SDK cannot read)".to_owned()
            } else {
                err_text(&AwsError::from_sdk(
                    e,
                    "read notification configuration of bucket",
                    bucket,
                ))
            })
        }
    };
    Section {
        title: format!("S3 events of bucket {bucket}"),
        checks: vec![s3_event_check(bucket, answer)],
    }
}

/// The check for one bucket: `Ok(enabled)` when its notification configuration was read.
fn s3_event_check(bucket: &str, answer: Result<bool, String>) -> Check {
    match answer {
        Ok(true) => ok(
            "sends its S3 events to EventBridge: lock files' lifecycle and state writes reach lock-metrics (with S3EventsEnabled=true)",
        ),
        Ok(false) => warn(
            "does not send its S3 events to EventBridge: S3-native lock files (`use_lockfile`) get no lifecycle metrics and no state-write liveness",
            eventbridge_fix(bucket),
        ),
        Err(reason) => warn(
            format!("could not read its notification configuration: {reason}"),
            format!(
                "allow s3:GetBucketNotification on arn:aws:s3:::{bucket}, or check its Amazon EventBridge setting (Properties, Event notifications) in the console; to turn it on: {}",
                eventbridge_fix(bucket)
            ),
        ),
    }
}

/// How to turn EventBridge delivery on. Enabling it adds EventBridge as a destination and leaves
/// the bucket's other notifications alone, but the API (and Terraform's resource) set the whole
/// notification configuration, so existing notifications must be kept in the same call/resource.
fn eventbridge_fix(bucket: &str) -> String {
    format!(
        "turn on EventBridge delivery, keeping the bucket's existing notifications in the same resource: Terraform `resource \"aws_s3_bucket_notification\" \"lockreaper\" {{ bucket = \"{bucket}\"  eventbridge = true }}`, or `aws s3api put-bucket-notification-configuration --bucket {bucket} --notification-configuration '{{\"EventBridgeConfiguration\": {{}}}}'` (this replaces the whole configuration: add the existing one's entries)"
    )
}

async fn ledger_table(dynamodb: &aws_sdk_dynamodb::Client, name: &str) -> Section {
    use lockreaper_aws::ledger_schema::{EXPIRES_AT, PK, SK};
    let title = format!("ledger {name}");
    let mut checks = Vec::new();
    match describe_table(dynamodb, name).await {
        Err(e) if e.kind == AwsErrorKind::NotFound => {
            checks.push(fail(
                "does not exist",
                "deploy the lockreaper stack, or correct LEDGER_TABLE (--ledger-table)",
            ));
            return Section { title, checks };
        }
        Err(e) => checks.push(fail(
            format!("cannot describe it: {}", err_text(&e)),
            "allow dynamodb:DescribeTable on it for the role running doctor, and check region and credentials",
        )),
        Ok(desc) => {
            let key = |kind: KeyType| {
                desc.key_schema()
                    .iter()
                    .find(|k| k.key_type() == &kind)
                    .map(|k| k.attribute_name().to_owned())
            };
            let is_string = |attr: &str| {
                desc.attribute_definitions().iter().any(|a| {
                    a.attribute_name() == attr && a.attribute_type() == &ScalarAttributeType::S
                })
            };
            match (key(KeyType::Hash), key(KeyType::Range)) {
                (Some(h), Some(r)) if h == PK && r == SK && is_string(PK) && is_string(SK) => {
                    checks.push(ok("exists, keyed on pk (S) and sk (S)"))
                }
                (h, r) => checks.push(fail(
                    format!(
                        "keyed on {} / {}; the ledger is keyed on pk (S, hash) and sk (S, range)",
                        h.as_deref().unwrap_or("(no hash key)"),
                        r.as_deref().unwrap_or("(no range key)")
                    ),
                    "point LEDGER_TABLE (--ledger-table) at the ledger table the lockreaper stack created",
                )),
            }
        }
    }
    let enable_ttl = format!(
        "`aws dynamodb update-time-to-live --table-name {name} --time-to-live-specification Enabled=true,AttributeName={EXPIRES_AT}`"
    );
    match dynamodb
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
    {
        Ok(out) => {
            let ttl = out.time_to_live_description();
            let status = ttl.and_then(|t| t.time_to_live_status());
            let attribute = ttl.and_then(|t| t.attribute_name());
            match (status, attribute) {
                (Some(TimeToLiveStatus::Enabled), Some(EXPIRES_AT)) => {
                    checks.push(ok(format!("TTL enabled on {EXPIRES_AT}")))
                }
                (Some(TimeToLiveStatus::Enabling), Some(EXPIRES_AT)) => {
                    checks.push(ok(format!("TTL being enabled on {EXPIRES_AT}")))
                }
                (Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), Some(other)) => {
                    checks.push(warn(
                        format!("TTL is on {other}, not {EXPIRES_AT}: ledger records never expire"),
                        format!("disable TTL, then {enable_ttl}"),
                    ))
                }
                _ => checks.push(warn(
                    "TTL is off: stream claims, first-seen times and audit records never expire and accumulate",
                    enable_ttl,
                )),
            }
        }
        Err(e) => {
            let e = AwsError::from_sdk(e, "describe TTL of", name);
            checks.push(warn(
                format!("could not read TTL: {}", err_text(&e)),
                "allow dynamodb:DescribeTimeToLive on it",
            ))
        }
    }
    match dynamodb
        .get_item()
        .table_name(name)
        .key(
            PK,
            aws_sdk_dynamodb::types::AttributeValue::S("doctor#probe".into()),
        )
        .key(
            SK,
            aws_sdk_dynamodb::types::AttributeValue::S("probe".into()),
        )
        .send()
        .await
    {
        Ok(_) => checks.push(ok(
            "GetItem works (how `audit` and the liveness evidence read it)",
        )),
        Err(e) => {
            let e = AwsError::from_sdk(e, "read from ledger", name);
            checks.push(fail(
                format!("GetItem failed: {}", err_text(&e)),
                "allow dynamodb:GetItem and dynamodb:Query on the ledger",
            ))
        }
    }
    Section { title, checks }
}

async fn topic(sns: &aws_sdk_sns::Client, variable: &'static str, arn: Option<&str>) -> Section {
    let approvals = variable == APPROVAL_TOPIC_ARN;
    let role = if approvals {
        "approvals topic"
    } else {
        "alert topic"
    };
    let Some(arn) = arn else {
        return Section {
            title: role.to_owned(),
            checks: vec![warn(
                format!("{} is not set: not checked", setting_name(variable)),
                format!(
                    "set {} to the deployment's {role} ARN",
                    setting_name(variable)
                ),
            )],
        };
    };
    let title = format!("{role} {arn}");
    let mut checks = Vec::new();
    if let Err(e) = sns.get_topic_attributes().topic_arn(arn).send().await {
        let e = AwsError::from_sdk(e, "get attributes of topic", arn);
        checks.push(if e.kind == AwsErrorKind::NotFound {
            fail(
                "does not exist",
                format!(
                    "correct {}, or deploy the lockreaper stack",
                    setting_name(variable)
                ),
            )
        } else {
            fail(
                format!("GetTopicAttributes failed: {}", err_text(&e)),
                "allow sns:GetTopicAttributes on it, and check region and credentials",
            )
        });
        return Section { title, checks };
    }
    checks.push(ok("exists"));
    match sns
        .list_subscriptions_by_topic()
        .topic_arn(arn)
        .send()
        .await
    {
        Ok(out) => {
            let confirmed: Vec<_> = out
                .subscriptions()
                .iter()
                .filter(|s| s.subscription_arn().is_some_and(|a| a.starts_with("arn:")))
                .collect();
            if approvals {
                let functions: Vec<&str> = confirmed
                    .iter()
                    .filter(|s| s.protocol() == Some("lambda"))
                    .filter_map(|s| s.endpoint())
                    .map(|e| e.rsplit(':').next().unwrap_or(e))
                    .collect();
                if functions.is_empty() {
                    checks.push(warn(
                        "no Lambda function is subscribed: approvals published here reach no force-unlock function",
                        "subscribe the force-unlock function to it (the SAM template does)",
                    ));
                } else {
                    checks.push(ok(format!(
                        "Lambda subscribed: {} (the force-unlock function receives approvals)",
                        functions.join(", ")
                    )));
                }
            } else if confirmed.is_empty() {
                checks.push(warn(
                    "no confirmed subscriptions: alerts published here reach nobody",
                    "subscribe chat (AWS Chatbot / Amazon Q Developer) or an e-mail address to it, and confirm the subscription",
                ));
            } else {
                let mut protocols: Vec<&str> =
                    confirmed.iter().filter_map(|s| s.protocol()).collect();
                protocols.sort_unstable();
                protocols.dedup();
                checks.push(ok(format!(
                    "{} confirmed subscription(s): {}",
                    confirmed.len(),
                    protocols.join(", ")
                )));
            }
        }
        Err(e) => {
            let e = AwsError::from_sdk(e, "list subscriptions of topic", arn);
            checks.push(warn(
                format!("could not list subscriptions: {}", err_text(&e)),
                "allow sns:ListSubscriptionsByTopic on it",
            ));
        }
    }
    Section { title, checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_event_delivery_is_ok_or_a_warn_with_the_terraform_to_turn_it_on() {
        let on = s3_event_check("acme-tfstate", Ok(true));
        assert_eq!(on.status, Status::Ok);
        assert!(on.what.starts_with("sends its S3 events to EventBridge"));
        let off = s3_event_check("acme-tfstate", Ok(false));
        assert_eq!(off.status, Status::Warn);
        let fix = off.fix.unwrap();
        assert!(fix.contains(r#"resource "aws_s3_bucket_notification" "lockreaper" { bucket = "acme-tfstate"  eventbridge = true }"#), "{fix}");
        assert!(fix.contains("--bucket acme-tfstate"), "{fix}");
        let unread = s3_event_check("acme-tfstate", Err("AccessDenied".to_owned()));
        assert_eq!(unread.status, Status::Warn);
        assert!(unread.what.contains("AccessDenied"));
        assert!(unread
            .fix
            .unwrap()
            .contains("s3:GetBucketNotification on arn:aws:s3:::acme-tfstate"));
    }

    #[test]
    fn renders_status_fix_and_totals() {
        let text = render(
            "us-east-1",
            &[Section {
                title: "lock table t".into(),
                checks: vec![ok("exists"), fail("no stream", "enable it")],
            }],
        );
        assert!(
            text.contains(
                "\nlock table t\n  OK    exists\n  FAIL  no stream\n        fix: enable it\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with("1 FAIL, 0 WARN, 1 OK: fix the FAIL lines above\n"),
            "{text}"
        );
    }
}

// ------------------------------------------------------------------------------ coverage

/// At most this many items (or objects) are read per lock table (or bucket) for the coverage
/// report; the report says when it stopped there.
pub const COVERAGE_READ_CAP: usize = 10_000;

/// Which state buckets one lock source points at, and whether this deployment covers each
/// (`doctor --json`: `coverage`, one entry per lock table and per searched bucket).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceCoverage {
    /// `lock table <name>` or `lock files in s3://<bucket>[/<prefix>]`.
    pub source: String,
    /// Items (or objects) read.
    pub read: usize,
    /// The read stopped at [`COVERAGE_READ_CAP`]: buckets beyond it may be missing.
    pub capped: bool,
    /// Why the source could not be read, when it could not.
    pub error: Option<String>,
    pub buckets: Vec<BucketReport>,
}

/// One state bucket a source points at: [`BucketCoverage`] plus what reading it showed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BucketReport {
    #[serde(flatten)]
    pub coverage: BucketCoverage,
    /// HeadBucket and a HeadObject on one state key worked for the caller (`null`: not probed).
    pub readable: Option<bool>,
    /// Why it is not readable.
    pub read_error: Option<String>,
    /// The bucket's region (GetBucketLocation), when it could be read.
    pub region: Option<String>,
    /// Whether that is the region doctor (and the stack) runs in.
    pub same_region: Option<bool>,
}

/// State paths in a Terraform lock table (lock items and `-md5` digest items, which stay after a
/// release), deduplicated, read page by page up to the cap. Gyro tables have no `LockID`: none.
async fn table_state_paths(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(Vec<StatePath>, usize, bool), AwsError> {
    let mut paths = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut read = 0usize;
    let mut start = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .projection_expression("#k")
            .expression_attribute_names("#k", terraform::KEY_ATTRIBUTE)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "scan table", table))?;
        for item in page.items() {
            read += 1;
            let Some(Ok(id)) = item.get(terraform::KEY_ATTRIBUTE).map(|v| v.as_s()) else {
                continue;
            };
            let id = id.strip_suffix(terraform::DIGEST_SUFFIX).unwrap_or(id);
            if let Ok(path) = StatePath::parse(id) {
                if seen.insert(path.lock_path()) {
                    paths.push(path);
                }
            }
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok((paths, read, false));
        }
        if read >= COVERAGE_READ_CAP {
            return Ok((paths, read, true));
        }
    }
}

/// State paths of the `.tflock` files in a searched bucket scope, up to the cap.
async fn lock_file_state_paths(
    s3: &aws_sdk_s3::Client,
    scope: &BucketScope,
) -> Result<(Vec<StatePath>, usize, bool), AwsError> {
    let mut paths = Vec::new();
    let mut read = 0usize;
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(&scope.bucket)
            .set_prefix(scope.prefix.clone())
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "list", scope.to_string()))?;
        for object in page.contents() {
            read += 1;
            if let Some(path) = object
                .key()
                .and_then(|k| StatePath::from_lock_file(&scope.bucket, k))
            {
                paths.push(path);
            }
        }
        token = page.next_continuation_token;
        if token.is_none() {
            return Ok((paths, read, false));
        }
        if read >= COVERAGE_READ_CAP {
            return Ok((paths, read, true));
        }
    }
}

/// Probes one state bucket as the caller: HeadBucket, a HeadObject on one of its state keys, and
/// its region.
async fn probe_bucket(
    s3: &aws_sdk_s3::Client,
    coverage: BucketCoverage,
    region: &str,
) -> BucketReport {
    let bucket = coverage.bucket.clone();
    let mut read_error = None;
    if let Err(e) = s3.head_bucket().bucket(&bucket).send().await {
        read_error = Some(err_text(&AwsError::from_sdk(e, "find bucket", &bucket)));
    } else if let Err(e) = s3
        .head_object()
        .bucket(&bucket)
        .key(&coverage.example_key)
        .send()
        .await
    {
        let e = AwsError::from_sdk(
            e,
            "read state",
            format!("s3://{bucket}/{}", coverage.example_key),
        );
        // A state not written yet is no reading problem.
        if e.kind != AwsErrorKind::NotFound {
            read_error = Some(err_text(&e));
        }
    }
    let bucket_region = match s3.get_bucket_location().bucket(&bucket).send().await {
        // No constraint is us-east-1 (GetBucketLocation's documented answer for it).
        Ok(out) => Some(
            out.location_constraint()
                .map(|c| c.as_str().to_owned())
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "us-east-1".to_owned()),
        ),
        Err(_) => None,
    };
    BucketReport {
        same_region: bucket_region.as_deref().map(|r| r == region),
        region: bucket_region,
        readable: Some(read_error.is_none()),
        read_error,
        coverage,
    }
}

async fn source_coverage(
    s3: &aws_sdk_s3::Client,
    source: String,
    read: Result<(Vec<StatePath>, usize, bool), AwsError>,
    configured: &[StateLocation],
    region: &str,
) -> SourceCoverage {
    match read {
        Err(e) => SourceCoverage {
            source,
            read: 0,
            capped: false,
            error: Some(err_text(&e)),
            buckets: Vec::new(),
        },
        Ok((paths, read, capped)) => {
            let groups = group_by_bucket(configured, &paths);
            let buckets =
                futures::future::join_all(groups.into_iter().map(|g| probe_bucket(s3, g, region)))
                    .await;
            SourceCoverage {
                source,
                read,
                capped,
                error: None,
                buckets,
            }
        }
    }
}

/// Every lock table's and searched bucket's state buckets, with their coverage.
async fn coverage_of_sources(
    dynamodb: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
    sources: &LockSources,
    region: &str,
) -> Vec<SourceCoverage> {
    let configured = &sources.state_locations;
    let tables = futures::future::join_all(sources.tables.iter().map(|t| async move {
        let read = table_state_paths(dynamodb, t).await;
        source_coverage(s3, format!("lock table {t}"), read, configured, region).await
    }));
    let buckets = futures::future::join_all(sources.buckets.iter().map(|b| async move {
        let read = lock_file_state_paths(s3, b).await;
        source_coverage(s3, format!("lock files in {b}"), read, configured, region).await
    }));
    let (mut all, buckets) = futures::join!(tables, buckets);
    all.extend(buckets);
    all
}

/// The human report of one source's coverage: one section, a line per state bucket.
pub fn coverage_section(source: &SourceCoverage, region: &str) -> Section {
    let mut checks = Vec::new();
    let add = format!(
        "add it to the stack's StateBuckets (and StateKeyPrefix), then run doctor with {} set to match",
        setting_name(STATE_BUCKETS)
    );
    if let Some(e) = &source.error {
        checks.push(warn(
            format!("could not read the state paths: {e}"),
            "allow dynamodb:Scan / s3:ListBucket for the caller, then run doctor again",
        ));
    }
    if source.error.is_none() && source.buckets.is_empty() {
        checks.push(ok(format!(
            "no Terraform state paths in {} item(s): nothing to cover",
            source.read
        )));
    }
    for b in &source.buckets {
        let c = &b.coverage;
        let name = &c.bucket;
        if c.covered == c.state_paths {
            checks.push(ok(format!(
                "s3://{name}: {} state path(s), all covered ({})",
                c.state_paths,
                setting_name(STATE_BUCKETS)
            )));
        } else if !c.listed {
            checks.push(warn(
                format!(
                    "s3://{name}: {} state path(s) NOT covered: the bucket is not a configured state bucket, so their locks are \"cannot tell\" and never auto-expired",
                    c.state_paths
                ),
                add.clone(),
            ));
        } else {
            checks.push(warn(
                format!(
                    "s3://{name}: {} of {} state path(s) outside the configured key prefix {} (e.g. `{}`): \"cannot tell\", never auto-expired",
                    c.state_paths - c.covered,
                    c.state_paths,
                    c.configured_prefixes
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    c.uncovered_example.as_deref().unwrap_or("")
                ),
                "widen StateKeyPrefix (or add a `bucket/prefix` entry) to include those keys",
            ));
        }
        match (&b.readable, &b.read_error) {
            (Some(true), _) => checks.push(ok(format!(
                "s3://{name}: HeadBucket and a HeadObject on one state key work (as the caller)"
            ))),
            (_, Some(e)) => checks.push(warn(
                format!("s3://{name}: not readable by the caller: {e}"),
                format!("check the bucket policy of {name} and the roles' s3:GetObject grants; a denied read is \"cannot tell\" for the reaper"),
            )),
            _ => {}
        }
        match (&b.region, b.same_region) {
            (Some(r), Some(false)) => checks.push(warn(
                format!("s3://{name}: in region {r}, not {region}: the functions' S3 client reads in {region}"),
                "deploy a stack in that region for its state, or move the state bucket",
            )),
            (Some(r), _) => checks.push(ok(format!("s3://{name}: in {r}, the stack's region"))),
            (None, _) => checks.push(warn(
                format!("s3://{name}: its region could not be read (GetBucketLocation)"),
                "allow s3:GetBucketLocation for the caller, or check the bucket's region in the console",
            )),
        }
    }
    if source.capped {
        checks.push(warn(
            format!(
                "stopped after {} item(s) ({COVERAGE_READ_CAP} at most): buckets of later items are not shown",
                source.read
            ),
            "run doctor against a table copy, or check the remaining items by hand",
        ));
    }
    Section {
        title: format!("state buckets of {}", source.source),
        checks,
    }
}
