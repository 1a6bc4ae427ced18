//! lockreaper's domain, with no I/O: what a state lock is, how to read every real format of one,
//! and (in later modules) how old is too old, what an alert says and what an approval proves.
//!
//! **Invariant:** this crate never imports an AWS SDK type, an async runtime or a clock. Time,
//! keys and configuration are passed in; I/O lives in `lockreaper-aws`. That keeps every decision here a pure function with unit tests.

pub mod approval;
pub mod config;
pub mod coverage;
pub mod decision;
pub mod kinds;
pub mod lifecycle;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod parse;
pub mod path;
pub mod permissions;
pub mod policy;
pub mod proposal;
pub mod s3_events;
pub mod slack;
pub mod stream;

/// The alert and unlock-result builders, by the names callers have always used.
pub use messages::{alert, unlock as unlock_message};
pub use model::{
    DeletePrecondition, DigestRecord, LockCreated, LockKind, LockLocation, LockRecord, TableEntry,
};
pub use parse::{parse_lock_file, parse_table_item, LockParseError, ParseFailure};
pub use path::{parse_bucket_list, BucketScope, StatePath};

/// Re-exported so adapters and functions name one `Item` type (the one `aws_lambda_events` uses).
pub use serde_dynamo::{AttributeValue, Item};
