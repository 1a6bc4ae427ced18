//! DynamoDB Streams records of a lock table, classified into lock lifecycle events.
//!
//! The function fills a [`StreamRecord`] from each `aws_lambda_events::dynamodb::EventRecord` (this
//! crate does not depend on the Lambda event types) and [`classify`] turns it into a [`Classified`]
//! record: one [`LockEvent`] plus the table, record identity and time that metrics and logs need.
//!
//! What the tools write (see `shared/reference/lock-formats.md` §5 and the captured
//! `infra/fixtures/terraform/stream-records.json`):
//!
//! | record | event |
//! | --- | --- |
//! | INSERT of a lock item (Terraform `{LockID, Info}`, Gyro `{LockKey, GyroId}`) | [`LockEvent::Acquired`] |
//! | MODIFY of a lock item (Gyro adds `GyroLockInfo` after taking the lock) | [`LockEvent::Modified`] |
//! | REMOVE of a lock item | [`LockEvent::Released`], with the hold time when the lock says when it was taken |
//! | INSERT/MODIFY of a Terraform digest item (`<bucket>/<key>-md5`, `Digest`) | [`LockEvent::StateWritten`] |
//! | REMOVE of a digest item, a digest item without `Digest` | [`LockEvent::Ignored`] |
//! | anything else: not a lock table, malformed `Info`, wrong types, missing images | [`LockEvent::Unparseable`] |
//!
//! Times: `ApproximateCreationDateTime` is rounded *down* to the second by DynamoDB, so a hold time
//! is only ever known to about a second; it is rounded to whole seconds and never negative.
//! Gyro locks carry no time at all: the time of their INSERT record is their first-seen time,
//! which the caller keeps (the ledger) and hands back with [`Classified::set_first_seen`] when the
//! REMOVE comes, because stream records live only 24 hours.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_dynamo::Item;

pub use crate::lifecycle::{hold_time, Release};
use crate::lifecycle::{Lifecycle, LifecycleEvent};
use crate::model::{DigestRecord, LockCreated, LockKind, LockRecord, TableEntry};
use crate::parse::parse_table_item;

/// `userIdentity.principalId` of the records DynamoDB's Time to Live process writes when it deletes an
/// expired item (with `userIdentity.type` = `Service`).
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// The dimension value used when a record does not say which table it came from.
pub const UNKNOWN_TABLE: &str = "(unknown)";

/// Who made a change, when the stream says (only DynamoDB's TTL process is ever named).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserIdentity {
    /// `Service` for TTL deletions.
    pub kind: String,
    /// `dynamodb.amazonaws.com` for TTL deletions.
    pub principal_id: String,
}

impl UserIdentity {
    /// Whether this is DynamoDB's TTL process deleting an expired item.
    pub fn is_ttl(&self) -> bool {
        self.kind.eq_ignore_ascii_case("service") && self.principal_id == TTL_PRINCIPAL
    }
}

/// One DynamoDB Streams record, as much of it as lock-metrics reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamRecord {
    /// `eventID`.
    pub event_id: String,
    /// `eventName`: `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: String,
    /// `eventSourceARN`: `arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>`.
    pub event_source_arn: Option<String>,
    /// `dynamodb.SequenceNumber`: the identity Lambda's partial batch responses use.
    pub sequence_number: Option<String>,
    /// `dynamodb.ApproximateCreationDateTime` (whole seconds); `None` when the record has none.
    pub approximate_creation: Option<DateTime<Utc>>,
    /// `userIdentity`, present for TTL deletions.
    pub user_identity: Option<UserIdentity>,
    /// `dynamodb.Keys`.
    pub keys: Item,
    /// `dynamodb.OldImage` (empty when absent).
    pub old_image: Item,
    /// `dynamodb.NewImage` (empty when absent).
    pub new_image: Item,
}

impl StreamRecord {
    /// The lock table, from `eventSourceARN`.
    pub fn table(&self) -> Option<&str> {
        self.event_source_arn
            .as_deref()
            .and_then(table_from_stream_arn)
    }

    /// The identity of this record: its sequence number, or (never seen in practice) `event:<eventID>`.
    pub fn record_id(&self) -> String {
        match self.sequence_number.as_deref().filter(|s| !s.is_empty()) {
            Some(seq) => seq.to_owned(),
            None => format!("event:{}", self.event_id),
        }
    }
}

/// The table name in a DynamoDB stream ARN: `arn:<partition>:dynamodb:<region>:<account>:table/<name>/stream/<label>`.
/// (The label is a timestamp and contains colons, so the ARN is split into six fields at most.)
pub fn table_from_stream_arn(arn: &str) -> Option<&str> {
    let mut fields = arn.splitn(6, ':');
    let (prefix, _partition, service, _region, _account, resource) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if prefix != "arn" || service != "dynamodb" {
        return None;
    }
    let (name, _label) = resource.strip_prefix("table/")?.split_once("/stream/")?;
    (!name.is_empty()).then_some(name)
}

/// The change a record reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    Insert,
    Modify,
    Remove,
}

impl Change {
    pub fn parse(event_name: &str) -> Option<Change> {
        match event_name {
            "INSERT" => Some(Change::Insert),
            "MODIFY" => Some(Change::Modify),
            "REMOVE" => Some(Change::Remove),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Change::Insert => "INSERT",
            Change::Modify => "MODIFY",
            Change::Remove => "REMOVE",
        }
    }
}

/// What one stream record means for the locks of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[allow(clippy::large_enum_variant)] // almost every record is a lock event
pub enum LockEvent {
    /// A lock was taken. Gyro locks get `created = FirstSeen(<record time>)`.
    Acquired { lock: LockRecord },
    /// A lock was removed after being held for `hold` (`None` while unknown: a Gyro lock whose
    /// first-seen time the caller has not supplied, or never had).
    Released {
        lock: LockRecord,
        release: Release,
        hold: Option<Duration>,
    },
    /// Terraform wrote the state of `digest.state_path`: its holder is alive.
    StateWritten { digest: DigestRecord },
    /// A lock item changed in place: Gyro adding `GyroLockInfo` to the lock it just took.
    /// `previous_lock_id` is the lock ID of the old image, when there was one.
    Modified {
        lock: LockRecord,
        previous_lock_id: Option<String>,
    },
    /// Nothing to count (e.g. a digest item removed with its workspace).
    Ignored { reason: String },
    /// The record could not be understood; counted as `UnparseableRecords` and logged.
    Unparseable { reason: String },
}

impl LockEvent {
    /// A short name for logs: `acquired`, `released`, `state-written`, `modified`, `ignored`, `unparseable`.
    pub fn name(&self) -> &'static str {
        match self {
            LockEvent::Acquired { .. } => "acquired",
            LockEvent::Released { .. } => "released",
            LockEvent::StateWritten { .. } => "state-written",
            LockEvent::Modified { .. } => "modified",
            LockEvent::Ignored { .. } => "ignored",
            LockEvent::Unparseable { .. } => "unparseable",
        }
    }

    /// The lock this event is about, if any.
    pub fn lock(&self) -> Option<&LockRecord> {
        match self {
            LockEvent::Acquired { lock }
            | LockEvent::Released { lock, .. }
            | LockEvent::Modified { lock, .. } => Some(lock),
            _ => None,
        }
    }

    /// The tool kind, for the `LockKind` dimension (digest items are Terraform's).
    pub fn kind(&self) -> Option<LockKind> {
        match self {
            LockEvent::StateWritten { .. } => Some(LockKind::TerraformDynamoDb),
            other => other.lock().map(|l| l.kind),
        }
    }
}

/// A classified record: the event and what identifies the record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classified {
    /// The lock table, or [`UNKNOWN_TABLE`] when the record does not say.
    pub table: String,
    /// The record's identity for claims and `batchItemFailures` ([`StreamRecord::record_id`]).
    pub record_id: String,
    /// `eventID`.
    pub event_id: String,
    /// The change, when the event name was one of the three known ones.
    pub change: Option<Change>,
    /// When the change happened (the record's `ApproximateCreationDateTime`, else `received_at`).
    pub at: DateTime<Utc>,
    /// Who deleted the item, when the record says (TTL).
    pub removed_by: Option<String>,
    pub event: LockEvent,
}

impl Classified {
    /// Whether this record contributes to metrics (everything but [`LockEvent::Ignored`]), and so
    /// must be claimed once in the ledger before it is counted.
    pub fn counts(&self) -> bool {
        !matches!(self.event, LockEvent::Ignored { .. })
    }

    /// A Gyro lock whose first-seen time should be remembered now (INSERT or MODIFY): the lock and
    /// the time. The earliest time ever recorded for one lock ID wins.
    pub fn first_seen_to_record(&self) -> Option<(&LockRecord, DateTime<Utc>)> {
        match &self.event {
            LockEvent::Acquired { lock } | LockEvent::Modified { lock, .. } => match lock.created {
                LockCreated::FirstSeen(at) => Some((lock, at)),
                _ => None,
            },
            _ => None,
        }
    }

    /// A released lock whose hold time depends on a remembered first-seen time (Gyro).
    pub fn needs_first_seen(&self) -> Option<&LockRecord> {
        match &self.event {
            LockEvent::Released {
                lock, hold: None, ..
            } if lock.created == LockCreated::Unknown => Some(lock),
            _ => None,
        }
    }

    /// Supplies the remembered first-seen time of a released lock; computes its hold time.
    pub fn set_first_seen(&mut self, first_seen: DateTime<Utc>) {
        let removed_at = self.at;
        if let LockEvent::Released { lock, hold, .. } = &mut self.event {
            if lock.created == LockCreated::Unknown {
                lock.created = LockCreated::FirstSeen(first_seen);
                *hold = Some(hold_time(first_seen, removed_at));
            }
        }
    }

    /// The ledger says lockreaper force-unlocked this lock: marks the release as forced.
    pub fn mark_forced(&mut self) {
        if let LockEvent::Released { release, .. } = &mut self.event {
            *release = Release::Forced;
        }
    }

    /// This record in the source-independent lifecycle model that metrics count
    /// ([`crate::lifecycle`]); S3 events map into the same model.
    pub fn lifecycle(&self) -> LifecycleEvent {
        let lifecycle = match &self.event {
            LockEvent::Acquired { .. } => Lifecycle::Acquired,
            LockEvent::Released { release, hold, .. } => Lifecycle::Released {
                release: *release,
                hold: *hold,
            },
            LockEvent::StateWritten { .. } => Lifecycle::StateWritten,
            LockEvent::Unparseable { .. } => Lifecycle::Unparseable,
            LockEvent::Modified { .. } | LockEvent::Ignored { .. } => Lifecycle::Uncounted,
        };
        LifecycleEvent {
            container: self.table.clone(),
            kind: self.event.kind(),
            at: self.at,
            lifecycle,
        }
    }

    /// The released lock, when this is a release (for the forced-marker look-up).
    pub fn released_lock(&self) -> Option<&LockRecord> {
        match &self.event {
            LockEvent::Released { lock, .. } => Some(lock),
            _ => None,
        }
    }
}

/// Classifies one record. `received_at` stands in for a missing `ApproximateCreationDateTime`.
pub fn classify(record: &StreamRecord, received_at: DateTime<Utc>) -> Classified {
    let table = record.table().map(str::to_owned);
    let change = Change::parse(&record.event_name);
    let at = record.approximate_creation.unwrap_or(received_at);
    let removed_by = match (change, &record.user_identity) {
        (Some(Change::Remove), Some(identity)) if !identity.principal_id.is_empty() => {
            Some(identity.principal_id.clone())
        }
        _ => None,
    };
    let event = match (&table, change) {
        (None, _) => LockEvent::Unparseable {
            reason: match &record.event_source_arn {
                Some(arn) => format!(
                    "eventSourceARN {arn:?} is not a DynamoDB stream ARN (arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>)"
                ),
                None => "record has no eventSourceARN, so its table is unknown".to_owned(),
            },
        },
        (Some(_), None) => LockEvent::Unparseable {
            reason: format!(
                "eventName {:?} is not INSERT, MODIFY or REMOVE",
                record.event_name
            ),
        },
        (Some(table), Some(change)) => classify_change(table, change, record, at),
    };
    Classified {
        table: table.unwrap_or_else(|| UNKNOWN_TABLE.to_owned()),
        record_id: record.record_id(),
        event_id: record.event_id.clone(),
        change,
        at,
        removed_by,
        event,
    }
}

/// A record that is not even a DynamoDB stream record (it did not deserialize): unparseable, with
/// whatever identity the caller could still read from it (`record.event_source_arn`,
/// `record.sequence_number`, `record.event_id`).
pub fn classify_unreadable(
    record: &StreamRecord,
    reason: impl Into<String>,
    received_at: DateTime<Utc>,
) -> Classified {
    Classified {
        table: record.table().unwrap_or(UNKNOWN_TABLE).to_owned(),
        record_id: record.record_id(),
        event_id: record.event_id.clone(),
        change: Change::parse(&record.event_name),
        at: record.approximate_creation.unwrap_or(received_at),
        removed_by: None,
        event: LockEvent::Unparseable {
            reason: format!("not a DynamoDB stream record: {}", reason.into()),
        },
    }
}

fn classify_change(
    table: &str,
    change: Change,
    record: &StreamRecord,
    at: DateTime<Utc>,
) -> LockEvent {
    let (image, needed) = match change {
        Change::Insert | Change::Modify => (&record.new_image, "NewImage"),
        Change::Remove => (&record.old_image, "OldImage"),
    };
    if image.is_empty() {
        return LockEvent::Unparseable {
            reason: format!(
                "{} record has no {needed}: the table's stream must be NEW_AND_OLD_IMAGES",
                change.as_str()
            ),
        };
    }
    let entry = match parse_table_item(table, image) {
        Ok(entry) => entry,
        Err(err) => {
            return LockEvent::Unparseable {
                reason: err.to_string(),
            }
        }
    };
    match (change, entry) {
        (Change::Insert, TableEntry::Lock(lock)) => LockEvent::Acquired {
            lock: first_seen_now(lock, at),
        },
        (Change::Modify, TableEntry::Lock(lock)) => {
            let previous_lock_id = match parse_table_item(table, &record.old_image) {
                Ok(TableEntry::Lock(old)) => Some(old.lock_id),
                _ => None,
            };
            LockEvent::Modified {
                lock: first_seen_now(lock, at),
                previous_lock_id,
            }
        }
        (Change::Remove, TableEntry::Lock(lock)) => {
            let expired = record
                .user_identity
                .as_ref()
                .is_some_and(UserIdentity::is_ttl);
            let hold = match lock.created {
                LockCreated::Recorded(created) | LockCreated::FirstSeen(created) => {
                    Some(hold_time(created, at))
                }
                LockCreated::Unknown => None,
            };
            LockEvent::Released {
                lock,
                release: if expired {
                    Release::Expired
                } else {
                    Release::Normal
                },
                hold,
            }
        }
        (Change::Insert | Change::Modify, TableEntry::Digest(digest)) => {
            if digest.digest.is_some() {
                LockEvent::StateWritten { digest }
            } else {
                LockEvent::Ignored {
                    reason: format!(
                        "digest item {:?} has no Digest (written by Terragrunt's backend migrate)",
                        digest.item_key
                    ),
                }
            }
        }
        (Change::Remove, TableEntry::Digest(digest)) => LockEvent::Ignored {
            reason: format!(
                "digest item {:?} removed (its workspace was deleted)",
                digest.item_key
            ),
        },
    }
}

/// A lock without a recorded time (Gyro) was first seen at this record's time.
fn first_seen_now(mut lock: LockRecord, at: DateTime<Utc>) -> LockRecord {
    if lock.created == LockCreated::Unknown {
        lock.created = LockCreated::FirstSeen(at);
    }
    lock
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
