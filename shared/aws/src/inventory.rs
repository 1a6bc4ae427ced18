//! Taking stock: every lock in every configured table and bucket, read concurrently.
//!
//! One unreachable table or bucket never stops the others; it is reported in
//! [`Inventory::unreachable`]. Malformed locks are kept in [`Inventory::malformed`].

use chrono::{DateTime, Utc};
use futures::future::join_all;
use lockreaper_core::report::{LockSummary, SweepReport};
use lockreaper_core::{BucketScope, DigestRecord, LockParseError, LockRecord};

use crate::error::AwsError;
use crate::lock_files::LockFiles;
use crate::lock_table::LockTable;

/// Everything found across the configured tables and buckets.
#[derive(Debug, Default)]
pub struct Inventory {
    pub locks: Vec<LockRecord>,
    pub digests: Vec<DigestRecord>,
    pub malformed: Vec<LockParseError>,
    pub unreachable: Vec<AwsError>,
    /// AWS API calls made.
    pub calls: usize,
}

impl Inventory {
    /// The report people and scripts read.
    pub fn report(&self, now: DateTime<Utc>) -> SweepReport {
        let mut report = SweepReport {
            swept_at: Some(now),
            locks: self
                .locks
                .iter()
                .map(|l| LockSummary::new(l, now))
                .collect(),
            digest_items: self.digests.len(),
            unparseable: self.malformed.iter().map(ToString::to_string).collect(),
            unreachable: self.unreachable.iter().map(ToString::to_string).collect(),
            aws_calls: self.calls,
        };
        report.sort();
        report
    }
}

/// Reads every lock in `tables` and `buckets`. Lock file bodies are all read here; the reaper
/// reads only those old enough to matter.
pub async fn take_inventory(
    dynamodb: &aws_sdk_dynamodb::Client,
    s3: &aws_sdk_s3::Client,
    tables: &[String],
    buckets: &[BucketScope],
) -> Inventory {
    let mut inventory = Inventory::default();
    let table_scans = join_all(
        tables
            .iter()
            .map(|t| async move { LockTable::new(dynamodb.clone(), t).scan(1).await }),
    );
    let files = LockFiles::new(s3.clone());
    let bucket_reads = join_all(buckets.iter().map(|scope| read_bucket(&files, scope)));
    let (table_scans, bucket_reads) = futures::join!(table_scans, bucket_reads);
    for scan in table_scans {
        match scan {
            Ok(scan) => {
                inventory.calls += scan.pages;
                inventory.locks.extend(scan.locks);
                inventory.digests.extend(scan.digests);
                inventory.malformed.extend(scan.malformed);
            }
            Err(e) => {
                inventory.calls += 1;
                inventory.unreachable.push(e);
            }
        }
    }
    for read in bucket_reads {
        inventory.calls += read.calls;
        inventory.locks.extend(read.locks);
        inventory.malformed.extend(read.malformed);
        inventory.unreachable.extend(read.errors);
    }
    inventory
}

#[derive(Default)]
struct BucketRead {
    locks: Vec<LockRecord>,
    malformed: Vec<LockParseError>,
    errors: Vec<AwsError>,
    calls: usize,
}

async fn read_bucket(files: &LockFiles, scope: &BucketScope) -> BucketRead {
    let mut read = BucketRead::default();
    let heads = match files.list(scope).await {
        Ok((heads, pages)) => {
            read.calls += pages;
            heads
        }
        Err(e) => {
            read.calls += 1;
            read.errors.push(e);
            return read;
        }
    };
    let bodies = join_all(heads.iter().map(|h| files.read(&h.bucket, &h.key))).await;
    read.calls += heads.len();
    for body in bodies {
        match body {
            Ok(Some(Ok(lock))) => read.locks.push(lock),
            Ok(Some(Err(malformed))) => read.malformed.push(malformed),
            Ok(None) => {} // released between the listing and the read
            Err(e) => read.errors.push(e),
        }
    }
    read
}
