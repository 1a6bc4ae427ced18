//! The reaper's memory of what it told people, so it alerts once per lock per escalation level,
//! reminds at an interval, and says "resolved" when an alerted lock goes away.
//!
//! Ledger items ([`crate::ledger_schema`]): `pk = "alerts#<table or bucket>"`,
//! `sk = <LockLocation::ledger_key()>`, holding the
//! `AlertState` JSON, the lock's location and state path (for the resolved message) and a `version`
//! number. Every write is conditional on the version that was read, so when two sweeps overlap only
//! one of them wins the right to send: the other's write fails and it sends nothing.
//! Keying by container lets one Query list every alerted lock of a table or bucket.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use lockreaper_core::policy::AlertState;
use lockreaper_core::LockLocation;

use crate::error::{AwsError, AwsErrorKind};
use crate::ledger_schema::{
    alerts_pk, expires_at, format_time, key, s, ALERT_STATE_TTL, EXPIRES_AT, PK, SK,
    UNPARSEABLE_PK, UNPARSEABLE_TTL,
};
use crate::random;

/// The attribute holding the token of the write that stored an alert state (see
/// [`AlertStates::put_if`]).
const WRITER: &str = "writer";

/// One stored alert state, with what a conditional update needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub location: LockLocation,
    pub state_path: String,
    pub state: AlertState,
    pub version: u64,
}

/// Reads and writes alert states.
#[derive(Clone, Debug)]
pub struct AlertStates {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl AlertStates {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        AlertStates {
            dynamodb,
            table: table.into(),
        }
    }

    /// Every alert state of one table or bucket.
    pub async fn list(&self, container: &str) -> Result<Vec<StoredAlert>, AwsError> {
        let mut alerts = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(alerts_pk(container)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(e, "read alert states from", &self.table))?;
            for item in out.items.unwrap_or_default() {
                if let Some(alert) = decode(&item) {
                    alerts.push(alert);
                } else {
                    tracing::warn!(event = "bad-alert-state", table = %self.table, "ignoring an alert state that does not decode");
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(alerts)
    }

    /// Stores `state` if the stored version is still `expected` (`None`: nothing stored yet).
    /// Returns the new version, or `None` when another sweep got there first.
    ///
    /// Each write carries a token of its own (`writer`). When the condition fails, the item is
    /// read back (strongly consistent): if it holds this write's token, the put was applied and
    /// only its answer was lost (the SDK's retry of the same request then failed the condition on
    /// the write it had made itself), so this write won. Without this, a lost answer to the write
    /// that claims the right to alert looked like another sweep's win: the state said "alerted",
    /// no alert was sent, and none followed until the next reminder.
    pub async fn put_if(
        &self,
        location: &LockLocation,
        state_path: &str,
        state: &AlertState,
        expected: Option<u64>,
    ) -> Result<Option<u64>, AwsError> {
        let version = expected.map_or(1, |v| v + 1);
        let writer = random::random_bytes::<16>("an alert state write token")
            .map(hex::encode)
            .map_err(|e| AwsError {
                kind: AwsErrorKind::Other,
                action: "write alert state to",
                resource: self.table.clone(),
                message: e.to_string(),
            })?;
        let encode = |what: &str, e: serde_json::Error| AwsError {
            kind: AwsErrorKind::Other,
            action: "encode alert state for",
            resource: format!("{location} ({what})"),
            message: e.to_string(),
        };
        let mut item = key(alerts_pk(location.container()), location.ledger_key());
        item.extend([
            (
                "state".to_owned(),
                s(serde_json::to_string(state).map_err(|e| encode("state", e))?),
            ),
            (
                "location".to_owned(),
                s(serde_json::to_string(location).map_err(|e| encode("location", e))?),
            ),
            ("state_path".to_owned(), s(state_path)),
            ("version".to_owned(), AttributeValue::N(version.to_string())),
            (WRITER.to_owned(), s(&writer)),
            (
                EXPIRES_AT.to_owned(),
                expires_at(state.last_sent, ALERT_STATE_TTL),
            ),
        ]);
        let request = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(v) => request
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
        };
        if AwsError::conditional(request.send().await, "write alert state to", &self.table)? {
            return Ok(Some(version));
        }
        let stored = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(
                alerts_pk(location.container()),
                location.ledger_key(),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "read back alert state from", &self.table))?
            .item;
        let ours = stored
            .as_ref()
            .and_then(|item| item.get(WRITER))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|found| *found == writer);
        Ok(ours.then_some(version))
    }

    /// Removes the state if it is still at `version`. Returns `false` if it changed meanwhile.
    pub async fn delete_if(&self, location: &LockLocation, version: u64) -> Result<bool, AwsError> {
        AwsError::conditional(
            self.dynamodb
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(
                    alerts_pk(location.container()),
                    location.ledger_key(),
                )))
                .condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
                .send()
                .await,
            "delete alert state from",
            &self.table,
        )
    }

    /// Records that an unparseable lock was reported; `true` the first time only.
    pub async fn first_report_of_unparseable(
        &self,
        location: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        AwsError::conditional(
            self.dynamodb
                .put_item()
                .table_name(&self.table)
                .item(PK, s(UNPARSEABLE_PK))
                .item(SK, s(location))
                .item("reported_at", s(format_time(now)))
                .item(EXPIRES_AT, expires_at(now, UNPARSEABLE_TTL))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await,
            "record unparseable lock in",
            &self.table,
        )
    }

    /// Forgets that an unparseable lock was reported (so it is reported again if it reappears).
    pub async fn forget_unparseable(&self, location: &str) -> Result<(), AwsError> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(UNPARSEABLE_PK, location)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "forget unparseable lock in", &self.table))?;
        Ok(())
    }
}

fn decode(item: &HashMap<String, AttributeValue>) -> Option<StoredAlert> {
    let s = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    };
    let version = match item.get("version") {
        Some(AttributeValue::N(n)) => n.parse().ok()?,
        _ => return None,
    };
    Some(StoredAlert {
        location: serde_json::from_str(s("location")?).ok()?,
        state_path: s("state_path")?.to_owned(),
        state: serde_json::from_str(s("state")?).ok()?,
        version,
    })
}
