//! Gathering what the core's decision weighs: the inventory of every lock, a Gyro lock's
//! first-seen time, liveness evidence, the stored alert state with its open proposals, the snooze.
//! Reads only (besides recording a first-seen time the ledger did not have).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lockreaper_aws::alert_state::StoredAlert;
use lockreaper_aws::inventory::{InventoryScope, LockFileBodies};
use lockreaper_aws::liveness::{gather_liveness, stream_gap, TableStreams};
use lockreaper_aws::AwsError;
use lockreaper_core::decision::{EvidenceGap, OpenProposal};
use lockreaper_core::policy::Liveness;
use lockreaper_core::proposal::{Proposal, ProposalStatus};
use lockreaper_core::{DigestRecord, LockLocation, LockParseError, LockRecord};

use crate::{log_error, Reaper, SweepOutcome};

/// The evidence of one lock besides the lock itself ([`Reaper::gather`]).
pub(crate) struct Gathered {
    pub liveness: Liveness,
    pub gaps: Vec<EvidenceGap>,
    pub stored: Option<StoredAlert>,
    pub snoozed_until: Option<DateTime<Utc>>,
    /// The open proposals' records as read, so a re-offer does not read them again.
    pub open_records: HashMap<String, Proposal>,
    /// The alert state or the snooze could not be read: the plan is made (for the report) but
    /// not carried out, since acting on half the picture could send a duplicate alert or expire a
    /// snoozed lock.
    pub unreadable_context: bool,
}

impl Reaper {
    /// Reads every lock ([`take_inventory`]); lock file bodies only for files old enough to matter.
    pub(crate) async fn take_stock(
        &self,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) -> (Vec<LockRecord>, Vec<DigestRecord>, Vec<LockParseError>) {
        let scope = InventoryScope {
            tables: &self.config.sources.tables,
            buckets: &self.config.sources.buckets,
            scan_segments: self.config.scan_segments,
            lock_file_bodies: LockFileBodies::OldEnough {
                now,
                min_age: self.config.policy.min_warn_after(),
            },
        };
        let inventory = self.readers.take_inventory(&scope).await;
        out.aws_calls += inventory.calls;
        out.young_lock_files += inventory.young_lock_files;
        out.incomplete_sources
            .extend(inventory.incomplete_sources());
        for unreachable in &inventory.unreachable {
            log_error("unreachable", &unreachable.error);
            out.unreachable.push(unreachable.to_string());
        }
        (inventory.locks, inventory.digests, inventory.malformed)
    }

    /// Everything besides the lock that the decision weighs: liveness evidence and its gaps, the
    /// stored alert state (with the open proposals still open), the snooze. Evidence costs calls:
    /// nothing is read unless `may_act`.
    pub(crate) async fn gather(
        &self,
        primary: &LockRecord,
        may_act: bool,
        digests: &HashMap<&str, &DigestRecord>,
        streams: &mut TableStreams,
        out: &mut SweepOutcome,
    ) -> Gathered {
        let (liveness, gaps) = if may_act {
            self.liveness(primary, digests, streams, out).await
        } else {
            (Liveness::default(), Vec::new())
        };
        // The alert state (with the lock's open proposals) and the snooze. If either cannot be
        // read the plan is still made (for the report) but not carried out: acting on half the
        // picture could send a duplicate alert or expire a snoozed lock.
        let mut unreadable_context = false;
        // A lock file is the primary only when no DynamoDB item of the same lock was read, and a
        // lock's alert state is kept under its primary's location. If a lock table was not fully
        // read in this sweep, this lock file's item may exist unseen, and the lock's alert state
        // with it: judged by the file alone, an already alerted lock would look new and be
        // alerted again (found by the alerts fault scenario, seed 12). Make the plan, act on none.
        if matches!(primary.location, LockLocation::S3 { .. })
            && self
                .config
                .sources
                .tables
                .iter()
                .any(|table| out.incomplete_sources.contains(table))
        {
            unreadable_context = true;
        }
        // The open proposals' records as read here, so a re-offer does not read them again.
        let mut open_records = HashMap::new();
        let (stored, snoozed_until) = if may_act {
            let mut stored = match self.stored_alert(primary).await {
                Ok(s) => s,
                Err(e) => {
                    unreadable_context = true;
                    out.errors.push(e.to_string());
                    None
                }
            };
            if let Some(s) = stored.as_mut() {
                open_records = self
                    .forget_closed_proposals(&mut s.state.open_proposals, out)
                    .await;
            }
            let snoozed_until = match self
                .proposals
                .read_snooze(&primary.location, &primary.lock_id)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    unreadable_context = true;
                    out.errors.push(e.to_string());
                    None
                }
            };
            (stored, snoozed_until)
        } else {
            (None, None)
        };
        Gathered {
            liveness,
            gaps,
            stored,
            snoozed_until,
            open_records,
            unreadable_context,
        }
    }

    /// Drops the proposals a person already used or denied (or force-unlock withdrew) from the
    /// list the decision re-offers from; one whose status cannot be read is kept (re-offering a
    /// closed proposal only earns a "no longer usable" answer, never an unlock). Returns the
    /// records read of those still open, by proposal ID.
    pub(crate) async fn forget_closed_proposals(
        &self,
        open: &mut Vec<OpenProposal>,
        out: &mut SweepOutcome,
    ) -> HashMap<String, Proposal> {
        let mut still_open = Vec::with_capacity(open.len());
        let mut records = HashMap::new();
        for proposal in open.drain(..) {
            match self.proposals.get(&proposal.proposal_id).await {
                Ok(Some((record, ProposalStatus::Open))) => {
                    records.insert(proposal.proposal_id.clone(), record);
                    still_open.push(proposal);
                }
                Ok(_) => {}
                Err(e) => {
                    out.errors.push(e.to_string());
                    still_open.push(proposal);
                }
            }
        }
        *open = still_open;
        records
    }

    pub(crate) async fn first_seen(
        &self,
        lock: &LockRecord,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) -> Option<DateTime<Utc>> {
        match self.ledger.first_seen(&lock.location, &lock.lock_id).await {
            Ok(Some(at)) => Some(at),
            Ok(None) => match self
                .ledger
                .record_first_seen(&lock.location, &lock.lock_id, now)
                .await
            {
                Ok(true) => Some(now),
                // The stream consumer recorded it between our read and write: use its time.
                Ok(false) => self
                    .ledger
                    .first_seen(&lock.location, &lock.lock_id)
                    .await
                    .ok()
                    .flatten(),
                Err(e) => {
                    out.errors.push(e.to_string());
                    None
                }
            },
            Err(e) => {
                out.errors.push(e.to_string());
                None
            }
        }
    }

    /// Liveness evidence and what could not be read of it (read errors also go to `out.errors`).
    /// A Terraform lock in a table without a stream has no state writes in the ledger: a missing
    /// source. Each table is described at most once per sweep (`streams`).
    pub(crate) async fn liveness(
        &self,
        lock: &LockRecord,
        digests: &HashMap<&str, &DigestRecord>,
        streams: &mut TableStreams,
        out: &mut SweepOutcome,
    ) -> (Liveness, Vec<EvidenceGap>) {
        if let LockLocation::DynamoDb { table, .. } = &lock.location {
            if lock.kind.state_writes_on_table_stream()
                && self.readers.learn_table_stream(table, streams).await
            {
                out.aws_calls += 1;
                if let Some(Err(problem)) = streams.get(table) {
                    tracing::error!(event = "liveness-unreadable", error = %problem);
                    out.errors.push(problem.clone());
                }
            }
        }
        let mut gaps: Vec<EvidenceGap> = stream_gap(lock, streams).into_iter().collect();
        let digest = digests
            .get(lock.state_path.as_str())
            .and_then(|d| d.digest.as_deref());
        let evidence = gather_liveness(
            lock,
            Some(&self.ledger),
            &self.readers.state_objects(),
            digest,
            Some(&self.config.sources.state_locations),
        )
        .await;
        out.aws_calls += evidence.calls;
        for e in &evidence.errors {
            log_error("liveness-unreadable", e);
            out.errors.push(e.to_string());
        }
        gaps.extend(evidence.gaps);
        (evidence.liveness, gaps)
    }

    pub(crate) async fn stored_alert(
        &self,
        lock: &LockRecord,
    ) -> Result<Option<StoredAlert>, AwsError> {
        let key = lock.location.ledger_key();
        Ok(self
            .alert_states
            .list(lock.location.container())
            .await?
            .into_iter()
            .find(|s| s.location.ledger_key() == key))
    }
}
