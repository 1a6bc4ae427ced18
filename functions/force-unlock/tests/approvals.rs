//! force-unlock end to end, against the project's emulator: locks left by real Terraform killed
//! mid-apply (Gyro's written with the SDK in its documented format), proposals recorded as the
//! reaper records them, approvals delivered as SNS events in exactly the shape SNS delivers them,
//! the function running behind the real Lambda Runtime API (`cargo lambda watch`, invoked with
//! `cargo lambda invoke --data-file`), and the result notification read from an SQS queue
//! subscribed to the alert topic.

#![allow(clippy::unwrap_used)]

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use common::*;
use lockreaper_aws::proposals::{Claim, Claimant};
use lockreaper_aws::unlock::{UnlockRequest, UnlockResult, Unlocker};
use lockreaper_aws::Ledger;
use lockreaper_core::approval::{ApprovalSource, ApprovalToken, LockFingerprint, SigningKey};
use lockreaper_core::proposal::{ArtefactOutcome, ProposalStatus};
use lockreaper_core::LockKind;
use lockreaper_testkit::{LockMode, Terraform};
use serde_json::{json, Value};

/// The `Digest` of Terraform's `-md5` item for `state_path`.
async fn digest(setup: &Setup, table: &str, state_path: &str) -> Option<String> {
    let out = setup
        .env
        .aws
        .dynamodb()
        .get_item()
        .table_name(table)
        .key("LockID", AttributeValue::S(format!("{state_path}-md5")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item.and_then(|i| match i.get("Digest") {
        Some(AttributeValue::S(d)) => Some(d.clone()),
        _ => None,
    })
}

fn description(chat: &Value) -> &str {
    chat["content"]["description"].as_str().unwrap()
}

/// Real Terraform with a DynamoDB lock table: approved from a chat button, the stale lock goes,
/// its digest stays, the audit holds it all, the result lands in the alert's thread and the next
/// apply succeeds. Then the lock is taken again at the same path: the *older* proposal for the
/// first lock and a replay of the used token both leave the new lock alone, and a duplicate
/// delivery of the approving message does nothing at all.
#[tokio::test(flavor = "multi_thread")]
async fn dynamodb_lock_approved_from_chat_then_apply_succeeds_and_old_approvals_do_nothing() {
    let setup = Setup::new("ddb").await;
    let (table, bucket) = (setup.env.name("locks"), setup.env.name("state"));
    setup.env.create_lock_table(&table, "LockID").await;
    setup.env.create_state_bucket(&bucket).await;
    let watch = setup.watch(None).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "network/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    // Two good applies (each replaces a timestamped resource): two state versions, so there is a
    // rollback point before the one the killed apply started from.
    for n in 1..=2 {
        let (code, out) = tf.apply();
        assert_eq!(code, 0, "apply {n}:\n{out}");
    }
    let stuck = tf.stuck();
    let (code, out) = tf.apply();
    assert!(
        code != 0 && out.contains("Error acquiring the state lock"),
        "{out}"
    );
    let digest_before = digest(&setup, &table, &stuck.path).await;
    assert!(
        digest_before.is_some(),
        "the first apply left a digest item"
    );

    let lock = setup.table_lock(&table, "LockID", &stuck.path).await;
    assert_eq!(lock.lock_id, stuck.lock_id);
    // Two alerts proposed the same lock; the later one is approved first.
    let older = setup.propose(vec![lock.clone()]).await;
    let proposed = setup.propose(vec![lock.clone()]).await;

    let first_delivery = message_id();
    let response = setup
        .deliver_as(&watch, &first_delivery, &proposed.token)
        .await;
    assert_eq!(outcomes(&response), ["unlocked"], "{response}");
    assert!(!setup.item_exists(&table, "LockID", &stuck.path).await);
    assert_eq!(
        digest(&setup, &table, &stuck.path).await,
        digest_before,
        "the -md5 digest item is untouched"
    );

    // The audit record holds the full lock content, written before the delete.
    let audit = setup.audit(&stuck.path).await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let record = &audit[0];
    assert_eq!(record.locks, vec![lock.clone()]);
    assert_eq!(record.locks[0].raw, lock.raw, "full raw Info");
    assert_eq!(record.outcomes, [ArtefactOutcome::Deleted]);
    assert_eq!(record.source, ApprovalSource::ChatButton);
    assert_eq!(record.approver, None);
    assert_eq!(
        record.proposal_id.as_deref(),
        Some(proposed.proposal.proposal_id.as_str())
    );
    assert_eq!(response["records"][0]["audit_id"], record.audit_id.as_str());
    assert!(Ledger::new(setup.env.aws.dynamodb(), &setup.ledger_table)
        .is_forced(&lock.location, &lock.lock_id)
        .await
        .unwrap());
    let (_, status) = setup
        .proposals()
        .get(&proposed.proposal.proposal_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, ProposalStatus::Used);

    // The result, in the alert's thread, with the state check and the advice.
    let result = setup.result().await;
    let note = chat(&result);
    assert_eq!(note["metadata"]["threadId"], proposed.thread_id());
    assert_eq!(note["metadata"]["eventType"], "LockUnlocked");
    assert!(result
        .subject
        .as_deref()
        .unwrap()
        .starts_with("[lockreaper] Unlocked: "));
    let text = description(note);
    for needle in [
        stuck.lock_id.as_str(),
        "matches the `-md5` digest item",
        "Bucket versioning: on.",
        "Current state version: ",
        "Previous state version (rollback point): ",
    ] {
        assert!(text.contains(needle), "{needle:?} in:\n{text}");
    }
    assert!(
        note["content"]["nextSteps"]
            .to_string()
            .contains("terraform plan"),
        "{note}"
    );

    let (code, out) = tf.apply();
    assert_eq!(code, 0, "apply after the unlock:\n{out}");

    // Released (by that apply) and taken again: same path, new ID.
    let again = tf.stuck();
    assert_eq!(again.path, stuck.path);
    assert_ne!(again.lock_id, stuck.lock_id);

    let response = setup.deliver(&watch, &older.token).await;
    assert_eq!(outcomes(&response), ["lock-changed"], "{response}");
    assert_eq!(
        setup
            .table_lock(&table, "LockID", &again.path)
            .await
            .lock_id,
        again.lock_id,
        "the new lock survives approval of the old proposal"
    );
    let result = setup.result().await;
    let note = chat(&result);
    assert_eq!(note["metadata"]["threadId"], older.thread_id());
    assert!(
        description(note).contains("Lock changed since the proposal; not unlocked"),
        "{note}"
    );

    // A replay of the used token (a new SNS message) unlocks nothing.
    let response = setup.deliver(&watch, &proposed.token).await;
    assert_eq!(outcomes(&response), ["already-used"], "{response}");
    let result = setup.result().await;
    assert_eq!(chat_of_thread(&result), proposed.thread_id());
    assert!(description(chat(&result)).contains("already used"));

    // A duplicate delivery of the approving message: acknowledged, nothing done, nothing said.
    let response = setup
        .deliver_as(&watch, &first_delivery, &proposed.token)
        .await;
    assert_eq!(outcomes(&response), ["duplicate-delivery"], "{response}");
    assert!(setup.results().await.is_empty());

    assert_eq!(
        setup
            .table_lock(&table, "LockID", &again.path)
            .await
            .lock_id,
        again.lock_id
    );
    assert!(digest(&setup, &table, &stuck.path).await.is_some());

    // One JSON log line per outcome, with the reason.
    let log = watch.json_log();
    let refused: Vec<&Value> = log
        .iter()
        .filter(|l| l["event"] == "approval-result" && l["outcome"] == "lock-changed")
        .collect();
    assert_eq!(refused.len(), 1, "{}", watch.log());
    assert_eq!(
        refused[0]["reason"],
        "lock changed since the proposal; not unlocked"
    );
}

fn chat_of_thread(result: &lockreaper_testkit::notifications::Delivered) -> &str {
    chat(result)["metadata"]["threadId"].as_str().unwrap()
}

/// A lock-file-only lock in a workspace, with an approver allow-list: an approver not on it and an
/// unnamed chat button are refused; a listed approver's JSON approval releases it.
#[tokio::test(flavor = "multi_thread")]
async fn lock_file_only_in_a_workspace_with_an_allow_list() {
    let setup = Setup::new("lockfile").await;
    let bucket = setup.env.name("state");
    setup.env.create_state_bucket(&bucket).await;
    let watch = setup.watch(Some("ana@example.com,ops-bot")).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "app/terraform.tfstate",
        None,
        LockMode::LockFile,
    );
    tf.workspace("staging");
    let stuck = tf.stuck();
    let lock_key = format!("{}.tflock", stuck.state_key);
    let lock = setup.file_lock(&bucket, &lock_key).await;
    assert_eq!(lock.kind, LockKind::TerraformS3LockFile);
    let proposed = setup.propose(vec![lock.clone()]).await;

    let response = setup
        .deliver(
            &watch,
            &json!({"token": proposed.token, "approver": "mallory"}).to_string(),
        )
        .await;
    assert_eq!(outcomes(&response), ["approver-not-allowed"], "{response}");
    let response = setup.deliver(&watch, &proposed.token).await;
    assert_eq!(outcomes(&response), ["approver-not-allowed"], "{response}");
    assert!(setup.file_exists(&bucket, &lock_key).await);
    let refusals = setup.results().await;
    assert_eq!(refusals.len(), 2);
    for r in &refusals {
        assert_eq!(chat_of_thread(r), proposed.thread_id());
        assert_eq!(
            chat(r)["metadata"]["additionalContext"]["outcome"],
            "approver-not-allowed"
        );
    }

    let message = json!({
        "token": proposed.token,
        "approver": "ana@example.com",
        "reason": "CI runner 4711 was killed",
    });
    let response = setup.deliver(&watch, &message.to_string()).await;
    assert_eq!(outcomes(&response), ["unlocked"], "{response}");
    assert!(!setup.file_exists(&bucket, &lock_key).await);

    let audit = setup.audit(&stuck.path).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].approver.as_deref(), Some("ana@example.com"));
    assert_eq!(
        audit[0].reason.as_deref(),
        Some("CI runner 4711 was killed")
    );
    assert_eq!(audit[0].source, ApprovalSource::Json);
    assert_eq!(audit[0].locks[0].raw, lock.raw);

    let result = setup.result().await;
    let note = chat(&result);
    assert_eq!(note["metadata"]["threadId"], proposed.thread_id());
    let text = description(note);
    assert!(text.contains("ana@example.com"), "{text}");
    assert!(text.contains("no `-md5` digest item"), "{text}");
    assert!(
        note["content"]["nextSteps"]
            .to_string()
            .contains("(in workspace `staging`)"),
        "{note}"
    );

    let (code, out) = tf.apply();
    assert_eq!(code, 0, "apply after the unlock:\n{out}");
}

/// Terraform with both a lock table and lock files: one approval releases both artefacts (same
/// lock ID), the digest item stays, and the audit holds both.
#[tokio::test(flavor = "multi_thread")]
async fn both_stores_released_by_one_text_approval() {
    let setup = Setup::new("both").await;
    let (table, bucket) = (setup.env.name("locks"), setup.env.name("state"));
    setup.env.create_lock_table(&table, "LockID").await;
    setup.env.create_state_bucket(&bucket).await;
    let watch = setup.watch(None).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "network/terraform.tfstate",
        Some(&table),
        LockMode::Both,
    );
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "{out}");
    let stuck = tf.stuck();
    assert!(stuck.dynamodb && stuck.lockfile, "{stuck:?}");
    let digest_before = digest(&setup, &table, &stuck.path).await;
    let item = setup.table_lock(&table, "LockID", &stuck.path).await;
    let lock_key = format!("{}.tflock", stuck.state_key);
    let file = setup.file_lock(&bucket, &lock_key).await;
    assert_eq!(item.lock_id, file.lock_id);
    let proposed = setup.propose(vec![item.clone(), file.clone()]).await;

    let response = setup
        .deliver(
            &watch,
            &format!("approve {} runner lost its spot instance", proposed.token),
        )
        .await;
    assert_eq!(outcomes(&response), ["unlocked"], "{response}");
    assert!(!setup.item_exists(&table, "LockID", &stuck.path).await);
    assert!(!setup.file_exists(&bucket, &lock_key).await);
    assert_eq!(digest(&setup, &table, &stuck.path).await, digest_before);

    let audit = setup.audit(&stuck.path).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].locks, vec![item, file]);
    assert_eq!(
        audit[0].outcomes,
        [ArtefactOutcome::Deleted, ArtefactOutcome::Deleted]
    );
    assert_eq!(audit[0].source, ApprovalSource::Text);
    assert_eq!(
        audit[0].reason.as_deref(),
        Some("runner lost its spot instance")
    );

    let result = setup.result().await;
    assert_eq!(chat_of_thread(&result), proposed.thread_id());
    assert!(description(chat(&result)).contains("matches the `-md5` digest item"));

    let (code, out) = tf.apply();
    assert_eq!(code, 0, "apply after the unlock:\n{out}");
}

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

/// Gyro: forged, expired, wrong-lock, unknown, malformed and oversized approvals unlock nothing
/// (and never fail the invocation); a valid one releases exactly its lock; deny closes a proposal
/// and snooze records a snooze, neither touching the lock.
#[tokio::test(flavor = "multi_thread")]
async fn gyro_lock_and_every_bad_approval() {
    let setup = Setup::new("gyro").await;
    let table = setup.env.name("gyro");
    setup.env.create_lock_table(&table, "LockKey").await;
    put_gyro(
        &setup,
        &table,
        "default",
        "adf4feb3-3333-447e-89d9-819da078618d",
    )
    .await;
    put_gyro(
        &setup,
        &table,
        "network",
        "0f6a7d0e-1111-4e0a-8d3c-6a4f1f2b9c10",
    )
    .await;
    put_gyro(
        &setup,
        &table,
        "storage",
        "5c1e2d3f-2222-4b7a-9e8d-7f6a5b4c3d2e",
    )
    .await;
    let watch = setup.watch(None).await;
    let lock_a = setup.table_lock(&table, "LockKey", "default").await;
    let lock_b = setup.table_lock(&table, "LockKey", "network").await;
    let lock_c = setup.table_lock(&table, "LockKey", "storage").await;
    assert_eq!(lock_a.kind, LockKind::GyroDynamoDb);
    let a = setup.propose(vec![lock_a.clone()]).await;
    let b = setup.propose(vec![lock_b.clone()]).await;
    let c = setup.propose(vec![lock_c.clone()]).await;
    let later = Utc::now() + chrono::Duration::hours(1);

    // Forged: the right shape, signed with another key.
    let other_key = SigningKey::from_secret(&"k".repeat(64)).unwrap();
    let forged = ApprovalToken::issue(&other_key, a.id, LockFingerprint::of(&lock_a), later);
    // Expired: a proposal whose approval window has passed.
    let stale = setup
        .propose_until(
            vec![lock_a.clone()],
            Utc::now() - chrono::Duration::minutes(1),
        )
        .await;
    // Wrong lock: A's proposal, bound to B's lock.
    let wrong = ApprovalToken::issue(&setup.key, a.id, LockFingerprint::of(&lock_b), later);
    // Unknown: a valid signature for a proposal that was never recorded.
    let unknown = ApprovalToken::issue(&setup.key, [7u8; 12], LockFingerprint::of(&lock_a), later);
    let oversized = format!("approve {} {}", a.token, "x".repeat(5000));

    let bad: Vec<(String, &str)> = vec![
        (forged, "token-rejected"),
        (stale.token.clone(), "token-expired"),
        (wrong, "wrong-lock"),
        (unknown, "unknown-proposal"),
        ("hello".to_owned(), "token-rejected"),
        (format!("aprove {}", a.token), "bad-message"),
        (oversized, "bad-message"),
        (String::new(), "bad-message"),
        (
            json!({"token": a.token, "aprover": "x"}).to_string(),
            "bad-message",
        ),
    ];
    for (message, expected) in &bad {
        let response = setup.deliver(&watch, message).await;
        assert_eq!(outcomes(&response), [*expected], "{response}");
    }
    // Not an SNS event at all: acknowledged, not an error (an error would retry it).
    let response = watch.invoke(PACKAGE, &json!({"hello": "world"})).await;
    assert_eq!(response["records"], json!([]), "{response}");
    for (key, lock) in [
        ("default", &lock_a),
        ("network", &lock_b),
        ("storage", &lock_c),
    ] {
        assert_eq!(
            setup.table_lock(&table, "LockKey", key).await.lock_id,
            lock.lock_id,
            "nothing unlocked yet"
        );
    }
    let refusals = setup.results().await;
    assert_eq!(refusals.len(), bad.len(), "one notification per refusal");
    let expired = refusals
        .iter()
        .find(|r| chat(r)["metadata"]["additionalContext"]["outcome"] == "token-expired")
        .unwrap();
    assert_eq!(
        chat_of_thread(expired),
        stale.thread_id(),
        "an expired (authentic) token is answered in its alert's thread"
    );
    let wrong_lock = refusals
        .iter()
        .find(|r| chat(r)["metadata"]["additionalContext"]["outcome"] == "wrong-lock")
        .unwrap();
    assert_eq!(chat_of_thread(wrong_lock), a.thread_id());
    let forged = refusals
        .iter()
        .find(|r| {
            chat(r)["metadata"]["additionalContext"]["outcome"] == "token-rejected"
                && description(chat(r)).contains("bad signature")
        })
        .unwrap();
    assert!(chat(forged)["metadata"].get("threadId").is_none());
    let log = watch.json_log();
    for (_, expected) in &bad {
        assert!(
            log.iter().any(|l| l["event"] == "approval-result"
                && l["outcome"] == *expected
                && l["reason"].as_str().is_some_and(|r| !r.is_empty())),
            "a log line with the reason for {expected}:\n{}",
            watch.log()
        );
    }
    assert!(
        !watch.log().contains(&setup.secret),
        "the signing key is never logged"
    );

    // Two records in one event: each handled on its own.
    let deny = format!("deny {} that apply is mine", b.token);
    let event = sns_event(&[
        (&message_id(), "garbage words here"),
        (&message_id(), &deny),
    ]);
    let response = watch.invoke(PACKAGE, &event).await;
    assert_eq!(outcomes(&response), ["bad-message", "denied"], "{response}");
    let response = setup.deliver(&watch, &b.token).await;
    assert_eq!(outcomes(&response), ["already-denied"], "{response}");
    assert!(setup.item_exists(&table, "LockKey", "network").await);

    let snooze = json!({"action": "snooze", "token": c.token, "for": "2h", "approver": "ana"});
    let response = setup.deliver(&watch, &snooze.to_string()).await;
    assert_eq!(outcomes(&response), ["snoozed"], "{response}");
    let until = setup
        .proposals()
        .read_snooze(&lock_c.location, &lock_c.lock_id)
        .await
        .unwrap()
        .unwrap();
    let expected = Utc::now() + chrono::Duration::hours(2);
    assert!((until - expected).num_seconds().abs() < 120, "{until}");
    assert!(setup.item_exists(&table, "LockKey", "storage").await);
    // A snooze binds to that lock: another lock at the same location is not silenced.
    assert_eq!(
        setup
            .proposals()
            .read_snooze(&lock_c.location, "another-lock-id")
            .await
            .unwrap(),
        None
    );
    // A denied proposal cannot renew snoozes (issue 11 item 5).
    let snooze_denied = json!({"action": "snooze", "token": b.token, "for": "2h"});
    let response = setup.deliver(&watch, &snooze_denied.to_string()).await;
    assert_eq!(outcomes(&response), ["already-denied"], "{response}");
    assert_eq!(
        setup
            .proposals()
            .read_snooze(&lock_b.location, &lock_b.lock_id)
            .await
            .unwrap(),
        None
    );

    // The real approval.
    let response = setup.deliver(&watch, &a.token).await;
    assert_eq!(outcomes(&response), ["unlocked"], "{response}");
    assert!(!setup.item_exists(&table, "LockKey", "default").await);
    assert!(setup.item_exists(&table, "LockKey", "network").await);
    assert!(setup.item_exists(&table, "LockKey", "storage").await);
    let audit = setup.audit("default").await;
    assert_eq!(audit[0].locks[0].raw, lock_a.raw);

    let results = setup.results().await;
    let outcomes_by_thread: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            (
                chat(r)["metadata"]["threadId"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
                chat(r)["metadata"]["additionalContext"]["outcome"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    for (thread, outcome) in [
        (b.thread_id(), "denied"),
        (b.thread_id(), "already-denied"),
        (c.thread_id(), "snoozed"),
        (a.thread_id(), "unlocked"),
    ] {
        assert!(
            outcomes_by_thread.contains(&(thread.to_owned(), outcome.to_owned())),
            "{outcome} in {thread}: {outcomes_by_thread:?}"
        );
    }
    let unlocked = results
        .iter()
        .find(|r| chat(r)["metadata"]["additionalContext"]["outcome"] == "unlocked")
        .unwrap();
    assert!(
        chat(unlocked)["content"]["nextSteps"]
            .to_string()
            .contains("gyro diff"),
        "{:?}",
        unlocked.json
    );
}

/// The retry argument, exercised: a delivery that claimed the proposal and crashed is resumed by
/// Lambda's retry (same MessageId) while any other message is "already used"; and a retry of an
/// attempt that had already deleted the lock, after someone took the lock again, leaves the new
/// lock alone. A claim given back after a failure lets the next approval through.
#[tokio::test(flavor = "multi_thread")]
async fn retries_resume_and_never_unlock_twice() {
    let setup = Setup::new("retry").await;
    let table = setup.env.name("gyro");
    setup.env.create_lock_table(&table, "LockKey").await;
    put_gyro(&setup, &table, "x", "11111111-1111-4111-8111-111111111111").await;
    put_gyro(&setup, &table, "y", "22222222-2222-4222-8222-222222222222").await;
    put_gyro(&setup, &table, "z", "33333333-3333-4333-8333-333333333333").await;
    let watch = setup.watch(None).await;
    let proposals = setup.proposals();
    let now = Utc::now();

    // 1. Claimed by delivery m1, which then died (timeout, crash) before unlocking.
    let lock_x = setup.table_lock(&table, "LockKey", "x").await;
    let x = setup.propose(vec![lock_x.clone()]).await;
    let m1 = message_id();
    let claimant = |delivery| Claimant {
        approver: None,
        source: ApprovalSource::ChatButton,
        delivery,
        audit_id: None,
        lease_until: None,
    };
    assert_eq!(
        proposals
            .claim(&x.proposal.proposal_id, &claimant(&m1), now)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let response = setup.deliver(&watch, &x.token).await;
    assert_eq!(
        outcomes(&response),
        ["already-used"],
        "another message: {response}"
    );
    assert!(setup.item_exists(&table, "LockKey", "x").await);
    let response = setup.deliver_as(&watch, &m1, &x.token).await;
    assert_eq!(
        outcomes(&response),
        ["unlocked"],
        "Lambda's retry of m1: {response}"
    );
    assert!(!setup.item_exists(&table, "LockKey", "x").await);
    let response = setup.deliver_as(&watch, &m1, &x.token).await;
    assert_eq!(outcomes(&response), ["duplicate-delivery"], "{response}");

    // 2. Claimed by m2, which deleted the lock and died before recording it; meanwhile someone
    //    took a new lock at the same key. The retry must not touch it.
    let lock_y = setup.table_lock(&table, "LockKey", "y").await;
    let y = setup.propose(vec![lock_y.clone()]).await;
    let m2 = message_id();
    proposals
        .claim(&y.proposal.proposal_id, &claimant(&m2), now)
        .await
        .unwrap();
    let unlocker = Unlocker::new(
        setup.env.aws.dynamodb(),
        setup.env.aws.s3(),
        &setup.ledger_table,
    );
    let report = unlocker
        .unlock(
            UnlockRequest {
                locks: &y.proposal.locks,
                source: ApprovalSource::ChatButton,
                approver: None,
                approver_groups: Vec::new(),
                reason: None,
                proposal_id: Some(y.proposal.proposal_id.clone()),
                audit_id: "crashed-attempt".to_owned(),
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(report.result, UnlockResult::Unlocked);
    put_gyro(&setup, &table, "y", "44444444-4444-4444-8444-444444444444").await;
    let response = setup.deliver_as(&watch, &m2, &y.token).await;
    assert_eq!(outcomes(&response), ["lock-changed"], "{response}");
    assert_eq!(
        setup.table_lock(&table, "LockKey", "y").await.lock_id,
        "44444444-4444-4444-8444-444444444444",
        "the lock taken since survives the retry"
    );

    // 3. A claim given back (the unlock failed before any delete) lets the next approval in.
    let lock_z = setup.table_lock(&table, "LockKey", "z").await;
    let z = setup.propose(vec![lock_z]).await;
    let m3 = message_id();
    proposals
        .claim(&z.proposal.proposal_id, &claimant(&m3), now)
        .await
        .unwrap();
    assert!(!proposals
        .release(&z.proposal.proposal_id, "someone-else", false)
        .await
        .unwrap());
    assert!(proposals
        .release(&z.proposal.proposal_id, &m3, false)
        .await
        .unwrap());
    let response = setup.deliver(&watch, &z.token).await;
    assert_eq!(outcomes(&response), ["unlocked"], "{response}");
    assert!(!setup.item_exists(&table, "LockKey", "z").await);
    let record = proposals
        .record(&z.proposal.proposal_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, ProposalStatus::Used);
    assert_eq!(record.decided.result.as_deref(), Some("unlocked"));
    assert!(
        !proposals
            .release(
                &z.proposal.proposal_id,
                record.decided.delivery.as_deref().unwrap(),
                false
            )
            .await
            .unwrap(),
        "a finished unlock is never given back"
    );

    let results = setup.results().await;
    assert_eq!(
        results.len(),
        4,
        "already-used, unlocked, lock-changed, unlocked"
    );
}

/// A transient AWS failure before any delete (AWS unreachable for a while) fails the invocation,
/// so that Lambda retries the SNS delivery: nothing is unlocked meanwhile, and the retry (same
/// MessageId) unlocks exactly once; Terraform can then apply.
#[tokio::test(flavor = "multi_thread")]
async fn aws_unreachable_before_the_delete_fails_the_invocation_and_the_retry_unlocks_once() {
    use lockreaper_testkit::cuttable::CuttableEndpoint;
    use lockreaper_testkit::lambda::LambdaWatch;
    use lockreaper_testkit::Emulator;

    let setup = Setup::new("transient").await;
    let (table, bucket) = (setup.env.name("locks"), setup.env.name("state"));
    setup.env.create_lock_table(&table, "LockID").await;
    setup.env.create_state_bucket(&bucket).await;
    let aws = CuttableEndpoint::to(&Emulator::shared().endpoint).await;
    let mut vars = setup.function_env(None);
    vars.push(("AWS_ENDPOINT_URL".to_owned(), aws.url().to_owned()));
    let watch = LambdaWatch::start(PACKAGE, vars).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "edge/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let stuck = tf.stuck();
    let item = setup.table_lock(&table, "LockID", &stuck.path).await;
    let proposed = setup.propose(vec![item.clone()]).await;

    // The function starts (loading its signing key) while AWS is reachable.
    let response = setup.deliver(&watch, "approve not-a-token").await;
    assert_eq!(outcomes(&response), ["token-rejected"], "{response}");
    setup.results().await;

    aws.cut();
    let delivery = message_id();
    let err = watch
        .try_invoke(PACKAGE, &sns_event(&[(&delivery, &proposed.token)]))
        .await
        .unwrap_err();
    assert!(
        err.contains("transient AWS failure before any delete"),
        "{err}\n--- watch log ---\n{}",
        watch.log()
    );
    aws.restore();
    assert!(setup.item_exists(&table, "LockID", &stuck.path).await);
    assert!(setup.audit(&stuck.path).await.is_empty());

    let response = setup.deliver_as(&watch, &delivery, &proposed.token).await;
    assert_eq!(
        outcomes(&response),
        ["unlocked"],
        "Lambda's retry: {response}"
    );
    assert!(!setup.item_exists(&table, "LockID", &stuck.path).await);
    let audit = setup.audit(&stuck.path).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].locks, vec![item]);
    let response = setup.deliver_as(&watch, &delivery, &proposed.token).await;
    assert_eq!(outcomes(&response), ["duplicate-delivery"], "{response}");
    let (code, out) = tf.apply();
    assert_eq!(code, 0, "apply after the unlock:\n{out}");
}

/// Issue 11 item 1: an approval re-checks liveness. Real Terraform holds its DynamoDB lock in a
/// live apply; the unlock is proposed; then the apply writes state (the lock item itself does not
/// change, so token, fingerprint and `Info` all still match). The approval is refused, the
/// proposal withdrawn (a replay is refused too), the lock stays, and the thread says why.
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_is_refused_when_the_holder_wrote_state_after_the_proposal() {
    let setup = Setup::new("alive").await;
    let (table, bucket) = (setup.env.name("locks"), setup.env.name("state"));
    setup.env.create_lock_table(&table, "LockID").await;
    setup.env.create_state_bucket(&bucket).await;
    let watch = setup.watch(None).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "slow-rds/terraform.tfstate",
        Some(&table),
        LockMode::DynamoDb,
    );
    let live = tf.hold_live(5);
    let path = format!("{bucket}/slow-rds/terraform.tfstate");
    let item = setup.table_lock(&table, "LockID", &path).await;
    assert_eq!(item.lock_id, live.lock.lock_id);
    let proposed = setup.propose(vec![item.clone()]).await;

    // The apply goes on and persists its state after the proposal.
    let s3 = setup.env.aws.s3();
    let proposed_at = proposed.proposal.proposed_at;
    lockreaper_testkit::eventually(
        "a state write after the proposal",
        std::time::Duration::from_secs(90),
        || {
            let (s3, bucket) = (s3.clone(), bucket.clone());
            async move {
                let head = s3
                    .head_object()
                    .bucket(bucket)
                    .key("slow-rds/terraform.tfstate")
                    .send()
                    .await
                    .ok()?;
                let modified = head.last_modified?.secs();
                (modified > proposed_at.timestamp()).then_some(())
            }
        },
    )
    .await;
    // The lock item is exactly what was proposed: only liveness tells the holder is alive.
    assert_eq!(
        setup.table_lock(&table, "LockID", &path).await.raw,
        item.raw
    );

    let response = setup
        .deliver(
            &watch,
            &json!({"token": proposed.token, "approver": "ana", "reason": "looks stuck"})
                .to_string(),
        )
        .await;
    assert_eq!(outcomes(&response), ["withdrawn"], "{response}");
    assert!(
        setup.item_exists(&table, "LockID", &path).await,
        "the live lock was deleted"
    );
    let result = setup.result().await;
    let chat = chat(&result);
    assert_eq!(chat["metadata"]["threadId"], proposed.thread_id());
    let text = description(chat);
    assert!(text.contains("after the unlock was proposed at"), "{text}");
    assert!(text.contains("Nothing was deleted"), "{text}");

    let record = setup
        .proposals()
        .record(&proposed.proposal.proposal_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, ProposalStatus::Withdrawn);
    assert!(record
        .decided
        .withdrawn_reason
        .as_deref()
        .unwrap()
        .starts_with("state written at "));
    assert!(setup.audit(&path).await.is_empty(), "nothing was unlocked");

    // Pressing the button again (a new delivery) is refused the same way.
    let again = setup.deliver(&watch, &proposed.token).await;
    assert_eq!(outcomes(&again), ["withdrawn"], "{again}");
    assert!(setup.item_exists(&table, "LockID", &path).await);
    setup.results().await;
    drop(live);
}

/// Issue 11, item 8: force-unlock's role may list the state buckets (`s3:ListBucket`, checked
/// against the template by `infra/sam/test_template.py`), so a lock file that is already gone reads
/// as 404 — without it S3 answers 403 (S3 API reference, HeadObject "Permissions") — and the
/// remaining DynamoDB item of the same lock is still released. A lock file S3 refuses to show
/// (403 `AccessDenied`, e.g. a bucket policy) is "cannot tell": nothing at all is deleted, the
/// result says why, and the delivery is answered (not retried forever by Lambda); once the read
/// works again, the same approval releases both.
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_file_gone_404_still_releases_the_item_and_a_403_deletes_nothing() {
    use lockreaper_testkit::faults::{Fault, FaultProxy, Rule};
    use lockreaper_testkit::lambda::LambdaWatch;
    use lockreaper_testkit::Emulator;

    let setup = Setup::new("s3-403-404").await;
    let (table, bucket) = (setup.env.name("locks"), setup.env.name("state"));
    setup.env.create_lock_table(&table, "LockID").await;
    setup.env.create_state_bucket(&bucket).await;

    // 404: the lock file vanished (as when Terraform's own release raced the approval half-way).
    let watch = setup.watch(None).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "gone/terraform.tfstate",
        Some(&table),
        LockMode::Both,
    );
    let stuck = tf.stuck();
    let item = setup.table_lock(&table, "LockID", &stuck.path).await;
    let lock_key = format!("{}.tflock", stuck.state_key);
    let file = setup.file_lock(&bucket, &lock_key).await;
    let proposed = setup.propose(vec![item.clone(), file.clone()]).await;
    setup
        .env
        .aws
        .s3()
        .delete_object()
        .bucket(&bucket)
        .key(&lock_key)
        .send()
        .await
        .unwrap();
    let response = setup.deliver(&watch, &proposed.token).await;
    assert_eq!(outcomes(&response), ["unlocked"], "{response}");
    assert!(!setup.item_exists(&table, "LockID", &stuck.path).await);
    let audit = setup.audit(&stuck.path).await;
    assert_eq!(
        audit[0].outcomes,
        [ArtefactOutcome::Deleted, ArtefactOutcome::AlreadyGone]
    );
    setup.result().await;
    drop(watch);

    // 403: every GetObject force-unlock sends is refused, as a bucket policy would.
    let proxy = FaultProxy::start(
        &Emulator::shared().endpoint,
        8,
        vec![Rule::new("s3", "GetObject", 1.0, Fault::AccessDenied)],
    )
    .await;
    let mut vars = setup.function_env(None);
    vars.push(("AWS_ENDPOINT_URL".to_owned(), proxy.url().to_owned()));
    let denied_watch = LambdaWatch::start(PACKAGE, vars).await;
    let tf = Terraform::init(
        &setup.env,
        &bucket,
        "denied/terraform.tfstate",
        Some(&table),
        LockMode::Both,
    );
    let stuck = tf.stuck();
    let item = setup.table_lock(&table, "LockID", &stuck.path).await;
    let lock_key = format!("{}.tflock", stuck.state_key);
    let file = setup.file_lock(&bucket, &lock_key).await;
    let proposed = setup.propose(vec![item.clone(), file.clone()]).await;
    let response = setup.deliver(&denied_watch, &proposed.token).await;
    assert_eq!(outcomes(&response), ["failed"], "{response}");
    assert!(
        proxy.faulted_count("s3", "GetObject", "AccessDenied") >= 1,
        "{}",
        proxy.report()
    );
    assert!(setup.item_exists(&table, "LockID", &stuck.path).await);
    assert!(setup.file_exists(&bucket, &lock_key).await);
    let result = setup.result().await;
    assert!(
        description(chat(&result)).contains("AccessDenied"),
        "the result names the refusal: {}",
        description(chat(&result))
    );
    drop(denied_watch);

    // The read works again: the same approval (its claim was given back) releases both.
    let response = setup
        .deliver(&setup.watch(None).await, &proposed.token)
        .await;
    assert_eq!(outcomes(&response), ["unlocked"], "{response}");
    assert!(!setup.item_exists(&table, "LockID", &stuck.path).await);
    assert!(!setup.file_exists(&bucket, &lock_key).await);
}
