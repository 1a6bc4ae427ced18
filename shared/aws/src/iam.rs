//! `iam:SimulatePrincipalPolicy` for `lockreaper doctor`: would a role be allowed these actions on
//! this resource? IAM evaluates the role's identity-based policies and its permissions boundary;
//! it does not include service control policies or the resource's own policy (bucket, key, topic
//! policies) unless they are passed in, which doctor does not (IAM API reference,
//! SimulatePrincipalPolicy: "ResourcePolicy", and IAM User Guide, "Testing IAM policies with the
//! IAM policy simulator": an allowed result can still be denied by an SCP or a resource policy).

use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};

use crate::{AwsError, AwsErrorKind};

pub use aws_sdk_iam::Client;

/// IAM's answer for one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    /// No statement allows it (or a condition's context is missing).
    ImplicitDeny,
    /// A statement denies it.
    ExplicitDeny,
}

/// One action's simulated decision on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulated {
    pub action: String,
    pub decision: Decision,
    /// Condition keys the simulation needed and did not get (IAM's `MissingContextValues`).
    pub missing_context: Vec<String>,
}

/// The context key DynamoDB sets to the partition keys a request touches (DynamoDB developer guide,
/// "Using IAM policy conditions for fine-grained access control"): the template scopes the ledger
/// writes by it, so a ledger write is simulated with the partition key the function writes.
pub const LEADING_KEYS: &str = "dynamodb:LeadingKeys";

/// Simulates `role_arn` calling each of `actions` on `resource` (one resource per call: IAM
/// answers one decision per action and resource), with `dynamodb:LeadingKeys` = `leading_key`.
pub async fn simulate(
    iam: &aws_sdk_iam::Client,
    role_arn: &str,
    actions: &[&str],
    resource: &str,
    leading_key: Option<&str>,
) -> Result<Vec<Simulated>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut request = iam
            .simulate_principal_policy()
            .policy_source_arn(role_arn)
            .set_action_names(Some(actions.iter().map(|a| (*a).to_owned()).collect()))
            .resource_arns(resource)
            .set_marker(marker.take());
        if let Some(key) = leading_key {
            request = request.context_entries(
                ContextEntry::builder()
                    .context_key_name(LEADING_KEYS)
                    .context_key_type(ContextKeyTypeEnum::StringList)
                    .context_key_values(key)
                    .build(),
            );
        }
        let page = request
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(e, "simulate the policies of role", role_arn))?;
        for result in page.evaluation_results() {
            let decision = match result.eval_decision() {
                PolicyEvaluationDecisionType::Allowed => Decision::Allowed,
                PolicyEvaluationDecisionType::ExplicitDeny => Decision::ExplicitDeny,
                PolicyEvaluationDecisionType::ImplicitDeny => Decision::ImplicitDeny,
                other => {
                    return Err(AwsError {
                        kind: AwsErrorKind::Other,
                        action: "simulate the policies of role",
                        resource: role_arn.to_owned(),
                        message: format!(
                            "unknown decision {:?} for {}",
                            other.as_str(),
                            result.eval_action_name()
                        ),
                    })
                }
            };
            out.push(Simulated {
                action: result.eval_action_name().to_owned(),
                decision,
                missing_context: result.missing_context_values().to_vec(),
            });
        }
        if page.is_truncated() {
            marker = page.marker;
            if marker.is_none() {
                break;
            }
        } else {
            break;
        }
    }
    Ok(out)
}
