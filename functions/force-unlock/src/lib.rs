//! force-unlock: approvals from chat over SNS, verified, bound to the exact lock, conditional,
//! audited.
//!
//! Subscribed to the approvals topic. Each SNS record's `Message` is an approval (a bare token from
//! a chat button, `approve <token>`, or JSON), a denial or a snooze
//! ([`ApprovalMessage::parse`](lockreaper_core::approval::ApprovalMessage::parse)). For each, in
//! this order, and stopping at the first "no":
//!
//! 1. the message parses (≤ 4 KiB, a known action, a token);
//! 2. the token verifies: signature (constant time), then expiry;
//! 3. the proposal it names is in the ledger (strongly consistent read) and has not expired;
//! 4. the token's fingerprint is the proposal's primary lock's;
//! 5. a message claiming a Slack-verified approver (the Slack app mode's endpoint publishes it) has
//!    an attestation that verifies with the key in `SLACK_ATTESTATION_SECRET_ARN`
//!    ([`ParsedApproval::verify_slack`](lockreaper_core::approval::ParsedApproval::verify_slack)),
//!    and the approver is on `APPROVER_ALLOW_LIST` (when set): `slack:<user ID>` entries match
//!    verified Slack identities only, other entries self-asserted names only;
//! 6. *approve*: the proposal is claimed, once ([`Proposals::claim`]); the final check re-reads
//!    the liveness evidence (the ledger's last state write, the state object's LastModified) and
//!    runs the reaper's own decision on it
//!    ([`check_approval`](lockreaper_core::decision::check_approval)): a state write after the
//!    proposal refuses the approval and withdraws the proposal for good (the lock item itself
//!    does not change while Terraform writes state), evidence that cannot be read refuses it for
//!    now and gives the claim back (a transient error retries); then
//!    [`Unlocker::unlock`] re-reads every artefact, writes the audit record, and deletes each one
//!    only if it is still exactly the proposed lock; *deny*: the proposal is closed;
//!    *snooze*: a snooze item silences the reaper's alerts for the lock until then.
//!
//! Every outcome, including each refusal, is one JSON log line (`event = "approval-result"`, the
//! `outcome` and the `reason`) and a notification on the alert topic, in the alert's chat thread
//! when the proposal is known ([`lockreaper_core::unlock_message`]).
//!
//! # Bad input never retries
//!
//! A record that does not parse, a forged, expired, replayed or wrong-lock token, an unknown
//! proposal or an approver not allowed is answered and acknowledged (`Ok`): SNS→Lambda is an
//! asynchronous invocation, and an `Err` would make Lambda run the same bad input twice more.
//! The handler never panics on input; the payload is taken as JSON and each record decoded on its
//! own, so even a payload that is not an SNS event is logged and acknowledged.
//!
//! # Transient failures retry, and a retry never unlocks twice
//!
//! Only a *transient* AWS failure (throttling, 5xx, timeout) returns `Err`, so that Lambda retries
//! the delivery: one *before any delete*, or one of a conditional delete (see below). The argument
//! that the retry cannot unlock twice:
//!
//! - **Before the claim** (reading the proposal, or the claim's UpdateItem itself failing): nothing
//!   was written except, possibly, the claim (an UpdateItem can succeed after its response was
//!   lost). The retry carries the same SNS `MessageId`; a claim held by that same delivery with no
//!   finished unlock recorded is *resumed* ([`Claim::Resumed`]), not reported as "already used".
//! - **After the claim, before any delete**: [`Unlocker::unlock`] returns `Err` only before it
//!   attempts a delete (its contract; post-delete problems are inside its `Ok` report). The handler
//!   releases the claim (conditional on being the claimant and on no finished unlock being
//!   recorded) and returns `Err`; the retry claims again and unlocks. If the release itself fails,
//!   the retry resumes the claim as above — and if every attempt of the delivery ends so (its
//!   reads and its give-back all failing), the claim's lease runs out (force-unlock's timeout
//!   plus a margin, [`CLAIM_LEASE`]) and the next press takes it over ([`Claim::TakenOver`]),
//!   conditionally on the exact claim it read, and goes through the final check itself.
//! - **A delete that fails**: the Unlocker deletes nothing after it (the lock file goes first, so
//!   the lock is whole, or keeps its DynamoDB item, which blocks every client). The handler gives
//!   the claim back instead of completing it — the approval stays usable until the lock is fully
//!   released or changed — and returns `Err` when the failure was transient. The given-back claim
//!   keeps its audit id and time on the proposal, so the retry (or a new press) claims again
//!   *resuming that audit record* ([`Claim::TakenOver`], [`Unlocker::resume`]): one unlock, one
//!   record, even when the lock file went in one attempt and the item in the next. The
//!   conditional deletes delete only what is still the proposed lock.
//! - **A crash or timeout anywhere after the claim** (the worst case: the delete may have happened,
//!   but nothing was recorded): the retry resumes the claim and runs the unlock again. That second
//!   unlock re-reads the lock with strong consistency and deletes only on a precondition bound to
//!   the proposed lock's exact content (`Info = :seen`, `If-Match: <ETag>`, `GyroId = :id`). The
//!   claim stores the attempt's audit id and the audit record's key is that id and the claim's
//!   time, so the retry finds the first attempt's record: a finished one (outcomes recorded) is not
//!   run again — the completion is recorded and the delivery answered `duplicate-delivery` —, and
//!   one written before the deletes is resumed in place ([`Unlocker::resume`]): what it recorded
//!   and is gone now counts as its delete, never "already released"; if somebody
//!   has taken the lock again since, its content differs and it is left alone. A lock is thus
//!   deleted at most once, by construction of the delete, whatever the retries.
//! - **After a finished unlock** the proposal records `completed_at`: a duplicate delivery of the
//!   same message is acknowledged silently ([`Claim::Duplicate`]); any *other* message with the same
//!   token (a replay, a second click) is "already used".
//!
//! Failures after the delete (publishing the result, recording completion) are logged and never
//! returned as `Err`.
//!
//! [`Proposals::claim`]: lockreaper_aws::proposals::Proposals::claim
//! [`Claim::Resumed`]: lockreaper_aws::proposals::Claim::Resumed
//! [`Claim::Duplicate`]: lockreaper_aws::proposals::Claim::Duplicate
//! [`Claim::TakenOver`]: lockreaper_aws::proposals::Claim::TakenOver
//! [`Unlocker::unlock`]: lockreaper_aws::unlock::Unlocker::unlock
//! [`Unlocker::resume`]: lockreaper_aws::unlock::Unlocker::resume

pub mod config;
mod handler;

pub use config::Config;
pub use handler::{ForceUnlock, InvocationReport, RecordReport, CLAIM_LEASE};

/// JSON log lines, one object per line (see `lockreaper_aws::logging`).
pub fn init_logging() {
    lockreaper_aws::logging::init_json_logging();
}
