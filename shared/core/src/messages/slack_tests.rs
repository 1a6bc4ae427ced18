//! The Block Kit rendering of real alerts and results, against Block Kit's documented limits.

use super::*;
use crate::alert::{lock_alert, AlertContext, ApprovalOffer};
use crate::approval::{ApprovalToken, LockFingerprint, SigningKey};
use crate::messages::{Approval, Fact, Section, Style};
use crate::model::{DeletePrecondition, LockCreated, LockKind, LockLocation, LockRecord};
use crate::policy::{AlertKind, Level, Liveness, StaleLockPolicy};
use chrono::TimeZone;

const PATH: &str = "acme-tfstate/env:/prod/network.tfstate";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).unwrap()
}

fn lock(who: &str) -> LockRecord {
    LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: LockLocation::DynamoDb {
            table: "tf-locks".to_owned(),
            key_attribute: "LockID".to_owned(),
            key: PATH.to_owned(),
        },
        lock_id: "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7".to_owned(),
        who: Some(who.to_owned()),
        operation: Some("OperationTypeApply".to_owned()),
        tool_version: Some("1.10.5".to_owned()),
        created: LockCreated::Recorded(t0()),
        state_path: PATH.to_owned(),
        info: Some(String::new()),
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals("{}".to_owned()),
        raw: "{}".to_owned(),
    }
}

fn token(lock: &LockRecord) -> String {
    let key = SigningKey::from_secret("fixture-signing-key-0123456789abcdef-not-secret").unwrap();
    ApprovalToken::issue(
        &key,
        [7; 12],
        LockFingerprint::of(lock),
        t0() + chrono::Duration::hours(6),
    )
}

/// The reaper's real stale-lock alert, offering an approval, as the Slack app would post it.
fn stale_alert(who: &str) -> (Value, String) {
    let lock = lock(who);
    let verdict = StaleLockPolicy::default().evaluate(
        &lock,
        &Liveness::default(),
        &[],
        t0() + chrono::Duration::minutes(312),
    );
    assert_eq!(verdict.level, Level::ProposeUnlock);
    let token = token(&lock);
    let offer = ApprovalOffer {
        token: token.clone(),
        approval_topic_arn: "arn:aws:sns:us-east-1:123456789012:lockreaper-ok".to_owned(),
        expires_at: t0() + chrono::Duration::hours(6),
    };
    let rendered = lock_alert(
        &lock,
        &verdict,
        AlertKind::New,
        Some(&offer),
        &AlertContext::new("lockreaper-prod us-east-1"),
    );
    (rendered.slack, token)
}

/// A message with an approval and actions enabled, to stretch past the limits.
fn message_with_approval() -> Message {
    Message {
        subject: "[dev] Stale lock: a/b".to_owned(),
        emoji: ":lock:",
        title: "Stale lock `a/b`".to_owned(),
        plain_title: None,
        status: "Held for 5h.".to_owned(),
        facts: vec![Fact::new("State", "a/b", Style::Code)],
        fact_column: None,
        sections: Vec::new(),
        steps: vec![Step::Approve],
        steps_numbered: false,
        sender: "lockreaper (dev)".to_owned(),
        version: crate::messages::VERSION,
        id: "id-1".to_owned(),
        thread: None,
        summary: "Stale lock on a/b".to_owned(),
        event_type: "LockStale",
        keywords: Vec::new(),
        related: Vec::new(),
        context: serde_json::Map::new(),
        approval: Some(Approval {
            token: "lr1.token".to_owned(),
            topic_arn: "arn:aws:sns:us-east-1:1:t".to_owned(),
            expires_at: t0(),
            command: "aws sns publish --message lr1.token".to_owned(),
        }),
        actions_enabled: true,
        closes: None,
    }
}

fn texts(blocks: &[Value]) -> Vec<String> {
    blocks
        .iter()
        .filter_map(|b| b["text"]["text"].as_str().map(str::to_owned))
        .collect()
}

/// Every documented Block Kit limit this renderer relies on.
fn assert_within_limits(blocks: &[Value]) {
    assert!(blocks.len() <= MAX_BLOCKS, "{} blocks", blocks.len());
    for block in blocks {
        if let Some(text) = block["text"]["text"].as_str() {
            assert!(text.chars().count() <= SECTION_TEXT_MAX, "{block}");
        }
        if block["type"] == "actions" {
            let elements = block["elements"].as_array().unwrap();
            assert!(elements.len() <= ACTIONS_MAX);
            for button in elements {
                let text = button["text"]["text"].as_str().unwrap();
                assert!(!text.is_empty() && text.chars().count() <= BUTTON_TEXT_MAX);
                assert_eq!(button["text"]["type"], "plain_text");
                let value = button["value"].as_str().unwrap();
                assert!(value.chars().count() <= BUTTON_VALUE_MAX);
            }
        }
    }
}

#[test]
fn a_stale_alert_says_what_who_how_old_and_offers_three_buttons() {
    let (slack, token) = stale_alert("runner@ip-10-0-1-23");
    let blocks = slack["blocks"].as_array().unwrap();
    assert_within_limits(blocks);
    assert!(slack["text"].as_str().unwrap().contains(PATH), "{slack}");
    let all = texts(blocks).join("\n");
    for needle in [
        ":lock: *Stale lock acme-tfstate/env:/prod/network.tfstate held 5h12m*",
        "runner@ip-10-0-1-23",
        "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7",
        "5h12m",
        "*What to do*",
        "press *Approve unlock* below",
        "aws sns publish",
    ] {
        assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
    }

    let actions: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "actions").collect();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["block_id"], ACTIONS_BLOCK_ID);
    let buttons = actions[0]["elements"].as_array().unwrap();
    let labels: Vec<&str> = buttons
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Approve unlock", "Deny", "Snooze 2h"]);
    for button in buttons {
        assert_eq!(button["value"], token.as_str());
        let (action, duration) = button_action(button["action_id"].as_str().unwrap()).unwrap();
        match action {
            ApprovalAction::Snooze => assert_eq!(duration, Some("2h")),
            _ => assert_eq!(duration, None),
        }
    }
    assert_eq!(buttons[0]["style"], "primary");
    assert_eq!(buttons[1]["style"], "danger");
    assert!(button_action("someone-elses-button").is_none());
    // The footer names the sender.
    assert_eq!(blocks.last().unwrap()["type"], "context");
}

/// Lock fields are escaped: a holder named like a mention, a channel ping or a link stays text.
#[test]
fn outside_text_cannot_mention_ping_or_link() {
    let (slack, _) = stale_alert("<!channel> <@U0EVE0000> <https://evil.example|x> & co");
    let all = texts(slack["blocks"].as_array().unwrap()).join("\n");
    for forbidden in ["<!channel>", "<@U0EVE0000>", "<https://"] {
        assert!(!all.contains(forbidden), "{forbidden} in:\n{all}");
    }
    assert!(!all.contains("& co"), "an unescaped & in:\n{all}");
}

#[test]
fn no_buttons_without_an_approval_or_with_actions_disabled() {
    let lock = lock("runner");
    let verdict = StaleLockPolicy::default().evaluate(
        &lock,
        &Liveness::default(),
        &[],
        t0() + chrono::Duration::minutes(65),
    );
    let warn = lock_alert(
        &lock,
        &verdict,
        AlertKind::New,
        None,
        &AlertContext::new("dev"),
    );
    let blocks = warn.slack["blocks"].as_array().unwrap();
    assert!(blocks.iter().all(|b| b["type"] != "actions"));
    assert_within_limits(blocks);
}

#[test]
fn oversized_messages_stay_within_block_kit_limits() {
    let (slack, _) = stale_alert(&"w".repeat(10_000));
    assert_within_limits(slack["blocks"].as_array().unwrap());

    // Far more sections than a message may have blocks: the buttons and footer survive.
    let mut message = message_with_approval();
    message.sections = (0..80)
        .map(|n| Section {
            title: "Why",
            style: Style::Verbatim,
            items: vec![format!("reason {n}"), "x".repeat(5000)],
        })
        .collect();
    let rendered = render(&message);
    let blocks = rendered["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), MAX_BLOCKS);
    assert_within_limits(blocks);
    assert_eq!(blocks[MAX_BLOCKS - 2]["block_id"], ACTIONS_BLOCK_ID);
}

#[test]
fn the_result_replaces_the_buttons() {
    let (slack, _) = stale_alert("runner");
    let blocks = slack["blocks"].as_array().unwrap();
    let ana = SlackIdentity::new("T0123ABCD", "U0456EFGH").unwrap();
    let at = Utc.with_ymd_and_hms(2025, 3, 4, 14, 2, 9).unwrap();
    let line = decided_line(ApprovalAction::Approve, &ana, at, "unlocked");
    assert_eq!(line, "Approved by <@U0456EFGH> at 14:02 UTC — unlocked");

    let decided = replace_buttons(blocks, &line);
    assert_eq!(decided.len(), blocks.len());
    assert!(decided.iter().all(|b| b["type"] != "actions"));
    let position = blocks
        .iter()
        .position(|b| b["block_id"] == ACTIONS_BLOCK_ID)
        .unwrap();
    assert_eq!(decided[position]["text"]["text"], line.as_str());
    for (i, (before, after)) in blocks.iter().zip(&decided).enumerate() {
        if i != position {
            assert_eq!(before, after);
        }
    }
    assert_within_limits(&decided);

    // A second result (the buttons already gone) is added before the footer.
    let again = replace_buttons(
        &decided,
        &decided_line(ApprovalAction::Deny, &ana, at, "proposal already used <x>"),
    );
    assert_eq!(again.len(), decided.len() + 1);
    let second = again[again.len() - 2]["text"]["text"].as_str().unwrap();
    assert_eq!(
        second,
        "Denied by <@U0456EFGH> at 14:02 UTC — proposal already used &lt;x&gt;"
    );
    assert_eq!(again.last().unwrap()["type"], "context");

    let snoozed = decided_line(ApprovalAction::Snooze, &ana, at, "snoozed");
    assert!(snoozed.starts_with("Snoozed for two hours by <@U0456EFGH>"));
}

#[test]
fn the_pressed_line_says_who_pressed_what_and_that_the_result_is_pending() {
    let ana = SlackIdentity::new("T0123ABCD", "U0456EFGH").unwrap();
    let at = Utc.with_ymd_and_hms(2025, 3, 4, 14, 2, 9).unwrap();
    assert_eq!(
        pressed_line(ApprovalAction::Approve, &ana, at),
        "*Approve unlock* pressed by <@U0456EFGH> at 14:02 UTC — lockreaper is checking it; the result follows in this thread"
    );
    assert!(pressed_line(ApprovalAction::Snooze, &ana, at).starts_with("*Snooze 2h* pressed"));
    assert!(pressed_line(ApprovalAction::Deny, &ana, at).starts_with("*Deny* pressed"));
}

#[test]
fn an_offer_is_keyed_by_a_digest_of_its_token_never_the_token() {
    let (_, token) = stale_alert("runner");
    let key = offer_key(&token);
    assert_eq!(key.len(), 32);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!token.contains(&key) && !key.contains(&token));
    assert_eq!(key, offer_key(&token));
    assert_ne!(key, offer_key(&format!("{token}x")));
    // sha256("abc") = ba7816bf8f01cfea414140de5dae2223…
    assert_eq!(offer_key("abc"), "ba7816bf8f01cfea414140de5dae2223");
}

#[test]
fn the_kept_blocks_withhold_the_token_and_still_lose_their_buttons() {
    let (slack, token) = stale_alert("runner");
    let blocks = slack["blocks"].as_array().unwrap();
    assert!(slack.to_string().contains(&token));
    let kept = withhold_token(blocks, &token);
    let text = Value::Array(kept.clone()).to_string();
    assert!(!text.contains(&token), "{text}");
    assert!(
        text.contains(&format!("--message {TOKEN_WITHHELD}")),
        "{text}"
    );
    assert_eq!(kept.len(), blocks.len());
    // The result still replaces the buttons where they were.
    let line = "Denied via a chat button at 14:02 UTC — the unlock will not be offered again";
    let closed = replace_buttons(&kept, line);
    assert_eq!(closed.len(), blocks.len());
    assert!(closed.iter().all(|b| b["type"] != "actions"));
    assert_eq!(withhold_token(blocks, ""), blocks.to_vec());
}
