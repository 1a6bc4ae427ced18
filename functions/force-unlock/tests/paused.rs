//! The kill switch (`UNLOCKS_PAUSED=true`, the stack's `UnlocksPaused`) in force-unlock, against the
//! emulator, through the library entry point the Lambda handler calls (`ForceUnlock::from_config`
//! at a cold start, then `handle_event` with an SNS event in the shape SNS delivers): a valid
//! approval of a real Terraform lock is refused, nothing is deleted or used up, and the same
//! approval unlocks once the function runs unpaused.

#![allow(clippy::unwrap_used)]

mod common;

use chrono::Utc;
use common::*;
use force_unlock::{Config, ForceUnlock};
use lockreaper_core::proposal::ProposalStatus;
use lockreaper_testkit::{LockMode, Terraform};

async fn cold_start(setup: &Setup, unlocks_paused: &str) -> ForceUnlock {
    let mut vars = setup.function_env(None);
    vars.push(("UNLOCKS_PAUSED".to_owned(), unlocks_paused.to_owned()));
    let config = Config::from_env(vars).unwrap();
    assert_eq!(config.unlocks_paused, unlocks_paused == "true");
    ForceUnlock::from_config(&setup.env.aws, &config)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_stack_refuses_an_approval_without_using_it_and_it_unlocks_after_resuming() {
    let setup = Setup::new("paused").await;
    let (table, bucket) = (setup.env.name("locks"), setup.env.name("state"));
    setup.env.create_lock_table(&table, "LockID").await;
    setup.env.create_state_bucket(&bucket).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "network/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let stuck = tf.stuck();
    let lock = setup.table_lock(&table, "LockID", &stuck.path).await;
    let proposed = setup.propose(vec![lock.clone()]).await;
    let id = proposed.proposal.proposal_id.clone();

    // Paused: refused, nothing deleted, nothing written about the proposal, no audit record.
    let paused = cold_start(&setup, "true").await;
    let report = paused
        .handle_event(sns_event(&[(&message_id(), &proposed.token)]), Utc::now())
        .await
        .unwrap();
    assert_eq!(report.records.len(), 1);
    assert_eq!(report.records[0].outcome, "unlocks-paused", "{report:?}");
    assert_eq!(report.records[0].proposal_id.as_deref(), Some(id.as_str()));
    assert_eq!(report.records[0].audit_id, None);
    assert!(report.records[0].notified);
    assert!(setup.item_exists(&table, "LockID", &stuck.path).await);
    let record = setup.proposals().record(&id).await.unwrap().unwrap();
    assert_eq!(record.status, ProposalStatus::Open, "{record:?}");
    assert_eq!(record.decided.delivery, None, "no claim was taken");
    assert!(setup.audit(&stuck.path).await.is_empty());

    // The answer lands in the alert's thread and says what to do.
    let result = setup.result().await;
    let chat = chat(&result);
    assert_eq!(chat["metadata"]["threadId"], proposed.thread_id());
    let description = chat["content"]["description"].as_str().unwrap();
    assert!(
        description.contains(
            "Unlocks are paused on this stack (UnlocksPaused=true); nothing was deleted."
        ),
        "{description}"
    );
    let until = lockreaper_core::messages::fmt_time(proposed.proposal.expires_at);
    assert!(
        description.contains(&format!("stays usable until {until}")),
        "{description}"
    );

    // A second press while paused: the same answer, still nothing used up.
    let again = paused
        .handle_event(sns_event(&[(&message_id(), &proposed.token)]), Utc::now())
        .await
        .unwrap();
    assert_eq!(again.records[0].outcome, "unlocks-paused");
    setup.result().await;

    // Resumed (`UnlocksPaused=false`): the very same approval unlocks, once.
    let resumed = cold_start(&setup, "false").await;
    let report = resumed
        .handle_event(sns_event(&[(&message_id(), &proposed.token)]), Utc::now())
        .await
        .unwrap();
    assert_eq!(report.records[0].outcome, "unlocked", "{report:?}");
    assert!(!setup.item_exists(&table, "LockID", &stuck.path).await);
    let audit = setup.audit(&stuck.path).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].proposal_id.as_deref(), Some(id.as_str()));
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "the next apply takes the lock: {out}");
}
