//! The Slack notifier's memory ([`crate::ledger_schema`], partition keys `slack#…` only): where
//! each lock's thread starts, where each offer with buttons was posted, and which SNS messages
//! were already posted.
//!
//! - `slack#thread#<thread key>`: the first message's `ts` (later messages about the lock are
//!   posted with it as `thread_ts`) and the last offer posted in the thread (`open_offer`, the
//!   offer a lock released on its own closes).
//! - `slack#offer#<token digest>`: the offer's channel, `ts`, `text` and `blocks` (as posted,
//!   with the buttons, but the token withheld: `messages::slack::withhold_token`), and
//!   `closed_at` once a result replaced them. Keyed by a digest of the token
//!   (`messages::slack::offer_key`); the ledger never holds the token.
//! - `slack#delivery#<SNS MessageId>`: the `ts` an SNS message was posted as, so a retried
//!   delivery is not posted twice.
//!
//! Reads are strongly consistent GetItems; every write is a conditional PutItem or UpdateItem, so
//! two deliveries racing (SNS delivers at least once) keep the first writer's values.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{AwsError, AwsErrorKind};
use crate::ledger_schema::{
    expires_at, format_time, key, s, slack_delivery_pk, slack_offer_pk, slack_thread_pk,
    string_attribute, EXPIRES_AT, PK, SK, SLACK_DELIVERY_SK, SLACK_DELIVERY_TTL,
    SLACK_OFFER_RETENTION, SLACK_OFFER_SK, SLACK_THREAD_SK, SLACK_THREAD_TTL,
};

/// Where a lock's thread starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackThread {
    pub channel: String,
    /// The first message's `ts`: the `thread_ts` of every later message.
    pub ts: String,
    /// The digest of the last offer posted in the thread.
    pub open_offer: Option<String>,
}

/// Where an offer with buttons was posted, and what it showed.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackOffer {
    pub channel: String,
    pub ts: String,
    pub text: String,
    /// The blocks as posted (with the buttons), or as last replaced.
    pub blocks: Vec<Value>,
    /// When a result replaced the buttons; `None` while the offer is open.
    pub closed_at: Option<DateTime<Utc>>,
}

/// Reads and writes the Slack notifier's ledger items.
#[derive(Clone, Debug)]
pub struct SlackThreads {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl SlackThreads {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        SlackThreads {
            dynamodb,
            table: table.into(),
        }
    }

    async fn get(
        &self,
        pk: String,
        sk: &str,
        what: &'static str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, AwsError> {
        Ok(self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, what, &self.table))?
            .item)
    }

    /// The `ts` SNS message `message_id` was posted as, if it was.
    pub async fn delivery(&self, message_id: &str) -> Result<Option<String>, AwsError> {
        let item = self
            .get(
                slack_delivery_pk(message_id),
                SLACK_DELIVERY_SK,
                "read Slack delivery from",
            )
            .await?;
        Ok(item.and_then(|i| string_attribute(&i, "ts")))
    }

    /// Records that SNS message `message_id` was posted as `ts`. `false` when a delivery of the
    /// same message recorded it first (or this write's answer was lost and its retry found it).
    pub async fn record_delivery(
        &self,
        message_id: &str,
        ts: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        AwsError::conditional(
            self.dynamodb
                .put_item()
                .table_name(&self.table)
                .item(PK, s(slack_delivery_pk(message_id)))
                .item(SK, s(SLACK_DELIVERY_SK))
                .item("ts", s(ts))
                .item("posted_at", s(format_time(now)))
                .item(EXPIRES_AT, expires_at(now, SLACK_DELIVERY_TTL))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await,
            "record Slack delivery in",
            &self.table,
        )
    }

    /// Where `thread` starts, if it was started.
    pub async fn thread(&self, thread: &str) -> Result<Option<SlackThread>, AwsError> {
        let item = self
            .get(
                slack_thread_pk(thread),
                SLACK_THREAD_SK,
                "read Slack thread from",
            )
            .await?;
        Ok(item.and_then(|i| {
            Some(SlackThread {
                channel: string_attribute(&i, "channel")?,
                ts: string_attribute(&i, "ts")?,
                open_offer: string_attribute(&i, "open_offer"),
            })
        }))
    }

    /// Records that `thread` starts at `channel`/`ts`, unless it was already started. Returns
    /// where it starts: this message, or the one recorded first (two first messages racing:
    /// the loser stays a top-level message of its own).
    pub async fn start_thread(
        &self,
        thread: &str,
        channel: &str,
        ts: &str,
        now: DateTime<Utc>,
    ) -> Result<SlackThread, AwsError> {
        let made = AwsError::conditional(
            self.dynamodb
                .put_item()
                .table_name(&self.table)
                .item(PK, s(slack_thread_pk(thread)))
                .item(SK, s(SLACK_THREAD_SK))
                .item("channel", s(channel))
                .item("ts", s(ts))
                .item("started_at", s(format_time(now)))
                .item(EXPIRES_AT, expires_at(now, SLACK_THREAD_TTL))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await,
            "record Slack thread in",
            &self.table,
        )?;
        let mine = SlackThread {
            channel: channel.to_owned(),
            ts: ts.to_owned(),
            open_offer: None,
        };
        if made {
            return Ok(mine);
        }
        // Already there: another message's (or this write's own, its answer lost).
        Ok(self.thread(thread).await?.unwrap_or(mine))
    }

    /// Records where the offer of digest `offer_key` was posted, with its original blocks, and
    /// marks it the thread's open offer. Kept until `expires` (the approval's expiry) plus
    /// [`SLACK_OFFER_RETENTION`]. A second record of the same offer (a retried delivery) keeps
    /// the first.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_offer(
        &self,
        offer_key: &str,
        thread: Option<&str>,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &[Value],
        expires: DateTime<Utc>,
    ) -> Result<(), AwsError> {
        AwsError::conditional(
            self.dynamodb
                .put_item()
                .table_name(&self.table)
                .item(PK, s(slack_offer_pk(offer_key)))
                .item(SK, s(SLACK_OFFER_SK))
                .item("channel", s(channel))
                .item("ts", s(ts))
                .item("text", s(text))
                .item("blocks", s(Value::Array(blocks.to_vec()).to_string()))
                .item(EXPIRES_AT, expires_at(expires, SLACK_OFFER_RETENTION))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await,
            "record Slack offer in",
            &self.table,
        )?;
        if let Some(thread) = thread {
            // Only on a thread that exists: never creates a thread item without its start.
            AwsError::conditional(
                self.dynamodb
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key(slack_thread_pk(thread), SLACK_THREAD_SK)))
                    .update_expression("SET open_offer = :offer")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":offer", s(offer_key))
                    .send()
                    .await,
                "record Slack thread's open offer in",
                &self.table,
            )?;
        }
        Ok(())
    }

    /// The offer of digest `offer_key`, if one was posted.
    pub async fn offer(&self, offer_key: &str) -> Result<Option<SlackOffer>, AwsError> {
        let Some(item) = self
            .get(
                slack_offer_pk(offer_key),
                SLACK_OFFER_SK,
                "read Slack offer from",
            )
            .await?
        else {
            return Ok(None);
        };
        let bad = |problem: &str| AwsError {
            kind: AwsErrorKind::Other,
            action: "read Slack offer from",
            resource: format!("{} ({})", self.table, slack_offer_pk(offer_key)),
            message: problem.to_owned(),
        };
        let blocks = string_attribute(&item, "blocks")
            .and_then(|b| serde_json::from_str::<Vec<Value>>(&b).ok())
            .ok_or_else(|| bad("the stored blocks are not a JSON array"))?;
        Ok(Some(SlackOffer {
            channel: string_attribute(&item, "channel").ok_or_else(|| bad("no channel"))?,
            ts: string_attribute(&item, "ts").ok_or_else(|| bad("no ts"))?,
            text: string_attribute(&item, "text").unwrap_or_default(),
            blocks,
            closed_at: crate::ledger_schema::time_attribute(&item, "closed_at"),
        }))
    }

    /// Marks the offer closed at `now`, showing `blocks`. `false` when it was closed already.
    pub async fn close_offer(
        &self,
        offer_key: &str,
        blocks: &[Value],
        now: DateTime<Utc>,
    ) -> Result<bool, AwsError> {
        AwsError::conditional(
            self.dynamodb
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(slack_offer_pk(offer_key), SLACK_OFFER_SK)))
                .update_expression("SET closed_at = :at, blocks = :blocks")
                .condition_expression("attribute_exists(pk) AND attribute_not_exists(closed_at)")
                .expression_attribute_values(":at", s(format_time(now)))
                .expression_attribute_values(
                    ":blocks",
                    s(Value::Array(blocks.to_vec()).to_string()),
                )
                .send()
                .await,
            "close Slack offer in",
            &self.table,
        )
    }
}
