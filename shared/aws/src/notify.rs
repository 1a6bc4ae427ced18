//! Publishing alerts to SNS.
//!
//! Alerts go out with `MessageStructure=json`: one JSON object whose keys are delivery protocols,
//! so chat (AWS Chatbot / Amazon Q Developer, subscribed over HTTPS) receives the custom-notification
//! JSON while e-mail subscribers receive readable text.

use crate::error::AwsError;

/// Publishes to one SNS topic.
#[derive(Clone, Debug)]
pub struct Notifier {
    sns: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Notifier {
    pub fn new(sns: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Notifier {
            sns,
            topic_arn: topic_arn.into(),
        }
    }

    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// Publishes a per-protocol message (`MessageStructure=json`); returns the SNS message ID.
    pub async fn publish_structured(
        &self,
        subject: &str,
        envelope_json: &str,
    ) -> Result<String, AwsError> {
        let out = self
            .sns
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject)
            .message_structure("json")
            .message(envelope_json)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "publish alert to", &self.topic_arn))?;
        Ok(out.message_id.unwrap_or_default())
    }

    /// Publishes a plain message (what a chat button or the CLI sends to the approvals topic).
    pub async fn publish_text(&self, message: &str) -> Result<String, AwsError> {
        let out = self
            .sns
            .publish()
            .topic_arn(&self.topic_arn)
            .message(message)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "publish to", &self.topic_arn))?;
        Ok(out.message_id.unwrap_or_default())
    }
}
