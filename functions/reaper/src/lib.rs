//! The reaper's sweep: find every lock, measure its age and liveness, decide, alert, propose, and
//! (only where explicitly enabled) expire.
//!
//! One sweep, in order:
//! 1. take stock of every configured table and bucket (one unreachable source never stops the
//!    others); lock file bodies are read only when the file is old enough to matter;
//! 2. group artefacts of one Terraform lock (DynamoDB item + `.tflock`, same ID) so people get one
//!    alert and one approval releases both;
//! 3. per lock: Gyro first-seen time from the ledger, liveness evidence (state object's
//!    LastModified, last state write seen on the stream, digest vs. state MD5), the policy verdict,
//!    then the alert decision against the stored alert state (conditional writes: overlapping
//!    sweeps send one alert);
//! 4. past `EXPIRE_AFTER`: a proposal in the ledger and a signed approval token in the alert; with
//!    `AUTO_EXPIRE=true` and no sign of life, the same conditional delete + audit path as an
//!    approved unlock;
//! 5. "resolved" messages for alerted locks that went away (only in tables and buckets read in
//!    full in this sweep); sweep metrics.
//!
//! The sweep watches the Lambda deadline: it stops starting new locks in time and reports the ones
//! it did not reach (the next sweep continues). Alert state is written before an alert is
//! published and restored if publishing fails, so an alert is neither lost nor sent twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lockreaper_aws::alert_state::{AlertStates, StoredAlert};
use lockreaper_aws::cloudwatch::CloudWatchMetrics;
use lockreaper_aws::ledger::Ledger;
use lockreaper_aws::liveness::{gather_liveness, learn_table_stream, stream_gap, TableStreams};
use lockreaper_aws::lock_files::LockFileHead;
use lockreaper_aws::notify::Notifier;
use lockreaper_aws::proposals::Proposals;
use lockreaper_aws::state::StateObjects;
use lockreaper_aws::unlock::{UnlockRequest, UnlockResult, Unlocker};
use lockreaper_aws::{AwsError, LockFiles, LockTable};
use lockreaper_core::alert::{self, AlertContext, AlertMessage, ApprovalOffer};
use lockreaper_core::approval::{
    decode_proposal_id, encode_proposal_id, ApprovalSource, ApprovalToken, LockFingerprint,
    SigningKey,
};
use lockreaper_core::config::{
    check_arn, check_table_name, format_duration, parse_bool, parse_duration, ConfigError, Env,
    LockSources,
};
use lockreaper_core::decision::{
    decide, EvidenceGap, LockEvidence, OpenProposal, Propose, Withdrawal,
};
use lockreaper_core::metrics::{
    parse_namespace, MetricDatum, MetricValue, Unit, DEFAULT_NAMESPACE,
};
use lockreaper_core::policy::{AlertAction, AlertState, Level, Liveness, StaleLockPolicy};
use lockreaper_core::proposal::{Proposal, ProposalStatus};
use lockreaper_core::unlock_message::{result_message, Decision, Outcome};
use lockreaper_core::{
    BucketScope, DigestRecord, LockCreated, LockKind, LockLocation, LockParseError, LockRecord,
};
use serde::Serialize;

/// Metric names of the sweep.
pub const ACTIVE_LOCKS: &str = "ActiveLocks";
pub const STALE_LOCKS: &str = "StaleLocks";
pub const OLDEST_LOCK_AGE_SECONDS: &str = "OldestLockAgeSeconds";
pub const UNPARSEABLE_LOCKS: &str = "UnparseableLocks";
pub const SWEEP_ERRORS: &str = "SweepErrors";

/// Stop starting new locks when less than this is left before the Lambda deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

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
}

impl ReaperConfig {
    pub fn from_env(env: &mut Env) -> ReaperConfig {
        let sources = LockSources::from_env(env);
        let policy = StaleLockPolicy::from_env(env);
        let dry_run = env.parsed("DRY_RUN", false, parse_bool);
        let arn = "an SNS topic ARN such as arn:aws:sns:eu-west-1:123456789012:lockreaper-alerts";
        let alert_topic_arn = env.required("ALERT_TOPIC_ARN", arn);
        let approval_topic_arn = env.required("APPROVAL_TOPIC_ARN", arn);
        let approval_secret_arn = env.required(
            "APPROVAL_SECRET_ARN",
            "a Secrets Manager secret ARN holding the approval signing key",
        );
        let ledger_table = env.required(
            "LEDGER_TABLE",
            "the name of lockreaper's ledger DynamoDB table",
        );
        let metrics_namespace = env.parsed(
            "METRICS_NAMESPACE",
            DEFAULT_NAMESPACE.to_owned(),
            parse_namespace,
        );
        let approval_ttl = env.parsed("APPROVAL_TTL", Duration::from_secs(24 * 3600), |v| {
            let d = parse_duration(v)?;
            if d < Duration::from_secs(60) || d > Duration::from_secs(7 * 86_400) {
                return Err(format!("{v:?} is out of range; expected between 1m and 7d"));
            }
            Ok(d)
        });
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
        if !ledger_table.is_empty() {
            if let Err(problem) = check_table_name(&ledger_table) {
                env.error(ConfigError::new("LEDGER_TABLE", problem));
            }
        }
        let deployment = env
            .get("DEPLOYMENT_NAME")
            .unwrap_or("lockreaper")
            .to_owned();
        let scan_segments = env.parsed("SCAN_SEGMENTS", 1, |v| match v.parse::<u32>() {
            Ok(n) if (1..=64).contains(&n) => Ok(n),
            _ => Err(format!(
                "{v:?} is not a segment count; expected a whole number from 1 to 64"
            )),
        });
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
        }
    }
}

/// The reaper with its clients, built once per Lambda instance.
pub struct Reaper {
    pub config: ReaperConfig,
    pub signing_key: SigningKey,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub alerts: Notifier,
    pub alert_states: AlertStates,
    pub ledger: Ledger,
    pub metrics: CloudWatchMetrics,
    pub unlocker: Unlocker,
    pub proposals: Proposals,
}

impl Reaper {
    /// The reaper over one set of AWS clients (the Lambda's, or a test's against the emulator).
    pub fn new(aws: &lockreaper_aws::Aws, config: ReaperConfig, signing_key: SigningKey) -> Reaper {
        let (dynamodb, s3) = (aws.dynamodb(), aws.s3());
        Reaper {
            signing_key,
            alerts: Notifier::new(aws.sns(), &config.alert_topic_arn),
            alert_states: AlertStates::new(dynamodb.clone(), &config.ledger_table),
            ledger: Ledger::new(dynamodb.clone(), &config.ledger_table),
            metrics: CloudWatchMetrics::new(aws.cloudwatch(), &config.metrics_namespace),
            unlocker: Unlocker::new(dynamodb.clone(), s3.clone(), &config.ledger_table),
            proposals: Proposals::new(dynamodb.clone(), &config.ledger_table),
            dynamodb,
            s3,
            config,
        }
    }
}

/// One lock as the sweep judged it.
#[derive(Debug, Clone, Serialize)]
pub struct JudgedLock {
    pub state_path: String,
    pub lock_id: String,
    pub kind: &'static str,
    pub locations: Vec<String>,
    pub who: Option<String>,
    pub age_seconds: Option<u64>,
    pub level: Level,
    pub alive: bool,
    pub reasons: Vec<String>,
    /// Liveness evidence that was missing or could not be read (each blocks auto-expiry).
    pub evidence_gaps: Vec<String>,
    /// `new`, `escalated`, `reminder`, or none.
    pub alert: Option<String>,
    pub proposal_id: Option<String>,
    /// Open proposals withdrawn in this sweep (the lock showed signs of life after them).
    pub withdrawn: Vec<String>,
    /// `unlocked`, `lock-changed`, … when the reaper expired it (AUTO_EXPIRE).
    pub expired: Option<String>,
}

/// What one sweep did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepOutcome {
    pub swept_at: Option<DateTime<Utc>>,
    pub dry_run: bool,
    pub locks: Vec<JudgedLock>,
    /// Lock files too young to need their body read.
    pub young_lock_files: usize,
    pub alerts_sent: usize,
    pub resolved_sent: usize,
    pub unparseable: Vec<String>,
    pub unreachable: Vec<String>,
    /// Tables and buckets not fully read in this sweep: no "resolved" message is sent for their
    /// locks (a lock that could not be read is not a lock that went away).
    pub incomplete_sources: std::collections::BTreeSet<String>,
    /// Errors while handling individual locks (alerts, ledger): the lock is retried next sweep.
    pub errors: Vec<String>,
    /// Locks not reached before the deadline; the next sweep continues.
    pub not_reached: Vec<String>,
    pub aws_calls: usize,
}

/// All artefacts of one lock (one Terraform lock may be a DynamoDB item and a lock file).
#[derive(Debug, Clone)]
struct LockGroup {
    locks: Vec<LockRecord>,
}

impl LockGroup {
    fn primary(&self) -> &LockRecord {
        &self.locks[0]
    }
}

impl Reaper {
    /// One sweep. `deadline` is when Lambda will stop the invocation.
    pub async fn sweep(
        &self,
        now: DateTime<Utc>,
        deadline: Option<std::time::Instant>,
    ) -> SweepOutcome {
        let mut out = SweepOutcome {
            swept_at: Some(now),
            dry_run: self.config.dry_run,
            ..SweepOutcome::default()
        };
        let (locks, digests, malformed) = self.take_stock(now, &mut out).await;
        let digest_by_path: HashMap<&str, &DigestRecord> =
            digests.iter().map(|d| (d.state_path.as_str(), d)).collect();

        // Group artefacts by (state path, lock ID); the DynamoDB item, when present, is primary.
        let mut groups: BTreeMap<(String, String), LockGroup> = BTreeMap::new();
        for lock in locks {
            groups
                .entry((lock.state_path.clone(), lock.lock_id.clone()))
                .or_insert_with(|| LockGroup { locks: Vec::new() })
                .locks
                .push(lock);
        }
        for group in groups.values_mut() {
            group
                .locks
                .sort_by_key(|l| l.kind == LockKind::TerraformS3LockFile);
        }

        let mut per_container: BTreeMap<String, ContainerStats> = BTreeMap::new();
        for table in &self.config.sources.tables {
            per_container.entry(table.clone()).or_default();
        }
        for scope in &self.config.sources.buckets {
            per_container.entry(scope.bucket.clone()).or_default();
        }
        for bad in &malformed {
            let container = container_of_error(bad);
            per_container.entry(container).or_default().unparseable += 1;
        }

        let mut present: HashSet<String> = HashSet::new();
        for group in groups.values() {
            for lock in &group.locks {
                present.insert(lock.location.ledger_key());
            }
        }
        // Whether each lock table has a stream, learnt when a lock in it first needs liveness.
        let mut streams = TableStreams::new();
        for group in groups.values() {
            if deadline.is_some_and(|d| {
                d.saturating_duration_since(std::time::Instant::now()) < DEADLINE_MARGIN
            }) {
                out.not_reached.push(group.primary().location.to_string());
                // Still present and still counted: a cut-short sweep must not report fewer or
                // younger locks than there are (its age is what the lock itself says, if anything).
                let age = group.primary().age(now).map_or(0, |a| a.as_secs());
                count_group(&mut per_container, group, age, false);
                continue;
            }
            let judged = self
                .judge(group, &digest_by_path, &mut streams, now, &mut out)
                .await;
            let stale = judged.level >= Level::ProposeUnlock;
            count_group(
                &mut per_container,
                group,
                judged.age_seconds.unwrap_or(0),
                stale,
            );
            out.locks.push(judged);
        }

        self.report_unparseable(&malformed, now, &mut out).await;
        if out.not_reached.is_empty() {
            // Only a complete sweep may conclude that an alerted lock is gone.
            self.send_resolved(&present, now, &mut out).await;
        }
        self.put_metrics(&per_container, now, &mut out).await;
        out
    }

    /// Reads every lock; lock file bodies only for files old enough to matter.
    async fn take_stock(
        &self,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) -> (Vec<LockRecord>, Vec<DigestRecord>, Vec<LockParseError>) {
        let mut locks = Vec::new();
        let mut digests = Vec::new();
        let mut malformed = Vec::new();
        let scans =
            futures::future::join_all(self.config.sources.tables.iter().map(|t| async move {
                LockTable::new(self.dynamodb.clone(), t)
                    .scan(self.config.scan_segments)
                    .await
            }));
        let files = LockFiles::new(self.s3.clone());
        let listings =
            futures::future::join_all(self.config.sources.buckets.iter().map(|b| files.list(b)));
        let (scans, listings) = futures::join!(scans, listings);
        for (scan, table) in scans.into_iter().zip(&self.config.sources.tables) {
            match scan {
                Ok(scan) => {
                    out.aws_calls += scan.pages;
                    locks.extend(scan.locks);
                    digests.extend(scan.digests);
                    malformed.extend(scan.malformed);
                }
                Err(e) => {
                    out.aws_calls += 1;
                    log_error("unreachable", &e);
                    out.unreachable.push(e.to_string());
                    out.incomplete_sources.insert(table.clone());
                }
            }
        }
        let min_warn = self.config.policy.min_warn_after();
        let mut to_read: Vec<LockFileHead> = Vec::new();
        for (listing, scope) in listings.into_iter().zip(&self.config.sources.buckets) {
            match listing {
                Ok((heads, pages)) => {
                    out.aws_calls += pages;
                    for head in heads {
                        if lock_file_matters(&head, now, min_warn) {
                            to_read.push(head);
                        } else {
                            out.young_lock_files += 1;
                        }
                    }
                }
                Err(e) => {
                    out.aws_calls += 1;
                    log_error("unreachable", &e);
                    out.unreachable.push(format!("{scope}: {e}"));
                    out.incomplete_sources.insert(scope.bucket.clone());
                }
            }
        }
        let bodies =
            futures::future::join_all(to_read.iter().map(|h| files.read(&h.bucket, &h.key))).await;
        out.aws_calls += to_read.len();
        for (body, head) in bodies.into_iter().zip(&to_read) {
            match body {
                Ok(Some(Ok(lock))) => locks.push(lock),
                Ok(Some(Err(bad))) => malformed.push(bad),
                Ok(None) => {}
                Err(e) => {
                    log_error("unreachable", &e);
                    out.unreachable.push(e.to_string());
                    out.incomplete_sources.insert(head.bucket.clone());
                }
            }
        }
        (locks, digests, malformed)
    }

    /// Gathers the evidence for one lock, asks the core's [`decide`] for the plan, and carries it
    /// out. Every decision is the core's; this only reads, writes and publishes.
    async fn judge(
        &self,
        group: &LockGroup,
        digests: &HashMap<&str, &DigestRecord>,
        streams: &mut TableStreams,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) -> JudgedLock {
        let mut group = group.clone();
        // Gyro: age counts from the first time anyone (stream or sweep) saw this lock.
        if group.primary().created == LockCreated::Unknown {
            let primary = group.primary().clone();
            if let Some(at) = self.first_seen(&primary, now, out).await {
                for lock in &mut group.locks {
                    lock.created = LockCreated::FirstSeen(at);
                }
            }
        }
        let primary = group.primary().clone();
        let age = primary.age(now);
        let threshold = self.config.policy.thresholds_for(&primary.state_path);
        // Evidence costs calls: only gather it for locks old enough for the plan to be more than
        // "nothing" (expire_after may undercut warn_after when overrides combine).
        let may_act = age.is_some_and(|a| a >= threshold.warn_after.min(threshold.expire_after));
        let (liveness, gaps) = if may_act {
            self.liveness(&primary, digests, streams, out).await
        } else {
            (Liveness::default(), Vec::new())
        };
        // The alert state (with the lock's open proposals) and the snooze. If either cannot be
        // read the plan is still made (for the report) but not carried out: acting on half the
        // picture could send a duplicate alert or expire a snoozed lock.
        let mut unreadable_context = false;
        // The open proposals' records as read here, so a re-offer does not read them again.
        let mut open_records = HashMap::new();
        let (stored, snoozed_until) = if may_act {
            let mut stored = match self.stored_alert(&primary).await {
                Ok(s) => s,
                Err(e) => {
                    unreadable_context = true;
                    out.errors.push(e.to_string());
                    None
                }
            };
            if let Some(s) = stored.as_mut() {
                open_records = self
                    .forget_closed_proposals(&mut s.state.open_proposals, out)
                    .await;
            }
            let snoozed_until = match self
                .proposals
                .read_snooze(&primary.location, &primary.lock_id)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    unreadable_context = true;
                    out.errors.push(e.to_string());
                    None
                }
            };
            (stored, snoozed_until)
        } else {
            (None, None)
        };
        let plan = decide(
            &self.config.policy,
            &LockEvidence {
                lock: &primary,
                liveness: &liveness,
                gaps: &gaps,
                alert: stored.as_ref().map(|s| &s.state),
                snoozed_until,
                open_proposals: stored
                    .as_ref()
                    .map_or(&[], |s| s.state.open_proposals.as_slice()),
            },
            now,
        );
        let verdict = &plan.verdict;
        let mut judged = JudgedLock {
            state_path: primary.state_path.clone(),
            lock_id: primary.lock_id.clone(),
            kind: primary.kind.as_str(),
            locations: group.locks.iter().map(|l| l.location.to_string()).collect(),
            who: primary.who.clone(),
            age_seconds: age.map(|a| a.as_secs()),
            level: verdict.level,
            alive: verdict.alive,
            reasons: verdict.reasons.clone(),
            evidence_gaps: verdict.gaps.iter().map(EvidenceGap::sentence).collect(),
            alert: None,
            proposal_id: None,
            withdrawn: Vec::new(),
            expired: None,
        };
        tracing::info!(
            event = "lock-judged",
            state_path = %primary.state_path,
            lock_id = %primary.lock_id,
            kind = primary.kind.as_str(),
            age = %age.map(format_duration).unwrap_or_else(|| "unknown".into()),
            level = verdict.level.as_str(),
            alive = verdict.alive,
            evidence_gaps = verdict.gaps.len(),
        );
        if self.config.dry_run || unreadable_context {
            return judged;
        }
        let stored = if plan.withdraw.is_empty() {
            stored
        } else {
            self.withdraw(&plan.withdraw, stored, now, out, &mut judged)
                .await
        };

        // Auto-expiry: the same conditional delete + audit path as an approved unlock.
        if plan.expire {
            let request = UnlockRequest {
                locks: &group.locks,
                source: ApprovalSource::AutoExpire,
                approver: None,
                reason: Some(verdict.reasons.join(" ")),
                proposal_id: None,
                audit_id: random_id(),
            };
            match self.unlocker.unlock(request, now).await {
                Ok(report) => {
                    let result = match report.result {
                        UnlockResult::Unlocked => "unlocked",
                        UnlockResult::LockChanged => "lock-changed",
                        UnlockResult::AlreadyReleased => "already-released",
                        UnlockResult::Failed => "failed",
                    };
                    tracing::warn!(event = "auto-expired", state_path = %primary.state_path, lock_id = %primary.lock_id, result);
                    judged.expired = Some(result.to_owned());
                    if report.result == UnlockResult::Unlocked {
                        let message = alert::lock_alert(
                            &primary,
                            verdict,
                            lockreaper_core::policy::AlertKind::New,
                            None,
                            &self.context(),
                        );
                        if let Err(e) = self
                            .alerts
                            .publish_structured(&message.subject, &message.sns_message())
                            .await
                        {
                            out.errors.push(e.to_string());
                        } else {
                            out.alerts_sent += 1;
                        }
                        return judged;
                    }
                }
                Err(e) => {
                    log_error("auto-expire-failed", &e);
                    out.errors.push(e.to_string());
                }
            }
        }

        // Alerting: one per lock per level, reminders, snooze; at most one open proposal.
        let AlertAction::Send { kind, level } = plan.alert else {
            return judged;
        };
        let previous = stored.as_ref().map(|s| &s.state);
        let mut new_state = AlertState::after_send(previous, &primary.lock_id, level, now);
        let mut offer = None;
        let reoffered = match &plan.propose {
            Propose::Reoffer(open) => self
                .reoffer(open, open_records.get(&open.proposal_id), &group)
                .await
                .map(|o| (open, o)),
            Propose::No | Propose::New => None,
        };
        match (&plan.propose, reoffered) {
            (Propose::No, _) => {}
            (_, Some((open, o))) => {
                judged.proposal_id = Some(open.proposal_id.clone());
                offer = Some(o);
            }
            // A new proposal, or one in place of an open proposal that can no longer be offered.
            (Propose::New | Propose::Reoffer(_), None) => {
                match self.propose(&group, &verdict.reasons, now).await {
                    // Written to the ledger before the alert state: a proposal nobody was offered
                    // is harmless, an offered one missing from the ledger is not.
                    Ok((open, o)) => {
                        judged.proposal_id = Some(open.proposal_id.clone());
                        new_state.open_proposals.push(open);
                        offer = Some(o);
                    }
                    Err(e) => {
                        out.errors
                            .push(format!("proposal for {}: {e}", primary.location));
                    }
                }
            }
        }
        let won = match self
            .alert_states
            .put_if(
                &primary.location,
                &primary.state_path,
                &new_state,
                stored.as_ref().map(|s| s.version),
            )
            .await
        {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(e.to_string());
                return judged;
            }
        };
        let Some(new_version) = won else {
            // Another sweep is alerting on this lock right now.
            judged.proposal_id = None;
            return judged;
        };
        let message = alert::lock_alert(&primary, verdict, kind, offer.as_ref(), &self.context());
        match self
            .alerts
            .publish_structured(&message.subject, &message.sns_message())
            .await
        {
            Ok(message_id) => {
                out.alerts_sent += 1;
                judged.alert = Some(format!("{kind:?}").to_ascii_lowercase());
                tracing::info!(event = "alert-sent", state_path = %primary.state_path, lock_id = %primary.lock_id, level = level.as_str(), kind = ?kind, message_id);
            }
            Err(e) => {
                // Put the previous state back so the next sweep sends this alert again.
                let restore = match &stored {
                    Some(s) => self
                        .alert_states
                        .put_if(&s.location, &s.state_path, &s.state, Some(new_version))
                        .await
                        .map(|_| ()),
                    None => self
                        .alert_states
                        .delete_if(&primary.location, new_version)
                        .await
                        .map(|_| ()),
                };
                if let Err(r) = restore {
                    out.errors.push(r.to_string());
                }
                log_error("alert-failed", &e);
                out.errors.push(e.to_string());
            }
        }
        judged
    }

    /// Withdraws the plan's proposals in the ledger (their approvals are refused from now on),
    /// says so in the lock's thread, and drops them from the lock's alert state. Returns the alert
    /// state as now stored.
    async fn withdraw(
        &self,
        withdrawals: &[Withdrawal],
        stored: Option<StoredAlert>,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
        judged: &mut JudgedLock,
    ) -> Option<StoredAlert> {
        let mut settled: Vec<&str> = Vec::new();
        for w in withdrawals {
            let id = w.proposal.proposal_id.as_str();
            match self.proposals.withdraw(id, &w.reason, now).await {
                Ok(true) => {
                    settled.push(id);
                    judged.withdrawn.push(id.to_owned());
                    tracing::warn!(event = "proposal-withdrawn", proposal_id = %id, reason = %w.reason);
                    let proposal = match self.proposals.record(id).await {
                        Ok(Some(record)) => Some(record.proposal),
                        Ok(None) => None,
                        Err(e) => {
                            out.errors.push(e.to_string());
                            None
                        }
                    };
                    let decision = Decision::nobody(now);
                    let outcome = Outcome::Withdrawn {
                        reason: w.reason.clone(),
                    };
                    let message = result_message(proposal.as_ref(), &decision, &outcome);
                    match self
                        .alerts
                        .publish_structured(&message.subject, &message.sns_message())
                        .await
                    {
                        Ok(_) => out.alerts_sent += 1,
                        Err(e) => out.errors.push(e.to_string()),
                    }
                }
                // Used, denied or withdrawn already: no longer open, nothing to say.
                Ok(false) => settled.push(id),
                Err(e) => out.errors.push(e.to_string()),
            }
        }
        let mut stored = stored?;
        let mut state = stored.state.clone();
        state
            .open_proposals
            .retain(|p| !settled.contains(&p.proposal_id.as_str()));
        match self
            .alert_states
            .put_if(
                &stored.location,
                &stored.state_path,
                &state,
                Some(stored.version),
            )
            .await
        {
            Ok(Some(version)) => {
                stored.state = state;
                stored.version = version;
                Some(stored)
            }
            // Another sweep changed it meanwhile: it saw the same evidence and withdraws too.
            Ok(None) => Some(stored),
            Err(e) => {
                out.errors.push(e.to_string());
                Some(stored)
            }
        }
    }

    /// Drops the proposals a person already used or denied (or force-unlock withdrew) from the
    /// list the decision re-offers from; one whose status cannot be read is kept (re-offering a
    /// closed proposal only earns a "no longer usable" answer, never an unlock). Returns the
    /// records read of those still open, by proposal ID.
    async fn forget_closed_proposals(
        &self,
        open: &mut Vec<OpenProposal>,
        out: &mut SweepOutcome,
    ) -> HashMap<String, Proposal> {
        let mut still_open = Vec::with_capacity(open.len());
        let mut records = HashMap::new();
        for proposal in open.drain(..) {
            match self.proposals.get(&proposal.proposal_id).await {
                Ok(Some((record, ProposalStatus::Open))) => {
                    records.insert(proposal.proposal_id.clone(), record);
                    still_open.push(proposal);
                }
                Ok(_) => {}
                Err(e) => {
                    out.errors.push(e.to_string());
                    still_open.push(proposal);
                }
            }
        }
        *open = still_open;
        records
    }

    async fn first_seen(
        &self,
        lock: &LockRecord,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) -> Option<DateTime<Utc>> {
        match self.ledger.first_seen(&lock.location, &lock.lock_id).await {
            Ok(Some(at)) => Some(at),
            Ok(None) => match self
                .ledger
                .record_first_seen(&lock.location, &lock.lock_id, now)
                .await
            {
                Ok(true) => Some(now),
                // The stream consumer recorded it between our read and write: use its time.
                Ok(false) => self
                    .ledger
                    .first_seen(&lock.location, &lock.lock_id)
                    .await
                    .ok()
                    .flatten(),
                Err(e) => {
                    out.errors.push(e.to_string());
                    None
                }
            },
            Err(e) => {
                out.errors.push(e.to_string());
                None
            }
        }
    }

    /// Liveness evidence and what could not be read of it (read errors also go to `out.errors`).
    /// A Terraform lock in a table without a stream has no state writes in the ledger: a missing
    /// source. Each table is described at most once per sweep (`streams`).
    async fn liveness(
        &self,
        lock: &LockRecord,
        digests: &HashMap<&str, &DigestRecord>,
        streams: &mut TableStreams,
        out: &mut SweepOutcome,
    ) -> (Liveness, Vec<EvidenceGap>) {
        if let LockLocation::DynamoDb { table, .. } = &lock.location {
            if lock.kind.state_writes_on_table_stream()
                && learn_table_stream(&self.dynamodb, table, streams).await
            {
                out.aws_calls += 1;
                if let Some(Err(problem)) = streams.get(table) {
                    tracing::error!(event = "liveness-unreadable", error = %problem);
                    out.errors.push(problem.clone());
                }
            }
        }
        let mut gaps: Vec<EvidenceGap> = stream_gap(lock, streams).into_iter().collect();
        let digest = digests
            .get(lock.state_path.as_str())
            .and_then(|d| d.digest.as_deref());
        let evidence = gather_liveness(
            lock,
            Some(&self.ledger),
            &StateObjects::new(self.s3.clone()),
            digest,
        )
        .await;
        out.aws_calls += evidence.calls;
        for e in &evidence.errors {
            log_error("liveness-unreadable", e);
            out.errors.push(e.to_string());
        }
        gaps.extend(evidence.gaps);
        (evidence.liveness, gaps)
    }

    async fn stored_alert(&self, lock: &LockRecord) -> Result<Option<StoredAlert>, AwsError> {
        let key = lock.location.ledger_key();
        Ok(self
            .alert_states
            .list(lock.location.container())
            .await?
            .into_iter()
            .find(|s| s.location.ledger_key() == key))
    }

    /// Records a new proposal for `group` in the ledger and signs its approval token.
    async fn propose(
        &self,
        group: &LockGroup,
        reasons: &[String],
        now: DateTime<Utc>,
    ) -> Result<(OpenProposal, ApprovalOffer), AwsError> {
        let mut id = [0u8; 12];
        fill_random(&mut id);
        let proposal_id = encode_proposal_id(&id);
        let ttl = chrono::Duration::from_std(self.config.approval_ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        let expires_at = now + ttl;
        let proposal = Proposal {
            proposal_id: proposal_id.clone(),
            locks: group.locks.clone(),
            proposed_at: now,
            expires_at,
            thread_id: alert::thread_id(&group.primary().location),
            reasons: reasons.to_vec(),
        };
        self.proposals.put(&proposal).await?;
        let token = ApprovalToken::issue(
            &self.signing_key,
            id,
            LockFingerprint::of_all(&group.locks),
            expires_at,
        );
        Ok((
            OpenProposal {
                proposal_id,
                lock_id: group.primary().lock_id.clone(),
                proposed_at: now,
                expires_at,
            },
            ApprovalOffer {
                token,
                approval_topic_arn: self.config.approval_topic_arn.clone(),
                expires_at,
            },
        ))
    }

    /// The approval token of a proposal already open for `group`, signed again (a reminder offers
    /// the same proposal instead of opening another one). `None` when that proposal cannot be
    /// offered for exactly these artefacts (its id is malformed, it cannot be read, or the lock's
    /// artefacts changed since): the caller makes a new one.
    /// `read`: the proposal's record when this sweep already read it (otherwise it is read here).
    async fn reoffer(
        &self,
        open: &OpenProposal,
        read: Option<&Proposal>,
        group: &LockGroup,
    ) -> Option<ApprovalOffer> {
        let id = decode_proposal_id(&open.proposal_id)?;
        let fetched;
        let proposal = match read {
            Some(p) => p,
            None => {
                fetched = self.proposals.get(&open.proposal_id).await.ok()??.0;
                &fetched
            }
        };
        let same = proposal.locks.len() == group.locks.len()
            && proposal
                .locks
                .iter()
                .zip(&group.locks)
                .all(|(p, g)| p.location == g.location && p.raw == g.raw);
        if !same {
            return None;
        }
        Some(ApprovalOffer {
            token: ApprovalToken::issue(
                &self.signing_key,
                id,
                LockFingerprint::of_all(&proposal.locks),
                open.expires_at,
            ),
            approval_topic_arn: self.config.approval_topic_arn.clone(),
            expires_at: open.expires_at,
        })
    }

    async fn report_unparseable(
        &self,
        malformed: &[LockParseError],
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) {
        for bad in malformed {
            tracing::warn!(event = "unparseable-lock", reason = %bad, "unparseable lock: inspect by hand; it is never expired");
            out.unparseable.push(bad.to_string());
            if self.config.dry_run {
                continue;
            }
            match self
                .alert_states
                .first_report_of_unparseable(&bad.location, now)
                .await
            {
                Ok(true) => {
                    let message = alert::unparseable_alert(bad, &self.context());
                    if let Err(e) = self.publish(&message).await {
                        let _ = self.alert_states.forget_unparseable(&bad.location).await;
                        out.errors.push(e.to_string());
                    } else {
                        out.alerts_sent += 1;
                    }
                }
                Ok(false) => {}
                Err(e) => out.errors.push(e.to_string()),
            }
        }
    }

    async fn send_resolved(
        &self,
        present: &HashSet<String>,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) {
        if self.config.dry_run {
            return;
        }
        let containers: Vec<String> = self
            .config
            .sources
            .tables
            .iter()
            .cloned()
            .chain(self.config.sources.buckets.iter().map(|b| b.bucket.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for container in containers {
            if out.incomplete_sources.contains(&container) {
                tracing::warn!(event = "resolved-skipped", container = %container, "not fully read in this sweep: its alerted locks are not reported resolved");
                continue;
            }
            let stored = match self.alert_states.list(&container).await {
                Ok(s) => s,
                Err(e) => {
                    out.errors.push(e.to_string());
                    continue;
                }
            };
            for alert_state in stored {
                if present.contains(&alert_state.location.ledger_key())
                    || !in_scope(&alert_state, &self.config.sources.buckets)
                {
                    continue;
                }
                match self
                    .alert_states
                    .delete_if(&alert_state.location, alert_state.version)
                    .await
                {
                    Ok(true) if alert_state.state.wants_resolved_message() => {
                        let message = alert::resolved_alert(
                            &alert_state.state,
                            &alert_state.location,
                            &alert_state.state_path,
                            &self.context(),
                        );
                        match self.publish(&message).await {
                            Ok(_) => {
                                out.resolved_sent += 1;
                                tracing::info!(event = "resolved-sent", state_path = %alert_state.state_path, at = %now);
                            }
                            Err(e) => out.errors.push(e.to_string()),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => out.errors.push(e.to_string()),
                }
            }
        }
    }

    async fn put_metrics(
        &self,
        per_container: &BTreeMap<String, ContainerStats>,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) {
        let mut data = Vec::new();
        let minute = now;
        for (container, stats) in per_container {
            let datum = |name: &'static str, unit: Unit, value: f64| MetricDatum {
                name,
                dimensions: vec![("LockTable", container.clone())],
                unit,
                timestamp: minute,
                value: MetricValue::Single(value),
            };
            data.push(datum(ACTIVE_LOCKS, Unit::Count, stats.active as f64));
            data.push(datum(STALE_LOCKS, Unit::Count, stats.stale as f64));
            data.push(datum(
                OLDEST_LOCK_AGE_SECONDS,
                Unit::Seconds,
                stats.oldest as f64,
            ));
            data.push(datum(
                UNPARSEABLE_LOCKS,
                Unit::Count,
                stats.unparseable as f64,
            ));
        }
        let errors = (out.unreachable.len() + out.errors.len()) as f64;
        data.push(MetricDatum {
            name: SWEEP_ERRORS,
            dimensions: Vec::new(),
            unit: Unit::Count,
            timestamp: minute,
            value: MetricValue::Single(errors),
        });
        match self.metrics.put(data).await {
            Ok(calls) => out.aws_calls += calls,
            Err(e) => {
                log_error("metrics-failed", &e);
                out.errors.push(e.to_string());
            }
        }
    }

    async fn publish(&self, message: &AlertMessage) -> Result<String, AwsError> {
        self.alerts
            .publish_structured(&message.subject, &message.sns_message())
            .await
    }

    fn context(&self) -> AlertContext {
        AlertContext::new(self.config.deployment.clone())
    }
}

/// Adds one lock group (every artefact, in its own table or bucket) to the per-container stats.
fn count_group(
    per_container: &mut BTreeMap<String, ContainerStats>,
    group: &LockGroup,
    age_seconds: u64,
    stale: bool,
) {
    for lock in &group.locks {
        let stats = per_container
            .entry(lock.location.container().to_owned())
            .or_default();
        stats.active += 1;
        if stale {
            stats.stale += 1;
        }
        stats.oldest = stats.oldest.max(age_seconds);
    }
}

#[derive(Debug, Default)]
struct ContainerStats {
    active: usize,
    stale: usize,
    oldest: u64,
    unparseable: usize,
}

fn container_of_error(e: &LockParseError) -> String {
    // `dynamodb://<table> (...)` or `s3://<bucket>/<key>`.
    let rest = e
        .location
        .strip_prefix("dynamodb://")
        .or_else(|| e.location.strip_prefix("s3://"))
        .unwrap_or(&e.location);
    rest.split([' ', '/']).next().unwrap_or(rest).to_owned()
}

fn in_scope(alert: &StoredAlert, buckets: &[BucketScope]) -> bool {
    match &alert.location {
        lockreaper_core::LockLocation::DynamoDb { .. } => true,
        lockreaper_core::LockLocation::S3 { bucket, key } => buckets
            .iter()
            .any(|b| &b.bucket == bucket && b.prefix.as_deref().is_none_or(|p| key.starts_with(p))),
    }
}

/// A lock file younger than the smallest warn threshold needs no GET: nothing would be done with it.
fn lock_file_matters(head: &LockFileHead, now: DateTime<Utc>, min_warn: Duration) -> bool {
    match head.last_modified {
        Some(t) => (now - t).to_std().unwrap_or_default() >= min_warn,
        None => true,
    }
}

fn log_error(event: &str, e: &AwsError) {
    tracing::error!(event, error = %e, kind = ?e.kind);
}

/// Fills `buf` from the operating system's randomness.
pub fn fill_random(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        // No OS randomness means no safe proposal IDs; better to stop loudly.
        panic!("the operating system's random number generator failed: {e}");
    }
}

/// A random ID for audit records (24 hex characters).
pub fn random_id() -> String {
    let mut b = [0u8; 12];
    fill_random(&mut b);
    hex::encode(b)
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
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn young_lock_files_are_not_fetched() {
        let now = chrono::Utc::now();
        let head = |age_secs: i64| LockFileHead {
            bucket: "b".into(),
            key: "k.tflock".into(),
            etag: None,
            last_modified: Some(now - chrono::Duration::seconds(age_secs)),
            size: 200,
        };
        let warn = Duration::from_secs(3600);
        assert!(!lock_file_matters(&head(10), now, warn));
        assert!(lock_file_matters(&head(3600), now, warn));
        let unknown = LockFileHead {
            last_modified: None,
            ..head(0)
        };
        assert!(
            lock_file_matters(&unknown, now, warn),
            "unknown age: read it"
        );
    }
}
