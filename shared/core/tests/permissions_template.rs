//! `lockreaper doctor`'s list of the permissions each function needs
//! (`lockreaper_core::permissions::needed`) against what the template grants each role, as
//! `infra/sam/test_effective_permissions.py` resolves the template for its parameter sets and
//! records it in `infra/sam/fixtures/effective_permissions.json` (that test keeps the fixture equal
//! to the template). Both ways:
//!
//! - every needed permission is granted to the function's role (else doctor would FAIL a correct
//!   deployment, or the function itself would be denied);
//! - every data-plane grant (DynamoDB, S3, SNS, Secrets Manager) is needed by the list (else the
//!   list misses something a function calls, and doctor would not notice it denied).
//!
//! The configuration of each function is built from the environment the template gives it (the
//! fixture's `environments`), with the functions' own parsers.

use std::collections::BTreeMap;

use lockreaper_core::config::{Env, LockSources};
use lockreaper_core::coverage::state_locations_from_env;
use lockreaper_core::permissions::{needed, Deployment, Function, Needed};
use serde_json::Value;

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/sam/fixtures/effective_permissions.json"
    );
    let text = std::fs::read_to_string(path).expect("the recorded fixture");
    serde_json::from_str(&text).expect("the fixture is JSON")
}

/// One resolved grant: `Effect action resource condition` (test_effective_permissions.grants).
#[derive(Debug, Clone)]
struct Grant {
    allow: bool,
    action: String,
    resource: String,
    condition: serde_json::Map<String, Value>,
}

fn parse_grant(line: &str) -> Grant {
    let mut parts = line.splitn(4, ' ');
    let effect = parts.next().expect("effect");
    let action = parts.next().expect("action").to_owned();
    let resource = parts.next().expect("resource").to_owned();
    let condition: Value = serde_json::from_str(parts.next().expect("condition")).expect("JSON");
    // A reference to a table's ARN, as the environment names the table (`<LedgerTable>`).
    let resource = match resource
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix(".Arn>"))
    {
        Some(logical) if logical.ends_with("Table") => {
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/<{logical}>")
        }
        _ => resource,
    };
    Grant {
        allow: effect == "Allow",
        action,
        resource,
        condition: condition.as_object().expect("object").clone(),
    }
}

/// IAM's wildcard match (`*`: any run of characters, `?`: one), case-sensitive as for resources.
fn wildcard(pattern: &[u8], value: &[u8]) -> bool {
    match (pattern.first(), value.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildcard(&pattern[1..], value) || (!value.is_empty() && wildcard(pattern, &value[1..]))
        }
        (Some(b'?'), Some(_)) => wildcard(&pattern[1..], &value[1..]),
        (Some(p), Some(v)) if p == v => wildcard(&pattern[1..], &value[1..]),
        _ => false,
    }
}

/// The grant's condition for a request writing `leading_key`. Only the operators the template
/// uses are known; another one fails the test (it would need evaluating here).
fn condition_holds(condition: &serde_json::Map<String, Value>, leading_key: Option<&str>) -> bool {
    condition.iter().all(|(operator, keys)| {
        keys.as_object()
            .expect("keys")
            .iter()
            .all(|(key, expected)| {
                assert_eq!(
                    key, "dynamodb:LeadingKeys",
                    "condition key {key} is not evaluated by this test"
                );
                match operator.as_str() {
                    "Null" => (leading_key.is_none()) == (expected.as_str() == Some("true")),
                    "ForAllValues:StringLike" => {
                        leading_key.is_none_or(|k| {
                            expected.as_array().expect("values").iter().any(|p| {
                                wildcard(p.as_str().expect("string").as_bytes(), k.as_bytes())
                            })
                        })
                    }
                    other => panic!("condition operator {other} is not evaluated by this test"),
                }
            })
    })
}

fn grants(grants: &[Grant], n: &Needed) -> bool {
    let matches = |g: &&Grant| {
        g.action == n.action
            && wildcard(g.resource.as_bytes(), n.resource.as_bytes())
            && condition_holds(&g.condition, n.leading_key.as_deref())
    };
    !grants.iter().filter(|g| !g.allow).any(|g| matches(&g))
        && grants.iter().filter(|g| g.allow).any(|g| matches(&g))
}

fn deployment(set: &Value, function: Function) -> Deployment {
    let envs = &set["environments"];
    let vars = |role: &str| -> BTreeMap<String, String> {
        envs[role]
            .as_object()
            .expect("environment")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
            .collect()
    };
    // The reaper's sources are the stack's (LockTables, StateBuckets); each function's own
    // variables win for what it is told itself (force-unlock's STATE_BUCKETS).
    let mut merged = vars("ReaperRole");
    merged.extend(vars(function.role_logical_id()));
    let mut env = Env::new(merged);
    let sources = LockSources::from_env(&mut env);
    let state_locations = state_locations_from_env(&mut env).unwrap_or_default();
    let ledger_table = env.ledger_table();
    let get = |name: &str| env.get(name).map(str::to_owned);
    Deployment {
        partition: "aws".into(),
        region: REGION.into(),
        account: ACCOUNT.into(),
        lock_tables: sources.tables.clone(),
        stream_arns: set["stream_mappings"]
            .as_array()
            .expect("mappings")
            .iter()
            .map(|s| s.as_str().expect("arn").to_owned())
            .collect(),
        lock_buckets: sources.buckets.clone(),
        state_locations,
        ledger_table,
        alert_topic_arn: get("ALERT_TOPIC_ARN"),
        approval_secret_arn: get("APPROVAL_SECRET_ARN"),
        approval_topic_arn: get("APPROVAL_TOPIC_ARN"),
        slack_bot_token_secret_arn: get("SLACK_BOT_TOKEN_SECRET_ARN"),
        slack_signing_secret_arn: get("SLACK_SIGNING_SECRET_ARN"),
        slack_attestation_secret_arn: get("SLACK_ATTESTATION_SECRET_ARN"),
        auto_expire: vars("ReaperRole").get("AUTO_EXPIRE").map(String::as_str) == Some("true"),
    }
}

fn role_grants(set: &Value, function: Function) -> Vec<Grant> {
    set["roles"][function.role_logical_id()]
        .as_array()
        .expect("the role's grants")
        .iter()
        .map(|g| parse_grant(g.as_str().expect("string")))
        .collect()
}

const DATA_PLANE: [&str; 4] = ["dynamodb:", "s3:", "sns:", "secretsmanager:"];

#[test]
fn every_needed_permission_is_granted_and_every_data_plane_grant_is_needed() {
    let fixture = fixture();
    let sets = fixture.as_object().expect("parameter sets");
    assert!(sets.len() >= 5, "{}", sets.len());
    let mut checked = 0;
    let mut slack_app_sets = 0;
    for (name, set) in sets {
        for function in Function::ALL {
            if set["roles"].get(function.role_logical_id()).is_none() {
                // the Slack app mode's functions exist only with SlackAppChannelId
                assert!(
                    matches!(
                        function,
                        Function::SlackNotifier | Function::SlackInteractions
                    ),
                    "{name}: no {} in the fixture",
                    function.role_logical_id()
                );
                continue;
            }
            if function == Function::SlackInteractions {
                slack_app_sets += 1;
            }
            let d = deployment(set, function);
            let list = needed(function, &d);
            let granted = role_grants(set, function);
            for n in &list {
                assert!(
                    grants(&granted, n),
                    "{name}: {} needs {} on {} (leading key {:?}) but its role {} is not granted it",
                    function.name(),
                    n.action,
                    n.resource,
                    n.leading_key,
                    function.role_logical_id()
                );
                checked += 1;
            }
            for g in granted.iter().filter(|g| g.allow) {
                if !DATA_PLANE.iter().any(|s| g.action.starts_with(s)) {
                    continue;
                }
                let used = list.iter().any(|n| {
                    n.action == g.action && wildcard(g.resource.as_bytes(), n.resource.as_bytes())
                });
                assert!(
                    used,
                    "{name}: {} is granted {} on {} but lockreaper_core::permissions::needed does not list it",
                    function.role_logical_id(),
                    g.action,
                    g.resource
                );
            }
        }
    }
    assert!(checked > 300, "only {checked} permissions checked");
    assert!(
        slack_app_sets >= 2,
        "the fixture has {slack_app_sets} parameter sets with the Slack app mode"
    );
}

#[test]
fn a_missing_grant_or_a_wrong_leading_key_is_found() {
    // guards the comparison itself: it must be able to fail
    let fixture = fixture();
    let set = &fixture["one table, one bucket, defaults"];
    let d = deployment(set, Function::ForceUnlock);
    let list = needed(Function::ForceUnlock, &d);
    let mut granted = role_grants(set, Function::ForceUnlock);
    let delete = list
        .iter()
        .find(|n| n.action == "dynamodb:DeleteItem" && n.resource.ends_with("table/tf-locks"))
        .expect("force-unlock deletes locks");
    assert!(grants(&granted, delete));
    granted
        .retain(|g| !(g.action == "dynamodb:DeleteItem" && g.resource.ends_with("table/tf-locks")));
    assert!(!grants(&granted, delete));
    let audit = list
        .iter()
        .find(|n| n.leading_key.as_deref() == Some("audit#lockreaper-doctor"))
        .expect("force-unlock writes audit records");
    assert!(grants(&granted, audit));
    let elsewhere = Needed {
        leading_key: Some("alerts#x".into()),
        ..audit.clone()
    };
    assert!(!grants(&granted, &elsewhere));
    let unkeyed = Needed {
        leading_key: None,
        ..audit.clone()
    };
    assert!(!grants(&granted, &unkeyed));
}
