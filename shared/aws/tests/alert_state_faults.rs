//! The reaper's alert state (`AlertStates::put_if`, the write that wins a sweep the right to
//! send an alert) when the emulator's answer to that write is lost: the SDK retries a conditional
//! put that was already applied, and the retry fails its condition on that very write.

#![allow(clippy::unwrap_used)]

use chrono::Utc;
use lockreaper_aws::alert_state::AlertStates;
use lockreaper_core::policy::{AlertState, Level};
use lockreaper_core::LockLocation;
use lockreaper_testkit::faults::{Fault, FaultProxy, Rule};
use lockreaper_testkit::lambda::create_ledger_table;
use lockreaper_testkit::TestEnv;

fn location() -> LockLocation {
    LockLocation::DynamoDb {
        table: "tf-locks".into(),
        key_attribute: "LockID".into(),
        key: "acme-tfstate/prod/vpc/terraform.tfstate".into(),
    }
}

/// Before the write token, the lost answer made the sweep's own write look like another sweep's
/// win (`None`): the state said "alerted" and no alert was sent until the next reminder. Now the
/// write is read back and recognised as this write's own.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_the_alert_state_write_still_wins_the_right_to_alert() {
    let env = TestEnv::new("alert-state-lost").await;
    let ledger = env.name("ledger");
    create_ledger_table(&env, &ledger).await;
    let proxy = FaultProxy::start(
        &env.emulator.endpoint,
        1,
        vec![Rule::new("dynamodb", "PutItem", 1.0, Fault::LostAnswer).at_most(1)],
    )
    .await;
    let states = AlertStates::new(proxy.function_aws(&env.aws).dynamodb(), &ledger);
    let now = Utc::now();
    let state = AlertState::after_send(None, "lock-1", Level::ProposeUnlock, now);

    let first = states
        .put_if(
            &location(),
            "acme-tfstate/prod/vpc/terraform.tfstate",
            &state,
            None,
        )
        .await
        .unwrap();
    assert_eq!(proxy.faulted_count("dynamodb", "PutItem", "LostAnswer"), 1);
    assert_eq!(
        proxy.request_count("dynamodb", "PutItem"),
        2,
        "the SDK retried the put: {}",
        proxy.report()
    );
    assert_eq!(first, Some(1), "the write whose answer was lost is ours");

    // Another sweep that read nothing stored (the same `expected`) still loses: only the write
    // that holds its own token counts as won.
    let other = states
        .put_if(
            &location(),
            "acme-tfstate/prod/vpc/terraform.tfstate",
            &state,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        other, None,
        "a second writer with a stale version must lose"
    );
    // And a write on the version it read wins as before.
    let next = states
        .put_if(
            &location(),
            "acme-tfstate/prod/vpc/terraform.tfstate",
            &state,
            Some(1),
        )
        .await
        .unwrap();
    assert_eq!(next, Some(2));
}
