//! Taking stock: every lock in every configured table and bucket, read concurrently. The one
//! inventory the reaper's sweep and the CLI's `locks` both read.
//!
//! One unreachable table or bucket never stops the others; it is reported in
//! [`Inventory::unreachable`], with the source that was not read in full. Malformed locks are kept
//! in [`Inventory::malformed`].

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use lockreaper_core::{BucketScope, DigestRecord, LockParseError, LockRecord};

use crate::config::Aws;
use crate::error::AwsError;
use crate::liveness::{learn_table_stream, TableStreams};
use crate::lock_files::{LockFileHead, LockFiles};
use crate::lock_table::LockTable;
use crate::state::StateObjects;

/// The clients that read locks and their evidence (lock tables, lock files, state objects), built
/// once per process: what a function holds to take stock, so no SDK type reaches its code.
#[derive(Clone, Debug)]
pub struct LockReaders {
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
}

impl LockReaders {
    pub fn new(aws: &Aws) -> LockReaders {
        LockReaders {
            dynamodb: aws.dynamodb(),
            s3: aws.s3(),
        }
    }

    /// [`take_inventory`] with these clients.
    pub async fn take_inventory(&self, scope: &InventoryScope<'_>) -> Inventory {
        take_inventory(&self.dynamodb, &self.s3, scope).await
    }

    /// [`learn_table_stream`] with these clients.
    pub async fn learn_table_stream(&self, table: &str, streams: &mut TableStreams) -> bool {
        learn_table_stream(&self.dynamodb, table, streams).await
    }

    /// The state objects, for liveness evidence.
    pub fn state_objects(&self) -> StateObjects {
        StateObjects::new(self.s3.clone())
    }
}

/// What to read, and how.
#[derive(Debug, Clone)]
pub struct InventoryScope<'a> {
    pub tables: &'a [String],
    pub buckets: &'a [BucketScope],
    /// Parallel Scan segments per lock table (1 reads a table in one sequence of pages).
    pub scan_segments: u32,
    pub lock_file_bodies: LockFileBodies,
}

/// Which listed lock files have their body read (one GetObject each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFileBodies {
    /// Every one (a person asked: `lockreaper locks`).
    All,
    /// Only those at least `min_age` old at `now` (or of unknown age): a younger lock file needs
    /// no GET, as nothing would be done with it (the reaper, with its smallest warn threshold).
    OldEnough {
        now: DateTime<Utc>,
        min_age: Duration,
    },
}

impl LockFileBodies {
    /// Whether the body of the lock file `head` is read.
    pub fn wants(&self, head: &LockFileHead) -> bool {
        match (self, head.last_modified) {
            (LockFileBodies::All, _) | (LockFileBodies::OldEnough { .. }, None) => true,
            (LockFileBodies::OldEnough { now, min_age }, Some(t)) => {
                (*now - t).to_std().unwrap_or_default() >= *min_age
            }
        }
    }
}

/// Everything found across the configured tables and buckets.
#[derive(Debug, Default)]
pub struct Inventory {
    pub locks: Vec<LockRecord>,
    pub digests: Vec<DigestRecord>,
    pub malformed: Vec<LockParseError>,
    pub unreachable: Vec<Unreachable>,
    /// Lock files whose body was not read (see [`LockFileBodies::OldEnough`]).
    pub young_lock_files: usize,
    /// AWS API calls made.
    pub calls: usize,
}

impl Inventory {
    /// Tables and buckets not read in full: a lock missing there may still exist.
    pub fn incomplete_sources(&self) -> BTreeSet<String> {
        self.unreachable
            .iter()
            .map(|u| u.container().to_owned())
            .collect()
    }
}

/// A read that failed, and what it left unread.
#[derive(Debug)]
pub struct Unreachable {
    pub source: UnreadSource,
    pub error: AwsError,
}

/// What a failed read was of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnreadSource {
    /// A lock table's Scan.
    Table(String),
    /// A bucket's (or bucket prefix's) listing of lock files.
    Bucket(BucketScope),
    /// One lock file's body, in this bucket.
    LockFile { bucket: String },
}

impl Unreachable {
    /// The table or bucket not read in full.
    pub fn container(&self) -> &str {
        match &self.source {
            UnreadSource::Table(table) => table,
            UnreadSource::Bucket(scope) => &scope.bucket,
            UnreadSource::LockFile { bucket } => bucket,
        }
    }
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            // A listing error names the bucket only; the scope says which prefix was meant.
            UnreadSource::Bucket(scope) => write!(f, "{scope}: {}", self.error),
            UnreadSource::Table(_) | UnreadSource::LockFile { .. } => {
                std::fmt::Display::fmt(&self.error, f)
            }
        }
    }
}

/// Reads every lock in the scope's tables and buckets: all tables are scanned and all buckets
/// listed at once, then the lock file bodies [`InventoryScope::lock_file_bodies`] asks for are read
/// at once.
pub async fn take_inventory(
    dynamodb: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
    scope: &InventoryScope<'_>,
) -> Inventory {
    let mut inventory = Inventory::default();
    let scans = join_all(scope.tables.iter().map(|t| async move {
        LockTable::new(dynamodb.clone(), t)
            .scan(scope.scan_segments)
            .await
    }));
    let files = LockFiles::new(s3.clone());
    let listings = join_all(scope.buckets.iter().map(|b| files.list(b)));
    let (scans, listings) = futures::join!(scans, listings);
    for (scan, table) in scans.into_iter().zip(scope.tables) {
        match scan {
            Ok(scan) => {
                inventory.calls += scan.pages;
                inventory.locks.extend(scan.locks);
                inventory.digests.extend(scan.digests);
                inventory.malformed.extend(scan.malformed);
            }
            Err(error) => {
                inventory.calls += 1;
                inventory.unreachable.push(Unreachable {
                    source: UnreadSource::Table(table.clone()),
                    error,
                });
            }
        }
    }
    let mut to_read: Vec<LockFileHead> = Vec::new();
    for (listing, bucket) in listings.into_iter().zip(scope.buckets) {
        match listing {
            Ok((heads, pages)) => {
                inventory.calls += pages;
                for head in heads {
                    if scope.lock_file_bodies.wants(&head) {
                        to_read.push(head);
                    } else {
                        inventory.young_lock_files += 1;
                    }
                }
            }
            Err(error) => {
                inventory.calls += 1;
                inventory.unreachable.push(Unreachable {
                    source: UnreadSource::Bucket(bucket.clone()),
                    error,
                });
            }
        }
    }
    let bodies = join_all(to_read.iter().map(|h| files.read(&h.bucket, &h.key))).await;
    inventory.calls += to_read.len();
    for (body, head) in bodies.into_iter().zip(&to_read) {
        match body {
            Ok(Some(Ok(lock))) => inventory.locks.push(lock),
            Ok(Some(Err(malformed))) => inventory.malformed.push(malformed),
            Ok(None) => {} // released between the listing and the read
            Err(error) => inventory.unreachable.push(Unreachable {
                source: UnreadSource::LockFile {
                    bucket: head.bucket.clone(),
                },
                error,
            }),
        }
    }
    inventory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn young_lock_files_are_not_fetched() {
        let now = chrono::Utc::now();
        let head = |age_secs: i64| LockFileHead {
            bucket: "b".into(),
            key: "k.tflock".into(),
            etag: None,
            last_modified: Some(now - chrono::Duration::seconds(age_secs)),
            size: 200,
        };
        let bodies = LockFileBodies::OldEnough {
            now,
            min_age: Duration::from_secs(3600),
        };
        assert!(!bodies.wants(&head(10)));
        assert!(bodies.wants(&head(3600)));
        let unknown = LockFileHead {
            last_modified: None,
            ..head(0)
        };
        assert!(bodies.wants(&unknown), "unknown age: read it");
        assert!(LockFileBodies::All.wants(&head(10)));
    }
}
