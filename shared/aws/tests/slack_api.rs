//! The Slack Web API client against the local stand-in of Slack's documented request/response
//! shapes (`lockreaper_testkit::slack_api`): a real alert posted with its buttons, a result threaded
//! under it, the buttons replaced by who decided what via `chat.update`, and every refusal the way
//! Slack words it.

#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use lockreaper_aws::slack::{SlackApiError, SlackWebApi};
use lockreaper_core::alert::{lock_alert, AlertContext, ApprovalOffer};
use lockreaper_core::approval::{
    ApprovalAction, ApprovalToken, LockFingerprint, SigningKey, SlackIdentity,
};
use lockreaper_core::messages::slack::{decided_line, replace_buttons, ACTIONS_BLOCK_ID};
use lockreaper_core::model::{DeletePrecondition, LockCreated, LockKind, LockLocation, LockRecord};
use lockreaper_core::policy::{AlertKind, Liveness, StaleLockPolicy};
use lockreaper_testkit::slack_api::SlackApi;
use serde_json::{json, Value};

const BOT_TOKEN: &str = "xoxb-0000000000-0000000000000-standinstandinstandin";
const CHANNEL: &str = "C0LOCKS01";

/// The reaper's real stale-lock alert, with its approval offered, as the Slack app posts it.
fn stale_alert() -> Value {
    let t0 = Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).unwrap();
    let lock = LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: LockLocation::DynamoDb {
            table: "tf-locks".to_owned(),
            key_attribute: "LockID".to_owned(),
            key: "acme-tfstate/prod/network.tfstate".to_owned(),
        },
        lock_id: "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7".to_owned(),
        who: Some("runner@ip-10-0-1-23".to_owned()),
        operation: Some("OperationTypeApply".to_owned()),
        tool_version: Some("1.10.5".to_owned()),
        created: LockCreated::Recorded(t0),
        state_path: "acme-tfstate/prod/network.tfstate".to_owned(),
        info: Some(String::new()),
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals("{}".to_owned()),
        raw: "{}".to_owned(),
    };
    let verdict = StaleLockPolicy::default().evaluate(
        &lock,
        &Liveness::default(),
        &[],
        t0 + chrono::Duration::minutes(312),
    );
    let key = SigningKey::from_secret("fixture-signing-key-0123456789abcdef-not-secret").unwrap();
    let expires_at = t0 + chrono::Duration::hours(6);
    let offer = ApprovalOffer {
        token: ApprovalToken::issue(&key, [7; 12], LockFingerprint::of(&lock), expires_at),
        approval_topic_arn: "arn:aws:sns:us-east-1:123456789012:lockreaper-ok".to_owned(),
        expires_at,
    };
    lock_alert(
        &lock,
        &verdict,
        AlertKind::New,
        Some(&offer),
        &AlertContext::new("lockreaper-prod"),
    )
    .slack
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_is_posted_threaded_and_its_buttons_replaced_by_the_result() {
    let slack = SlackApi::start(BOT_TOKEN, &[CHANNEL]).await;
    let api = SlackWebApi::new(&slack.base_url, BOT_TOKEN);
    let alert = stale_alert();

    let posted = api.post_message(CHANNEL, None, &alert).await.unwrap();
    assert_eq!(posted.channel, CHANNEL);
    let shown = slack.messages();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].ts, posted.ts);
    assert_eq!(shown[0].text.as_deref(), alert["text"].as_str());
    assert_eq!(Value::Array(shown[0].blocks.clone()), alert["blocks"]);
    assert!(shown[0]
        .blocks
        .iter()
        .any(|b| b["block_id"] == ACTIONS_BLOCK_ID));

    // A reply in the lock's thread.
    let reply = json!({"text": "Reminder", "blocks": []});
    let threaded = api
        .post_message(CHANNEL, Some(&posted.ts), &reply)
        .await
        .unwrap();
    assert_ne!(threaded.ts, posted.ts);
    assert_eq!(
        slack.messages()[1].thread_ts.as_deref(),
        Some(posted.ts.as_str())
    );

    // Ana pressed Approve; force-unlock unlocked: the buttons give way to the result.
    let ana = SlackIdentity::new("T0123ABCD", "U0456EFGH").unwrap();
    let at = Utc.with_ymd_and_hms(2025, 3, 4, 14, 2, 0).unwrap();
    let line = decided_line(ApprovalAction::Approve, &ana, at, "unlocked");
    let blocks = replace_buttons(&shown[0].blocks, &line);
    let text = alert["text"].as_str().unwrap();
    let updated = api
        .update(&posted.channel, &posted.ts, text, &blocks)
        .await
        .unwrap();
    assert_eq!(updated, posted);
    let now_shown = &slack.messages()[0];
    assert!(now_shown.blocks.iter().all(|b| b["type"] != "actions"));
    assert!(now_shown
        .blocks
        .iter()
        .any(|b| b["text"]["text"] == "Approved by <@U0456EFGH> at 14:02 UTC — unlocked"));
    assert_eq!(
        slack.calls(),
        [
            ("chat.postMessage".to_owned(), None),
            ("chat.postMessage".to_owned(), None),
            ("chat.update".to_owned(), None)
        ]
    );
}

/// The Web API error code of a refused call.
fn code<T: std::fmt::Debug>(result: Result<T, SlackApiError>) -> String {
    result.unwrap_err().code().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_come_back_as_slack_words_them() {
    let slack = SlackApi::start(BOT_TOKEN, &[CHANNEL]).await;
    let api = SlackWebApi::new(&slack.base_url, BOT_TOKEN);
    let alert = stale_alert();

    let wrong_token = SlackWebApi::new(&slack.base_url, "xoxb-someone-else");
    assert_eq!(
        code(wrong_token.post_message(CHANNEL, None, &alert).await),
        "invalid_auth"
    );
    assert_eq!(
        code(api.post_message("C0NOWHERE", None, &alert).await),
        "channel_not_found"
    );
    assert_eq!(
        code(
            api.post_message(CHANNEL, None, &json!({"text": "", "blocks": []}))
                .await
        ),
        "no_text"
    );
    let too_many: Vec<Value> = (0..51)
        .map(|n| json!({"type": "section", "text": {"type": "mrkdwn", "text": n.to_string()}}))
        .collect();
    assert_eq!(
        code(
            api.post_message(CHANNEL, None, &json!({"text": "x", "blocks": too_many}))
                .await
        ),
        "invalid_blocks"
    );
    assert_eq!(
        code(api.update(CHANNEL, "1.000000", "x", &[]).await),
        "message_not_found"
    );
    assert_eq!(
        code(api.call("chat.delete", &json!({"channel": CHANNEL})).await),
        "unknown_method"
    );
    assert_eq!(
        code(
            api.call("chat.postMessage", &json!(["not", "an", "object"]))
                .await
        ),
        "json_not_object"
    );
    assert!(slack.messages().is_empty(), "nothing was posted");

    // Nothing listening: a transport error, quickly, naming the method and never the token.
    let nowhere = SlackWebApi::new("http://127.0.0.1:9", BOT_TOKEN);
    let err = nowhere
        .post_message(CHANNEL, None, &alert)
        .await
        .unwrap_err();
    assert!(matches!(err, SlackApiError::Transport { .. }), "{err:?}");
    assert!(!err.to_string().contains(BOT_TOKEN), "{err}");
    assert!(!format!("{api:?}").contains(BOT_TOKEN));
}

/// `usergroups.users.list` as documented: form arguments only (a JSON body carries none), the
/// members as user IDs, `no_such_subteam` for an unknown or disabled group.
#[tokio::test(flavor = "multi_thread")]
async fn a_user_groups_members_are_read_with_a_form_request() {
    let slack = SlackApi::start(BOT_TOKEN, &[CHANNEL]).await;
    let api = SlackWebApi::new(&slack.base_url, BOT_TOKEN);
    slack.set_usergroup("S0OPS0001", &["U0456EFGH", "W123A4BC5"]);
    slack.set_usergroup("S0EMPTY01", &[]);

    assert_eq!(
        api.usergroup_members("S0OPS0001").await.unwrap(),
        ["U0456EFGH", "W123A4BC5"]
    );
    assert!(api.usergroup_members("S0EMPTY01").await.unwrap().is_empty());
    assert_eq!(
        code(api.usergroup_members("S0NOWHERE").await),
        "no_such_subteam"
    );
    slack.disable_usergroup("S0OPS0001");
    assert_eq!(
        code(api.usergroup_members("S0OPS0001").await),
        "no_such_subteam"
    );
    // The same arguments as JSON are not arguments to this method.
    assert_eq!(
        code(
            api.call("usergroups.users.list", &json!({"usergroup": "S0EMPTY01"}))
                .await
        ),
        "invalid_arguments"
    );
    let wrong_token = SlackWebApi::new(&slack.base_url, "xoxb-someone-else");
    assert_eq!(
        code(wrong_token.usergroup_members("S0EMPTY01").await),
        "invalid_auth"
    );
    slack.fail_method("usergroups.users.list", "plan_upgrade_required");
    assert_eq!(
        code(api.usergroup_members("S0EMPTY01").await),
        "plan_upgrade_required"
    );
    assert_eq!(slack.calls().len(), 7);
}
