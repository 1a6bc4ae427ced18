//! lockreaper's AWS adapters: the only crate that knows SDK types.
//!
//! Each module wraps one AWS capability for the functions: [`lock_table`] reads lock tables,
//! [`lock_files`] reads S3 lock files. Errors from every call are an [`AwsError`] classified by
//! what a caller must do about them.

pub mod config;
pub mod error;
pub mod inventory;
pub mod lock_files;
pub mod lock_table;

pub use config::Aws;
pub use error::{AwsError, AwsErrorKind};
pub use lock_files::{LockFileHead, LockFiles};
pub use lock_table::{LockTable, TableScan};
pub use lockreaper_core::BucketScope;
