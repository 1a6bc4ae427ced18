//! Helpers shared by the policy tests: times, locks, and policies read from variables.

pub(super) use super::*;
pub(super) use crate::config::Env;
pub(super) use crate::model::{
    DeletePrecondition, LockCreated, LockKind, LockLocation, LockRecord,
};
pub(super) use chrono::{DateTime, TimeZone, Utc};
pub(super) use std::time::Duration;

pub(super) const H: u64 = 3600;
pub(super) const M: u64 = 60;

pub(super) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 0, 0).unwrap()
}

pub(super) fn at(secs: u64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs as i64)
}

pub(super) fn d(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

pub(super) fn tf_lock(path: &str, created: LockCreated) -> LockRecord {
    LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: LockLocation::DynamoDb {
            table: "tf-locks".to_owned(),
            key_attribute: "LockID".to_owned(),
            key: path.to_owned(),
        },
        lock_id: "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7".to_owned(),
        who: Some("runner@ip-10-0-1-23".to_owned()),
        operation: Some("OperationTypeApply".to_owned()),
        tool_version: Some("1.10.5".to_owned()),
        created,
        state_path: path.to_owned(),
        info: Some(String::new()),
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals("{}".to_owned()),
        raw: "{}".to_owned(),
    }
}

pub(super) fn lock_at(created: DateTime<Utc>) -> LockRecord {
    tf_lock(
        "acme-tfstate/env:/prod/network/terraform.tfstate",
        LockCreated::Recorded(created),
    )
}

pub(super) fn no_evidence() -> Liveness {
    Liveness::default()
}

pub(super) fn env(vars: &[(&str, &str)]) -> Env {
    Env::new(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
}

/// Parses a policy from variables; `Err` carries every error as text.
pub(super) fn policy(vars: &[(&str, &str)]) -> Result<StaleLockPolicy, Vec<String>> {
    let mut e = env(vars);
    let p = StaleLockPolicy::from_env(&mut e);
    e.finish(p)
        .map_err(|errs| errs.0.iter().map(ToString::to_string).collect())
}

pub(super) fn errors(vars: &[(&str, &str)]) -> Vec<String> {
    match policy(vars) {
        Ok(p) => panic!("expected errors for {vars:?}, got {p:?}"),
        Err(e) => e,
    }
}

pub(super) fn one_error(vars: &[(&str, &str)]) -> String {
    let errs = errors(vars);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}
