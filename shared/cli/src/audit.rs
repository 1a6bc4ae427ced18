//! `lockreaper audit <STATE_PATH>`: the unlocks lockreaper made on one state, newest first, from
//! the audit records force-unlock and the reaper write to the ledger before every delete.

use lockreaper_aws::unlock::audit_trail;
use lockreaper_core::policy::fmt_time;
use lockreaper_core::proposal::{ArtefactOutcome, AuditRecord};
use serde::Serialize;

use crate::config::{self, Settings};
use crate::failure::{Failure, EXIT_OK};

/// The `schema` field of `audit --json`.
pub const SCHEMA: &str = "lockreaper.audit/v1";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The state: `<bucket>/<key>` as in Terraform's LockID (an `s3://` prefix is accepted), or a Gyro lock key
    #[arg(value_name = "STATE_PATH")]
    pub state_path: String,

    /// At most this many records, newest first
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub limit: i32,

    /// Print one JSON document (schema `lockreaper.audit/v1`) instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct AuditReport<'a> {
    schema: &'static str,
    state_path: &'a str,
    ledger_table: &'a str,
    /// Newest first, as stored (`lockreaper_core::proposal::AuditRecord`).
    records: &'a [AuditRecord],
}

/// `s3://b/k` → `b/k`; anything else unchanged (trimmed).
pub fn normalize_state_path(text: &str) -> &str {
    let text = text.trim();
    text.strip_prefix("s3://").unwrap_or(text)
}

pub async fn run(settings: &Settings, args: &Args) -> Result<u8, Failure> {
    let state_path = normalize_state_path(&args.state_path);
    if state_path.is_empty() {
        return Err(Failure::usage(
            "STATE_PATH is empty; expected `<bucket>/<key>` (Terraform's LockID, e.g. `acme-tfstate/network/terraform.tfstate`) or a Gyro lock key",
        ));
    }
    let mut env = settings.env();
    let ledger = env.required_ledger_table();
    let path_style = config::path_style(&mut env);
    config::finish(env, ())?;
    let aws = config::aws(settings, path_style).await?;
    let records = audit_trail(&aws.dynamodb(), &ledger, state_path, args.limit).await?;
    if args.json {
        let report = AuditReport {
            schema: SCHEMA,
            state_path,
            ledger_table: &ledger,
            records: &records,
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::Problem(anyhow::anyhow!("cannot encode the audit trail: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(state_path, &ledger, &records));
    }
    Ok(EXIT_OK)
}

/// What the attempt came to, from its per-artefact outcomes.
fn result(record: &AuditRecord) -> &'static str {
    let o = &record.outcomes;
    if o.is_empty() {
        "attempt started, outcome not recorded"
    } else if o.contains(&ArtefactOutcome::Failed) {
        "FAILED"
    } else if o.contains(&ArtefactOutcome::Changed) {
        "lock had changed: nothing deleted"
    } else if o.iter().all(|x| *x == ArtefactOutcome::AlreadyGone) {
        "already released"
    } else {
        "unlocked"
    }
}

fn outcome(o: Option<&ArtefactOutcome>) -> &'static str {
    match o {
        Some(ArtefactOutcome::Deleted) => "deleted",
        Some(ArtefactOutcome::Changed) => "changed since judged, left alone",
        Some(ArtefactOutcome::AlreadyGone) => "already gone",
        Some(ArtefactOutcome::Skipped) => "not attempted",
        Some(ArtefactOutcome::Failed) => "delete failed",
        None => "outcome not recorded",
    }
}

pub fn render(state_path: &str, ledger: &str, records: &[AuditRecord]) -> String {
    if records.is_empty() {
        return format!(
            "No audit records for {state_path} in ledger table {ledger}: lockreaper has not released a lock on this state (records are kept for a year). The path is Terraform's LockID, `<bucket>/<key>`, as `lockreaper locks` shows it.\n"
        );
    }
    let mut out = format!("Audit trail of {state_path} (ledger table {ledger}), newest first:\n");
    for r in records {
        out.push_str(&format!(
            "\n{}  {}  lock {}\n",
            fmt_time(r.at),
            result(r),
            r.lock_id
        ));
        let who = r.approver.as_deref().unwrap_or("no approver named");
        out.push_str(&format!(
            "  by:        {who}, via {}\n",
            r.source.describe()
        ));
        if !r.approver_groups.is_empty() {
            // The allow-list's Slack user groups the verified presser was in when they pressed.
            out.push_str(&format!(
                "  groups:    {} (Slack user groups at press time)\n",
                r.approver_groups.join(", ")
            ));
        }
        if let Some(reason) = &r.reason {
            out.push_str(&format!("  reason:    {reason}\n"));
        }
        if let Some(p) = &r.proposal_id {
            out.push_str(&format!("  proposal:  {p}\n"));
        }
        if let Some(lock) = r.locks.first() {
            let holder = lock.who.as_deref().unwrap_or("unknown holder");
            let op = lock.operation.as_deref().unwrap_or("unknown operation");
            let created = lock
                .created
                .at()
                .map(|t| format!(", taken {}", fmt_time(t)))
                .unwrap_or_default();
            out.push_str(&format!("  lock:      held by {holder}, {op}{created}\n"));
        }
        for (i, lock) in r.locks.iter().enumerate() {
            let label = if i == 0 {
                "  artefacts: "
            } else {
                "             "
            };
            out.push_str(&format!(
                "{label}{} → {}\n",
                lock.location,
                outcome(r.outcomes.get(i))
            ));
        }
        for e in &r.errors {
            out.push_str(&format!("  error:     {e}\n"));
        }
        out.push_str(&format!("  audit id:  {}\n", r.audit_id));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_paths() {
        assert_eq!(normalize_state_path(" s3://b/k "), "b/k");
        assert_eq!(normalize_state_path("b/env:/x/k"), "b/env:/x/k");
    }

    #[test]
    fn a_verified_approvers_groups_are_shown() {
        let record = AuditRecord {
            audit_id: "a1".into(),
            at: chrono::DateTime::UNIX_EPOCH,
            source: lockreaper_core::approval::ApprovalSource::SlackVerified,
            approver: Some("slack:T0123ABCD/U0456EFGH".into()),
            approver_groups: vec!["S0OPS0001".into(), "S0SRE0001".into()],
            reason: None,
            proposal_id: None,
            state_path: "b/k".into(),
            lock_id: "l1".into(),
            locks: Vec::new(),
            outcomes: Vec::new(),
            errors: Vec::new(),
        };
        let text = render("b/k", "ledger", std::slice::from_ref(&record));
        assert!(
            text.contains("  by:        slack:T0123ABCD/U0456EFGH, via a Slack button press")
                && text.contains(
                    "  groups:    S0OPS0001, S0SRE0001 (Slack user groups at press time)\n"
                ),
            "{text}"
        );
        let no_groups = AuditRecord {
            approver_groups: Vec::new(),
            ..record
        };
        assert!(!render("b/k", "ledger", &[no_groups]).contains("groups:"));
    }

    #[test]
    fn empty_trail_says_so() {
        let text = render("b/k", "ledger", &[]);
        assert!(
            text.starts_with("No audit records for b/k in ledger table ledger"),
            "{text}"
        );
    }
}
