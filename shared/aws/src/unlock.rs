//! The one path by which lockreaper releases a lock, used by approved unlocks and by the reaper's
//! opt-in automatic expiry alike.
//!
//! 1. Re-read every recorded artefact with strong consistency. If any is now a *different* lock
//!    (another ID, or other raw content), do nothing: the lock was released and re-taken since it
//!    was judged. Artefacts already gone are fine (Terraform may have cleaned up one of two).
//! 2. Write the audit record (full lock content, who, via what, why) and, for DynamoDB artefacts,
//!    a "forced" marker that lets lock-metrics count the REMOVE as a forced release — *before*
//!    deleting anything, so nothing is ever lost.
//! 3. Delete each artefact conditionally on what was read (lock file first, then the DynamoDB item;
//!    why, at the deletes), none after one that failed. Digest items are never among the artefacts.
//! 4. Record the outcomes, then look at the state: digest vs. the state's MD5, bucket versioning,
//!    the current and previous versions (the rollback point).
//!
//! **Contract for callers that retry:** [`Unlocker::unlock`] returns `Err` only for failures
//! *before any delete was attempted* (the re-read, the first audit write, a forced marker). From
//! the first delete on, every problem is reported inside the `Ok` report (`Failed` outcomes, the
//! audit's `errors`, `retryable` when a delete failed transiently), so a caller can treat `Err` as
//! "nothing was deleted; safe to try again". A caller that may be a retry of an attempt that got
//! past its first audit write resumes it ([`Unlocker::resume`]) instead of starting a second one.
//! Trying again is safe in any case: every delete is conditional on the proposed lock, so a lock
//! already deleted is found gone, and a lock taken again since is left alone.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use lockreaper_core::approval::ApprovalSource;
use lockreaper_core::proposal::{ArtefactOutcome, AuditRecord};
use lockreaper_core::{LockKind, LockLocation, LockRecord, StatePath, TableEntry};
use serde::Serialize;

use crate::error::AwsError;
use crate::ledger::Ledger;
use crate::ledger_schema::{audit_pk, audit_sk, expires_at, s, AUDIT_TTL, EXPIRES_AT, PK, SK};
use crate::lock_table::LockTable;
use crate::locks::{DeleteOutcome, LockStore, Reread};
use crate::state::{StateObjects, StateVersion};

/// Who asked for the unlock and why.
#[derive(Debug, Clone)]
pub struct UnlockRequest<'a> {
    pub locks: &'a [LockRecord],
    pub source: ApprovalSource,
    pub approver: Option<String>,
    /// The verified approver's Slack user groups at press time ([`AuditRecord::approver_groups`]).
    pub approver_groups: Vec<String>,
    pub reason: Option<String>,
    pub proposal_id: Option<String>,
    /// Unique per attempt (the caller's random ID).
    pub audit_id: String,
}

/// What happened, for the result message and the response.
#[derive(Debug, Clone, Serialize)]
pub struct UnlockReport {
    pub result: UnlockResult,
    pub audit: AuditRecord,
    pub state_check: Option<StateCheck>,
    /// A delete failed transiently (throttled, reset, timed out past its retries): trying the
    /// same unlock again later may well succeed.
    pub retryable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnlockResult {
    /// Every artefact that was there is gone now.
    Unlocked,
    /// The lock changed since it was judged: nothing was deleted.
    LockChanged,
    /// Nothing was left to delete.
    AlreadyReleased,
    /// Some delete failed; see the audit's errors. Safe to retry: deletes are conditional.
    Failed,
}

/// What the state looked like after the unlock.
#[derive(Debug, Clone, Serialize)]
pub struct StateCheck {
    pub state: String,
    /// The `-md5` digest item's value, when there is one.
    pub digest: Option<String>,
    /// The MD5 of the state object's bytes, when it exists.
    pub state_md5: Option<String>,
    /// `Some(true)` when both exist and agree.
    pub digest_matches: Option<bool>,
    pub versioning_enabled: Option<bool>,
    /// Current first, then the previous one: the rollback point.
    pub versions: Vec<StateVersion>,
    pub errors: Vec<String>,
}

/// Releases locks. Holds the clients; cheap to clone.
#[derive(Clone, Debug)]
pub struct Unlocker {
    store: LockStore,
    dynamodb: aws_sdk_dynamodb::Client,
    state: StateObjects,
    /// Forced-release markers.
    ledger: Ledger,
    ledger_table: String,
}

impl Unlocker {
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        s3: aws_sdk_s3::Client,
        ledger_table: impl Into<String>,
    ) -> Self {
        let ledger_table = ledger_table.into();
        Unlocker {
            store: LockStore::new(dynamodb.clone(), s3.clone()),
            ledger: Ledger::new(dynamodb.clone(), &ledger_table),
            dynamodb,
            state: StateObjects::new(s3),
            ledger_table,
        }
    }

    pub async fn unlock(
        &self,
        request: UnlockRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<UnlockReport, AwsError> {
        self.run(request, now, None).await
    }

    /// Resumes an unlock that an earlier attempt of the same request began and did not finish:
    /// `earlier` is the record it wrote before its deletes (same audit id, same time `at`, so
    /// this attempt writes that same record rather than a second one). An artefact that record
    /// holds and that is gone now was deleted by that attempt — or, in between, released by its
    /// holder, which nothing can tell apart: it is recorded as deleted, with that said in the
    /// record, and keeps its forced-release marker. The result is never "already released" for
    /// what the earlier attempt deleted.
    pub async fn resume(
        &self,
        request: UnlockRequest<'_>,
        at: DateTime<Utc>,
        earlier: AuditRecord,
    ) -> Result<UnlockReport, AwsError> {
        self.run(request, at, Some(earlier)).await
    }

    /// The audit record `audit_id` written at `at` for `state_path`, if there is one.
    pub async fn recorded(
        &self,
        state_path: &str,
        at: DateTime<Utc>,
        audit_id: &str,
    ) -> Result<Option<AuditRecord>, AwsError> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.ledger_table)
            .key(PK, s(audit_pk(state_path)))
            .key(SK, s(audit_sk(at, audit_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "read audit record from", &self.ledger_table))?;
        match out.item.as_ref().and_then(|i| i.get("record")) {
            Some(AttributeValue::S(json)) => {
                serde_json::from_str(json).map(Some).map_err(|e| AwsError {
                    kind: crate::error::AwsErrorKind::Other,
                    action: "decode audit record from",
                    resource: self.ledger_table.clone(),
                    message: e.to_string(),
                })
            }
            _ => Ok(None),
        }
    }

    async fn run(
        &self,
        request: UnlockRequest<'_>,
        now: DateTime<Utc>,
        earlier: Option<AuditRecord>,
    ) -> Result<UnlockReport, AwsError> {
        // An artefact the earlier attempt's record holds, found gone now, is taken as its delete.
        let resuming = earlier.is_some();
        let earlier_had = |lock: &LockRecord| {
            earlier.as_ref().is_some_and(|e| {
                e.locks
                    .iter()
                    .any(|l| l.location == lock.location && l.lock_id == lock.lock_id)
            })
        };
        let Some(primary) = request.locks.first() else {
            return Err(AwsError {
                kind: crate::error::AwsErrorKind::Other,
                action: "unlock",
                resource: "(no lock)".into(),
                message: "nothing to unlock: the request names no lock".into(),
            });
        };
        let mut audit = AuditRecord {
            audit_id: request.audit_id.clone(),
            at: now,
            source: request.source,
            approver: request.approver.clone(),
            approver_groups: request.approver_groups.clone(),
            reason: request.reason.clone(),
            proposal_id: request.proposal_id.clone(),
            state_path: primary.state_path.clone(),
            lock_id: primary.lock_id.clone(),
            locks: request.locks.to_vec(),
            outcomes: Vec::new(),
            errors: Vec::new(),
        };

        // 1. Re-read: every artefact must be the recorded lock, or gone.
        let mut present = Vec::new();
        for lock in request.locks {
            match self.store.reread(&lock.location).await? {
                Reread::Lock(now_there)
                    if now_there.raw == lock.raw && now_there.lock_id == lock.lock_id =>
                {
                    // Keep the fresh read's precondition (an S3 ETag can only be re-read, not predicted).
                    present.push(Some(now_there));
                }
                Reread::Gone => present.push(None),
                Reread::Lock(_) | Reread::Unparseable(_) | Reread::NotALock => {
                    audit.outcomes = request
                        .locks
                        .iter()
                        .map(|l| {
                            if l.location == lock.location {
                                ArtefactOutcome::Changed
                            } else {
                                ArtefactOutcome::Skipped
                            }
                        })
                        .collect();
                    audit.errors.push(format!(
                        "{} is no longer the lock that was judged (released and re-taken?): nothing was deleted",
                        lock.location
                    ));
                    self.write_first_audit(&audit, resuming).await?;
                    return Ok(UnlockReport {
                        result: UnlockResult::LockChanged,
                        audit,
                        state_check: None,
                        retryable: false,
                    });
                }
            }
        }
        // What each artefact counts as when it is found gone: deleted by the earlier attempt this
        // one resumes (its record says so), else released by its holder.
        let gone_outcomes: Vec<ArtefactOutcome> = request
            .locks
            .iter()
            .map(|l| {
                if earlier_had(l) {
                    ArtefactOutcome::Deleted
                } else {
                    ArtefactOutcome::AlreadyGone
                }
            })
            .collect();
        if present.iter().all(Option::is_none) {
            audit.outcomes = gone_outcomes;
            if resuming {
                audit.errors.push(EARLIER_ATTEMPT_NOTE.to_owned());
            }
            self.write_first_audit(&audit, resuming).await?;
            return Ok(UnlockReport {
                result: result_of(&audit.outcomes),
                audit,
                state_check: None,
                retryable: false,
            });
        }

        // 2. Record first.
        self.write_first_audit(&audit, resuming).await?;
        // A marker at every artefact's location: lock-metrics reads it for a DynamoDB item's
        // stream REMOVE (by lock ID) and for a lock file's S3 `Object Deleted` event (by location
        // and time: the event carries no lock ID), to count the release as forced.
        for lock in present.iter().flatten() {
            self.write_forced_marker(lock, &audit, now).await?;
        }

        // 3. Conditional deletes: the lock file first, then the DynamoDB item, and none after a
        //    failed one. Terraform >= 1.10 with both stores acquires the lock file first, then the
        //    item (lock-formats.md), and older Terraform and OpenTofu look only at the item. So a
        //    lock left half-released with its item kept blocks every client — and a client that
        //    takes the file first finds the item taken and gives the file back —, while one left
        //    with its file kept (item deleted) would let every client that ignores lock files in.
        //    Stopping at the first failure leaves the lock whole instead (nothing deleted yet) or
        //    item-kept, and the approval usable for a retry (see the handler).
        let mut order: Vec<usize> = (0..present.len()).collect();
        order.sort_by_key(|&i| !matches!(request.locks[i].kind, LockKind::TerraformS3LockFile));
        let mut outcomes = gone_outcomes;
        if resuming && present.iter().any(Option::is_none) {
            audit.errors.push(EARLIER_ATTEMPT_NOTE.to_owned());
        }
        let mut failed = false;
        let mut retryable = false;
        for i in order {
            let Some(lock) = &present[i] else { continue };
            if failed {
                outcomes[i] = ArtefactOutcome::Skipped;
                continue;
            }
            outcomes[i] = match self.store.delete_if_unchanged(lock).await {
                Ok(DeleteOutcome::Deleted) => ArtefactOutcome::Deleted,
                Ok(DeleteOutcome::DeletedAnswerLost) => {
                    // Our earlier attempt's answer was lost and the retry found the lock gone:
                    // that is our delete, unless its holder released it in that same instant,
                    // which nothing can tell apart. Recorded as ours (the forced marker stays),
                    // with the ambiguity in the record rather than hidden.
                    audit.errors.push(format!(
                        "{}: the delete's answer was lost and its retry found the lock gone: deleted by this unlock (or, in the same instant, released by its holder)",
                        lock.location
                    ));
                    ArtefactOutcome::Deleted
                }
                Ok(DeleteOutcome::Changed) => ArtefactOutcome::Changed,
                Ok(DeleteOutcome::AlreadyGone) => ArtefactOutcome::AlreadyGone,
                Err(e) => {
                    failed = true;
                    retryable |= e.kind == crate::error::AwsErrorKind::Transient;
                    audit.errors.push(e.to_string());
                    ArtefactOutcome::Failed
                }
            };
        }
        audit.outcomes = outcomes;
        let result = result_of(&audit.outcomes);
        // An artefact found already gone at delete time was released by its holder (a race with
        // Terraform's own release): its forced-release marker would make lock-metrics count that
        // release as forced, so it goes (best effort; lock-metrics may have read it already).
        for (lock, outcome) in present.iter().zip(&audit.outcomes) {
            // A delete skipped after a failure leaves its lock in place: its marker goes too.
            if let (Some(lock), ArtefactOutcome::AlreadyGone | ArtefactOutcome::Skipped) =
                (lock, outcome)
            {
                self.remove_forced_marker(lock).await;
            }
        }
        // Deletes have been attempted: from here on nothing is an `Err` (see the module docs). The
        // audit record written before the deletes already holds the full lock content.
        if let Err(e) = self.write_audit(&audit).await {
            tracing::error!(
                event = "audit-outcome-not-recorded",
                audit_id = %audit.audit_id,
                reason = %e,
                "could not add the unlock outcomes to the audit record (the record written before the delete stands)"
            );
            audit.errors.push(format!(
                "the outcomes could not be added to the audit record: {e}"
            ));
        }

        // 4. Look at the state.
        let state_check = match primary.terraform_state() {
            Some(state) if result == UnlockResult::Unlocked => {
                Some(self.check_state(&state, request.locks).await)
            }
            _ => None,
        };
        Ok(UnlockReport {
            result,
            audit,
            state_check,
            retryable,
        })
    }

    async fn check_state(&self, state: &StatePath, locks: &[LockRecord]) -> StateCheck {
        let mut check = StateCheck {
            state: state.lock_path(),
            digest: None,
            state_md5: None,
            digest_matches: None,
            versioning_enabled: None,
            versions: Vec::new(),
            errors: Vec::new(),
        };
        // The digest item lives in the DynamoDB lock table, when there is one.
        let table = locks.iter().find_map(|l| match &l.location {
            LockLocation::DynamoDb { table, .. } => Some(table.clone()),
            LockLocation::S3 { .. } => None,
        });
        if let Some(table) = table {
            match LockTable::new(self.dynamodb.clone(), &table)
                .get(
                    lockreaper_core::kinds::terraform::KEY_ATTRIBUTE,
                    &state.digest_item_key(),
                )
                .await
            {
                Ok(Some(Ok(TableEntry::Digest(d)))) => check.digest = d.digest,
                Ok(_) => {}
                Err(e) => check.errors.push(e.to_string()),
            }
        }
        match self.state.md5(state).await {
            Ok(md5) => check.state_md5 = md5,
            Err(e) => check.errors.push(e.to_string()),
        }
        if let (Some(d), Some(m)) = (&check.digest, &check.state_md5) {
            check.digest_matches = Some(d.eq_ignore_ascii_case(m));
        }
        let versioning = self.state.versioning_enabled(&state.bucket).await;
        match self.state.versions(state, 2).await {
            Ok(v) => check.versions = v,
            Err(e) => check.errors.push(e.to_string()),
        }
        check.versioning_enabled = match versioning {
            Ok(v) => Some(v),
            // GetBucketVersioning can be denied (it is a separate permission) or, on emulators,
            // answered in a shape the SDK rejects. The latest version says enough: it has a real
            // VersionId (not "null") only if versioning was on when the state was last written.
            Err(e) => match check.versions.first() {
                Some(latest) => {
                    tracing::warn!(
                        event = "versioning-inferred",
                        bucket = %state.bucket,
                        reason = %e,
                        "could not read bucket versioning; inferred it from the state's latest version"
                    );
                    Some(latest.version_id != "null")
                }
                None => {
                    check.errors.push(e.to_string());
                    None
                }
            },
        };
        check
    }

    /// The record written before any delete: new, so it must not exist yet (an audit id is 16
    /// random bytes; an existing one would be a bug), unless this attempt resumes the earlier
    /// attempt that wrote it — then it is rewritten in place (same key), never duplicated.
    async fn write_first_audit(&self, audit: &AuditRecord, resuming: bool) -> Result<(), AwsError> {
        match self.put_audit(audit, !resuming).await {
            // The id is ours alone, so a record already there is this very write, applied once
            // already and its answer lost (the SDK retried it).
            Err(e) if e.kind == crate::error::AwsErrorKind::ConditionFailed => Ok(()),
            other => other,
        }
    }

    async fn write_audit(&self, audit: &AuditRecord) -> Result<(), AwsError> {
        self.put_audit(audit, false).await
    }

    async fn put_audit(&self, audit: &AuditRecord, if_absent: bool) -> Result<(), AwsError> {
        let record = serde_json::to_string(audit).map_err(|e| AwsError {
            kind: crate::error::AwsErrorKind::Other,
            action: "encode audit record for",
            resource: audit.state_path.clone(),
            message: e.to_string(),
        })?;
        let item = HashMap::from([
            (PK.to_owned(), s(audit_pk(&audit.state_path))),
            (SK.to_owned(), s(audit_sk(audit.at, &audit.audit_id))),
            ("record".to_owned(), s(record)),
            ("lock_id".to_owned(), s(audit.lock_id.clone())),
            (EXPIRES_AT.to_owned(), expires_at(audit.at, AUDIT_TTL)),
        ]);
        let put = self
            .dynamodb
            .put_item()
            .table_name(&self.ledger_table)
            .set_item(Some(item));
        let put = if if_absent {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put
        };
        put.send().await.map_err(|e| {
            AwsError::from_sdk(e, "write audit record to ledger", &self.ledger_table)
        })?;
        Ok(())
    }

    async fn remove_forced_marker(&self, lock: &LockRecord) {
        let result = self
            .ledger
            .remove_forced_release(&lock.location, &lock.lock_id)
            .await;
        if let Err(e) = result {
            tracing::warn!(event = "forced-marker-not-removed", location = %lock.location, error = %e, "the lock was already gone at delete time, but its forced-release marker could not be removed: its release may be counted as forced");
        }
    }

    async fn write_forced_marker(
        &self,
        lock: &LockRecord,
        audit: &AuditRecord,
        now: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        // `by`: the approver, or how the unlock came in.
        let by = audit
            .approver
            .clone()
            .unwrap_or_else(|| audit.source.as_str().to_owned());
        self.ledger
            .record_forced_release_for_audit(
                &lock.location,
                &lock.lock_id,
                now,
                &by,
                Some(&audit.audit_id),
            )
            .await
    }
}

/// Reads the audit trail of one state, newest first.
pub async fn audit_trail(
    dynamodb: &aws_sdk_dynamodb::Client,
    ledger_table: &str,
    state_path: &str,
    limit: i32,
) -> Result<Vec<AuditRecord>, AwsError> {
    let out = dynamodb
        .query()
        .table_name(ledger_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s(audit_pk(state_path)))
        .scan_index_forward(false)
        .limit(limit)
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(e, "read audit trail from", ledger_table))?;
    Ok(out
        .items
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| match item.get("record") {
            Some(AttributeValue::S(json)) => serde_json::from_str(json).ok(),
            _ => None,
        })
        .collect())
}

/// Said in a resumed unlock's record when something its earlier attempt recorded is gone.
const EARLIER_ATTEMPT_NOTE: &str = "resumed: an earlier attempt of this same approval recorded the lock before its deletes and did not record their outcome; what it recorded and is gone now is taken as its delete (or was released by its holder in between)";

impl UnlockResult {
    /// The result of a recorded unlock, from its artefacts' outcomes (empty: not recorded).
    pub fn of(outcomes: &[ArtefactOutcome]) -> Option<UnlockResult> {
        (!outcomes.is_empty()).then(|| result_of(outcomes))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UnlockResult::Unlocked => "unlocked",
            UnlockResult::LockChanged => "lock-changed",
            UnlockResult::AlreadyReleased => "already-released",
            UnlockResult::Failed => "failed",
        }
    }
}

/// The result of an unlock from what happened to each artefact: a failure first, then a changed
/// lock; "unlocked" only when lockreaper itself deleted something (artefacts all found already
/// gone at delete time were released by their holder, in a race: "already released").
fn result_of(outcomes: &[ArtefactOutcome]) -> UnlockResult {
    if outcomes.contains(&ArtefactOutcome::Failed) {
        UnlockResult::Failed
    } else if outcomes.contains(&ArtefactOutcome::Changed) {
        UnlockResult::LockChanged
    } else if outcomes.contains(&ArtefactOutcome::Deleted) {
        UnlockResult::Unlocked
    } else {
        UnlockResult::AlreadyReleased
    }
}

#[cfg(test)]
mod result_tests {
    use super::*;
    use ArtefactOutcome::{AlreadyGone, Changed, Deleted, Failed, Skipped};

    #[test]
    fn only_a_delete_of_ours_is_an_unlock() {
        let cases: &[(&[ArtefactOutcome], UnlockResult)] = &[
            (&[Deleted], UnlockResult::Unlocked),
            (&[Deleted, AlreadyGone], UnlockResult::Unlocked),
            // Issue 11 item 6: every artefact gone at delete time is the holder's own release.
            (&[AlreadyGone], UnlockResult::AlreadyReleased),
            (&[AlreadyGone, AlreadyGone], UnlockResult::AlreadyReleased),
            (&[Deleted, Changed], UnlockResult::LockChanged),
            (&[Changed, Skipped], UnlockResult::LockChanged),
            (&[Deleted, Failed], UnlockResult::Failed),
            (&[AlreadyGone, Failed], UnlockResult::Failed),
        ];
        for (outcomes, expected) in cases {
            assert_eq!(result_of(outcomes), *expected, "{outcomes:?}");
        }
    }
}
