//! Carrying out the core's plan: withdrawals, automatic expiry, alerts with their proposals and
//! approval tokens, alert-state writes (conditional on the version read, so overlapping sweeps
//! send one alert), unparseable-lock and "resolved" messages.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use lockreaper_aws::alert_state::StoredAlert;
use lockreaper_aws::random::{audit_id, random_bytes};
use lockreaper_aws::unlock::{UnlockRequest, UnlockResult};
use lockreaper_aws::{AwsError, AwsErrorKind};
use lockreaper_core::alert::{self, AlertContext, AlertMessage, ApprovalOffer};
use lockreaper_core::approval::{
    decode_proposal_id, encode_proposal_id, ApprovalSource, ApprovalToken, LockFingerprint,
    PROPOSAL_ID_LEN,
};
use lockreaper_core::decision::{OpenProposal, Plan, Propose, Withdrawal};
use lockreaper_core::policy::{AlertAction, AlertState};
use lockreaper_core::proposal::Proposal;
use lockreaper_core::unlock_message::{result_message, Decision, Outcome};
use lockreaper_core::{BucketScope, LockParseError};

use crate::{log_error, JudgedLock, LockGroup, Reaper, SweepOutcome};

impl Reaper {
    /// Carries out the core's plan for one lock: withdrawals, then expiry (the same conditional
    /// delete + audit path as an approved unlock), then the alert with its proposal. Every decision
    /// was the core's; this only writes, publishes and records what happened in `judged`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn carry_out(
        &self,
        plan: &Plan,
        group: &LockGroup,
        stored: Option<StoredAlert>,
        open_records: &HashMap<String, Proposal>,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
        judged: &mut JudgedLock,
    ) {
        let primary = group.primary();
        let verdict = &plan.verdict;
        let stored = if plan.withdraw.is_empty() {
            stored
        } else {
            self.withdraw(&plan.withdraw, stored, now, out, judged)
                .await
        };

        // Auto-expiry: the same conditional delete + audit path as an approved unlock.
        if plan.expire {
            let audit_id = match audit_id() {
                Ok(id) => id,
                Err(e) => {
                    out.errors.push(e.to_string());
                    return;
                }
            };
            let request = UnlockRequest {
                locks: &group.locks,
                source: ApprovalSource::AutoExpire,
                approver: None,
                approver_groups: Vec::new(),
                reason: Some(verdict.reasons.join(" ")),
                proposal_id: None,
                audit_id,
            };
            match self.unlocker.unlock(request, now).await {
                Ok(report) => {
                    let result = match report.result {
                        UnlockResult::Unlocked => "unlocked",
                        UnlockResult::LockChanged => "lock-changed",
                        UnlockResult::AlreadyReleased => "already-released",
                        UnlockResult::Failed => "failed",
                    };
                    tracing::warn!(event = "auto-expired", state_path = %primary.state_path, lock_id = %primary.lock_id, result);
                    judged.expired = Some(result.to_owned());
                    if report.result == UnlockResult::Unlocked {
                        let message = alert::lock_alert(
                            primary,
                            verdict,
                            lockreaper_core::policy::AlertKind::New,
                            None,
                            &self.context(),
                        );
                        if let Err(e) = self
                            .alerts
                            .publish_structured(&message.subject, &message.sns_message())
                            .await
                        {
                            out.errors.push(e.to_string());
                        } else {
                            out.alerts_sent += 1;
                        }
                        return;
                    }
                }
                Err(e) => {
                    log_error("auto-expire-failed", &e);
                    out.errors.push(e.to_string());
                }
            }
        }

        // Alerting: one per lock per level, reminders, snooze; at most one open proposal.
        let AlertAction::Send { kind, level } = plan.alert else {
            return;
        };
        let previous = stored.as_ref().map(|s| &s.state);
        let mut new_state = AlertState::after_send(previous, &primary.lock_id, level, now);
        let mut offer = None;
        let reoffered = match &plan.propose {
            Propose::Reoffer(open) => self
                .reoffer(open, open_records.get(&open.proposal_id), group)
                .await
                .map(|o| (open, o)),
            Propose::No | Propose::New => None,
        };
        match (&plan.propose, reoffered) {
            (Propose::No, _) => {}
            (_, Some((open, o))) => {
                judged.proposal_id = Some(open.proposal_id.clone());
                offer = Some(o);
            }
            // A new proposal, or one in place of an open proposal that can no longer be offered.
            (Propose::New | Propose::Reoffer(_), None) => {
                match self.propose(group, &verdict.reasons, now).await {
                    // Written to the ledger before the alert state: a proposal nobody was offered
                    // is harmless, an offered one missing from the ledger is not.
                    Ok((open, o)) => {
                        judged.proposal_id = Some(open.proposal_id.clone());
                        new_state.open_proposals.push(open);
                        offer = Some(o);
                    }
                    Err(e) => {
                        out.errors
                            .push(format!("proposal for {}: {e}", primary.location));
                    }
                }
            }
        }
        let won = match self
            .alert_states
            .put_if(
                &primary.location,
                &primary.state_path,
                &new_state,
                stored.as_ref().map(|s| s.version),
            )
            .await
        {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(e.to_string());
                return;
            }
        };
        let Some(new_version) = won else {
            // Another sweep is alerting on this lock right now.
            judged.proposal_id = None;
            return;
        };
        let message = alert::lock_alert(primary, verdict, kind, offer.as_ref(), &self.context());
        match self
            .alerts
            .publish_structured(&message.subject, &message.sns_message())
            .await
        {
            Ok(message_id) => {
                out.alerts_sent += 1;
                judged.alert = Some(format!("{kind:?}").to_ascii_lowercase());
                tracing::info!(event = "alert-sent", state_path = %primary.state_path, lock_id = %primary.lock_id, verdict = level.as_str(), kind = ?kind, message_id);
            }
            Err(e) => {
                // Put the previous state back so the next sweep sends this alert again.
                let restore = match &stored {
                    Some(s) => self
                        .alert_states
                        .put_if(&s.location, &s.state_path, &s.state, Some(new_version))
                        .await
                        .map(|_| ()),
                    None => self
                        .alert_states
                        .delete_if(&primary.location, new_version)
                        .await
                        .map(|_| ()),
                };
                if let Err(r) = restore {
                    out.errors.push(r.to_string());
                }
                log_error("alert-failed", &e);
                out.errors.push(e.to_string());
            }
        }
    }

    /// Withdraws the plan's proposals in the ledger (their approvals are refused from now on),
    /// says so in the lock's thread, and drops them from the lock's alert state. Returns the alert
    /// state as now stored.
    pub(crate) async fn withdraw(
        &self,
        withdrawals: &[Withdrawal],
        stored: Option<StoredAlert>,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
        judged: &mut JudgedLock,
    ) -> Option<StoredAlert> {
        let mut settled: Vec<&str> = Vec::new();
        for w in withdrawals {
            let id = w.proposal.proposal_id.as_str();
            match self.proposals.withdraw(id, &w.reason, now).await {
                Ok(true) => {
                    settled.push(id);
                    judged.withdrawn.push(id.to_owned());
                    tracing::warn!(event = "proposal-withdrawn", proposal_id = %id, reason = %w.reason);
                    let proposal = match self.proposals.record(id).await {
                        Ok(Some(record)) => Some(record.proposal),
                        Ok(None) => None,
                        Err(e) => {
                            out.errors.push(e.to_string());
                            None
                        }
                    };
                    let decision = Decision::nobody(now);
                    let outcome = Outcome::Withdrawn {
                        reason: w.reason.clone(),
                    };
                    let message = result_message(proposal.as_ref(), &decision, &outcome);
                    match self
                        .alerts
                        .publish_structured(&message.subject, &message.sns_message())
                        .await
                    {
                        Ok(_) => out.alerts_sent += 1,
                        Err(e) => out.errors.push(e.to_string()),
                    }
                }
                // Used, denied or withdrawn already: no longer open, nothing to say.
                Ok(false) => settled.push(id),
                Err(e) => out.errors.push(e.to_string()),
            }
        }
        let mut stored = stored?;
        let mut state = stored.state.clone();
        state
            .open_proposals
            .retain(|p| !settled.contains(&p.proposal_id.as_str()));
        match self
            .alert_states
            .put_if(
                &stored.location,
                &stored.state_path,
                &state,
                Some(stored.version),
            )
            .await
        {
            Ok(Some(version)) => {
                stored.state = state;
                stored.version = version;
                Some(stored)
            }
            // Another sweep changed it meanwhile: it saw the same evidence and withdraws too.
            Ok(None) => Some(stored),
            Err(e) => {
                out.errors.push(e.to_string());
                Some(stored)
            }
        }
    }

    /// Records a new proposal for `group` in the ledger and signs its approval token.
    pub(crate) async fn propose(
        &self,
        group: &LockGroup,
        reasons: &[String],
        now: DateTime<Utc>,
    ) -> Result<(OpenProposal, ApprovalOffer), AwsError> {
        let id = random_bytes::<PROPOSAL_ID_LEN>("a proposal id").map_err(|e| AwsError {
            kind: AwsErrorKind::Other,
            action: "choose a proposal id for",
            resource: group.primary().location.to_string(),
            message: e.to_string(),
        })?;
        let proposal_id = encode_proposal_id(&id);
        let ttl = chrono::Duration::from_std(self.config.approval_ttl)
            .unwrap_or_else(|_| chrono::Duration::hours(24));
        let expires_at = now + ttl;
        let proposal = Proposal {
            proposal_id: proposal_id.clone(),
            locks: group.locks.clone(),
            proposed_at: now,
            expires_at,
            thread_id: alert::thread_id(&group.primary().location),
            reasons: reasons.to_vec(),
        };
        self.proposals.put(&proposal).await?;
        let token = ApprovalToken::issue(
            &self.signing_key,
            id,
            LockFingerprint::of_all(&group.locks),
            expires_at,
        );
        Ok((
            OpenProposal {
                proposal_id,
                lock_id: group.primary().lock_id.clone(),
                proposed_at: now,
                expires_at,
            },
            ApprovalOffer {
                token,
                approval_topic_arn: self.config.approval_topic_arn.clone(),
                expires_at,
            },
        ))
    }

    /// The approval token of a proposal already open for `group`, signed again (a reminder offers
    /// the same proposal instead of opening another one). `None` when that proposal cannot be
    /// offered for exactly these artefacts (its id is malformed, it cannot be read, or the lock's
    /// artefacts changed since): the caller makes a new one.
    /// `read`: the proposal's record when this sweep already read it (otherwise it is read here).
    pub(crate) async fn reoffer(
        &self,
        open: &OpenProposal,
        read: Option<&Proposal>,
        group: &LockGroup,
    ) -> Option<ApprovalOffer> {
        let id = decode_proposal_id(&open.proposal_id)?;
        let fetched;
        let proposal = match read {
            Some(p) => p,
            None => {
                fetched = self.proposals.get(&open.proposal_id).await.ok()??.0;
                &fetched
            }
        };
        let same = proposal.locks.len() == group.locks.len()
            && proposal
                .locks
                .iter()
                .zip(&group.locks)
                .all(|(p, g)| p.location == g.location && p.raw == g.raw);
        if !same {
            return None;
        }
        Some(ApprovalOffer {
            token: ApprovalToken::issue(
                &self.signing_key,
                id,
                LockFingerprint::of_all(&proposal.locks),
                open.expires_at,
            ),
            approval_topic_arn: self.config.approval_topic_arn.clone(),
            expires_at: open.expires_at,
        })
    }

    pub(crate) async fn report_unparseable(
        &self,
        malformed: &[LockParseError],
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) {
        for bad in malformed {
            tracing::warn!(event = "unparseable-lock", reason = %bad, "unparseable lock: inspect by hand; it is never expired");
            out.unparseable.push(bad.to_string());
            if self.config.dry_run {
                continue;
            }
            match self
                .alert_states
                .first_report_of_unparseable(&bad.location, now)
                .await
            {
                Ok(true) => {
                    let message = alert::unparseable_alert(bad, &self.context());
                    if let Err(e) = self.publish(&message).await {
                        let _ = self.alert_states.forget_unparseable(&bad.location).await;
                        out.errors.push(e.to_string());
                    } else {
                        out.alerts_sent += 1;
                    }
                }
                Ok(false) => {}
                Err(e) => out.errors.push(e.to_string()),
            }
        }
    }

    pub(crate) async fn send_resolved(
        &self,
        present: &HashSet<String>,
        now: DateTime<Utc>,
        out: &mut SweepOutcome,
    ) {
        if self.config.dry_run {
            return;
        }
        let containers: Vec<String> = self
            .config
            .sources
            .tables
            .iter()
            .cloned()
            .chain(self.config.sources.buckets.iter().map(|b| b.bucket.clone()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for container in containers {
            if out.incomplete_sources.contains(&container) {
                tracing::warn!(event = "resolved-skipped", container = %container, "not fully read in this sweep: its alerted locks are not reported resolved");
                continue;
            }
            let stored = match self.alert_states.list(&container).await {
                Ok(s) => s,
                Err(e) => {
                    out.errors.push(e.to_string());
                    continue;
                }
            };
            for alert_state in stored {
                if present.contains(&alert_state.location.ledger_key())
                    || !in_scope(&alert_state, &self.config.sources.buckets)
                {
                    continue;
                }
                match self
                    .alert_states
                    .delete_if(&alert_state.location, alert_state.version)
                    .await
                {
                    Ok(true) if alert_state.state.wants_resolved_message() => {
                        let message = alert::resolved_alert(
                            &alert_state.state,
                            &alert_state.location,
                            &alert_state.state_path,
                            &self.context(),
                        );
                        match self.publish(&message).await {
                            Ok(_) => {
                                out.resolved_sent += 1;
                                tracing::info!(event = "resolved-sent", state_path = %alert_state.state_path, at = %now);
                            }
                            Err(e) => out.errors.push(e.to_string()),
                        }
                    }
                    Ok(_) => {}
                    Err(e) => out.errors.push(e.to_string()),
                }
            }
        }
    }

    pub(crate) async fn publish(&self, message: &AlertMessage) -> Result<String, AwsError> {
        self.alerts
            .publish_structured(&message.subject, &message.sns_message())
            .await
    }

    pub(crate) fn context(&self) -> AlertContext {
        AlertContext::new(self.config.deployment.clone())
    }
}

fn in_scope(alert: &StoredAlert, buckets: &[BucketScope]) -> bool {
    match &alert.location {
        lockreaper_core::LockLocation::DynamoDb { .. } => true,
        lockreaper_core::LockLocation::S3 { bucket, key } => buckets
            .iter()
            .any(|b| &b.bucket == bucket && b.prefix.as_deref().is_none_or(|p| key.starts_with(p))),
    }
}
