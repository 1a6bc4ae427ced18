//! Shared helpers of the force-unlock behaviour tests: one test's world (ledger table, alert topic
//! with a queue subscribed, signing key in Secrets Manager), proposals recorded as the reaper
//! records them, tokens, and SNS events in exactly the shape SNS delivers them to Lambda.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lockreaper_aws::proposals::Proposals;
use lockreaper_aws::{LockFiles, LockTable};
use lockreaper_core::approval::{encode_proposal_id, ApprovalToken, LockFingerprint, SigningKey};
use lockreaper_core::proposal::{AuditRecord, Proposal};
use lockreaper_core::{LockRecord, TableEntry};
use lockreaper_testkit::lambda::{create_ledger_table, LambdaWatch};
use lockreaper_testkit::notifications::{Delivered, TopicWithQueue};
use lockreaper_testkit::TestEnv;
use serde_json::{json, Value};

pub const PACKAGE: &str = "force-unlock";
/// The approvals topic the events claim to come from (the function does not check it).
pub const APPROVALS_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:tflk-ok";

/// A proposal as the reaper recorded it, and the token its alert carried.
pub struct Proposed {
    pub proposal: Proposal,
    pub token: String,
    /// The proposal id's bytes (to issue other tokens for it).
    pub id: [u8; 12],
}

impl Proposed {
    pub fn thread_id(&self) -> &str {
        &self.proposal.thread_id
    }
}

/// One test's world.
pub struct Setup {
    pub env: TestEnv,
    pub ledger_table: String,
    pub alerts: TopicWithQueue,
    pub secret_arn: String,
    /// The secret's value (to check it never shows up in a log).
    pub secret: String,
    pub key: SigningKey,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

impl Setup {
    pub async fn new(test: &str) -> Setup {
        let env = TestEnv::new(test).await;
        let ledger_table = env.name("ledger");
        create_ledger_table(&env, &ledger_table).await;
        let alerts = env.topic_with_queue("alerts").await;
        // 64 random characters, as the template's generated secret.
        let secret = hex::encode(random_bytes::<32>());
        let secret_arn = env.create_secret("approval-key", &secret).await;
        Setup {
            key: SigningKey::from_secret(&secret).unwrap(),
            env,
            ledger_table,
            alerts,
            secret_arn,
            secret,
        }
    }

    /// The function's own variables (the emulator's are added by the harness).
    pub fn function_env(&self, allow_list: Option<&str>) -> Vec<(String, String)> {
        let mut vars = vec![
            ("LEDGER_TABLE".to_owned(), self.ledger_table.clone()),
            ("ALERT_TOPIC_ARN".to_owned(), self.alerts.topic_arn.clone()),
            ("APPROVAL_SECRET_ARN".to_owned(), self.secret_arn.clone()),
        ];
        if let Some(list) = allow_list {
            vars.push(("APPROVER_ALLOW_LIST".to_owned(), list.to_owned()));
        }
        vars
    }

    /// force-unlock behind the real Lambda Runtime API (`cargo lambda watch`).
    pub async fn watch(&self, allow_list: Option<&str>) -> LambdaWatch {
        LambdaWatch::start(PACKAGE, self.function_env(allow_list)).await
    }

    pub fn proposals(&self) -> Proposals {
        Proposals::new(self.env.aws.dynamodb(), &self.ledger_table)
    }

    /// Records a proposal for `locks` as the reaper does, and issues its token (valid for an hour).
    pub async fn propose(&self, locks: Vec<LockRecord>) -> Proposed {
        self.propose_until(locks, Utc::now() + chrono::Duration::hours(1))
            .await
    }

    pub async fn propose_until(
        &self,
        locks: Vec<LockRecord>,
        expires_at: DateTime<Utc>,
    ) -> Proposed {
        let id = random_bytes::<12>();
        let proposal = Proposal {
            proposal_id: encode_proposal_id(&id),
            proposed_at: Utc::now(),
            expires_at,
            thread_id: format!("thread-{}", hex::encode(random_bytes::<8>())),
            reasons: vec!["held past the expire threshold with no state write".to_owned()],
            locks,
        };
        self.proposals().put(&proposal).await.unwrap();
        let token = ApprovalToken::issue(
            &self.key,
            id,
            LockFingerprint::of_all(&proposal.locks),
            expires_at,
        );
        Proposed {
            proposal,
            token,
            id,
        }
    }

    /// The DynamoDB lock at `key`, read as the reaper reads it.
    pub async fn table_lock(&self, table: &str, key_attribute: &str, key: &str) -> LockRecord {
        match LockTable::new(self.env.aws.dynamodb(), table)
            .get(key_attribute, key)
            .await
            .unwrap()
        {
            Some(Ok(TableEntry::Lock(lock))) => lock,
            other => panic!("expected a lock at {table}/{key}, found {other:?}"),
        }
    }

    /// Whether any item is at `key` in `table`.
    pub async fn item_exists(&self, table: &str, key_attribute: &str, key: &str) -> bool {
        LockTable::new(self.env.aws.dynamodb(), table)
            .get(key_attribute, key)
            .await
            .unwrap()
            .is_some()
    }

    /// The lock file at `key`, read as the reaper reads it.
    pub async fn file_lock(&self, bucket: &str, key: &str) -> LockRecord {
        LockFiles::new(self.env.aws.s3())
            .read(bucket, key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no lock file s3://{bucket}/{key}"))
            .unwrap()
    }

    pub async fn file_exists(&self, bucket: &str, key: &str) -> bool {
        LockFiles::new(self.env.aws.s3())
            .read(bucket, key)
            .await
            .unwrap()
            .is_some()
    }

    /// Delivers `message` to the function as SNS does, with a fresh MessageId.
    pub async fn deliver(&self, watch: &LambdaWatch, message: &str) -> Value {
        self.deliver_as(watch, &message_id(), message).await
    }

    /// Delivers `message` with a given MessageId (a redelivery or a Lambda retry reuses it).
    pub async fn deliver_as(&self, watch: &LambdaWatch, message_id: &str, message: &str) -> Value {
        watch
            .invoke(PACKAGE, &sns_event(&[(message_id, message)]))
            .await
    }

    /// Every result notification published so far (waits up to 10 s for the first).
    pub async fn results(&self) -> Vec<Delivered> {
        self.env
            .drain(&self.alerts.queue_url, Duration::from_secs(10))
            .await
    }

    /// The one result notification expected now; panics on none or several.
    pub async fn result(&self) -> Delivered {
        let mut results = self.results().await;
        assert_eq!(
            results.len(),
            1,
            "expected one result notification, got {:?}",
            results
                .iter()
                .map(|r| r.subject.clone())
                .collect::<Vec<_>>()
        );
        results.remove(0)
    }

    /// The audit trail of one state path, newest first.
    pub async fn audit(&self, state_path: &str) -> Vec<AuditRecord> {
        lockreaper_aws::unlock::audit_trail(
            &self.env.aws.dynamodb(),
            &self.ledger_table,
            state_path,
            20,
        )
        .await
        .unwrap()
    }
}

/// A fresh SNS MessageId (a UUID-shaped random string, as SNS sends).
pub fn message_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r = hex::encode(random_bytes::<14>());
    format!(
        "{}-{}-{}-{}-{}{:04x}",
        &r[0..8],
        &r[8..12],
        &r[12..16],
        &r[16..20],
        &r[20..28],
        n & 0xffff
    )
}

/// An SNS event exactly as SNS invokes a subscribed Lambda function (see the AWS Lambda developer
/// guide, "Using Lambda with Amazon SNS", and aws_lambda_events' fixtures), one record per message.
pub fn sns_event(messages: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(message_id, message)| {
            json!({
                "EventVersion": "1.0",
                "EventSubscriptionArn": format!("{APPROVALS_TOPIC}:0b4bd2a4-6cd7-4f4c-9a6e-6c3d1e1b7a55"),
                "EventSource": "aws:sns",
                "Sns": {
                    "SignatureVersion": "1",
                    "Timestamp": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "Signature": "tcc6faL2yUC6dgZdmrwh1Y4cGa/ebXEkAi6RibDsvpi+tE/1+82j...65r==",
                    "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
                    "MessageId": message_id,
                    "Message": message,
                    "MessageAttributes": {},
                    "Type": "Notification",
                    "UnsubscribeUrl": format!("https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={APPROVALS_TOPIC}:0b4bd2a4-6cd7-4f4c-9a6e-6c3d1e1b7a55"),
                    "TopicArn": APPROVALS_TOPIC,
                    "Subject": null
                }
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The outcomes in a response, in record order.
pub fn outcomes(response: &Value) -> Vec<String> {
    response["records"]
        .as_array()
        .unwrap_or_else(|| panic!("not an invocation report: {response}"))
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// The chat notification of a delivered result.
pub fn chat(delivered: &Delivered) -> &Value {
    delivered.json.as_ref().unwrap_or_else(|| {
        panic!(
            "the sqs message is not the chat JSON: {}",
            delivered.message
        )
    })
}
