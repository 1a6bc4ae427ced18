//! The handler: one SNS record at a time, through the checks in the crate docs.

use aws_lambda_events::sns::SnsRecord;
use chrono::{DateTime, Utc};
use lambda_runtime::{Error, LambdaEvent};
use lockreaper_aws::ledger::Ledger;
use lockreaper_aws::liveness::gather_liveness;
use lockreaper_aws::notify::Notifier;
use lockreaper_aws::proposals::{Claim, Claimant, Decided, Deny, ProposalRecord, Proposals};
use lockreaper_aws::state::StateObjects;
use lockreaper_aws::unlock::{StateCheck, UnlockReport, UnlockRequest, UnlockResult, Unlocker};
use lockreaper_aws::{Aws, AwsError, AwsErrorKind, LockStore, Reread};
use lockreaper_core::approval::{
    ApprovalMessage, ApprovalToken, ParsedApproval, SigningKey, TokenError,
};
use lockreaper_core::decision::{
    check_approval, unlocks_paused_check, ApprovalCheck, OpenProposal,
};
use lockreaper_core::policy::StaleLockPolicy;
use lockreaper_core::proposal::{Proposal, ProposalStatus};
use lockreaper_core::unlock_message::{
    result_message, Decision, Outcome, PriorUse, StateFindings, StateVersionInfo,
};
use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use lockreaper_core::coverage::StateLocation;

/// What one invocation did, record by record (the Lambda response; SNS ignores it, tests read it).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InvocationReport {
    pub records: Vec<RecordReport>,
}

/// What happened to one SNS record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecordReport {
    /// The SNS MessageId (empty when the record did not decode).
    pub message_id: String,
    /// `approve`, `deny` or `snooze`, when the message parsed.
    pub action: Option<String>,
    /// [`Outcome::as_str`], or `duplicate-delivery`, `not-an-sns-record`, `retry`.
    pub outcome: String,
    pub proposal_id: Option<String>,
    pub audit_id: Option<String>,
    /// Whether the result notification was published.
    pub notified: bool,
}

/// How long an approval's claim is held for the invocation that took it: force-unlock's timeout
/// (`Timeout: 60` on `ForceUnlockFunction` in `infra/sam/template.in.yaml`; Lambda stops an
/// invocation at its timeout, and the lease counts from the clock read when the invocation
/// began, so no attempt runs past it) plus a margin of as much again, because the lease is
/// written by one invocation's clock and compared with another's (another host). Past it, a
/// claim still unfinished belongs to an attempt that is over, and another delivery may take it
/// over (`lockreaper_aws::proposals`, "Leases and takeover").
pub const CLAIM_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(FUNCTION_TIMEOUT_SECONDS * 2);

/// force-unlock's Lambda timeout in the template (checked by a test against the template).
pub const FUNCTION_TIMEOUT_SECONDS: i64 = 60;

/// A transient AWS failure (before any delete, or of a delete, whose claim was given back): the
/// invocation returns `Err` so Lambda retries.
struct RetryLater(AwsError);

fn is_transient(e: &AwsError) -> bool {
    e.kind == AwsErrorKind::Transient
}

/// Where a resumed delivery goes on (see `ForceUnlock::resume_point`).
enum Resume {
    /// The earlier attempt finished and recorded its unlock: answered as a duplicate.
    Finished(RecordReport),
    From {
        audit_id: String,
        claimed_at: DateTime<Utc>,
        /// Its record written before the deletes, when there is one.
        earlier: Option<lockreaper_core::proposal::AuditRecord>,
    },
}

/// force-unlock, with its clients and key; built once per cold start.
pub struct ForceUnlock {
    key: SigningKey,
    /// The key Slack-verified approvals are attested with (`SLACK_ATTESTATION_SECRET_ARN`).
    slack_key: Option<SigningKey>,
    allow_list: Vec<String>,
    /// The kill switch: approvals are refused without being used up.
    unlocks_paused: bool,
    proposals: Proposals,
    unlocker: Unlocker,
    notifier: Notifier,
    /// Liveness evidence for the final check before a delete (the reaper's sources).
    ledger: Ledger,
    state: StateObjects,
    /// Where this deployment may read state objects (`STATE_BUCKETS`), for the same coverage
    /// decision the reaper made.
    state_locations: Option<Vec<StateLocation>>,
    locks: LockStore,
}

impl ForceUnlock {
    /// Builds the handler with a signing key already loaded.
    pub fn new(aws: &Aws, config: &Config, key: SigningKey) -> ForceUnlock {
        ForceUnlock {
            key,
            slack_key: None,
            allow_list: config.approver_allow_list.clone(),
            unlocks_paused: config.unlocks_paused,
            proposals: Proposals::new(aws.dynamodb(), &config.ledger_table),
            unlocker: Unlocker::new(aws.dynamodb(), aws.s3(), &config.ledger_table),
            notifier: Notifier::new(aws.sns(), &config.alert_topic_arn),
            ledger: Ledger::new(aws.dynamodb(), &config.ledger_table),
            state: StateObjects::new(aws.s3()),
            state_locations: config.state_locations.clone(),
            locks: LockStore::new(aws.dynamodb(), aws.s3()),
        }
    }

    /// Accepts Slack-verified approvals attested with `key` (the Slack app mode).
    pub fn with_slack_key(mut self, key: SigningKey) -> ForceUnlock {
        self.slack_key = Some(key);
        self
    }

    /// Loads the signing key from Secrets Manager (`APPROVAL_SECRET_ARN`), and the Slack
    /// attestation key when `SLACK_ATTESTATION_SECRET_ARN` is set, and builds the handler.
    pub async fn from_config(aws: &Aws, config: &Config) -> Result<ForceUnlock, Error> {
        let key =
            lockreaper_aws::load_signing_key(&aws.secrets(), &config.approval_secret_arn).await?;
        let handler = ForceUnlock::new(aws, config, key);
        Ok(match &config.slack_attestation_secret_arn {
            Some(arn) => {
                handler.with_slack_key(lockreaper_aws::load_signing_key(&aws.secrets(), arn).await?)
            }
            None => handler,
        })
    }

    /// The Lambda entry point. The payload is taken as plain JSON so that nothing about its shape
    /// can make the runtime report an error (which would retry bad input).
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<InvocationReport, Error> {
        self.handle_event(event.payload, Utc::now()).await
    }

    /// Handles an SNS event (as SNS delivers it to Lambda) at `now`.
    pub async fn handle_event(
        &self,
        payload: Value,
        now: DateTime<Utc>,
    ) -> Result<InvocationReport, Error> {
        let Some(records) = payload.get("Records").and_then(Value::as_array) else {
            tracing::warn!(
                event = "approval-result",
                outcome = "not-an-sns-event",
                reason = "the payload has no `Records` array; expected an SNS event",
                "ignored an invocation that is not an SNS event"
            );
            return Ok(InvocationReport {
                records: Vec::new(),
            });
        };
        let mut reports = Vec::with_capacity(records.len());
        let mut retry = Vec::new();
        for (index, record) in records.iter().enumerate() {
            let record: SnsRecord = match serde_json::from_value(record.clone()) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(
                        event = "approval-result",
                        outcome = "not-an-sns-record",
                        record = index,
                        reason = %e,
                        "ignored a record that is not an SNS notification"
                    );
                    reports.push(RecordReport {
                        message_id: String::new(),
                        action: None,
                        outcome: "not-an-sns-record".to_owned(),
                        proposal_id: None,
                        audit_id: None,
                        notified: false,
                    });
                    continue;
                }
            };
            let message_id = record.sns.message_id.clone();
            match self.process(&message_id, &record.sns.message, now).await {
                Ok(report) => reports.push(report),
                Err(RetryLater(e)) => {
                    tracing::warn!(
                        event = "approval-retry",
                        message_id = %message_id,
                        reason = %e,
                        "transient AWS failure before any delete, or of a conditional delete; the invocation fails so Lambda retries it"
                    );
                    reports.push(RecordReport {
                        message_id: message_id.clone(),
                        action: None,
                        outcome: "retry".to_owned(),
                        proposal_id: None,
                        audit_id: None,
                        notified: false,
                    });
                    retry.push(format!("{message_id}: {e}"));
                }
            }
        }
        if retry.is_empty() {
            Ok(InvocationReport { records: reports })
        } else {
            Err(format!(
                "transient AWS failure before any delete, or of a conditional delete (the approval was not used up; retrying is safe): {}",
                retry.join("; ")
            )
            .into())
        }
    }

    async fn process(
        &self,
        message_id: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> Result<RecordReport, RetryLater> {
        let mut parsed = match ApprovalMessage::parse(message) {
            Ok(parsed) => parsed,
            Err(e) => {
                let decision = Decision::nobody(now);
                let outcome = Outcome::BadMessage {
                    problem: e.to_string(),
                };
                return Ok(self.finish(message_id, None, &decision, outcome).await);
            }
        };
        // A Slack-verified claim is checked first, so that the decision (and the audit) names
        // the verified identity; a claim that fails is refused below, in the alert's thread.
        let slack_check = parsed.verify_slack(self.slack_key.as_ref());
        let decision = decision_of(&parsed, now);
        let token = parsed.message.token();

        let verified = match ApprovalToken::verify(&self.key, token, now) {
            Ok(verified) => verified,
            Err(TokenError::Expired { expired_at }) => {
                // `verify` checks the signature before the expiry, so this token is authentic.
                // Verifying it again as of the epoch yields its proposal id, to answer in the
                // alert's thread; the approval itself stays refused.
                let proposal = match ApprovalToken::verify(&self.key, token, DateTime::UNIX_EPOCH) {
                    Ok(v) => self.proposals.record(&v.proposal_id).await.ok().flatten(),
                    Err(_) => None,
                };
                let outcome = Outcome::TokenExpired { expired_at };
                let proposal = proposal.map(|r| r.proposal);
                return Ok(self
                    .finish(message_id, proposal.as_ref(), &decision, outcome)
                    .await);
            }
            Err(e) => {
                let outcome = Outcome::TokenRejected {
                    problem: e.to_string(),
                };
                return Ok(self.finish(message_id, None, &decision, outcome).await);
            }
        };

        let record = match self.proposals.record(&verified.proposal_id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                let outcome = Outcome::UnknownProposal {
                    proposal_id: verified.proposal_id.clone(),
                };
                return Ok(self.finish(message_id, None, &decision, outcome).await);
            }
            Err(e) if is_transient(&e) => return Err(RetryLater(e)),
            Err(e) => {
                let outcome = Outcome::failed_before_any_delete(None, e.to_string());
                return Ok(self.finish(message_id, None, &decision, outcome).await);
            }
        };
        let proposal = &record.proposal;
        if now >= proposal.expires_at {
            let outcome = Outcome::TokenExpired {
                expired_at: proposal.expires_at,
            };
            return Ok(self
                .finish(message_id, Some(proposal), &decision, outcome)
                .await);
        }
        let Some(_primary) = proposal.primary() else {
            let outcome = Outcome::failed_before_any_delete(
                None,
                format!(
                    "proposal {} records no lock; nothing to unlock",
                    proposal.proposal_id
                ),
            );
            return Ok(self
                .finish(message_id, Some(proposal), &decision, outcome)
                .await);
        };
        // The token binds every artefact of the proposal, not only the first.
        if !verified.fingerprint.matches_all(&proposal.locks) {
            return Ok(self
                .finish(message_id, Some(proposal), &decision, Outcome::WrongLock)
                .await);
        }
        if let Err(e) = slack_check {
            let outcome = Outcome::ApproverNotAllowed {
                problem: e.to_string(),
            };
            return Ok(self
                .finish(message_id, Some(proposal), &decision, outcome)
                .await);
        }
        if let Err(e) = parsed.approver_allowed(&self.allow_list) {
            let outcome = Outcome::ApproverNotAllowed {
                problem: e.to_string(),
            };
            return Ok(self
                .finish(message_id, Some(proposal), &decision, outcome)
                .await);
        }

        let claimant = Claimant {
            approver: parsed.message.approver(),
            source: parsed.source,
            delivery: message_id,
            audit_id: None,
            lease_until: None,
        };
        match &parsed.message {
            ApprovalMessage::Approve { .. } => {
                self.approve(message_id, &record, &parsed, &decision, &claimant, now)
                    .await
            }
            ApprovalMessage::Deny { .. } => {
                self.deny(message_id, proposal, &decision, &claimant, now)
                    .await
            }
            ApprovalMessage::Snooze { duration, .. } => {
                self.snooze(message_id, &record, &parsed, &decision, *duration, now)
                    .await
            }
        }
    }

    async fn approve(
        &self,
        message_id: &str,
        record: &ProposalRecord,
        parsed: &ParsedApproval,
        decision: &Decision<'_>,
        claimant: &Claimant<'_>,
        now: DateTime<Utc>,
    ) -> Result<RecordReport, RetryLater> {
        let proposal = &record.proposal;
        let id = proposal.proposal_id.as_str();
        // The kill switch, asked before the claim: a paused stack writes nothing about an open
        // proposal, so this same approval works once unlocks are resumed. A proposal that is not
        // open goes on to the claim, which answers "already used/denied/withdrawn" without writing;
        // a retry resuming its own earlier claim meets the switch again in the final check.
        if record.status == ProposalStatus::Open {
            if let Some(ApprovalCheck::UnlocksPaused { usable_until }) =
                unlocks_paused_check(self.unlocks_paused, &open_proposal(proposal))
            {
                let outcome = Outcome::UnlocksPaused { usable_until };
                return Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await);
            }
        }
        // Drawn before the claim, so that a failure here leaves nothing to give back.
        let audit_id = match lockreaper_aws::random::audit_id() {
            Ok(audit_id) => audit_id,
            Err(problem) => {
                let outcome = Outcome::failed_before_any_delete(None, problem.to_string());
                return Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await);
            }
        };

        // The audit id goes with the claim: a resumed attempt of this delivery reads it back. The
        // lease says until when this invocation may still run (see `CLAIM_LEASE`).
        let claimant = Claimant {
            audit_id: Some(&audit_id),
            lease_until: Some(now + CLAIM_LEASE),
            ..*claimant
        };
        let claim = match self.proposals.claim(id, &claimant, now).await {
            Ok(claim) => claim,
            Err(e) if is_transient(&e) => return Err(RetryLater(e)),
            Err(e) => {
                let outcome = Outcome::failed_before_any_delete(None, e.to_string());
                return Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await);
            }
        };
        // The audit record this attempt writes: its key is the claim's audit id and time, so a
        // resumed attempt of the same delivery writes (and finds) the same record.
        let (audit_id, claimed_at, earlier) = match claim {
            Claim::Claimed => (audit_id, now, None),
            Claim::Resumed(ref decided) | Claim::TakenOver(ref decided) => {
                match self
                    .resume_point(message_id, proposal, decided, audit_id, now)
                    .await?
                {
                    Resume::Finished(report) if matches!(claim, Claim::Resumed(_)) => {
                        return Ok(report)
                    }
                    // Another delivery's unlock finished (its completion was never recorded):
                    // this press finds the approval used, as it is.
                    Resume::Finished(_) => {
                        let outcome = Outcome::AlreadyUsed(prior_use(decided));
                        return Ok(self
                            .finish(message_id, Some(proposal), decision, outcome)
                            .await);
                    }
                    Resume::From {
                        audit_id,
                        claimed_at,
                        earlier,
                    } => (audit_id, claimed_at, earlier),
                }
            }
            Claim::Duplicate(decided) => return Ok(duplicate(message_id, proposal, &decided)),
            Claim::AlreadyUsed(decided) => {
                let outcome = Outcome::AlreadyUsed(prior_use(&decided));
                return Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await);
            }
            Claim::Denied(decided) => {
                let outcome = Outcome::AlreadyDenied(prior_use(&decided));
                return Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await);
            }
            Claim::Withdrawn(decided) => {
                let outcome = Outcome::Withdrawn {
                    reason: withdrawn_reason(&decided),
                };
                return Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await);
            }
            Claim::Unknown => {
                let outcome = Outcome::UnknownProposal {
                    proposal_id: id.to_owned(),
                };
                return Ok(self.finish(message_id, None, decision, outcome).await);
            }
        };

        // An earlier attempt's audit record this one resumes: a claim given back from here on
        // keeps its id, so the next claim resumes it too rather than start a second record.
        let resuming = earlier.is_some();
        // The final check, the reaper's own decision on evidence read now: a holder that wrote
        // state after the proposal is alive, whatever the (unchanged) lock item says.
        if let Some(refusal) = self
            .final_check(proposal, message_id, resuming, now)
            .await?
        {
            return Ok(self
                .finish(message_id, Some(proposal), decision, refusal)
                .await);
        }

        let request = UnlockRequest {
            locks: &proposal.locks,
            source: parsed.source,
            approver: parsed.message.approver().map(str::to_owned),
            approver_groups: parsed
                .slack
                .as_ref()
                .and_then(|claim| claim.verified_groups())
                .map(<[String]>::to_vec)
                .unwrap_or_default(),
            reason: parsed.message.reason().map(str::to_owned),
            proposal_id: Some(id.to_owned()),
            audit_id: audit_id.clone(),
        };
        let unlocked = match earlier {
            Some(earlier) => self.unlocker.resume(request, claimed_at, earlier).await,
            None => self.unlocker.unlock(request, claimed_at).await,
        };
        match unlocked {
            Ok(report) if report.result == UnlockResult::Failed => {
                // A delete failed (the Unlocker stops at the first, so the lock is whole or has
                // only its lock file gone, and every delete is conditional): the approval stays
                // usable until the lock is fully released or changed. The claim is given back
                // rather than completed, so Lambda's retry of this delivery, or a new press of
                // the button, unlocks what is left — resuming this attempt's audit record (the
                // claim's audit id stays on the proposal), so one unlock keeps one record.
                self.give_back(proposal, message_id, true).await;
                if report.retryable {
                    return Err(RetryLater(AwsError {
                        kind: AwsErrorKind::Transient,
                        action: "unlock",
                        resource: id.to_owned(),
                        message: format!(
                            "a delete failed transiently (audit {audit_id}): {}",
                            report.audit.errors.join("; ")
                        ),
                    }));
                }
                let outcome = outcome_of(&report);
                Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await)
            }
            Ok(report) => {
                let outcome = outcome_of(&report);
                if let Err(e) = self
                    .proposals
                    .complete(id, message_id, outcome.as_str(), &audit_id, now)
                    .await
                {
                    tracing::warn!(
                        event = "completion-not-recorded",
                        proposal_id = %id,
                        audit_id = %audit_id,
                        reason = %e,
                        "could not record the finished unlock on the proposal; a duplicate delivery would re-run it, which finds the lock already released"
                    );
                }
                Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await)
            }
            Err(e) => {
                // The Unlocker's contract: an `Err` means no delete was attempted. Give the claim
                // back so that a retry, or a new approval, can proceed.
                match self.proposals.release(id, message_id, resuming).await {
                    Ok(released) => tracing::info!(
                        event = "claim-released",
                        proposal_id = %id,
                        released,
                        "unlock failed before any delete; claim given back"
                    ),
                    Err(release_error) => tracing::error!(
                        event = "claim-not-released",
                        proposal_id = %id,
                        reason = %release_error,
                        "unlock failed before any delete and the claim could not be given back; a retry of this delivery resumes it"
                    ),
                }
                if is_transient(&e) {
                    return Err(RetryLater(e));
                }
                let outcome = Outcome::failed_before_any_delete(Some(audit_id), e.to_string());
                Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await)
            }
        }
    }

    /// Where a resumed attempt of this delivery starts: its earlier attempt's audit id and claim
    /// time (recorded with the claim), and what that attempt recorded. An unlock it finished and
    /// recorded (all but a failure, whose approval is retried) is not run again: the proposal's
    /// completion is recorded now and the delivery answered as the duplicate it is — one audit
    /// record, one result, never a second, contradicting one. A claim recorded without an audit
    /// id (written before ids went with claims) starts afresh.
    async fn resume_point(
        &self,
        message_id: &str,
        proposal: &Proposal,
        decided: &Decided,
        fresh_audit_id: String,
        now: DateTime<Utc>,
    ) -> Result<Resume, RetryLater> {
        tracing::warn!(
            event = "approval-resumed",
            message_id = %message_id,
            proposal_id = %proposal.proposal_id,
            earlier_delivery = decided.delivery.as_deref().unwrap_or("-"),
            audit_id = decided.audit_id.as_deref().unwrap_or("-"),
            "an earlier attempt (this delivery's, or one given back or past its lease) claimed the proposal and never recorded its end; resuming it"
        );
        let (Some(audit_id), Some(claimed_at), Some(primary)) =
            (decided.audit_id.clone(), decided.at, proposal.primary())
        else {
            return Ok(Resume::From {
                audit_id: fresh_audit_id,
                claimed_at: now,
                earlier: None,
            });
        };
        let earlier = match self
            .unlocker
            .recorded(&primary.state_path, claimed_at, &audit_id)
            .await
        {
            Ok(earlier) => earlier,
            // The claim stays (an unlock may have happened): Lambda's retry resumes again.
            Err(e) if is_transient(&e) => return Err(RetryLater(e)),
            Err(e) => {
                tracing::error!(
                    event = "earlier-attempt-unreadable",
                    proposal_id = %proposal.proposal_id,
                    audit_id = %audit_id,
                    reason = %e,
                    "could not read the earlier attempt's audit record; resuming as if it wrote none (deletes stay conditional)"
                );
                None
            }
        };
        if let Some(result) = earlier
            .as_ref()
            .and_then(|r| UnlockResult::of(&r.outcomes))
            .filter(|r| *r != UnlockResult::Failed)
        {
            if let Err(e) = self
                .proposals
                .complete(
                    &proposal.proposal_id,
                    message_id,
                    result.as_str(),
                    &audit_id,
                    now,
                )
                .await
            {
                if is_transient(&e) {
                    return Err(RetryLater(e));
                }
                tracing::warn!(
                    event = "completion-not-recorded",
                    proposal_id = %proposal.proposal_id,
                    audit_id = %audit_id,
                    reason = %e,
                    "could not record the finished unlock on the proposal"
                );
            }
            let decided = Decided {
                result: Some(result.as_str().to_owned()),
                audit_id: Some(audit_id),
                ..decided.clone()
            };
            return Ok(Resume::Finished(duplicate(message_id, proposal, &decided)));
        }
        Ok(Resume::From {
            audit_id,
            claimed_at,
            earlier,
        })
    }

    /// Runs [`check_approval`] on liveness evidence read now, for a proposal this delivery has
    /// claimed. `Ok(None)`: go ahead and delete. `Ok(Some(outcome))`: refused, nothing deleted —
    /// the proposal is withdrawn for good when the lock came alive, and its claim given back when
    /// the evidence could not be read (so the approval can be given again). A transient read
    /// error is returned so that Lambda retries the delivery.
    async fn final_check(
        &self,
        proposal: &Proposal,
        message_id: &str,
        resuming: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Outcome>, RetryLater> {
        let Some(lock) = proposal.primary() else {
            return Ok(None);
        };
        // Only a lock that is still exactly the proposed one needs its liveness checked: one
        // released or re-taken since is left to the unlock's own re-read, which reports it as
        // such (already released / lock changed) and deletes nothing.
        match self.locks.reread(&lock.location).await {
            Ok(Reread::Lock(now_there))
                if now_there.raw == lock.raw && now_there.lock_id == lock.lock_id => {}
            Ok(_) => return Ok(None),
            Err(e) if is_transient(&e) => {
                self.give_back(proposal, message_id, resuming).await;
                return Err(RetryLater(e));
            }
            // Anything else: the unlock's own re-read meets it again and reports it.
            Err(_) => return Ok(None),
        }
        let evidence = gather_liveness(
            lock,
            Some(&self.ledger),
            &self.state,
            None,
            self.state_locations.as_deref(),
        )
        .await;
        let open = open_proposal(proposal);
        // Thresholds play no part here: withdrawals and unreadable evidence depend only on the
        // evidence and the times, which is all this check acts on.
        let check = check_approval(
            &StaleLockPolicy::default(),
            lock,
            &evidence.liveness,
            &evidence.gaps,
            &open,
            self.unlocks_paused,
            now,
        );
        match check {
            ApprovalCheck::Proceed => Ok(None),
            // An open proposal was refused before its claim already (`approve`); this is a retry
            // resuming a claim taken before the pause. Nothing was deleted: the claim is given
            // back, so the approval stays usable.
            ApprovalCheck::UnlocksPaused { usable_until } => {
                self.give_back(proposal, message_id, resuming).await;
                Ok(Some(Outcome::UnlocksPaused { usable_until }))
            }
            ApprovalCheck::Withdraw(reason) => {
                match self
                    .proposals
                    .withdraw_claimed(&proposal.proposal_id, message_id, &reason, now)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        event = "withdrawal-not-recorded",
                        proposal_id = %proposal.proposal_id,
                        "the proposal was not this delivery's unfinished claim any more; refusing anyway"
                    ),
                    Err(e) => tracing::error!(
                        event = "withdrawal-not-recorded",
                        proposal_id = %proposal.proposal_id,
                        reason = %e,
                        "could not record the withdrawal; the claim stays taken, so the approval cannot be reused"
                    ),
                }
                Ok(Some(Outcome::Withdrawn { reason }))
            }
            ApprovalCheck::CannotConfirm(problem) => {
                self.give_back(proposal, message_id, resuming).await;
                if let Some(e) = evidence.errors.into_iter().find(is_transient) {
                    return Err(RetryLater(e));
                }
                Ok(Some(Outcome::failed_before_any_delete(None, problem)))
            }
        }
    }

    /// Gives this delivery's claim back, so the approval can be given again; `keep_audit` when
    /// an audit record of this claim was written (the next claim resumes it).
    async fn give_back(&self, proposal: &Proposal, message_id: &str, keep_audit: bool) {
        if let Err(e) = self
            .proposals
            .release(&proposal.proposal_id, message_id, keep_audit)
            .await
        {
            tracing::error!(
                event = "claim-not-released",
                proposal_id = %proposal.proposal_id,
                reason = %e,
                "the claim could not be given back; a retry of this delivery resumes it, and once its lease is over any new approval takes it over"
            );
        }
    }

    async fn deny(
        &self,
        message_id: &str,
        proposal: &Proposal,
        decision: &Decision<'_>,
        claimant: &Claimant<'_>,
        now: DateTime<Utc>,
    ) -> Result<RecordReport, RetryLater> {
        let outcome = match self
            .proposals
            .deny(&proposal.proposal_id, claimant, now)
            .await
        {
            Ok(Deny::Denied) => Outcome::Denied,
            Ok(Deny::AlreadyDenied(decided))
                if !message_id.is_empty() && decided.delivery.as_deref() == Some(message_id) =>
            {
                return Ok(duplicate(message_id, proposal, &decided));
            }
            Ok(Deny::AlreadyDenied(decided)) => Outcome::AlreadyDenied(prior_use(&decided)),
            Ok(Deny::AlreadyUsed(decided)) => Outcome::AlreadyUsed(prior_use(&decided)),
            Ok(Deny::Withdrawn(decided)) => Outcome::Withdrawn {
                reason: withdrawn_reason(&decided),
            },
            Ok(Deny::Unknown) => {
                let outcome = Outcome::UnknownProposal {
                    proposal_id: proposal.proposal_id.clone(),
                };
                return Ok(self.finish(message_id, None, decision, outcome).await);
            }
            Err(e) if is_transient(&e) => return Err(RetryLater(e)),
            Err(e) => Outcome::failed_before_any_delete(None, e.to_string()),
        };
        Ok(self
            .finish(message_id, Some(proposal), decision, outcome)
            .await)
    }

    async fn snooze(
        &self,
        message_id: &str,
        record: &ProposalRecord,
        parsed: &ParsedApproval,
        decision: &Decision<'_>,
        duration: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<RecordReport, RetryLater> {
        let proposal = &record.proposal;
        // Only an open proposal can snooze: a used one's lock was unlocked (or is being), a denied
        // or withdrawn one is closed, and none of them may keep renewing snoozes until its token
        // expires.
        let closed = match record.status {
            ProposalStatus::Open => None,
            ProposalStatus::Used => Some(Outcome::AlreadyUsed(prior_use(&record.decided))),
            ProposalStatus::Denied => Some(Outcome::AlreadyDenied(prior_use(&record.decided))),
            ProposalStatus::Withdrawn => Some(Outcome::Withdrawn {
                reason: withdrawn_reason(&record.decided),
            }),
        };
        if let Some(outcome) = closed {
            return Ok(self
                .finish(message_id, Some(proposal), decision, outcome)
                .await);
        }
        let until = match chrono::Duration::from_std(duration)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
        {
            Some(until) => until,
            None => {
                // `ApprovalMessage::parse` caps snoozes at 7 days, so this cannot happen.
                let outcome = Outcome::BadMessage {
                    problem: "the snooze duration is out of range".to_owned(),
                };
                return Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await);
            }
        };
        // Every artefact's location: the reaper alerts per location.
        for lock in &proposal.locks {
            if let Err(e) = self
                .proposals
                .snooze(
                    &lock.location,
                    &lock.lock_id,
                    until,
                    parsed.message.approver(),
                    parsed.message.reason(),
                )
                .await
            {
                if is_transient(&e) {
                    // Snooze writes are idempotent: a retry simply writes them again.
                    return Err(RetryLater(e));
                }
                let outcome = Outcome::failed_before_any_delete(None, e.to_string());
                return Ok(self
                    .finish(message_id, Some(proposal), decision, outcome)
                    .await);
            }
        }
        Ok(self
            .finish(
                message_id,
                Some(proposal),
                decision,
                Outcome::Snoozed { until },
            )
            .await)
    }

    /// Logs the outcome (one JSON line) and publishes the result notification.
    async fn finish(
        &self,
        message_id: &str,
        proposal: Option<&Proposal>,
        decision: &Decision<'_>,
        outcome: Outcome,
    ) -> RecordReport {
        let primary = proposal.and_then(Proposal::primary);
        let proposal_id = proposal.map(|p| p.proposal_id.clone());
        let audit_id = audit_id_of(&outcome);
        let reason = reason_of(&outcome);
        let fields = LogFields {
            message_id,
            action: decision.action.unwrap_or("-"),
            source: decision.source.map_or("-", |s| s.as_str()),
            approver: decision.approver.unwrap_or("-"),
            proposal_id: proposal_id.as_deref().unwrap_or("-"),
            lock_id: primary.map_or("-", |l| l.lock_id.as_str()),
            state_path: primary.map_or("-", |l| l.state_path.as_str()),
            audit_id: audit_id.as_deref().unwrap_or("-"),
        };
        match &outcome {
            Outcome::Unlocked { .. } | Outcome::Denied | Outcome::Snoozed { .. } => {
                tracing::info!(
                    event = "approval-result",
                    outcome = outcome.as_str(),
                    reason = %reason,
                    message_id = fields.message_id,
                    action = fields.action,
                    source = fields.source,
                    approver = fields.approver,
                    proposal_id = fields.proposal_id,
                    lock_id = fields.lock_id,
                    state_path = fields.state_path,
                    audit_id = fields.audit_id,
                    "approval handled"
                );
            }
            Outcome::Failed { .. } => {
                tracing::error!(
                    event = "approval-result",
                    outcome = outcome.as_str(),
                    reason = %reason,
                    message_id = fields.message_id,
                    action = fields.action,
                    source = fields.source,
                    approver = fields.approver,
                    proposal_id = fields.proposal_id,
                    lock_id = fields.lock_id,
                    state_path = fields.state_path,
                    audit_id = fields.audit_id,
                    "approval failed"
                );
            }
            _ => {
                tracing::warn!(
                    event = "approval-result",
                    outcome = outcome.as_str(),
                    reason = %reason,
                    message_id = fields.message_id,
                    action = fields.action,
                    source = fields.source,
                    approver = fields.approver,
                    proposal_id = fields.proposal_id,
                    lock_id = fields.lock_id,
                    state_path = fields.state_path,
                    audit_id = fields.audit_id,
                    "approval refused; nothing was unlocked"
                );
            }
        }

        let message = result_message(proposal, decision, &outcome);
        let notified = match self
            .notifier
            .publish_structured(&message.subject, &message.sns_message())
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::error!(
                    event = "result-not-published",
                    outcome = outcome.as_str(),
                    proposal_id = fields.proposal_id,
                    reason = %e,
                    "could not publish the result notification"
                );
                false
            }
        };
        RecordReport {
            message_id: message_id.to_owned(),
            action: decision.action.map(str::to_owned),
            outcome: outcome.as_str().to_owned(),
            proposal_id,
            audit_id,
            notified,
        }
    }
}

struct LogFields<'a> {
    message_id: &'a str,
    action: &'a str,
    source: &'a str,
    approver: &'a str,
    proposal_id: &'a str,
    lock_id: &'a str,
    state_path: &'a str,
    audit_id: &'a str,
}

/// A second delivery of a message that was already handled: log it, say nothing in chat.
fn duplicate(message_id: &str, proposal: &Proposal, decided: &Decided) -> RecordReport {
    tracing::info!(
        event = "approval-result",
        outcome = "duplicate-delivery",
        reason = "this SNS message was already handled; a duplicate delivery changes nothing",
        message_id = %message_id,
        proposal_id = %proposal.proposal_id,
        result = decided.result.as_deref().unwrap_or("-"),
        "duplicate delivery ignored"
    );
    RecordReport {
        message_id: message_id.to_owned(),
        action: None,
        outcome: "duplicate-delivery".to_owned(),
        proposal_id: Some(proposal.proposal_id.clone()),
        audit_id: decided.audit_id.clone(),
        notified: false,
    }
}

fn decision_of(parsed: &ParsedApproval, now: DateTime<Utc>) -> Decision<'_> {
    Decision {
        action: Some(parsed.message.action()),
        source: Some(parsed.source),
        approver: parsed.message.approver(),
        reason: parsed.message.reason(),
        token: Some(parsed.message.token()),
        at: now,
    }
}

/// The proposal as the core's decision sees it: for the final check, and for the kill switch.
fn open_proposal(proposal: &Proposal) -> OpenProposal {
    OpenProposal {
        proposal_id: proposal.proposal_id.clone(),
        lock_id: proposal
            .primary()
            .map_or_else(String::new, |l| l.lock_id.clone()),
        proposed_at: proposal.proposed_at,
        expires_at: proposal.expires_at,
    }
}

fn withdrawn_reason(decided: &Decided) -> String {
    decided
        .withdrawn_reason
        .clone()
        .unwrap_or_else(|| "the lock showed signs of life after the unlock was proposed".to_owned())
}

fn prior_use(decided: &Decided) -> PriorUse {
    PriorUse {
        by: decided.by.clone(),
        via: decided.via.clone(),
        at: decided.at,
    }
}

fn outcome_of(report: &UnlockReport) -> Outcome {
    let audit_id = report.audit.audit_id.clone();
    let artefacts = report.audit.outcomes.clone();
    match report.result {
        UnlockResult::Unlocked => Outcome::Unlocked {
            audit_id,
            artefacts,
            state: report.state_check.as_ref().map(findings_of),
            errors: report.audit.errors.clone(),
        },
        UnlockResult::LockChanged => Outcome::LockChanged {
            audit_id,
            artefacts,
        },
        UnlockResult::AlreadyReleased => Outcome::AlreadyReleased { audit_id },
        UnlockResult::Failed => Outcome::Failed {
            audit_id: Some(audit_id),
            artefacts,
            errors: report.audit.errors.clone(),
        },
    }
}

fn findings_of(check: &StateCheck) -> StateFindings {
    let version = |i: usize| {
        check.versions.get(i).map(|v| StateVersionInfo {
            version_id: v.version_id.clone(),
            last_modified: v.last_modified,
        })
    };
    StateFindings {
        state: check.state.clone(),
        digest: check.digest.clone(),
        state_md5: check.state_md5.clone(),
        digest_matches: check.digest_matches,
        versioning_enabled: check.versioning_enabled,
        current_version: version(0),
        previous_version: version(1),
        errors: check.errors.clone(),
    }
}

fn audit_id_of(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Unlocked { audit_id, .. }
        | Outcome::LockChanged { audit_id, .. }
        | Outcome::AlreadyReleased { audit_id } => Some(audit_id.clone()),
        Outcome::Failed { audit_id, .. } => audit_id.clone(),
        _ => None,
    }
}

/// The reason in the log line: why nothing (or what) was done.
fn reason_of(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Unlocked { errors, .. } if errors.is_empty() => {
            "approved; the lock was deleted with its precondition".to_owned()
        }
        Outcome::Unlocked { errors, .. } => format!(
            "approved; the lock was deleted with its precondition; afterwards: {}",
            errors.join("; ")
        ),
        Outcome::LockChanged { .. } => "lock changed since the proposal; not unlocked".to_owned(),
        Outcome::AlreadyReleased { .. } => {
            "the proposed lock was already released; nothing deleted".to_owned()
        }
        Outcome::Failed { errors, .. } => errors.join("; "),
        Outcome::AlreadyUsed(_) => {
            "approval already used (replayed or repeated); nothing done".to_owned()
        }
        Outcome::Denied => "proposal denied; lock left alone".to_owned(),
        Outcome::AlreadyDenied(_) => "proposal was denied earlier; nothing done".to_owned(),
        Outcome::Withdrawn { reason } => format!("proposal withdrawn, nothing deleted: {reason}"),
        Outcome::UnlocksPaused { usable_until } => format!(
            "unlocks are paused on this stack ({}=true); nothing was deleted; the approval stays usable until {}",
            lockreaper_core::config::UNLOCKS_PAUSED_PARAMETER,
            usable_until.to_rfc3339()
        ),
        Outcome::Snoozed { until } => format!("alerts snoozed until {}", until.to_rfc3339()),
        Outcome::TokenExpired { expired_at } => {
            format!("approval token expired at {}", expired_at.to_rfc3339())
        }
        Outcome::TokenRejected { problem }
        | Outcome::ApproverNotAllowed { problem }
        | Outcome::BadMessage { problem } => problem.clone(),
        Outcome::UnknownProposal { proposal_id } => {
            format!("proposal {proposal_id} is not in the ledger")
        }
        Outcome::WrongLock => {
            "the token is bound to a different lock than the proposal records".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim lease is only sound while no invocation outlives it: `FUNCTION_TIMEOUT_SECONDS`
    /// must be the template's `Timeout` for this function.
    #[test]
    fn the_claim_lease_outlasts_the_templates_function_timeout() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../infra/sam/template.in.yaml"
        );
        let template = std::fs::read_to_string(path).expect("read the template source");
        let function = template
            .split("\n  ForceUnlockFunction:\n")
            .nth(1)
            .expect("ForceUnlockFunction in the template");
        // Its own properties end where the next resource (two-space indent) begins.
        let end = function
            .lines()
            .position(|l| l.starts_with("  ") && !l.starts_with("   ") && !l.trim().is_empty())
            .unwrap_or(usize::MAX);
        let timeout: i64 = function
            .lines()
            .take(end)
            .find_map(|l| l.trim().strip_prefix("Timeout:"))
            .expect("ForceUnlockFunction sets its Timeout")
            .trim()
            .parse()
            .expect("a Timeout in seconds");
        assert_eq!(timeout, FUNCTION_TIMEOUT_SECONDS);
        assert!(CLAIM_LEASE > chrono::TimeDelta::seconds(timeout));
    }
}
