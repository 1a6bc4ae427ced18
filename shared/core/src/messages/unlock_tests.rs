//! Result notifications: one per outcome, threaded, within SNS limits, with the state check and the
//! advice people need after a forced unlock.

use super::*;
use crate::model::LockKind;
use crate::model::{DeletePrecondition, LockCreated, LockLocation};
use chrono::TimeZone;
use serde_json::Value;

const TF_PATH: &str = "acme-tfstate/env:/prod/network.tfstate";
const LOCK_ID: &str = "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7";
const THREAD: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "lr1.BwcHBwcHBwcHBwcHZ8cZD7wLM_p-NWO4m3eb7Ci-0NYCA33vbggFrQ";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 9, 15, 27).unwrap()
}

fn tf_lock(path: &str) -> LockRecord {
    LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: LockLocation::DynamoDb {
            table: "tf-locks".to_owned(),
            key_attribute: "LockID".to_owned(),
            key: path.to_owned(),
        },
        lock_id: LOCK_ID.to_owned(),
        who: Some("runner@ip-10-0-1-23".to_owned()),
        operation: Some("OperationTypeApply".to_owned()),
        tool_version: Some("1.15.0".to_owned()),
        created: LockCreated::Recorded(t0()),
        state_path: path.to_owned(),
        info: Some(String::new()),
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals("{}".to_owned()),
        raw: "{}".to_owned(),
    }
}

fn gyro_lock() -> LockRecord {
    LockRecord {
        kind: LockKind::GyroDynamoDb,
        location: LockLocation::DynamoDb {
            table: "gyro-locks".to_owned(),
            key_attribute: "LockKey".to_owned(),
            key: "default".to_owned(),
        },
        lock_id: "adf4feb3-3333-447e-89d9-819da078618d".to_owned(),
        who: Some("gyro-user".to_owned()),
        operation: Some("up ec2/ami.gyro".to_owned()),
        tool_version: None,
        created: LockCreated::FirstSeen(t0()),
        state_path: "default".to_owned(),
        info: None,
        last_modified: None,
        precondition: DeletePrecondition::GyroIdEquals(
            "adf4feb3-3333-447e-89d9-819da078618d".to_owned(),
        ),
        raw: "{}".to_owned(),
    }
}

fn proposal_of(locks: Vec<LockRecord>) -> Proposal {
    Proposal {
        proposal_id: "AAECAwQFBgcICQoL".to_owned(),
        locks,
        proposed_at: t0(),
        expires_at: t0() + chrono::Duration::hours(24),
        thread_id: THREAD.to_owned(),
        reasons: vec!["held for 3h".to_owned()],
    }
}

fn decision() -> Decision<'static> {
    Decision {
        action: Some("approve"),
        source: Some(ApprovalSource::Json),
        approver: Some("ana@example.com"),
        reason: Some("CI runner was killed"),
        token: Some(TOKEN),
        at: t0() + chrono::Duration::hours(4),
    }
}

fn state(matches: bool) -> StateFindings {
    StateFindings {
        state: TF_PATH.to_owned(),
        digest: Some("9e107d9d372bb6826bd81d3542a419d6".to_owned()),
        state_md5: Some(if matches {
            "9e107d9d372bb6826bd81d3542a419d6".to_owned()
        } else {
            "e4d909c290d0fb1ca068ffaddf22cbd0".to_owned()
        }),
        digest_matches: Some(matches),
        versioning_enabled: Some(true),
        current_version: Some(StateVersionInfo {
            version_id: "v-current-123".to_owned(),
            last_modified: Some(t0()),
        }),
        previous_version: Some(StateVersionInfo {
            version_id: "v-previous-456".to_owned(),
            last_modified: Some(t0() - chrono::Duration::hours(1)),
        }),
        errors: Vec::new(),
    }
}

fn unlocked(state: Option<StateFindings>) -> Outcome {
    Outcome::Unlocked {
        audit_id: "a1b2c3".to_owned(),
        artefacts: vec![ArtefactOutcome::Deleted],
        state,
        errors: Vec::new(),
    }
}

fn every_outcome() -> Vec<Outcome> {
    let prior = PriorUse {
        by: Some("bob".to_owned()),
        via: Some("json".to_owned()),
        at: Some(t0()),
    };
    vec![
        unlocked(Some(state(true))),
        Outcome::LockChanged {
            audit_id: "a".to_owned(),
            artefacts: vec![ArtefactOutcome::Changed],
        },
        Outcome::AlreadyReleased {
            audit_id: "a".to_owned(),
        },
        Outcome::Failed {
            audit_id: Some("a".to_owned()),
            artefacts: vec![ArtefactOutcome::Failed],
            errors: vec!["delete lock item tf-locks: AccessDeniedException".to_owned()],
        },
        Outcome::AlreadyUsed(prior.clone()),
        Outcome::Denied,
        Outcome::AlreadyDenied(prior),
        Outcome::Withdrawn {
            reason: "state written at 2025-03-04 14:00:00 UTC, after the unlock was proposed at 2025-03-04 13:30:00 UTC: the holder is alive".to_owned(),
        },
        Outcome::Snoozed {
            until: t0() + chrono::Duration::hours(8),
        },
        Outcome::UnlocksPaused {
            usable_until: t0() + chrono::Duration::hours(24),
        },
        Outcome::TokenExpired { expired_at: t0() },
        Outcome::TokenRejected {
            problem: "approval token has a bad signature".to_owned(),
        },
        Outcome::UnknownProposal {
            proposal_id: "AAECAwQFBgcICQoL".to_owned(),
        },
        Outcome::WrongLock,
        Outcome::ApproverNotAllowed {
            problem: "approver \"eve\" is not on the approver allow-list".to_owned(),
        },
        Outcome::BadMessage {
            problem: "unknown action \"aprove\"".to_owned(),
        },
    ]
}

fn chat_of(message: &ResultMessage) -> Value {
    let envelope: Value = serde_json::from_str(&message.sns_message()).unwrap();
    serde_json::from_str(envelope["https"].as_str().unwrap()).unwrap()
}

#[test]
fn every_outcome_fits_sns_and_chat() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let mut names = std::collections::HashSet::new();
    for outcome in every_outcome() {
        assert!(names.insert(outcome.as_str()), "{}", outcome.as_str());
        for p in [Some(&proposal), None] {
            let m = result_message(p, &decision(), &outcome);
            let what = format!("{} (proposal: {})", outcome.as_str(), p.is_some());
            assert!(m.subject.len() <= SUBJECT_MAX, "{what}: {}", m.subject);
            assert!(
                m.subject.chars().all(|c| (' '..='~').contains(&c)),
                "{what}: {}",
                m.subject
            );
            assert!(!m.subject.is_empty());

            let envelope: Value = serde_json::from_str(&m.sns_message()).unwrap();
            let keys: Vec<&String> = envelope.as_object().unwrap().keys().collect();
            assert_eq!(
                keys,
                [
                    "default",
                    "email",
                    "email-json",
                    "firehose",
                    "http",
                    "https",
                    "lambda",
                    "sms",
                    "sqs"
                ],
                "{what}: the same protocols as alerts, which share the topic"
            );
            assert_eq!(envelope["default"], envelope["email"]);
            for key in ["http", "email-json", "firehose"] {
                assert_eq!(envelope["https"], envelope[key], "{what}: {key}");
            }
            // Programs (the Slack notifier over `lambda`, tests over `sqs`) read one form: the
            // chat notification plus the `slack` member.
            assert_eq!(envelope["sqs"], envelope["lambda"], "{what}");
            let program: Value =
                serde_json::from_str(envelope["lambda"].as_str().unwrap()).unwrap();
            let mut without_slack = program.clone();
            without_slack.as_object_mut().unwrap().remove("slack");
            assert_eq!(without_slack, m.chat, "{what}");
            assert_eq!(program["slack"], m.slack, "{what}");
            assert_eq!(envelope["sms"].as_str(), Some(m.subject.as_str()));
            assert_eq!(envelope["email"].as_str(), Some(m.email.as_str()));

            let chat = chat_of(&m);
            assert_eq!(chat["version"], "1.0");
            assert_eq!(chat["source"], "custom");
            let description = chat["content"]["description"].as_str().unwrap();
            assert!(
                description.ends_with(&format!("_lockreaper {}_", crate::messages::VERSION)),
                "{what}: {description}"
            );
            assert_eq!(chat["metadata"]["enableCustomActions"], false);
            assert_eq!(
                chat["metadata"]["additionalContext"]["outcome"],
                outcome.as_str()
            );
            match p {
                Some(_) => {
                    assert_eq!(chat["metadata"]["threadId"], THREAD, "{what}");
                    assert_eq!(m.thread_id(), Some(THREAD));
                    assert!(m.email.contains(TF_PATH), "{what}:\n{}", m.email);
                }
                None => assert!(chat["metadata"].get("threadId").is_none(), "{what}"),
            }
            assert!(m.email.ends_with(&format!(
                "Sent by lockreaper force-unlock.\nlockreaper {}\n",
                crate::messages::VERSION
            )));
        }
    }
}

#[test]
fn unlocked_reports_the_state_check_and_advises_a_plan() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let m = result_message(Some(&proposal), &decision(), &unlocked(Some(state(true))));
    assert!(
        m.subject.starts_with("[lockreaper] Unlocked: "),
        "{}",
        m.subject
    );
    let chat = chat_of(&m);
    assert_eq!(chat["metadata"]["eventType"], EVENT_UNLOCKED);
    let description = chat["content"]["description"].as_str().unwrap();
    for needle in [
        "matches the `-md5` digest item",
        "Bucket versioning: on.",
        "v-current-123",
        "Previous state version (rollback point): v-previous-456",
        "ana@example.com (via a JSON message",
        "Audit ID: `a1b2c3`",
        "(deleted)",
    ] {
        assert!(description.contains(needle), "{needle}:\n{description}");
    }
    let steps = chat["content"]["nextSteps"].to_string();
    assert!(
        steps.contains("`terraform plan` (in workspace `prod`)"),
        "{steps}"
    );
    assert!(
        steps.contains("--version-id v-previous-456"),
        "rollback command: {steps}"
    );
    for needle in [
        "terraform plan",
        "v-previous-456",
        "aws s3api get-object --bucket acme-tfstate --key env:/prod/network.tfstate --version-id v-previous-456 previous.tfstate",
        "Bucket versioning: on.",
    ] {
        assert!(m.email.contains(needle), "{needle}:\n{}", m.email);
    }
    assert!(
        !m.email.contains('`'),
        "email has no markdown:\n{}",
        m.email
    );
}

#[test]
fn digest_mismatch_and_no_versioning_come_first_and_loud() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let mut findings = state(false);
    findings.versioning_enabled = Some(false);
    findings.previous_version = None;
    let m = result_message(Some(&proposal), &decision(), &unlocked(Some(findings)));
    let chat = chat_of(&m);
    let description = chat["content"]["description"].as_str().unwrap();
    assert!(description.contains("Digest MISMATCH"), "{description}");
    assert!(description.contains("OFF"), "{description}");
    let steps = chat["content"]["nextSteps"].as_array().unwrap();
    assert!(steps[0]
        .as_str()
        .unwrap()
        .contains("does not match its `-md5` digest"));
    assert!(steps[1].as_str().unwrap().contains("terraform plan"));
    assert!(steps
        .iter()
        .any(|s| s.as_str().unwrap().contains("Turn on versioning")));
}

#[test]
fn gyro_is_told_to_diff() {
    let proposal = proposal_of(vec![gyro_lock()]);
    let m = result_message(Some(&proposal), &decision(), &unlocked(None));
    assert!(m.email.contains("gyro diff"), "{}", m.email);
    assert!(!m.email.contains("terraform plan"), "{}", m.email);
}

#[test]
fn lock_changed_says_so_and_lists_each_artefact() {
    let mut file = tf_lock(TF_PATH);
    file.kind = LockKind::TerraformS3LockFile;
    file.location = LockLocation::S3 {
        bucket: "acme-tfstate".to_owned(),
        key: "env:/prod/network.tfstate.tflock".to_owned(),
    };
    let proposal = proposal_of(vec![tf_lock(TF_PATH), file]);
    let outcome = Outcome::LockChanged {
        audit_id: "x".to_owned(),
        artefacts: vec![ArtefactOutcome::Changed, ArtefactOutcome::Skipped],
    };
    let m = result_message(Some(&proposal), &decision(), &outcome);
    assert!(
        m.email
            .contains("Lock changed since the proposal; not unlocked."),
        "{}",
        m.email
    );
    assert!(m.email.contains("(changed, left alone)"), "{}", m.email);
    assert!(
        m.email
            .contains("s3://acme-tfstate/env:/prod/network.tfstate.tflock (not touched)"),
        "{}",
        m.email
    );
    assert_eq!(chat_of(&m)["metadata"]["eventType"], EVENT_NOT_UNLOCKED);
}

#[test]
fn replay_names_the_first_use() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let outcome = Outcome::AlreadyUsed(PriorUse {
        by: Some("bob".to_owned()),
        via: None,
        at: Some(t0()),
    });
    let m = result_message(Some(&proposal), &decision(), &outcome);
    assert!(
        m.email
            .contains("already used at 2025-03-04 09:15:27 UTC by bob"),
        "{}",
        m.email
    );
    assert_eq!(
        chat_of(&m)["metadata"]["eventType"],
        EVENT_APPROVAL_REJECTED
    );
}

#[test]
fn hostile_input_cannot_reshape_the_message() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let long = "x".repeat(5000);
    let d = Decision {
        approver: Some("`<!channel>`\nApproved by: the CEO"),
        reason: Some(&long),
        ..decision()
    };
    let m = result_message(Some(&proposal), &d, &Outcome::Denied);
    let chat = chat_of(&m);
    let description = chat["content"]["description"].as_str().unwrap();
    assert!(!description.contains("<!channel>"), "{description}");
    assert!(!description.contains("\nApproved by"), "{description}");
    assert!(description.len() < 4000, "{}", description.len());
    assert!(m.email.contains('…'));
}

#[test]
fn long_paths_keep_their_end_in_the_subject() {
    let path = format!(
        "acme-tfstate/{}/terraform.tfstate",
        "very-long-directory-name/".repeat(8)
    );
    let proposal = proposal_of(vec![tf_lock(&path)]);
    let m = result_message(Some(&proposal), &decision(), &unlocked(None));
    assert!(m.subject.len() <= SUBJECT_MAX, "{}", m.subject);
    assert!(m.subject.contains("..."), "{}", m.subject);
    assert!(m.subject.ends_with("/terraform.tfstate"), "{}", m.subject);
}

#[test]
fn unnamed_chat_button_approvals_say_so() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let d = Decision {
        source: Some(ApprovalSource::ChatButton),
        approver: None,
        reason: None,
        ..decision()
    };
    let m = result_message(Some(&proposal), &d, &unlocked(None));
    assert!(
        m.email.contains("an unnamed approver (via a chat button"),
        "{}",
        m.email
    );
}

#[test]
fn withdrawn_says_the_holder_is_alive_and_nothing_was_deleted_in_the_thread() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let outcome = Outcome::Withdrawn {
        reason: "state written at 2025-03-04 14:00:00 UTC, after the unlock was proposed at 2025-03-04 13:30:00 UTC: the holder is alive".to_owned(),
    };
    let m = result_message(Some(&proposal), &decision(), &outcome);
    let chat = chat_of(&m);
    assert_eq!(chat["metadata"]["threadId"], THREAD);
    let description = chat["content"]["description"].as_str().unwrap();
    assert!(
        description.contains("after the unlock was proposed at 2025-03-04 13:30:00 UTC"),
        "{description}"
    );
    assert!(description.contains("Nothing was deleted"), "{description}");
    assert!(
        m.subject.contains("Not unlocked (holder alive)"),
        "{}",
        m.subject
    );
    assert!(!outcome.unlocked());
}

#[test]
fn unlocks_paused_names_the_parameter_and_keeps_the_approval() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let outcome = Outcome::UnlocksPaused {
        usable_until: t0() + chrono::Duration::hours(24),
    };
    let m = result_message(Some(&proposal), &decision(), &outcome);
    let chat = chat_of(&m);
    assert_eq!(chat["metadata"]["threadId"], THREAD);
    let description = chat["content"]["description"].as_str().unwrap();
    for expected in [
        "Unlocks are paused on this stack (UnlocksPaused=true); nothing was deleted.",
        "stays usable until 2025-03-05",
    ] {
        assert!(description.contains(expected), "{description}");
    }
    assert!(m.email.contains("UnlocksPaused=false"), "{}", m.email);
    assert!(m.subject.contains("unlocks paused"), "{}", m.subject);
    assert!(!outcome.unlocked());
}

/// A final result names the offer it closes (by the token the decision named) and the line that
/// replaces its buttons: a verified Slack user is a mention; a CLI name is escaped text, never a
/// mention, even when it claims to be a Slack user; a Chatbot button says so.
#[test]
fn a_final_result_closes_the_offer_with_who_decided() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    let closes = |d: &Decision<'_>, outcome: &Outcome| {
        result_message(Some(&proposal), d, outcome).slack["closes"].clone()
    };

    let slack_verified = Decision {
        source: Some(ApprovalSource::SlackVerified),
        approver: Some("slack:T0123ABCD/U0456EFGH"),
        ..decision()
    };
    let c = closes(&slack_verified, &unlocked(None));
    assert_eq!(c["token"], TOKEN);
    assert_eq!(
        c["line"],
        "Approved by <@U0456EFGH> at 13:15 UTC — unlocked"
    );

    // The same name from a CLI message is the publisher's word: no mention.
    let claimed = Decision {
        source: Some(ApprovalSource::Json),
        approver: Some("slack:T0123ABCD/U0456EFGH"),
        ..decision()
    };
    let line = closes(&claimed, &unlocked(None))["line"].clone();
    assert_eq!(
        line,
        "Approved by slack:T0123ABCD/U0456EFGH at 13:15 UTC — unlocked"
    );
    let hostile = Decision {
        approver: Some("<!channel> & <@U999>"),
        action: Some("deny"),
        ..decision()
    };
    let line = closes(&hostile, &Outcome::Denied)["line"].clone();
    assert_eq!(
        line,
        "Denied by ‹!channel› &amp; ‹@U999› at 13:15 UTC — the unlock will not be offered again for this lock"
    );
    assert!(!line.as_str().unwrap().contains('<'));

    let button = Decision {
        source: Some(ApprovalSource::ChatButton),
        approver: None,
        action: Some("snooze"),
        ..decision()
    };
    let until = t0() + chrono::Duration::hours(6);
    assert_eq!(
        closes(&button, &Outcome::Snoozed { until })["line"],
        "Snoozed for two hours via a chat button at 13:15 UTC — no alerts until 2025-03-04 15:15:27 UTC"
    );
    let unnamed = Decision {
        source: Some(ApprovalSource::Text),
        approver: None,
        ..decision()
    };
    assert!(
        closes(&unnamed, &Outcome::AlreadyUsed(PriorUse::default()))["line"]
            .as_str()
            .unwrap()
            .starts_with(
                "Approved by an unnamed approver at 13:15 UTC — the approval was already used"
            )
    );
}

/// Refusals that leave the offer open for someone else, and messages that reached no proposal,
/// close nothing; neither does a decision that named no token.
#[test]
fn refusals_that_leave_the_offer_open_close_nothing() {
    let proposal = proposal_of(vec![tf_lock(TF_PATH)]);
    for outcome in [
        Outcome::ApproverNotAllowed {
            problem: "not on the list".to_owned(),
        },
        Outcome::UnlocksPaused {
            usable_until: t0() + chrono::Duration::hours(6),
        },
        Outcome::WrongLock,
    ] {
        let m = result_message(Some(&proposal), &decision(), &outcome);
        assert!(m.slack.get("closes").is_none(), "{}", outcome.as_str());
        // Still threaded with the lock, so the notifier posts it in the thread.
        assert_eq!(m.slack["thread"], THREAD);
    }
    let m = result_message(None, &decision(), &Outcome::Denied);
    assert!(m.slack.get("closes").is_none());
    assert!(m.slack.get("thread").is_none());
    let no_token = Decision {
        token: None,
        ..decision()
    };
    let m = result_message(Some(&proposal), &no_token, &Outcome::Denied);
    assert!(m.slack.get("closes").is_none());
}
