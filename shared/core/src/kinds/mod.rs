//! Lock kinds: every tool lockreaper understands, one module per tool, each owning what its locks
//! are — how they are stored and recognised, what a delete must match, the command that releases
//! one by hand, and what people should do after a release.
//!
//! - [`terraform`]: Terraform/OpenTofu's S3 backend — the DynamoDB item `{LockID, Info}` and the
//!   S3-native `<state key>.tflock` object, plus the `-md5` digest item beside DynamoDB locks.
//! - [`gyro`]: Gyro's `aws::dynamo-db` lock backend — the item `{LockKey, GyroId, GyroLockInfo?}`.
//!
//! Everything else asks [`LockKind`] (or the tool module) instead of matching kinds itself. A new
//! tool is a new module here, a [`LockKind`] variant, and its parser in [`crate::parse`].

pub mod gyro;
pub mod terraform;

use serde::{Deserialize, Serialize};

/// Which tool wrote a lock, and in which store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum LockKind {
    /// Terraform/OpenTofu S3 backend with `dynamodb_table`: item `{LockID, Info}`.
    #[serde(rename = "terraform-dynamodb")]
    TerraformDynamoDb,
    /// Terraform/OpenTofu ≥ 1.10 S3 backend with `use_lockfile`: object `<state key>.tflock`.
    #[serde(rename = "terraform-s3-lockfile")]
    TerraformS3LockFile,
    /// Gyro's `aws::dynamo-db` lock backend: item `{LockKey, GyroId, GyroLockInfo?}`.
    #[serde(rename = "gyro-dynamodb")]
    GyroDynamoDb,
}

/// The tool behind a kind: what decides the commands and advice people get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Terraform or OpenTofu (same lock formats, same commands).
    Terraform,
    Gyro,
}

impl LockKind {
    /// Every kind, in a stable order.
    pub const ALL: [LockKind; 3] = [
        LockKind::TerraformDynamoDb,
        LockKind::TerraformS3LockFile,
        LockKind::GyroDynamoDb,
    ];

    /// A short stable name, used as the `LockKind` metric dimension and in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            LockKind::TerraformDynamoDb => "terraform-dynamodb",
            LockKind::TerraformS3LockFile => "terraform-s3-lockfile",
            LockKind::GyroDynamoDb => "gyro-dynamodb",
        }
    }

    /// The kind named `name` ([`LockKind::as_str`]).
    pub fn from_name(name: &str) -> Option<LockKind> {
        LockKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A compact name for terminal tables: `tf/dynamodb`, `tf/lockfile`, `gyro/dynamodb`.
    pub fn short_name(self) -> &'static str {
        match self {
            LockKind::TerraformDynamoDb => "tf/dynamodb",
            LockKind::TerraformS3LockFile => "tf/lockfile",
            LockKind::GyroDynamoDb => "gyro/dynamodb",
        }
    }

    /// The tool that writes this kind of lock.
    pub fn tool_kind(self) -> Tool {
        match self {
            LockKind::TerraformDynamoDb | LockKind::TerraformS3LockFile => Tool::Terraform,
            LockKind::GyroDynamoDb => Tool::Gyro,
        }
    }

    /// The tool family, for people: "Terraform/OpenTofu" or "Gyro".
    pub fn tool(self) -> &'static str {
        match self.tool_kind() {
            Tool::Terraform => terraform::TOOL_NAME,
            Tool::Gyro => gyro::TOOL_NAME,
        }
    }

    /// Whether the lock protects a Terraform state object (`<bucket>/<key>` in S3).
    pub fn is_terraform(self) -> bool {
        self.tool_kind() == Tool::Terraform
    }

    /// Whether the lock table's stream shows this lock's state writes (a liveness signal):
    /// Terraform rewrites the `-md5` digest item in the lock table after every state write, and
    /// lock-metrics records each one from the stream. A table without a stream is then an
    /// evidence gap for these locks. Gyro locks have no such signal; lock files get theirs from the
    /// state bucket's S3 events when lock-metrics receives them (S3EventsEnabled), which no
    /// DynamoDB table setting can tell, so their absence is not reported as a gap.
    pub fn state_writes_on_table_stream(self) -> bool {
        matches!(self, LockKind::TerraformDynamoDb)
    }

    /// The command that releases a lock of this kind with ID `lock_id` by hand.
    pub fn manual_unlock_command(self, lock_id: &str) -> String {
        match self.tool_kind() {
            Tool::Terraform => terraform::manual_unlock_command(lock_id),
            Tool::Gyro => gyro::manual_unlock_command(lock_id),
        }
    }

    /// Where to run the manual unlock command, completing "release it by hand …"; `workspace`
    /// as the message shows it.
    pub fn where_to_release(self, workspace: Option<&str>) -> String {
        match self.tool_kind() {
            Tool::Terraform => terraform::where_to_release(workspace),
            Tool::Gyro => gyro::where_to_release(),
        }
    }

    /// The advice in an alert, for after an unlock that has not happened yet (chat Markdown).
    pub fn after_unlocking(self) -> &'static str {
        match self.tool_kind() {
            Tool::Terraform => terraform::AFTER_UNLOCKING,
            Tool::Gyro => gyro::AFTER_UNLOCKING,
        }
    }

    /// The advice after a forced release (chat Markdown); `workspace` as the message shows it.
    pub fn after_release(self, workspace: Option<&str>) -> String {
        match self.tool_kind() {
            Tool::Terraform => terraform::after_release(workspace),
            Tool::Gyro => gyro::AFTER_RELEASE.to_owned(),
        }
    }
}

impl std::fmt::Display for LockKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_name() {
        for kind in LockKind::ALL {
            assert_eq!(LockKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(LockKind::from_name("pulumi"), None);
    }

    #[test]
    fn each_tool_names_its_own_unlock_command() {
        assert_eq!(
            LockKind::TerraformS3LockFile.manual_unlock_command("abc"),
            "terraform force-unlock abc"
        );
        assert_eq!(
            LockKind::GyroDynamoDb.manual_unlock_command("abc"),
            "gyro state force-unlock --lock-id abc"
        );
    }
}
