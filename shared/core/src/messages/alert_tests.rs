//! Alert cases: threading, SNS limits, the envelope, the approval offer, and what each tool's
//! users are told to run.

use super::*;
use crate::messages::text::wrap;
use crate::model::DeletePrecondition;
use crate::model::LockKind;
use crate::parse::ParseFailure;
use crate::policy::{Liveness, StaleLockPolicy};
use chrono::TimeZone;
use serde_json::Value;

const TF_PATH: &str = "acme-tfstate/env:/prod/network.tfstate";
const LOCK_ID: &str = "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7";
const TOKEN: &str = "v1.abcDEF123_-xyz";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:tflk-ok";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).unwrap()
}

fn mins(m: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(m)
}

fn ddb(table: &str, key: &str) -> LockLocation {
    LockLocation::DynamoDb {
        table: table.to_owned(),
        key_attribute: "LockID".to_owned(),
        key: key.to_owned(),
    }
}

fn tf_lock() -> LockRecord {
    LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: ddb("tf-locks", TF_PATH),
        lock_id: LOCK_ID.to_owned(),
        who: Some("runner@ip-10-0-1-23".to_owned()),
        operation: Some("OperationTypeApply".to_owned()),
        tool_version: Some("1.10.5".to_owned()),
        created: LockCreated::Recorded(t0()),
        state_path: TF_PATH.to_owned(),
        info: Some(String::new()),
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals("{}".to_owned()),
        raw: "{}".to_owned(),
    }
}

fn lock_file() -> LockRecord {
    LockRecord {
        kind: LockKind::TerraformS3LockFile,
        location: LockLocation::S3 {
            bucket: "acme-tfstate".to_owned(),
            key: "env:/prod/network.tfstate.tflock".to_owned(),
        },
        precondition: DeletePrecondition::ETagMatches("\"abc\"".to_owned()),
        ..tf_lock()
    }
}

fn gyro_lock() -> LockRecord {
    LockRecord {
        kind: LockKind::GyroDynamoDb,
        location: LockLocation::DynamoDb {
            table: "gyro-locks".to_owned(),
            key_attribute: "LockKey".to_owned(),
            key: "app/prod".to_owned(),
        },
        lock_id: "9b2e0c1a".to_owned(),
        who: Some("alice".to_owned()),
        operation: Some("gyro up".to_owned()),
        tool_version: None,
        created: LockCreated::FirstSeen(t0()),
        state_path: "app/prod".to_owned(),
        info: Some("Locked by 'alice' running 'gyro up'".to_owned()),
        last_modified: None,
        precondition: DeletePrecondition::GyroIdEquals("9b2e0c1a".to_owned()),
        raw: "{}".to_owned(),
    }
}

fn offer() -> ApprovalOffer {
    ApprovalOffer {
        token: TOKEN.to_owned(),
        approval_topic_arn: TOPIC.to_owned(),
        expires_at: mins(6 * 60),
    }
}

fn ctx() -> AlertContext {
    AlertContext::new("lockreaper-prod us-east-1")
}

fn verdict(lock: &LockRecord, liveness: &Liveness, age_minutes: i64) -> Verdict {
    StaleLockPolicy::default().evaluate(lock, liveness, &[], mins(age_minutes))
}

fn auto_verdict(lock: &LockRecord, age_minutes: i64) -> Verdict {
    StaleLockPolicy {
        auto_expire: true,
        ..StaleLockPolicy::default()
    }
    .evaluate(lock, &Liveness::default(), &[], mins(age_minutes))
}

fn stale(lock: &LockRecord, approval: Option<&ApprovalOffer>) -> AlertMessage {
    let v = verdict(lock, &Liveness::default(), 312);
    assert_eq!(v.level, Level::ProposeUnlock);
    lock_alert(lock, &v, AlertKind::New, approval, &ctx())
}

fn warn(lock: &LockRecord) -> AlertMessage {
    let v = verdict(lock, &Liveness::default(), 65);
    assert_eq!(v.level, Level::Warn);
    lock_alert(lock, &v, AlertKind::New, None, &ctx())
}

fn resolved(lock: &LockRecord) -> AlertMessage {
    let state = AlertState::after_send(None, &lock.lock_id, Level::ProposeUnlock, mins(312));
    resolved_alert(&state, &lock.location, &lock.state_path, &ctx())
}

fn unparseable(location: &LockLocation) -> AlertMessage {
    let error = LockParseError {
        location: location.to_string(),
        failure: ParseFailure::MissingGyroId,
    };
    unparseable_alert(&error, &ctx())
}

fn thread(m: &AlertMessage) -> &str {
    m.chat["metadata"]["threadId"].as_str().unwrap()
}

fn event(m: &AlertMessage) -> &str {
    m.chat["metadata"]["eventType"].as_str().unwrap()
}

fn title(m: &AlertMessage) -> &str {
    m.chat["content"]["title"].as_str().unwrap()
}

fn chat_text(m: &AlertMessage) -> String {
    let c = &m.chat["content"];
    let mut text = c["description"].as_str().unwrap().to_owned();
    for step in c["nextSteps"].as_array().unwrap() {
        text.push('\n');
        text.push_str(step.as_str().unwrap());
    }
    text
}

fn token(m: &AlertMessage) -> Option<&str> {
    m.chat["metadata"]["additionalContext"]
        .get(APPROVAL_TOKEN_KEY)
        .and_then(Value::as_str)
}

/// Every message this module can produce, for the properties that hold for all of them.
fn every_message() -> Vec<AlertMessage> {
    let mut all = Vec::new();
    for lock in [tf_lock(), lock_file(), gyro_lock()] {
        for kind in [AlertKind::New, AlertKind::Escalated, AlertKind::Reminder] {
            for (v, approval) in [
                (verdict(&lock, &Liveness::default(), 5), None),
                (verdict(&lock, &Liveness::default(), 65), None),
                (verdict(&lock, &Liveness::default(), 312), Some(offer())),
                (verdict(&lock, &Liveness::default(), 312), None),
                (auto_verdict(&lock, 312), None),
            ] {
                all.push(lock_alert(&lock, &v, kind, approval.as_ref(), &ctx()));
            }
        }
        all.push(resolved(&lock));
        all.push(unparseable(&lock.location));
    }
    all
}

// ---------------------------------------------------------------- threading

#[test]
fn thread_id_is_stable_per_location() {
    let lock = tf_lock();
    let new = stale(&lock, Some(&offer()));
    let v = auto_verdict(&lock, 400);
    let escalated = lock_alert(&lock, &v, AlertKind::Escalated, None, &ctx());
    let reminder = lock_alert(
        &lock,
        &verdict(&lock, &Liveness::default(), 312),
        AlertKind::Reminder,
        None,
        &ctx(),
    );
    let done = resolved(&lock);
    let bad = unparseable(&lock.location);
    let id = thread(&new);
    assert_eq!(id, thread_id(&lock.location));
    assert_eq!(id.len(), 32);
    assert!(id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    for m in [&escalated, &reminder, &done, &bad, &warn(&lock)] {
        assert_eq!(thread(m), id, "{}", title(m));
    }
    // A new lock ID at the same location stays in the thread; other deployments too.
    let retaken = LockRecord {
        lock_id: "other".to_owned(),
        ..lock.clone()
    };
    assert_eq!(thread(&stale(&retaken, None)), id);
    let elsewhere = lock_alert(
        &lock,
        &verdict(&lock, &Liveness::default(), 312),
        AlertKind::New,
        None,
        &AlertContext::new("other-stack"),
    );
    assert_eq!(thread(&elsewhere), id);
}

#[test]
fn thread_id_differs_across_locations() {
    let ids = [
        thread_id(&ddb("tf-locks", TF_PATH)),
        thread_id(&ddb("tf-locks", "acme-tfstate/env:/prod/app.tfstate")),
        thread_id(&ddb("other-locks", TF_PATH)),
        thread_id(&lock_file().location),
        thread_id(&gyro_lock().location),
    ];
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // The documented derivation: sha256 of the display string, first 32 hex digits.
    let loc = ddb("tf-locks", TF_PATH);
    let full = hex::encode(Sha256::digest(loc.to_string().as_bytes()));
    assert_eq!(thread_id(&loc), full[..32]);
}

// ---------------------------------------------------------------- SNS limits and envelope

fn assert_subject_ok(subject: &str) {
    assert!(
        subject.len() <= SUBJECT_MAX,
        "{} chars: {subject}",
        subject.len()
    );
    assert!(subject.len() < 100);
    assert!(!subject.is_empty());
    assert!(
        subject.chars().all(|c| (' '..='~').contains(&c)),
        "{subject:?}"
    );
    assert!(
        !subject.starts_with(' ') && !subject.ends_with(' '),
        "{subject:?}"
    );
}

#[test]
fn subjects_fit_sns() {
    for m in every_message() {
        assert_subject_ok(&m.subject);
    }
    let s = stale(&tf_lock(), None);
    assert_eq!(
        s.subject,
        "[lockreaper-prod us-east-1] Stale lock held 5h12m: acme-tfstate/env:/prod/network.tfstate"
    );
    assert_eq!(
        warn(&tf_lock()).subject,
        "[lockreaper-prod us-east-1] Lock held 1h5m: acme-tfstate/env:/prod/network.tfstate"
    );
}

#[test]
fn long_and_unicode_subjects_are_cut_and_cleaned() {
    let mut lock = tf_lock();
    lock.state_path = format!("équipe-tfstate/{}/état final.tfstate", "deep/".repeat(60));
    let m = lock_alert(
        &lock,
        &verdict(&lock, &Liveness::default(), 312),
        AlertKind::Reminder,
        Some(&offer()),
        &AlertContext::new(format!("déploiement\n{}", "x".repeat(200))),
    );
    assert_subject_ok(&m.subject);
    // The end of the path (the state's name) survives; the start is elided.
    assert!(
        m.subject.ends_with("deep//?tat final.tfstate"),
        "{}",
        m.subject
    );
    assert!(m.subject.contains("..."), "{}", m.subject);
    assert!(m.subject.starts_with("[d?ploiement xxx"), "{}", m.subject);
    assert!(m.subject.contains("Reminder: Stale lock held 5h12m: "));
    // Chat and email keep the real characters.
    assert!(title(&m).contains("équipe-tfstate"));
    assert!(m.email.contains("état final.tfstate"));

    let no_deployment = AlertContext::new("");
    let short = lock_alert(
        &tf_lock(),
        &verdict(&tf_lock(), &Liveness::default(), 312),
        AlertKind::New,
        None,
        &no_deployment,
    );
    assert_eq!(
        short.subject,
        "Stale lock held 5h12m: acme-tfstate/env:/prod/network.tfstate"
    );
}

#[test]
fn envelope_is_sns_message_structure_json() {
    for m in every_message() {
        let envelope: Value = serde_json::from_str(&m.sns_message()).unwrap();
        let obj = envelope.as_object().unwrap();
        // Every value is a plain string, as SNS requires.
        assert!(obj.values().all(Value::is_string), "{envelope}");
        assert_eq!(obj["default"], m.email.as_str());
        assert_eq!(obj["email"], m.email.as_str());
        assert_eq!(obj["sms"], m.subject.as_str());
        for key in ["https", "http", "email-json", "firehose"] {
            let chat: Value = serde_json::from_str(obj[key].as_str().unwrap()).unwrap();
            assert_eq!(chat, m.chat, "{key}");
        }
        // `lambda` and `sqs`: the chat notification with the Slack app mode's member added.
        for key in ["sqs", "lambda"] {
            let mut program: Value = serde_json::from_str(obj[key].as_str().unwrap()).unwrap();
            let slack = program.as_object_mut().unwrap().remove("slack").unwrap();
            assert_eq!(program, m.chat, "{key}");
            assert_eq!(slack, m.slack, "{key}");
            assert_eq!(slack["thread"], m.chat["metadata"]["threadId"], "{key}");
        }
        assert!(m.sns_message().len() < 256 * 1024);
        assert_chatbot_notification(&m.chat);
    }
}

/// The custom notification schema: required fields, and the types of the optional ones we send.
fn assert_chatbot_notification(chat: &Value) {
    assert_eq!(chat["version"], "1.0");
    assert_eq!(chat["source"], "custom");
    assert!(chat["id"].as_str().is_some_and(|s| !s.is_empty()));
    let content = &chat["content"];
    assert_eq!(content["textType"], "client-markdown");
    assert!(content["description"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert!(content["title"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(content["nextSteps"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
    assert!(content["keywords"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
    let meta = &chat["metadata"];
    assert!(meta["threadId"].as_str().is_some_and(|s| s.len() == 32));
    assert!(meta["summary"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(meta["eventType"].as_str().unwrap().starts_with("Lock"));
    assert!(meta["relatedResources"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
    assert!(meta["additionalContext"].is_object());
    assert!(meta["enableCustomActions"].is_boolean());
    // Chat variables must match [\x21-\x7F]+: the token has no spaces.
    if let Some(t) = meta["additionalContext"].get(APPROVAL_TOKEN_KEY) {
        assert!(t
            .as_str()
            .unwrap()
            .chars()
            .all(|c| ('!'..='\x7f').contains(&c)));
    }
}

// ---------------------------------------------------------------- approval

#[test]
fn approval_token_only_with_an_offer() {
    let with = stale(&tf_lock(), Some(&offer()));
    let without = stale(&tf_lock(), None);
    assert_eq!(token(&with), Some(TOKEN));
    assert_eq!(token(&without), None);
    for m in every_message() {
        let has_offer_text = m.email.contains("aws sns publish");
        assert_eq!(token(&m).is_some(), has_offer_text, "{}", m.subject);
    }
    for m in [&with, &without] {
        let ctx = &m.chat["metadata"]["additionalContext"];
        assert_eq!(ctx["lockId"], LOCK_ID);
        assert_eq!(ctx["statePath"], TF_PATH);
        assert_eq!(m.chat["metadata"]["enableCustomActions"], true);
    }
    // The approval action, in chat and email.
    let command = format!("aws sns publish --topic-arn {TOPIC} --message {TOKEN}");
    assert!(chat_text(&with).contains(&format!("`{command}`")));
    assert!(chat_text(&with).contains(APPROVE_BUTTON));
    assert!(with.email.contains(&format!("\n       {command}\n")));
    assert!(
        with.email
            .contains("The approval expires at 2025-03-04\n     15:15:27 UTC")
            || with.email.contains("expires at 2025-03-04 15:15:27 UTC")
    );
    assert!(!without.email.contains("Approve unlock"));
    assert!(without.email.contains("No approval is attached"));
}

#[test]
fn odd_tokens_are_shell_quoted() {
    let mut o = offer();
    o.token = "a'b$c".to_owned();
    let m = stale(&tf_lock(), Some(&o));
    assert!(m.email.contains(r"--message 'a'\''b$c'"), "{}", m.email);
    assert_eq!(shell_word("plain-token_1.x"), "plain-token_1.x");
    assert_eq!(shell_word(""), "''");
}

// ---------------------------------------------------------------- content

#[test]
fn stale_terraform_alert_says_everything() {
    let m = stale(&tf_lock(), Some(&offer()));
    assert_eq!(
        title(&m),
        ":lock: Stale lock acme-tfstate/env:/prod/network.tfstate held 5h12m"
    );
    assert_eq!(event(&m), EVENT_LOCK_STALE);
    for text in [m.email.clone(), chat_text(&m)] {
        for needle in [
            TF_PATH,
            "Workspace",
            "prod",
            "dynamodb://tf-locks (LockID = \"acme-tfstate/env:/prod/network.tfstate\")",
            LOCK_ID,
            "runner@ip-10-0-1-23",
            "OperationTypeApply",
            "Terraform/OpenTofu 1.10.5",
            "5h12m",
            "2025-03-04 09:15:27 UTC",
            "lockreaper-prod us-east-1",
            "past the 4h expiry threshold",
            "AUTO_EXPIRE=false",
            &format!("terraform force-unlock {LOCK_ID}"),
            "terraform plan",
            "No state write seen since the lock was taken",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(!text.contains("gyro"));
    }
    assert_eq!(
        m.chat["metadata"]["relatedResources"],
        json!(["arn:aws:s3:::acme-tfstate/env:/prod/network.tfstate"])
    );
}

#[test]
fn email_is_plain_and_narrow() {
    for m in every_message() {
        for noise in ["•", ":lock:", ":warning:", "*", "`", "client-markdown"] {
            assert!(!m.email.contains(noise), "{noise:?} in:\n{}", m.email);
        }
        for line in m.email.lines() {
            let is_command = line.starts_with("       ");
            let is_fact = line
                .split_once(": ")
                .is_some_and(|(label, _)| label.len() < 14 && !label.starts_with(' '));
            let is_heading = line.chars().all(|c| c == '=');
            assert!(
                line.chars().count() <= 72 || is_command || is_fact || is_heading,
                "{} chars: {line:?}",
                line.chars().count()
            );
        }
    }
}

#[test]
fn warn_alert() {
    let m = warn(&tf_lock());
    assert_eq!(
        title(&m),
        ":warning: Lock held 1h5m: acme-tfstate/env:/prod/network.tfstate"
    );
    assert_eq!(event(&m), EVENT_LOCK_WARNING);
    assert!(m.email.contains("proposes an unlock once it is held 4h"));
    assert!(m.email.contains("terraform force-unlock"));
    assert_eq!(token(&m), None);
}

#[test]
fn reminder_and_auto_expire_titles() {
    let lock = tf_lock();
    let r = lock_alert(
        &lock,
        &verdict(&lock, &Liveness::default(), 312),
        AlertKind::Reminder,
        None,
        &ctx(),
    );
    assert!(
        title(&r).ends_with("held 5h12m (reminder)"),
        "{}",
        title(&r)
    );
    assert!(
        r.subject.contains("] Reminder: Stale lock"),
        "{}",
        r.subject
    );
    let a = lock_alert(
        &lock,
        &auto_verdict(&lock, 312),
        AlertKind::Escalated,
        None,
        &ctx(),
    );
    assert_eq!(event(&a), EVENT_LOCK_AUTO_EXPIRE);
    assert!(title(&a).starts_with(":unlock: Expiring stale lock"));
    assert!(a
        .email
        .contains("If the automatic release fails, release it by hand"));
}

/// A lock file's state write comes from the state bucket's S3 events (issue 15), and the alert
/// says so; the verdict weighs it exactly as a stream-recorded write.
#[test]
fn a_lock_files_state_write_is_named_by_where_it_was_seen() {
    let lock = lock_file();
    let alive = Liveness {
        state_last_modified: None,
        last_state_write: Some(mins(190)),
        digest_matches_state: None,
    };
    let v = verdict(&lock, &alive, 312);
    assert_eq!(v.level, Level::Warn);
    let text = chat_text(&lock_alert(&lock, &v, AlertKind::New, None, &ctx()));
    assert!(
        text.contains("Last state write seen on the state bucket's S3 events: 2025-03-04 12:25:27 UTC (after the lock was taken)"),
        "{text}"
    );
    assert!(text.contains("holder probably alive"), "{text}");
    assert!(!text.contains("lock table stream"), "{text}");
}

#[test]
fn liveness_is_described_in_words() {
    let lock = tf_lock();
    let alive = Liveness {
        state_last_modified: Some(mins(200)),
        last_state_write: Some(mins(190)),
        digest_matches_state: Some(true),
    };
    let v = verdict(&lock, &alive, 312);
    assert_eq!(v.level, Level::Warn);
    let m = lock_alert(&lock, &v, AlertKind::New, None, &ctx());
    let text = chat_text(&m);
    assert!(
        text.contains(
            "State object last written 2025-03-04 12:35:27 UTC (after the lock was taken)"
        ),
        "{text}"
    );
    assert!(text.contains("Last state write seen on the lock table stream: 2025-03-04 12:25:27 UTC (after the lock was taken)"));
    assert!(text.contains("State digest matches the state object"));
    assert!(text.contains("probably still running"));
    assert!(text.contains("holder probably alive"));

    let mismatch = Liveness {
        state_last_modified: Some(mins(-10)),
        last_state_write: None,
        digest_matches_state: Some(false),
    };
    let m = lock_alert(
        &lock,
        &verdict(&lock, &mismatch, 312),
        AlertKind::New,
        None,
        &ctx(),
    );
    assert!(
        m.email.contains("(before the lock\n    was taken)")
            || m.email.contains("(before the lock was taken)")
    );
    assert!(chat_text(&m).contains("State digest does NOT match the state object"));
    assert!(chat_text(&m).contains("never expired automatically"));
}

#[test]
fn gyro_alert_names_gyro_commands() {
    let lock = gyro_lock();
    let m = stale(&lock, Some(&offer()));
    for text in [m.email.clone(), chat_text(&m)] {
        assert!(
            text.contains("gyro state force-unlock --lock-id 9b2e0c1a"),
            "{text}"
        );
        assert!(!text.contains("terraform force-unlock"), "{text}");
        assert!(text.contains("at least 5h12m"), "{text}");
        assert!(text.contains("first seen by lockreaper"), "{text}");
        assert!(text.contains("gyro up"), "{text}");
        assert!(text.contains("Gyro"), "{text}");
    }
    assert!(title(&m).contains("held at least 5h12m"));
    assert_eq!(m.chat["metadata"]["relatedResources"], json!([]));
}

#[test]
fn lock_file_related_resources() {
    let m = stale(&lock_file(), None);
    assert_eq!(
        m.chat["metadata"]["relatedResources"],
        json!([
            "arn:aws:s3:::acme-tfstate/env:/prod/network.tfstate.tflock",
            "arn:aws:s3:::acme-tfstate/env:/prod/network.tfstate"
        ])
    );
    assert!(m
        .email
        .contains("s3://acme-tfstate/env:/prod/network.tfstate.tflock"));
}

#[test]
fn lock_derived_fields_cannot_break_markdown_or_swamp_the_message() {
    let mut lock = tf_lock();
    lock.who = Some(format!("`evil`\n{}", "w".repeat(5000)));
    let m = stale(&lock, None);
    let text = chat_text(&m);
    assert!(!text.contains("`evil`"));
    assert!(text.len() < 8000, "{}", text.len());
    assert!(m.email.len() < 8000);
}

#[test]
fn resolved_message() {
    let lock = tf_lock();
    let m = resolved(&lock);
    assert_eq!(event(&m), EVENT_LOCK_RESOLVED);
    assert_eq!(
        title(&m),
        ":white_check_mark: Lock released: acme-tfstate/env:/prod/network.tfstate"
    );
    assert_eq!(
        m.subject,
        "[lockreaper-prod us-east-1] Lock released: acme-tfstate/env:/prod/network.tfstate"
    );
    assert_eq!(token(&m), None);
    assert_eq!(m.chat["metadata"]["enableCustomActions"], false);
    assert!(m.email.contains(LOCK_ID));
    assert!(m.email.contains("propose-unlock"));
    assert!(flat(&m.email).contains("terraform plan"));
}

/// The text with its line breaks and indentation folded, to search across wrapped lines.
fn flat(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn unparseable_message_never_offers_approval() {
    let loc = ddb("gyro-locks", "app/prod");
    let m = unparseable(&loc);
    assert_eq!(event(&m), EVENT_LOCK_UNPARSEABLE);
    assert_eq!(token(&m), None);
    assert_eq!(m.chat["metadata"]["enableCustomActions"], false);
    assert!(title(&m).contains("Unparseable lock — inspect by hand"));
    assert_eq!(
        m.subject,
        "[lockreaper-prod us-east-1] Unparseable lock - inspect by hand: ...gyro-locks (LockID = \"app/prod\")"
    );
    for text in [m.email.clone(), chat_text(&m)] {
        assert!(
            text.contains("Gyro lock item has no `GyroId`")
                || text.contains("Gyro lock item has no GyroId"),
            "{text}"
        );
        assert!(
            text.contains("dynamodb://gyro-locks (LockID = \"app/prod\")"),
            "{text}"
        );
        assert!(!text.contains("force-unlock"), "{text}");
        assert!(!text.contains("sns publish"), "{text}");
    }
}

#[test]
fn wrap_keeps_long_words_whole() {
    let long = "x".repeat(100);
    let out = wrap(&format!("short {long} end"), "  - ", "    ");
    assert_eq!(out, format!("  - short\n    {long}\n    end\n"));
    assert_eq!(wrap("", "", ""), "\n");
}

// ---------------------------------------------------------------- chat buttons (template.yaml)

use crate::approval::{
    ApprovalMessage, ApprovalSource, ApprovalToken, LockFingerprint, SigningKey,
};
use std::path::PathBuf;
use std::time::Duration;

/// The approvals topic named in the fixture alerts; `infra/sam/test_template.py` stands it in for
/// the stack's `ApprovalTopic` when it checks the buttons' `EQUALS` criterion.
const FIXTURE_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:lockreaper-ok";
const FIXTURE_SECRET: &str = "fixture-signing-key-0123456789abcdef-not-secret";
const FIXTURE_PROPOSAL: [u8; 12] = [0x6c, 0x72, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An offer as the reaper makes one (`propose` in functions/reaper): a real signed token for the
/// lock, expiring six hours after it was taken.
fn real_offer(lock: &LockRecord) -> ApprovalOffer {
    let key = SigningKey::from_secret(FIXTURE_SECRET).unwrap();
    let expires_at = mins(6 * 60);
    ApprovalOffer {
        token: ApprovalToken::issue(
            &key,
            FIXTURE_PROPOSAL,
            LockFingerprint::of(lock),
            expires_at,
        ),
        approval_topic_arn: FIXTURE_TOPIC.to_owned(),
        expires_at,
    }
}

/// What Amazon Q Developer (Chatbot) receives for `message`: the `https` key of the SNS
/// `MessageStructure=json` message the reaper publishes, pretty-printed as committed.
fn as_chatbot_receives(message: &AlertMessage) -> String {
    let sns: Value = serde_json::from_str(&message.sns_message()).unwrap();
    let chat: Value = serde_json::from_str(sns["https"].as_str().unwrap()).unwrap();
    serde_json::to_string_pretty(&chat).unwrap() + "\n"
}

/// The committed fixtures under infra/sam/fixtures/ are exactly what the production code renders:
/// a stale-lock proposal (with a real token) and a warning (no offer, so no buttons). The
/// template's contract test resolves the chat buttons' variable paths against them, so they must
/// not drift: rerun with `LOCKREAPER_UPDATE_FIXTURES=1` after changing the alert format.
#[test]
fn chat_fixture_alerts_are_current() {
    let lock = tf_lock();
    let proposal = stale(&lock, Some(&real_offer(&lock)));
    let warning = {
        let v = verdict(&lock, &Liveness::default(), 150);
        assert_eq!(v.level, Level::Warn);
        lock_alert(&lock, &v, AlertKind::New, None, &ctx())
    };
    let update = std::env::var_os("LOCKREAPER_UPDATE_FIXTURES").is_some();
    for (name, message) in [
        ("proposal-alert.chat.json", &proposal),
        ("warning-alert.chat.json", &warning),
    ] {
        let path = repo_root().join("infra/sam/fixtures").join(name);
        let rendered = as_chatbot_receives(message);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "{} is not what the reaper's code renders now; regenerate it with \
             LOCKREAPER_UPDATE_FIXTURES=1 cargo test -p lockreaper-core chat_fixture_alerts_are_current\n\
             rendered:\n{rendered}",
            path.display()
        );
    }
    // The proposal's token is a real one for this lock.
    let token = token(&proposal).unwrap();
    let key = SigningKey::from_secret(FIXTURE_SECRET).unwrap();
    let verified = ApprovalToken::verify(&key, token, t0()).unwrap();
    assert!(verified.fingerprint.matches(&lock));
    assert_eq!(token.len(), ApprovalToken::LEN);
}

/// Splits a command line the way a shell (and the Chatbot command parser, per the public custom
/// actions that quote a `$variable` inside `"…"`) does for the forms used here: words separated by
/// spaces, double or single quotes grouping. An unterminated quote is an error.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(quote.is_none(), "unterminated quote in {line:?}");
    words.extend(word);
    words
}

/// `$name` → its value; an unknown variable fails the test (Chatbot would leave it unresolved).
fn substitute(command: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = command;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        let name = &after[..len];
        let value = vars
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{command:?} uses ${name}, which is not a known variable"))
            .1;
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The `CommandText` of every custom action in template.yaml, exactly as written there.
fn template_command_texts() -> Vec<String> {
    let template = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    template
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("CommandText:"))
        .map(|c| c.trim().to_owned())
        .collect()
}

/// What each chat button publishes, once Chatbot has put the alert's token and topic into its
/// `CommandText`, is accepted by force-unlock's parser as that button's action.
#[test]
fn chat_button_commands_parse_as_their_actions() {
    let lock = tf_lock();
    let offer = real_offer(&lock);
    let commands = template_command_texts();
    assert_eq!(commands.len(), 3, "{commands:?}");
    let mut actions = Vec::new();
    for command in &commands {
        assert!(
            !command.starts_with('!'),
            "{command}: no !Sub, the topic comes from the alert"
        );
        let line = substitute(
            command,
            &[
                ("token", &offer.token),
                ("topic", &offer.approval_topic_arn),
            ],
        );
        let words = shell_words(&line);
        assert_eq!(words[..2], ["sns", "publish"], "{line}");
        let arg = |flag: &str| {
            let at = words
                .iter()
                .position(|w| w == flag)
                .unwrap_or_else(|| panic!("{line}: no {flag}"));
            words
                .get(at + 1)
                .unwrap_or_else(|| panic!("{line}: {flag} has no value"))
                .clone()
        };
        assert_eq!(arg("--topic-arn"), FIXTURE_TOPIC);
        assert_eq!(
            words.len(),
            6,
            "exactly `sns publish --topic-arn T --message M`: {words:?}"
        );
        let parsed = ApprovalMessage::parse(&arg("--message"))
            .unwrap_or_else(|e| panic!("{command}: force-unlock refuses what it publishes: {e}"));
        assert_eq!(parsed.message.token(), offer.token);
        assert_eq!(parsed.message.approver(), None);
        assert_eq!(parsed.message.reason(), None);
        match &parsed.message {
            ApprovalMessage::Approve { .. } => {
                assert_eq!(parsed.source, ApprovalSource::ChatButton)
            }
            ApprovalMessage::Deny { .. } => assert_eq!(parsed.source, ApprovalSource::Text),
            ApprovalMessage::Snooze { duration, .. } => {
                assert_eq!(parsed.source, ApprovalSource::Text);
                assert_eq!(*duration, Duration::from_secs(2 * 3600));
            }
        }
        actions.push(parsed.message.action());
    }
    actions.sort_unstable();
    assert_eq!(actions, ["approve", "deny", "snooze"]);
}

#[test]
fn shell_words_groups_quotes() {
    assert_eq!(
        shell_words(r#"sns publish --message "deny a.b" 'x y'"#),
        ["sns", "publish", "--message", "deny a.b", "x y"]
    );
    assert_eq!(shell_words(r#"a "" b"#), ["a", "", "b"]);
}

#[test]
#[should_panic(expected = "unterminated quote")]
fn shell_words_refuses_an_open_quote() {
    shell_words(r#"sns publish --message "deny"#);
}

#[test]
fn an_alert_names_the_evidence_that_could_not_be_read_and_why_it_was_not_expired() {
    let gap = crate::decision::EvidenceGap::unreadable(
        crate::decision::EvidenceSource::StateObject,
        "head state object acme-tfstate/env:/prod/network.tfstate: ThrottlingException: Rate exceeded",
    );
    let v = StaleLockPolicy {
        auto_expire: true,
        ..StaleLockPolicy::default()
    }
    .evaluate(&tf_lock(), &Liveness::default(), &[gap], mins(312));
    assert_eq!(v.level, Level::ProposeUnlock);
    let m = lock_alert(&tf_lock(), &v, AlertKind::New, Some(&offer()), &ctx());
    let description = m.chat["content"]["description"].as_str().unwrap();
    for text in [m.email.as_str(), description] {
        for expected in [
            "Could not read the state object: head state object",
            "ThrottlingException",
            "which does not show the holder is gone",
            "lockreaper does not release it",
            "never released automatically",
        ] {
            assert!(
                text.replace('\n', " ")
                    .replace("    ", "")
                    .contains(expected)
                    || text.contains(expected),
                "{expected:?} missing:\n{text}"
            );
        }
    }
}

/// Issue 16: every alert — new, reminder, resolved, unparseable — names the lockreaper version
/// that sent it, in chat (the description's last line) and in e-mail (the signature).
#[test]
fn every_alert_names_the_version_that_sent_it() {
    let lock = tf_lock();
    let reminder = {
        let v = verdict(&lock, &Liveness::default(), 312);
        lock_alert(&lock, &v, AlertKind::Reminder, None, &ctx())
    };
    for (what, message) in [
        ("proposal", stale(&lock, Some(&real_offer(&lock)))),
        ("warning", warn(&lock)),
        ("reminder", reminder),
        ("resolved", resolved(&lock)),
        ("unparseable", unparseable(&lock.location)),
    ] {
        let footer = format!("lockreaper {}", crate::messages::VERSION);
        let description = message.chat["content"]["description"].as_str().unwrap();
        assert!(
            description.ends_with(&format!("\n\n_{footer}_")),
            "{what}: {description}"
        );
        assert!(
            message.email.ends_with(&format!("\n{footer}\n")),
            "{what}: {}",
            message.email
        );
    }
}

/// The Slack member: the thread key, the offered token only where the buttons show, and a lock
/// released on its own closes the thread's open offer (only when one was open).
#[test]
fn the_slack_member_threads_offers_and_closes() {
    let lock = tf_lock();
    let offered = stale(&lock, Some(&offer()));
    assert_eq!(offered.slack["thread"], thread(&offered));
    assert_eq!(offered.slack["approvalToken"], TOKEN);
    assert_eq!(
        offered.slack["approvalExpiresAt"],
        offer()
            .expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert!(offered.slack.get("closes").is_none());
    assert!(offered.slack["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["block_id"] == crate::messages::slack::ACTIONS_BLOCK_ID));
    let warned = warn(&lock);
    assert!(warned.slack.get("approvalToken").is_none());
    assert_eq!(warned.slack["thread"], thread(&warned));

    // Released with no offer open: nothing to close.
    assert!(resolved(&lock).slack.get("closes").is_none());
    let mut state = AlertState::after_send(None, &lock.lock_id, Level::ProposeUnlock, mins(312));
    state.open_proposals.push(crate::decision::OpenProposal {
        proposal_id: "AAECAwQFBgcICQoL".to_owned(),
        lock_id: lock.lock_id.clone(),
        proposed_at: mins(312),
        expires_at: mins(312 + 360),
    });
    let released = resolved_alert(&state, &lock.location, &lock.state_path, &ctx());
    assert_eq!(
        released.slack["closes"],
        serde_json::json!({"line": "Lock released before anyone decided — nothing to unlock"})
    );
    assert_eq!(released.slack["thread"], thread(&offered));
}
