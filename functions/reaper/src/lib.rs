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
//!
//! This file is the sweep's outline ([`Reaper::sweep`], and per lock `judge`: gather, decide,
//! carry out). Every decision is the core's ([`decide`]); the jobs around it live in their own
//! modules: `config` (the environment), `evidence` (the inventory and what the decision weighs),
//! `execute` (carrying the plan out: withdrawals, expiry, alerts and alert states, proposals,
//! unparseable and "resolved" messages) and `metrics` (the sweep's CloudWatch metrics).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lockreaper_aws::alert_state::AlertStates;
use lockreaper_aws::inventory::LockReaders;
use lockreaper_aws::ledger::Ledger;
use lockreaper_aws::liveness::TableStreams;
use lockreaper_aws::notify::Notifier;
use lockreaper_aws::proposals::Proposals;
use lockreaper_aws::unlock::Unlocker;
use lockreaper_aws::AwsError;
use lockreaper_aws::EmfMetrics;
use lockreaper_core::approval::SigningKey;
use lockreaper_core::config::format_duration;
use lockreaper_core::decision::{decide, EvidenceGap, LockEvidence};
use lockreaper_core::policy::Level;
use lockreaper_core::{DigestRecord, LockCreated, LockKind, LockRecord};
use serde::Serialize;

mod config;
mod evidence;
mod execute;
mod metrics;
mod summary;

pub use config::ReaperConfig;
pub use metrics::{
    ACTIVE_LOCKS, OLDEST_LOCK_AGE_SECONDS, STALE_LOCKS, SWEEP_ERRORS, UNPARSEABLE_LOCKS,
};
pub use summary::{Listed, SweepSummary, MAX_LISTED_LOCKS};

use metrics::{container_of_error, count_group, ContainerStats};

/// Stop starting new locks when less than this is left before the Lambda deadline.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// The reaper with its clients, built once per Lambda instance.
pub struct Reaper {
    pub config: ReaperConfig,
    pub signing_key: SigningKey,
    /// Lock tables, lock files and state objects.
    pub readers: LockReaders,
    pub alerts: Notifier,
    pub alert_states: AlertStates,
    pub ledger: Ledger,
    /// The sweep's metrics, as EMF lines on stdout (tests swap in a capture).
    pub metrics: EmfMetrics,
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
            metrics: EmfMetrics::stdout(&config.metrics_namespace),
            unlocker: Unlocker::new(dynamodb.clone(), s3.clone(), &config.ledger_table),
            proposals: Proposals::new(dynamodb.clone(), &config.ledger_table),
            readers: LockReaders::new(aws),
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
pub(crate) struct LockGroup {
    locks: Vec<LockRecord>,
}

impl LockGroup {
    pub(crate) fn primary(&self) -> &LockRecord {
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
        out.log_summary();
        out
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
        let gathered = self.gather(&primary, may_act, digests, streams, out).await;
        let stored = gathered.stored.as_ref();
        let plan = decide(
            &self.config.policy,
            &LockEvidence {
                lock: &primary,
                liveness: &gathered.liveness,
                gaps: &gathered.gaps,
                alert: stored.map(|s| &s.state),
                snoozed_until: gathered.snoozed_until,
                open_proposals: stored.map_or(&[], |s| s.state.open_proposals.as_slice()),
                unlocks_paused: self.config.unlocks_paused,
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
        // One line per lock only where someone may need it (a sweep of thousands of healthy locks
        // would otherwise write thousands of lines every few minutes); the sweep's summary line
        // counts the rest. Healthy locks are still logged at DEBUG.
        macro_rules! lock_judged {
            ($level:ident) => {
                tracing::$level!(
                    event = "lock-judged",
                    state_path = %primary.state_path,
                    lock_id = %primary.lock_id,
                    kind = primary.kind.as_str(),
                    age = %age.map(format_duration).unwrap_or_else(|| "unknown".into()),
                    verdict = verdict.level.as_str(),
                    alive = verdict.alive,
                    evidence_gaps = verdict.gaps.len(),
                )
            };
        }
        if verdict.level > Level::Fresh || !verdict.gaps.is_empty() {
            lock_judged!(info);
        } else {
            lock_judged!(debug);
        }
        if self.config.dry_run || gathered.unreadable_context {
            return judged;
        }
        let open_records = gathered.open_records;
        self.carry_out(
            &plan,
            &group,
            gathered.stored,
            &open_records,
            now,
            out,
            &mut judged,
        )
        .await;
        judged
    }
}

pub(crate) fn log_error(event: &str, e: &AwsError) {
    tracing::error!(event, error = %e, kind = ?e.kind);
}
