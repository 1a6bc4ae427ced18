//! S3 events delivered by Amazon EventBridge, read into the lock lifecycle model
//! ([`crate::lifecycle`]): the second event source beside the lock tables' DynamoDB streams, for
//! Terraform/OpenTofu's S3-native lock files (`use_lockfile = true`).
//!
//! The shape is AWS's documented one ("EventBridge event message structure", Amazon S3 User Guide,
//! docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html; the event types in "Using
//! EventBridge", .../userguide/EventBridge.html), and what ministack delivers matches it
//! (`shared/reference/local-aws.md`):
//!
//! ```json
//! {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
//!  "source": "aws.s3", "account": "111122223333", "time": "2021-11-12T00:00:00Z", "region": "ca-central-1",
//!  "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
//!  "detail": {"version": "0", "bucket": {"name": "amzn-s3-demo-bucket1"},
//!             "object": {"key": "example-key", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
//!                        "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "617f08299329d189"},
//!             "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
//!             "source-ip-address": "1.2.3.4", "reason": "PutObject"}}
//! ```
//!
//! `Object Deleted` carries `reason` `DeleteObject` or `Lifecycle Expiration` and `deletion-type`
//! `Permanently Deleted` or `Delete Marker Created` (a versioned bucket), and no `size`/`etag`.
//!
//! What an object is ([`object_role`]): `<key>.tflock` is the lock file of the state `<key>`
//! (every workspace alike: `env:/<workspace>/<key>.tflock` locks `env:/<workspace>/<key>`);
//! any other key is a state object. Which keys reach the function at all is the EventBridge
//! rule's filter (`infra/sam/template.in.yaml`), not decided here.
//!
//! Ordering: EventBridge delivers at least once and in no particular order. S3's `sequencer` orders
//! the events of one key: "compare the strings after left-padding the shorter one with zeros"
//! (Amazon S3 User Guide, "Event message structure", .../userguide/notification-content-structure.html).
//! [`Sequencer`] stores the padded form, so sequencers order like strings (and in the ledger).
//! Which acquisition a release ends is decided from the ledger's [`LockFileHistory`] of the key
//! (`lockreaper_aws::ledger`), never from arrival order.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::lifecycle::{hold_time, Lifecycle, LifecycleEvent, Release};
use crate::model::LockKind;
use crate::path::StatePath;

/// `source` of every S3 event.
pub const SOURCE: &str = "aws.s3";
/// `detail-type` of a created object (PutObject, POST Object, CopyObject, CompleteMultipartUpload).
pub const OBJECT_CREATED: &str = "Object Created";
/// `detail-type` of a deleted object (DeleteObject, Lifecycle expiration).
pub const OBJECT_DELETED: &str = "Object Deleted";
/// `detail.reason` of a delete done by an S3 Lifecycle expiration rule.
pub const LIFECYCLE_EXPIRATION: &str = "Lifecycle Expiration";
/// The width sequencers are left-padded to. S3's are 16–18 hex digits; anything longer than this
/// is not a sequencer S3 wrote.
pub const SEQUENCER_WIDTH: usize = 64;
/// S3's object key limit, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest event `id`, bucket name, version ID or other identifier accepted (S3's bucket names are at
/// most 63 characters, event IDs are UUIDs, version IDs 32 characters).
const MAX_ID_BYTES: usize = 1024;

/// An S3 event that is not one lockreaper can read; says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an S3 Object Created/Object Deleted event from EventBridge: `{field}` {problem}")]
pub struct S3EventError {
    pub field: &'static str,
    pub problem: String,
}

fn error(field: &'static str, problem: impl Into<String>) -> S3EventError {
    S3EventError {
        field,
        problem: problem.into(),
    }
}

/// An S3 `sequencer`, upper-case hex left-padded with zeros to [`SEQUENCER_WIDTH`]: two of them
/// compare (as values, and as strings in the ledger) in S3's event order for one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Sequencer(String);

impl Sequencer {
    pub fn parse(text: &str) -> Result<Sequencer, S3EventError> {
        if text.is_empty() {
            return Err(error("detail.object.sequencer", "is empty"));
        }
        if text.len() > SEQUENCER_WIDTH {
            return Err(error(
                "detail.object.sequencer",
                format!(
                    "is {} characters long; S3 sequencers are hex strings of at most {SEQUENCER_WIDTH}",
                    text.len()
                ),
            ));
        }
        if let Some(bad) = text.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(error(
                "detail.object.sequencer",
                format!("{text:?} contains {bad:?}; expected a hex string"),
            ));
        }
        Ok(Sequencer(format!(
            "{:0>width$}",
            text.to_ascii_uppercase(),
            width = SEQUENCER_WIDTH
        )))
    }

    /// The padded form, for the ledger (fixed width: string order is event order).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads back a padded form the ledger stored.
    pub fn from_stored(text: &str) -> Option<Sequencer> {
        (text.len() == SEQUENCER_WIDTH)
            .then(|| Sequencer::parse(text).ok())
            .flatten()
    }

    /// Without the padding, as S3 wrote it (upper-cased), for logs.
    pub fn short(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        if trimmed.is_empty() {
            "0"
        } else {
            trimmed
        }
    }
}

/// What happened to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectChange {
    Created,
    Deleted,
}

impl ObjectChange {
    /// The event's `detail-type`.
    pub fn detail_type(self) -> &'static str {
        match self {
            ObjectChange::Created => OBJECT_CREATED,
            ObjectChange::Deleted => OBJECT_DELETED,
        }
    }

    /// `created` / `deleted`: the ledger's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectChange::Created => "created",
            ObjectChange::Deleted => "deleted",
        }
    }
}

/// One S3 object event, as much of it as lock-metrics reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3ObjectEvent {
    /// The event's `id` (a UUID; the same on EventBridge's retries of one event).
    pub event_id: String,
    /// The event's `time`.
    pub time: DateTime<Utc>,
    pub change: ObjectChange,
    /// `detail.bucket.name`.
    pub bucket: String,
    /// `detail.object.key`.
    pub key: String,
    /// `detail.object.sequencer`.
    pub sequencer: Sequencer,
    /// `detail.object.version-id` (versioned buckets).
    pub version_id: Option<String>,
    /// `detail.object.etag` (creates only).
    pub etag: Option<String>,
    /// `detail.reason`: `PutObject`, `CopyObject`, …, `DeleteObject`, `Lifecycle Expiration`.
    pub reason: Option<String>,
    /// `detail.deletion-type`: `Permanently Deleted` or `Delete Marker Created`.
    pub deletion_type: Option<String>,
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

fn required_str<'a>(
    v: Option<&'a Value>,
    field: &'static str,
    max: usize,
) -> Result<&'a str, S3EventError> {
    match v {
        None | Some(Value::Null) => Err(error(field, "is missing")),
        Some(Value::String(s)) if s.is_empty() => Err(error(field, "is empty")),
        Some(Value::String(s)) if s.len() > max => Err(error(
            field,
            format!("is {} bytes long; at most {max} expected", s.len()),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(error(
            field,
            format!("is {} instead of a string", kind_of(other)),
        )),
    }
}

/// An optional string field; empty counts as absent (a delete's `etag` is `""` in what ministack
/// delivers).
fn optional_str(v: Option<&Value>, field: &'static str) -> Result<Option<String>, S3EventError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(_) => required_str(v, field, MAX_ID_BYTES).map(|s| Some(s.to_owned())),
    }
}

/// Reads one EventBridge event. Every field lockreaper relies on is checked; a specific error
/// names the first one that is wrong.
pub fn parse_event(event: &Value) -> Result<S3ObjectEvent, S3EventError> {
    if !event.is_object() {
        return Err(error(
            "(event)",
            format!("is {} instead of an object", kind_of(event)),
        ));
    }
    let source = required_str(event.get("source"), "source", MAX_ID_BYTES)?;
    if source != SOURCE {
        return Err(error("source", format!("is {source:?}, not {SOURCE:?}")));
    }
    let detail_type = required_str(event.get("detail-type"), "detail-type", MAX_ID_BYTES)?;
    let change = match detail_type {
        OBJECT_CREATED => ObjectChange::Created,
        OBJECT_DELETED => ObjectChange::Deleted,
        other => {
            return Err(error(
                "detail-type",
                format!("is {other:?}, not {OBJECT_CREATED:?} or {OBJECT_DELETED:?}"),
            ))
        }
    };
    let event_id = required_str(event.get("id"), "id", MAX_ID_BYTES)?.to_owned();
    let time = match event.get("time") {
        Some(Value::String(t)) => DateTime::parse_from_rfc3339(t)
            .map_err(|e| error("time", format!("{t:?} is not an ISO 8601 time: {e}")))?
            .with_timezone(&Utc),
        None | Some(Value::Null) => return Err(error("time", "is missing")),
        Some(other) => {
            return Err(error(
                "time",
                format!("is {} instead of an ISO 8601 string", kind_of(other)),
            ))
        }
    };
    let detail = match event.get("detail") {
        Some(d @ Value::Object(_)) => d,
        None | Some(Value::Null) => return Err(error("detail", "is missing")),
        Some(other) => {
            return Err(error(
                "detail",
                format!("is {} instead of an object", kind_of(other)),
            ))
        }
    };
    let bucket = required_str(
        detail.get("bucket").and_then(|b| b.get("name")),
        "detail.bucket.name",
        MAX_ID_BYTES,
    )?;
    if bucket.contains('/') {
        return Err(error(
            "detail.bucket.name",
            format!("{bucket:?} contains `/`, which no bucket name can"),
        ));
    }
    let object = detail.get("object");
    let key = required_str(
        object.and_then(|o| o.get("key")),
        "detail.object.key",
        MAX_KEY_BYTES,
    )?;
    let sequencer = Sequencer::parse(required_str(
        object.and_then(|o| o.get("sequencer")),
        "detail.object.sequencer",
        SEQUENCER_WIDTH,
    )?)?;
    Ok(S3ObjectEvent {
        event_id,
        time,
        change,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        sequencer,
        version_id: optional_str(
            object.and_then(|o| o.get("version-id")),
            "detail.object.version-id",
        )?,
        etag: optional_str(object.and_then(|o| o.get("etag")), "detail.object.etag")?,
        reason: optional_str(detail.get("reason"), "detail.reason")?,
        deletion_type: optional_str(detail.get("deletion-type"), "detail.deletion-type")?,
    })
}

/// Whatever identifies an event that could not be read, for its log line and metric: its `id`
/// and bucket, when they are strings.
pub fn unreadable_identity(event: &Value) -> (Option<String>, Option<String>) {
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= MAX_ID_BYTES && !s.contains('/'))
            .map(str::to_owned)
    };
    (
        text(event.get("id")),
        text(
            event
                .get("detail")
                .and_then(|d| d.get("bucket"))
                .and_then(|b| b.get("name")),
        ),
    )
}

/// What an object in a state bucket is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum ObjectRole {
    /// `<key>.tflock`: the lock file of `state`.
    LockFile { state: StatePath },
    /// Any other key: a state object.
    State { state: StatePath },
}

impl ObjectRole {
    pub fn state(&self) -> &StatePath {
        match self {
            ObjectRole::LockFile { state } | ObjectRole::State { state } => state,
        }
    }
}

/// What the object `bucket`/`key` is (see the module documentation).
pub fn object_role(bucket: &str, key: &str) -> ObjectRole {
    match StatePath::from_lock_file(bucket, key) {
        Some(state) => ObjectRole::LockFile { state },
        None => ObjectRole::State {
            state: StatePath {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            },
        },
    }
}

/// What the ledger knows of one lock file's events: the latest acquisition (`Object Created`) and
/// the latest release (`Object Deleted`) recorded, by sequencer, each with its event time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LockFileHistory {
    pub created: Option<(Sequencer, DateTime<Utc>)>,
    pub deleted: Option<(Sequencer, DateTime<Utc>)>,
}

impl LockFileHistory {
    /// The history after recording one more event: the latest (highest-sequencer) acquisition and
    /// release are kept, whatever order they arrive in, and recording an event twice changes
    /// nothing. The ledger's conditional writes (`Ledger::record_lock_file_event`) do exactly this.
    pub fn with_event(
        mut self,
        change: ObjectChange,
        sequencer: &Sequencer,
        at: DateTime<Utc>,
    ) -> Self {
        let slot = match change {
            ObjectChange::Created => &mut self.created,
            ObjectChange::Deleted => &mut self.deleted,
        };
        if slot
            .as_ref()
            .is_none_or(|(recorded, _)| recorded < sequencer)
        {
            *slot = Some((sequencer.clone(), at));
        }
        self
    }

    /// Whether the events say the lock file exists now: an acquisition later than every release.
    /// A release that arrived before its acquisition leaves this `false`.
    pub fn is_held(&self) -> bool {
        match (&self.created, &self.deleted) {
            (Some((created, _)), Some((deleted, _))) => created > deleted,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// An S3 event read into the lifecycle model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct S3Classified {
    pub event: S3ObjectEvent,
    pub role: ObjectRole,
    pub lifecycle: LifecycleEvent,
    /// A later event of the same lock file is already recorded: this one arrived late. Its
    /// acquisition is counted but the lock is not live; its release gets no hold time unless its
    /// acquisition is the one recorded.
    pub late: bool,
}

impl S3Classified {
    /// The state path (`<bucket>/<key>`) the event is about: where its state write is recorded
    /// and what the log line names.
    pub fn state_path(&self) -> String {
        self.role.state().lock_path()
    }
}

/// Maps an event into the lifecycle model. For a lock file, `history` is the ledger's record of
/// the key *after* this event was recorded in it, and `forced` whether lockreaper force-unlocked
/// the lock it deletes; both are ignored for state objects.
pub fn classify(event: S3ObjectEvent, history: &LockFileHistory, forced: bool) -> S3Classified {
    let role = object_role(&event.bucket, &event.key);
    let seq = &event.sequencer;
    let newer = |recorded: &Option<(Sequencer, DateTime<Utc>)>| {
        recorded.as_ref().is_some_and(|(s, _)| s > seq)
    };
    let (kind, lifecycle, late) = match (&role, event.change) {
        (ObjectRole::LockFile { .. }, ObjectChange::Created) => (
            LockKind::TerraformS3LockFile,
            Lifecycle::Acquired,
            newer(&history.created) || newer(&history.deleted),
        ),
        (ObjectRole::LockFile { .. }, ObjectChange::Deleted) => {
            let release = if forced {
                Release::Forced
            } else if event.reason.as_deref() == Some(LIFECYCLE_EXPIRATION) {
                Release::Expired
            } else {
                Release::Normal
            };
            // The acquisition this release ends is the latest one recorded before it; one
            // recorded after it (this release arrived late) or none at all leaves the hold unknown.
            let hold = match &history.created {
                Some((created, at)) if created < seq => Some(hold_time(*at, event.time)),
                _ => None,
            };
            (
                LockKind::TerraformS3LockFile,
                Lifecycle::Released { release, hold },
                newer(&history.created) || newer(&history.deleted),
            )
        }
        (ObjectRole::State { .. }, ObjectChange::Created) => (
            LockKind::TerraformS3LockFile,
            Lifecycle::StateWritten,
            false,
        ),
        (ObjectRole::State { .. }, ObjectChange::Deleted) => {
            (LockKind::TerraformS3LockFile, Lifecycle::Uncounted, false)
        }
    };
    S3Classified {
        lifecycle: LifecycleEvent {
            container: event.bucket.clone(),
            kind: Some(kind),
            at: event.time,
            lifecycle,
        },
        role,
        late,
        event,
    }
}

/// An event that could not be read: counted as `UnparseableRecords` under its bucket (or
/// `(unknown)`), at `received_at`.
pub fn unparseable(bucket: Option<&str>, received_at: DateTime<Utc>) -> LifecycleEvent {
    LifecycleEvent {
        container: bucket.unwrap_or(crate::stream::UNKNOWN_TABLE).to_owned(),
        kind: None,
        at: received_at,
        lifecycle: Lifecycle::Unparseable,
    }
}

#[cfg(test)]
#[path = "s3_events_tests.rs"]
mod tests;
