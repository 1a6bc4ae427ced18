//! Configuration values shared by the functions, parsed from environment variables with errors
//! that name the variable, the bad value and the expected form. Parsing is pure: callers pass the
//! variables in (`std::env::vars()` in a function's `main`), which keeps it testable.

use std::collections::HashMap;
use std::time::Duration;

/// A configuration error: which variable, what was wrong, what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        ConfigError {
            variable,
            problem: problem.into(),
        }
    }
}

/// Several configuration errors at once, so one failed start lists everything to fix.
///
/// `Debug` prints the same readable list as `Display`: a function's `main` returning this error
/// is how Lambda's init failure message reaches people.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  - "))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Debug for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The variable naming lockreaper's own DynamoDB table, the ledger (every function and the CLI).
pub const LEDGER_TABLE: &str = "LEDGER_TABLE";
const LEDGER_TABLE_FORM: &str = "the name of lockreaper's DynamoDB ledger table (3–255 characters: letters, digits, `_`, `-`, `.`), e.g. `lockreaper-ledger`";

/// The kill switch: `true` while the stack's `UnlocksPaused` parameter is `true` (reaper, force-unlock
/// and the CLI's `locks`). Read only through [`Env::unlocks_paused`].
pub const UNLOCKS_PAUSED: &str = "UNLOCKS_PAUSED";
/// The template parameter that sets [`UNLOCKS_PAUSED`]: every message about the pause names it, so
/// whoever reads it knows what to change.
pub const UNLOCKS_PAUSED_PARAMETER: &str = "UnlocksPaused";

/// Environment variables, as a map, with typed accessors that collect errors.
pub struct Env {
    vars: HashMap<String, String>,
    errors: Vec<ConfigError>,
}

impl Env {
    pub fn new(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        Env {
            vars: vars.into_iter().collect(),
            errors: Vec::new(),
        }
    }

    /// The value, if set and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A required value; records an error if missing.
    pub fn required(&mut self, name: &'static str, expected: &str) -> String {
        match self.get(name) {
            Some(v) => v.to_owned(),
            None => {
                self.errors.push(ConfigError::new(
                    name,
                    format!("is not set; expected {expected}"),
                ));
                String::new()
            }
        }
    }

    /// An optional value parsed with `parse`, or `default`; records an error on a bad value.
    pub fn parsed<T>(
        &mut self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.get(name).map(|v| v.to_owned()) {
            None => default,
            Some(v) => match parse(&v) {
                Ok(t) => t,
                Err(problem) => {
                    self.errors.push(ConfigError::new(name, problem));
                    default
                }
            },
        }
    }

    /// A comma-separated list (blank entries ignored).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `LEDGER_TABLE`, when set: lockreaper's ledger table, checked as a DynamoDB table name. The
    /// one place the functions and the CLI read and check it, so they say the same.
    pub fn ledger_table(&mut self) -> Option<String> {
        let name = self.get(LEDGER_TABLE)?.to_owned();
        if let Err(problem) = check_table_name(&name) {
            self.errors.push(ConfigError::new(LEDGER_TABLE, problem));
        }
        Some(name)
    }

    /// `LEDGER_TABLE`, required ([`Env::ledger_table`]); records an error if missing.
    pub fn required_ledger_table(&mut self) -> String {
        self.ledger_table().unwrap_or_else(|| {
            self.errors.push(ConfigError::new(
                LEDGER_TABLE,
                format!("is not set; expected {LEDGER_TABLE_FORM}"),
            ));
            String::new()
        })
    }

    /// `UNLOCKS_PAUSED`: `true` or `false` exactly (unset: `false`). Strict, unlike other booleans:
    /// the template sets exactly these two values, and a kill switch whose value is misread either
    /// way must stop the function at start-up rather than guess.
    pub fn unlocks_paused(&mut self) -> bool {
        self.parsed(UNLOCKS_PAUSED, false, |v| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!(
                "{v:?} is neither `true` nor `false`; expected `true` (the kill switch: nothing is deleted) or `false`, as the stack's {UNLOCKS_PAUSED_PARAMETER} parameter sets it"
            )),
        })
    }

    pub fn error(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    /// Ends parsing: `Ok(value)` when nothing was wrong, else every problem found.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

/// Parses `30s`, `90m`, `4h`, `1d`, `1h30m` (units s, m, h, d; at least one).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as `90m`, `4h`, `1d` or `1h30m`";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty duration; {expected}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("{text:?} has an unknown unit {c:?}; {expected}")),
        };
        if digits.is_empty() {
            return Err(format!("{text:?} has a unit without a number; {expected}"));
        }
        // Only ASCII digits are left, so the one way to fail is a number beyond u64.
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("{text:?} is too long"))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "{text:?} ends in a number without a unit; {expected}"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Renders a duration the way people read it: `3h12m`, `45s`, `2d4h`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (days, hours, mins) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`), case-insensitive.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "{text:?} is not a boolean; expected `true` or `false`"
        )),
    }
}

/// `APPROVAL_TTL`: how long an approval token stays valid, 1m to 7d (the reaper's and
/// `lockreaper config check`'s one rule).
pub fn parse_approval_ttl(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(60) || d > Duration::from_secs(7 * 86_400) {
        return Err(format!(
            "{text:?} is out of range; expected between 1m and 7d"
        ));
    }
    Ok(d)
}

/// `SCAN_SEGMENTS`: parallel Scan segments per lock table, 1 to 64.
pub fn parse_scan_segments(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a segment count; expected a whole number from 1 to 64"
        )),
    }
}

/// DynamoDB table names: 3–255 characters of `A-Z a-z 0-9 _ - .`.
pub fn check_table_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if (3..=255).contains(&name.len()) && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a DynamoDB table name; expected 3-255 characters of A-Z, a-z, 0-9, `_`, `-` and `.`"
        ))
    }
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>` with the expected service.
pub fn check_arn(arn: &str, service: &str, what: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, s, region, account, resource]
            if !partition.is_empty()
                && *s == service
                && !region.is_empty()
                && !account.is_empty()
                && !resource.is_empty() =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{arn:?} is not the ARN of {what}; expected `arn:<partition>:{service}:<region>:<account>:<name>`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("90m", 5400),
            ("4h", 14_400),
            ("1d", 86_400),
            ("1h30m", 5400),
            ("45s", 45),
            ("0s", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for (bad, msg) in [
            ("", "empty"),
            ("4", "without a unit"),
            ("h", "without a number"),
            ("4x", "unknown unit"),
            ("4 h", "unknown unit"),
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(msg), "{bad:?}: {err}");
            if !bad.is_empty() {
                assert!(err.contains("`90m`"), "{err}");
            }
        }
        assert!(parse_duration("99999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn formats_like_people_write() {
        for (secs, text) in [
            (45, "45s"),
            (60, "1m"),
            (5400, "1h30m"),
            (7200, "2h"),
            (11_520, "3h12m"),
            (86_400, "1d"),
            (187_200, "2d4h"),
        ] {
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
        }
    }

    #[test]
    fn env_collects_every_error() {
        let mut env = Env::new([
            ("A".to_owned(), "4x".to_owned()),
            ("L".to_owned(), " a, ,b ".to_owned()),
        ]);
        let a = env.parsed("A", Duration::ZERO, parse_duration);
        let b = env.required("B", "a table name");
        assert_eq!((a, b.as_str()), (Duration::ZERO, ""));
        assert_eq!(env.list("L"), vec!["a", "b"]);
        let err = env.finish(()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("A: \"4x\" has an unknown unit"), "{text}");
        assert!(
            text.contains("B: is not set; expected a table name"),
            "{text}"
        );
    }

    #[test]
    fn unlocks_paused_is_true_or_false_and_nothing_else() {
        let paused = |value: Option<&str>| {
            let mut env = Env::new(value.map(|v| (UNLOCKS_PAUSED.to_owned(), v.to_owned())));
            let paused = env.unlocks_paused();
            env.finish(paused).map_err(|e| e.to_string())
        };
        assert_eq!(paused(None), Ok(false), "unset: not paused");
        assert_eq!(paused(Some("true")), Ok(true));
        assert_eq!(paused(Some(" false ")), Ok(false));
        for bad in ["TRUE", "yes", "1", "paused"] {
            let err = paused(Some(bad)).unwrap_err();
            assert!(
                err.contains(&format!(
                    "UNLOCKS_PAUSED: {bad:?} is neither `true` nor `false`"
                )),
                "{err}"
            );
            assert!(err.contains("UnlocksPaused parameter"), "{err}");
        }
    }
}

/// Where to look for locks: `LOCK_TABLES` and `LOCK_BUCKETS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSources {
    /// `LOCK_TABLES`: comma-separated DynamoDB table names (Terraform/OpenTofu or Gyro lock tables).
    pub tables: Vec<String>,
    /// `LOCK_BUCKETS`: comma-separated `bucket` or `bucket/prefix` where `.tflock` files live
    /// ([`crate::path::parse_bucket_list`]).
    pub buckets: Vec<crate::path::BucketScope>,
    /// Where this deployment may read state objects ([`crate::coverage`]): `STATE_BUCKETS`
    /// (`bucket` or `bucket/prefix` entries; the template's `StateBuckets` + `StateKeyPrefix`),
    /// or, when that is not set, the `LOCK_BUCKETS` entries (a deployment reads the buckets it
    /// searches). A lock whose state lies elsewhere is "cannot tell" and never auto-expired.
    pub state_locations: Vec<crate::coverage::StateLocation>,
}

impl LockSources {
    pub const TABLES: &'static str = "LOCK_TABLES";
    pub const BUCKETS: &'static str = "LOCK_BUCKETS";

    pub fn from_env(env: &mut Env) -> LockSources {
        let tables = env.list(Self::TABLES);
        let buckets = match crate::path::parse_bucket_list(env.get(Self::BUCKETS).unwrap_or("")) {
            Ok(buckets) => buckets,
            Err(problems) => {
                for problem in problems {
                    env.error(ConfigError::new(Self::BUCKETS, problem));
                }
                Vec::new()
            }
        };
        // A value of only commas and blanks names nothing: the functions would watch nothing.
        if tables.is_empty() && env.list(Self::BUCKETS).is_empty() {
            env.error(ConfigError::new(
                Self::TABLES,
                "neither LOCK_TABLES nor LOCK_BUCKETS is set (or they hold only commas and blanks); expected comma-separated lock table names and/or `bucket` or `bucket/prefix` entries",
            ));
        }
        let state_locations =
            crate::coverage::state_locations_from_env(env).unwrap_or_else(|| buckets.clone());
        LockSources {
            tables,
            buckets,
            state_locations,
        }
    }
}
