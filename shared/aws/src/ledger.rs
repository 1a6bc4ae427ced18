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
//! 1. does the batch's ledger work (first-seen, last state write, forced marker: idempotent
//!    writes and reads), all at once ([`Ledger::record_work`]: collapsed per ledger item, then
//!    `BatchGetItem` and `TransactWriteItems` of 100), and only then claims the batch's records,
//!    all at once
//!    ([`Ledger::claim_records`]): one claim item `stream#<table>` / `<SequenceNumber>` per record,
//!    holding the invocation's claim token, read first (`BatchGetItem`, 100 keys a call) and the
//!    missing ones written as conditional puts (`attribute_not_exists(pk)`) in `TransactWriteItems`
//!    of 100 actions — a bounded number of calls per batch, not one per record. A record whose
//!    claim already exists with another token was counted before and is not counted again, while a
//!    claim with its own token (a transaction applied whose answer was lost: the SDK's resend
//!    failed its conditions, and the cancellation reasons carry the claims found) is this
//!    invocation's. Work first, claim after: an invocation that dies between the two leaves
//!    unclaimed records that the retry redoes, never a claimed record whose state write was never
//!    recorded (the reaper's liveness evidence);
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

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::types::{
    CancellationReason, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use chrono::{DateTime, Utc};
use lockreaper_core::LockLocation;
use md5::{Digest, Md5};

use crate::error::{AwsError, AwsErrorKind};
use crate::ledger_schema::{
    expires_at, forced_sk, format_time, key, lock_file_events_sk, lock_pk, s, s3_event_pk,
    s3_event_sk, seen_sk, state_pk, stream_pk, string_attribute, time_attribute, CLAIM_TOKEN,
    CLAIM_TTL, EXPIRES_AT, FIRST_SEEN_TTL, FORCED_MARKER_TTL, LAST_WRITE_SK, PK, SK,
};
use lockreaper_core::s3_events::{LockFileHistory, ObjectChange, Sequencer};

/// Keys per `BatchGetItem` call: "A single operation can retrieve up to 16 MB of data, which can
/// contain as many as 100 items" (DynamoDB API Reference, BatchGetItem).
pub const MAX_KEYS_PER_BATCH_GET: usize = 100;

/// Actions per `TransactWriteItems` call: "groups up to 100 action requests … no two actions can
/// target the same item … The aggregate size of the items in the transaction cannot exceed 4 MB"
/// (DynamoDB API Reference, TransactWriteItems; raised from 25 in 2022). A claim is a few hundred
/// bytes, so 100 of them stay far below 4 MB and the 400 KB item limit.
pub const MAX_ACTIONS_PER_TRANSACTION: usize = 100;

/// The longest partition and sort key values DynamoDB accepts: "The minimum length of a partition
/// key value is 1 byte. The maximum length is 2048 bytes"; sort key: "The maximum length is 1024
/// bytes" (DynamoDB Developer Guide, "Constraints in Amazon DynamoDB": Partition keys and sort
/// keys).
const MAX_PARTITION_KEY_BYTES: usize = 2048;
const MAX_SORT_KEY_BYTES: usize = 1024;

/// Read-then-write rounds [`Ledger::claim_records`] makes before it reports what is still unsettled.
pub const CLAIM_ROUNDS: usize = 3;

/// Why a claim transaction wrote nothing.
enum ClaimsNotWritten {
    /// Cancelled: what became of each action, in order.
    Cancelled(Vec<ActionOutcome>),
    /// The call itself failed (perhaps after being applied: an answer lost past the SDK's retries).
    Failed(AwsError),
}

/// One action of a cancelled claim transaction.
enum ActionOutcome {
    /// Its condition failed: the claim exists, holding this token (`None`: a claim from before
    /// tokens).
    AlreadyThere(Option<String>),
    /// Not applied because of this action's own failure or another action's: to be tried again.
    NotApplied(AwsError),
}

fn action_outcome(reason: &CancellationReason, table: &str) -> ActionOutcome {
    let code = reason.code().unwrap_or("None");
    match (code, reason.item()) {
        ("ConditionalCheckFailed", Some(item)) => {
            ActionOutcome::AlreadyThere(string_attribute(item, CLAIM_TOKEN))
        }
        // A failed condition without the item (ALL_OLD not honoured) is settled by the next
        // round's read, like any action that was not applied.
        _ => ActionOutcome::NotApplied(cancelled_action_error(
            reason,
            "claim stream records in ledger",
            table,
            "record",
        )),
    }
}

/// A claim found in the ledger: this invocation's own when it holds `token`.
fn claim_by_token(found: Option<String>, token: &str) -> Claim {
    match found {
        Some(found) if found == token => Claim::Claimed,
        // Another delivery's claim, or one that predates tokens.
        _ => Claim::AlreadyClaimed,
    }
}

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

    /// Claims stream records (`stream#<lock table>` / `<record id>`, one per `(lock table, record
    /// id)` in `records`) unless they were claimed before, in a bounded number of calls whatever
    /// the batch's size: see [`claim_records`](Self::claim_records) in the module documentation.
    ///
    /// Returns one result per entry of `records`, in order. `token` is unique to the claiming
    /// invocation and stored in every claim it takes: a claim found holding `token` is this
    /// invocation's own (a write applied whose answer was lost), any other token another
    /// delivery's. A record named twice in `records` is claimed once: its first entry gets the
    /// claim's result, the later ones [`Claim::AlreadyClaimed`] (or the first one's error).
    ///
    /// Each round reads the claims still unsettled (`BatchGetItem`, strongly consistent, at most
    /// [`MAX_KEYS_PER_BATCH_GET`] keys per call) and then writes the missing ones as conditional
    /// puts (`attribute_not_exists(pk)`) in `TransactWriteItems` calls of at most
    /// [`MAX_ACTIONS_PER_TRANSACTION`] actions. A cancelled transaction is read through its
    /// per-action `CancellationReasons`: a `ConditionalCheckFailed` claim comes back with the item
    /// (`ReturnValuesOnConditionCheckFailure = ALL_OLD`) and is settled by its token; every other
    /// action of the transaction was not applied and goes to the next round. After
    /// [`CLAIM_ROUNDS`] rounds what is still unsettled is an error (the caller reports the record
    /// for retry). Calls: at most `2 × ⌈n / 100⌉` per round, `2 × ⌈n / 100⌉` in total when nothing
    /// fails (the SDK's own retries of one call aside).
    pub async fn claim_records(
        &self,
        records: &[(&str, &str)],
        token: &str,
    ) -> Vec<Result<Claim, AwsError>> {
        // One claim per key: DynamoDB refuses two actions on one item in a transaction and
        // duplicate keys in one BatchGetItem.
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut unique: Vec<usize> = Vec::new();
        let mut duplicate_of: Vec<Option<usize>> = Vec::with_capacity(records.len());
        // A key DynamoDB refuses would fail the whole call with a ValidationException, taking the
        // other records of its transaction with it: such a record fails alone, before any call.
        let mut refused: HashMap<usize, AwsError> = HashMap::new();
        for (index, &(lock_table, record_id)) in records.iter().enumerate() {
            if stream_pk(lock_table).len() > MAX_PARTITION_KEY_BYTES
                || record_id.is_empty()
                || record_id.len() > MAX_SORT_KEY_BYTES
            {
                refused.insert(
                    index,
                    AwsError {
                        kind: AwsErrorKind::Other,
                        action: "claim stream record in ledger",
                        resource: self.table.clone(),
                        message: format!(
                            "the record's claim key is not a valid DynamoDB key (table name of {} bytes, record ID of {} bytes; at most {} and {})",
                            lock_table.len(),
                            record_id.len(),
                            MAX_PARTITION_KEY_BYTES - "stream#".len(),
                            MAX_SORT_KEY_BYTES
                        ),
                    },
                );
                duplicate_of.push(None);
                continue;
            }
            match first_of.get(&(lock_table, record_id)) {
                Some(&first) => duplicate_of.push(Some(first)),
                None => {
                    first_of.insert((lock_table, record_id), index);
                    unique.push(index);
                    duplicate_of.push(None);
                }
            }
        }
        // Fixed for the whole call, so a transaction resent with the same ClientRequestToken
        // carries exactly the same items (DynamoDB answers IdempotentParameterMismatch otherwise).
        let claimed_at = Utc::now();
        let mut settled: Vec<Option<Result<Claim, AwsError>>> =
            records.iter().map(|_| None).collect();
        for (index, error) in refused {
            settled[index] = Some(Err(error));
        }
        let mut last_error: HashMap<usize, AwsError> = HashMap::new();
        let mut pending = unique;
        for round in 0..CLAIM_ROUNDS {
            if pending.is_empty() {
                break;
            }
            // 1. The claims already there (a redelivered batch): settled by their token.
            for chunk in pending.chunks(MAX_KEYS_PER_BATCH_GET) {
                match self.read_claims(records, chunk).await {
                    Ok(found) => {
                        for (index, existing_token) in found {
                            settled[index] = Some(Ok(claim_by_token(existing_token, token)));
                        }
                    }
                    // Not fatal: the conditional puts below settle these records as well.
                    Err(err) => {
                        for &index in chunk {
                            last_error.insert(index, err.clone());
                        }
                    }
                }
            }
            pending.retain(|&index| settled[index].is_none());
            // 2. The missing claims, written all or nothing per transaction.
            let mut next = Vec::new();
            for chunk in pending.chunks(MAX_ACTIONS_PER_TRANSACTION) {
                match self
                    .write_claims(records, chunk, token, claimed_at, round)
                    .await
                {
                    Ok(()) => {
                        for &index in chunk {
                            settled[index] = Some(Ok(Claim::Claimed));
                        }
                    }
                    Err(ClaimsNotWritten::Cancelled(reasons)) => {
                        for (&index, reason) in chunk.iter().zip(reasons) {
                            match reason {
                                ActionOutcome::AlreadyThere(existing_token) => {
                                    settled[index] =
                                        Some(Ok(claim_by_token(existing_token, token)));
                                }
                                ActionOutcome::NotApplied(err) => {
                                    last_error.insert(index, err);
                                    next.push(index);
                                }
                            }
                        }
                    }
                    Err(ClaimsNotWritten::Failed(err)) => {
                        // Perhaps applied (an answer lost past the SDK's retries): the next
                        // round's read tells.
                        for &index in chunk {
                            last_error.insert(index, err.clone());
                            next.push(index);
                        }
                    }
                }
            }
            pending = next;
        }
        for index in pending {
            let (lock_table, record_id) = records[index];
            let error = last_error.remove(&index).unwrap_or_else(|| AwsError {
                kind: AwsErrorKind::Transient,
                action: "claim stream record in ledger",
                resource: self.table.clone(),
                message: String::new(),
            });
            settled[index] = Some(Err(AwsError {
                message: format!(
                    "record {record_id} of {lock_table} not settled after {CLAIM_ROUNDS} rounds; last: {}",
                    error.message
                ),
                ..error
            }));
        }
        let mut results: Vec<Result<Claim, AwsError>> = Vec::with_capacity(records.len());
        for (index, duplicate) in duplicate_of.iter().enumerate() {
            let result = match duplicate {
                None => settled[index].take().unwrap_or_else(|| {
                    Err(AwsError {
                        kind: AwsErrorKind::Other,
                        action: "claim stream record in ledger",
                        resource: self.table.clone(),
                        message: "claim never settled (a bug)".to_owned(),
                    })
                }),
                Some(first) => match results.get(*first) {
                    Some(Ok(_)) => Ok(Claim::AlreadyClaimed),
                    Some(Err(err)) => Err(err.clone()),
                    None => Ok(Claim::AlreadyClaimed),
                },
            };
            results.push(result);
        }
        results
    }

    /// Claims one stream record: [`Ledger::claim_records`] for a batch of one.
    pub async fn claim_record(
        &self,
        lock_table: &str,
        record_id: &str,
        token: &str,
    ) -> Result<Claim, AwsError> {
        self.claim_records(&[(lock_table, record_id)], token)
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(AwsError {
                    kind: AwsErrorKind::Other,
                    action: "claim stream record in ledger",
                    resource: self.table.clone(),
                    message: "no result for the one record claimed (a bug)".to_owned(),
                })
            })
    }

    /// The claims among `chunk` (indices into `records`) that exist, with their tokens (`None`: a
    /// claim from before tokens). Keys the service left unprocessed are simply not in the answer.
    async fn read_claims(
        &self,
        records: &[(&str, &str)],
        chunk: &[usize],
    ) -> Result<Vec<(usize, Option<String>)>, AwsError> {
        let mut index_of: HashMap<(String, String), usize> = HashMap::new();
        let mut keys = KeysAndAttributes::builder().consistent_read(true);
        for &index in chunk {
            let (lock_table, record_id) = records[index];
            index_of.insert((stream_pk(lock_table), record_id.to_owned()), index);
            keys = keys.keys(key(stream_pk(lock_table), record_id));
        }
        let keys = keys.build().map_err(|e| AwsError {
            kind: AwsErrorKind::Other,
            action: "read stream record claims from ledger",
            resource: self.table.clone(),
            message: e.to_string(),
        })?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, keys)
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(e, "read stream record claims from ledger", &self.table)
            })?;
        let items = out
            .responses
            .and_then(|mut tables| tables.remove(&self.table))
            .unwrap_or_default();
        Ok(items
            .iter()
            .filter_map(|item| {
                let pk = string_attribute(item, PK)?;
                let sk = string_attribute(item, SK)?;
                let index = *index_of.get(&(pk, sk))?;
                Some((index, string_attribute(item, CLAIM_TOKEN)))
            })
            .collect())
    }

    /// One transaction of conditional claim puts for `chunk` (indices into `records`).
    async fn write_claims(
        &self,
        records: &[(&str, &str)],
        chunk: &[usize],
        token: &str,
        claimed_at: DateTime<Utc>,
        round: usize,
    ) -> Result<(), ClaimsNotWritten> {
        const ACTION: &str = "claim stream records in ledger";
        let mut request_token = Md5::new();
        request_token.update(token.as_bytes());
        // A later round is a new request: should DynamoDB remember a cancelled attempt under its
        // token, a resend in the next round must not get that answer again. A claim an earlier
        // round did write is found by the next round's read, or fails its condition holding
        // this invocation's token.
        request_token.update(round.to_be_bytes());
        let mut actions = Vec::with_capacity(chunk.len());
        for &index in chunk {
            let (lock_table, record_id) = records[index];
            request_token.update(b"\0");
            request_token.update(lock_table.as_bytes());
            request_token.update(b"\0");
            request_token.update(record_id.as_bytes());
            let mut item = key(stream_pk(lock_table), record_id);
            item.insert("claimed_at".to_owned(), s(format_time(claimed_at)));
            item.insert(CLAIM_TOKEN.to_owned(), s(token));
            item.insert(EXPIRES_AT.to_owned(), expires_at(claimed_at, CLAIM_TTL));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| ClaimsNotWritten::Failed(build_error(e, ACTION, &self.table)))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        // The same invocation, round, records and claim time give the same token, so a transaction the
        // SDK resends after a lost answer is applied once (DynamoDB API Reference,
        // TransactWriteItems `ClientRequestToken`: "multiple identical calls have the same effect
        // as one single call", valid 10 minutes after the first request completes — far longer
        // than a lock-metrics invocation). 32 hex characters: within the parameter's 1–36. MD5 is
        // a fingerprint here, not a security measure. The emulator (moto 5.2.5) ignores the token;
        // there the resent puts fail their condition and come back holding our own token.
        let request_token = hex::encode(request_token.finalize());
        match self.transact(actions, request_token, ACTION).await {
            Ok(()) => Ok(()),
            Err(TransactionRefused::Cancelled(reasons)) => Err(ClaimsNotWritten::Cancelled(
                reasons
                    .iter()
                    .map(|reason| action_outcome(reason, &self.table))
                    .collect(),
            )),
            Err(TransactionRefused::Failed(err)) => Err(ClaimsNotWritten::Failed(err)),
        }
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

    /// What the ledger knows of a lock file's S3 events: its two items (latest acquisition,
    /// latest release) read in one `BatchGetItem`, strongly consistent.
    pub async fn lock_file_history(
        &self,
        bucket: &str,
        lock_file_key: &str,
    ) -> Result<LockFileHistory, AwsError> {
        let location = LockLocation::S3 {
            bucket: bucket.to_owned(),
            key: lock_file_key.to_owned(),
        };
        let changes = [ObjectChange::Created, ObjectChange::Deleted];
        let keys: Vec<ItemKey> = changes
            .iter()
            .map(|change| (lock_pk(&location), lock_file_events_sk(change.as_str())))
            .collect();
        if let Some(reason) = keys.iter().find_map(invalid_key) {
            return Err(AwsError {
                kind: AwsErrorKind::Other,
                action: "read lock file events from ledger",
                resource: self.table.clone(),
                message: format!(
                    "the lock file's ledger key is not a valid DynamoDB key: {reason}"
                ),
            });
        }
        let (mut found, mut unread) = self.read_items(&keys).await;
        let mut history = LockFileHistory::default();
        for (change, key) in changes.into_iter().zip(keys) {
            let item = match found.remove(&key) {
                Some(item) => item,
                None => {
                    return Err(unread.remove(&key).unwrap_or_else(|| AwsError {
                        kind: AwsErrorKind::Transient,
                        action: "read lock file events from ledger",
                        resource: self.table.clone(),
                        message: "not read".to_owned(),
                    }))
                }
            };
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

// ------------------------------------------------------------------ a stream batch's ledger work

/// Rounds [`Ledger::record_work`] makes of its reads, and of its writes, before it reports what is
/// still unsettled.
pub const WORK_ROUNDS: usize = 3;

/// One stream record's ledger work, as [`Ledger::record_work`] takes it: what it must write
/// (idempotent, conditional) and what it must read. Every field is optional; a record with none
/// costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordWork<'a> {
    /// A lock's first-seen time to remember (Gyro): the earliest time ever recorded wins.
    pub first_seen: Option<(&'a LockLocation, &'a str, DateTime<Utc>)>,
    /// A state write to remember: state path, time, Terraform's MD5. The latest write wins.
    pub state_write: Option<(&'a str, DateTime<Utc>, Option<&'a str>)>,
    /// A released lock: is lockreaper's forced-release marker there?
    pub forced: Option<(&'a LockLocation, &'a str)>,
    /// A released lock whose first-seen time the ledger must supply.
    pub needs_first_seen: Option<(&'a LockLocation, &'a str)>,
}

/// What the ledger told one record (see [`RecordWork`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkAnswers {
    /// The released lock carries lockreaper's forced-release marker.
    pub forced: bool,
    /// The released lock's first-seen time: the ledger's, or an earlier record's of the batch.
    pub first_seen: Option<DateTime<Utc>>,
}

/// A ledger item's primary key.
type ItemKey = (String, String);
type Item = HashMap<String, AttributeValue>;

/// One collapsed write of a batch: what goes into the item, and the records that depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PlannedWrite<'a> {
    /// The earliest first-seen time of the batch for one lock (`at`: ledger time format).
    FirstSeen {
        location: &'a LockLocation,
        lock_id: &'a str,
        at: String,
    },
    /// The latest state write of the batch for one state path (the later record on a tie, as
    /// the conditional put's `written_at <= :t` lets it overwrite).
    StateWrite {
        state_path: &'a str,
        at: String,
        digest: Option<&'a str>,
    },
}

/// The largest item DynamoDB stores: "The maximum item size in DynamoDB is 400 KB, which includes
/// both attribute name binary length (UTF-8 length) and attribute value lengths" (DynamoDB
/// Developer Guide, "Constraints in Amazon DynamoDB": Items).
const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The aggregate item size of one transaction: "The aggregate size of the items in the
/// transaction cannot exceed 4 MB" (DynamoDB API Reference, TransactWriteItems). A state write
/// carries the digest from the stream record as it came, so a hostile digest item could make 100
/// of them exceed it and fail the whole call with everyone in it: transactions are cut by size
/// too, with room to spare for DynamoDB's own accounting of numbers and overhead.
const MAX_TRANSACTION_BYTES: usize = 3 * 1024 * 1024;

impl PlannedWrite<'_> {
    /// The item's size as DynamoDB counts it (names and values in UTF-8 bytes), rounded up: key,
    /// its attributes, and 64 bytes for `expires_at` and number encoding.
    fn item_bytes(&self) -> usize {
        let attributes = match self {
            PlannedWrite::FirstSeen {
                location,
                lock_id,
                at,
            } => {
                lock_pk(location).len()
                    + seen_sk(lock_id).len()
                    + "first_seen".len()
                    + at.len()
                    + EXPIRES_AT.len()
            }
            PlannedWrite::StateWrite {
                state_path,
                at,
                digest,
            } => {
                state_pk(state_path).len()
                    + LAST_WRITE_SK.len()
                    + "written_at".len()
                    + at.len()
                    + digest.map_or(0, |d| "digest".len() + d.len())
            }
        };
        PK.len() + SK.len() + attributes + 64
    }

    /// Whether the item as read already holds this write or a better one, so writing it would
    /// change nothing (its condition would fail, or it would put the same values again).
    fn made_needless_by(&self, stored: Option<&Item>) -> bool {
        let Some(stored) = stored else {
            return false;
        };
        match self {
            // The condition `first_seen > :t` fails: an equal or earlier time is there.
            PlannedWrite::FirstSeen { at, .. } => {
                string_attribute(stored, "first_seen").is_some_and(|stored| stored <= *at)
            }
            // A later write is there, or exactly this one.
            PlannedWrite::StateWrite { at, digest, .. } => {
                match string_attribute(stored, "written_at") {
                    Some(stored_at) if stored_at > *at => true,
                    Some(stored_at) if stored_at == *at => {
                        string_attribute(stored, "digest").as_deref() == *digest
                    }
                    _ => false,
                }
            }
        }
    }
}

/// A batch's ledger work, planned in memory before any call.
#[derive(Debug, Default)]
struct WorkPlan<'a> {
    /// Every item to read, once each: what the records need (forced markers, first-seen times)
    /// and the items about to be written (a write the ledger already holds is left out).
    reads: Vec<ItemKey>,
    /// One write per ledger item (a transaction may not hold two actions on one item), in key
    /// order, each with the records that depend on it (those whose write it is or includes,
    /// and those that read a first-seen time an earlier record of the batch is writing).
    writes: std::collections::BTreeMap<ItemKey, (PlannedWrite<'a>, Vec<usize>)>,
    /// Per record: the items whose reading its answers need; the earliest first-seen time an
    /// earlier record of the batch records for the lock it needs one of.
    needs: Vec<RecordNeeds>,
    /// Records whose keys DynamoDB would refuse (one such key fails a whole call).
    refused: HashMap<usize, String>,
}

#[derive(Debug, Default, Clone)]
struct RecordNeeds {
    forced: Option<ItemKey>,
    first_seen: Option<ItemKey>,
    first_seen_in_batch: Option<String>,
}

/// Why a key cannot be a ledger key, if it cannot (DynamoDB Developer Guide, "Constraints in
/// Amazon DynamoDB": partition keys 1 to 2048 bytes, sort keys 1 to 1024 bytes).
fn invalid_key((pk, sk): &ItemKey) -> Option<String> {
    if pk.is_empty() || pk.len() > MAX_PARTITION_KEY_BYTES {
        return Some(format!(
            "ledger partition key of {} bytes (1 to {MAX_PARTITION_KEY_BYTES} allowed)",
            pk.len()
        ));
    }
    if sk.is_empty() || sk.len() > MAX_SORT_KEY_BYTES {
        return Some(format!(
            "ledger sort key of {} bytes (1 to {MAX_SORT_KEY_BYTES} allowed)",
            sk.len()
        ));
    }
    None
}

/// Plans a batch's ledger work (pure): the reads, the writes collapsed per item, and which record
/// depends on what. `work` is in stream order.
fn plan_work<'a>(work: &[RecordWork<'a>]) -> WorkPlan<'a> {
    let mut plan = WorkPlan {
        needs: vec![RecordNeeds::default(); work.len()],
        ..WorkPlan::default()
    };
    let mut to_read: std::collections::BTreeSet<ItemKey> = std::collections::BTreeSet::new();
    // The earliest first-seen time recorded so far in the batch, per item.
    let mut earliest: HashMap<ItemKey, String> = HashMap::new();
    for (index, record) in work.iter().enumerate() {
        let first_seen_key = record
            .first_seen
            .map(|(location, lock_id, _)| (lock_pk(location), seen_sk(lock_id)));
        let state_key = record
            .state_write
            .map(|(state_path, _, _)| (state_pk(state_path), LAST_WRITE_SK.to_owned()));
        let forced_key = record
            .forced
            .map(|(location, lock_id)| (lock_pk(location), forced_sk(lock_id)));
        let needed_key = record
            .needs_first_seen
            .map(|(location, lock_id)| (lock_pk(location), seen_sk(lock_id)));
        let refused = [&first_seen_key, &state_key, &forced_key, &needed_key]
            .into_iter()
            .flatten()
            .find_map(invalid_key);
        let oversized = record.state_write.and_then(|(state_path, at, digest)| {
            let bytes = PlannedWrite::StateWrite {
                state_path,
                at: format_time(at),
                digest,
            }
            .item_bytes();
            (bytes > MAX_ITEM_BYTES).then(|| {
                format!(
                    "its state write would be an item of {bytes} bytes (at most {MAX_ITEM_BYTES})"
                )
            })
        });
        if let Some(reason) = refused.or(oversized) {
            plan.refused.insert(index, reason);
            continue;
        }
        if let (Some(key), Some((location, lock_id, at))) = (&first_seen_key, record.first_seen) {
            let at = format_time(at);
            let (write, dependents) = plan.writes.entry(key.clone()).or_insert_with(|| {
                (
                    PlannedWrite::FirstSeen {
                        location,
                        lock_id,
                        at: at.clone(),
                    },
                    Vec::new(),
                )
            });
            if let PlannedWrite::FirstSeen { at: planned, .. } = write {
                if at < *planned {
                    *planned = at.clone();
                }
            }
            dependents.push(index);
            to_read.insert(key.clone());
        }
        if let (Some(key), Some((state_path, at, digest))) = (&state_key, record.state_write) {
            let at = format_time(at);
            let (write, dependents) = plan.writes.entry(key.clone()).or_insert_with(|| {
                (
                    PlannedWrite::StateWrite {
                        state_path,
                        at: at.clone(),
                        digest,
                    },
                    Vec::new(),
                )
            });
            if let PlannedWrite::StateWrite {
                at: planned,
                digest: planned_digest,
                ..
            } = write
            {
                if at >= *planned {
                    *planned = at.clone();
                    *planned_digest = digest;
                }
            }
            dependents.push(index);
            to_read.insert(key.clone());
        }
        if let Some(key) = forced_key {
            to_read.insert(key.clone());
            plan.needs[index].forced = Some(key);
        }
        if let Some(key) = needed_key {
            to_read.insert(key.clone());
            // An earlier record of the batch recorded a first-seen time for this lock: used in
            // memory (the ledger is not read back), and so this record depends on its write.
            if let Some(at) = earliest.get(&key) {
                plan.needs[index].first_seen_in_batch = Some(at.clone());
                if let Some((_, dependents)) = plan.writes.get_mut(&key) {
                    dependents.push(index);
                }
            }
            plan.needs[index].first_seen = Some(key);
        }
        // After this record's own needs: its first-seen time is for the records after it.
        if let (Some(key), Some((_, _, at))) = (first_seen_key, record.first_seen) {
            let at = format_time(at);
            earliest
                .entry(key)
                .and_modify(|e| {
                    if at < *e {
                        *e = at.clone();
                    }
                })
                .or_insert(at);
        }
    }
    plan.reads = to_read.into_iter().collect();
    plan
}

/// Why a transaction of ledger work wrote nothing.
enum WorkNotWritten {
    /// Cancelled: for each action, in order, `None` when its condition failed (the ledger
    /// already holds this write or a better one: settled), or why it was not applied.
    Cancelled(Vec<Option<AwsError>>),
    /// The call itself failed (perhaps after being applied: an answer lost past the SDK's
    /// retries). The conditions make a replay harmless.
    Failed(AwsError),
}

impl Ledger {
    /// Does a stream batch's ledger work — every record's first-seen time, state write,
    /// forced-release marker look-up and first-seen look-up — in a bounded number of calls
    /// whatever the batch's size, and returns one result per entry of `work`, in order.
    ///
    /// `work` is in stream order. Planned in memory first ([`plan_work`]): one write per ledger
    /// item (a state path's several writes in the batch become the newest; a lock's several
    /// first-seen times the earliest), and a first-seen time an earlier record of the batch
    /// records is used for a later record's release without reading it back. Then:
    ///
    /// 1. every item the batch needs or is about to write is read, strongly consistent, in
    ///    `BatchGetItem` calls of at most [`MAX_KEYS_PER_BATCH_GET`] keys; `UnprocessedKeys`
    ///    (and calls that failed) are read again, for [`WORK_ROUNDS`] rounds in all;
    /// 2. the writes the ledger does not already hold are made as conditional puts — first-seen
    ///    `attribute_not_exists(pk) OR first_seen > :t` (it never moves later), state write
    ///    `attribute_not_exists(pk) OR written_at <= :t` (an older write never overwrites a newer
    ///    one) — in `TransactWriteItems` calls of at most [`MAX_ACTIONS_PER_TRANSACTION`]
    ///    actions and [`MAX_TRANSACTION_BYTES`] of items, each with a `ClientRequestToken`. A
    ///    failed condition is success (the ledger holds as good a value); the other actions of a
    ///    cancelled transaction, and those of a call that failed, are tried again, for
    ///    [`WORK_ROUNDS`] rounds in all. A replay of a transaction that was applied is harmless
    ///    under the same conditions.
    ///
    /// What cannot be settled — an item unread that a record needs, a write not made — is an
    /// error for exactly the records that depend on it. Calls when nothing fails:
    /// `⌈reads / 100⌉ + ⌈writes / 100⌉`, where a record adds at most two reads and one write,
    /// so at most `3 × ⌈n / 100⌉` for `n` records (the SDK's own retries of one call aside;
    /// state writes with digests of hundreds of KB, which only a hostile digest item carries,
    /// take more transactions, 3 MiB of items each).
    pub async fn record_work(
        &self,
        work: &[RecordWork<'_>],
        token: &str,
    ) -> Vec<Result<WorkAnswers, AwsError>> {
        let plan = plan_work(work);
        let (found, unread) = self.read_items(&plan.reads).await;
        // Fixed for the whole call: a transaction resent with its ClientRequestToken must carry
        // exactly the same items (DynamoDB answers IdempotentParameterMismatch otherwise).
        let now = Utc::now();
        let mut write_errors: HashMap<&ItemKey, AwsError> = HashMap::new();
        let mut pending: Vec<(&ItemKey, &PlannedWrite)> = plan
            .writes
            .iter()
            .filter(|(key, (write, _))| {
                !(found.contains_key(*key)
                    && write.made_needless_by(found.get(*key).and_then(Option::as_ref)))
            })
            .map(|(key, (write, _))| (key, write))
            .collect();
        for round in 0..WORK_ROUNDS {
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                backoff(round).await;
            }
            let mut next = Vec::new();
            for chunk in transactions(&pending) {
                match self.write_work(chunk, token, now, round).await {
                    Ok(()) => {
                        for (key, _) in chunk {
                            write_errors.remove(key);
                        }
                    }
                    Err(WorkNotWritten::Cancelled(outcomes)) => {
                        for (&(key, write), outcome) in chunk.iter().zip(outcomes) {
                            match outcome {
                                None => {
                                    write_errors.remove(key);
                                }
                                Some(err) => {
                                    let retry = err.kind != AwsErrorKind::Other;
                                    write_errors.insert(key, err);
                                    if retry {
                                        next.push((key, write));
                                    }
                                }
                            }
                        }
                    }
                    Err(WorkNotWritten::Failed(err)) => {
                        for &(key, write) in chunk {
                            write_errors.insert(key, err.clone());
                            next.push((key, write));
                        }
                    }
                }
            }
            pending = next;
        }

        let mut results: Vec<Result<WorkAnswers, AwsError>> = (0..work.len())
            .map(|_| Ok(WorkAnswers::default()))
            .collect();
        let fail = |message: String, kind: AwsErrorKind| AwsError {
            kind,
            action: "record stream batch's ledger work",
            resource: self.table.clone(),
            message,
        };
        for (index, reason) in &plan.refused {
            results[*index] = Err(fail(
                format!("the record's ledger work cannot be written: {reason}"),
                AwsErrorKind::Other,
            ));
        }
        let unread_error = |key: &ItemKey| {
            unread.get(key).cloned().unwrap_or_else(|| {
                fail(
                    format!("{} / {} was not read", key.0, key.1),
                    AwsErrorKind::Transient,
                )
            })
        };
        for (index, needs) in plan.needs.iter().enumerate() {
            if plan.refused.contains_key(&index) {
                continue;
            }
            let mut answers = WorkAnswers::default();
            let mut error = None;
            if let Some(key) = &needs.forced {
                match found.get(key) {
                    Some(item) => answers.forced = item.is_some(),
                    None => error = Some(unread_error(key)),
                }
            }
            if let Some(key) = &needs.first_seen {
                match found.get(key) {
                    Some(item) => {
                        let stored = item
                            .as_ref()
                            .and_then(|i| string_attribute(i, "first_seen"));
                        let earliest = match (stored, needs.first_seen_in_batch.clone()) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        answers.first_seen = earliest.and_then(|at| {
                            DateTime::parse_from_rfc3339(&at)
                                .ok()
                                .map(|t| t.with_timezone(&Utc))
                        });
                    }
                    None => error = error.or_else(|| Some(unread_error(key))),
                }
            }
            if let Some(err) = error {
                results[index] = Err(AwsError {
                    message: format!(
                        "a ledger item this record needs was not read after {WORK_ROUNDS} rounds; last: {}",
                        err.message
                    ),
                    ..err
                });
            } else {
                results[index] = Ok(answers);
            }
        }
        for (key, (_, dependents)) in &plan.writes {
            let Some(err) = write_errors.get(key) else {
                continue;
            };
            for &index in dependents {
                if results[index].is_ok() {
                    results[index] = Err(AwsError {
                        message: format!(
                            "the ledger write {} / {} this record depends on was not made after {WORK_ROUNDS} rounds; last: {}",
                            key.0, key.1, err.message
                        ),
                        ..err.clone()
                    });
                }
            }
        }
        results
    }

    /// Reads `keys` (each at most once in `keys`): the items found (`None`: no such item), and
    /// why the others could not be read after [`WORK_ROUNDS`] rounds.
    async fn read_items(
        &self,
        keys: &[ItemKey],
    ) -> (HashMap<ItemKey, Option<Item>>, HashMap<ItemKey, AwsError>) {
        const ACTION: &str = "read stream batch's ledger items";
        let mut found: HashMap<ItemKey, Option<Item>> = HashMap::new();
        let mut errors: HashMap<ItemKey, AwsError> = HashMap::new();
        let mut pending: Vec<ItemKey> = keys.to_vec();
        for round in 0..WORK_ROUNDS {
            if pending.is_empty() {
                break;
            }
            if round > 0 {
                backoff(round).await;
            }
            let mut next = Vec::new();
            for chunk in pending.chunks(MAX_KEYS_PER_BATCH_GET) {
                let mut request = KeysAndAttributes::builder().consistent_read(true);
                for (pk, sk) in chunk {
                    request = request.keys(key(pk.clone(), sk.clone()));
                }
                let answer = match request.build() {
                    Ok(request) => self
                        .client
                        .batch_get_item()
                        .request_items(&self.table, request)
                        .send()
                        .await
                        .map_err(|e| AwsError::from_sdk(e, ACTION, &self.table)),
                    Err(e) => Err(AwsError {
                        kind: AwsErrorKind::Other,
                        action: ACTION,
                        resource: self.table.clone(),
                        message: e.to_string(),
                    }),
                };
                let out = match answer {
                    Ok(out) => out,
                    Err(err) => {
                        for key in chunk {
                            errors.insert(key.clone(), err.clone());
                            next.push(key.clone());
                        }
                        continue;
                    }
                };
                let key_of = |item: &Item| -> Option<ItemKey> {
                    Some((string_attribute(item, PK)?, string_attribute(item, SK)?))
                };
                // A partial answer is not an error: "If a partial result is returned, the
                // operation returns a value for UnprocessedKeys. You can use this value to retry
                // the operation" (DynamoDB API Reference, BatchGetItem). Those keys go to the
                // next round; a key neither returned nor unprocessed does not exist.
                let unprocessed: std::collections::HashSet<ItemKey> = out
                    .unprocessed_keys
                    .as_ref()
                    .and_then(|tables| tables.get(&self.table))
                    .map(|k| k.keys().iter().filter_map(key_of).collect())
                    .unwrap_or_default();
                let mut items: HashMap<ItemKey, Item> = out
                    .responses
                    .and_then(|mut tables| tables.remove(&self.table))
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|item| Some((key_of(&item)?, item)))
                    .collect();
                for key in chunk {
                    if unprocessed.contains(key) {
                        errors.insert(
                            key.clone(),
                            AwsError {
                                kind: AwsErrorKind::Transient,
                                action: ACTION,
                                resource: self.table.clone(),
                                message: "left in UnprocessedKeys".to_owned(),
                            },
                        );
                        next.push(key.clone());
                    } else {
                        errors.remove(key);
                        found.insert(key.clone(), items.remove(key));
                    }
                }
            }
            pending = next;
        }
        (found, errors)
    }

    /// One transaction of the batch's conditional puts (`chunk`: at most
    /// [`MAX_ACTIONS_PER_TRANSACTION`], one per item).
    async fn write_work(
        &self,
        chunk: &[(&ItemKey, &PlannedWrite<'_>)],
        token: &str,
        now: DateTime<Utc>,
        round: usize,
    ) -> Result<(), WorkNotWritten> {
        const ACTION: &str = "record stream batch's ledger work";
        let mut request_token = Md5::new();
        request_token.update(b"ledger-work\0");
        request_token.update(token.as_bytes());
        // A later round is a new request (see `write_claims`): the conditions, not the token,
        // make a replay of an earlier round's applied transaction harmless.
        request_token.update(round.to_be_bytes());
        let mut actions = Vec::with_capacity(chunk.len());
        for &(_, write) in chunk {
            // The key builders are named here, where the puts are built, so that the template's
            // contract test (infra/sam/test_template.py) derives the partition keys this writes.
            let (item, condition, at) = match write {
                PlannedWrite::FirstSeen {
                    location,
                    lock_id,
                    at,
                } => {
                    let mut item = key(lock_pk(location), seen_sk(lock_id));
                    item.insert("first_seen".to_owned(), s(at.clone()));
                    item.insert(EXPIRES_AT.to_owned(), expires_at(now, FIRST_SEEN_TTL));
                    (item, "attribute_not_exists(pk) OR first_seen > :t", at)
                }
                PlannedWrite::StateWrite {
                    state_path,
                    at,
                    digest,
                } => {
                    let mut item = key(state_pk(state_path), LAST_WRITE_SK);
                    item.insert("written_at".to_owned(), s(at.clone()));
                    if let Some(digest) = digest {
                        item.insert("digest".to_owned(), s(*digest));
                    }
                    (item, "attribute_not_exists(pk) OR written_at <= :t", at)
                }
            };
            for name in [PK, SK] {
                request_token.update(b"\0");
                if let Some(value) = string_attribute(&item, name) {
                    request_token.update(value.as_bytes());
                }
            }
            request_token.update(b"\0");
            request_token.update(at.as_bytes());
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .expression_attribute_values(":t", s(at.clone()))
                .build()
                .map_err(|e| WorkNotWritten::Failed(build_error(e, ACTION, &self.table)))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        // "multiple identical calls have the same effect as one single call" (DynamoDB API
        // Reference, TransactWriteItems `ClientRequestToken`): the SDK's resend after a lost
        // answer is applied once. 32 hex characters, within the parameter's 1–36. The emulator
        // (moto) ignores the token; there the conditions make the resend harmless (an equal
        // first-seen fails its condition, an equal state write puts the same values again).
        let request_token = hex::encode(request_token.finalize());
        match self.transact(actions, request_token, ACTION).await {
            Ok(()) => Ok(()),
            Err(TransactionRefused::Cancelled(reasons)) => Err(WorkNotWritten::Cancelled(
                reasons
                    .iter()
                    .map(|reason| match reason.code() {
                        // The ledger already holds this write or a better one.
                        Some("ConditionalCheckFailed") => None,
                        _ => Some(cancelled_action_error(reason, ACTION, &self.table, "item")),
                    })
                    .collect(),
            )),
            Err(TransactionRefused::Failed(err)) => Err(WorkNotWritten::Failed(err)),
        }
    }

    /// Sends `actions` as one transaction with `request_token` as its `ClientRequestToken`.
    /// `Cancelled` carries DynamoDB's per-action reasons, one per action in order (API Reference,
    /// TransactionCanceledException); a cancellation without them, or any other error, is
    /// `Failed` as a whole.
    async fn transact(
        &self,
        actions: Vec<TransactWriteItem>,
        request_token: String,
        action: &'static str,
    ) -> Result<(), TransactionRefused> {
        let count = actions.len();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .client_request_token(request_token)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            err.as_service_error()
        {
            let reasons = cancelled.cancellation_reasons();
            if reasons.len() == count {
                return Err(TransactionRefused::Cancelled(reasons.to_vec()));
            }
        }
        Err(TransactionRefused::Failed(AwsError::from_sdk(
            err,
            action,
            &self.table,
        )))
    }
}

/// A transaction action the SDK refused to build (a missing required field): a bug, not retried.
fn build_error(
    e: aws_sdk_dynamodb::error::BuildError,
    action: &'static str,
    table: &str,
) -> AwsError {
    AwsError {
        kind: AwsErrorKind::Other,
        action,
        resource: table.to_owned(),
        message: e.to_string(),
    }
}

/// Why a transaction was not applied (see [`Ledger::transact`]).
enum TransactionRefused {
    Cancelled(Vec<CancellationReason>),
    Failed(AwsError),
}

/// The error of a cancelled action that did not fail its condition. A malformed action
/// (`ValidationError`) fails again, so it is not retried; anything else (`None`: cancelled for
/// another action; `TransactionConflict`, `ThrottlingError`) is tried again.
fn cancelled_action_error(
    reason: &CancellationReason,
    action: &'static str,
    table: &str,
    what: &str,
) -> AwsError {
    let code = reason.code().unwrap_or("None");
    AwsError {
        kind: if code == "ValidationError" {
            AwsErrorKind::Other
        } else {
            AwsErrorKind::Transient
        },
        action,
        resource: table.to_owned(),
        message: match reason.message() {
            Some(message) => format!("{code}: {message}"),
            None => format!("transaction cancelled ({code} for this {what})"),
        },
    }
}

/// `writes` cut into transactions of at most [`MAX_ACTIONS_PER_TRANSACTION`] actions and
/// [`MAX_TRANSACTION_BYTES`] of items, in order.
fn transactions<'w, 'a>(
    writes: &'w [(&'a ItemKey, &'a PlannedWrite<'a>)],
) -> Vec<&'w [(&'a ItemKey, &'a PlannedWrite<'a>)]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, (_, write)) in writes.iter().enumerate() {
        let size = write.item_bytes();
        if index > start
            && (index - start == MAX_ACTIONS_PER_TRANSACTION
                || bytes + size > MAX_TRANSACTION_BYTES)
        {
            chunks.push(&writes[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < writes.len() {
        chunks.push(&writes[start..]);
    }
    chunks
}

/// The pause before a round that tries again what the last one left: AWS asks for a backoff
/// before unprocessed keys are retried ("we strongly recommend that you use an exponential
/// backoff algorithm", API Reference, BatchGetItem). 100 ms, then 200 ms.
async fn backoff(round: usize) {
    let exponent = u32::try_from(round.saturating_sub(1)).unwrap_or(0).min(4);
    tokio::time::sleep(std::time::Duration::from_millis(100 << exponent)).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, second).unwrap()
    }

    fn gyro(key: &str) -> LockLocation {
        LockLocation::DynamoDb {
            table: "gyro-locks".to_owned(),
            key_attribute: "LockKey".to_owned(),
            key: key.to_owned(),
        }
    }

    fn state(path: &str) -> ItemKey {
        (state_pk(path), LAST_WRITE_SK.to_owned())
    }

    #[test]
    fn state_writes_of_one_path_collapse_into_the_newest_and_all_depend_on_it() {
        let work = [
            RecordWork {
                state_write: Some(("b/s.tfstate", at(5), Some("d5"))),
                ..RecordWork::default()
            },
            RecordWork {
                state_write: Some(("b/s.tfstate", at(3), Some("d3"))),
                ..RecordWork::default()
            },
            // Same time as the first: the later record wins, as `written_at <= :t` lets it.
            RecordWork {
                state_write: Some(("b/s.tfstate", at(5), Some("d5b"))),
                ..RecordWork::default()
            },
            RecordWork {
                state_write: Some(("b/other.tfstate", at(1), None)),
                ..RecordWork::default()
            },
        ];
        let plan = plan_work(&work);
        assert_eq!(plan.reads.len(), 2, "one read per item: {:?}", plan.reads);
        assert_eq!(plan.writes.len(), 2);
        let (write, dependents) = &plan.writes[&state("b/s.tfstate")];
        assert_eq!(
            write,
            &PlannedWrite::StateWrite {
                state_path: "b/s.tfstate",
                at: format_time(at(5)),
                digest: Some("d5b"),
            }
        );
        assert_eq!(dependents, &vec![0, 1, 2]);
        assert_eq!(plan.writes[&state("b/other.tfstate")].1, vec![3]);
        assert!(plan.refused.is_empty());
    }

    #[test]
    fn a_first_seen_time_of_an_earlier_record_is_used_in_memory_and_the_earliest_is_written() {
        let lock = gyro("project");
        let work = [
            // A release before the INSERT in stream order: the ledger's time only.
            RecordWork {
                needs_first_seen: Some((&lock, "id")),
                forced: Some((&lock, "id")),
                ..RecordWork::default()
            },
            RecordWork {
                first_seen: Some((&lock, "id", at(9))),
                ..RecordWork::default()
            },
            RecordWork {
                first_seen: Some((&lock, "id", at(4))),
                ..RecordWork::default()
            },
            RecordWork {
                needs_first_seen: Some((&lock, "id")),
                forced: Some((&lock, "id")),
                ..RecordWork::default()
            },
        ];
        let plan = plan_work(&work);
        let seen = (lock_pk(&lock), seen_sk("id"));
        let forced = (lock_pk(&lock), forced_sk("id"));
        assert_eq!(plan.reads, {
            let mut keys = vec![seen.clone(), forced.clone()];
            keys.sort();
            keys
        });
        let (write, dependents) = &plan.writes[&seen];
        assert!(
            matches!(write, PlannedWrite::FirstSeen { at: t, .. } if *t == format_time(at(4))),
            "{write:?}"
        );
        // The writers, and the release that uses their time in memory.
        assert_eq!(dependents, &vec![1, 2, 3]);
        assert_eq!(plan.needs[0].first_seen_in_batch, None);
        assert_eq!(plan.needs[0].first_seen.as_ref(), Some(&seen));
        assert_eq!(plan.needs[3].first_seen_in_batch, Some(format_time(at(4))));
        assert_eq!(plan.needs[3].forced.as_ref(), Some(&forced));
    }

    #[test]
    fn a_record_whose_key_dynamodb_would_refuse_is_refused_alone() {
        let lock = gyro("project");
        let long_id = "7".repeat(MAX_SORT_KEY_BYTES);
        let work = [
            RecordWork {
                first_seen: Some((&lock, &long_id, at(1))),
                ..RecordWork::default()
            },
            RecordWork {
                state_write: Some(("b/s.tfstate", at(1), None)),
                ..RecordWork::default()
            },
        ];
        let plan = plan_work(&work);
        assert!(plan.refused[&0].contains("sort key"), "{:?}", plan.refused);
        assert_eq!(plan.reads, vec![state("b/s.tfstate")]);
        assert_eq!(plan.writes.len(), 1);
    }

    #[test]
    fn transactions_hold_at_most_100_actions_and_3_mib_of_items() {
        let paths: Vec<String> = (0..250).map(|i| format!("b/{i}.tfstate")).collect();
        let written = format_time(at(1));
        let small: Vec<(ItemKey, PlannedWrite)> = paths
            .iter()
            .map(|p| {
                (
                    state(p),
                    PlannedWrite::StateWrite {
                        state_path: p,
                        at: written.clone(),
                        digest: Some("9e107d9d372bb6826bd81d3542a419d6"),
                    },
                )
            })
            .collect();
        let writes: Vec<(&ItemKey, &PlannedWrite)> = small.iter().map(|(k, w)| (k, w)).collect();
        let sizes: Vec<usize> = transactions(&writes).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        // Digests of 300 KB (a hostile digest item): ten of them make 3 MB.
        let huge = "f".repeat(300 * 1024);
        let big: Vec<(ItemKey, PlannedWrite)> = paths[..25]
            .iter()
            .map(|p| {
                (
                    state(p),
                    PlannedWrite::StateWrite {
                        state_path: p,
                        at: written.clone(),
                        digest: Some(&huge),
                    },
                )
            })
            .collect();
        let writes: Vec<(&ItemKey, &PlannedWrite)> = big.iter().map(|(k, w)| (k, w)).collect();
        let chunks = transactions(&writes);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 25);
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|(_, w)| w.item_bytes()).sum();
            assert!(bytes <= MAX_TRANSACTION_BYTES, "{bytes}");
        }
        assert!(transactions(&[]).is_empty());
        // A digest that would make the item itself too large: that record alone is refused.
        let too_big = "f".repeat(MAX_ITEM_BYTES);
        let work = [
            RecordWork {
                state_write: Some(("b/s.tfstate", at(1), Some(&too_big))),
                ..RecordWork::default()
            },
            RecordWork {
                state_write: Some(("b/t.tfstate", at(1), Some("d"))),
                ..RecordWork::default()
            },
        ];
        let plan = plan_work(&work);
        assert!(plan.refused[&0].contains("bytes"), "{:?}", plan.refused);
        assert_eq!(plan.writes.len(), 1);
    }

    #[test]
    fn a_write_the_ledger_already_holds_is_needless() {
        let lock = gyro("project");
        let item = |pairs: &[(&str, &str)]| -> Item {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), s(*v)))
                .collect()
        };
        let first_seen = PlannedWrite::FirstSeen {
            location: &lock,
            lock_id: "id",
            at: format_time(at(5)),
        };
        assert!(!first_seen.made_needless_by(None));
        for (stored, needless) in [(at(4), true), (at(5), true), (at(6), false)] {
            let stored = item(&[("first_seen", &format_time(stored))]);
            assert_eq!(first_seen.made_needless_by(Some(&stored)), needless);
        }
        let write = PlannedWrite::StateWrite {
            state_path: "b/s.tfstate",
            at: format_time(at(5)),
            digest: Some("d"),
        };
        assert!(!write.made_needless_by(None));
        for (stored_at, digest, needless) in [
            (at(6), Some("x"), true),
            (at(5), Some("d"), true),
            (at(5), Some("x"), false),
            (at(5), None, false),
            (at(4), Some("d"), false),
        ] {
            let mut stored = item(&[("written_at", &format_time(stored_at))]);
            if let Some(digest) = digest {
                stored.insert("digest".to_owned(), s(digest));
            }
            assert_eq!(
                write.made_needless_by(Some(&stored)),
                needless,
                "{stored_at} {digest:?}"
            );
        }
    }
}
