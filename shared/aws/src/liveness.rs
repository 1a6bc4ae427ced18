//! Evidence that a lock's holder is alive, gathered the same way for the reaper's decisions and
//! the CLI's `locks` listing: the last state write seen on the stream or in S3 events (ledger), the state object's
//! LastModified, and whether the `-md5` digest matches the state object's MD5 (from its ETag).
//!
//! Every read that fails becomes an [`EvidenceGap`], and so does a source that was not consulted
//! (no ledger): the core's decision never mistakes "could not tell" for "no sign of life".

use lockreaper_core::coverage::{coverage, denied_gap, other_region_gap, StateLocation};
use lockreaper_core::decision::{EvidenceGap, EvidenceSource};
use std::collections::HashMap;

use lockreaper_core::policy::Liveness;
use lockreaper_core::{LockLocation, LockRecord};

use crate::error::{AwsError, AwsErrorKind};
use crate::ledger::Ledger;
use crate::lock_table::LockTable;
use crate::state::StateObjects;

/// What was found, and what could not be read (the lock is still judged on the rest).
#[derive(Debug, Default)]
pub struct LivenessEvidence {
    pub liveness: Liveness,
    /// `Some(false)`: the state object does not exist (yet); `None`: not a Terraform lock, or unread.
    pub state_exists: Option<bool>,
    /// Sources that could not be read or were not consulted, for the decision.
    pub gaps: Vec<EvidenceGap>,
    /// The read errors behind the `Unreadable` gaps, as AWS reported them.
    pub errors: Vec<AwsError>,
    /// AWS calls made.
    pub calls: usize,
}

/// Gathers liveness evidence for `lock`. `digest` is the lock table's `-md5` item value for the
/// lock's state path, when there is one; `ledger` is optional for read-only callers without one.
///
/// `covered` is where this deployment may read state objects (`STATE_BUCKETS`): a state outside
/// it is not read at all and becomes a [`GapCause::NotCovered`] gap, decided from the
/// configuration (in AWS the read would be refused by IAM; on an emulator without IAM it could
/// succeed, and evidence this deployment is not meant to have must not decide). `None`: the caller
/// has no configured coverage, and only a read refused (AccessDenied) or sent to another region
/// says the state is not covered. Either way, such a read error is a coverage gap, not a transient
/// "could not read".
///
/// [`GapCause::NotCovered`]: lockreaper_core::decision::GapCause::NotCovered
pub async fn gather_liveness(
    lock: &LockRecord,
    ledger: Option<&Ledger>,
    state: &StateObjects,
    digest: Option<&str>,
    covered: Option<&[StateLocation]>,
) -> LivenessEvidence {
    let mut evidence = LivenessEvidence::default();
    match ledger {
        Some(ledger) => {
            evidence.calls += 1;
            match ledger.last_state_write(&lock.state_path).await {
                Ok(write) => evidence.liveness.last_state_write = write.map(|w| w.written_at),
                Err(e) => {
                    evidence.gaps.push(EvidenceGap::unreadable(
                        EvidenceSource::StateWriteLedger,
                        e.to_string(),
                    ));
                    evidence.errors.push(e);
                }
            }
        }
        None => evidence.gaps.push(EvidenceGap::missing(
            EvidenceSource::StateWriteLedger,
            "no ledger table configured (LEDGER_TABLE), so state writes seen on the stream or in S3 events are unknown",
        )),
    }
    if let Some(path) = lock.terraform_state() {
        if let Some(gap) = covered.and_then(|c| coverage(c, &path).gap()) {
            evidence.gaps.push(gap);
            return evidence;
        }
        evidence.calls += 1;
        match state.head(&path).await {
            Ok(Some(object)) => {
                evidence.state_exists = Some(true);
                evidence.liveness.state_last_modified = object.last_modified;
                if let (Some(digest), Some(md5)) = (digest, object.md5_from_etag()) {
                    evidence.liveness.digest_matches_state =
                        Some(digest.eq_ignore_ascii_case(&md5));
                }
            }
            Ok(None) => evidence.state_exists = Some(false),
            Err(e) if e.kind == AwsErrorKind::AccessDenied => {
                evidence.gaps.push(denied_gap(&path, &e.message));
                evidence.errors.push(e);
            }
            Err(e) if e.kind == AwsErrorKind::WrongRegion => {
                evidence.gaps.push(other_region_gap(&path, &e.message));
                evidence.errors.push(e);
            }
            Err(e) => {
                evidence.gaps.push(EvidenceGap::unreadable(
                    EvidenceSource::StateObject,
                    e.to_string(),
                ));
                evidence.errors.push(e);
            }
        }
    }
    evidence
}

/// Whether each lock table has a stream (`Err`: DescribeTable failed, with the error as text).
pub type TableStreams = HashMap<String, Result<bool, String>>;

/// Learns whether `table` has a stream, once: a table already in `streams` costs no call.
/// Returns whether a call was made.
pub async fn learn_table_stream(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    streams: &mut TableStreams,
) -> bool {
    if streams.contains_key(table) {
        return false;
    }
    let status = LockTable::new(dynamodb.clone(), table)
        .stream_enabled()
        .await
        .map_err(|e| e.to_string());
    streams.insert(table.to_owned(), status);
    true
}

/// The gap a Terraform lock in a DynamoDB table has when that table has no stream (lock-metrics
/// never sees its state writes, so the ledger holds no evidence for it), or when whether it has
/// one could not be learnt. `None` for other locks, and for tables not in `streams`.
pub fn stream_gap(lock: &LockRecord, streams: &TableStreams) -> Option<EvidenceGap> {
    let LockLocation::DynamoDb { table, .. } = &lock.location else {
        return None;
    };
    if !lock.kind.state_writes_on_table_stream() {
        return None;
    }
    match streams.get(table)? {
        Ok(true) => None,
        Ok(false) => Some(EvidenceGap::missing(
            EvidenceSource::StateWriteLedger,
            format!(
                "lock table {table} has no stream, so lock-metrics never sees its state writes"
            ),
        )),
        Err(problem) => Some(EvidenceGap::unreadable(
            EvidenceSource::StateWriteLedger,
            problem.clone(),
        )),
    }
}
