//! lockreaper's own DynamoDB table, the **ledger**: what the functions remember between runs.
//!
//! # Schema
//!
//! One table, partition key `pk` (S), sort key `sk` (S), Time to Live on `expires_at` (N, epoch
//! seconds). Times are RFC 3339 UTC strings with milliseconds and a `Z`
//! (`2026-11-26T00:03:30.000Z`, [`format_time`]): one fixed width, so strings order like the times
//! they name, which the conditional writes below rely on.
//!
//! | `pk` | `sk` | attributes | written by | expires |
//! | --- | --- | --- | --- | --- |
//! | `stream#<lock table>` | `<SequenceNumber>` | `claimed_at` | lock-metrics: a stream record already counted (idempotency for retried batches) | 2 days |
//! | `state#<state path>` | `last-write` | `written_at`, `digest` | lock-metrics, from a digest item INSERT/MODIFY; only ever moves forward. The reaper reads it as liveness evidence | never |
//! | `lock#<LockLocation::ledger_key()>` | `seen#<lock id>` | `first_seen` | lock-metrics on a Gyro INSERT/MODIFY, the reaper on first sight; the earliest time wins | 30 days |
//! | `lock#<ledger key>` | `forced#<lock id>` | `forced_at`, `by` | force-unlock (and the reaper when auto-expiring: the same `Unlocker`), *before* it deletes the lock; lock-metrics reads it to count the REMOVE as a forced release | 30 days |
//! | `lock#<ledger key>` | `snooze` | see `proposals.rs` | force-unlock, from a snooze command; the reaper reads it | the snooze |
//! | `alerts#<table or bucket>` | `<ledger key>` | see `alert_state.rs` | the reaper: what it last reported for a lock | 30 days after the last message |
//! | `unparseable` | `<location>` | `reported_at` | the reaper: an unparseable lock already reported | 30 days |
//! | `proposal#<proposal id>` | `proposal` | see `proposals.rs` | the reaper (new, withdrawn) and force-unlock (claimed, completed, denied, withdrawn) | see `proposals.rs` |
//! | `audit#<state path>` | `<time>#<audit id>` | `record`, `lock_id` | force-unlock (and the reaper when auto-expiring), before it deletes; never updated or deleted by lockreaper | 366 days |
//!
//! Each function's IAM role may write only the partition keys of its rows here (`template.yaml`,
//! `dynamodb:LeadingKeys`; checked against this code by `infra/sam/test_template.py`).
//!
//! # Counting each stream record once
//!
//! Lambda delivers DynamoDB stream batches at least once: a batch is retried after a failure,
//! and with `ReportBatchItemFailures` the retry starts at the lowest failed sequence number, so the
//! records after it come again too. lock-metrics therefore:
//!
//! 1. does each record's ledger work (first-seen, last state write, forced marker: idempotent
//!    writes and reads) and only then claims it with a conditional put of `stream#<table>` /
//!    `<SequenceNumber>` (`attribute_not_exists(pk)`, [`Ledger::claim_record`]); a record whose
//!    claim already exists was counted before and is not counted again. Work first, claim after: an
//!    invocation that dies between the two leaves an unclaimed record that the retry redoes, never a
//!    claimed record whose state write was never recorded (the reaper's liveness evidence);
//! 2. counts only the records it claimed in this invocation;
//! 3. if the PutMetricData call that carries a record's metrics fails, deletes the claims of exactly
//!    the records of that call ([`Ledger::release_claim`]) and reports them as `batchItemFailures`,
//!    so the retry counts them (a record whose own ledger work fails is handled the same way).
//!
//! A record is thus counted at most once while its claim lives (2 days; stream records live 24 h,
//! so a claim outlives every redelivery). Only a double fault — PutMetricData fails *and* deleting
//! the claim fails — loses a record's metrics: it is under-counted, never double-counted, and the
//! function logs it as an error.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use lockreaper_core::LockLocation;

use crate::error::AwsError;

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// Time to Live attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";
/// Sort key of the last state write of a state path.
pub const LAST_WRITE_SK: &str = "last-write";

/// How long a stream record claim is kept (stream records live 24 h).
pub const CLAIM_TTL: Duration = Duration::days(2);
/// How long a first-seen time or a forced-release marker is kept.
pub const LOCK_NOTE_TTL: Duration = Duration::days(30);

/// `stream#<lock table>`.
pub fn stream_pk(lock_table: &str) -> String {
    format!("stream#{lock_table}")
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

/// The ledger's time format: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether a claim was taken now or existed already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation claimed the record: count it.
    Claimed,
    /// The record was counted before (a retried batch): skip it.
    AlreadyClaimed,
}

/// The last state write seen for a state path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    pub written_at: DateTime<Utc>,
    /// The MD5 Terraform recorded, when there was one.
    pub digest: Option<String>,
}

/// lockreaper's ledger table.
#[derive(Clone, Debug)]
pub struct Ledger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn expires(after: Duration) -> AttributeValue {
    AttributeValue::N((Utc::now() + after).timestamp().to_string())
}

fn time_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> Option<DateTime<Utc>> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    }
}

impl Ledger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Ledger {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(pk: String, sk: String) -> HashMap<String, AttributeValue> {
        HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
    }

    /// A conditional put: `Ok(true)` written, `Ok(false)` when the condition did not hold.
    async fn put_if(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
        action: &'static str,
    ) -> Result<bool, AwsError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        AwsError::conditional(request.send().await, action, &self.table)
    }

    async fn get(
        &self,
        pk: String,
        sk: String,
        action: &'static str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, action, &self.table))?;
        Ok(out.item)
    }

    /// Claims a stream record (`stream#<lock table>` / `<record id>`) unless it was claimed before.
    pub async fn claim_record(&self, lock_table: &str, record_id: &str) -> Result<Claim, AwsError> {
        let mut item = Self::key(stream_pk(lock_table), record_id.to_owned());
        item.insert("claimed_at".to_owned(), s(format_time(Utc::now())));
        item.insert(EXPIRES_AT.to_owned(), expires(CLAIM_TTL));
        let claimed = self
            .put_if(
                item,
                "attribute_not_exists(pk)",
                vec![],
                "claim stream record in ledger",
            )
            .await?;
        Ok(if claimed {
            Claim::Claimed
        } else {
            Claim::AlreadyClaimed
        })
    }

    /// Deletes a claim, so that a retry of the record counts it.
    pub async fn release_claim(&self, lock_table: &str, record_id: &str) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(stream_pk(lock_table), record_id.to_owned())))
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(e, "release stream record claim in ledger", &self.table)
            })?;
        Ok(())
    }

    /// Whether a stream record is claimed (for tests and diagnostics).
    pub async fn is_claimed(&self, lock_table: &str, record_id: &str) -> Result<bool, AwsError> {
        Ok(self
            .get(
                stream_pk(lock_table),
                record_id.to_owned(),
                "read stream record claim from ledger",
            )
            .await?
            .is_some())
    }

    /// Records a state write of `state_path` unless a later one is recorded already.
    /// `Ok(false)` when the ledger already had this or a later write.
    pub async fn record_state_write(
        &self,
        state_path: &str,
        written_at: DateTime<Utc>,
        digest: Option<&str>,
    ) -> Result<bool, AwsError> {
        let at = format_time(written_at);
        let mut item = Self::key(state_pk(state_path), LAST_WRITE_SK.to_owned());
        item.insert("written_at".to_owned(), s(at.clone()));
        if let Some(digest) = digest {
            item.insert("digest".to_owned(), s(digest));
        }
        self.put_if(
            item,
            "attribute_not_exists(pk) OR written_at <= :t",
            vec![(":t", s(at))],
            "record state write in ledger",
        )
        .await
    }

    /// The last state write recorded for `state_path`.
    pub async fn last_state_write(&self, state_path: &str) -> Result<Option<StateWrite>, AwsError> {
        let item = self
            .get(
                state_pk(state_path),
                LAST_WRITE_SK.to_owned(),
                "read last state write from ledger",
            )
            .await?;
        Ok(item.and_then(|item| {
            Some(StateWrite {
                written_at: time_attribute(&item, "written_at")?,
                digest: match item.get("digest") {
                    Some(AttributeValue::S(d)) => Some(d.clone()),
                    _ => None,
                },
            })
        }))
    }

    /// Records when a lock was first seen, unless an earlier time is recorded already.
    /// `Ok(false)` when the ledger already had this or an earlier time.
    pub async fn record_first_seen(
        &self,
        location: &LockLocation,
        lock_id: &str,
        seen_at: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let at = format_time(seen_at);
        let mut item = Self::key(lock_pk(location), seen_sk(lock_id));
        item.insert("first_seen".to_owned(), s(at.clone()));
        item.insert(EXPIRES_AT.to_owned(), expires(LOCK_NOTE_TTL));
        self.put_if(
            item,
            "attribute_not_exists(pk) OR first_seen > :t",
            vec![(":t", s(at))],
            "record lock first-seen time in ledger",
        )
        .await
    }

    /// When a lock was first seen, if the ledger knows.
    pub async fn first_seen(
        &self,
        location: &LockLocation,
        lock_id: &str,
    ) -> Result<Option<DateTime<Utc>>, AwsError> {
        let item = self
            .get(
                lock_pk(location),
                seen_sk(lock_id),
                "read lock first-seen time from ledger",
            )
            .await?;
        Ok(item.and_then(|item| time_attribute(&item, "first_seen")))
    }

    /// Marks a lock as force-unlocked by lockreaper; force-unlock calls this *before* it deletes.
    pub async fn record_forced_release(
        &self,
        location: &LockLocation,
        lock_id: &str,
        at: DateTime<Utc>,
        by: &str,
    ) -> Result<(), AwsError> {
        let mut item = Self::key(lock_pk(location), forced_sk(lock_id));
        item.insert("forced_at".to_owned(), s(format_time(at)));
        item.insert("by".to_owned(), s(by));
        item.insert(EXPIRES_AT.to_owned(), expires(LOCK_NOTE_TTL));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "record forced release in ledger", &self.table))?;
        Ok(())
    }

    /// Whether lockreaper force-unlocked this lock.
    pub async fn is_forced(
        &self,
        location: &LockLocation,
        lock_id: &str,
    ) -> Result<bool, AwsError> {
        Ok(self
            .get(
                lock_pk(location),
                forced_sk(lock_id),
                "read forced-release marker from ledger",
            )
            .await?
            .is_some())
    }
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
        assert_eq!(state_pk("b/k"), "state#b/k");
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 0, 3, 30).unwrap();
        assert_eq!(format_time(t), "2026-11-26T00:03:30.000Z");
        // Fixed width: string order is time order.
        let later = t + Duration::milliseconds(5);
        assert!(format_time(t) < format_time(later));
    }
}
