//! `lockreaper doctor`'s role check: for each function whose role ARN is configured
//! (`REAPER_ROLE_ARN`, `LOCK_METRICS_ROLE_ARN`, `FORCE_UNLOCK_ROLE_ARN`: the stack's outputs),
//! every permission it needs on the configured resources ([`lockreaper_core::permissions::needed`],
//! the one list) is simulated with `iam:SimulatePrincipalPolicy`; one check per function: OK, or
//! FAIL naming each denied action and resource and whether the deny is implicit or explicit.
//! A simulation the caller may not run is a WARN, never a pass.

use lockreaper_aws::iam::{simulate, Decision};
use lockreaper_aws::{AwsError, AwsErrorKind};
use lockreaper_core::permissions::{needed, Deployment, Function, Needed};

use crate::doctor::{fail, ok, warn, Check, Section};
use crate::failure::concise;

/// One function's role and what its simulation found (`doctor --json`: `roles`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleReport {
    pub function: Function,
    pub role_arn: String,
    /// Permissions simulated (0 when the simulation could not run).
    pub simulated: usize,
    /// The needed permissions IAM did not allow.
    pub denied: Vec<DeniedPermission>,
    /// Why the simulation could not run, when it could not.
    pub error: Option<String>,
    /// The caller may not simulate (`iam:SimulatePrincipalPolicy` denied): nothing is known.
    pub simulation_denied: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeniedPermission {
    pub action: String,
    pub resource: String,
    pub leading_key: Option<String>,
    /// `implicit_deny` (nothing allows it) or `explicit_deny` (a Deny statement).
    pub decision: Decision,
    pub why: String,
    /// Condition keys IAM needed and did not get.
    pub missing_context: Vec<String>,
}

/// What one function's role was asked, by resource and leading key, and what IAM answered.
pub type Answers = Result<Vec<(Needed, Decision, Vec<String>)>, AwsError>;

/// Asks IAM about every permission `function` needs on `deployment`: one simulation per resource
/// (and ledger partition key), all actions on it at once.
pub async fn simulate_role(
    iam: &lockreaper_aws::iam::Client,
    role_arn: &str,
    function: Function,
    deployment: &Deployment,
) -> Answers {
    let list = needed(function, deployment);
    // group by (resource, leading key), keeping the list's order
    let mut groups: Vec<(String, Option<String>, Vec<Needed>)> = Vec::new();
    for n in list {
        match groups
            .iter_mut()
            .find(|(r, k, _)| *r == n.resource && *k == n.leading_key)
        {
            Some((_, _, members)) => members.push(n),
            None => groups.push((n.resource.clone(), n.leading_key.clone(), vec![n])),
        }
    }
    let calls = groups.iter().map(|(resource, key, members)| async move {
        let actions: Vec<&str> = members.iter().map(|n| n.action).collect();
        let answers = simulate(iam, role_arn, &actions, resource, key.as_deref()).await?;
        let mut out = Vec::new();
        for n in members {
            // An action IAM did not answer for is not allowed: report it rather than pass it.
            let (decision, missing) = answers
                .iter()
                .find(|s| s.action.eq_ignore_ascii_case(n.action))
                .map(|s| (s.decision, s.missing_context.clone()))
                .unwrap_or((Decision::ImplicitDeny, Vec::new()));
            out.push((n.clone(), decision, missing));
        }
        Ok::<_, AwsError>(out)
    });
    let mut all = Vec::new();
    for group in futures::future::join_all(calls).await {
        all.extend(group?);
    }
    Ok(all)
}

/// The report and the check of one function's role from IAM's answers. Pure.
pub fn role_check(function: Function, role_arn: &str, answers: Answers) -> (RoleReport, Check) {
    let mut report = RoleReport {
        function,
        role_arn: role_arn.to_owned(),
        simulated: 0,
        denied: Vec::new(),
        error: None,
        simulation_denied: false,
    };
    let name = function.name();
    let check = match answers {
        Err(e) if e.kind == AwsErrorKind::AccessDenied => {
            report.simulation_denied = true;
            report.error = Some(concise(&e.message));
            warn(
                format!("{name}'s role NOT checked: the caller may not run iam:SimulatePrincipalPolicy on it ({})", concise(&e.message)),
                format!("allow iam:SimulatePrincipalPolicy on {role_arn} for the identity running doctor, then run it again"),
            )
        }
        Err(e) if e.kind == AwsErrorKind::NotFound => {
            report.error = Some(concise(&e.message));
            fail(
                format!("{name}'s role {role_arn} does not exist"),
                format!("set it to the stack's {} output", function.role_output()),
            )
        }
        Err(e) => {
            report.error = Some(concise(&e.message));
            warn(
                format!("{name}'s role NOT checked: the simulation failed: {}", concise(&e.message)),
                "check the region, credentials and endpoint, then run doctor again",
            )
        }
        Ok(answers) if answers.is_empty() => warn(
            format!("{name}'s role NOT checked: nothing it works on is configured here"),
            "set LOCK_TABLES/LOCK_BUCKETS, LEDGER_TABLE, ALERT_TOPIC_ARN (as the stack's outputs and parameters say), then run doctor again",
        ),
        Ok(answers) => {
            report.simulated = answers.len();
            for (n, decision, missing) in answers {
                if decision != Decision::Allowed {
                    report.denied.push(DeniedPermission {
                        action: n.action.to_owned(),
                        resource: n.resource,
                        leading_key: n.leading_key,
                        decision,
                        why: n.why.to_owned(),
                        missing_context: missing,
                    });
                }
            }
            if report.denied.is_empty() {
                ok(format!(
                    "{name}'s role allows all {} permissions it needs on the configured resources (its identity policies and permissions boundary; SCPs and resource policies are not simulated)",
                    report.simulated
                ))
            } else {
                fail(
                    format!(
                        "{name}'s role is denied {} of {} permissions it needs: {}",
                        report.denied.len(),
                        report.simulated,
                        report
                            .denied
                            .iter()
                            .map(describe_denied)
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    fix_for(function, &report.denied),
                )
            }
        }
    };
    (report, check)
}

fn describe_denied(d: &DeniedPermission) -> String {
    let key = d
        .leading_key
        .as_deref()
        .map(|k| format!(" (partition key {k})"))
        .unwrap_or_default();
    let kind = match d.decision {
        Decision::ExplicitDeny => "explicit deny",
        _ => "implicit deny",
    };
    let missing = if d.missing_context.is_empty() {
        String::new()
    } else {
        format!(", missing context {}", d.missing_context.join(", "))
    };
    format!(
        "{} on {}{key} ({kind}{missing}; to {})",
        d.action, d.resource, d.why
    )
}

fn fix_for(function: Function, denied: &[DeniedPermission]) -> String {
    let explicit = denied.iter().any(|d| d.decision == Decision::ExplicitDeny);
    let implicit = denied.iter().any(|d| d.decision != Decision::ExplicitDeny);
    let mut fixes = Vec::new();
    if explicit {
        fixes.push(format!(
            "remove or narrow the Deny statement that names them in {}'s policies or permissions boundary (an explicit deny wins over every allow)",
            function.role_output()
        ));
    }
    if implicit {
        fixes.push(
            "nothing allows the implicit ones: deploy the stack with these tables, buckets (and prefixes) in its LockTables/LockTableStreamArns/StateBuckets parameters (AutoExpire=true for the reaper's deletes), or run doctor with the settings the stack was deployed with".to_owned(),
        );
    }
    fixes.join("; ")
}

/// The section of the roles' checks, when any role is configured.
pub fn roles_section(checks: Vec<Check>) -> Option<Section> {
    (!checks.is_empty()).then(|| Section {
        title: "functions' roles (iam:SimulatePrincipalPolicy)".to_owned(),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn n(action: &'static str, resource: &str, key: Option<&str>) -> Needed {
        Needed {
            action,
            resource: resource.to_owned(),
            leading_key: key.map(str::to_owned),
            why: "do its job",
        }
    }

    const ROLE: &str = "arn:aws:iam::123456789012:role/lockreaper-reaper";

    #[test]
    fn all_allowed_is_ok() {
        let (report, check) = role_check(
            Function::Reaper,
            ROLE,
            Ok(vec![(
                n("dynamodb:Scan", "arn:t", None),
                Decision::Allowed,
                vec![],
            )]),
        );
        assert_eq!(check.status, Status::Ok);
        assert!(
            check
                .what
                .starts_with("reaper's role allows all 1 permissions"),
            "{}",
            check.what
        );
        assert!(check
            .what
            .contains("SCPs and resource policies are not simulated"));
        assert_eq!(report.simulated, 1);
        assert!(report.denied.is_empty());
    }

    #[test]
    fn a_deny_fails_naming_action_resource_and_kind() {
        let (report, check) = role_check(
            Function::ForceUnlock,
            ROLE,
            Ok(vec![
                (
                    n("dynamodb:GetItem", "arn:t", None),
                    Decision::Allowed,
                    vec![],
                ),
                (
                    n("dynamodb:DeleteItem", "arn:t", None),
                    Decision::ExplicitDeny,
                    vec![],
                ),
                (
                    n("dynamodb:PutItem", "arn:ledger", Some("audit#x")),
                    Decision::ImplicitDeny,
                    vec!["dynamodb:LeadingKeys".into()],
                ),
            ]),
        );
        assert_eq!(check.status, Status::Fail);
        assert_eq!(
            check.what,
            "force-unlock's role is denied 2 of 3 permissions it needs: dynamodb:DeleteItem on arn:t (explicit deny; to do its job); dynamodb:PutItem on arn:ledger (partition key audit#x) (implicit deny, missing context dynamodb:LeadingKeys; to do its job)"
        );
        let fix = check.fix.expect("a fix");
        assert!(fix.contains("remove or narrow the Deny statement"), "{fix}");
        assert!(fix.contains("ForceUnlockRoleArn"), "{fix}");
        assert!(fix.contains("nothing allows the implicit ones"), "{fix}");
        assert_eq!(report.denied.len(), 2);
        assert_eq!(report.denied[0].decision, Decision::ExplicitDeny);
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["function"], "force-unlock");
        assert_eq!(json["denied"][1]["decision"], "implicit_deny");
    }

    #[test]
    fn a_simulation_the_caller_may_not_run_is_a_warn_that_says_so() {
        let denied = AwsError {
            kind: AwsErrorKind::AccessDenied,
            action: "simulate the policies of role",
            resource: ROLE.into(),
            message:
                "AccessDenied: User: x is not authorized to perform: iam:SimulatePrincipalPolicy"
                    .into(),
        };
        let (report, check) = role_check(Function::LockMetrics, ROLE, Err(denied));
        assert_eq!(check.status, Status::Warn);
        assert!(
            check
                .what
                .contains("NOT checked: the caller may not run iam:SimulatePrincipalPolicy"),
            "{}",
            check.what
        );
        assert!(check
            .fix
            .expect("fix")
            .contains(&format!("allow iam:SimulatePrincipalPolicy on {ROLE}")));
        assert!(report.simulation_denied);
        assert_eq!(report.simulated, 0);
    }

    #[test]
    fn a_missing_role_fails_and_nothing_configured_warns() {
        let missing = AwsError {
            kind: AwsErrorKind::NotFound,
            action: "simulate the policies of role",
            resource: ROLE.into(),
            message: "NoSuchEntity: no such role".into(),
        };
        let (_, check) = role_check(Function::Reaper, ROLE, Err(missing));
        assert_eq!(check.status, Status::Fail);
        assert!(check.fix.expect("fix").contains("ReaperRoleArn"));
        let (_, check) = role_check(Function::Reaper, ROLE, Ok(vec![]));
        assert_eq!(check.status, Status::Warn);
    }
}
