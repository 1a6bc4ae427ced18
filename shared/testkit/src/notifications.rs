//! Topics, queues, secrets and metrics as the tests need them: an SQS queue subscribed to a topic
//! is how a test reads exactly what a function published (as an e-mail or chat subscriber would
//! receive it). (Metrics are read from the functions' EMF output: `LambdaWatch::emf_metrics`.)

use std::time::Duration;

use serde_json::Value;

use crate::TestEnv;

/// An SNS topic with an SQS queue subscribed to it.
pub struct TopicWithQueue {
    pub topic_arn: String,
    pub queue_url: String,
}

/// A message as an SQS subscriber receives it from SNS.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub subject: Option<String>,
    /// The `Message` string: for `MessageStructure=json` publishes, the value under the `sqs` key.
    pub message: String,
    /// `message` parsed as JSON, when it is JSON (the chat notification).
    pub json: Option<Value>,
}

impl TestEnv {
    /// Creates a topic named `<what>-<id>` and a queue subscribed to it.
    pub async fn topic_with_queue(&self, what: &str) -> TopicWithQueue {
        let name = self.name(what);
        let sns = self.aws.sns();
        let sqs = aws_sdk_sqs::Client::new(&self.aws.sdk);
        let topic_arn = sns
            .create_topic()
            .name(&name)
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .cloned()
            })
            .unwrap();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .send()
            .await
            .unwrap();
        TopicWithQueue {
            topic_arn,
            queue_url,
        }
    }

    /// Every message now in the queue (waits up to `wait` for the first one), deleted as read.
    pub async fn drain(&self, queue_url: &str, wait: Duration) -> Vec<Delivered> {
        let sqs = aws_sdk_sqs::Client::new(&self.aws.sdk);
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let received = sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(if out.is_empty() { 1 } else { 0 })
                .send()
                .await
                .unwrap();
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() && (!out.is_empty() || tokio::time::Instant::now() >= deadline) {
                return out;
            }
            for m in messages {
                let body: Value = serde_json::from_str(m.body().unwrap_or("{}")).unwrap();
                let message = body["Message"].as_str().unwrap_or_default().to_owned();
                out.push(Delivered {
                    subject: body["Subject"].as_str().map(str::to_owned),
                    json: serde_json::from_str(&message).ok(),
                    message,
                });
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    /// Creates a Secrets Manager secret; returns its ARN.
    pub async fn create_secret(&self, what: &str, value: &str) -> String {
        aws_sdk_secretsmanager::Client::new(&self.aws.sdk)
            .create_secret()
            .name(self.name(what))
            .secret_string(value)
            .send()
            .await
            .unwrap()
            .arn
            .unwrap()
    }
}
