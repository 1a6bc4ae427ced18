//! Writing proposals to the ledger and reading the signing key: the reaper's side of the approval
//! contract (`proposal#<id>` / `proposal` items; see `lockreaper_core::proposal`).

use aws_sdk_dynamodb::types::AttributeValue;
use lockreaper_aws::{AwsError, AwsErrorKind};
use lockreaper_core::approval::SigningKey;
use lockreaper_core::proposal::{Proposal, ProposalStatus};

/// Proposals outlive their tokens by a week, so a late approval is told "expired", not "unknown".
const PROPOSAL_GRACE_SECS: i64 = 7 * 86_400;

#[derive(Clone, Debug)]
pub struct ProposalStore {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl ProposalStore {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        ProposalStore {
            dynamodb,
            table: table.into(),
        }
    }

    /// Records a new proposal (never overwrites one).
    pub async fn put(&self, proposal: &Proposal) -> Result<(), AwsError> {
        let json = serde_json::to_string(proposal).map_err(|e| AwsError {
            kind: AwsErrorKind::Other,
            action: "encode proposal",
            resource: proposal.proposal_id.clone(),
            message: e.to_string(),
        })?;
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .item(
                "pk",
                AttributeValue::S(format!("proposal#{}", proposal.proposal_id)),
            )
            .item("sk", AttributeValue::S("proposal".to_owned()))
            .item("proposal", AttributeValue::S(json))
            .item(
                "status",
                AttributeValue::S(ProposalStatus::Open.as_str().to_owned()),
            )
            .item(
                "expires_at",
                AttributeValue::N(
                    (proposal.expires_at.timestamp() + PROPOSAL_GRACE_SECS).to_string(),
                ),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "record proposal in", &self.table))?;
        Ok(())
    }
}

/// Reads the approval signing key from Secrets Manager (`APPROVAL_SECRET_ARN`). The key is never
/// logged: `SigningKey`'s Debug and Display print `SigningKey(redacted)`.
pub async fn signing_key(
    secrets: &aws_sdk_secretsmanager::Client,
    secret_arn: &str,
) -> Result<SigningKey, String> {
    let out = secrets
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(e, "read approval signing key", secret_arn).to_string())?;
    let secret = out
        .secret_string
        .ok_or_else(|| format!("APPROVAL_SECRET_ARN: secret {secret_arn} has no string value"))?;
    SigningKey::from_secret(&secret)
        .map_err(|e| format!("APPROVAL_SECRET_ARN: secret {secret_arn}: {e}"))
}
