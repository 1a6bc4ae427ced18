//! The Lambda glue: a DynamoDB stream batch in, a partial batch response out.
//!
//! For each batch:
//! 1. every record is read into the core's [`StreamRecord`] (a record that does not even
//!    deserialize becomes an unparseable one) and classified ([`classify`]);
//! 2. the whole batch's ledger work (first-seen times, last state writes, forced-release markers,
//!    first-seen look-ups; all idempotent) is done at once in a bounded number of calls
//!    (`Ledger::record_work`: one BatchGetItem per 100 items read, one TransactWriteItems per 100
//!    items written, collapsed per item in memory); a record whose work cannot be settled fails,
//!    and so do the later records of its item (stream order per item, so a retry sees them in
//!    order). Then the records whose work is done are claimed in the ledger, the whole batch
//!    together in a bounded number of calls (`Ledger::claim_records`: at most two per 100 records
//!    when nothing fails), so a claim never exists without the ledger work behind it;
//! 3. the claimed records' metrics are written as CloudWatch Embedded Metric Format lines on
//!    stdout ([`EmfMetrics`]): no API call, so no answer to lose. If they cannot be written, the
//!    claims of exactly those records are released and the records reported;
//! 4. one JSON log line per lock event, and `batchItemFailures` by SequenceNumber.
//!
//! Why a retried batch is never double-counted: see `lockreaper_aws::ledger`.

use std::collections::HashSet;

use aws_lambda_events::dynamodb::EventRecord;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use lambda_runtime::{Error, LambdaEvent};
use lockreaper_aws::random::claim_token;
use lockreaper_aws::{AwsError, AwsErrorKind, Claim, EmfMetrics, Ledger, RecordWork};
use lockreaper_core::metrics::BatchMetrics;
use lockreaper_core::stream::{
    classify, classify_unreadable, Classified, LockEvent, StreamRecord, UserIdentity,
};
use serde_json::Value;

use crate::s3_events::{is_eventbridge_event, S3EventOutcome};

/// The function: the ledger and the metrics sink, built once per process.
pub struct LockMetrics {
    ledger: Ledger,
    metrics: EmfMetrics,
}

/// What happened to one record.
#[derive(Debug)]
enum Outcome {
    /// Its ledger work is done: to be claimed (with the rest of the batch's, in one go).
    ToClaim(Classified),
    /// Claimed and its ledger work done: to be counted.
    Claimed(Classified),
    /// Counted by an earlier delivery of the same record.
    Duplicate(Classified),
    /// Nothing to count.
    Ignored(Classified),
    /// Must be retried: reported in `batchItemFailures`.
    Failed { record: Classified, error: String },
}

/// A summary of one batch, as returned to tests through the log and used for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    pub records: usize,
    pub counted: usize,
    pub duplicates: usize,
    pub ignored: usize,
    pub failed: usize,
    /// EMF lines written (one per dimension set and minute in the normal case).
    pub metric_lines: usize,
}

impl LockMetrics {
    pub fn new(ledger: Ledger, metrics: EmfMetrics) -> Self {
        LockMetrics { ledger, metrics }
    }

    pub(crate) fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub(crate) fn metrics_sink(&self) -> &EmfMetrics {
        &self.metrics
    }

    /// The Lambda handler. A DynamoDB stream batch is read record by record, so one record that
    /// is not a stream record at all cannot fail the whole batch; its answer is the partial batch
    /// response. An EventBridge event (an S3 event from the state buckets' rule) is one event: it
    /// answers with what became of it, or fails so that Lambda retries it
    /// ([`crate::s3_events`]).
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        if is_eventbridge_event(&event.payload) {
            let outcome = self.process_s3_event(&event.payload, Utc::now()).await?;
            let outcome = match outcome {
                S3EventOutcome::Counted(_) => "counted",
                S3EventOutcome::Duplicate(_) => "duplicate",
                S3EventOutcome::Ignored(_) => "ignored",
                S3EventOutcome::Unparseable { .. } => "unparseable",
            };
            return Ok(serde_json::json!({ "outcome": outcome }));
        }
        let records = read_records(event.payload, Utc::now())?;
        let (response, _) = self.process(records, Utc::now()).await;
        Ok(serde_json::to_value(response)?)
    }

    /// Processes classified records (see the module documentation).
    pub async fn process(
        &self,
        records: Vec<Classified>,
        now: DateTime<Utc>,
    ) -> (DynamoDbEventResponse, BatchSummary) {
        let total = records.len();
        // This invocation's claim token: stored in every claim it takes, so a claim whose write
        // answer was lost is still recognised as its own (see `Ledger::claim_records`).
        let token = match claim_token() {
            Ok(token) => token,
            Err(err) => {
                // Without a token no claim can be told apart: count nothing, report everything.
                tracing::error!(error = %err, "no claim token: reporting the whole batch for retry");
                let mut response = DynamoDbEventResponse::default();
                for record in &records {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(record.record_id.clone());
                    response.batch_item_failures.push(failure);
                }
                let summary = BatchSummary {
                    records: total,
                    failed: total,
                    ..BatchSummary::default()
                };
                return (response, summary);
            }
        };
        let token = token.as_str();
        let outcomes = self.ledger_work(records, token).await;
        let mut outcomes = self.claim(outcomes, token).await;

        // Count the claimed records: their metrics as EMF lines, written at once.
        let mut metrics = BatchMetrics::new(now);
        let mut claimed = Vec::new();
        for (index, outcome) in outcomes.iter().enumerate() {
            if let Outcome::Claimed(record) = outcome {
                metrics.add(record);
                claimed.push(index);
            }
        }
        let mut summary = BatchSummary {
            records: total,
            ..BatchSummary::default()
        };
        if !metrics.is_empty() {
            match self.metrics.emit(&metrics.data()) {
                Ok(lines) => summary.metric_lines = lines,
                Err(err) => {
                    tracing::error!(
                        error = %err,
                        records = claimed.len(),
                        "metrics not written: releasing the claims of their records and reporting them for retry"
                    );
                    for index in claimed {
                        if let Outcome::Claimed(record) = &outcomes[index] {
                            let record = record.clone();
                            self.release(&record, token).await;
                            outcomes[index] = Outcome::Failed {
                                record,
                                error: err.to_string(),
                            };
                        }
                    }
                }
            }
        }

        let mut response = DynamoDbEventResponse::default();
        for outcome in &outcomes {
            match outcome {
                Outcome::Claimed(c) => {
                    summary.counted += 1;
                    log_event(c);
                }
                Outcome::Duplicate(c) => {
                    summary.duplicates += 1;
                    tracing::info!(
                        table = %c.table,
                        sequence_number = %c.record_id,
                        "record already counted by an earlier delivery; skipped"
                    );
                }
                Outcome::Ignored(c) => {
                    summary.ignored += 1;
                    if let LockEvent::Ignored { reason } = &c.event {
                        tracing::debug!(table = %c.table, sequence_number = %c.record_id, %reason, "record ignored");
                    }
                }
                // `claim` settles every record it is given; one left unclaimed is retried.
                Outcome::ToClaim(record) => {
                    summary.failed += 1;
                    tracing::error!(
                        table = %record.table,
                        sequence_number = %record.record_id,
                        "record left unclaimed; reported for retry"
                    );
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(record.record_id.clone());
                    response.batch_item_failures.push(failure);
                }
                Outcome::Failed { record, error } => {
                    summary.failed += 1;
                    tracing::error!(
                        table = %record.table,
                        sequence_number = %record.record_id,
                        %error,
                        "record failed; reported for retry"
                    );
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(record.record_id.clone());
                    response.batch_item_failures.push(failure);
                }
            }
        }
        tracing::info!(
            records = summary.records,
            counted = summary.counted,
            duplicates = summary.duplicates,
            ignored = summary.ignored,
            failed = summary.failed,
            metric_lines = summary.metric_lines,
            "batch done"
        );
        (response, summary)
    }

    /// Claims every record whose ledger work is done, the whole batch at once: a bounded number
    /// of ledger calls however many records there are (see `Ledger::claim_records`).
    async fn claim(&self, outcomes: Vec<Outcome>, token: &str) -> Vec<Outcome> {
        let keys: Vec<(&str, &str)> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Outcome::ToClaim(record) => {
                    Some((record.table.as_str(), record.record_id.as_str()))
                }
                _ => None,
            })
            .collect();
        if keys.is_empty() {
            return outcomes;
        }
        let mut claims = self.ledger.claim_records(&keys, token).await.into_iter();
        let mut claimed = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let Outcome::ToClaim(record) = outcome else {
                claimed.push(outcome);
                continue;
            };
            claimed.push(match claims.next() {
                Some(Ok(Claim::Claimed)) => Outcome::Claimed(record),
                Some(Ok(Claim::AlreadyClaimed)) => Outcome::Duplicate(record),
                Some(Err(err)) => {
                    // A transaction of the last round may have been applied before its call
                    // failed: remove the claim (only if it is ours), or the retry would skip the
                    // record as counted.
                    self.release(&record, token).await;
                    Outcome::Failed {
                        record,
                        error: err.to_string(),
                    }
                }
                None => Outcome::Failed {
                    record,
                    error: "the ledger returned no claim result for this record".to_owned(),
                },
            });
        }
        claimed
    }

    /// The whole batch's ledger work (first-seen times, state writes, forced-release markers,
    /// first-seen look-ups), in a bounded number of calls (`Ledger::record_work`), and what it
    /// makes of each record: to claim, ignored, or failed. In stream order per item: after a
    /// record of an item fails, the item's later records fail too, so a retry sees them in order
    /// again (their own writes, if made, are idempotent and made again harmlessly).
    ///
    /// The ledger work first, the claim after it: every ledger write is idempotent, so doing it
    /// again on a retry costs nothing, while claiming first would let an invocation that times
    /// out between the claim and the work make every retry skip the record, and the state-write
    /// evidence the reaper's liveness check depends on would be lost for good.
    async fn ledger_work(&self, mut records: Vec<Classified>, token: &str) -> Vec<Outcome> {
        let work: Vec<RecordWork> = records
            .iter()
            .map(|record| {
                if !record.counts() {
                    return RecordWork::default();
                }
                RecordWork {
                    first_seen: record
                        .first_seen_to_record()
                        .map(|(lock, at)| (&lock.location, lock.lock_id.as_str(), at)),
                    state_write: match &record.event {
                        LockEvent::StateWritten { digest } => Some((
                            digest.state_path.as_str(),
                            record.at,
                            digest.digest.as_deref(),
                        )),
                        _ => None,
                    },
                    forced: record
                        .released_lock()
                        .map(|lock| (&lock.location, lock.lock_id.as_str())),
                    needs_first_seen: record
                        .needs_first_seen()
                        .map(|lock| (&lock.location, lock.lock_id.as_str())),
                }
            })
            .collect();
        let mut answers = self.ledger.record_work(&work, token).await.into_iter();
        drop(work);
        let mut failed_items: HashSet<String> = HashSet::new();
        let mut outcomes = Vec::with_capacity(records.len());
        for mut record in records.drain(..) {
            let answer = answers.next().unwrap_or_else(|| {
                Err(AwsError {
                    kind: AwsErrorKind::Other,
                    action: "record stream batch's ledger work",
                    resource: self.ledger.table().to_owned(),
                    message: "the ledger returned no result for this record (a bug)".to_owned(),
                })
            });
            let item = item_key(&record);
            if failed_items.contains(&item) {
                outcomes.push(Outcome::Failed {
                    record,
                    error: "an earlier record of the same item failed".to_owned(),
                });
                continue;
            }
            if !record.counts() {
                outcomes.push(Outcome::Ignored(record));
                continue;
            }
            match answer {
                Ok(answers) => {
                    if answers.forced {
                        record.mark_forced();
                    }
                    if let Some(first_seen) = answers.first_seen {
                        record.set_first_seen(first_seen);
                    }
                    outcomes.push(Outcome::ToClaim(record));
                }
                Err(err) => {
                    failed_items.insert(item);
                    outcomes.push(Outcome::Failed {
                        record,
                        error: err.to_string(),
                    });
                }
            }
        }
        outcomes
    }

    async fn release(&self, record: &Classified, token: &str) {
        if let Err(err) = self
            .ledger
            .release_claim(&record.table, &record.record_id, token)
            .await
        {
            // The record stays claimed: a retry skips it, so its metrics are lost (under-counted,
            // never double-counted). Say so loudly.
            tracing::error!(
                table = %record.table,
                sequence_number = %record.record_id,
                error = %err,
                "could not release this invocation's claim of a failed record: if the claim was written, the record's metrics will be missing"
            );
        }
    }
}

fn item_key(c: &Classified) -> String {
    // The lock location, or the digest item, identifies the item; unparseable records are
    // independent of everything else.
    match &c.event {
        LockEvent::Acquired { lock }
        | LockEvent::Released { lock, .. }
        | LockEvent::Modified { lock, .. } => format!("lock|{}", lock.location.ledger_key()),
        LockEvent::StateWritten { digest } => {
            format!("digest|{}|{}", digest.table, digest.item_key)
        }
        LockEvent::Ignored { .. } | LockEvent::Unparseable { .. } => {
            format!("record|{}|{}", c.table, c.record_id)
        }
    }
}

/// Reads the `Records` of a DynamoDB stream event one by one.
pub fn read_records(payload: Value, received_at: DateTime<Utc>) -> Result<Vec<Classified>, Error> {
    let records = match payload {
        Value::Object(mut event) => match event.remove("Records") {
            Some(Value::Array(records)) => records,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => {
                return Err(format!(
                    "the event's `Records` is not an array but {}: is this function subscribed to a DynamoDB stream?",
                    kind_of(&other)
                )
                .into())
            }
        },
        other => {
            return Err(format!(
                "the event is not a DynamoDB stream event object but {}",
                kind_of(&other)
            )
            .into())
        }
    };
    Ok(records
        .into_iter()
        .map(|raw| read_record(raw, received_at))
        .collect())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_record(raw: Value, received_at: DateTime<Utc>) -> Classified {
    match serde_json::from_value::<EventRecord>(raw.clone()) {
        Ok(record) => classify(&to_core(record), received_at),
        Err(err) => {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
            let identity = StreamRecord {
                event_id: text(raw.get("eventID")).unwrap_or_default(),
                event_name: text(raw.get("eventName")).unwrap_or_default(),
                event_source_arn: text(raw.get("eventSourceARN")),
                sequence_number: text(raw.get("dynamodb").and_then(|d| d.get("SequenceNumber"))),
                ..StreamRecord::default()
            };
            classify_unreadable(&identity, err.to_string(), received_at)
        }
    }
}

/// The core's view of a Lambda stream record.
pub fn to_core(record: EventRecord) -> StreamRecord {
    let change = record.change;
    StreamRecord {
        event_id: record.event_id,
        event_name: record.event_name,
        event_source_arn: record.event_source_arn,
        sequence_number: change.sequence_number,
        // aws_lambda_events reads a missing time as the epoch.
        approximate_creation: Some(change.approximate_creation_date_time)
            .filter(|t| t.timestamp() > 0),
        user_identity: record.user_identity.map(|u| UserIdentity {
            kind: u.type_,
            principal_id: u.principal_id,
        }),
        keys: change.keys,
        old_image: change.old_image,
        new_image: change.new_image,
    }
}

/// The fields of the structured log line of one counted record: everything about the lock (path
/// and ID included, which never go into metric dimensions), for Logs Insights. `None` fields are
/// left out of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFields<'a> {
    pub event: &'static str,
    pub table: &'a str,
    pub sequence_number: &'a str,
    pub event_id: &'a str,
    pub change: Option<&'static str>,
    pub at: String,
    pub kind: Option<&'static str>,
    pub path: Option<&'a str>,
    pub lock_id: Option<&'a str>,
    pub who: Option<&'a str>,
    pub operation: Option<&'a str>,
    pub created: Option<String>,
    pub release: Option<&'static str>,
    pub hold_seconds: Option<u64>,
    pub removed_by: Option<&'a str>,
    pub previous_lock_id: Option<&'a str>,
    pub digest: Option<&'a str>,
    pub reason: Option<&'a str>,
}

pub fn log_fields(c: &Classified) -> LogFields<'_> {
    let lock = c.event.lock();
    let mut fields = LogFields {
        event: c.event.name(),
        table: &c.table,
        sequence_number: &c.record_id,
        event_id: &c.event_id,
        change: c.change.map(|ch| ch.as_str()),
        at: c.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        kind: c.event.kind().map(|k| k.as_str()),
        path: lock.map(|l| l.state_path.as_str()),
        lock_id: lock.map(|l| l.lock_id.as_str()),
        who: lock.and_then(|l| l.who.as_deref()),
        operation: lock.and_then(|l| l.operation.as_deref()),
        created: lock
            .and_then(|l| l.created.at())
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
        release: None,
        hold_seconds: None,
        removed_by: None,
        previous_lock_id: None,
        digest: None,
        reason: None,
    };
    match &c.event {
        LockEvent::Released { release, hold, .. } => {
            fields.release = Some(release.as_str());
            fields.hold_seconds = hold.map(|h| h.as_secs());
            fields.removed_by = c.removed_by.as_deref();
        }
        LockEvent::Modified {
            previous_lock_id, ..
        } => fields.previous_lock_id = previous_lock_id.as_deref(),
        LockEvent::StateWritten { digest } => {
            fields.path = Some(&digest.state_path);
            fields.digest = digest.digest.as_deref();
        }
        LockEvent::Unparseable { reason } | LockEvent::Ignored { reason } => {
            fields.reason = Some(reason)
        }
        LockEvent::Acquired { .. } => {}
    }
    fields
}

/// One JSON line per lock event (INFO), or per unparseable record (WARN, with the reason).
fn log_event(c: &Classified) {
    let f = log_fields(c);
    macro_rules! line {
        ($level:ident, $message:literal) => {
            tracing::$level!(
                event = f.event,
                table = f.table,
                kind = f.kind,
                path = f.path,
                lock_id = f.lock_id,
                who = f.who,
                operation = f.operation,
                created = f.created.as_deref(),
                release = f.release,
                hold_seconds = f.hold_seconds,
                removed_by = f.removed_by,
                previous_lock_id = f.previous_lock_id,
                digest = f.digest,
                reason = f.reason,
                change = f.change,
                at = f.at.as_str(),
                sequence_number = f.sequence_number,
                event_id = f.event_id,
                $message
            )
        };
    }
    if matches!(c.event, LockEvent::Unparseable { .. }) {
        line!(warn, "unparseable stream record")
    } else {
        line!(info, "lock event")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURE: &str = include_str!("../../../infra/fixtures/terraform/stream-records.json");

    #[test]
    fn reads_the_captured_terraform_event() {
        let payload: Value = serde_json::from_str(FIXTURE).unwrap();
        let records = read_records(payload, Utc::now()).unwrap();
        let names: Vec<&str> = records.iter().map(|c| c.event.name()).collect();
        assert_eq!(names, ["acquired", "state-written", "released", "acquired"]);
        assert_eq!(records[0].table, "terraform-locks");
        assert_eq!(records[2].record_id, "1100000000017454423011");
        // INSERT and REMOVE of one lock are one item; the digest is another.
        assert_eq!(item_key(&records[0]), item_key(&records[2]));
        assert_ne!(item_key(&records[0]), item_key(&records[1]));
    }

    #[test]
    fn a_record_that_is_not_a_stream_record_is_unparseable_not_fatal() {
        let payload = json!({"Records": [
            {"eventID": "x", "eventName": "INSERT",
             "eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/t/stream/l",
             "dynamodb": {"SequenceNumber": "7"}},
            "garbage"
        ]});
        let records = read_records(payload, Utc::now()).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].table, "t");
        assert_eq!(records[0].record_id, "7");
        assert!(matches!(records[0].event, LockEvent::Unparseable { .. }));
        assert!(matches!(records[1].event, LockEvent::Unparseable { .. }));
        assert!(read_records(json!({"Records": 5}), Utc::now()).is_err());
        assert!(read_records(json!([]), Utc::now()).is_err());
        assert!(read_records(json!({}), Utc::now()).unwrap().is_empty());
    }

    #[test]
    fn the_log_line_has_everything_about_the_lock() {
        let payload: Value = serde_json::from_str(FIXTURE).unwrap();
        let records = read_records(payload, Utc::now()).unwrap();
        let f = log_fields(&records[2]);
        assert_eq!(f.event, "released");
        assert_eq!(f.table, "terraform-locks");
        assert_eq!(f.kind, Some("terraform-dynamodb"));
        assert_eq!(f.path, Some("acme-tfstate/network/terraform.tfstate"));
        assert_eq!(f.lock_id, Some("44c394d3-feeb-2050-3e79-2ea2cab34f41"));
        assert_eq!(f.who, Some("root@vm"));
        assert_eq!(f.operation, Some("OperationTypeApply"));
        assert_eq!(f.hold_seconds, Some(0));
        assert_eq!(f.release, Some("normal"));
        assert_eq!(f.sequence_number, "1100000000017454423011");
        assert_eq!(f.change, Some("REMOVE"));
        let digest = log_fields(&records[1]);
        assert_eq!(digest.event, "state-written");
        assert_eq!(digest.digest, Some("f20289b063a531619078d68bf8975bb8"));
        assert_eq!(digest.lock_id, None);
    }
}
