//! The Lambda glue for the second event source: one S3 `Object Created` / `Object Deleted` event
//! from an EventBridge rule (an asynchronous invocation, one event at a time), into the same
//! lifecycle metrics, ledger records and log line as a stream record.
//!
//! For each event:
//! 1. it is read ([`parse_event`]); one that cannot be read is counted as `UnparseableRecords`
//!    under its bucket and logged with the reason, and not retried (a retry cannot fix it);
//! 2. the ledger work, all idempotent: a lock file's event is recorded in its history (the
//!    latest acquisition and release by S3's `sequencer`, whatever order events arrive in) and
//!    the history read back; a release looks for lockreaper's forced-release marker; a state
//!    object's creation is recorded as a state write (`state#<bucket>/<key>`, the reaper's
//!    liveness evidence, exactly as a `-md5` digest change on a stream);
//! 3. the event is classified ([`classify`]) and claimed in the ledger by object and sequencer
//!    (after the ledger work, as on the stream path), so a retried or duplicated event is
//!    counted once;
//! 4. its metrics are written as EMF lines; if that fails, the claim is released and the
//!    invocation fails, so Lambda retries it and, after the retries, sends it to the
//!    function's on-failure destination (the `S3EventFailureQueue`, see template.yaml).
//!
//! Any ledger failure fails the invocation the same way: nothing is counted without its ledger
//! work done.

use chrono::{DateTime, Duration as ChronoDuration, SecondsFormat, Utc};
use lockreaper_aws::ledger_schema::FORCED_MARKER_TTL;
use lockreaper_aws::random::claim_token;
use lockreaper_aws::{AwsError, Claim};
use lockreaper_core::lifecycle::{Lifecycle, LifecycleEvent};
use lockreaper_core::metrics::BatchMetrics;
use lockreaper_core::s3_events::{
    classify, object_role, parse_event, unparseable, unreadable_identity, LockFileHistory,
    ObjectChange, ObjectRole, S3Classified,
};
use lockreaper_core::LockLocation;
use serde_json::Value;

use crate::LockMetrics;

/// How far after a release a forced-release marker may be stamped and still be the one that
/// forced it: the `Unlocker` writes it before it deletes, but its clock and S3's are not the same.
const FORCED_MARKER_SKEW: ChronoDuration = ChronoDuration::minutes(1);

/// What became of one S3 event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3EventOutcome {
    /// Counted now.
    Counted(Box<S3Classified>),
    /// Counted before (an EventBridge retry, or S3's duplicate event of one operation).
    Duplicate(Box<S3Classified>),
    /// Nothing to count (a state object deleted).
    Ignored(Box<S3Classified>),
    /// Not an S3 event lockreaper can read: counted as `UnparseableRecords`, not retried.
    Unparseable { reason: String },
}

/// Why an S3 event must be retried.
#[derive(Debug, thiserror::Error)]
pub enum S3EventFailure {
    #[error("ledger: {0}")]
    Ledger(#[from] AwsError),
    #[error("metrics not written: {0}")]
    Metrics(String),
    #[error("no claim token: {0}")]
    Token(String),
}

/// Whether a Lambda payload is an EventBridge event (rather than a stream batch).
pub fn is_eventbridge_event(payload: &Value) -> bool {
    payload.get("detail-type").is_some() && payload.get("source").is_some()
}

impl LockMetrics {
    /// Processes one EventBridge event (see the module documentation).
    pub async fn process_s3_event(
        &self,
        payload: &Value,
        now: DateTime<Utc>,
    ) -> Result<S3EventOutcome, S3EventFailure> {
        let event = match parse_event(payload) {
            Ok(event) => event,
            Err(err) => {
                let (event_id, bucket) = unreadable_identity(payload);
                self.emit(&unparseable(bucket.as_deref(), now), now)?;
                tracing::warn!(
                    event = "unparseable",
                    table = bucket.as_deref(),
                    event_id = event_id.as_deref(),
                    reason = %err,
                    "unparseable S3 event"
                );
                return Ok(S3EventOutcome::Unparseable {
                    reason: err.to_string(),
                });
            }
        };
        let token = claim_token().map_err(|e| S3EventFailure::Token(e.to_string()))?;
        // The ledger work first, the claim after it (as for stream records: every write here
        // is idempotent, and a claim must never exist without the evidence behind it).
        let role = object_role(&event.bucket, &event.key);
        let mut history = LockFileHistory::default();
        let mut forced = false;
        match (&role, event.change) {
            (ObjectRole::LockFile { .. }, change) => {
                // The release before this one, as known before this event is recorded (the
                // ledger keeps only the latest of each): it bounds the window of this release's
                // forced-release marker below, whether or not its acquisition was seen yet.
                let earlier_release = if change == ObjectChange::Deleted {
                    self.ledger()
                        .lock_file_history(&event.bucket, &event.key)
                        .await?
                        .deleted
                        .filter(|(seq, _)| seq < &event.sequencer)
                } else {
                    None
                };
                history = self
                    .ledger()
                    .record_lock_file_event(
                        &event.bucket,
                        &event.key,
                        change,
                        &event.sequencer,
                        event.time,
                        &event.event_id,
                    )
                    .await?;
                if change == ObjectChange::Deleted {
                    // A marker written between this lock's acquisition and its release. The
                    // lock this deletes was created after the release before it, and the
                    // Unlocker marks a lock after reading it and before deleting it: so a marker
                    // before the earlier release belongs to an earlier lock (the usual case: a
                    // forced release, then the next apply's own lock and release, whose
                    // acquisition event may be handled after its release event, concurrently).
                    // With neither known, the marker's whole lifetime counts, so a marker of an
                    // earlier lock at the same key within it would also match: the one way this
                    // can call a normal release forced.
                    let since = [history.created.as_ref(), earlier_release.as_ref()]
                        .into_iter()
                        .flatten()
                        .filter(|(seq, _)| seq < &event.sequencer)
                        .map(|(_, at)| *at)
                        .max()
                        .unwrap_or(event.time - FORCED_MARKER_TTL);
                    let location = LockLocation::S3 {
                        bucket: event.bucket.clone(),
                        key: event.key.clone(),
                    };
                    forced = self
                        .ledger()
                        .forced_between(&location, since, event.time + FORCED_MARKER_SKEW)
                        .await?;
                }
            }
            (ObjectRole::State { state }, ObjectChange::Created) => {
                self.ledger()
                    .record_state_write(&state.lock_path(), event.time, None)
                    .await?;
            }
            (ObjectRole::State { .. }, ObjectChange::Deleted) => {}
        }
        let classified = classify(event, &history, forced);
        if classified.lifecycle.lifecycle == Lifecycle::Uncounted {
            tracing::debug!(
                table = %classified.event.bucket,
                key = %classified.event.key,
                "S3 event ignored: a state object deleted"
            );
            return Ok(S3EventOutcome::Ignored(Box::new(classified)));
        }
        let e = &classified.event;
        let claim = match self
            .ledger()
            .claim_s3_event(
                &e.bucket,
                &e.key,
                e.change,
                &e.sequencer,
                &e.event_id,
                &token,
            )
            .await
        {
            Ok(claim) => claim,
            Err(err) => {
                // One of the SDK's attempts may have written the claim before the call failed.
                self.release_s3_claim(&classified, &token).await;
                return Err(err.into());
            }
        };
        if claim == Claim::AlreadyClaimed {
            tracing::info!(
                table = %e.bucket,
                sequence_number = e.sequencer.short(),
                event_id = %e.event_id,
                "S3 event already counted by an earlier delivery; skipped"
            );
            return Ok(S3EventOutcome::Duplicate(Box::new(classified)));
        }
        if let Err(err) = self.emit(&classified.lifecycle, now) {
            tracing::error!(error = %err, "metrics not written: releasing the claim of the S3 event and failing for retry");
            self.release_s3_claim(&classified, &token).await;
            return Err(err);
        }
        log_s3_event(&classified);
        Ok(S3EventOutcome::Counted(Box::new(classified)))
    }

    fn emit(&self, event: &LifecycleEvent, now: DateTime<Utc>) -> Result<(), S3EventFailure> {
        let mut metrics = BatchMetrics::new(now);
        metrics.add_event(event);
        if metrics.is_empty() {
            return Ok(());
        }
        self.metrics_sink()
            .emit(&metrics.data())
            .map(|_| ())
            .map_err(|e| S3EventFailure::Metrics(e.to_string()))
    }

    async fn release_s3_claim(&self, c: &S3Classified, token: &str) {
        let e = &c.event;
        if let Err(err) = self
            .ledger()
            .release_s3_event_claim(&e.bucket, &e.key, e.change, &e.sequencer, token)
            .await
        {
            tracing::error!(
                table = %e.bucket,
                sequence_number = e.sequencer.short(),
                error = %err,
                "could not release this invocation's claim of a failed S3 event: if the claim was written, the event's metrics will be missing"
            );
        }
    }
}

/// The one JSON log line of a counted S3 event: the stream path's field names (`event`, `table`,
/// `kind`, `path`, `release`, `hold_seconds`, `change`, `at`, `sequence_number`, `event_id`),
/// plus what only S3 events have.
fn log_s3_event(c: &S3Classified) {
    let e = &c.event;
    let (release, hold_seconds) = match c.lifecycle.lifecycle {
        Lifecycle::Released { release, hold } => {
            (Some(release.as_str()), hold.map(|h| h.as_secs()))
        }
        _ => (None, None),
    };
    let name = match c.lifecycle.lifecycle {
        Lifecycle::Acquired => "acquired",
        Lifecycle::Released { .. } => "released",
        Lifecycle::StateWritten => "state-written",
        Lifecycle::Unparseable => "unparseable",
        Lifecycle::Uncounted => "ignored",
    };
    let path = c.state_path();
    tracing::info!(
        event = name,
        table = %e.bucket,
        kind = c.lifecycle.kind.map(|k| k.as_str()),
        path = %path,
        key = %e.key,
        release,
        hold_seconds,
        late = c.late,
        reason = e.reason.as_deref(),
        deletion_type = e.deletion_type.as_deref(),
        version_id = e.version_id.as_deref(),
        change = e.change.detail_type(),
        at = %e.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        sequence_number = e.sequencer.short(),
        event_id = %e.event_id,
        "lock event"
    );
}
