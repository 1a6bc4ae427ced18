//! Approvals: the signed token an alert carries, the messages that arrive on the approvals topic,
//! and how an approval came in.
//!
//! The reaper records a *proposal* in its ledger (keyed by a proposal id) holding the lock's full
//! identity and exact raw content, and puts an [`ApprovalToken`] in the alert. The token is only a
//! compact, signed, expiring pointer to that proposal plus a [`LockFingerprint`] binding it to the
//! exact lock. The force-unlock handler then checks, in this order: the token verifies
//! ([`ApprovalToken::verify`]) → the proposal exists in the ledger → the fingerprint of the
//! proposal's recorded lock equals the token's ([`LockFingerprint::matches`]) → single use
//! (a conditional ledger write). Only the pure parts live here; keys, `now` and ids are passed in.
//!
//! Token layout (58 ASCII characters, all in `[\x21-\x7F]`, so it fits a Chatbot variable and a
//! shell word without quoting):
//!
//! ```text
//! lr1.<base64url, no padding, of 40 bytes>
//!      proposal id (12) | expires_at, unix seconds, u32 big-endian (4) | fingerprint (8) | HMAC (16)
//! ```
//!
//! The HMAC-SHA256 (truncated to its first 16 bytes) covers the `lr1.` prefix and the 24 bytes
//! before it, so neither the version nor any field can be changed without the key.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{format_duration, parse_duration};
use crate::model::LockRecord;

type HmacSha256 = Hmac<Sha256>;

/// Longest text quoted back in an error, so an oversized or hostile message never ends up whole
/// in a log line or a chat notification.
const QUOTE_MAX: usize = 80;

/// `text` for an error message: at most [`QUOTE_MAX`] characters, with `…` when cut.
fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTE_MAX).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

// ---------------------------------------------------------------------------------------------
// Signing key
// ---------------------------------------------------------------------------------------------

/// The HMAC key approval tokens are signed with (from Secrets Manager, `APPROVAL_SECRET_ARN`).
/// Its `Debug` and `Display` print `SigningKey(redacted)`, so it cannot leak through a log line.
#[derive(Clone)]
pub struct SigningKey {
    /// The keyed HMAC state, ready to clone per use (keeps the key bytes out of the struct's API).
    mac: HmacSha256,
}

/// Why a signing key was refused. Never contains the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the approval signing key is {len} bytes long; at least {min} bytes are required \
         (generate it with Secrets Manager, e.g. a 64-character random string)"
    )]
    TooShort { len: usize, min: usize },
}

impl SigningKey {
    /// The minimum key length, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A key from a secret string, e.g. a Secrets Manager `SecretString`. Surrounding whitespace
    /// (a trailing newline from `echo` or a file) is trimmed, and the key is the UTF-8 bytes of the
    /// rest, which must be at least [`Self::MIN_LEN`] bytes long. Every function must build its
    /// key with this same constructor so that they agree byte for byte.
    pub fn from_secret(secret: &str) -> Result<SigningKey, KeyError> {
        Self::from_bytes(secret.trim().as_bytes())
    }

    /// A key from raw bytes (no trimming), at least [`Self::MIN_LEN`] bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<SigningKey, KeyError> {
        let too_short = KeyError::TooShort {
            len: bytes.len(),
            min: Self::MIN_LEN,
        };
        if bytes.len() < Self::MIN_LEN {
            return Err(too_short);
        }
        // HMAC accepts keys of any length, so this cannot fail; map it anyway rather than panic.
        let mac = HmacSha256::new_from_slice(bytes).map_err(|_| too_short)?;
        Ok(SigningKey { mac })
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

impl std::fmt::Display for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(redacted)")
    }
}

// ---------------------------------------------------------------------------------------------
// Lock fingerprint
// ---------------------------------------------------------------------------------------------

/// A short binding to one exact lock: the first [`LockFingerprint::LEN`] bytes of SHA-256 over the
/// location's display string, the lock ID and the raw lock content (each length-prefixed, under a
/// domain tag). A lock released and re-taken at the same path has a different ID or raw content,
/// hence a different fingerprint.
///
/// Serialized as lowercase hex (16 characters); `Display` prints the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockFingerprint([u8; LockFingerprint::LEN]);

impl LockFingerprint {
    /// Bytes kept from the SHA-256.
    pub const LEN: usize = 8;

    const DOMAIN: &'static [u8] = b"lockreaper lock fingerprint v1\0";

    /// The fingerprint of `lock`: location (as displayed), `lock_id` and `raw`.
    pub fn of(lock: &LockRecord) -> LockFingerprint {
        let mut hash = Sha256::new();
        hash.update(Self::DOMAIN);
        for field in [
            lock.location.to_string().as_bytes(),
            lock.lock_id.as_bytes(),
            lock.raw.as_bytes(),
        ] {
            hash.update((field.len() as u64).to_be_bytes());
            hash.update(field);
        }
        let digest = hash.finalize();
        let mut bytes = [0u8; Self::LEN];
        bytes.copy_from_slice(&digest[..Self::LEN]);
        LockFingerprint(bytes)
    }

    /// Whether `lock` is exactly the lock this fingerprint was taken of.
    pub fn matches(&self, lock: &LockRecord) -> bool {
        *self == LockFingerprint::of(lock)
    }

    const DOMAIN_ALL: &'static [u8] = b"lockreaper proposal fingerprint v1\0";

    /// The fingerprint of every artefact of one proposal, in order: an approval token binds them
    /// all, so a proposal whose artefacts were changed after the token was issued (one added,
    /// dropped or swapped in the ledger) no longer matches. A proposal of one artefact has that
    /// artefact's own fingerprint ([`LockFingerprint::of`]), as tokens always had.
    pub fn of_all(locks: &[LockRecord]) -> LockFingerprint {
        if let [only] = locks {
            return LockFingerprint::of(only);
        }
        let mut hash = Sha256::new();
        hash.update(Self::DOMAIN_ALL);
        hash.update((locks.len() as u64).to_be_bytes());
        for lock in locks {
            hash.update(LockFingerprint::of(lock).0);
        }
        let digest = hash.finalize();
        let mut bytes = [0u8; Self::LEN];
        bytes.copy_from_slice(&digest[..Self::LEN]);
        LockFingerprint(bytes)
    }

    /// Whether `locks` are exactly the artefacts this fingerprint was taken of, in order.
    pub fn matches_all(&self, locks: &[LockRecord]) -> bool {
        !locks.is_empty() && *self == LockFingerprint::of_all(locks)
    }

    pub fn from_bytes(bytes: [u8; Self::LEN]) -> LockFingerprint {
        LockFingerprint(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// Parses the 16-character hex form `Display` prints.
    pub fn from_hex(text: &str) -> Result<LockFingerprint, String> {
        let mut bytes = [0u8; Self::LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|e| {
            format!(
                "{:?} is not a lock fingerprint ({e}); expected {} hex characters",
                quote(text),
                Self::LEN * 2
            )
        })?;
        Ok(LockFingerprint(bytes))
    }
}

impl std::fmt::Display for LockFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for LockFingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for LockFingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        LockFingerprint::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Approval token
// ---------------------------------------------------------------------------------------------

/// Issues and verifies approval tokens (see the module docs for the layout).
pub struct ApprovalToken;

/// A token whose signature and expiry checked out. The caller still has to find the proposal,
/// compare fingerprints and mark it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedApproval {
    /// The proposal id as the ledger keys it: base64url (no padding) of the 12 bytes, 16 characters,
    /// exactly what [`encode_proposal_id`] returns.
    pub proposal_id: String,
    pub fingerprint: LockFingerprint,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was refused. Messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed approval token: {0}")]
    Malformed(String),
    #[error(
        "approval token has an unknown version; this lockreaper accepts `lr1.` tokens only \
         (was it issued by a different lockreaper version?)"
    )]
    UnknownVersion,
    #[error(
        "approval token has a bad signature: it was altered, forged or signed with a different key"
    )]
    BadSignature,
    #[error(
        "approval token expired at {}; approve from a newer alert",
        expired_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )]
    Expired { expired_at: DateTime<Utc> },
}

/// Bytes in a proposal id.
pub const PROPOSAL_ID_LEN: usize = 12;

/// The ledger key form of a proposal id: base64url without padding, 16 characters.
pub fn encode_proposal_id(id: &[u8; PROPOSAL_ID_LEN]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

/// The bytes of a proposal id in its ledger form ([`encode_proposal_id`]); `None` if `text` is not
/// one (so a token can be issued again for a proposal the ledger holds).
pub fn decode_proposal_id(text: &str) -> Option<[u8; PROPOSAL_ID_LEN]> {
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// Surrounding whitespace and matching quote pairs (`"…"`, `'…'`, `` `…` ``), as chat buttons,
/// shells and copy-paste add them, peeled off layer by layer. Nothing else is removed.
pub fn strip_token_decoration(text: &str) -> &str {
    let mut text = text.trim();
    loop {
        let bytes = text.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(&open), Some(&close))
                if bytes.len() >= 2 && open == close && matches!(open, b'"' | b'\'' | b'`') =>
            {
                text = text[1..text.len() - 1].trim();
            }
            _ => return text,
        }
    }
}

impl ApprovalToken {
    /// The version prefix.
    pub const PREFIX: &'static str = "lr1.";
    /// Bytes of HMAC-SHA256 kept.
    pub const SIGNATURE_LEN: usize = 16;
    const SIGNED_LEN: usize = PROPOSAL_ID_LEN + 4 + LockFingerprint::LEN;
    const BODY_LEN: usize = Self::SIGNED_LEN + Self::SIGNATURE_LEN;
    /// Base64url characters after the prefix (40 bytes → 54 characters, no padding).
    const BODY_CHARS: usize = (Self::BODY_LEN * 8).div_ceil(6);
    /// Total length of every token: 58 characters.
    pub const LEN: usize = Self::PREFIX.len() + Self::BODY_CHARS;

    /// A token for `proposal_id` (12 random bytes chosen by the caller), binding `fingerprint`,
    /// valid while `now < expires_at`. The expiry is stored in whole seconds as an unsigned 32-bit
    /// value: fractions are dropped, a time before 1970 becomes 1970 (already expired) and one
    /// after 2106-02-07 becomes that date.
    pub fn issue(
        key: &SigningKey,
        proposal_id: [u8; PROPOSAL_ID_LEN],
        fingerprint: LockFingerprint,
        expires_at: DateTime<Utc>,
    ) -> String {
        let expires = u32::try_from(expires_at.timestamp().max(0)).unwrap_or(u32::MAX);
        let mut body = Vec::with_capacity(Self::BODY_LEN);
        body.extend_from_slice(&proposal_id);
        body.extend_from_slice(&expires.to_be_bytes());
        body.extend_from_slice(fingerprint.as_bytes());
        let mut mac = key.mac();
        mac.update(Self::PREFIX.as_bytes());
        mac.update(&body);
        let tag = mac.finalize().into_bytes();
        body.extend_from_slice(&tag[..Self::SIGNATURE_LEN]);
        format!("{}{}", Self::PREFIX, URL_SAFE_NO_PAD.encode(&body))
    }

    /// Reads `token` (surrounding whitespace and quotes tolerated) **without** checking its
    /// signature: its form, and the proposal id, expiry and fingerprint it carries. For what a
    /// holder of no key can check (the CLI: a token the alert says expired, or a mistyped one);
    /// only [`ApprovalToken::verify`] makes any of it trustworthy.
    pub fn decode_unverified(token: &str) -> Result<UnverifiedToken, TokenFormError> {
        let token = strip_token_decoration(token);
        if token.is_empty() {
            return Err(TokenFormError::Empty);
        }
        let Some(encoded) = token.strip_prefix(Self::PREFIX) else {
            return Err(TokenFormError::NoPrefix {
                other_version: looks_like_other_version(token),
            });
        };
        let chars = encoded.chars().count();
        if chars != Self::BODY_CHARS {
            return Err(TokenFormError::Length { chars });
        }
        if let Some(bad) = encoded
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(TokenFormError::NotBase64Character(bad));
        }
        let body = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|e| TokenFormError::NotBase64(e.to_string()))?;
        let body: [u8; Self::BODY_LEN] = body
            .try_into()
            .map_err(|body: Vec<u8>| TokenFormError::BodyLength { bytes: body.len() })?;
        let mut signed = [0u8; Self::SIGNED_LEN];
        signed.copy_from_slice(&body[..Self::SIGNED_LEN]);
        let mut signature = [0u8; Self::SIGNATURE_LEN];
        signature.copy_from_slice(&body[Self::SIGNED_LEN..]);
        let mut proposal_id = [0u8; PROPOSAL_ID_LEN];
        proposal_id.copy_from_slice(&signed[..PROPOSAL_ID_LEN]);
        let mut expires = [0u8; 4];
        expires.copy_from_slice(&signed[PROPOSAL_ID_LEN..PROPOSAL_ID_LEN + 4]);
        let expires_at = DateTime::from_timestamp(i64::from(u32::from_be_bytes(expires)), 0)
            .ok_or(TokenFormError::ExpiryOutOfRange)?;
        let mut fingerprint = [0u8; LockFingerprint::LEN];
        fingerprint.copy_from_slice(&signed[PROPOSAL_ID_LEN + 4..]);
        Ok(UnverifiedToken {
            proposal_id,
            expires_at,
            fingerprint: LockFingerprint(fingerprint),
            signed,
            signature,
        })
    }

    /// Checks `token` (surrounding whitespace and quotes tolerated) against `key` at `now`: form,
    /// version, signature (constant-time) and only then expiry, so a forged token never learns
    /// more than "bad signature". A token is expired from its `expires_at` second on.
    pub fn verify(
        key: &SigningKey,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedApproval, TokenError> {
        let token = Self::decode_unverified(token).map_err(TokenError::from)?;
        let mut mac = key.mac();
        mac.update(Self::PREFIX.as_bytes());
        mac.update(&token.signed);
        // Constant-time comparison of the first SIGNATURE_LEN bytes of the tag (the length is
        // fixed by the token's form, so an empty signature can never pass).
        mac.verify_truncated_left(&token.signature)
            .map_err(|_| TokenError::BadSignature)?;
        if now >= token.expires_at {
            return Err(TokenError::Expired {
                expired_at: token.expires_at,
            });
        }
        Ok(VerifiedApproval {
            proposal_id: encode_proposal_id(&token.proposal_id),
            fingerprint: token.fingerprint,
            expires_at: token.expires_at,
        })
    }
}

/// What a token says, read without its signature checked ([`ApprovalToken::decode_unverified`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedToken {
    pub proposal_id: [u8; PROPOSAL_ID_LEN],
    pub expires_at: DateTime<Utc>,
    pub fingerprint: LockFingerprint,
    signed: [u8; ApprovalToken::SIGNED_LEN],
    signature: [u8; ApprovalToken::SIGNATURE_LEN],
}

/// What is wrong with a token's form (no key involved). Callers word it for their readers;
/// [`TokenError`] is force-unlock's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFormError {
    Empty,
    /// It does not start with `lr1.`; `other_version` when it starts with `lr<digits>.`.
    NoPrefix {
        other_version: bool,
    },
    /// `chars` characters after the prefix instead of the 54 of every token.
    Length {
        chars: usize,
    },
    NotBase64Character(char),
    NotBase64(String),
    BodyLength {
        bytes: usize,
    },
    ExpiryOutOfRange,
}

impl From<TokenFormError> for TokenError {
    fn from(e: TokenFormError) -> TokenError {
        let p = ApprovalToken::PREFIX;
        TokenError::Malformed(match e {
            TokenFormError::Empty => "the token is empty".into(),
            TokenFormError::NoPrefix {
                other_version: true,
            } => return TokenError::UnknownVersion,
            TokenFormError::NoPrefix {
                other_version: false,
            } => format!(
                "it does not start with `{p}` (a lockreaper approval token looks like `{p}` \
                 followed by {} characters)",
                ApprovalToken::BODY_CHARS
            ),
            TokenFormError::Length { chars } => format!(
                "it has {chars} characters after `{p}`, expected {} (truncated or pasted twice?)",
                ApprovalToken::BODY_CHARS
            ),
            TokenFormError::NotBase64Character(bad) => format!(
                "it contains {bad:?}, which is not a base64url character (A-Z, a-z, 0-9, -, _)"
            ),
            TokenFormError::NotBase64(e) => format!("it is not valid base64url ({e})"),
            TokenFormError::BodyLength { bytes } => format!(
                "it decodes to {bytes} bytes, expected {}",
                ApprovalToken::BODY_LEN
            ),
            TokenFormError::ExpiryOutOfRange => "its expiry is out of range".into(),
        })
    }
}

/// `lr<digits>.…` with a version other than ours.
fn looks_like_other_version(token: &str) -> bool {
    token
        .strip_prefix("lr")
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(version, _)| {
            !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())
        })
}

// ---------------------------------------------------------------------------------------------
// Messages on the approvals topic
// ---------------------------------------------------------------------------------------------

/// What someone asked for, parsed from an SNS `Message` on the approvals topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalMessage {
    /// Release the lock the token's proposal names.
    Approve {
        token: String,
        approver: Option<String>,
        reason: Option<String>,
    },
    /// Drop the proposal; leave the lock alone.
    Deny {
        token: String,
        approver: Option<String>,
        reason: Option<String>,
    },
    /// No alerts for the proposal's lock for `duration` (at most [`MAX_SNOOZE`]).
    Snooze {
        token: String,
        duration: Duration,
        approver: Option<String>,
        reason: Option<String>,
    },
}

/// A parsed message and the form it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedApproval {
    pub message: ApprovalMessage,
    pub source: ApprovalSource,
    /// The Slack identity the message claims to have been verified by the Slack endpoint, if it
    /// carries one. Unverified until [`ParsedApproval::verify_slack`] checks its signature; until
    /// then it names no approver and matches no allow-list entry.
    pub slack: Option<SlackClaim>,
}

/// The longest message accepted, in bytes; longer ones are refused before any parsing.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The longest snooze accepted.
pub const MAX_SNOOZE: Duration = Duration::from_secs(7 * 86_400);

const ACTIONS: &str = "approve, deny, snooze";

/// Why a message on the approvals topic was refused. Quoted input is cut to 80 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalMessageError {
    #[error("the approval message is empty; expected an approval token, `approve <token>`, `deny <token>`, `snooze <token> <duration>` or JSON {{\"token\": ...}}")]
    Empty,
    #[error("the approval message is {size} bytes; at most {max} bytes are accepted")]
    TooLarge { size: usize, max: usize },
    #[error("unknown action {action:?}; expected one of: {ACTIONS}")]
    UnknownAction { action: String },
    #[error("the approval message has no token; expected `{action} <token>` or JSON with a non-empty \"token\"")]
    MissingToken { action: &'static str },
    #[error("the approval message is not valid JSON of the expected shape: {0} (fields: action, token, approver, reason, for)")]
    InvalidJson(String),
    #[error("\"for\" is only valid with \"action\": \"snooze\" (this message's action is {action}); remove it or use snooze")]
    DurationWithoutSnooze { action: &'static str },
    #[error("snooze needs a duration; expected `snooze <token> <duration>` or JSON \"for\", e.g. `2h`, `1d` or `1h30m`")]
    MissingSnoozeDuration,
    #[error("a Slack-verified approval names its approver in \"slack\" only; remove \"approver\"")]
    ApproverWithSlack,
    #[error("bad Slack attestation: {0}")]
    BadSlackAttestation(String),
    #[error("bad snooze duration {given:?}: {problem}")]
    BadSnoozeDuration { given: String, problem: String },
    #[error("snooze of {} is longer than the {} maximum; snooze for at most {}, or deny the proposal", format_duration(*requested), format_duration(*max), format_duration(*max))]
    SnoozeTooLong { requested: Duration, max: Duration },
}

/// The JSON wire format of a message on the approvals topic — what the CLI (and any integration)
/// publishes and what [`ApprovalMessage::parse`] reads for force-unlock:
/// `{"action"?, "token", "approver"?, "reason"?, "for"?}`, absent fields left out. Unknown fields
/// are refused, so a typo such as `"aprover"` fails loudly instead of being ignored. `action` stays
/// text on the wire so an unknown one is answered with [`ApprovalMessageError::UnknownAction`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A snooze's duration (`2h`, `1d`, `1h30m`); only with `snooze`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// The Slack endpoint's signed statement of who pressed the button ([`SlackAttestation`]);
    /// only on messages the Slack interactivity endpoint publishes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackAttestation>,
}

impl ApprovalRequest {
    /// A request for `action` on `token`; a blank approver or reason is left out, the duration
    /// is trimmed.
    pub fn new(
        action: ApprovalAction,
        token: &str,
        duration: Option<&str>,
        approver: Option<&str>,
        reason: Option<&str>,
    ) -> ApprovalRequest {
        ApprovalRequest {
            action: Some(action.name().to_owned()),
            token: Some(token.to_owned()),
            approver: non_blank(approver.map(str::to_owned)),
            reason: non_blank(reason.map(str::to_owned)),
            for_: duration.map(|d| d.trim().to_owned()),
            slack: None,
        }
    }

    /// The request the Slack interactivity endpoint publishes for a button press by `identity`
    /// (verified from Slack's signed request) at `at`: no self-asserted approver, and a
    /// [`SlackAttestation`] signed with `key` over everything force-unlock acts on (action, token,
    /// duration, reason, team, user, time), so it cannot be moved to another token or action, nor
    /// made up by anyone who can publish to the approvals topic but does not hold the key.
    pub fn slack_verified(
        key: &SigningKey,
        action: ApprovalAction,
        token: &str,
        duration: Option<&str>,
        identity: &SlackIdentity,
        at: DateTime<Utc>,
    ) -> ApprovalRequest {
        Self::slack_verified_with_groups(key, action, token, duration, identity, None, at)
    }

    /// [`ApprovalRequest::slack_verified`], also attesting which of the allow-list's Slack user
    /// groups the presser was a member of when they pressed, and which could not be checked
    /// ([`SlackGroups`]). `None` attests nothing about groups (the format without groups, which
    /// force-unlock reads as "a member of no group").
    pub fn slack_verified_with_groups(
        key: &SigningKey,
        action: ApprovalAction,
        token: &str,
        duration: Option<&str>,
        identity: &SlackIdentity,
        groups: Option<&SlackGroups>,
        at: DateTime<Utc>,
    ) -> ApprovalRequest {
        let mut request = ApprovalRequest::new(action, token, duration, None, None);
        let at = at.timestamp();
        let input = attestation_input(
            action,
            strip_token_decoration(token),
            request.for_.as_deref(),
            None,
            identity,
            at,
            groups,
        );
        request.slack = Some(SlackAttestation {
            team: identity.team_id.clone(),
            user: identity.user_id.clone(),
            at,
            groups: groups.map(|g| g.member_of.clone()),
            groups_unchecked: groups.map(|g| g.unchecked.clone()),
            sig: hex::encode(attestation_mac(key, groups.is_some(), &input)),
        });
        request
    }

    /// The message text to publish.
    pub fn to_json(&self) -> String {
        // Serialising a struct of strings to a string cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What an approval message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalAction {
    /// Release the lock the token's proposal names.
    Approve,
    /// Drop the proposal; leave the lock alone.
    Deny,
    /// No alerts for the proposal's lock for a while.
    Snooze,
}

impl ApprovalAction {
    /// `approve`, `deny` or `snooze`, any case.
    pub fn parse(name: &str) -> Option<ApprovalAction> {
        match name.to_ascii_lowercase().as_str() {
            "approve" => Some(ApprovalAction::Approve),
            "deny" => Some(ApprovalAction::Deny),
            "snooze" => Some(ApprovalAction::Snooze),
            _ => None,
        }
    }

    /// `approve`, `deny` or `snooze`.
    pub fn name(self) -> &'static str {
        match self {
            ApprovalAction::Approve => "approve",
            ApprovalAction::Deny => "deny",
            ApprovalAction::Snooze => "snooze",
        }
    }
}

/// `Some(trimmed)` unless blank.
fn non_blank(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn snooze_duration(given: &str) -> Result<Duration, ApprovalMessageError> {
    let bad = |problem: String| ApprovalMessageError::BadSnoozeDuration {
        given: quote(given.trim()),
        problem,
    };
    let duration = parse_duration(given).map_err(|problem| bad(quote_problem(&problem)))?;
    if duration.is_zero() {
        return Err(bad(
            "a snooze must be longer than zero; expected a duration such as `90m`, `4h`, `1d` or `1h30m`".into(),
        ));
    }
    if duration > MAX_SNOOZE {
        return Err(ApprovalMessageError::SnoozeTooLong {
            requested: duration,
            max: MAX_SNOOZE,
        });
    }
    Ok(duration)
}

/// `parse_duration` quotes its whole input; keep such a message short too.
fn quote_problem(problem: &str) -> String {
    if problem.chars().count() <= 2 * QUOTE_MAX {
        problem.to_owned()
    } else {
        "the duration is too long to be valid; expected a duration such as `90m`, `4h`, `1d` or `1h30m`".into()
    }
}

fn build(
    action: ApprovalAction,
    token: Option<String>,
    duration: Option<&str>,
    approver: Option<String>,
    reason: Option<String>,
) -> Result<ApprovalMessage, ApprovalMessageError> {
    let token = token
        .as_deref()
        .map(strip_token_decoration)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or(ApprovalMessageError::MissingToken {
            action: action.name(),
        })?;
    Ok(match action {
        ApprovalAction::Approve | ApprovalAction::Deny if duration.is_some() => {
            return Err(ApprovalMessageError::DurationWithoutSnooze {
                action: action.name(),
            })
        }
        ApprovalAction::Approve => ApprovalMessage::Approve {
            token,
            approver,
            reason,
        },
        ApprovalAction::Deny => ApprovalMessage::Deny {
            token,
            approver,
            reason,
        },
        ApprovalAction::Snooze => ApprovalMessage::Snooze {
            token,
            duration: snooze_duration(
                duration
                    .filter(|d| !d.trim().is_empty())
                    .ok_or(ApprovalMessageError::MissingSnoozeDuration)?,
            )?,
            approver,
            reason,
        },
    })
}

impl ApprovalMessage {
    /// Parses an SNS `Message` from the approvals topic:
    /// - a bare token (what a chat button publishes) → `Approve`, source [`ApprovalSource::ChatButton`];
    /// - JSON `{"action"?: "approve"|"deny"|"snooze", "token", "approver"?, "reason"?, "for"?}`
    ///   (action defaults to approve; `for` is required with snooze and refused otherwise) →
    ///   source [`ApprovalSource::Json`];
    /// - text `approve <token> [reason…]`, `deny <token> [reason…]`,
    ///   `snooze <token> <duration> [reason…]` (action case-insensitive) → source [`ApprovalSource::Text`].
    ///
    /// Tokens are returned without surrounding whitespace and quotes, but otherwise unchecked: call
    /// [`ApprovalToken::verify`]. Blank `approver`/`reason` become `None`.
    pub fn parse(message: &str) -> Result<ParsedApproval, ApprovalMessageError> {
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(ApprovalMessageError::TooLarge {
                size: message.len(),
                max: MAX_MESSAGE_BYTES,
            });
        }
        let text = message.trim();
        if text.is_empty() {
            return Err(ApprovalMessageError::Empty);
        }
        if text.starts_with('{') {
            let json: ApprovalRequest = serde_json::from_str(text)
                .map_err(|e| ApprovalMessageError::InvalidJson(quote(&e.to_string())))?;
            let action = match non_blank(json.action) {
                None => ApprovalAction::Approve,
                Some(name) => ApprovalAction::parse(&name).ok_or_else(|| {
                    ApprovalMessageError::UnknownAction {
                        action: quote(&name),
                    }
                })?,
            };
            let slack = match json.slack {
                None => None,
                Some(attestation) => {
                    if non_blank(json.approver.clone()).is_some() {
                        return Err(ApprovalMessageError::ApproverWithSlack);
                    }
                    let token = json.token.as_deref().map(strip_token_decoration);
                    Some(SlackClaim::of(
                        action,
                        token.unwrap_or_default(),
                        json.for_.as_deref(),
                        json.reason.as_deref(),
                        attestation,
                    )?)
                }
            };
            let message = build(
                action,
                json.token,
                json.for_.as_deref(),
                non_blank(json.approver),
                non_blank(json.reason),
            )?;
            return Ok(ParsedApproval {
                message,
                source: ApprovalSource::Json,
                slack,
            });
        }

        let mut words = text.split_whitespace();
        let first = words.next().unwrap_or_default();
        let rest: Vec<&str> = words.collect();
        let action = ApprovalAction::parse(first);
        let (message, source) = match (action, rest.as_slice()) {
            // One word that is not an action: a bare token from a chat button.
            (None, []) => (
                build(
                    ApprovalAction::Approve,
                    Some(first.to_owned()),
                    None,
                    None,
                    None,
                )?,
                ApprovalSource::ChatButton,
            ),
            (None, _) => {
                return Err(ApprovalMessageError::UnknownAction {
                    action: quote(first),
                })
            }
            (Some(action), rest) => {
                let token = rest.first().map(|t| (*t).to_owned());
                let (duration, reason_words) = match (action, rest) {
                    (ApprovalAction::Snooze, [_, duration, reason @ ..]) => {
                        (Some(*duration), reason)
                    }
                    (ApprovalAction::Snooze, _) if token.is_some() => {
                        return Err(ApprovalMessageError::MissingSnoozeDuration)
                    }
                    (_, [_, reason @ ..]) => (None, reason),
                    (_, []) => (None, &[][..]),
                };
                let reason = non_blank(Some(reason_words.join(" ")));
                (
                    build(action, token, duration, None, reason)?,
                    ApprovalSource::Text,
                )
            }
        };
        Ok(ParsedApproval {
            message,
            source,
            slack: None,
        })
    }

    /// `approve`, `deny` or `snooze`.
    pub fn action(&self) -> &'static str {
        self.kind().name()
    }

    /// What is asked for.
    pub fn kind(&self) -> ApprovalAction {
        match self {
            ApprovalMessage::Approve { .. } => ApprovalAction::Approve,
            ApprovalMessage::Deny { .. } => ApprovalAction::Deny,
            ApprovalMessage::Snooze { .. } => ApprovalAction::Snooze,
        }
    }

    pub fn token(&self) -> &str {
        match self {
            ApprovalMessage::Approve { token, .. }
            | ApprovalMessage::Deny { token, .. }
            | ApprovalMessage::Snooze { token, .. } => token,
        }
    }

    pub fn approver(&self) -> Option<&str> {
        match self {
            ApprovalMessage::Approve { approver, .. }
            | ApprovalMessage::Deny { approver, .. }
            | ApprovalMessage::Snooze { approver, .. } => approver.as_deref(),
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            ApprovalMessage::Approve { reason, .. }
            | ApprovalMessage::Deny { reason, .. }
            | ApprovalMessage::Snooze { reason, .. } => reason.as_deref(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Slack-verified approvals
// ---------------------------------------------------------------------------------------------

/// A Slack user, as the Slack endpoint read it from a request Slack signed: the workspace (team)
/// ID and the user ID, e.g. `T0123ABCD` / `U0456EFGH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlackIdentity {
    pub team_id: String,
    pub user_id: String,
}

impl SlackIdentity {
    /// Both IDs checked: 1–32 characters of `A-Z`/`0-9`, the form Slack gives every ID, so an
    /// identity can never be confused with an allow-list entry's separators.
    pub fn new(team_id: &str, user_id: &str) -> Result<SlackIdentity, String> {
        for (what, id) in [("team", team_id), ("user", user_id)] {
            let ok = (1..=32).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !ok {
                return Err(format!(
                    "the Slack {what} ID {:?} is not 1-32 characters of A-Z and 0-9",
                    quote(id)
                ));
            }
        }
        Ok(SlackIdentity {
            team_id: team_id.to_owned(),
            user_id: user_id.to_owned(),
        })
    }

    /// The user ID.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// How the approver appears in the audit, logs and results: `slack:T0123ABCD/U0456EFGH`.
    pub fn approver_name(&self) -> String {
        format!("{SLACK_PREFIX}{}/{}", self.team_id, self.user_id)
    }

    /// Whether allow-list `entry` names this user: `slack:<user>` (any workspace the app is
    /// installed in) or `slack:<team>/<user>`.
    fn is_named_by(&self, entry: &str) -> bool {
        entry.strip_prefix(SLACK_PREFIX).is_some_and(|rest| {
            rest == self.user_id
                || rest
                    .split_once('/')
                    .is_some_and(|(team, user)| team == self.team_id && user == self.user_id)
        })
    }
}

/// Allow-list entries and approver names with this prefix are Slack identities.
pub const SLACK_PREFIX: &str = "slack:";

/// The `"slack"` member of an approval message: who pressed the button, when, and the Slack
/// endpoint's HMAC-SHA256 (hex) over the message's action, token, duration and reason and these
/// fields, with the key in `SLACK_ATTESTATION_SECRET_ARN` that only the endpoint and force-unlock
/// can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAttestation {
    pub team: String,
    pub user: String,
    /// When the endpoint verified the press, Unix seconds.
    pub at: i64,
    /// The allow-list's Slack user groups the presser was a member of at press time (Slack's
    /// `usergroups.users.list`). Absent in attestations made before user groups (and by an
    /// endpoint whose allow-list names none): read as "a member of no group".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// The allow-list's Slack user groups whose membership could not be looked up at press time
    /// ("cannot tell"); never counted as membership, named in a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_unchecked: Option<Vec<String>>,
    pub sig: String,
}

/// What the Slack endpoint found out at press time about the allow-list's Slack user groups
/// (`S…` IDs, as [`slack_groups_to_check`] lists them): the groups the presser is a member of,
/// and those whose member list could not be read. A group in neither list was read and does not
/// have the presser in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlackGroups {
    pub member_of: Vec<String>,
    pub unchecked: Vec<String>,
}

/// Whether `id` has the form of a Slack user group ID: `S` then 1-31 characters of `A-Z`/`0-9`
/// (Slack's schema for a subteam ID is `^S[A-Z0-9]{2,}$`; user IDs start with `U` or `W`, so the
/// two never collide).
pub fn is_slack_group_id(id: &str) -> bool {
    id.len() >= 2
        && id.len() <= 32
        && id.starts_with('S')
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A `slack:` allow-list entry naming a user group: `slack:S…` (in any workspace) or
/// `slack:<team>/S…`; its (team, group), or `None` for any other entry.
fn slack_group_entry(entry: &str) -> Option<(Option<&str>, &str)> {
    let rest = entry.strip_prefix(SLACK_PREFIX)?;
    let (team, group) = match rest.split_once('/') {
        Some((team, group)) => (Some(team), group),
        None => (None, rest),
    };
    is_slack_group_id(group).then_some((team, group))
}

/// The distinct user groups of `allow_list` whose membership decides a press by a user of
/// workspace `team_id`: every `slack:S…` entry and every `slack:<team_id>/S…` entry, in list
/// order. What the Slack endpoint looks up at press time.
pub fn slack_groups_to_check(allow_list: &[String], team_id: &str) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for (team, group) in allow_list.iter().filter_map(|e| slack_group_entry(e)) {
        if team.is_none_or(|t| t == team_id) && !groups.iter().any(|g| g == group) {
            groups.push(group.to_owned());
        }
    }
    groups
}

/// Whether `allow_list` names any Slack user group.
pub fn names_slack_groups(allow_list: &[String]) -> bool {
    allow_list.iter().any(|e| slack_group_entry(e).is_some())
}

/// A message's claim to a verified Slack identity, read from its [`SlackAttestation`]; trusted
/// only once [`ParsedApproval::verify_slack`] accepts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackClaim {
    identity: SlackIdentity,
    at: DateTime<Utc>,
    /// `None`: an attestation in the format without groups (a member of no group).
    groups: Option<SlackGroups>,
    input: Vec<u8>,
    signature: [u8; 32],
    verified: bool,
}

impl SlackClaim {
    fn of(
        action: ApprovalAction,
        token: &str,
        duration: Option<&str>,
        reason: Option<&str>,
        attestation: SlackAttestation,
    ) -> Result<SlackClaim, ApprovalMessageError> {
        let bad = ApprovalMessageError::BadSlackAttestation;
        let identity = SlackIdentity::new(&attestation.team, &attestation.user).map_err(bad)?;
        let at = DateTime::from_timestamp(attestation.at, 0)
            .ok_or_else(|| bad("\"at\" is out of range".into()))?;
        let mut signature = [0u8; 32];
        hex::decode_to_slice(&attestation.sig, &mut signature)
            .map_err(|_| bad("\"sig\" is not 64 hex characters".into()))?;
        let groups = match (attestation.groups, attestation.groups_unchecked) {
            (None, None) => None,
            (member_of, unchecked) => {
                let groups = SlackGroups {
                    member_of: member_of.unwrap_or_default(),
                    unchecked: unchecked.unwrap_or_default(),
                };
                if let Some(id) = groups
                    .member_of
                    .iter()
                    .chain(&groups.unchecked)
                    .find(|id| !is_slack_group_id(id))
                {
                    return Err(bad(format!(
                        "{:?} in \"groups\" is not a Slack user group ID (S followed by A-Z, 0-9)",
                        quote(id)
                    )));
                }
                Some(groups)
            }
        };
        let duration = duration.map(str::trim);
        let reason = non_blank(reason.map(str::to_owned));
        let input = attestation_input(
            action,
            token,
            duration,
            reason.as_deref(),
            &identity,
            attestation.at,
            groups.as_ref(),
        );
        Ok(SlackClaim {
            identity,
            at,
            groups,
            input,
            signature,
            verified: false,
        })
    }

    /// The identity, once verified; `None` before.
    pub fn verified_identity(&self) -> Option<&SlackIdentity> {
        self.verified.then_some(&self.identity)
    }

    /// When the Slack endpoint verified the press (as it signed it).
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// The allow-list's user groups the presser was a member of at press time, once verified
    /// (empty for an attestation without groups); `None` before.
    pub fn verified_groups(&self) -> Option<&[String]> {
        self.verified
            .then(|| self.groups.as_ref().map_or(&[][..], |g| &g.member_of[..]))
    }

    /// The groups whose membership the endpoint could not look up, once verified.
    fn verified_unchecked(&self) -> &[String] {
        match (&self.groups, self.verified) {
            (Some(groups), true) => &groups.unchecked,
            _ => &[],
        }
    }
}

/// Why a Slack-verified claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackClaimError {
    #[error(
        "the message claims a Slack-verified approver but this force-unlock has no Slack \
         attestation key (SLACK_ATTESTATION_SECRET_ARN); refused rather than trusted unchecked"
    )]
    NoKey,
    #[error(
        "the message's Slack attestation does not verify: it was forged, altered (another token, \
         action or user) or signed with a different key"
    )]
    BadSignature,
}

impl ParsedApproval {
    /// Checks the message's Slack claim, if any, with `key` (constant-time). On success the
    /// message's approver becomes the verified identity ([`SlackIdentity::approver_name`]) and the
    /// source [`ApprovalSource::SlackVerified`]; a message with no claim is left as it is.
    pub fn verify_slack(&mut self, key: Option<&SigningKey>) -> Result<(), SlackClaimError> {
        let Some(claim) = self.slack.as_mut() else {
            return Ok(());
        };
        let key = key.ok_or(SlackClaimError::NoKey)?;
        let mut mac = key.mac();
        mac.update(attestation_domain(claim.groups.is_some()));
        mac.update(&claim.input);
        mac.verify_slice(&claim.signature)
            .map_err(|_| SlackClaimError::BadSignature)?;
        claim.verified = true;
        let name = Some(claim.identity.approver_name());
        match &mut self.message {
            ApprovalMessage::Approve { approver, .. }
            | ApprovalMessage::Deny { approver, .. }
            | ApprovalMessage::Snooze { approver, .. } => *approver = name,
        }
        self.source = ApprovalSource::SlackVerified;
        Ok(())
    }

    /// Whether this message's approver may act under `allow_list`: a verified Slack identity
    /// against the `slack:` entries (a user entry naming them, or a user-group entry for a group
    /// the attestation says they were a member of when they pressed), anything else by
    /// [`approver_allowed`] (which never matches a `slack:` entry, so a self-asserted
    /// `"approver": "slack:U…"` or `"slack:S…"` gets nowhere).
    pub fn approver_allowed(&self, allow_list: &[String]) -> Result<(), ApproverError> {
        let Some(claim) = self.slack.as_ref().filter(|c| c.verified) else {
            return approver_allowed(self.message.approver(), allow_list);
        };
        if allow_list.is_empty() {
            return Ok(());
        }
        let identity = &claim.identity;
        let member_of = claim.verified_groups().unwrap_or_default();
        let unchecked = claim.verified_unchecked();
        let mut considered = Vec::new();
        let mut others = 0usize;
        for entry in allow_list {
            if identity.is_named_by(entry) {
                return Ok(());
            }
            let why = if let Some((team, group)) = slack_group_entry(entry) {
                if team.is_some_and(|t| t != identity.team_id) {
                    "a user group of another workspace".to_owned()
                } else if member_of.iter().any(|g| g == group) {
                    return Ok(());
                } else if unchecked.iter().any(|g| g == group) {
                    "cannot tell: its members could not be looked up at press time".to_owned()
                } else if claim.groups.is_none() {
                    "the attestation records no user-group membership".to_owned()
                } else {
                    format!("{} was not a member when they pressed", identity.user_id)
                }
            } else if entry.starts_with(SLACK_PREFIX) {
                "names another Slack user or workspace".to_owned()
            } else {
                others += 1;
                continue;
            };
            considered.push(format!("{} ({why})", quote(entry)));
        }
        if others > 0 {
            considered.push(if others == 1 {
                "1 entry that is not a Slack identity".to_owned()
            } else {
                format!("{others} entries that are not Slack identities")
            });
        }
        Err(ApproverError::SlackNotAllowed {
            approver: identity.approver_name(),
            considered: considered.join("; "),
        })
    }
}

const SLACK_ATTESTATION_DOMAIN: &[u8] = b"lockreaper slack attestation v1\0";
/// The domain of attestations that carry user-group membership: a different tag, so that an
/// attestation with groups can never be read as one without (or the reverse).
const SLACK_ATTESTATION_DOMAIN_GROUPS: &[u8] = b"lockreaper slack attestation v2 groups\0";

fn attestation_domain(with_groups: bool) -> &'static [u8] {
    if with_groups {
        SLACK_ATTESTATION_DOMAIN_GROUPS
    } else {
        SLACK_ATTESTATION_DOMAIN
    }
}

/// What a Slack attestation signs: every field force-unlock acts on, each length-prefixed.
fn attestation_input(
    action: ApprovalAction,
    token: &str,
    duration: Option<&str>,
    reason: Option<&str>,
    identity: &SlackIdentity,
    at: i64,
    groups: Option<&SlackGroups>,
) -> Vec<u8> {
    let at = at.to_string();
    let mut input = Vec::new();
    let mut field = |field: &str| {
        input.extend_from_slice(&(field.len() as u64).to_be_bytes());
        input.extend_from_slice(field.as_bytes());
    };
    for value in [
        action.name(),
        token,
        duration.unwrap_or(""),
        reason.unwrap_or(""),
        &identity.team_id,
        &identity.user_id,
        &at,
    ] {
        field(value);
    }
    // With groups (and the v2 domain): each list as its length, then its IDs.
    if let Some(groups) = groups {
        for list in [&groups.member_of, &groups.unchecked] {
            field(&list.len().to_string());
            for id in list {
                field(id);
            }
        }
    }
    input
}

fn attestation_mac(key: &SigningKey, with_groups: bool, input: &[u8]) -> [u8; 32] {
    let mut mac = key.mac();
    mac.update(attestation_domain(with_groups));
    mac.update(input);
    mac.finalize().into_bytes().into()
}

/// Why an approver was refused by the allow-list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApproverError {
    #[error(
        "an approver allow-list is configured but this message names no approver (chat buttons \
         carry no identity); publish JSON with an \"approver\" that is on the list"
    )]
    Missing,
    #[error(
        "approver {approver:?} is not on the approver allow-list (names must match exactly, \
         case-sensitively)"
    )]
    NotAllowed { approver: String },
    #[error(
        "Slack-verified approver {approver} is not allowed; allow-list entries considered: \
         {considered}"
    )]
    SlackNotAllowed {
        approver: String,
        considered: String,
    },
    #[error(
        "approver {approver:?} is a Slack identity named in the message, not verified by the \
         Slack endpoint; `slack:` allow-list entries (users and user groups) are matched only by \
         Slack-verified button presses"
    )]
    SelfAssertedSlack { approver: String },
}

/// Whether `approver` may approve. An empty `allow_list` lets anyone (and no one named) approve;
/// otherwise the approver must be named and equal one entry exactly, byte for byte, case
/// included (`Ana@example.com` ≠ `ana@example.com`). The name is self-asserted by whoever
/// publishes, so the list is only as strong as the approvals topic's publish policy.
pub fn approver_allowed(
    approver: Option<&str>,
    allow_list: &[String],
) -> Result<(), ApproverError> {
    if allow_list.is_empty() {
        return Ok(());
    }
    let approver = approver.ok_or(ApproverError::Missing)?;
    if approver.starts_with(SLACK_PREFIX) {
        return Err(ApproverError::SelfAssertedSlack {
            approver: quote(approver),
        });
    }
    // A `slack:` entry is matched by a verified Slack identity only
    // ([`ParsedApproval::approver_allowed`]), never by a name someone typed.
    if allow_list
        .iter()
        .any(|allowed| allowed == approver && !allowed.starts_with(SLACK_PREFIX))
    {
        Ok(())
    } else {
        Err(ApproverError::NotAllowed {
            approver: quote(approver),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Source, for the audit record
// ---------------------------------------------------------------------------------------------

/// How an approval (or denial, or snooze) came in, for the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalSource {
    /// A bare token on the approvals topic: what a chat custom-action button publishes. Carries no
    /// user identity; attribution comes from the publisher's IAM role (CloudTrail).
    ChatButton,
    /// JSON from the CLI or another integration, possibly naming an approver.
    Json,
    /// A text command such as `deny <token>` published by hand.
    Text,
    /// The reaper's opt-in automatic expiry; no person involved.
    AutoExpire,
    /// A Slack button press whose user the Slack endpoint verified from Slack's signed request,
    /// carried in a message whose attestation force-unlock checked with the shared key.
    SlackVerified,
}

impl ApprovalSource {
    /// A short stable name: `chat-button`, `json`, `text`, `auto-expire` or `slack-verified`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalSource::ChatButton => "chat-button",
            ApprovalSource::Json => "json",
            ApprovalSource::Text => "text",
            ApprovalSource::AutoExpire => "auto-expire",
            ApprovalSource::SlackVerified => "slack-verified",
        }
    }

    /// For people: how the decision came in.
    pub fn describe(self) -> &'static str {
        match self {
            ApprovalSource::ChatButton => "a chat button (no user identity in the message)",
            ApprovalSource::Json => "a JSON message (CLI or integration)",
            ApprovalSource::Text => "a text command on the approvals topic",
            ApprovalSource::AutoExpire => "automatic expiry by the reaper",
            ApprovalSource::SlackVerified => {
                "a Slack button press (user verified from Slack's signed request)"
            }
        }
    }
}

impl std::fmt::Display for ApprovalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
#[path = "approval_tests.rs"]
mod tests;
