//! Proposals and snoozes in the ledger table: what the reaper offered for unlock, whether that offer
//! was used, and which locks people asked to hear nothing about for a while.
//!
//! # Items
//!
//! | `pk` | `sk` | attributes | expires |
//! | --- | --- | --- | --- |
//! | `proposal#<proposal id>` | `proposal` | `proposal` (S, JSON of [`Proposal`]), `status` (S: `open` \| `used` \| `denied` \| `withdrawn`), `withdrawn_reason` (S, once withdrawn), and once decided: `decided_at` (S), `decided_by` (S, the approver when named), `decided_via` (S, [`ApprovalSource`]), `delivery` (S, the SNS MessageId that decided it), `audit_id` (S, an approval's audit record, from its claim on), `lease_until` (S, an approval's claim: until when its holder may still be running); after an unlock: `completed_at`, `result`, `audit_id` | `proposal.expires_at` + 7 days |
//! | `lock#<LockLocation::ledger_key()>` | `snooze` | `until` (S, RFC 3339), `by` (S, optional), `reason` (S, optional), `lock_id` (S) | `until` + 1 day |
//!
//! # Single use
//!
//! An approval uses its proposal with one `UpdateItem … SET status = used` conditional on
//! `status = open` ([`Proposals::claim`]). DynamoDB applies conditional writes one at a time, so of
//! any number of concurrent or replayed approvals exactly one finds the proposal open. The claim
//! records the SNS `MessageId` of the delivery that made it (`delivery`), which is what lets the
//! function tell a *retry of the same delivery* (Lambda's async retries and SNS redeliveries reuse
//! the MessageId) from a *replay* (anyone publishing the token again gets a new MessageId); see
//! [`Claim::Resumed`].
//!
//! # Leases and takeover
//!
//! A claim is held by a running invocation, and no invocation runs past the function's timeout.
//! So an approval's claim carries `lease_until` (the claim time plus that timeout and a margin):
//! a claim still unfinished after it belongs to an attempt that is over, however it ended — even
//! one that could neither finish nor give its claim back (its reads and its give-back all
//! failed). Another delivery (a new press, a redelivery) may then take the claim over
//! ([`Claim::TakenOver`]), conditionally on the exact claim it read (`delivery` and
//! `lease_until`), so of concurrent takers one wins; it keeps the claim's `audit_id` and
//! `decided_at`, so it resumes the earlier attempt's audit record rather than starting a second.
//! The final check and the conditional deletes still decide what is deleted.
//!
//! A claim given back after its unlock began (a delete failed) keeps `audit_id` and
//! `decided_at` on the open proposal ([`Proposals::release`] with `keep_audit`), and the next
//! claim inherits them (`if_not_exists`), again resuming that audit record
//! ([`Claim::TakenOver`]): one unlock, one audit record, however many attempts it takes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use lockreaper_core::approval::ApprovalSource;
use lockreaper_core::proposal::{Proposal, ProposalStatus};
use lockreaper_core::LockLocation;

use crate::error::{AwsError, AwsErrorKind};
use crate::ledger_schema::{
    expires_at, format_time, key, lock_pk, proposal_pk, s, string_attribute as string,
    time_attribute as time, EXPIRES_AT, PROPOSAL_RETENTION, PROPOSAL_SK, SNOOZE_RETENTION,
    SNOOZE_SK,
};

const STATUS: &str = "status";

/// Who is deciding, for the proposal item.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    /// As named in the message; chat buttons name nobody.
    pub approver: Option<&'a str>,
    pub source: ApprovalSource,
    /// The SNS `MessageId` of the delivery: identical on Lambda's retries of that delivery.
    pub delivery: &'a str,
    /// Approvals only: the id of the audit record this claim's unlock writes, stored with the
    /// claim so that a resumed attempt of the same delivery ([`Claim::Resumed`]) writes and finds
    /// that same record instead of starting a second one.
    pub audit_id: Option<&'a str>,
    /// Approvals only: until when this claim's holder may still be running (its invocation's
    /// start plus the function timeout and a margin). Past it, another delivery may take the
    /// claim over ([`Claim::TakenOver`]).
    pub lease_until: Option<DateTime<Utc>>,
}

/// Who decided a proposal before, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decided {
    pub at: Option<DateTime<Utc>>,
    pub by: Option<String>,
    pub via: Option<String>,
    pub delivery: Option<String>,
    /// Set once an approved unlock finished (any result).
    pub completed_at: Option<DateTime<Utc>>,
    pub result: Option<String>,
    pub audit_id: Option<String>,
    /// An approval's claim: until when its holder may still be running.
    pub lease_until: Option<DateTime<Utc>>,
    /// Why the proposal was withdrawn (the lock showed signs of life), once it was.
    pub withdrawn_reason: Option<String>,
}

/// A proposal as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRecord {
    pub proposal: Proposal,
    pub status: ProposalStatus,
    pub decided: Decided,
}

/// What [`Proposals::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This delivery took the proposal: go ahead and unlock.
    Claimed,
    /// This same delivery (same SNS MessageId) claimed the proposal before and never recorded a
    /// finished unlock: the earlier attempt crashed, timed out, or failed transiently and could
    /// not release its claim. Going ahead is safe: every delete is conditional on the proposed
    /// lock, and the earlier attempt's audit record (its id and time in the [`Decided`]) says
    /// what it did.
    Resumed(Decided),
    /// This delivery took over an earlier attempt's unfinished unlock, with its audit id and
    /// claim time (in the [`Decided`]): either the proposal was open again after a claim given
    /// back once its unlock had begun (a delete failed), or another delivery's claim was still
    /// unfinished past its lease (that attempt is over). Go ahead as for [`Claim::Resumed`].
    TakenOver(Decided),
    /// This same delivery already finished: a duplicate delivery. Do nothing, say nothing.
    Duplicate(Decided),
    /// Another delivery used the proposal (a replay, or a second click).
    AlreadyUsed(Decided),
    Denied(Decided),
    /// The reaper withdrew the proposal: the lock showed signs of life after it.
    Withdrawn(Decided),
    /// No such proposal (never recorded, or expired and removed).
    Unknown,
}

/// What [`Proposals::deny`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deny {
    Denied,
    AlreadyDenied(Decided),
    AlreadyUsed(Decided),
    Withdrawn(Decided),
    Unknown,
}

/// How [`Proposals::decide_or_read`] went. One value per call, returned and matched at once, so
/// the size of the record it may carry costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
enum Attempt {
    /// This call moved the proposal: the decision as now stored.
    Made(Decided),
    /// It was not open: the proposal as read after the refused write (`None`: no such
    /// proposal); `retried` when it was found open once and a second write was refused too.
    Refused {
        record: Option<ProposalRecord>,
        retried: bool,
    },
}

/// Proposals and snoozes in the ledger table.
#[derive(Clone, Debug)]
pub struct Proposals {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// The decision attributes of a proposal item.
fn decided_of(item: &HashMap<String, AttributeValue>) -> Decided {
    Decided {
        at: time(item, "decided_at"),
        by: string(item, "decided_by"),
        via: string(item, "decided_via"),
        delivery: string(item, "delivery"),
        completed_at: time(item, "completed_at"),
        result: string(item, "result"),
        audit_id: string(item, "audit_id"),
        lease_until: time(item, "lease_until"),
        withdrawn_reason: string(item, "withdrawn_reason"),
    }
}

/// The outcome of a conditional write that returns the item as written (`ALL_NEW`): `Some` with
/// it when applied, `None` when its condition failed.
fn written<O, E>(
    result: Result<O, SdkError<E, HttpResponse>>,
    attributes: impl FnOnce(O) -> Option<HashMap<String, AttributeValue>>,
    action: &'static str,
    table: &str,
) -> Result<Option<HashMap<String, AttributeValue>>, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(attributes(out).unwrap_or_default())),
        Err(e) => {
            let err = AwsError::from_sdk(e, action, table);
            if err.is_condition_failed() {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// What a claim refused with the proposal as read (`None`: no such proposal) comes to.
fn refused(record: Option<ProposalRecord>, claimant: &Claimant<'_>) -> Claim {
    let Some(record) = record else {
        return Claim::Unknown;
    };
    match record.status {
        ProposalStatus::Used
            if record.decided.completed_at.is_some()
                && !claimant.delivery.is_empty()
                && record.decided.delivery.as_deref() == Some(claimant.delivery) =>
        {
            Claim::Duplicate(record.decided)
        }
        ProposalStatus::Denied => Claim::Denied(record.decided),
        ProposalStatus::Withdrawn => Claim::Withdrawn(record.decided),
        ProposalStatus::Used | ProposalStatus::Open => Claim::AlreadyUsed(record.decided),
    }
}

fn parse_status(text: &str) -> Option<ProposalStatus> {
    match text {
        "open" => Some(ProposalStatus::Open),
        "used" => Some(ProposalStatus::Used),
        "denied" => Some(ProposalStatus::Denied),
        "withdrawn" => Some(ProposalStatus::Withdrawn),
        _ => None,
    }
}

impl Proposals {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Proposals {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn error(&self, action: &'static str, message: String) -> AwsError {
        AwsError {
            kind: AwsErrorKind::Other,
            action,
            resource: self.table.clone(),
            message,
        }
    }

    /// Records a new proposal (status `open`). Refuses to overwrite an existing one: a proposal id
    /// is 12 random bytes, so a collision means a bug, reported as a `ConditionFailed` error.
    pub async fn put(&self, proposal: &Proposal) -> Result<(), AwsError> {
        let json = serde_json::to_string(proposal)
            .map_err(|e| self.error("encode proposal for", e.to_string()))?;
        let mut item = key(proposal_pk(&proposal.proposal_id), PROPOSAL_SK);
        item.insert("proposal".to_owned(), s(json));
        item.insert(STATUS.to_owned(), s(ProposalStatus::Open.as_str()));
        item.insert(
            EXPIRES_AT.to_owned(),
            expires_at(proposal.expires_at, PROPOSAL_RETENTION),
        );
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "record proposal in ledger", &self.table))?;
        Ok(())
    }

    /// The proposal and its status (strongly consistent).
    pub async fn get(
        &self,
        proposal_id: &str,
    ) -> Result<Option<(Proposal, ProposalStatus)>, AwsError> {
        Ok(self
            .record(proposal_id)
            .await?
            .map(|r| (r.proposal, r.status)))
    }

    /// The proposal with its status and decision record (strongly consistent).
    pub async fn record(&self, proposal_id: &str) -> Result<Option<ProposalRecord>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(proposal_pk(proposal_id), PROPOSAL_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "read proposal from ledger", &self.table))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let json = string(&item, "proposal").ok_or_else(|| {
            self.error(
                "read proposal from ledger",
                format!("proposal {proposal_id:?} has no `proposal` string attribute"),
            )
        })?;
        let proposal: Proposal = serde_json::from_str(&json).map_err(|e| {
            self.error(
                "read proposal from ledger",
                format!("proposal {proposal_id:?} does not decode: {e}"),
            )
        })?;
        let status_text = string(&item, STATUS).unwrap_or_default();
        let status = parse_status(&status_text).ok_or_else(|| {
            self.error(
                "read proposal from ledger",
                format!("proposal {proposal_id:?} has an unknown status {status_text:?}"),
            )
        })?;
        Ok(Some(ProposalRecord {
            proposal,
            status,
            decided: decided_of(&item),
        }))
    }

    /// Moves an open proposal to `to`, conditional on `status = open`. `Ok(Some(decision))` (as
    /// now stored) when this call made the change, `Ok(None)` when the proposal was not open (or
    /// not there). A claim inherits the audit id and claim time a given-back claim left on the
    /// proposal (see the module docs).
    async fn decide(
        &self,
        proposal_id: &str,
        to: ProposalStatus,
        claimant: &Claimant<'_>,
        now: DateTime<Utc>,
        action: &'static str,
    ) -> Result<Option<Decided>, AwsError> {
        let mut set = vec![
            "#status = :to",
            "decided_via = :via",
            "delivery = :delivery",
        ];
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(proposal_pk(proposal_id), PROPOSAL_SK)))
            // `status` is a DynamoDB reserved word.
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":open", s(ProposalStatus::Open.as_str()))
            .expression_attribute_values(":at", s(format_time(now)))
            .expression_attribute_values(":via", s(claimant.source.as_str()))
            .expression_attribute_values(":delivery", s(claimant.delivery))
            .condition_expression("attribute_exists(pk) AND #status = :open")
            .return_values(ReturnValue::AllNew);
        if let Some(approver) = claimant.approver {
            set.push("decided_by = :by");
            request = request.expression_attribute_values(":by", s(approver));
        }
        if let Some(audit_id) = claimant.audit_id {
            // Kept together by a give-back after a begun unlock, removed together otherwise.
            set.push("audit_id = if_not_exists(audit_id, :audit)");
            set.push("decided_at = if_not_exists(decided_at, :at)");
            request = request.expression_attribute_values(":audit", s(audit_id));
        } else {
            set.push("decided_at = :at");
        }
        if let Some(lease_until) = claimant.lease_until {
            set.push("lease_until = :lease");
            request = request.expression_attribute_values(":lease", s(format_time(lease_until)));
        }
        let update = format!("SET {}", set.join(", "));
        let item = written(
            request.update_expression(update).send().await,
            |out| out.attributes,
            action,
            &self.table,
        )?;
        Ok(item.map(|item| decided_of(&item)))
    }

    /// Moves an open proposal to `to`; when that write is refused, reads the proposal to say why.
    /// Open again (a claim given back between the write and the read): tries once more rather
    /// than loop. The shape both [`Proposals::claim`] and [`Proposals::deny`] share.
    async fn decide_or_read(
        &self,
        proposal_id: &str,
        to: ProposalStatus,
        claimant: &Claimant<'_>,
        now: DateTime<Utc>,
        action: &'static str,
    ) -> Result<Attempt, AwsError> {
        if let Some(decided) = self.decide(proposal_id, to, claimant, now, action).await? {
            return Ok(Attempt::Made(decided));
        }
        let first = self.record(proposal_id).await?;
        if !first
            .as_ref()
            .is_some_and(|r| r.status == ProposalStatus::Open)
        {
            return Ok(Attempt::Refused {
                record: first,
                retried: false,
            });
        }
        if let Some(decided) = self.decide(proposal_id, to, claimant, now, action).await? {
            return Ok(Attempt::Made(decided));
        }
        Ok(Attempt::Refused {
            record: self.record(proposal_id).await?,
            retried: true,
        })
    }

    /// Uses the proposal for an approved unlock, at most once (see the module docs). On a lost
    /// race the proposal is re-read to say why. A claim of this same delivery is resumed (its
    /// lease renewed), another delivery's unfinished claim past its lease taken over.
    pub async fn claim(
        &self,
        proposal_id: &str,
        claimant: &Claimant<'_>,
        now: DateTime<Utc>,
    ) -> Result<Claim, AwsError> {
        let attempt = self
            .decide_or_read(
                proposal_id,
                ProposalStatus::Used,
                claimant,
                now,
                "claim proposal in ledger",
            )
            .await?;
        let (record, retried) = match attempt {
            Attempt::Made(decided) => {
                // The audit id kept by a given-back claim, not this claimant's own: resume it.
                let inherited =
                    claimant.audit_id.is_some() && decided.audit_id.as_deref() != claimant.audit_id;
                return Ok(if inherited {
                    Claim::TakenOver(decided)
                } else {
                    Claim::Claimed
                });
            }
            Attempt::Refused {
                record: None,
                retried: _,
            } => return Ok(Claim::Unknown),
            Attempt::Refused {
                record: Some(record),
                retried,
            } => (record, retried),
        };
        let ours = record.decided.delivery.as_deref() == Some(claimant.delivery)
            && !claimant.delivery.is_empty();
        let unfinished =
            record.status == ProposalStatus::Used && record.decided.completed_at.is_none();
        // Only at the first read: after a second attempt, a use is someone else's.
        let renew = unfinished && ours && !retried;
        if renew && claimant.lease_until.is_none() {
            return Ok(Claim::Resumed(record.decided));
        }
        let lease_over = record.decided.lease_until.is_some_and(|until| until <= now);
        let take_over = unfinished && !ours && lease_over && claimant.lease_until.is_some();
        // Renewing keeps any other delivery from taking over while this attempt runs.
        if renew || take_over {
            return Ok(
                match self
                    .take_over(proposal_id, claimant, &record.decided)
                    .await?
                {
                    Ok(decided) if renew => Claim::Resumed(decided),
                    Ok(decided) => Claim::TakenOver(decided),
                    Err(now_stored) => refused(now_stored, claimant),
                },
            );
        }
        Ok(refused(Some(record), claimant))
    }

    /// Moves an unfinished claim to `claimant` (a new delivery, or the same one renewing its
    /// lease), conditional on the claim exactly as `seen` (its delivery and lease), keeping its
    /// audit id and claim time. `Ok(Ok(decision))` as now stored when this call moved it;
    /// `Ok(Err(record))` as read after a refused write. A write whose answer was lost (its retry
    /// refused) is recognised by the delivery and lease it wrote.
    async fn take_over(
        &self,
        proposal_id: &str,
        claimant: &Claimant<'_>,
        seen: &Decided,
    ) -> Result<Result<Decided, Option<ProposalRecord>>, AwsError> {
        const ACTION: &str = "take over proposal claim in ledger";
        let (Some(seen_delivery), Some(lease_until)) =
            (seen.delivery.as_deref(), claimant.lease_until)
        else {
            return Ok(Err(self.record(proposal_id).await?));
        };
        let lease = format_time(lease_until);
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(proposal_pk(proposal_id), PROPOSAL_SK)))
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":used", s(ProposalStatus::Used.as_str()))
            .expression_attribute_values(":seen", s(seen_delivery))
            .expression_attribute_values(":delivery", s(claimant.delivery))
            .expression_attribute_values(":via", s(claimant.source.as_str()))
            .expression_attribute_values(":lease", s(lease.clone()))
            .return_values(ReturnValue::AllNew);
        let mut condition =
            "#status = :used AND delivery = :seen AND attribute_not_exists(completed_at) AND "
                .to_owned();
        match seen.lease_until {
            Some(seen_lease) => {
                condition.push_str("lease_until = :seen_lease");
                request =
                    request.expression_attribute_values(":seen_lease", s(format_time(seen_lease)));
            }
            None => condition.push_str("attribute_not_exists(lease_until)"),
        }
        let update = match claimant.approver {
            Some(approver) => {
                request = request.expression_attribute_values(":by", s(approver));
                "SET delivery = :delivery, lease_until = :lease, decided_via = :via, decided_by = :by"
            }
            None => "SET delivery = :delivery, lease_until = :lease, decided_via = :via REMOVE decided_by",
        };
        let item = written(
            request
                .condition_expression(condition)
                .update_expression(update)
                .send()
                .await,
            |out| out.attributes,
            ACTION,
            &self.table,
        )?;
        if let Some(item) = item {
            return Ok(Ok(decided_of(&item)));
        }
        let now_stored = self.record(proposal_id).await?;
        match now_stored {
            Some(r)
                if r.status == ProposalStatus::Used
                    && r.decided.completed_at.is_none()
                    && r.decided.delivery.as_deref() == Some(claimant.delivery)
                    && r.decided.lease_until.map(format_time).as_deref()
                        == Some(lease.as_str()) =>
            {
                Ok(Ok(r.decided))
            }
            other => Ok(Err(other)),
        }
    }

    /// Gives a claim back after an unlock that failed, so the proposal can be approved again (by
    /// a retry, or a person). Only the delivery that claimed it can release it, and only while no
    /// finished unlock is recorded. `keep_audit`: the unlock began (an audit record was written),
    /// so the claim's audit id and time stay on the proposal and the next claim resumes that
    /// record (see the module docs). `Ok(false)` when it was not ours to release.
    pub async fn release(
        &self,
        proposal_id: &str,
        delivery: &str,
        keep_audit: bool,
    ) -> Result<bool, AwsError> {
        let update = if keep_audit {
            "SET #status = :open REMOVE decided_by, decided_via, delivery, lease_until"
        } else {
            "SET #status = :open REMOVE decided_at, decided_by, decided_via, delivery, audit_id, lease_until"
        };
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(proposal_pk(proposal_id), PROPOSAL_SK)))
            .update_expression(update)
            .condition_expression(
                "#status = :used AND delivery = :delivery AND attribute_not_exists(completed_at)",
            )
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":open", s(ProposalStatus::Open.as_str()))
            .expression_attribute_values(":used", s(ProposalStatus::Used.as_str()))
            .expression_attribute_values(":delivery", s(delivery))
            .send()
            .await;
        AwsError::conditional(result, "release proposal claim in ledger", &self.table)
    }

    /// Withdraws an open proposal because the lock showed signs of life after it (the reaper):
    /// its approval is refused from now on. `Ok(false)` when it was no longer open (used, denied,
    /// withdrawn already, or gone).
    pub async fn withdraw(
        &self,
        proposal_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(proposal_pk(proposal_id), PROPOSAL_SK)))
            .update_expression(
                "SET #status = :withdrawn, decided_at = :at, withdrawn_reason = :reason",
            )
            .condition_expression("attribute_exists(pk) AND #status = :open")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_values(":withdrawn", s(ProposalStatus::Withdrawn.as_str()))
            .expression_attribute_values(":open", s(ProposalStatus::Open.as_str()))
            .expression_attribute_values(":at", s(format_time(now)))
            .expression_attribute_values(":reason", s(reason))
            .send()
            .await;
        AwsError::conditional(result, "withdraw proposal in ledger", &self.table)
    }

    /// Withdraws a proposal this delivery claimed, when force-unlock's final check finds the lock
    /// alive after the proposal: nothing was deleted and the approval can never be used again.
    /// `Ok(false)` when it was not this delivery's unfinished claim.
    pub async fn withdraw_claimed(
        &self,
        proposal_id: &str,
        delivery: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(proposal_pk(proposal_id), PROPOSAL_SK)))
            .update_expression("SET #status = :withdrawn, completed_at = :at, withdrawn_reason = :reason, #result = :result")
            .condition_expression(
                "#status = :used AND delivery = :delivery AND attribute_not_exists(completed_at)",
            )
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#result", "result")
            .expression_attribute_values(":withdrawn", s(ProposalStatus::Withdrawn.as_str()))
            .expression_attribute_values(":used", s(ProposalStatus::Used.as_str()))
            .expression_attribute_values(":delivery", s(delivery))
            .expression_attribute_values(":at", s(format_time(now)))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":result", s("withdrawn"))
            .send()
            .await;
        AwsError::conditional(result, "withdraw claimed proposal in ledger", &self.table)
    }

    /// Records that the claimed unlock finished, with its result and audit id, so a duplicate
    /// delivery is recognised as such ([`Claim::Duplicate`]).
    pub async fn complete(
        &self,
        proposal_id: &str,
        delivery: &str,
        result: &str,
        audit_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(proposal_pk(proposal_id), PROPOSAL_SK)))
            .update_expression("SET completed_at = :at, #result = :result, audit_id = :audit")
            .condition_expression("#status = :used AND delivery = :delivery")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#result", "result")
            .expression_attribute_values(":used", s(ProposalStatus::Used.as_str()))
            .expression_attribute_values(":delivery", s(delivery))
            .expression_attribute_values(":at", s(format_time(now)))
            .expression_attribute_values(":result", s(result))
            .expression_attribute_values(":audit", s(audit_id))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "record unlock result in ledger", &self.table))?;
        Ok(())
    }

    /// Denies an open proposal: its approval can no longer be used.
    pub async fn deny(
        &self,
        proposal_id: &str,
        claimant: &Claimant<'_>,
        now: DateTime<Utc>,
    ) -> Result<Deny, AwsError> {
        let attempt = self
            .decide_or_read(
                proposal_id,
                ProposalStatus::Denied,
                claimant,
                now,
                "deny proposal in ledger",
            )
            .await?;
        Ok(match attempt {
            Attempt::Made(_) => Deny::Denied,
            Attempt::Refused { record: None, .. } => Deny::Unknown,
            Attempt::Refused {
                record: Some(r), ..
            } => match r.status {
                ProposalStatus::Denied => Deny::AlreadyDenied(r.decided),
                ProposalStatus::Withdrawn => Deny::Withdrawn(r.decided),
                ProposalStatus::Used | ProposalStatus::Open => Deny::AlreadyUsed(r.decided),
            },
        })
    }

    /// No alerts for the lock at `location` until `until` (replaces an earlier snooze).
    pub async fn snooze(
        &self,
        location: &LockLocation,
        lock_id: &str,
        until: DateTime<Utc>,
        by: Option<&str>,
        reason: Option<&str>,
    ) -> Result<(), AwsError> {
        let mut item = key(lock_pk(location), SNOOZE_SK);
        item.insert("until".to_owned(), s(format_time(until)));
        item.insert("lock_id".to_owned(), s(lock_id));
        if let Some(by) = by {
            item.insert("by".to_owned(), s(by));
        }
        if let Some(reason) = reason {
            item.insert("reason".to_owned(), s(reason));
        }
        item.insert(EXPIRES_AT.to_owned(), expires_at(until, SNOOZE_RETENTION));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "record snooze in ledger", &self.table))?;
        Ok(())
    }

    /// Until when alerts about the lock `lock_id` at `location` are snoozed, if a snooze was
    /// recorded for that very lock and not yet removed by TTL. A snooze is bound to the lock
    /// instance: one recorded for an earlier lock at the same location (another lock ID) does not
    /// silence a new lock there. The caller compares with its `now`: a time in the past means the
    /// snooze is over (TTL deletion can lag by days).
    pub async fn read_snooze(
        &self,
        location: &LockLocation,
        lock_id: &str,
    ) -> Result<Option<DateTime<Utc>>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(lock_pk(location), SNOOZE_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "read snooze from ledger", &self.table))?;
        Ok(out
            .item
            .filter(|item| string(item, "lock_id").as_deref() == Some(lock_id))
            .and_then(|item| time(&item, "until")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for status in [
            ProposalStatus::Open,
            ProposalStatus::Used,
            ProposalStatus::Denied,
            ProposalStatus::Withdrawn,
        ] {
            assert_eq!(parse_status(status.as_str()), Some(status));
        }
        assert_eq!(parse_status("closed"), None);
    }
}
