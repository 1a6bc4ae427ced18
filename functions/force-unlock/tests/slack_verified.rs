//! Slack-verified approvals (issue 13), against the project's emulator through the library entry
//! point the Lambda handler calls (`ForceUnlock::from_config` + `handle_event`, with the keys read
//! from the emulator's Secrets Manager): only an attestation signed with the Slack attestation key
//! counts as a verified approver; a `slack:` allow-list entry is matched by nothing else; the
//! audit records the verified identity and how it was verified.

#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use common::*;
use force_unlock::{Config, ForceUnlock};
use lockreaper_core::approval::{
    ApprovalAction, ApprovalRequest, ApprovalSource, SigningKey, SlackGroups, SlackIdentity,
};

const ATTESTATION_SECRET: &str = "slack-attestation-key-emulator-tests-0123456789abcdef";

/// Puts a Gyro lock item (the documented format: `LockKey`, `GyroId`, `GyroLockInfo`).
async fn put_gyro(setup: &Setup, table: &str, key: &str, id: &str) {
    setup
        .env
        .aws
        .dynamodb()
        .put_item()
        .table_name(table)
        .item("LockKey", AttributeValue::S(key.to_owned()))
        .item("GyroId", AttributeValue::S(id.to_owned()))
        .item(
            "GyroLockInfo",
            AttributeValue::S(
                "Locked by 'gyro-user' running 'up ec2/ami.gyro' at '16:38:29 EDT, Apr-27'."
                    .to_owned(),
            ),
        )
        .send()
        .await
        .unwrap();
}

/// force-unlock as at a cold start, with `extra` variables besides the test's own.
async fn cold_start(
    setup: &Setup,
    allow_list: Option<&str>,
    extra: &[(&str, &str)],
) -> ForceUnlock {
    let mut vars = setup.function_env(allow_list);
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let config = Config::from_env(vars).unwrap();
    ForceUnlock::from_config(&setup.env.aws, &config)
        .await
        .unwrap()
}

async fn deliver(function: &ForceUnlock, message: &str) -> (String, String) {
    let report = function
        .handle_event(sns_event(&[(&message_id(), message)]), Utc::now())
        .await
        .unwrap();
    assert_eq!(report.records.len(), 1);
    let record = &report.records[0];
    (record.outcome.clone(), record.message_id.clone())
}

fn ana() -> SlackIdentity {
    SlackIdentity::new("T0123ABCD", "U0456EFGH").unwrap()
}

fn verified(key: &SigningKey, action: ApprovalAction, token: &str, who: &SlackIdentity) -> String {
    ApprovalRequest::slack_verified(key, action, token, None, who, Utc::now()).to_json()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_attested_slack_users_on_the_list_unlock_and_the_audit_says_who() {
    let setup = Setup::new("slackv").await;
    let attestation_arn = setup
        .env
        .create_secret("slack-attestation", ATTESTATION_SECRET)
        .await;
    let attestation_key = SigningKey::from_secret(ATTESTATION_SECRET).unwrap();
    let table = setup.env.name("gyro");
    setup.env.create_lock_table(&table, "LockKey").await;
    put_gyro(
        &setup,
        &table,
        "app/prod",
        "11111111-1111-4111-8111-111111111111",
    )
    .await;
    put_gyro(
        &setup,
        &table,
        "app/dev",
        "22222222-2222-4222-8222-222222222222",
    )
    .await;

    let function = cold_start(
        &setup,
        Some("ops@example.com, slack:U0456EFGH"),
        &[("SLACK_ATTESTATION_SECRET_ARN", &attestation_arn)],
    )
    .await;
    let lock = setup.table_lock(&table, "LockKey", "app/prod").await;
    let proposed = setup.propose(vec![lock.clone()]).await;
    let token = proposed.token.as_str();

    // Anyone who can publish to the approvals topic, without the attestation key:
    let self_asserted = serde_json::json!({"token": token, "approver": "slack:U0456EFGH"});
    let wrong_key = verified(&setup.key, ApprovalAction::Approve, token, &ana());
    let mut moved: serde_json::Value = serde_json::from_str(&verified(
        &attestation_key,
        ApprovalAction::Deny,
        token,
        &ana(),
    ))
    .unwrap();
    moved["action"] = "approve".into();
    let eve = SlackIdentity::new("T0123ABCD", "U0EVE0000").unwrap();
    for (what, message) in [
        ("a self-asserted Slack name", self_asserted.to_string()),
        ("an attestation signed with another key", wrong_key),
        (
            "a deny attestation turned into an approval",
            moved.to_string(),
        ),
        (
            "a verified user who is not on the list",
            verified(&attestation_key, ApprovalAction::Approve, token, &eve),
        ),
    ] {
        let (outcome, _) = deliver(&function, &message).await;
        assert_eq!(outcome, "approver-not-allowed", "{what}");
        assert!(
            setup.item_exists(&table, "LockKey", "app/prod").await,
            "{what} released the lock"
        );
    }
    let refusals = setup.results().await;
    assert_eq!(refusals.len(), 4);
    for refusal in &refusals {
        assert_eq!(chat(refusal)["metadata"]["threadId"], proposed.thread_id());
    }
    assert!(
        refusals
            .iter()
            .any(|r| r.message.contains("does not verify")),
        "the forged attestation's refusal says why"
    );

    // Ana, verified by the Slack endpoint and on the list.
    let approval = verified(&attestation_key, ApprovalAction::Approve, token, &ana());
    let (outcome, _) = deliver(&function, &approval).await;
    assert_eq!(outcome, "unlocked");
    assert!(!setup.item_exists(&table, "LockKey", "app/prod").await);
    let audit = setup.audit(&lock.state_path).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].source, ApprovalSource::SlackVerified);
    assert_eq!(
        audit[0].approver.as_deref(),
        Some("slack:T0123ABCD/U0456EFGH")
    );
    assert_eq!(audit[0].locks, vec![lock]);
    let result = setup.result().await;
    assert_eq!(chat(&result)["metadata"]["threadId"], proposed.thread_id());
    assert!(
        result.message.contains("slack:T0123ABCD/U0456EFGH"),
        "the result names the verified approver: {}",
        result.message
    );

    // The same verified message again (a replayed press): the token is used up.
    let (outcome, _) = deliver(&function, &approval).await;
    assert_eq!(outcome, "already-used");

    // A verified denial of another proposal closes it and leaves its lock.
    let dev = setup.table_lock(&table, "LockKey", "app/dev").await;
    let dev_proposal = setup.propose(vec![dev]).await;
    let deny = verified(
        &attestation_key,
        ApprovalAction::Deny,
        &dev_proposal.token,
        &ana(),
    );
    let (outcome, _) = deliver(&function, &deny).await;
    assert_eq!(outcome, "denied");
    assert!(setup.item_exists(&table, "LockKey", "app/dev").await);
}

/// A force-unlock deployed without the Slack attestation key refuses a message claiming a
/// verified Slack approver, rather than trusting it or treating it as anonymous.
#[tokio::test(flavor = "multi_thread")]
async fn without_the_attestation_key_a_verified_claim_is_refused() {
    let setup = Setup::new("slacknokey").await;
    let table = setup.env.name("gyro");
    setup.env.create_lock_table(&table, "LockKey").await;
    put_gyro(
        &setup,
        &table,
        "app/prod",
        "33333333-3333-4333-8333-333333333333",
    )
    .await;
    let function = cold_start(&setup, None, &[]).await;
    let lock = setup.table_lock(&table, "LockKey", "app/prod").await;
    let proposed = setup.propose(vec![lock]).await;
    let key = SigningKey::from_secret(ATTESTATION_SECRET).unwrap();
    let message = verified(&key, ApprovalAction::Approve, &proposed.token, &ana());
    let (outcome, _) = deliver(&function, &message).await;
    assert_eq!(outcome, "approver-not-allowed");
    assert!(setup.item_exists(&table, "LockKey", "app/prod").await);
    let refusal = setup.result().await;
    assert!(
        refusal.message.contains("SLACK_ATTESTATION_SECRET_ARN"),
        "{}",
        refusal.message
    );
}

/// What the Slack endpoint publishes for Ana's press, with the group membership it looked up.
fn verified_in_groups(
    key: &SigningKey,
    token: &str,
    who: &SlackIdentity,
    member_of: &[&str],
    unchecked: &[&str],
) -> String {
    let groups = SlackGroups {
        member_of: member_of.iter().map(|g| (*g).to_owned()).collect(),
        unchecked: unchecked.iter().map(|g| (*g).to_owned()).collect(),
    };
    ApprovalRequest::slack_verified_with_groups(
        key,
        ApprovalAction::Approve,
        token,
        None,
        who,
        Some(&groups),
        Utc::now(),
    )
    .to_json()
}

/// A user-group entry allows an approval attested as from a member of that group at press time,
/// and the audit records the group; it refuses a non-member, a press whose membership could not
/// be looked up, a self-asserted approver named like the group, and groups forged into an
/// attestation, each with the entries considered and why.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_group_entry_allows_attested_members_only() {
    let setup = Setup::new("slackgrp").await;
    let attestation_arn = setup
        .env
        .create_secret("slack-attestation", ATTESTATION_SECRET)
        .await;
    let attestation_key = SigningKey::from_secret(ATTESTATION_SECRET).unwrap();
    let table = setup.env.name("gyro");
    setup.env.create_lock_table(&table, "LockKey").await;
    put_gyro(
        &setup,
        &table,
        "app/prod",
        "44444444-4444-4444-8444-444444444444",
    )
    .await;
    let function = cold_start(
        &setup,
        Some("ops@example.com, slack:T0123ABCD/S0OPS0001"),
        &[("SLACK_ATTESTATION_SECRET_ARN", &attestation_arn)],
    )
    .await;
    let lock = setup.table_lock(&table, "LockKey", "app/prod").await;
    let proposed = setup.propose(vec![lock.clone()]).await;
    let token = proposed.token.as_str();

    let eve = SlackIdentity::new("T0123ABCD", "U0EVE0000").unwrap();
    let mut forged: serde_json::Value =
        serde_json::from_str(&verified_in_groups(&attestation_key, token, &eve, &[], &[])).unwrap();
    forged["slack"]["groups"] = serde_json::json!(["S0OPS0001"]);
    let refusals = [
        (
            "a verified non-member",
            verified_in_groups(&attestation_key, token, &eve, &[], &[]),
            "U0EVE0000 was not a member when they pressed",
        ),
        (
            "a press whose membership could not be looked up",
            verified_in_groups(&attestation_key, token, &ana(), &[], &["S0OPS0001"]),
            "cannot tell",
        ),
        (
            "a verified press from before user groups",
            verified(&attestation_key, ApprovalAction::Approve, token, &ana()),
            "records no user-group membership",
        ),
        (
            "a self-asserted approver named like the group",
            serde_json::json!({"token": token, "approver": "slack:T0123ABCD/S0OPS0001"})
                .to_string(),
            "not verified by the Slack endpoint",
        ),
        (
            "membership forged into an attestation",
            forged.to_string(),
            "does not verify",
        ),
    ];
    for (what, message, why) in &refusals {
        let (outcome, _) = deliver(&function, message).await;
        assert_eq!(outcome, "approver-not-allowed", "{what}");
        assert!(
            setup.item_exists(&table, "LockKey", "app/prod").await,
            "{what} released the lock"
        );
        let result = setup.result().await;
        assert!(result.message.contains(why), "{what}: {}", result.message);
    }

    // Ana, attested as a member of S0OPS0001 when she pressed.
    let approval = verified_in_groups(&attestation_key, token, &ana(), &["S0OPS0001"], &[]);
    let (outcome, _) = deliver(&function, &approval).await;
    assert_eq!(outcome, "unlocked");
    assert!(!setup.item_exists(&table, "LockKey", "app/prod").await);
    let audit = setup.audit(&lock.state_path).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].source, ApprovalSource::SlackVerified);
    assert_eq!(
        audit[0].approver.as_deref(),
        Some("slack:T0123ABCD/U0456EFGH")
    );
    assert_eq!(audit[0].approver_groups, ["S0OPS0001"]);
}
