//! Approval tokens, fingerprints, messages on the approvals topic, the approver allow-list.

use super::*;
use crate::model::{DeletePrecondition, LockCreated, LockKind, LockLocation};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
const PROPOSAL: [u8; 12] = [7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const INFO: &str = r#"{"ID":"f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7","Operation":"OperationTypeApply","Info":"","Who":"runner@ip-10-0-1-23","Version":"1.10.5","Created":"2025-03-04T09:15:27.483920118Z","Path":"acme-tfstate/prod/vpc/terraform.tfstate"}"#;

fn key() -> SigningKey {
    SigningKey::from_secret(SECRET).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

const EXPIRY: i64 = 1_741_100_000; // 2025-03-04T14:53:20Z

fn lock(lock_id: &str, raw: &str) -> LockRecord {
    LockRecord {
        kind: LockKind::TerraformDynamoDb,
        location: LockLocation::DynamoDb {
            table: "tf-locks".into(),
            key_attribute: "LockID".into(),
            key: "acme-tfstate/prod/vpc/terraform.tfstate".into(),
        },
        lock_id: lock_id.into(),
        who: Some("runner@ip-10-0-1-23".into()),
        operation: Some("OperationTypeApply".into()),
        tool_version: Some("1.10.5".into()),
        created: LockCreated::Unknown,
        state_path: "acme-tfstate/prod/vpc/terraform.tfstate".into(),
        info: None,
        last_modified: None,
        precondition: DeletePrecondition::InfoEquals(raw.into()),
        raw: raw.into(),
    }
}

fn the_lock() -> LockRecord {
    lock("f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7", INFO)
}

fn token() -> String {
    ApprovalToken::issue(
        &key(),
        PROPOSAL,
        LockFingerprint::of(&the_lock()),
        at(EXPIRY),
    )
}

fn verify(token: &str, now: i64) -> Result<VerifiedApproval, TokenError> {
    ApprovalToken::verify(&key(), token, at(now))
}

/// `token` with the character at `index` replaced by a different base64url character.
fn flip(token: &str, index: usize) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

// --- signing key --------------------------------------------------------------------------

#[test]
fn signing_key_is_redacted_and_needs_32_bytes() {
    let k = key();
    assert_eq!(format!("{k:?}"), "SigningKey(redacted)");
    assert_eq!(format!("{k}"), "SigningKey(redacted)");
    assert!(!format!("{k:?}").contains("0123"));

    let err = SigningKey::from_secret("short-secret").unwrap_err();
    assert_eq!(err, KeyError::TooShort { len: 12, min: 32 });
    let text = err.to_string();
    assert!(
        text.contains("12 bytes") && text.contains("at least 32"),
        "{text}"
    );
    assert!(!text.contains("short-secret"), "{text}");

    // Exactly 32 bytes is enough, 31 is not; surrounding whitespace does not count.
    assert!(SigningKey::from_secret(&"k".repeat(32)).is_ok());
    assert!(SigningKey::from_secret(&format!("  {}\n", "k".repeat(31))).is_err());
    assert!(SigningKey::from_bytes(&[0u8; 31]).is_err());
    assert!(SigningKey::from_bytes(&[0u8; 32]).is_ok());
}

#[test]
fn trailing_newline_in_the_secret_gives_the_same_key() {
    let t = token();
    let with_newline = SigningKey::from_secret(&format!("{SECRET}\n")).unwrap();
    assert!(ApprovalToken::verify(&with_newline, &t, at(EXPIRY - 1)).is_ok());
}

// --- fingerprint ----------------------------------------------------------------------------

#[test]
fn fingerprint_binds_location_lock_id_and_raw_content() {
    let original = the_lock();
    let fp = LockFingerprint::of(&original);
    assert!(fp.matches(&original));
    assert_eq!(fp, LockFingerprint::of(&original.clone()), "deterministic");

    // Released and re-taken at the same path: new ID, new raw content.
    let retaken_info = INFO
        .replace(
            "f3c2a4d8-6b1e-9c07-2a5d-8e41b9f0c3a7",
            "0b6e1d2c-aaaa-bbbb-cccc-0123456789ab",
        )
        .replace("09:15:27.483920118Z", "15:01:02.000000001Z");
    let retaken = lock("0b6e1d2c-aaaa-bbbb-cccc-0123456789ab", &retaken_info);
    assert!(!fp.matches(&retaken));

    // Raw content alone differs (same ID, e.g. a different operation).
    let raw_changed = lock(
        &original.lock_id,
        &INFO.replace("OperationTypeApply", "OperationTypePlan"),
    );
    assert!(!fp.matches(&raw_changed));
    // One byte of whitespace is enough.
    assert!(!fp.matches(&lock(&original.lock_id, &format!("{INFO} "))));

    // Lock ID alone differs.
    assert!(!fp.matches(&lock("other-id", INFO)));

    // Location alone differs: another table, or the lock file beside it.
    let mut other_table = original.clone();
    other_table.location = LockLocation::DynamoDb {
        table: "tf-locks-2".into(),
        key_attribute: "LockID".into(),
        key: "acme-tfstate/prod/vpc/terraform.tfstate".into(),
    };
    assert!(!fp.matches(&other_table));
    let mut lock_file = original.clone();
    lock_file.location = LockLocation::S3 {
        bucket: "acme-tfstate".into(),
        key: "prod/vpc/terraform.tfstate.tflock".into(),
    };
    assert!(!fp.matches(&lock_file));

    // Fields that are not identity do not matter.
    let mut described_differently = original.clone();
    described_differently.who = None;
    described_differently.created = LockCreated::FirstSeen(at(EXPIRY));
    assert!(fp.matches(&described_differently));
}

#[test]
fn fingerprint_fields_are_length_prefixed() {
    // Moving a byte from the lock ID into the raw content must not give the same hash.
    let a = lock("abc", "def");
    let b = lock("ab", "cdef");
    assert_ne!(LockFingerprint::of(&a), LockFingerprint::of(&b));
}

#[test]
fn fingerprint_hex_round_trip() {
    let fp = LockFingerprint::of(&the_lock());
    let text = fp.to_string();
    assert_eq!(text.len(), 16);
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(LockFingerprint::from_hex(&text), Ok(fp));
    let json = serde_json::to_string(&fp).unwrap();
    assert_eq!(json, format!("\"{text}\""));
    assert_eq!(serde_json::from_str::<LockFingerprint>(&json).unwrap(), fp);
    assert!(LockFingerprint::from_hex("abc").is_err());
    assert!(serde_json::from_str::<LockFingerprint>("\"zz\"").is_err());
    assert_eq!(LockFingerprint::from_bytes(*fp.as_bytes()), fp);
}

// --- token: happy path, form, length -------------------------------------------------------

#[test]
fn issued_token_verifies_and_carries_its_fields() {
    let t = token();
    let v = verify(&t, EXPIRY - 1).unwrap();
    assert_eq!(v.proposal_id, encode_proposal_id(&PROPOSAL));
    assert_eq!(v.proposal_id.len(), 16);
    assert_eq!(v.fingerprint, LockFingerprint::of(&the_lock()));
    assert!(v.fingerprint.matches(&the_lock()));
    assert_eq!(v.expires_at, at(EXPIRY));
    // Long before expiry too.
    assert!(verify(&t, 0).is_ok());
}

#[test]
fn token_is_short_ascii_and_chatbot_safe() {
    for (proposal, expiry) in [
        (PROPOSAL, EXPIRY),
        ([0u8; 12], 0),
        ([0xff; 12], i64::from(u32::MAX)),
        ([0xfb; 12], 4_000_000_000),
    ] {
        let t = ApprovalToken::issue(
            &key(),
            proposal,
            LockFingerprint::of(&the_lock()),
            at(expiry),
        );
        assert_eq!(t.len(), 58, "{t}");
        assert_eq!(t.len(), ApprovalToken::LEN);
        assert!(t.len() <= 60);
        assert!(t.starts_with("lr1."), "{t}");
        // Chatbot variable values must match [\x21-\x7F]+ (so no spaces), and nothing a shell
        // would interpret: only base64url characters after the prefix.
        assert!(t.bytes().all(|b| (0x21..=0x7f).contains(&b)), "{t}");
        assert!(
            t["lr1.".len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{t}"
        );
    }
}

/// The chat button's command. Chatbot's `CustomActionDefinition.CommandText` is limited to
/// 100 characters; the API documents that CommandText "may include variables by prefixing with a
/// dollar sign", so the limit applies to the text with the `$variable`, not to the command after
/// substitution (which no signed token could fit: the fixed part alone is 93 characters).
#[test]
fn chat_button_command_fits_chatbot_limit() {
    let arn = "arn:aws:sns:eu-central-2:123456789012:lockreaper-approvals";
    assert_eq!(arn.len(), 58);
    let fixed = format!("sns publish --topic-arn {arn} --message ");
    assert_eq!(fixed.len(), 93);

    // What is registered as CommandText, with a short variable name: fits.
    let command_text = format!("{fixed}$token");
    assert_eq!(command_text.len(), 99);
    assert!(command_text.len() <= 100);
    // The variable name counts: `$approvalToken` would not fit with this ARN.
    assert_eq!(format!("{fixed}$approvalToken").len(), 107);

    // After substitution (what the channel role runs): 93 + 58. Recorded here so a change to
    // the token length is a deliberate decision.
    let t = token();
    let substituted = format!("{fixed}{t}");
    assert_eq!(substituted.len(), 151);
    // The token stays one shell word.
    assert_eq!(substituted.split_whitespace().count(), 6);
}

#[test]
fn expiry_is_exclusive_and_checked_in_whole_seconds() {
    let t = token();
    assert!(verify(&t, EXPIRY - 1).is_ok(), "valid one second before");
    let half_second_before = at(EXPIRY) - chrono::Duration::milliseconds(500);
    assert!(ApprovalToken::verify(&key(), &t, half_second_before).is_ok());
    for now in [EXPIRY, EXPIRY + 1, EXPIRY + 86_400] {
        assert_eq!(
            verify(&t, now),
            Err(TokenError::Expired {
                expired_at: at(EXPIRY)
            }),
            "now = expiry + {}",
            now - EXPIRY
        );
    }
    let text = verify(&t, EXPIRY + 1).unwrap_err().to_string();
    assert!(text.contains("expired at 2025-03-04T14:53:20Z"), "{text}");
}

#[test]
fn expiry_outside_u32_is_clamped_safely() {
    let fp = LockFingerprint::of(&the_lock());
    // Before 1970: stored as 0, so already expired.
    let t = ApprovalToken::issue(&key(), PROPOSAL, fp, at(-5));
    assert_eq!(
        ApprovalToken::verify(&key(), &t, at(0)),
        Err(TokenError::Expired { expired_at: at(0) })
    );
    // After 2106: stored as u32::MAX (earlier, never later).
    let t = ApprovalToken::issue(&key(), PROPOSAL, fp, at(i64::from(u32::MAX) + 1000));
    assert_eq!(verify(&t, 0).unwrap().expires_at, at(i64::from(u32::MAX)));
    // Fractions of a second are dropped.
    let t = ApprovalToken::issue(
        &key(),
        PROPOSAL,
        fp,
        at(EXPIRY) + chrono::Duration::milliseconds(900),
    );
    assert_eq!(verify(&t, 0).unwrap().expires_at, at(EXPIRY));
}

// --- token: forgeries -------------------------------------------------------------------------

#[test]
fn flipped_signature_character_is_a_bad_signature() {
    let t = token();
    // Characters 4.. are the body; the 16-byte signature is the last 22 characters (the first
    // of which shares bits with the fingerprint). Flip one well inside the signature.
    let i = t.len() - 10;
    assert_eq!(
        verify(&flip(&t, i), EXPIRY - 1),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn flipped_payload_character_is_a_bad_signature() {
    let t = token();
    // In the proposal id, in the expiry, in the fingerprint.
    for i in [5, 21, 30] {
        assert_eq!(
            verify(&flip(&t, i), EXPIRY - 1),
            Err(TokenError::BadSignature),
            "flipped {i}"
        );
    }
}

#[test]
fn no_single_character_change_verifies() {
    let t = token();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for i in 4..t.len() {
        for c in alphabet.chars() {
            let mut chars: Vec<char> = t.chars().collect();
            if chars[i] == c {
                continue;
            }
            chars[i] = c;
            let forged: String = chars.into_iter().collect();
            let result = verify(&forged, EXPIRY - 1);
            assert!(
                matches!(
                    result,
                    Err(TokenError::BadSignature) | Err(TokenError::Malformed(_))
                ),
                "{forged}: {result:?}"
            );
        }
    }
}

#[test]
fn forged_later_expiry_is_a_bad_signature_not_expired() {
    // An expired token whose expiry bytes were edited must say "bad signature", even when
    // checked after both expiries: the signature is checked first.
    let t = token();
    let forged = flip(&t, 21);
    assert_eq!(
        verify(&forged, EXPIRY + 10_000_000),
        Err(TokenError::BadSignature)
    );
    // And an unaltered expired token says expired.
    assert!(matches!(
        verify(&t, EXPIRY + 1),
        Err(TokenError::Expired { .. })
    ));
}

#[test]
fn wrong_key_is_a_bad_signature() {
    let other = SigningKey::from_secret("another-key-another-key-another-key").unwrap();
    assert_eq!(
        ApprovalToken::verify(&other, &token(), at(EXPIRY - 1)),
        Err(TokenError::BadSignature)
    );
    // Even when expired: no information beyond "bad signature".
    assert_eq!(
        ApprovalToken::verify(&other, &token(), at(EXPIRY + 1)),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn version_prefix_is_signed() {
    // A token whose body was signed as a different version cannot be relabelled `lr1.`.
    let fp = LockFingerprint::of(&the_lock());
    let mut body = Vec::new();
    body.extend_from_slice(&PROPOSAL);
    body.extend_from_slice(&(EXPIRY as u32).to_be_bytes());
    body.extend_from_slice(fp.as_bytes());
    let mut mac = HmacSha256::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(b"lr2.");
    mac.update(&body);
    body.extend_from_slice(&mac.finalize().into_bytes()[..16]);
    let relabelled = format!("lr1.{}", URL_SAFE_NO_PAD.encode(&body));
    assert_eq!(relabelled.len(), 58);
    assert_eq!(
        verify(&relabelled, EXPIRY - 1),
        Err(TokenError::BadSignature)
    );

    // And the same construction with `lr1.` is exactly what issue() produces.
    let mut body = Vec::new();
    body.extend_from_slice(&PROPOSAL);
    body.extend_from_slice(&(EXPIRY as u32).to_be_bytes());
    body.extend_from_slice(fp.as_bytes());
    let mut mac = HmacSha256::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(b"lr1.");
    mac.update(&body);
    body.extend_from_slice(&mac.finalize().into_bytes()[..16]);
    assert_eq!(format!("lr1.{}", URL_SAFE_NO_PAD.encode(&body)), token());
}

// --- token: malformed input -------------------------------------------------------------------

fn malformed(token: &str) -> String {
    match verify(token, EXPIRY - 1) {
        Err(TokenError::Malformed(reason)) => reason,
        other => panic!("{token:?}: expected Malformed, got {other:?}"),
    }
}

#[test]
fn truncated_or_extended_token_is_malformed() {
    let t = token();
    let reason = malformed(&t[..t.len() - 1]);
    assert!(
        reason.contains("53 characters after `lr1.`, expected 54"),
        "{reason}"
    );
    assert!(malformed(&t[..20]).contains("expected 54"));
    assert!(malformed(&format!("{t}A")).contains("55 characters"));
    assert!(malformed(&format!("{t}{t}")).contains("expected 54"));
    assert!(malformed("lr1.").contains("0 characters"));
    // Removing the signature entirely never passes (no zero-length MAC comparison).
    assert!(malformed(&t[..t.len() - 22]).contains("expected 54"));
}

#[test]
fn wrong_prefix_is_malformed_and_other_version_is_unknown() {
    let t = token();
    let body = &t[4..];
    let reason = malformed(&format!("xx1.{body}"));
    assert!(reason.contains("does not start with `lr1.`"), "{reason}");
    assert!(malformed(body).contains("does not start with `lr1.`"));
    assert!(malformed(&format!("LR1.{body}")).contains("does not start"));
    assert!(malformed(&format!("lr1{body}")).contains("does not start"));
    assert!(malformed("hello").contains("does not start"));

    for other in [
        format!("lr2.{body}"),
        format!("lr10.{body}"),
        "lr0.x".to_owned(),
    ] {
        assert_eq!(
            verify(&other, EXPIRY - 1),
            Err(TokenError::UnknownVersion),
            "{other}"
        );
    }
    let text = TokenError::UnknownVersion.to_string();
    assert!(text.contains("`lr1.`"), "{text}");
}

#[test]
fn non_base64url_characters_are_malformed() {
    let t = token();
    for (i, bad) in [
        (10, '+'),
        (10, '/'),
        (10, '='),
        (10, '.'),
        (10, 'é'),
        (10, ' '),
    ] {
        let mut chars: Vec<char> = t.chars().collect();
        chars[i] = bad;
        let s: String = chars.into_iter().collect();
        let reason = malformed(&s);
        assert!(
            reason.contains("not a base64url character"),
            "{bad:?}: {reason}"
        );
    }
    // Padding appended.
    assert!(malformed(&format!("{t}==")).contains("56 characters"));
}

#[test]
fn empty_token_is_malformed() {
    assert!(malformed("").contains("empty"));
    assert!(malformed("  \n ").contains("empty"));
    assert!(malformed("\"\"").contains("empty"));
}

#[test]
fn surrounding_whitespace_and_quotes_are_tolerated() {
    let t = token();
    for decorated in [
        format!(" {t}"),
        format!("{t}\n"),
        format!("\t{t} \r\n"),
        format!("\"{t}\""),
        format!("'{t}'"),
        format!("`{t}`"),
        format!(" \"{t}\" \n"),
        format!("\"'{t}'\""),
        format!("\" {t} \""),
    ] {
        assert!(verify(&decorated, EXPIRY - 1).is_ok(), "{decorated:?}");
        assert_eq!(strip_token_decoration(&decorated), t);
    }
}

#[test]
fn anything_else_around_the_token_is_refused() {
    let t = token();
    for decorated in [
        format!("\"{t}'"), // unmatched quotes
        format!("\"{t}"),  // one quote
        format!("<{t}>"),  // brackets
        format!("{t}."),   // trailing punctuation
        format!("token={t}"),
        format!("{t} {t}"),
        format!("approve {t}"), // a message form, not a token
    ] {
        assert!(verify(&decorated, EXPIRY - 1).is_err(), "{decorated:?}");
    }
}

#[test]
fn token_errors_never_quote_the_token() {
    let t = token();
    let body = &t[4..];
    for bad in [
        t[..30].to_owned(),
        format!("xx1.{body}"),
        flip(&t, 30),
        format!("{t}=="),
    ] {
        let text = verify(&bad, EXPIRY - 1).unwrap_err().to_string();
        assert!(!text.contains(&bad[4..20]), "{text}");
    }
}

// --- messages ---------------------------------------------------------------------------------

fn parse(message: &str) -> ParsedApproval {
    ApprovalMessage::parse(message).unwrap_or_else(|e| panic!("{message:?}: {e}"))
}

fn parse_err(message: &str) -> ApprovalMessageError {
    match ApprovalMessage::parse(message) {
        Err(e) => e,
        Ok(parsed) => panic!("{message:?}: expected an error, got {parsed:?}"),
    }
}

fn approve(token: &str, approver: Option<&str>, reason: Option<&str>) -> ApprovalMessage {
    ApprovalMessage::Approve {
        token: token.into(),
        approver: approver.map(Into::into),
        reason: reason.map(Into::into),
    }
}

#[test]
fn bare_token_is_a_chat_button_approval() {
    let t = token();
    for message in [
        t.clone(),
        format!("{t}\n"),
        format!("\"{t}\""),
        format!("  '{t}'  "),
    ] {
        assert_eq!(
            parse(&message),
            ParsedApproval {
                message: approve(&t, None, None),
                source: ApprovalSource::ChatButton,
                slack: None,
            },
            "{message:?}"
        );
    }
    // An unrecognisable single word is passed on as a token; verification says what is wrong.
    let parsed = parse("garbage");
    assert_eq!(parsed.message.token(), "garbage");
    assert!(ApprovalToken::verify(&key(), parsed.message.token(), at(0)).is_err());
}

#[test]
fn json_token_approver_reason_is_an_approval() {
    let t = token();
    let parsed = parse(&format!(
        r#"{{"token": "{t}", "approver": "ana@example.com", "reason": "CI runner died mid-apply"}}"#
    ));
    assert_eq!(
        parsed,
        ParsedApproval {
            message: approve(
                &t,
                Some("ana@example.com"),
                Some("CI runner died mid-apply")
            ),
            source: ApprovalSource::Json,
            slack: None,
        }
    );
    assert_eq!(parsed.message.action(), "approve");
    assert_eq!(parsed.message.approver(), Some("ana@example.com"));
    assert_eq!(parsed.message.reason(), Some("CI runner died mid-apply"));

    // Token only; blank approver and reason become None; nulls are fine.
    assert_eq!(
        parse(&format!(r#"{{"token":"{t}"}}"#)).message,
        approve(&t, None, None)
    );
    assert_eq!(
        parse(&format!(
            r#"{{"token":" {t} ","approver":"  ","reason":null}}"#
        ))
        .message,
        approve(&t, None, None)
    );
    // Surrounding whitespace around the JSON.
    assert_eq!(
        parse(&format!("\n  {{\"token\":\"{t}\"}}  \n")).message,
        approve(&t, None, None)
    );
}

#[test]
fn json_actions() {
    let t = token();
    assert_eq!(
        parse(&format!(
            r#"{{"action":"approve","token":"{t}","approver":"ana"}}"#
        ))
        .message,
        approve(&t, Some("ana"), None)
    );
    assert_eq!(
        parse(&format!(
            r#"{{"action":"DENY","token":"{t}","approver":"bo","reason":"that apply is mine"}}"#
        )),
        ParsedApproval {
            message: ApprovalMessage::Deny {
                token: t.clone(),
                approver: Some("bo".into()),
                reason: Some("that apply is mine".into()),
            },
            source: ApprovalSource::Json,
            slack: None,
        }
    );
    let snooze = parse(&format!(
        r#"{{"action":"snooze","token":"{t}","for":"2h","approver":"bo","reason":"long import"}}"#
    ))
    .message;
    assert_eq!(
        snooze,
        ApprovalMessage::Snooze {
            token: t.clone(),
            duration: Duration::from_secs(7200),
            approver: Some("bo".into()),
            reason: Some("long import".into()),
        }
    );
    assert_eq!(snooze.action(), "snooze");
    assert_eq!(snooze.token(), t);
}

#[test]
fn text_forms() {
    let t = token();
    assert_eq!(
        parse(&format!("approve {t}")),
        ParsedApproval {
            message: approve(&t, None, None),
            source: ApprovalSource::Text,
            slack: None,
        }
    );
    assert_eq!(
        parse(&format!("Approve   {t}  CI runner died")).message,
        approve(&t, None, Some("CI runner died"))
    );
    assert_eq!(
        parse(&format!("deny {t}")).message,
        ApprovalMessage::Deny {
            token: t.clone(),
            approver: None,
            reason: None,
        }
    );
    assert_eq!(
        parse(&format!("deny \"{t}\" that apply is mine")).message,
        ApprovalMessage::Deny {
            token: t.clone(),
            approver: None,
            reason: Some("that apply is mine".into()),
        }
    );
    assert_eq!(
        parse(&format!("snooze {t} 1h30m")),
        ParsedApproval {
            message: ApprovalMessage::Snooze {
                token: t.clone(),
                duration: Duration::from_secs(5400),
                approver: None,
                reason: None,
            },
            source: ApprovalSource::Text,
            slack: None,
        }
    );
    assert_eq!(
        parse(&format!("SNOOZE {t} 7d big migration")).message,
        ApprovalMessage::Snooze {
            token: t.clone(),
            duration: MAX_SNOOZE,
            approver: None,
            reason: Some("big migration".into()),
        }
    );
}

#[test]
fn empty_message() {
    for empty in ["", "   ", "\n\t"] {
        assert_eq!(parse_err(empty), ApprovalMessageError::Empty);
    }
    assert!(ApprovalMessageError::Empty.to_string().contains("empty"));
}

#[test]
fn oversized_message_is_refused_before_parsing_and_not_quoted() {
    let t = token();
    // Exactly 4 KiB is accepted (the padding is whitespace around a bare token).
    let at_limit = format!("{t}{}", " ".repeat(MAX_MESSAGE_BYTES - t.len()));
    assert_eq!(at_limit.len(), 4096);
    assert!(ApprovalMessage::parse(&at_limit).is_ok());

    let huge = format!(r#"{{"token":"{t}","reason":"{}"}}"#, "x".repeat(5000));
    let err = parse_err(&huge);
    assert_eq!(
        err,
        ApprovalMessageError::TooLarge {
            size: huge.len(),
            max: 4096
        }
    );
    let text = err.to_string();
    assert!(text.contains("4096"), "{text}");
    assert!(!text.contains("xxxx") && !text.contains(&t), "{text}");
    // One byte over, even if otherwise garbage that would fail differently.
    assert!(matches!(
        parse_err(&"{".repeat(4097)),
        ApprovalMessageError::TooLarge { size: 4097, .. }
    ));
}

#[test]
fn unknown_action_is_named_with_the_valid_ones() {
    let t = token();
    let err = parse_err(&format!("unlock {t}"));
    assert_eq!(
        err,
        ApprovalMessageError::UnknownAction {
            action: "unlock".into()
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("\"unlock\"") && text.contains("approve, deny, snooze"),
        "{text}"
    );

    let err = parse_err(&format!(r#"{{"action":"release","token":"{t}"}}"#));
    assert!(err.to_string().contains("\"release\""), "{err}");
    assert!(err.to_string().contains("approve, deny, snooze"), "{err}");

    // A long bogus action is cut in the message.
    let long = "a".repeat(500);
    let text = parse_err(&format!("{long} {t}")).to_string();
    assert!(text.len() < 250 && text.contains('…'), "{text}");
}

#[test]
fn missing_token() {
    for message in [
        r#"{"approver":"ana"}"#,
        r#"{"token":""}"#,
        r#"{"token":"  "}"#,
        r#"{"token":null,"action":"deny"}"#,
        "{}",
    ] {
        assert!(
            matches!(
                parse_err(message),
                ApprovalMessageError::MissingToken { .. }
            ),
            "{message}"
        );
    }
    for (message, action) in [
        ("approve", "approve"),
        ("deny", "deny"),
        ("snooze", "snooze"),
        ("DENY  ", "deny"),
    ] {
        let err = parse_err(message);
        assert_eq!(
            err,
            ApprovalMessageError::MissingToken { action },
            "{message}"
        );
        assert!(
            err.to_string().contains(&format!("`{action} <token>`")),
            "{err}"
        );
    }
}

#[test]
fn unknown_json_fields_and_bad_json_are_refused() {
    let t = token();
    let err = parse_err(&format!(r#"{{"token":"{t}","aprover":"ana"}}"#));
    let text = err.to_string();
    assert!(
        matches!(err, ApprovalMessageError::InvalidJson(_)),
        "{text}"
    );
    assert!(text.contains("unknown field `aprover`"), "{text}");

    for bad in [
        r#"{"token": 12}"#,
        r#"{"token": "x""#,
        "{not json",
        r#"{"token":"a","token":"b"}"#,
    ] {
        assert!(
            matches!(parse_err(bad), ApprovalMessageError::InvalidJson(_)),
            "{bad}"
        );
    }
    // The serde message is cut, so a long field name is not echoed whole.
    let long_field = "f".repeat(300);
    let text = parse_err(&format!(r#"{{"{long_field}":1}}"#)).to_string();
    assert!(!text.contains(&long_field), "{text}");
}

#[test]
fn snooze_duration_errors() {
    let t = token();
    // Bad form: says the expected form.
    for bad in [
        format!("snooze {t} soon"),
        format!("snooze {t} 4"),
        format!(r#"{{"action":"snooze","token":"{t}","for":"2 hours"}}"#),
    ] {
        let err = parse_err(&bad);
        assert!(
            matches!(err, ApprovalMessageError::BadSnoozeDuration { .. }),
            "{bad}: {err:?}"
        );
        assert!(err.to_string().contains("`90m`"), "{err}");
    }
    // Zero.
    let err = parse_err(&format!("snooze {t} 0s"));
    assert!(err.to_string().contains("longer than zero"), "{err}");

    // Missing.
    assert_eq!(
        parse_err(&format!("snooze {t}")),
        ApprovalMessageError::MissingSnoozeDuration
    );
    let err = parse_err(&format!(r#"{{"action":"snooze","token":"{t}"}}"#));
    assert_eq!(err, ApprovalMessageError::MissingSnoozeDuration);
    assert!(err.to_string().contains("`2h`"), "{err}");

    // Over the cap.
    let err = parse_err(&format!("snooze {t} 7d1s"));
    assert_eq!(
        err,
        ApprovalMessageError::SnoozeTooLong {
            requested: Duration::from_secs(7 * 86_400 + 1),
            max: MAX_SNOOZE
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("7d maximum") && text.contains("at most 7d"),
        "{text}"
    );
    assert!(matches!(
        parse_err(&format!(
            r#"{{"action":"snooze","token":"{t}","for":"30d"}}"#
        )),
        ApprovalMessageError::SnoozeTooLong { .. }
    ));
    // A long bogus duration is not echoed whole.
    let long = "9".repeat(400);
    let text = parse_err(&format!("snooze {t} {long}")).to_string();
    assert!(!text.contains(&long), "{text}");
}

#[test]
fn duration_is_refused_on_approve_and_deny() {
    let t = token();
    for (action, name) in [("approve", "approve"), ("deny", "deny")] {
        let err = parse_err(&format!(
            r#"{{"action":"{action}","token":"{t}","for":"2h"}}"#
        ));
        assert_eq!(
            err,
            ApprovalMessageError::DurationWithoutSnooze { action: name }
        );
        assert!(err.to_string().contains("snooze"), "{err}");
    }
    // No action but a duration: not silently an approval.
    assert!(matches!(
        parse_err(&format!(r#"{{"token":"{t}","for":"2h"}}"#)),
        ApprovalMessageError::DurationWithoutSnooze { action: "approve" }
    ));
}

// --- approver allow-list ----------------------------------------------------------------------

#[test]
fn empty_allow_list_lets_anyone_approve() {
    assert_eq!(approver_allowed(None, &[]), Ok(()));
    assert_eq!(approver_allowed(Some("anyone"), &[]), Ok(()));
}

#[test]
fn allow_list_needs_a_named_exact_match() {
    let list = vec!["ana@example.com".to_owned(), "bo@example.com".to_owned()];
    assert_eq!(approver_allowed(Some("ana@example.com"), &list), Ok(()));
    assert_eq!(approver_allowed(Some("bo@example.com"), &list), Ok(()));

    let err = approver_allowed(None, &list).unwrap_err();
    assert_eq!(err, ApproverError::Missing);
    assert!(err.to_string().contains("names no approver"), "{err}");

    for not_allowed in [
        "Ana@example.com",
        "ana@EXAMPLE.com",
        "ana",
        "ana@example.com ",
        "eve@example.com",
    ] {
        let err = approver_allowed(Some(not_allowed), &list).unwrap_err();
        assert!(
            matches!(err, ApproverError::NotAllowed { .. }),
            "{not_allowed}"
        );
        assert!(err.to_string().contains("exactly"), "{err}");
    }
    let long = "e".repeat(300);
    let text = approver_allowed(Some(&long), &list)
        .unwrap_err()
        .to_string();
    assert!(!text.contains(&long), "{text}");
}

// --- source -----------------------------------------------------------------------------------

#[test]
fn approval_source_names() {
    for (source, name) in [
        (ApprovalSource::ChatButton, "chat-button"),
        (ApprovalSource::Json, "json"),
        (ApprovalSource::Text, "text"),
        (ApprovalSource::AutoExpire, "auto-expire"),
    ] {
        assert_eq!(source.as_str(), name);
        assert_eq!(source.to_string(), name);
        assert_eq!(
            serde_json::to_string(&source).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<ApprovalSource>(&format!("\"{name}\"")).unwrap(),
            source
        );
        assert!(!source.describe().is_empty());
    }
}

// --- end to end (pure part) -----------------------------------------------------------------

#[test]
fn message_token_verifies_and_binds_the_proposed_lock() {
    let t = token();
    let parsed = parse(&format!(r#"{{"token":"{t}","approver":"ana"}}"#));
    let verified = ApprovalToken::verify(&key(), parsed.message.token(), at(EXPIRY - 60)).unwrap();
    assert_eq!(verified.proposal_id, encode_proposal_id(&PROPOSAL));
    assert!(verified.fingerprint.matches(&the_lock()));
    let retaken = lock("new-id", &INFO.replace("f3c2a4d8", "00000000"));
    assert!(!verified.fingerprint.matches(&retaken));
}

#[test]
fn proposal_ids_decode_back_to_their_bytes() {
    let text = encode_proposal_id(&PROPOSAL);
    assert_eq!(decode_proposal_id(&text), Some(PROPOSAL));
    assert_eq!(decode_proposal_id("short"), None);
    assert_eq!(decode_proposal_id("not base64 at all!"), None);
    assert_eq!(decode_proposal_id(&format!("{text}AA")), None);
}

/// Issue 11 item 9: a token binds every artefact of its proposal, not only the first.
#[test]
fn a_proposal_fingerprint_binds_every_artefact_in_order() {
    let item = the_lock();
    let file = LockRecord {
        kind: LockKind::TerraformS3LockFile,
        location: LockLocation::S3 {
            bucket: "acme-tfstate".into(),
            key: "env:/prod/network/terraform.tfstate.tflock".into(),
        },
        precondition: DeletePrecondition::ETagMatches("\"e1\"".into()),
        ..the_lock()
    };
    let both = [item.clone(), file.clone()];
    let fingerprint = LockFingerprint::of_all(&both);
    assert!(fingerprint.matches_all(&both));
    // One artefact alone: the artefact's own fingerprint, as tokens always had.
    assert_eq!(
        LockFingerprint::of_all(std::slice::from_ref(&item)),
        LockFingerprint::of(&item)
    );
    // The first artefact alone, another second artefact, another order, an extra one, none.
    let other_file = LockRecord {
        location: LockLocation::S3 {
            bucket: "acme-tfstate".into(),
            key: "env:/dev/network/terraform.tfstate.tflock".into(),
        },
        ..file.clone()
    };
    for changed in [
        vec![item.clone()],
        vec![item.clone(), other_file],
        vec![file.clone(), item.clone()],
        vec![item.clone(), file.clone(), file.clone()],
        vec![],
    ] {
        assert!(!fingerprint.matches_all(&changed), "{changed:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// One wire format: what the CLI publishes is what force-unlock parses
// ---------------------------------------------------------------------------------------------

#[test]
fn approval_requests_round_trip_through_the_parser() {
    let token = ApprovalToken::issue(
        &key(),
        PROPOSAL,
        LockFingerprint::from_bytes([1; 8]),
        at(EXPIRY),
    );
    let cases = [
        (
            ApprovalRequest::new(
                ApprovalAction::Approve,
                &token,
                None,
                Some(" ana "),
                Some("stuck"),
            ),
            ApprovalMessage::Approve {
                token: token.clone(),
                approver: Some("ana".into()),
                reason: Some("stuck".into()),
            },
        ),
        (
            ApprovalRequest::new(ApprovalAction::Deny, &token, None, None, Some("  ")),
            ApprovalMessage::Deny {
                token: token.clone(),
                approver: None,
                reason: None,
            },
        ),
        (
            ApprovalRequest::new(ApprovalAction::Snooze, &token, Some(" 1h30m "), None, None),
            ApprovalMessage::Snooze {
                token: token.clone(),
                duration: Duration::from_secs(5400),
                approver: None,
                reason: None,
            },
        ),
    ];
    for (request, expected) in cases {
        let text = request.to_json();
        let parsed = ApprovalMessage::parse(&text).unwrap();
        assert_eq!(parsed.message, expected, "{text}");
        assert_eq!(parsed.source, ApprovalSource::Json);
        assert_eq!(parsed.message.kind(), expected.kind());
        // Absent fields are left out of the message, not sent as null.
        assert!(!text.contains("null"), "{text}");
    }
    // The wire type is the parser's: an unknown field is refused.
    let typo = r#"{"action":"deny","token":"x","aprover":"ana"}"#;
    assert!(matches!(
        ApprovalMessage::parse(typo),
        Err(ApprovalMessageError::InvalidJson(_))
    ));
}

#[test]
fn unverified_decoding_reads_what_was_issued_and_refuses_what_verify_refuses() {
    let fingerprint = LockFingerprint::from_bytes([9; 8]);
    let token = ApprovalToken::issue(&key(), PROPOSAL, fingerprint, at(EXPIRY));
    let decoded = ApprovalToken::decode_unverified(&format!(" '{token}' ")).unwrap();
    assert_eq!(decoded.proposal_id, PROPOSAL);
    assert_eq!(decoded.fingerprint, fingerprint);
    assert_eq!(decoded.expires_at, at(EXPIRY));
    // A token signed with another key still decodes (nothing is trusted), but does not verify.
    let other = SigningKey::from_secret(&"z".repeat(40)).unwrap();
    let forged = ApprovalToken::issue(&other, PROPOSAL, fingerprint, at(EXPIRY));
    assert!(ApprovalToken::decode_unverified(&forged).is_ok());
    assert_eq!(
        ApprovalToken::verify(&key(), &forged, at(EXPIRY - 1)),
        Err(TokenError::BadSignature)
    );
    for (bad, form) in [
        ("", TokenFormError::Empty),
        (
            "lr2.abc",
            TokenFormError::NoPrefix {
                other_version: true,
            },
        ),
        (
            "xyz",
            TokenFormError::NoPrefix {
                other_version: false,
            },
        ),
        (&token[..40], TokenFormError::Length { chars: 36 }),
        (
            &format!("{}!", &token[..57]),
            TokenFormError::NotBase64Character('!'),
        ),
    ] {
        assert_eq!(
            ApprovalToken::decode_unverified(bad),
            Err(form.clone()),
            "{bad:?}"
        );
        assert_eq!(
            ApprovalToken::verify(&key(), bad, at(0)),
            Err(TokenError::from(form)),
            "{bad:?}"
        );
    }
}

// --- Slack-verified approvals -----------------------------------------------------------------

const ATTESTATION_SECRET: &str = "slack-attestation-key-for-tests-only-0123456789";

fn attestation_key() -> SigningKey {
    SigningKey::from_secret(ATTESTATION_SECRET).unwrap()
}

fn ana() -> SlackIdentity {
    SlackIdentity::new("T0123ABCD", "U0456EFGH").unwrap()
}

fn slack_message(action: ApprovalAction, duration: Option<&str>) -> String {
    ApprovalRequest::slack_verified(
        &attestation_key(),
        action,
        &token(),
        duration,
        &ana(),
        at(EXPIRY - 600),
    )
    .to_json()
}

fn verified(message: &str) -> Result<ParsedApproval, SlackClaimError> {
    let mut parsed = parse(message);
    parsed.verify_slack(Some(&attestation_key()))?;
    Ok(parsed)
}

#[test]
fn a_slack_verified_approval_round_trips_and_names_the_verified_user() {
    let message = slack_message(ApprovalAction::Approve, None);
    let json: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert!(json.get("approver").is_none(), "{message}");
    assert_eq!(json["slack"]["team"], "T0123ABCD");
    assert_eq!(json["slack"]["user"], "U0456EFGH");
    assert_eq!(json["slack"]["at"], EXPIRY - 600);
    assert_eq!(json["slack"]["sig"].as_str().unwrap().len(), 64);

    // Parsed but not yet verified: no approver, plain JSON source, no identity.
    let parsed = parse(&message);
    assert_eq!(parsed.source, ApprovalSource::Json);
    assert_eq!(parsed.message.approver(), None);
    let claim = parsed.slack.as_ref().unwrap();
    assert_eq!(claim.verified_identity(), None);
    assert_eq!(claim.at(), at(EXPIRY - 600));

    let parsed = verified(&message).unwrap();
    assert_eq!(parsed.source, ApprovalSource::SlackVerified);
    assert_eq!(parsed.source.as_str(), "slack-verified");
    assert_eq!(parsed.message.approver(), Some("slack:T0123ABCD/U0456EFGH"));
    assert_eq!(
        parsed.slack.as_ref().unwrap().verified_identity(),
        Some(&ana())
    );
    assert_eq!(parsed.message.token(), token());

    let snooze = verified(&slack_message(ApprovalAction::Snooze, Some("2h"))).unwrap();
    assert_eq!(snooze.message.kind(), ApprovalAction::Snooze);
    let deny = verified(&slack_message(ApprovalAction::Deny, None)).unwrap();
    assert_eq!(deny.message.kind(), ApprovalAction::Deny);
}

/// Whoever can publish to the approvals topic but does not hold the key cannot make a verified
/// approval: not by inventing one, nor by editing a real one's token, action, duration, reason,
/// user, team or time.
#[test]
fn a_forged_or_altered_slack_attestation_does_not_verify() {
    let real: serde_json::Value =
        serde_json::from_str(&slack_message(ApprovalAction::Deny, None)).unwrap();
    let other_token = ApprovalToken::issue(
        &key(),
        [9; 12],
        LockFingerprint::of(&the_lock()),
        at(EXPIRY),
    );
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("action", Box::new(|m| m["action"] = "approve".into())),
        (
            "token",
            Box::new(move |m| m["token"] = other_token.clone().into()),
        ),
        ("reason", Box::new(|m| m["reason"] = "mine".into())),
        (
            "user",
            Box::new(|m| m["slack"]["user"] = "U0EVE0000".into()),
        ),
        (
            "team",
            Box::new(|m| m["slack"]["team"] = "T0EVE0000".into()),
        ),
        ("at", Box::new(|m| m["slack"]["at"] = (EXPIRY - 599).into())),
        (
            "made-up signature",
            Box::new(|m| m["slack"]["sig"] = "ab".repeat(32).into()),
        ),
    ];
    for (what, edit) in edits {
        let mut message = real.clone();
        edit(&mut message);
        assert_eq!(
            verified(&message.to_string()).unwrap_err(),
            SlackClaimError::BadSignature,
            "{what}"
        );
    }
    // A snooze's duration is covered too.
    let mut snooze: serde_json::Value =
        serde_json::from_str(&slack_message(ApprovalAction::Snooze, Some("2h"))).unwrap();
    snooze["for"] = "7d".into();
    assert_eq!(
        verified(&snooze.to_string()).unwrap_err(),
        SlackClaimError::BadSignature
    );
    // Signed with another key (e.g. the approval-token key, or another stack's).
    let mut parsed = parse(&slack_message(ApprovalAction::Approve, None));
    assert_eq!(
        parsed.verify_slack(Some(&key())).unwrap_err(),
        SlackClaimError::BadSignature
    );
    assert_eq!(parsed.source, ApprovalSource::Json);
    assert_eq!(parsed.message.approver(), None);
    // No key configured: refused, never trusted unchecked.
    assert_eq!(
        parsed.verify_slack(None).unwrap_err(),
        SlackClaimError::NoKey
    );
    // A message with no claim needs no key.
    let mut plain = parse(&token());
    assert_eq!(plain.verify_slack(None), Ok(()));
    assert_eq!(plain.source, ApprovalSource::ChatButton);
}

#[test]
fn malformed_slack_attestations_are_refused_by_name() {
    let t = token();
    for (slack, expect) in [
        (r#"{"team":"T1","user":"u1","at":1,"sig":""}"#, "user ID"),
        (r#"{"team":"T 1","user":"U1","at":1,"sig":""}"#, "team ID"),
        (r#"{"team":"T1","user":"U1","at":1,"sig":"xyz"}"#, "64 hex"),
        (
            r#"{"team":"T1","user":"U1","at":99999999999999,"sig":""}"#,
            "out of range",
        ),
    ] {
        let err = parse_err(&format!(r#"{{"token":"{t}","slack":{slack}}}"#));
        assert!(
            matches!(err, ApprovalMessageError::BadSlackAttestation(_)),
            "{slack}: {err}"
        );
        assert!(err.to_string().contains(expect), "{err}");
    }
    // Unknown members are refused, like everywhere in the message.
    let err = parse_err(&format!(
        r#"{{"token":"{t}","slack":{{"team":"T1","user":"U1","at":1,"sig":"","verified":true}}}}"#
    ));
    assert!(matches!(err, ApprovalMessageError::InvalidJson(_)), "{err}");
    // A self-asserted approver beside a Slack claim is refused, not silently dropped.
    let mut both: serde_json::Value =
        serde_json::from_str(&slack_message(ApprovalAction::Approve, None)).unwrap();
    both["approver"] = "ana".into();
    assert_eq!(
        parse_err(&both.to_string()),
        ApprovalMessageError::ApproverWithSlack
    );
}

#[test]
fn slack_allow_list_entries_match_verified_identities_only() {
    let list = vec!["ana@example.com".to_owned(), "slack:U0456EFGH".to_owned()];
    let parsed = verified(&slack_message(ApprovalAction::Approve, None)).unwrap();
    assert_eq!(parsed.approver_allowed(&list), Ok(()));
    assert_eq!(parsed.approver_allowed(&[]), Ok(()));
    // Pinned to a workspace.
    let pinned = vec!["slack:T0123ABCD/U0456EFGH".to_owned()];
    assert_eq!(parsed.approver_allowed(&pinned), Ok(()));
    for other in [
        "slack:T0EVE0000/U0456EFGH",
        "slack:U0EVE0000",
        "slack:u0456efgh",
        "U0456EFGH",
        "slack:T0123ABCD/U0456EFGH ",
    ] {
        let err = parsed.approver_allowed(&[other.to_owned()]).unwrap_err();
        assert!(
            matches!(&err, ApproverError::SlackNotAllowed { approver, .. }
                if approver == "slack:T0123ABCD/U0456EFGH"),
            "{other}: {err:?}"
        );
    }
    // The same claim unverified matches nothing.
    let unverified = parse(&slack_message(ApprovalAction::Approve, None));
    assert_eq!(
        unverified.approver_allowed(&list),
        Err(ApproverError::Missing)
    );
    // A self-asserted name shaped like a Slack entry never matches one.
    let t = token();
    for name in ["slack:U0456EFGH", "slack:T0123ABCD/U0456EFGH"] {
        let asserted = parse(&format!(r#"{{"token":"{t}","approver":"{name}"}}"#));
        let allow = vec![name.to_owned()];
        assert!(
            matches!(
                asserted.approver_allowed(&allow),
                Err(ApproverError::SelfAssertedSlack { .. })
            ),
            "{name}"
        );
        assert!(approver_allowed(Some(name), &allow).is_err(), "{name}");
    }
    // Names still match names.
    let named = parse(&format!(
        r#"{{"token":"{t}","approver":"ana@example.com"}}"#
    ));
    assert_eq!(named.approver_allowed(&list), Ok(()));
}

// --- Slack user groups --------------------------------------------------------------------------

fn group_message(action: ApprovalAction, groups: &SlackGroups) -> String {
    ApprovalRequest::slack_verified_with_groups(
        &attestation_key(),
        action,
        &token(),
        None,
        &ana(),
        Some(groups),
        at(EXPIRY - 600),
    )
    .to_json()
}

fn groups(member_of: &[&str], unchecked: &[&str]) -> SlackGroups {
    SlackGroups {
        member_of: member_of.iter().map(|g| (*g).to_owned()).collect(),
        unchecked: unchecked.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn list(entries: &[&str]) -> Vec<String> {
    entries.iter().map(|e| (*e).to_owned()).collect()
}

#[test]
fn group_ids_and_the_groups_an_endpoint_checks() {
    for id in ["S0604QSJC", "S1", "SABC123"] {
        assert!(is_slack_group_id(id), "{id}");
    }
    for id in [
        "S",
        "U0456EFGH",
        "W123A4BC5",
        "s0604qsjc",
        "S0604 QSJC",
        &"S".repeat(33),
    ] {
        assert!(!is_slack_group_id(id), "{id}");
    }
    let allow = list(&[
        "ops@example.com",
        "slack:U0456EFGH",
        "slack:S0OPS0001",
        "slack:T0123ABCD/S0SRE0001",
        "slack:T0OTHER00/S0DEV0001",
        "slack:S0OPS0001",
        "slack:T0123ABCD/U0456EFGH",
    ]);
    assert_eq!(
        slack_groups_to_check(&allow, "T0123ABCD"),
        vec!["S0OPS0001".to_owned(), "S0SRE0001".to_owned()]
    );
    assert_eq!(
        slack_groups_to_check(&allow, "T0OTHER00"),
        vec!["S0OPS0001".to_owned(), "S0DEV0001".to_owned()]
    );
    assert!(names_slack_groups(&allow));
    assert!(!names_slack_groups(&list(&[
        "slack:U0456EFGH",
        "S0OPS0001"
    ])));
    assert!(slack_groups_to_check(&list(&["S0OPS0001", "slack:U1"]), "T1").is_empty());
}

#[test]
fn an_attestation_with_groups_round_trips_and_binds_them() {
    let message = group_message(
        ApprovalAction::Approve,
        &groups(&["S0OPS0001"], &["S0SRE0001"]),
    );
    let json: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(json["slack"]["groups"], serde_json::json!(["S0OPS0001"]));
    assert_eq!(
        json["slack"]["groups_unchecked"],
        serde_json::json!(["S0SRE0001"])
    );
    // Unverified, it claims no group.
    let parsed = parse(&message);
    assert_eq!(parsed.slack.as_ref().unwrap().verified_groups(), None);
    let parsed = verified(&message).unwrap();
    assert_eq!(
        parsed.slack.as_ref().unwrap().verified_groups(),
        Some(&["S0OPS0001".to_owned()][..])
    );
    assert_eq!(parsed.message.approver(), Some("slack:T0123ABCD/U0456EFGH"));

    // No group found: an empty list, still the groups format.
    let none = group_message(ApprovalAction::Approve, &SlackGroups::default());
    let json: serde_json::Value = serde_json::from_str(&none).unwrap();
    assert_eq!(json["slack"]["groups"], serde_json::json!([]));
    let parsed = verified(&none).unwrap();
    assert_eq!(
        parsed.slack.as_ref().unwrap().verified_groups(),
        Some(&[][..])
    );
}

#[test]
fn an_attestation_from_before_groups_still_verifies_as_no_groups() {
    // The format without groups, as endpoints before user groups signed it.
    let old = slack_message(ApprovalAction::Approve, None);
    let json: serde_json::Value = serde_json::from_str(&old).unwrap();
    assert!(json["slack"].get("groups").is_none(), "{old}");
    assert!(json["slack"].get("groups_unchecked").is_none(), "{old}");
    let parsed = verified(&old).unwrap();
    assert_eq!(
        parsed.slack.as_ref().unwrap().verified_groups(),
        Some(&[][..])
    );
    // It matches user entries as before, and no group entry.
    assert_eq!(parsed.approver_allowed(&list(&["slack:U0456EFGH"])), Ok(()));
    let err = parsed
        .approver_allowed(&list(&["slack:S0OPS0001"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("records no user-group membership"), "{err}");
}

#[test]
fn forged_or_altered_groups_do_not_verify() {
    let message = group_message(ApprovalAction::Approve, &groups(&[], &["S0OPS0001"]));
    let original: serde_json::Value = serde_json::from_str(&message).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "a group added",
            Box::new(|m| m["slack"]["groups"] = serde_json::json!(["S0OPS0001"])),
        ),
        (
            "an unchecked group moved to member",
            Box::new(|m| {
                m["slack"]["groups"] = serde_json::json!(["S0OPS0001"]);
                m["slack"]["groups_unchecked"] = serde_json::json!([]);
            }),
        ),
        (
            "the group lists dropped (read as the old format)",
            Box::new(|m| {
                let slack = m["slack"].as_object_mut().unwrap();
                slack.remove("groups");
                slack.remove("groups_unchecked");
            }),
        ),
        (
            "the unchecked list dropped",
            Box::new(|m| {
                m["slack"]
                    .as_object_mut()
                    .unwrap()
                    .remove("groups_unchecked");
            }),
        ),
    ];
    for (what, edit) in edits {
        let mut forged = original.clone();
        edit(&mut forged);
        assert_eq!(
            verified(&forged.to_string()).unwrap_err(),
            SlackClaimError::BadSignature,
            "{what}"
        );
    }
    // Groups added to an attestation made without them.
    let mut old: serde_json::Value =
        serde_json::from_str(&slack_message(ApprovalAction::Approve, None)).unwrap();
    old["slack"]["groups"] = serde_json::json!(["S0OPS0001"]);
    assert_eq!(
        verified(&old.to_string()).unwrap_err(),
        SlackClaimError::BadSignature
    );
    // Groups signed with another key.
    let mut other = parse(&message);
    assert_eq!(
        other.verify_slack(Some(&key())).unwrap_err(),
        SlackClaimError::BadSignature
    );
    // Something that is not a group ID is refused by name before any signature check.
    let mut bad = original.clone();
    bad["slack"]["groups"] = serde_json::json!(["U0456EFGH"]);
    let err = parse_err(&bad.to_string());
    assert!(
        matches!(err, ApprovalMessageError::BadSlackAttestation(_))
            && err.to_string().contains("not a Slack user group ID"),
        "{err}"
    );
}

#[test]
fn a_group_entry_matches_members_at_press_time_only() {
    let member = verified(&group_message(
        ApprovalAction::Approve,
        &groups(&["S0OPS0001"], &[]),
    ))
    .unwrap();
    for allow in [
        list(&["slack:S0OPS0001"]),
        list(&["ops@example.com", "slack:T0123ABCD/S0OPS0001"]),
    ] {
        assert_eq!(member.approver_allowed(&allow), Ok(()), "{allow:?}");
    }
    // Another workspace's group of the same ID, or another group: not matched, each said why.
    let allow = list(&[
        "ops@example.com",
        "admin@example.com",
        "slack:T0OTHER00/S0OPS0001",
        "slack:S0SRE0001",
        "slack:U0EVE0000",
    ]);
    let err = member.approver_allowed(&allow).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ApproverError::SlackNotAllowed { .. }),
        "{text}"
    );
    for needle in [
        "slack:T0123ABCD/U0456EFGH",
        "slack:T0OTHER00/S0OPS0001 (a user group of another workspace)",
        "slack:S0SRE0001 (U0456EFGH was not a member when they pressed)",
        "slack:U0EVE0000 (names another Slack user or workspace)",
        "2 entries that are not Slack identities",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }

    // A lookup that failed: never membership, and the refusal says so.
    let cannot_tell = verified(&group_message(
        ApprovalAction::Approve,
        &groups(&[], &["S0OPS0001"]),
    ))
    .unwrap();
    let text = cannot_tell
        .approver_allowed(&list(&["slack:S0OPS0001"]))
        .unwrap_err()
        .to_string();
    assert!(text.contains("cannot tell"), "{text}");
    let one_other = cannot_tell
        .approver_allowed(&list(&["ops@example.com", "slack:S0OPS0001"]))
        .unwrap_err()
        .to_string();
    assert!(
        one_other.ends_with("; 1 entry that is not a Slack identity"),
        "{one_other}"
    );
    // …but a user entry naming them still does.
    assert_eq!(
        cannot_tell.approver_allowed(&list(&["slack:S0OPS0001", "slack:U0456EFGH"])),
        Ok(())
    );

    // Self-asserted: neither an approver named like the group nor an unverified claim matches.
    let t = token();
    let asserted = parse(&format!(
        r#"{{"token":"{t}","approver":"slack:S0OPS0001"}}"#
    ));
    let err = asserted
        .approver_allowed(&list(&["slack:S0OPS0001"]))
        .unwrap_err();
    assert!(
        matches!(err, ApproverError::SelfAssertedSlack { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Slack-verified"), "{err}");
    let unverified = parse(&group_message(
        ApprovalAction::Approve,
        &groups(&["S0OPS0001"], &[]),
    ));
    assert_eq!(
        unverified.approver_allowed(&list(&["slack:S0OPS0001"])),
        Err(ApproverError::Missing)
    );
}
