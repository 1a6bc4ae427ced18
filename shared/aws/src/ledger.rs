//! lockreaper's own DynamoDB table, the **ledger**: what the functions remember between runs.
//!
//! Its schema — every item kind's keys, attributes and lifetime, and the time format — lives in
//! [`crate::ledger_schema`]; this module reads and writes the items lock-metrics and the reaper
//! keep about locks and states (stream claims, last state writes, first-seen times, forced-release
//! markers). Proposals, snoozes, alert states and audit records have their own modules.
//!
//! # Counting each stream record once
//!
//! Lambda delivers DynamoDB stream batches at least once: a batch is retried after a failure,
//! and with `ReportBatchItemFailures` the retry starts at the lowest failed sequence number, so the
//! records after it come again too. lock-metrics therefore:
//!
//! 1. does each record's ledger work (first-seen, last state write, forced marker: idempotent
//!    writes and reads) and only then claims it with a conditional put of `stream#<table>` /
//!    `<SequenceNumber>` (`attribute_not_exists(pk)`, [`Ledger::claim_record`]) holding the
//!    invocation's claim token; a record whose claim already exists with another token was counted
//!    before and is not counted again, while a claim with its own token (the put was applied, its
//!    answer lost, the SDK's retry failed the condition) is this invocation's. Work first, claim after: an
//!    invocation that dies between the two leaves an unclaimed record that the retry redoes, never a
//!    claimed record whose state write was never recorded (the reaper's liveness evidence);
//! 2. counts only the records it claimed in this invocation;
//! 3. writes the metrics of the records it claimed as EMF lines on stdout; if they cannot be
//!    written, deletes exactly those claims (its own only: [`Ledger::release_claim`] is conditional
//!    on the token) and reports the records as `batchItemFailures`, so the retry counts them (a
//!    record whose ledger work or claim fails is handled the same way).
//!
//! A record is thus counted at most once while its claim lives (2 days; stream records live 24 h,
//! so a claim outlives every redelivery). Only a double fault — the metrics cannot be written *and*
//! deleting the claim fails — loses a record's metrics: it is under-counted, never double-counted,
//! and the function logs it as an error. One window remains that no ledger state can close: an
//! invocation killed (a timeout) after its claims and before its EMF line is written leaves claimed
//! records whose metrics were never written; the write follows the claims immediately, in the same
//! process, with no call in between.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use lockreaper_core::LockLocation;

use crate::error::{AwsError, AwsErrorKind};
use crate::ledger_schema::{
    expires_at, forced_sk, format_time, key, lock_file_events_sk, lock_pk, s, s3_event_pk,
    s3_event_sk, seen_sk, state_pk, stream_pk, string_attribute, time_attribute, CLAIM_TOKEN,
    CLAIM_TTL, EXPIRES_AT, FIRST_SEEN_TTL, FORCED_MARKER_TTL, LAST_WRITE_SK, PK, SK,
};
use lockreaper_core::s3_events::{LockFileHistory, ObjectChange, Sequencer};

/// Whether a claim was taken now or existed already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation claimed the record: count it.
    Claimed,
    /// The record was counted before (a retried batch): skip it.
    AlreadyClaimed,
}

/// What a claim is of: a stream record, or one S3 operation on an object.
#[derive(Debug, Clone, Copy)]
enum ClaimOf<'a> {
    StreamRecord {
        lock_table: &'a str,
        record_id: &'a str,
    },
    S3Event {
        bucket: &'a str,
        key: &'a str,
        change: ObjectChange,
        sequencer: &'a Sequencer,
    },
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
        sk: impl Into<String>,
        action: &'static str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, action, &self.table))?;
        Ok(out.item)
    }

    /// Claims a stream record (`stream#<lock table>` / `<record id>`) unless it was claimed before.
    ///
    /// `token` is unique to the claiming invocation and stored in the claim. When the
    /// conditional put fails, the claim is read back (strongly consistent): a claim holding
    /// `token` is this invocation's own — the put was applied but its answer was lost, and the
    /// SDK's retry of the same request found it — so the record is ours to count; any other
    /// token is another delivery's claim. Without this, a lost answer made the record look
    /// counted by someone else and its metrics were lost for good.
    pub async fn claim_record(
        &self,
        lock_table: &str,
        record_id: &str,
        token: &str,
    ) -> Result<Claim, AwsError> {
        self.claim(
            ClaimOf::StreamRecord {
                lock_table,
                record_id,
            },
            token,
            None,
        )
        .await
    }

    /// Claims one S3 operation on `bucket`/`key` (`stream#s3/<bucket>/<key>` /
    /// `<created|deleted>#<sequencer>`), as [`Ledger::claim_record`] claims a stream record.
    /// Keyed by S3's sequencer, not the event ID, so a duplicate event S3 sends for one operation
    /// is counted once too; the event ID is kept in the claim for forensics.
    pub async fn claim_s3_event(
        &self,
        bucket: &str,
        key: &str,
        change: ObjectChange,
        sequencer: &Sequencer,
        event_id: &str,
        token: &str,
    ) -> Result<Claim, AwsError> {
        self.claim(
            ClaimOf::S3Event {
                bucket,
                key,
                change,
                sequencer,
            },
            token,
            Some(event_id),
        )
        .await
    }

    async fn claim(
        &self,
        of: ClaimOf<'_>,
        token: &str,
        event_id: Option<&str>,
    ) -> Result<Claim, AwsError> {
        // The key builders are named here (not in a shared helper) so that the template's
        // contract test (infra/sam/test_template.py) derives the partition keys this writes.
        let (pk, sk) = match of {
            ClaimOf::StreamRecord {
                lock_table,
                record_id,
            } => (stream_pk(lock_table), record_id.to_owned()),
            ClaimOf::S3Event {
                bucket,
                key,
                change,
                sequencer,
            } => (
                s3_event_pk(bucket, key),
                s3_event_sk(change.as_str(), sequencer.as_str()),
            ),
        };
        let mut item = key(pk.clone(), sk.clone());
        item.insert("claimed_at".to_owned(), s(format_time(Utc::now())));
        item.insert(CLAIM_TOKEN.to_owned(), s(token));
        if let Some(event_id) = event_id {
            item.insert("event_id".to_owned(), s(event_id));
        }
        item.insert(EXPIRES_AT.to_owned(), expires_at(Utc::now(), CLAIM_TTL));
        let claimed = self
            .put_if(
                item,
                "attribute_not_exists(pk)",
                vec![],
                "claim stream record in ledger",
            )
            .await?;
        if claimed {
            return Ok(Claim::Claimed);
        }
        let existing = self
            .get(
                pk.clone(),
                sk.clone(),
                "read back stream record claim from ledger",
            )
            .await?;
        match existing
            .as_ref()
            .and_then(|i| string_attribute(i, CLAIM_TOKEN))
        {
            Some(found) if found == token => Ok(Claim::Claimed),
            Some(_) => Ok(Claim::AlreadyClaimed),
            // A claim without a token predates tokens: another delivery's.
            None if existing.is_some() => Ok(Claim::AlreadyClaimed),
            // The claim that failed the condition is gone again (released by the delivery that
            // held it, whose counting failed): nobody counts the record now, so this delivery
            // reports it and the retry claims it afresh.
            None => Err(AwsError {
                kind: AwsErrorKind::Transient,
                action: "claim stream record in ledger",
                resource: self.table.clone(),
                message: format!("the claim {pk} / {sk} existed and was released meanwhile; retry"),
            }),
        }
    }

    /// Deletes this invocation's claim (the one holding `token`), so that a retry of the record
    /// counts it. Conditional on the token: another delivery's claim is never removed.
    pub async fn release_claim(
        &self,
        lock_table: &str,
        record_id: &str,
        token: &str,
    ) -> Result<(), AwsError> {
        self.release(
            ClaimOf::StreamRecord {
                lock_table,
                record_id,
            },
            token,
        )
        .await
    }

    /// [`Ledger::release_claim`] for a claim of [`Ledger::claim_s3_event`].
    pub async fn release_s3_event_claim(
        &self,
        bucket: &str,
        key: &str,
        change: ObjectChange,
        sequencer: &Sequencer,
        token: &str,
    ) -> Result<(), AwsError> {
        self.release(
            ClaimOf::S3Event {
                bucket,
                key,
                change,
                sequencer,
            },
            token,
        )
        .await
    }

    async fn release(&self, of: ClaimOf<'_>, token: &str) -> Result<(), AwsError> {
        let (pk, sk) = match of {
            ClaimOf::StreamRecord {
                lock_table,
                record_id,
            } => (stream_pk(lock_table), record_id.to_owned()),
            ClaimOf::S3Event {
                bucket,
                key,
                change,
                sequencer,
            } => (
                s3_event_pk(bucket, key),
                s3_event_sk(change.as_str(), sequencer.as_str()),
            ),
        };
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", CLAIM_TOKEN)
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        // `false`: the claim is not ours (or already gone); nothing of ours to release.
        AwsError::conditional(result, "release stream record claim in ledger", &self.table)?;
        Ok(())
    }

    /// Whether an S3 event's operation is claimed (for tests and diagnostics).
    pub async fn is_s3_event_claimed(
        &self,
        bucket: &str,
        key: &str,
        change: ObjectChange,
        sequencer: &Sequencer,
    ) -> Result<bool, AwsError> {
        Ok(self
            .get(
                s3_event_pk(bucket, key),
                s3_event_sk(change.as_str(), sequencer.as_str()),
                "read S3 event claim from ledger",
            )
            .await?
            .is_some())
    }

    /// Records one S3 event of the lock file `bucket`/`lock_file_key` — the latest acquisition
    /// (`created`) or release (`deleted`) by sequencer; an older or equal sequencer changes
    /// nothing, so retries and reordering are harmless — and returns the lock file's history as
    /// it stands after it ([`LockFileHistory::with_event`] is the same rule, in the core).
    pub async fn record_lock_file_event(
        &self,
        bucket: &str,
        lock_file_key: &str,
        change: ObjectChange,
        sequencer: &Sequencer,
        at: DateTime<Utc>,
        event_id: &str,
    ) -> Result<LockFileHistory, AwsError> {
        let location = LockLocation::S3 {
            bucket: bucket.to_owned(),
            key: lock_file_key.to_owned(),
        };
        let mut item = key(lock_pk(&location), lock_file_events_sk(change.as_str()));
        item.insert("sequencer".to_owned(), s(sequencer.as_str()));
        item.insert("at".to_owned(), s(format_time(at)));
        item.insert("event_id".to_owned(), s(event_id));
        item.insert(
            EXPIRES_AT.to_owned(),
            expires_at(Utc::now(), FIRST_SEEN_TTL),
        );
        // Fixed-width upper-case hex: string order is sequencer order.
        self.put_if(
            item,
            "attribute_not_exists(pk) OR sequencer < :s",
            vec![(":s", s(sequencer.as_str()))],
            "record lock file event in ledger",
        )
        .await?;
        self.lock_file_history(bucket, lock_file_key).await
    }

    /// What the ledger knows of a lock file's S3 events.
    pub async fn lock_file_history(
        &self,
        bucket: &str,
        lock_file_key: &str,
    ) -> Result<LockFileHistory, AwsError> {
        let location = LockLocation::S3 {
            bucket: bucket.to_owned(),
            key: lock_file_key.to_owned(),
        };
        let mut history = LockFileHistory::default();
        for change in [ObjectChange::Created, ObjectChange::Deleted] {
            let item = self
                .get(
                    lock_pk(&location),
                    lock_file_events_sk(change.as_str()),
                    "read lock file events from ledger",
                )
                .await?;
            let recorded = item.and_then(|item| {
                let sequencer = Sequencer::from_stored(&string_attribute(&item, "sequencer")?)?;
                Some((sequencer, time_attribute(&item, "at")?))
            });
            match change {
                ObjectChange::Created => history.created = recorded,
                ObjectChange::Deleted => history.deleted = recorded,
            }
        }
        Ok(history)
    }

    /// Whether lockreaper force-unlocked a lock at `location` between `from` and `to`: a
    /// forced-release marker written in that window. For lock files seen only through S3 events,
    /// whose lock ID the events do not carry.
    pub async fn forced_between(
        &self,
        location: &LockLocation,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :forced)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(lock_pk(location)))
            .expression_attribute_values(":forced", s(forced_sk("")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(e, "read forced-release markers from ledger", &self.table)
            })?;
        Ok(out
            .items()
            .iter()
            .filter_map(|item| time_attribute(item, "forced_at"))
            .any(|at| from <= at && at <= to))
    }

    /// Whether a stream record is claimed (for tests and diagnostics).
    pub async fn is_claimed(&self, lock_table: &str, record_id: &str) -> Result<bool, AwsError> {
        Ok(self
            .get(
                stream_pk(lock_table),
                record_id,
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
        let mut item = key(state_pk(state_path), LAST_WRITE_SK);
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
                LAST_WRITE_SK,
                "read last state write from ledger",
            )
            .await?;
        Ok(item.and_then(|item| {
            Some(StateWrite {
                written_at: time_attribute(&item, "written_at")?,
                digest: string_attribute(&item, "digest"),
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
        let mut item = key(lock_pk(location), seen_sk(lock_id));
        item.insert("first_seen".to_owned(), s(at.clone()));
        item.insert(
            EXPIRES_AT.to_owned(),
            expires_at(Utc::now(), FIRST_SEEN_TTL),
        );
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

    /// Marks a lock as force-unlocked by lockreaper, *before* it is deleted, so that lock-metrics
    /// counts the stream REMOVE as a forced release. `by`: the approver, or how the unlock came in.
    pub async fn record_forced_release(
        &self,
        location: &LockLocation,
        lock_id: &str,
        at: DateTime<Utc>,
        by: &str,
    ) -> Result<(), AwsError> {
        self.record_forced_release_for_audit(location, lock_id, at, by, None)
            .await
    }

    /// [`Ledger::record_forced_release`], naming the audit record of the unlock (the `Unlocker`).
    pub async fn record_forced_release_for_audit(
        &self,
        location: &LockLocation,
        lock_id: &str,
        at: DateTime<Utc>,
        by: &str,
        audit_id: Option<&str>,
    ) -> Result<(), AwsError> {
        let mut item = key(lock_pk(location), forced_sk(lock_id));
        item.insert("forced_at".to_owned(), s(format_time(at)));
        item.insert("by".to_owned(), s(by));
        if let Some(audit_id) = audit_id {
            item.insert("audit_id".to_owned(), s(audit_id));
        }
        item.insert(EXPIRES_AT.to_owned(), expires_at(at, FORCED_MARKER_TTL));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "record forced release in ledger", &self.table))?;
        Ok(())
    }

    /// Removes a forced-release marker: the lock turned out to be released by its holder.
    pub async fn remove_forced_release(
        &self,
        location: &LockLocation,
        lock_id: &str,
    ) -> Result<(), AwsError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(lock_pk(location), forced_sk(lock_id))))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "remove forced-release marker", &self.table))?;
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
