//! The ledger's schema, in one place: lockreaper's own DynamoDB table (what the functions remember
//! between runs), every item kind's keys, how long each kind lives, and the time format. The
//! modules that read and write the items (`ledger.rs`, `proposals.rs`, `alert_state.rs`,
//! `unlock.rs`, `slack_threads.rs`) build every key and every `expires_at` from here, never by hand.
//!
//! One table, partition key `pk` (S), sort key `sk` (S), Time to Live on `expires_at` (N, epoch
//! seconds). Times are RFC 3339 UTC strings with milliseconds and a `Z`
//! (`2026-11-26T00:03:30.000Z`, [`format_time`]): one fixed width, so strings order like the times
//! they name, which the conditional writes rely on.
//!
//! | `pk` | `sk` | attributes | written by | expires |
//! | --- | --- | --- | --- | --- |
//! | `stream#<lock table>` ([`stream_pk`]) | `<SequenceNumber>` | `claimed_at`, `claim_token` ([`CLAIM_TOKEN`]) | lock-metrics: a stream record already counted (idempotency for retried batches) | [`CLAIM_TTL`]: 2 days |
//! | `stream#s3/<bucket>/<key>` ([`s3_event_pk`]) | `<created\|deleted>#<sequencer>` ([`s3_event_sk`]; sequencer left-padded) | `claimed_at`, `claim_token`, `event_id` | lock-metrics: an S3 event already counted. Keyed by the object and S3's sequencer, so EventBridge's retries of one event *and* S3's duplicate events of one operation are counted once | [`CLAIM_TTL`]: 2 days |
//! | `state#<state path>` ([`state_pk`]) | `last-write` ([`LAST_WRITE_SK`]) | `written_at`, `digest` | lock-metrics, from a digest item INSERT/MODIFY or an S3 `Object Created` event of the state object (no `digest`); only ever moves forward. The reaper reads it as liveness evidence | never |
//! | `lock#<LockLocation::ledger_key()>` ([`lock_pk`]) | `seen#<lock id>` ([`seen_sk`]) | `first_seen` | lock-metrics on a Gyro INSERT/MODIFY, the reaper on first sight; the earliest time wins | [`FIRST_SEEN_TTL`]: 30 days |
//! | `lock#s3/<bucket>/<lock file key>` | `s3-events#created`, `s3-events#deleted` ([`lock_file_events_sk`]) | `sequencer` (left-padded), `at`, `event_id` | lock-metrics, from the lock file's S3 events: the latest acquisition and the latest release by sequencer (each only ever moves forward), whatever order the events arrive in | [`FIRST_SEEN_TTL`]: 30 days after the last event |
//! | `lock#<ledger key>` | `forced#<lock id>` ([`forced_sk`]) | `forced_at`, `by`, `audit_id` (when written by an unlock) | the `Unlocker` (force-unlock, and the reaper when auto-expiring), *before* it deletes the lock; lock-metrics reads it to count the REMOVE as a forced release | [`FORCED_MARKER_TTL`]: 2 days |
//! | `lock#<ledger key>` | `snooze` ([`SNOOZE_SK`]) | see `proposals.rs` | force-unlock, from a snooze command; the reaper reads it | [`SNOOZE_RETENTION`]: the snooze + 1 day |
//! | `alerts#<table or bucket>` ([`alerts_pk`]) | `<ledger key>` | see `alert_state.rs` | the reaper: what it last reported for a lock | [`ALERT_STATE_TTL`]: 30 days after the last message |
//! | `unparseable` ([`UNPARSEABLE_PK`]) | `<location>` | `reported_at` | the reaper: an unparseable lock already reported | [`UNPARSEABLE_TTL`]: 30 days |
//! | `proposal#<proposal id>` ([`proposal_pk`]) | `proposal` ([`PROPOSAL_SK`]) | see `proposals.rs` | the reaper (new, withdrawn) and force-unlock (claimed, completed, denied, withdrawn) | [`PROPOSAL_RETENTION`]: the proposal's expiry + 7 days |
//! | `slack#thread#<thread key>` ([`slack_thread_pk`]) | `thread` ([`SLACK_THREAD_SK`]) | `channel`, `ts`, `open_offer` | slack-notifier: where a lock's Slack thread starts (the first message's `ts`), and the last offer posted in it | [`SLACK_THREAD_TTL`]: 30 days after the thread started |
//! | `slack#offer#<token digest>` ([`slack_offer_pk`]) | `offer` ([`SLACK_OFFER_SK`]) | `channel`, `ts`, `text`, `blocks`, `closed_at` | slack-notifier: where an offer with buttons was posted, keyed by a digest of its token (`messages::slack::offer_key`), so the result can replace its buttons | [`SLACK_OFFER_RETENTION`]: the approval's expiry + 7 days |
//! | `slack#delivery#<SNS MessageId>` ([`slack_delivery_pk`]) | `posted` ([`SLACK_DELIVERY_SK`]) | `ts` | slack-notifier: an SNS message already posted (idempotency for retried deliveries) | [`SLACK_DELIVERY_TTL`]: 2 days |
//! | `audit#<state path>` ([`audit_pk`]) | `<time>#<audit id>` ([`audit_sk`]) | `record`, `lock_id` | the `Unlocker` (force-unlock, and the reaper when auto-expiring), before it deletes; never updated or deleted by lockreaper | [`AUDIT_TTL`]: 366 days |
//!
//! Each function's IAM role may write only the partition keys of its rows here (`template.yaml`,
//! `dynamodb:LeadingKeys`; checked against the modules that write them by
//! `infra/sam/test_template.py`, which reads the key builders below).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lockreaper_core::LockLocation;

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// Time to Live attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";

/// Sort key of the last state write of a state path.
pub const LAST_WRITE_SK: &str = "last-write";
/// Sort key of a proposal item.
pub const PROPOSAL_SK: &str = "proposal";
/// Sort key of a lock's snooze item.
pub const SNOOZE_SK: &str = "snooze";
/// Sort key of a Slack thread item.
pub const SLACK_THREAD_SK: &str = "thread";
/// Sort key of a Slack offer item.
pub const SLACK_OFFER_SK: &str = "offer";
/// Sort key of a Slack delivery item.
pub const SLACK_DELIVERY_SK: &str = "posted";
/// Partition key of the unparseable locks already reported (sort key: the location).
pub const UNPARSEABLE_PK: &str = "unparseable";

/// How long a stream record claim is kept: DynamoDB stream records live 24 hours, so a claim of 2
/// days outlives every redelivery of the record it guards.
pub const CLAIM_TTL: Duration = Duration::days(2);
/// The attribute of a stream claim holding the claiming invocation's token: tells its own claim
/// (written by a request whose answer was lost) from another delivery's.
pub const CLAIM_TOKEN: &str = "claim_token";
/// How long a first-seen time is kept. A Gyro lock's age counts from it, so it must outlive any
/// lock anyone would still want judged; a lock held for 30 days is long past every threshold.
pub const FIRST_SEEN_TTL: Duration = Duration::days(30);
/// How long a forced-release marker is kept. Its one reader is lock-metrics, when it processes the
/// stream REMOVE of the lock item the `Unlocker` deletes seconds after writing the marker. Stream
/// records live 24 hours, so no REMOVE (nor a retry of one) can arrive later than that: 2 days, as
/// for stream claims, covers every delivery. (The ledger's table once said 30 days while the
/// `Unlocker` wrote 2; nothing reads a marker after the REMOVE is counted, and the audit record —
/// 366 days — is the lasting trace of a forced release.)
pub const FORCED_MARKER_TTL: Duration = Duration::days(2);
/// How long an alert state survives without being refreshed (a lock alerted on is re-written
/// every reminder; this only cleans up after a removed deployment).
pub const ALERT_STATE_TTL: Duration = Duration::days(30);
/// How long "this unparseable lock was reported" is remembered (the reaper forgets it itself when
/// the lock goes away; this only cleans up after a removed deployment).
pub const UNPARSEABLE_TTL: Duration = Duration::days(30);
/// How long a proposal item outlives the proposal (for "already used" answers and forensics).
pub const PROPOSAL_RETENTION: Duration = Duration::days(7);
/// How long a snooze item outlives its end (TTL deletion is lazy; readers compare `until`).
pub const SNOOZE_RETENTION: Duration = Duration::days(1);
/// How long a lock's Slack thread is remembered: a lock still alerted on 30 days after its first
/// alert starts a new thread (its older messages stay in Slack).
pub const SLACK_THREAD_TTL: Duration = Duration::days(30);
/// How long an offer's Slack message is remembered after the approval expires: results arrive
/// before the expiry; the margin covers a late retry.
pub const SLACK_OFFER_RETENTION: Duration = Duration::days(7);
/// How long "this SNS message was posted" is remembered: Lambda retries an asynchronous
/// invocation for at most 6 hours (its maximum event age), so 2 days outlive every redelivery.
pub const SLACK_DELIVERY_TTL: Duration = Duration::days(2);
/// How long audit records live: a year.
pub const AUDIT_TTL: Duration = Duration::days(366);

/// `stream#<lock table>`.
pub fn stream_pk(lock_table: &str) -> String {
    format!("stream#{lock_table}")
}

/// `stream#s3/<bucket>/<key>`: the claims of one object's S3 events. (A lock table's name cannot
/// contain `/`, so these never meet a stream's `stream#<table>`.)
pub fn s3_event_pk(bucket: &str, key: &str) -> String {
    format!("stream#s3/{bucket}/{key}")
}

/// `<created|deleted>#<padded sequencer>`: one S3 operation on the object.
pub fn s3_event_sk(change: &str, sequencer: &str) -> String {
    format!("{change}#{sequencer}")
}

/// `s3-events#<created|deleted>`: the latest acquisition or release of a lock file (under its
/// `lock#` partition).
pub fn lock_file_events_sk(change: &str) -> String {
    format!("s3-events#{change}")
}

/// `state#<state path>`.
pub fn state_pk(state_path: &str) -> String {
    format!("state#{state_path}")
}

/// `lock#<ledger key>`.
pub fn lock_pk(location: &LockLocation) -> String {
    format!("lock#{}", location.ledger_key())
}

/// `seen#<lock id>`.
pub fn seen_sk(lock_id: &str) -> String {
    format!("seen#{lock_id}")
}

/// `forced#<lock id>`.
pub fn forced_sk(lock_id: &str) -> String {
    format!("forced#{lock_id}")
}

/// `alerts#<table or bucket>`: keying alert states by container lets one Query list every alerted
/// lock of a table or bucket.
pub fn alerts_pk(container: &str) -> String {
    format!("alerts#{container}")
}

/// `proposal#<proposal id>`.
pub fn proposal_pk(proposal_id: &str) -> String {
    format!("proposal#{proposal_id}")
}

/// `slack#thread#<thread key>`: a lock's thread in the Slack channel (`Message::thread`).
pub fn slack_thread_pk(thread: &str) -> String {
    format!("slack#thread#{thread}")
}

/// `slack#offer#<token digest>`: an offer's Slack message.
pub fn slack_offer_pk(offer_key: &str) -> String {
    format!("slack#offer#{offer_key}")
}

/// `slack#delivery#<SNS MessageId>`: one SNS message the notifier posted.
pub fn slack_delivery_pk(message_id: &str) -> String {
    format!("slack#delivery#{message_id}")
}

/// `audit#<state path>`.
pub fn audit_pk(state_path: &str) -> String {
    format!("audit#{state_path}")
}

/// `<time>#<audit id>`: a state's audit records sort by time.
pub fn audit_sk(at: DateTime<Utc>, audit_id: &str) -> String {
    format!("{}#{audit_id}", format_time(at))
}

/// The ledger's time format: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `expires_at` value of an item kept for `keep` after `from`.
pub fn expires_at(from: DateTime<Utc>, keep: Duration) -> AttributeValue {
    AttributeValue::N((from + keep).timestamp().to_string())
}

/// A string attribute.
pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The primary key of one item.
pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> HashMap<String, AttributeValue> {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// A string attribute of an item, if it is one.
pub fn string_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

/// A time attribute of an item (RFC 3339), if it is one.
pub fn time_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> Option<DateTime<Utc>> {
    string_attribute(item, name)
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_and_times() {
        let location = LockLocation::DynamoDb {
            table: "tf-locks".to_owned(),
            key_attribute: "LockID".to_owned(),
            key: "b/env:/x/k".to_owned(),
        };
        assert_eq!(lock_pk(&location), "lock#dynamodb/tf-locks/b/env:/x/k");
        assert_eq!(seen_sk("id"), "seen#id");
        assert_eq!(forced_sk("id"), "forced#id");
        assert_eq!(stream_pk("t"), "stream#t");
        assert_eq!(
            s3_event_pk("b", "env:/w/k.tflock"),
            "stream#s3/b/env:/w/k.tflock"
        );
        assert_eq!(s3_event_sk("created", "00AB"), "created#00AB");
        assert_eq!(lock_file_events_sk("deleted"), "s3-events#deleted");
        assert_eq!(state_pk("b/k"), "state#b/k");
        assert_eq!(alerts_pk("tf-locks"), "alerts#tf-locks");
        assert_eq!(proposal_pk("AAECAwQFBgcICQoL"), "proposal#AAECAwQFBgcICQoL");
        assert_eq!(audit_pk("b/k"), "audit#b/k");
        assert_eq!(slack_thread_pk("0a1b"), "slack#thread#0a1b");
        assert_eq!(slack_offer_pk("ba78"), "slack#offer#ba78");
        assert_eq!(slack_delivery_pk("9f-2"), "slack#delivery#9f-2");
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 0, 3, 30).unwrap();
        assert_eq!(format_time(t), "2026-11-26T00:03:30.000Z");
        assert_eq!(audit_sk(t, "a1"), "2026-11-26T00:03:30.000Z#a1");
        // Fixed width: string order is time order.
        let later = t + Duration::milliseconds(5);
        assert!(format_time(t) < format_time(later));
        assert_eq!(
            expires_at(t, FORCED_MARKER_TTL),
            AttributeValue::N((t.timestamp() + 2 * 86_400).to_string())
        );
        let item = HashMap::from([("at".to_owned(), s(format_time(t)))]);
        assert_eq!(time_attribute(&item, "at"), Some(t));
        assert_eq!(time_attribute(&item, "missing"), None);
    }
}
