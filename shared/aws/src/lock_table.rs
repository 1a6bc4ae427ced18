//! Reading lock tables (Terraform/OpenTofu `LockID` tables and Gyro `LockKey` tables) from DynamoDB.
//!
//! A scan returns *every* item classified: locks, digest records, and items that could not be
//! parsed (each with its reason). Nothing is dropped silently: a malformed lock is something a
//! person must look at, so it is reported, never skipped and never deleted.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;
use lockreaper_core::{
    parse_table_item, DigestRecord, Item, LockParseError, LockRecord, TableEntry,
};

use crate::error::AwsError;

/// Everything found in one lock table.
#[derive(Debug, Default)]
pub struct TableScan {
    pub table: String,
    pub locks: Vec<LockRecord>,
    pub digests: Vec<DigestRecord>,
    pub malformed: Vec<LockParseError>,
    /// Items read (= locks + digests + malformed).
    pub items_read: usize,
    /// Scan pages requested, summed over segments: what the sweep cost in API calls.
    pub pages: usize,
}

impl TableScan {
    fn absorb(&mut self, entry: Result<TableEntry, LockParseError>) {
        self.items_read += 1;
        match entry {
            Ok(TableEntry::Lock(lock)) => self.locks.push(lock),
            Ok(TableEntry::Digest(digest)) => self.digests.push(digest),
            Err(err) => self.malformed.push(err),
        }
    }
}

/// Converts an SDK attribute map (Scan/GetItem output) into the core crate's item type.
pub fn to_item(attrs: HashMap<String, AttributeValue>) -> Item {
    Item::from(attrs)
}

/// Reads one lock table.
#[derive(Clone, Debug)]
pub struct LockTable {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl LockTable {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        LockTable {
            client,
            table: table.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    /// Scans the whole table with strongly consistent reads, in `segments` parallel segments
    /// (1 for small tables; DynamoDB's parallel scan for large ones), following every page.
    pub async fn scan(&self, segments: u32) -> Result<TableScan, AwsError> {
        let segments = segments.max(1);
        let parts =
            try_join_all((0..segments).map(|segment| self.scan_segment(segment, segments))).await?;
        let mut scan = TableScan {
            table: self.table.clone(),
            ..TableScan::default()
        };
        for (entries, pages) in parts {
            scan.pages += pages;
            for entry in entries {
                scan.absorb(entry);
            }
        }
        Ok(scan)
    }

    async fn scan_segment(
        &self,
        segment: u32,
        total: u32,
    ) -> Result<(Vec<Result<TableEntry, LockParseError>>, usize), AwsError> {
        let mut entries = Vec::new();
        let mut pages = 0;
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut request = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if total > 1 {
                request = request.segment(segment as i32).total_segments(total as i32);
            }
            let page = request
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(e, "scan table", &self.table))?;
            pages += 1;
            for attrs in page.items.unwrap_or_default() {
                entries.push(parse_table_item(&self.table, &to_item(attrs)));
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok((entries, pages))
    }

    /// Whether the table has a stream enabled (DescribeTable). Without one, lock-metrics never sees
    /// the table's state writes, so the ledger holds no liveness evidence for its locks.
    pub async fn stream_enabled(&self) -> Result<bool, AwsError> {
        let out = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "describe lock table", &self.table))?;
        Ok(out
            .table
            .and_then(|t| t.stream_specification)
            .is_some_and(|s| s.stream_enabled))
    }

    /// Reads one item by key with a strongly consistent read: `None` when it no longer exists.
    pub async fn get(
        &self,
        key_attribute: &str,
        key: &str,
    ) -> Result<Option<Result<TableEntry, LockParseError>>, AwsError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(key_attribute, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "get item from table", &self.table))?;
        Ok(out
            .item
            .map(|attrs| parse_table_item(&self.table, &to_item(attrs))))
    }
}
