//! lockreaper's AWS adapters: the only crate that knows SDK types.
//!
//! Each module wraps one AWS capability for the functions: [`lock_table`] reads lock tables,
//! [`lock_files`] reads S3 lock files. Errors from every call are an [`AwsError`] classified by
//! what a caller must do about them.

pub mod alert_state;
pub mod config;
pub mod emf;
pub mod error;
#[cfg(feature = "iam")]
pub mod iam;
pub mod inventory;
pub mod ledger;
pub mod ledger_schema;
pub mod liveness;
pub mod lock_files;
pub mod lock_table;
pub mod locks;
pub mod logging;
pub mod notify;
pub mod proposals;
pub mod random;
pub mod secrets;
pub mod slack;
pub mod slack_threads;
pub mod state;
pub mod unlock;

pub use config::Aws;
pub use emf::{EmfCapture, EmfError, EmfMetrics};
pub use error::{AwsError, AwsErrorKind};
pub use ledger::{Claim, Ledger, RecordWork, WorkAnswers};
pub use lock_files::{LockFileHead, LockFiles};
pub use lock_table::{LockTable, TableScan};
pub use lockreaper_core::BucketScope;
pub use locks::{DeleteOutcome, LockStore, Reread};
pub use proposals::{Claim as ProposalClaim, Proposals};
pub use secrets::{load_signing_key, load_slack_bot_token, load_slack_signing_secret};
