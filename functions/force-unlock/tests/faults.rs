//! force-unlock under AWS faults (`lockreaper_testkit::faults`): a stale lock taken by real
//! Terraform (`stuck`, both lock stores), an unlock proposed by a real sweep (`Reaper::sweep`), and
//! the approval — the bare token, as the chat button publishes it — delivered in the SNS event
//! shape to `ForceUnlock::handle` (what the Lambda handler calls), built as at a cold start
//! (`from_config`: the signing key from Secrets Manager) with the functions' own SDK timeouts and
//! retries, pointed at a seeded fault proxy that faults DynamoDB, S3, SNS and Secrets Manager.
//!
//! Delivery is simulated as SNS and Lambda do it: a failed init is retried; an invocation error is
//! retried with the same MessageId, twice (Lambda's asynchronous invocation retries function errors
//! twice); after that the person presses the button again (a new MessageId). Once answered, the
//! same MessageId is delivered once more (SNS delivers at least once).
//!
//! The invariants are checked against the emulator's final state, read directly: the lock is
//! released (its DynamoDB item and its `.tflock` file gone), by exactly one unlock — one audit
//! record, which holds every released artefact and says it was deleted —, a redelivery repeats
//! nothing; and in the variant where Terraform released and re-took the lock between proposal and
//! approval, the new lock is untouched and no audit record shows a delete.
//!
//! Seeds and fault share: `FAULT_SEEDS`, `FAULT_RATE`; one result row per scenario to
//! `FAULT_REPORT` (see `lockreaper_testkit::fault_runs`). Each seed has its own lock table, state
//! bucket, ledger and topics.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use common::{message_id, sns_event};
use force_unlock::{Config, ForceUnlock};
use lambda_runtime::{Context, LambdaEvent};
use lockreaper_core::approval::SigningKey;
use lockreaper_core::config::Env;
use lockreaper_core::proposal::ArtefactOutcome;
use lockreaper_testkit::fault_runs::{FaultRun, FaultSettings};
use lockreaper_testkit::faults::{Fault, FaultProxy, Rule};
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::{LockMode, Terraform, TerraformLock, TestEnv};
use reaper::{Reaper, ReaperConfig};

const SECRET: &str = "test-signing-key-0123456789abcdef0123456789";
/// Lambda retries an asynchronous invocation's function error twice.
const ATTEMPTS_PER_DELIVERY: usize = 3;
/// Button presses (new deliveries) before the scenario gives up.
const PRESSES: usize = 6;

/// One seed's world: a stale Terraform lock in both stores and the token of its proposal.
struct World {
    env: TestEnv,
    table: String,
    bucket: String,
    force_unlock_vars: Vec<(String, String)>,
    terraform: Terraform,
    stuck: TerraformLock,
    token: String,
}

impl World {
    async fn new(seed: u64) -> World {
        let env = TestEnv::new(&format!("faults-approval-{seed}")).await;
        let (table, bucket, ledger) = (env.name("locks"), env.name("state"), env.name("ledger"));
        env.create_lock_table(&table, "LockID").await;
        env.create_state_bucket(&bucket).await;
        create_ledger_table(&env, &ledger).await;
        let alerts = env.topic_with_queue("alerts").await;
        let approvals = env.topic_with_queue("approvals").await;
        let secret = env.create_secret("signing", SECRET).await;
        let namespace = format!("LockReaperTest/{}", env.id);
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let reaper_vars = owned(&[
            ("LOCK_TABLES", &table),
            ("LOCK_BUCKETS", &bucket),
            ("LEDGER_TABLE", &ledger),
            ("ALERT_TOPIC_ARN", &alerts.topic_arn),
            ("APPROVAL_TOPIC_ARN", &approvals.topic_arn),
            ("APPROVAL_SECRET_ARN", &secret),
            ("METRICS_NAMESPACE", &namespace),
            ("WARN_AFTER", "1s"),
            ("EXPIRE_AFTER", "2s"),
            ("REMIND_EVERY", "1h"),
        ]);
        let force_unlock_vars = owned(&[
            ("LEDGER_TABLE", &ledger),
            ("ALERT_TOPIC_ARN", &alerts.topic_arn),
            ("APPROVAL_SECRET_ARN", &secret),
        ]);

        let terraform = Terraform::init(
            &env,
            &bucket,
            "app/terraform.tfstate",
            Some(&table),
            LockMode::Both,
        );
        let stuck = terraform.stuck();
        tokio::time::sleep(Duration::from_secs(3)).await; // past EXPIRE_AFTER

        // The real sweep, without faults: it proposes the unlock and alerts with the token.
        let mut vars = Env::new(reaper_vars);
        let config = ReaperConfig::from_env(&mut vars);
        let config = vars.finish(config).unwrap();
        let reaper = Reaper::new(&env.aws, config, SigningKey::from_secret(SECRET).unwrap());
        let outcome = reaper.sweep(chrono::Utc::now(), None).await;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let alerts = env.drain(&alerts.queue_url, Duration::from_secs(5)).await;
        let tokens: Vec<String> = alerts
            .iter()
            .filter_map(|d| d.json.as_ref())
            .filter_map(|chat| {
                chat["metadata"]["additionalContext"]["approvalToken"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(
            tokens.len(),
            1,
            "one proposal for the stuck lock: {:?}",
            alerts.iter().map(|d| &d.message).collect::<Vec<_>>()
        );
        World {
            env,
            table,
            bucket,
            force_unlock_vars,
            terraform,
            stuck,
            token: tokens[0].clone(),
        }
    }

    fn lock_file_key(&self) -> String {
        format!("{}.tflock", self.stuck.state_key)
    }

    /// The `Info` of the lock item, read from the emulator itself.
    async fn lock_item_info(&self) -> Option<String> {
        self.env
            .aws
            .dynamodb()
            .get_item()
            .table_name(&self.table)
            .key("LockID", AttributeValue::S(self.stuck.path.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .and_then(|i| i.get("Info").and_then(|v| v.as_s().ok()).cloned())
    }

    /// The body of the `.tflock` file, read from the emulator itself.
    async fn lock_file_body(&self) -> Option<String> {
        match self
            .env
            .aws
            .s3()
            .get_object()
            .bucket(&self.bucket)
            .key(self.lock_file_key())
            .send()
            .await
        {
            Ok(out) => Some(
                String::from_utf8_lossy(&out.body.collect().await.unwrap().into_bytes())
                    .into_owned(),
            ),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
            Err(e) => panic!("read the lock file: {e:?}"),
        }
    }

    fn ledger_table(&self) -> &str {
        self.force_unlock_vars
            .iter()
            .find(|(k, _)| k == "LEDGER_TABLE")
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    async fn audit(&self) -> Vec<lockreaper_core::proposal::AuditRecord> {
        let ledger = self.ledger_table();
        lockreaper_aws::unlock::audit_trail(&self.env.aws.dynamodb(), ledger, &self.stuck.path, 20)
            .await
            .unwrap()
    }

    /// force-unlock as at a cold start, through the proxy; a failed init (the signing key's read
    /// faulted past the SDK's retries) is retried, as Lambda does.
    async fn cold_start(&self, proxy: &FaultProxy) -> ForceUnlock {
        let config = Config::from_env(self.force_unlock_vars.clone()).unwrap();
        let aws = proxy.function_aws(&self.env.aws);
        for _ in 0..10 {
            match ForceUnlock::from_config(&aws, &config).await {
                Ok(function) => return function,
                Err(e) => eprintln!("init failed, Lambda retries it: {e}"),
            }
        }
        panic!(
            "force-unlock did not start in 10 inits:\n{}",
            proxy.report()
        );
    }
}

/// What the deliveries of one approval came to.
struct Delivered {
    /// The outcome of the answered delivery, if any was answered.
    outcome: Option<String>,
    /// The outcome of the same MessageId delivered once more.
    redelivered: Option<String>,
    invocations: usize,
}

/// One record's outcome; an invocation error is `Err`.
async fn invoke(function: &ForceUnlock, message_id: &str, token: &str) -> Result<String, String> {
    let event = LambdaEvent::new(sns_event(&[(message_id, token)]), Context::default());
    match function.handle(event).await {
        Ok(report) => Ok(report.records[0].outcome.clone()),
        Err(e) => Err(e.to_string()),
    }
}

/// As [`invoke`], with the invocation's clock at `now` (what `handle` reads from the system
/// clock), to deliver a press after a claim's lease without waiting for it.
async fn invoke_at(
    function: &ForceUnlock,
    message_id: &str,
    token: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<String, String> {
    match function
        .handle_event(sns_event(&[(message_id, token)]), now)
        .await
    {
        Ok(report) => Ok(report.records[0].outcome.clone()),
        Err(e) => Err(e.to_string()),
    }
}

/// Delivers the approval until it is answered (see the module documentation), then once more.
async fn approve(function: &ForceUnlock, token: &str) -> Delivered {
    let mut invocations = 0;
    for _press in 0..PRESSES {
        let message_id = message_id();
        for _attempt in 0..ATTEMPTS_PER_DELIVERY {
            invocations += 1;
            match invoke(function, &message_id, token).await {
                Err(e) => eprintln!("invocation error, Lambda retries {message_id}: {e}"),
                Ok(outcome) => {
                    let mut redelivered = None;
                    for _ in 0..ATTEMPTS_PER_DELIVERY {
                        invocations += 1;
                        if let Ok(again) = invoke(function, &message_id, token).await {
                            redelivered = Some(again);
                            break;
                        }
                    }
                    return Delivered {
                        outcome: Some(outcome),
                        redelivered,
                        invocations,
                    };
                }
            }
        }
    }
    Delivered {
        outcome: None,
        redelivered: None,
        invocations,
    }
}

/// An approval of a stale lock under `rules(rate)`: released exactly once, audited, not repeated.
async fn approvals_under(
    scenario: &str,
    default_seeds: usize,
    default_rate: f64,
    rules: fn(f64) -> Vec<Rule>,
) {
    let settings = FaultSettings::from_env(default_seeds, default_rate);
    let mut run = FaultRun::new(scenario, &settings);
    for &seed in &settings.seeds {
        let world = World::new(seed).await;
        let proxy =
            FaultProxy::start(&world.env.emulator.endpoint, seed, rules(settings.rate)).await;
        let function = world.cold_start(&proxy).await;
        let delivered = approve(&function, &world.token).await;
        eprintln!(
            "seed {seed}: outcome {:?}, redelivered {:?}, {} invocations\n{}",
            delivered.outcome,
            delivered.redelivered,
            delivered.invocations,
            proxy.report()
        );
        run.add_proxy(&proxy);

        let item = world.lock_item_info().await;
        let file = world.lock_file_body().await;
        let audit = world.audit().await;
        // Answered, and either released in both stores, or answered "failed" (a delete that
        // failed for good; a transient failure is retried) with whatever remains still the
        // judged lock. (A failed delete leaves the approval usable:
        // `a_delete_that_failed_past_the_retries_can_be_approved_again`.)
        let released = item.is_none() && file.is_none();
        let remains_judged = item
            .iter()
            .chain(file.iter())
            .all(|l| l.contains(&world.stuck.lock_id));
        run.check(
            match delivered.outcome.as_deref() {
                // "already-released" is no longer expected from lost delete answers
                // (`a_lost_delete_answer_is_audited_as_a_delete`), but stays sound here.
                Some("unlocked" | "already-released") => released,
                Some("failed") => remains_judged,
                _ => false,
            },
            || {
                format!(
                    "seed {seed}: answered {:?} with item {item:?}, lock file {file:?}",
                    delivered.outcome
                )
            },
        );
        let deleting = audit
            .iter()
            .filter(|a| a.outcomes.contains(&ArtefactOutcome::Deleted))
            .count();
        run.check(deleting <= 1, || {
            format!("seed {seed}: {deleting} audit records show a delete (two unlocks)")
        });
        // Whenever an artefact is gone, an audit record written before the delete holds the full
        // content of both. (That its outcomes say `Deleted` for an artefact force-unlock deleted
        // itself, answer lost or not, is `a_lost_delete_answer_is_audited_as_a_delete`.)
        if item.is_none() || file.is_none() {
            let recorded = audit.iter().any(|a| {
                a.locks.len() == 2
                    && a.locks.iter().all(|l| {
                        l.lock_id == world.stuck.lock_id && l.raw.contains(&world.stuck.lock_id)
                    })
            });
            run.check(recorded, || {
                format!("seed {seed}: the lock is (partly) gone but no audit record holds both artefacts: {audit:?}")
            });
        }
        // The same MessageId again is answered and unlocks nothing a second time (exactly one
        // audit record and "duplicate-delivery" after a lost completion is checked by
        // `a_redelivery_after_a_lost_completion_resumes_rather_than_repeats`).
        run.check(
            delivered
                .redelivered
                .as_deref()
                .is_some_and(|o| o != "unlocked"),
            || {
                format!(
                    "seed {seed}: the same MessageId delivered again was answered {:?}",
                    delivered.redelivered
                )
            },
        );
    }
    run.finish();
}

/// Throttling and 500s from every service force-unlock calls: DynamoDB (proposal, audit, forced
/// marker, lock item, liveness), S3 (lock file, state object), SNS (the result), Secrets Manager
/// (the signing key at init).
#[tokio::test(flavor = "multi_thread")]
async fn approvals_under_throttling_and_5xx_unlock_exactly_once() {
    approvals_under("force-unlock: throttling + 5xx", 1, 0.3, |rate| {
        vec![
            Rule::new("dynamodb", "*", rate / 2.0, Fault::Throttle),
            Rule::new(
                "dynamodb",
                "*",
                rate / 4.0,
                Fault::DynamoDbThrottlingException,
            ),
            Rule::new("dynamodb", "*", rate / 4.0, Fault::InternalError),
            Rule::new("s3", "*", rate / 2.0, Fault::Throttle),
            Rule::new("s3", "*", rate / 2.0, Fault::InternalError),
            Rule::new("sns", "*", rate / 2.0, Fault::Throttle),
            Rule::new("sns", "*", rate / 2.0, Fault::InternalError),
            Rule::new("secretsmanager", "*", rate, Fault::Throttle),
        ]
    })
    .await;
}

/// Connections reset before the request arrives, on every service.
#[tokio::test(flavor = "multi_thread")]
async fn approvals_under_connection_resets_unlock_exactly_once() {
    approvals_under("force-unlock: connection resets", 1, 0.3, |rate| {
        vec![Rule::new("*", "*", rate, Fault::ConnectionReset)]
    })
    .await;
}

/// Lost answers to every write force-unlock makes (the proposal claim and completion, the audit
/// record, the forced marker, the conditional deletes, the result notification): applied, then the
/// SDK retries them. Once a seed, a write's answer is instead delayed past the SDK's attempt
/// timeout (10 s; another way to lose an answer, and the costly one, hence only once).
#[tokio::test(flavor = "multi_thread")]
async fn approvals_under_lost_answers_unlock_exactly_once() {
    approvals_under(
        "force-unlock: lost + delayed answers (writes)",
        1,
        0.3,
        |rate| {
            vec![
                Rule::new(
                    "dynamodb",
                    "UpdateItem",
                    rate / 2.0,
                    delayed_past_the_attempt_timeout(),
                )
                .at_most(1),
                Rule::new("dynamodb", "PutItem", rate, Fault::LostAnswer),
                Rule::new("dynamodb", "UpdateItem", rate, Fault::LostAnswer),
                Rule::new("dynamodb", "DeleteItem", rate, Fault::LostAnswer),
                Rule::new("s3", "DeleteObject", rate, Fault::LostAnswer),
                Rule::new("sns", "Publish", rate, Fault::LostAnswer),
            ]
        },
    )
    .await;
}

/// A write's answer held back past the SDK's attempt timeout (`ATTEMPT_TIMEOUT`, 10 s): the write
/// is applied and the SDK retries it, as after a lost answer.
fn delayed_past_the_attempt_timeout() -> Fault {
    Fault::DelayedAnswer(lockreaper_aws::config::ATTEMPT_TIMEOUT + Duration::from_secs(1))
}

/// Terraform releases the stale lock and takes it again (a new lock ID, both stores) between the
/// proposal and the approval, while DynamoDB and S3 throttle and reset: nothing is deleted.
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_after_the_lock_was_retaken_deletes_nothing_under_faults() {
    let settings = FaultSettings::from_env(1, 0.3);
    let mut run = FaultRun::new(
        "force-unlock: lock re-taken, throttling + resets",
        &settings,
    );
    for &seed in &settings.seeds {
        let world = World::new(seed).await;
        let (code, out, err) = world.terraform.run(&[
            "force-unlock".into(),
            "--id".into(),
            world.stuck.lock_id.clone(),
        ]);
        assert_eq!(code, 0, "{out}\n{err}");
        let retaken = world.terraform.stuck();
        assert_ne!(retaken.lock_id, world.stuck.lock_id);

        let rate = settings.rate;
        let proxy = FaultProxy::start(
            &world.env.emulator.endpoint,
            seed,
            vec![
                Rule::new("dynamodb", "*", rate / 2.0, Fault::Throttle),
                Rule::new("dynamodb", "*", rate / 2.0, Fault::ConnectionReset),
                Rule::new("s3", "*", rate / 2.0, Fault::Throttle),
                Rule::new("s3", "*", rate / 2.0, Fault::ConnectionReset),
            ],
        )
        .await;
        let function = world.cold_start(&proxy).await;
        let delivered = approve(&function, &world.token).await;
        eprintln!(
            "seed {seed}: outcome {:?}, redelivered {:?}, {} invocations\n{}",
            delivered.outcome,
            delivered.redelivered,
            delivered.invocations,
            proxy.report()
        );
        run.add_proxy(&proxy);

        let item = world.lock_item_info().await;
        let file = world.lock_file_body().await;
        run.check(
            item.as_ref().is_some_and(|i| i.contains(&retaken.lock_id)),
            || format!("seed {seed}: the re-taken lock's item was released or changed: {item:?}"),
        );
        run.check(
            file.as_ref().is_some_and(|f| f.contains(&retaken.lock_id)),
            || format!("seed {seed}: the re-taken lock's file was released or changed: {file:?}"),
        );
        let audit = world.audit().await;
        run.check(
            audit
                .iter()
                .all(|a| !a.outcomes.contains(&ArtefactOutcome::Deleted)),
            || format!("seed {seed}: an audit record shows a delete of a re-taken lock: {audit:?}"),
        );
        run.check(delivered.outcome.as_deref() == Some("lock-changed"), || {
            format!(
                "seed {seed}: answered {:?}, not \"lock-changed\"",
                delivered.outcome
            )
        });
    }
    run.finish();
}

/// Found by the connection-reset scenario (seed 1 at 0.4): the unlock succeeds, but recording its
/// completion on the proposal (`Proposals::complete`, the proposal's second UpdateItem, after the
/// claim) fails — here every attempt's connection is reset. The handler logs
/// "completion-not-recorded" and answers "unlocked". SNS then delivers the same MessageId again:
/// the claim reads as `Resumed` instead of `Duplicate`, so the unlock runs a second time — it finds
/// both artefacts gone, writes a second audit record (outcomes `AlreadyGone`), answers
/// "already-released" and posts a second, contradicting result into the lock's thread. Nothing is
/// deleted twice, but the retried delivery repeats instead of resuming, and the audit trail shows
/// two releases of one lock.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivery_after_a_lost_completion_resumes_rather_than_repeats() {
    let world = World::new(1).await;
    let proxy = FaultProxy::start(
        &world.env.emulator.endpoint,
        1,
        vec![
            Rule::new("dynamodb", "UpdateItem", 1.0, Fault::ConnectionReset)
                .after(1)
                .at_most(3),
        ],
    )
    .await;
    let function = world.cold_start(&proxy).await;
    let message_id = message_id();
    let first = invoke(&function, &message_id, &world.token).await;
    assert_eq!(first.as_deref(), Ok("unlocked"), "{}", proxy.report());
    assert_eq!(
        proxy.faulted_count("dynamodb", "UpdateItem", "ConnectionReset"),
        3,
        "the completion's three attempts were reset:\n{}",
        proxy.report()
    );
    assert_eq!(world.lock_item_info().await, None);
    assert_eq!(world.lock_file_body().await, None);

    let again = invoke(&function, &message_id, &world.token).await;
    let audit = world.audit().await;
    assert_eq!(
        audit.len(),
        1,
        "one approval, one audit record: {:?}",
        audit
            .iter()
            .map(|a| (&a.audit_id, &a.outcomes))
            .collect::<Vec<_>>()
    );
    assert_eq!(again.as_deref(), Ok("duplicate-delivery"));
}

/// Found by the connection-reset scenario (seed 5 at 0.4): the conditional delete of the `.tflock`
/// file fails past the SDK's retries (every attempt's connection reset), the DynamoDB item is
/// deleted anyway, and the approval is answered "failed" — and used up: pressing the same button
/// again (a new delivery) is refused as already used, so the half-released lock (Terraform still
/// finds its lock file) stays until a later sweep proposes it again.
#[tokio::test(flavor = "multi_thread")]
async fn a_delete_that_failed_past_the_retries_can_be_approved_again() {
    let world = World::new(5).await;
    let proxy = FaultProxy::start(
        &world.env.emulator.endpoint,
        5,
        vec![Rule::new("s3", "DeleteObject", 1.0, Fault::ConnectionReset).at_most(3)],
    )
    .await;
    let function = world.cold_start(&proxy).await;
    let first = invoke(&function, &message_id(), &world.token).await;
    eprintln!("first press: {first:?}\n{}", proxy.report());
    assert_eq!(
        proxy.faulted_count("s3", "DeleteObject", "ConnectionReset"),
        3,
        "{}",
        proxy.report()
    );
    let second = invoke(&function, &message_id(), &world.token).await;
    let (item, file) = (world.lock_item_info().await, world.lock_file_body().await);
    assert!(
        item.is_none() && file.is_none(),
        "first press {first:?}, second press {second:?}: item {item:?}, lock file {file:?}"
    );
}

/// Found by the lost-answer scenario (seeds 7, 9, 10 and 12 at 0.4): the conditional DeleteItem of
/// the lock item is applied but its answer is lost; the SDK's retry fails the `Info = :seen`
/// condition, the re-read finds nothing, and the artefact force-unlock itself deleted is recorded
/// in the audit trail as `AlreadyGone` (released by its holder) — and, being "already gone", its
/// forced-release marker is removed, so lock-metrics counts the REMOVE as a normal release, not a
/// forced one. When every artefact's answer is lost, the approval is even answered
/// "already-released".
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_delete_answer_is_audited_as_a_delete() {
    let world = World::new(10).await;
    let proxy = FaultProxy::start(
        &world.env.emulator.endpoint,
        10,
        vec![Rule::new("dynamodb", "DeleteItem", 1.0, Fault::LostAnswer).at_most(1)],
    )
    .await;
    let function = world.cold_start(&proxy).await;
    let answer = invoke(&function, &message_id(), &world.token).await;
    assert_eq!(
        proxy.faulted_count("dynamodb", "DeleteItem", "LostAnswer"),
        1,
        "{}",
        proxy.report()
    );
    assert_eq!(world.lock_item_info().await, None);
    assert_eq!(world.lock_file_body().await, None);
    let audit = world.audit().await;
    let item_lock = &audit[0].locks[0];
    let forced = lockreaper_aws::Ledger::new(world.env.aws.dynamodb(), world.ledger_table())
        .is_forced(&item_lock.location, &item_lock.lock_id)
        .await
        .unwrap();
    assert_eq!(
        (
            answer.as_deref(),
            audit.iter().map(|a| a.outcomes.clone()).collect::<Vec<_>>(),
            forced
        ),
        (
            Ok("unlocked"),
            vec![vec![ArtefactOutcome::Deleted, ArtefactOutcome::Deleted]],
            true
        ),
        "force-unlock deleted both artefacts itself: (answer, audit outcomes, forced marker kept)"
    );
}

/// Found by the throttling + 5xx scenario (seed 7 at 0.4, `make faults` on 2026-11-30): the
/// `.tflock` file is deleted (the lock file goes first), the DynamoDB item's delete fails past the
/// SDK's retries (500s), and the claim is given back for Lambda's retry. The give-back removes the
/// claim's audit id, so the retry of the *same* delivery claims afresh, with a new audit record,
/// instead of resuming the first attempt's: the lock ends released once per artefact, but two
/// audit records each show a delete (the file in the first, the item in the second) — what the
/// scenarios count as two unlocks, and an audit trail that splits one unlock in two.
///
/// Fixed: a claim given back after its unlock began keeps its audit id and claim time on the
/// proposal, and the next claim (this retry, or a new press) inherits them and resumes that record.
#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_a_half_done_unlock_resumes_its_audit_record() {
    let world = World::new(7).await;
    let proxy = FaultProxy::start(
        &world.env.emulator.endpoint,
        7,
        vec![Rule::new("dynamodb", "DeleteItem", 1.0, Fault::InternalError).at_most(3)],
    )
    .await;
    let function = world.cold_start(&proxy).await;
    let delivery = message_id();
    let first = invoke(&function, &delivery, &world.token).await;
    assert_eq!(
        proxy.faulted_count("dynamodb", "DeleteItem", "InternalServerError"),
        3,
        "{}",
        proxy.report()
    );
    assert!(
        first.is_err(),
        "a transient delete failure fails the invocation: {first:?}"
    );
    // Lambda's retry of the same delivery.
    let retry = invoke(&function, &delivery, &world.token).await;
    let (item, file) = (world.lock_item_info().await, world.lock_file_body().await);
    assert!(
        item.is_none() && file.is_none(),
        "first {first:?}, retry {retry:?}: item {item:?}, lock file {file:?}"
    );
    let audit = world.audit().await;
    let deleting = audit
        .iter()
        .filter(|a| a.outcomes.contains(&ArtefactOutcome::Deleted))
        .count();
    assert_eq!(
        deleting,
        1,
        "one unlock, one audit record showing deletes: {:?}",
        audit
            .iter()
            .map(|a| (&a.audit_id, &a.outcomes))
            .collect::<Vec<_>>()
    );
}

/// Found by the connection-reset scenario (seed 15 at 0.4): a delivery claims the proposal, its
/// final check cannot re-read the lock item (every attempt's connection reset), and giving the
/// claim back fails the same way. That was every one of Lambda's attempts of the delivery, so the
/// claim stayed held by a delivery that would never come again: every later press was refused as
/// "already used" until the proposal expired, and the stale lock stayed. Here one attempt ends so
/// (the proxy resets exactly the final check's `GetItem` and the give-back's `UpdateItem`, three
/// attempts each); the next presses are new deliveries.
///
/// Fixed: the claim carries a lease (force-unlock's timeout plus a margin). Within it a press is
/// still refused (the holder might be running); past it a press takes the claim over and unlocks,
/// after its own final check, writing one audit record.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_that_could_not_be_given_back_is_taken_over_after_its_lease() {
    let world = World::new(15).await;
    let proxy = FaultProxy::start(
        &world.env.emulator.endpoint,
        15,
        vec![
            // The first GetItem reads the proposal, the second is the final check's re-read.
            Rule::new("dynamodb", "GetItem", 1.0, Fault::ConnectionReset)
                .after(1)
                .at_most(3),
            // The first UpdateItem is the claim, the second the give-back.
            Rule::new("dynamodb", "UpdateItem", 1.0, Fault::ConnectionReset)
                .after(1)
                .at_most(3),
        ],
    )
    .await;
    let function = world.cold_start(&proxy).await;
    let pressed_at = chrono::Utc::now();
    let first = invoke_at(&function, &message_id(), &world.token, pressed_at).await;
    assert!(
        first.is_err(),
        "the final check's read failed transiently: {first:?}"
    );
    assert_eq!(
        (
            proxy.faulted_count("dynamodb", "GetItem", "ConnectionReset"),
            proxy.faulted_count("dynamodb", "UpdateItem", "ConnectionReset")
        ),
        (3, 3),
        "the final check's read and the give-back, three attempts each:\n{}",
        proxy.report()
    );

    // A press while the claim's holder might still be running is refused; nothing is deleted.
    let within = invoke_at(&function, &message_id(), &world.token, chrono::Utc::now()).await;
    assert_eq!(within.as_deref(), Ok("already-used"));
    assert!(world.lock_item_info().await.is_some());
    assert!(world.lock_file_body().await.is_some());

    // Past the lease, a press takes the claim over and unlocks.
    let after = pressed_at + force_unlock::CLAIM_LEASE + chrono::TimeDelta::seconds(1);
    let taken_over = invoke_at(&function, &message_id(), &world.token, after).await;
    assert_eq!(taken_over.as_deref(), Ok("unlocked"), "{}", proxy.report());
    assert_eq!(world.lock_item_info().await, None);
    assert_eq!(world.lock_file_body().await, None);
    let audit = world.audit().await;
    assert_eq!(
        audit.iter().map(|a| a.outcomes.clone()).collect::<Vec<_>>(),
        vec![vec![ArtefactOutcome::Deleted, ArtefactOutcome::Deleted]],
        "one unlock, one audit record"
    );
}
