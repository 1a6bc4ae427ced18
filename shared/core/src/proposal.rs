//! Proposals and audit records: the ledger's memory of what was judged stale, and of every unlock.
//!
//! The reaper records a [`Proposal`] when a lock passes its expire threshold; the approval token in
//! the alert names the proposal and is bound to its lock's fingerprint. The force-unlock handler
//! deletes only the artefacts recorded here, and only if each is still byte-for-byte what was
//! recorded. Every unlock, approved or automatic, leaves an [`AuditRecord`] written *before* the
//! delete, holding the full lock content, so nothing is ever lost.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::approval::ApprovalSource;
use crate::model::LockRecord;

/// One lock judged stale, and what it would take to release it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// base64url of 12 random bytes; what the approval token names.
    pub proposal_id: String,
    /// Every artefact of the lock, as read: for Terraform with both `dynamodb_table` and
    /// `use_lockfile`, the DynamoDB item and the `.tflock` object (same lock ID). The first is the
    /// one the token's fingerprint binds.
    pub locks: Vec<LockRecord>,
    pub proposed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The chat thread of the alert, so the result lands in the same thread.
    pub thread_id: String,
    /// Why the reaper judged it stale, in sentences.
    pub reasons: Vec<String>,
}

impl Proposal {
    /// The lock the token is bound to.
    pub fn primary(&self) -> Option<&LockRecord> {
        self.locks.first()
    }
}

/// What happened to a proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalStatus {
    Open,
    Used,
    Denied,
    /// The lock showed signs of life after the proposal (or the proposal was for an earlier lock
    /// at the same place): its approval is refused for good.
    Withdrawn,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Open => "open",
            ProposalStatus::Used => "used",
            ProposalStatus::Denied => "denied",
            ProposalStatus::Withdrawn => "withdrawn",
        }
    }
}

/// The outcome of one unlock attempt, per artefact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtefactOutcome {
    /// Deleted with its precondition.
    Deleted,
    /// Different from what was recorded (released and re-taken, or rewritten): left alone.
    Changed,
    /// Already gone.
    AlreadyGone,
    /// Not attempted (because another artefact had changed).
    Skipped,
    /// The delete failed for another reason (see the audit's `errors`).
    Failed,
}

/// Who or what released a lock, and everything needed to explain it afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub audit_id: String,
    pub at: DateTime<Utc>,
    pub source: ApprovalSource,
    /// The approver as given (chat messages carry no identity; the CLI and integrations do).
    pub approver: Option<String>,
    /// For a Slack-verified approver: the allow-list's Slack user groups (`S…`) they were a
    /// member of when they pressed, as the Slack endpoint attested. Empty otherwise (and in
    /// records written before user groups).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approver_groups: Vec<String>,
    pub reason: Option<String>,
    pub proposal_id: Option<String>,
    pub state_path: String,
    pub lock_id: String,
    /// The full content of every artefact, recorded before any delete.
    pub locks: Vec<LockRecord>,
    /// Filled in after the attempt: one entry per artefact, in `locks` order.
    pub outcomes: Vec<ArtefactOutcome>,
    pub errors: Vec<String>,
}
