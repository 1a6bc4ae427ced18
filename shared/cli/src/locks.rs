//! `lockreaper locks`: every lock across the configured tables and buckets, with its age, holder,
//! operation, the liveness evidence the reaper would gather, and the policy's verdict.
//!
//! Read-only: unlike the reaper, it records nothing (a Gyro lock's first-seen time is read from the
//! ledger when there is one, never written). Liveness is gathered for every lock, not only for
//! those past `WARN_AFTER`, since a person asked.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use lockreaper_aws::inventory::{take_inventory, InventoryScope, LockFileBodies};
use lockreaper_aws::ledger::Ledger;
use lockreaper_aws::liveness::{gather_liveness, learn_table_stream, stream_gap, TableStreams};
use lockreaper_aws::state::StateObjects;
use lockreaper_aws::{AwsError, AwsErrorKind};
use lockreaper_core::config::{format_duration, LockSources};
use lockreaper_core::coverage::StateLocation;
use lockreaper_core::decision::{decide, EvidenceGap, GapCause, LockEvidence};
use lockreaper_core::messages::reasons::evidence_summary;
use lockreaper_core::policy::{Level, Liveness, StaleLockPolicy};
use lockreaper_core::{LockCreated, LockKind, LockLocation, LockRecord};
use serde::Serialize;

use crate::config::{self, Settings};
use crate::failure::{Failure, EXIT_OK, EXIT_PROBLEMS};
use crate::progress::Progress;
use crate::table;

/// The `schema` field of `locks --json`; bumped on any incompatible change.
pub const SCHEMA: &str = "lockreaper.locks/v1";

/// How many locks' evidence is gathered at once.
const CONCURRENCY: usize = 16;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print one JSON document (schema `lockreaper.locks/v1`) instead of the table
    #[arg(long)]
    pub json: bool,
}

/// `locks --json`.
#[derive(Debug, Serialize)]
pub struct LocksReport {
    pub schema: &'static str,
    pub generated_at: DateTime<Utc>,
    pub sources: SourcesView,
    pub ledger_table: Option<String>,
    pub policy: PolicyView,
    /// Oldest first (unknown ages last), then by location.
    pub locks: Vec<LockView>,
    /// Terraform `-md5` digest items seen (never locks).
    pub digest_items: usize,
    /// Locks that could not be parsed: inspect by hand; lockreaper never deletes them.
    pub unparseable: Vec<Unparseable>,
    /// Tables or buckets (or lock files) that could not be read.
    pub unreachable: Vec<Unreachable>,
    /// Liveness evidence that could not be read (the verdict was made without it).
    pub evidence_errors: Vec<EvidenceError>,
    /// `false` when any of the three lists above is non-empty (exit code 2).
    pub complete: bool,
}

#[derive(Debug, Serialize)]
pub struct SourcesView {
    pub tables: Vec<String>,
    /// `bucket` or `bucket/prefix`, as configured.
    pub buckets: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub warn_after_seconds: u64,
    pub expire_after_seconds: u64,
    pub auto_expire: bool,
    /// `LOCK_POLICY` patterns, in order.
    pub overrides: Vec<String>,
    /// `UNLOCKS_PAUSED` (the stack's `UnlocksPaused`, the kill switch): nothing is expired or
    /// deleted on approval; the levels shown are judged with it, as the reaper judges them.
    pub unlocks_paused: bool,
}

#[derive(Debug, Serialize)]
pub struct LockView {
    /// `terraform-dynamodb`, `terraform-s3-lockfile` or `gyro-dynamodb`.
    pub kind: &'static str,
    /// `Terraform/OpenTofu` or `Gyro`.
    pub tool: &'static str,
    /// `{"store": "dynamodb", "table", "key_attribute", "key"}` or `{"store": "s3", "bucket", "key"}`.
    pub location: LockLocation,
    pub state_path: String,
    pub lock_id: String,
    pub who: Option<String>,
    pub operation: Option<String>,
    pub tool_version: Option<String>,
    pub created: Option<DateTime<Utc>>,
    /// `recorded` (the lock says so), `first-seen` (Gyro: when lockreaper first saw it; the real
    /// age is at least this) or `unknown`.
    pub created_source: &'static str,
    pub age_seconds: Option<u64>,
    pub age: Option<String>,
    /// `fresh`, `warn`, `propose-unlock` or `auto-expire`: what the reaper would decide now.
    pub level: Level,
    /// Why, in the sentences the alert would carry.
    pub reasons: Vec<String>,
    pub liveness: LivenessView,
    pub thresholds: ThresholdsView,
    /// The command that releases this lock by hand.
    pub unlock_command: String,
}

#[derive(Debug, Serialize)]
pub struct LivenessView {
    /// The state object's S3 LastModified (Terraform locks).
    pub state_last_modified: Option<DateTime<Utc>>,
    /// `false` when the state object does not exist (yet); `null` when not checked.
    pub state_object_exists: Option<bool>,
    /// The last state write lock-metrics recorded in the ledger (needs `LEDGER_TABLE`).
    pub last_state_write: Option<DateTime<Utc>>,
    /// The `-md5` digest item vs. the state object's ETag-MD5; `null` when not comparable.
    pub digest_matches_state: Option<bool>,
    /// The latest of the writes above that is after the lock was taken.
    pub state_written_after_lock: Option<DateTime<Utc>>,
    pub holder_probably_alive: bool,
    /// Added in 0.1 (additive to `lockreaper.locks/v1`): why the state object is not covered by
    /// this deployment (`STATE_BUCKETS`, or a read that was denied or went to another region), so
    /// nothing can tell whether the holder is alive from it; `null` when covered or not a state.
    pub state_not_covered: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ThresholdsView {
    pub warn_after_seconds: u64,
    pub expire_after_seconds: u64,
    pub auto_expire: bool,
    /// `LOCK_POLICY` patterns that matched this lock's state path.
    pub matched: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Unparseable {
    pub location: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Unreachable {
    /// The table, bucket scope or object.
    pub source: String,
    /// `not-found`, `access-denied`, `transient` or `other`.
    pub kind: &'static str,
    pub error: String,
}

#[derive(Debug, Serialize)]
pub struct EvidenceError {
    pub lock: String,
    pub error: String,
}

fn kind_name(kind: AwsErrorKind) -> &'static str {
    match kind {
        AwsErrorKind::NotFound => "not-found",
        AwsErrorKind::AccessDenied => "access-denied",
        AwsErrorKind::ConditionFailed => "condition-failed",
        AwsErrorKind::Transient => "transient",
        AwsErrorKind::WrongRegion => "wrong-region",
        AwsErrorKind::Other => "other",
    }
}

fn unreachable(e: &AwsError) -> Unreachable {
    Unreachable {
        source: e.resource.clone(),
        kind: kind_name(e.kind),
        error: crate::failure::aws_error(e),
    }
}

/// What was learnt about one lock besides the lock itself.
struct Evidence {
    liveness: Liveness,
    state_exists: Option<bool>,
    /// Liveness sources not read or not consulted: they keep a lock from auto-expiring.
    gaps: Vec<EvidenceGap>,
    errors: Vec<String>,
}

pub async fn run(settings: &Settings, args: &Args) -> Result<u8, Failure> {
    let mut env = settings.env();
    let sources = config::sources(&mut env);
    let policy = config::policy(&mut env);
    let unlocks_paused = env.unlocks_paused();
    let ledger_table = env.ledger_table();
    let path_style = config::path_style(&mut env);
    config::finish(env, ())?;
    let aws = config::aws(settings, path_style).await?;
    let now = Utc::now();
    let progress = Progress::start(&format!(
        "reading {} lock table(s) and {} bucket(s)…",
        sources.tables.len(),
        sources.buckets.len()
    ));
    let judging = Judging {
        policy: &policy,
        unlocks_paused,
    };
    let report = gather(&aws, &sources, &judging, ledger_table, now, &progress).await;
    progress.finish();
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Problem(anyhow::anyhow!("cannot encode the report: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&report, now));
    }
    Ok(if report.complete {
        EXIT_OK
    } else {
        EXIT_PROBLEMS
    })
}

/// What the reaper judges locks by: its policy and the kill switch.
struct Judging<'a> {
    policy: &'a StaleLockPolicy,
    unlocks_paused: bool,
}

async fn gather(
    aws: &lockreaper_aws::Aws,
    sources: &LockSources,
    judging: &Judging<'_>,
    ledger_table: Option<String>,
    now: DateTime<Utc>,
    progress: &Progress,
) -> LocksReport {
    let policy = judging.policy;
    let dynamodb = aws.dynamodb();
    let s3 = aws.s3();
    let scope = InventoryScope {
        tables: &sources.tables,
        buckets: &sources.buckets,
        scan_segments: 1,
        // A person asked: every lock file, however young.
        lock_file_bodies: LockFileBodies::All,
    };
    let inventory = take_inventory(&dynamodb, &s3, &scope).await;
    let digests: HashMap<&str, &str> = inventory
        .digests
        .iter()
        .filter_map(|d| Some((d.state_path.as_str(), d.digest.as_deref()?)))
        .collect();
    let ledger = ledger_table
        .as_ref()
        .map(|t| Ledger::new(dynamodb.clone(), t));
    let state = StateObjects::new(s3);
    // Which lock tables have a stream, as the reaper learns it (a table without one leaves its
    // Terraform locks without state-write evidence).
    let mut streams = TableStreams::new();
    for lock in &inventory.locks {
        if let LockLocation::DynamoDb { table, .. } = &lock.location {
            if lock.kind.state_writes_on_table_stream() {
                learn_table_stream(&dynamodb, table, &mut streams).await;
            }
        }
    }

    progress.phase(format!(
        "gathering liveness evidence for {} lock(s)…",
        inventory.locks.len()
    ));
    let judged: Vec<(LockRecord, Evidence)> = futures::stream::iter(inventory.locks.iter())
        .map(|lock| {
            let (ledger, state, digests, streams) = (ledger.as_ref(), &state, &digests, &streams);
            let covered = sources.state_locations.as_slice();
            async move {
                let mut lock = lock.clone();
                let mut evidence = evidence(&mut lock, ledger, state, digests, covered).await;
                evidence.gaps.extend(stream_gap(&lock, streams));
                (lock, evidence)
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;

    let mut evidence_errors = Vec::new();
    let mut locks: Vec<LockView> = judged
        .iter()
        .map(|(lock, evidence)| {
            evidence_errors.extend(evidence.errors.iter().map(|e| EvidenceError {
                lock: lock.location.to_string(),
                error: e.clone(),
            }));
            view(lock, evidence, judging, now)
        })
        .collect();
    locks.sort_by(|a, b| {
        b.age_seconds
            .cmp(&a.age_seconds)
            .then_with(|| a.location.to_string().cmp(&b.location.to_string()))
    });
    let unparseable: Vec<Unparseable> = inventory
        .malformed
        .iter()
        .map(|m| Unparseable {
            location: m.location.clone(),
            reason: m.failure.to_string(),
        })
        .collect();
    let unreachable: Vec<Unreachable> = inventory
        .unreachable
        .iter()
        .map(|u| unreachable(&u.error))
        .collect();
    let complete = unparseable.is_empty() && unreachable.is_empty() && evidence_errors.is_empty();
    LocksReport {
        schema: SCHEMA,
        generated_at: now,
        sources: SourcesView {
            tables: sources.tables.clone(),
            buckets: sources
                .buckets
                .iter()
                .map(|b| match &b.prefix {
                    Some(p) => format!("{}/{p}", b.bucket),
                    None => b.bucket.clone(),
                })
                .collect(),
        },
        ledger_table,
        policy: PolicyView {
            unlocks_paused: judging.unlocks_paused,
            warn_after_seconds: policy.warn_after.as_secs(),
            expire_after_seconds: policy.expire_after.as_secs(),
            auto_expire: policy.auto_expire,
            overrides: policy
                .overrides
                .iter()
                .map(|o| o.pattern().to_owned())
                .collect(),
        },
        locks,
        digest_items: inventory.digests.len(),
        unparseable,
        unreachable,
        evidence_errors,
        complete,
    }
}

/// The reaper's evidence for one lock: Gyro first-seen time (read only), the ledger's last state
/// write, the state object's LastModified, digest vs. the state's ETag-MD5.
async fn evidence(
    lock: &mut LockRecord,
    ledger: Option<&Ledger>,
    state: &StateObjects,
    digests: &HashMap<&str, &str>,
    covered: &[StateLocation],
) -> Evidence {
    let mut errors = Vec::new();
    if let Some(ledger) = ledger {
        if lock.created == LockCreated::Unknown {
            // Read-only: a Gyro lock's first-seen time is read, never recorded, from here.
            match ledger.first_seen(&lock.location, &lock.lock_id).await {
                Ok(Some(at)) => lock.created = LockCreated::FirstSeen(at),
                Ok(None) => {}
                Err(e) => errors.push(crate::failure::aws_error(&e)),
            }
        }
    }
    let gathered = gather_liveness(
        lock,
        ledger,
        state,
        digests.get(lock.state_path.as_str()).copied(),
        Some(covered),
    )
    .await;
    errors.extend(gathered.errors.iter().map(crate::failure::aws_error));
    Evidence {
        liveness: gathered.liveness,
        state_exists: gathered.state_exists,
        gaps: gathered.gaps,
        errors,
    }
}

fn view(
    lock: &LockRecord,
    evidence: &Evidence,
    judging: &Judging<'_>,
    now: DateTime<Utc>,
) -> LockView {
    // The reaper's own decision (read-only here: no alert state, snooze or proposals), so the
    // listing and the reaper can never disagree about a lock's level.
    let verdict = decide(
        judging.policy,
        &LockEvidence {
            lock,
            liveness: &evidence.liveness,
            gaps: &evidence.gaps,
            alert: None,
            snoozed_until: None,
            open_proposals: &[],
            unlocks_paused: judging.unlocks_paused,
        },
        now,
    )
    .verdict;
    let age = lock.age(now);
    LockView {
        kind: lock.kind.as_str(),
        tool: lock.kind.tool(),
        location: lock.location.clone(),
        state_path: lock.state_path.clone(),
        lock_id: lock.lock_id.clone(),
        who: lock.who.clone(),
        operation: lock.operation.clone(),
        tool_version: lock.tool_version.clone(),
        created: lock.created.at(),
        created_source: match lock.created {
            LockCreated::Recorded(_) => "recorded",
            LockCreated::FirstSeen(_) => "first-seen",
            LockCreated::Unknown => "unknown",
        },
        age_seconds: age.map(|a| a.as_secs()),
        age: age.map(format_duration),
        level: verdict.level,
        reasons: verdict.reasons,
        liveness: LivenessView {
            state_last_modified: evidence.liveness.state_last_modified,
            state_object_exists: evidence.state_exists,
            last_state_write: evidence.liveness.last_state_write,
            digest_matches_state: evidence.liveness.digest_matches_state,
            state_written_after_lock: evidence.liveness.write_after(lock.created.at()),
            holder_probably_alive: verdict.alive,
            state_not_covered: evidence
                .gaps
                .iter()
                .find(|g| g.cause == GapCause::NotCovered)
                .map(|g| g.problem.clone()),
        },
        thresholds: ThresholdsView {
            warn_after_seconds: verdict.thresholds.warn_after.as_secs(),
            expire_after_seconds: verdict.thresholds.expire_after.as_secs(),
            auto_expire: verdict.thresholds.auto_expire,
            matched: verdict.thresholds.matched,
        },
        unlock_command: lock.manual_unlock_command(),
    }
}

fn short_kind(kind: &str) -> &'static str {
    LockKind::from_name(kind).map_or("?", LockKind::short_name)
}

/// `OperationTypeApply` → `apply`; Gyro command lines cut to 30 characters.
fn short_operation(operation: Option<&str>) -> String {
    let Some(op) = operation else {
        return "-".to_owned();
    };
    if let Some(rest) = op.strip_prefix("OperationType") {
        return rest.to_ascii_lowercase();
    }
    let mut chars = op.chars();
    let head: String = chars.by_ref().take(30).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// The EVIDENCE column: what says the holder is alive, or that nothing does (worded with the
/// alerts' reasons, in `lockreaper_core::messages::reasons`).
fn evidence_text(lock: &LockView, now: DateTime<Utc>, has_errors: bool) -> String {
    let l = &lock.liveness;
    let liveness = Liveness {
        state_last_modified: l.state_last_modified,
        last_state_write: l.last_state_write,
        digest_matches_state: l.digest_matches_state,
    };
    evidence_summary(
        &liveness,
        lock.created,
        l.state_object_exists,
        l.state_not_covered.is_some(),
        has_errors,
        now,
    )
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The readable form: a table, then why each lock past its warning threshold is judged so, then
/// what could not be read.
pub fn render(report: &LocksReport, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let searched = format!(
        "{} and {}",
        plural(report.sources.tables.len(), "table", "tables"),
        plural(report.sources.buckets.len(), "bucket", "buckets")
    );
    let policy = format!(
        "WARN_AFTER {}, EXPIRE_AFTER {}{}",
        format_duration(std::time::Duration::from_secs(
            report.policy.warn_after_seconds
        )),
        format_duration(std::time::Duration::from_secs(
            report.policy.expire_after_seconds
        )),
        if report.policy.overrides.is_empty() {
            String::new()
        } else {
            format!(
                ", {}",
                plural(
                    report.policy.overrides.len(),
                    "LOCK_POLICY entry",
                    "LOCK_POLICY entries"
                )
            )
        }
    );
    if report.policy.unlocks_paused {
        out.push_str(&format!(
            "Unlocks are paused (UNLOCKS_PAUSED=true, the stack's {}=true): nothing is expired, and approvals are refused without being used up.\n",
            lockreaper_core::config::UNLOCKS_PAUSED_PARAMETER
        ));
    }
    if report.locks.is_empty() {
        out.push_str(&format!("No locks in {searched}.\n"));
    } else {
        out.push_str(&format!(
            "{} in {searched}, oldest first (levels as the reaper would judge them: {policy}):\n\n",
            plural(report.locks.len(), "lock", "locks")
        ));
        let with_errors: std::collections::HashSet<&str> = report
            .evidence_errors
            .iter()
            .map(|e| e.lock.as_str())
            .collect();
        let rows: Vec<Vec<String>> = report
            .locks
            .iter()
            .map(|l| {
                let age = match (&l.age, l.created_source) {
                    (Some(a), "first-seen") => format!("≥{a}"),
                    (Some(a), _) => a.clone(),
                    (None, _) => "?".to_owned(),
                };
                vec![
                    age,
                    l.level.to_string(),
                    short_kind(l.kind).to_owned(),
                    l.state_path.clone(),
                    l.lock_id.clone(),
                    l.who.clone().unwrap_or_else(|| "-".to_owned()),
                    short_operation(l.operation.as_deref()),
                    evidence_text(
                        l,
                        now,
                        with_errors.contains(l.location.to_string().as_str()),
                    ),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &[
                "AGE", "LEVEL", "KIND", "STATE", "LOCK ID", "HOLDER", "OP", "EVIDENCE",
            ],
            &rows,
        ));
        let notable: Vec<&LockView> = report
            .locks
            .iter()
            .filter(|l| l.level >= Level::Warn)
            .collect();
        if !notable.is_empty() {
            out.push_str("\nWhy:\n");
            for l in notable {
                out.push_str(&format!(
                    "  {} — {}, lock {} ({})\n",
                    l.state_path,
                    l.level,
                    l.lock_id,
                    short_kind(l.kind)
                ));
                for reason in &l.reasons {
                    out.push_str(&format!("    - {reason}\n"));
                }
                if l.level >= Level::ProposeUnlock {
                    out.push_str(&format!(
                        "    release: approve the alert's proposal (`lockreaper approve <token>`), or by hand: {}\n",
                        l.unlock_command
                    ));
                }
            }
        }
    }
    if !report.unparseable.is_empty() {
        out.push_str(&format!(
            "\n{} (inspect by hand; lockreaper never deletes these):\n",
            plural(
                report.unparseable.len(),
                "unparseable lock",
                "unparseable locks"
            )
        ));
        for u in &report.unparseable {
            out.push_str(&format!("  {}: {}\n", u.location, u.reason));
        }
    }
    if !report.unreachable.is_empty() {
        out.push_str(&format!(
            "\n{} (locks there are missing from the list above):\n",
            plural(
                report.unreachable.len(),
                "source could not be read",
                "sources could not be read"
            )
        ));
        for u in &report.unreachable {
            out.push_str(&format!("  {}\n", u.error));
        }
    }
    if !report.evidence_errors.is_empty() {
        out.push_str(
            "\nLiveness evidence that could not be read (the level was judged without it):\n",
        );
        for e in &report.evidence_errors {
            out.push_str(&format!("  {}: {}\n", e.lock, e.error));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_read_short() {
        assert_eq!(short_operation(Some("OperationTypeApply")), "apply");
        assert_eq!(short_operation(None), "-");
        let long = "gyro up --verbose --skip-refresh production/network/main.gyro";
        assert_eq!(short_operation(Some(long)).chars().count(), 31);
    }
}
