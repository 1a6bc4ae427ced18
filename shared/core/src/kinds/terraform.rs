//! Terraform/OpenTofu locks (S3 backend): what lockreaper knows about them in one place.
//!
//! - DynamoDB (`dynamodb_table`): item `{LockID: "<bucket>/<key>", Info: "<lock JSON>"}`; beside
//!   it the digest item `{LockID: "<bucket>/<key>-md5", Digest}` (never a lock). A delete is
//!   conditional on `Info` byte for byte ([`crate::DeletePrecondition::InfoEquals`]).
//! - S3 (`use_lockfile`, ≥ 1.10): object `<state key>.tflock` holding the same lock JSON; a delete
//!   is conditional on its ETag ([`crate::DeletePrecondition::ETagMatches`]).
//!
//! Parsing is in [`crate::parse`] (`parse_table_item`, `parse_lock_file`); state paths, workspaces
//! and the lock-file and digest keys in [`crate::path`].

/// For people.
pub const TOOL_NAME: &str = "Terraform/OpenTofu";
/// The lock table's partition key.
pub const KEY_ATTRIBUTE: &str = "LockID";
/// The lock item's attribute holding the lock JSON; what a delete is conditional on.
pub const INFO_ATTRIBUTE: &str = "Info";
/// The digest item's attribute (the MD5 of the last state written).
pub const DIGEST_ATTRIBUTE: &str = "Digest";
/// Suffix of the S3-native lock file (`use_lockfile = true`).
pub const LOCK_FILE_SUFFIX: &str = ".tflock";
/// Suffix of the DynamoDB digest item's `LockID`.
pub const DIGEST_SUFFIX: &str = "-md5";

/// `terraform force-unlock <id>` (OpenTofu's `tofu force-unlock` takes the same ID).
pub fn manual_unlock_command(lock_id: &str) -> String {
    format!("terraform force-unlock {lock_id}")
}

/// Where to run `terraform force-unlock`: the configuration that uses the state, in its workspace.
pub fn where_to_release(workspace: Option<&str>) -> String {
    match workspace {
        Some(ws) => format!("from the configuration that uses this state, in workspace `{ws}`"),
        None => "from the configuration that uses this state".to_owned(),
    }
}

/// An alert's advice for after the unlock.
pub const AFTER_UNLOCKING: &str = "After unlocking, run `terraform plan` before anything else to see what the interrupted run left behind.";

/// The advice after a forced release.
pub fn after_release(workspace: Option<&str>) -> String {
    match workspace {
        Some(ws) => format!(
            "Run `terraform plan` (in workspace `{ws}`) before the next apply: the interrupted run may have changed some resources and not others."
        ),
        None => "Run `terraform plan` before the next apply: the interrupted run may have changed some resources and not others.".to_owned(),
    }
}
