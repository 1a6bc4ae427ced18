//! Reading the policy from the environment: `WARN_AFTER`, `EXPIRE_AFTER`, `AUTO_EXPIRE`,
//! `REMIND_EVERY` and the `LOCK_POLICY` JSON of per-path overrides, every problem recorded at once.

use std::time::Duration;

use serde::Deserialize;

use super::{PathOverride, StaleLockPolicy};
use crate::config::{format_duration, parse_bool, parse_duration, ConfigError, Env};

impl StaleLockPolicy {
    pub const WARN_AFTER: &'static str = "WARN_AFTER";
    pub const EXPIRE_AFTER: &'static str = "EXPIRE_AFTER";
    pub const AUTO_EXPIRE: &'static str = "AUTO_EXPIRE";
    pub const REMIND_EVERY: &'static str = "REMIND_EVERY";
    pub const LOCK_POLICY: &'static str = "LOCK_POLICY";

    /// Reads `WARN_AFTER`, `EXPIRE_AFTER`, `AUTO_EXPIRE`, `REMIND_EVERY` and `LOCK_POLICY`,
    /// recording every problem in `env` (so one failed start lists them all). A bad value leaves
    /// its default in place; callers must still check `env.finish`.
    ///
    /// Rules beyond the syntax: durations must be longer than zero (a zero `EXPIRE_AFTER` would
    /// propose unlocking a running apply the moment it starts, a zero `REMIND_EVERY` would repeat
    /// every alert every sweep), and `EXPIRE_AFTER` may not be shorter than `WARN_AFTER`, neither
    /// globally nor for any `LOCK_POLICY` entry once its missing fields are taken from the globals.
    pub fn from_env(env: &mut Env) -> StaleLockPolicy {
        let defaults = StaleLockPolicy::default();
        let warn = duration_var(env, Self::WARN_AFTER);
        let expire = duration_var(env, Self::EXPIRE_AFTER);
        let remind = duration_var(env, Self::REMIND_EVERY);
        let auto_expire = env.parsed(Self::AUTO_EXPIRE, defaults.auto_expire, parse_bool);

        let globals_valid = !matches!(warn, Some(Err(()))) && !matches!(expire, Some(Err(())));
        let warn_after = match warn {
            Some(Ok(d)) => d,
            _ => defaults.warn_after,
        };
        let expire_after = match expire {
            Some(Ok(d)) => d,
            _ => defaults.expire_after,
        };
        let remind_every = match remind {
            Some(Ok(d)) => d,
            _ => defaults.remind_every,
        };
        if globals_valid && expire_after < warn_after {
            let warn_source = if env.get(Self::WARN_AFTER).is_some() {
                "WARN_AFTER"
            } else {
                "the default WARN_AFTER"
            };
            let expire_source = if env.get(Self::EXPIRE_AFTER).is_some() {
                ""
            } else {
                "the default "
            };
            env.error(ConfigError::new(
                Self::EXPIRE_AFTER,
                format!(
                    "{expire_source}{} is shorter than {warn_source} {}; a lock must be warned about before it is proposed for unlock, so set EXPIRE_AFTER ≥ WARN_AFTER",
                    format_duration(expire_after),
                    format_duration(warn_after),
                ),
            ));
        }

        let overrides = match env.get(Self::LOCK_POLICY).map(str::to_owned) {
            None => Vec::new(),
            Some(text) => parse_lock_policy(
                &text,
                globals_valid.then_some((warn_after, expire_after)),
                env,
            ),
        };

        StaleLockPolicy {
            warn_after,
            expire_after,
            auto_expire,
            remind_every,
            overrides,
        }
    }
}

/// Reads one duration variable: `None` when unset, `Some(Err(()))` after recording an error.
fn duration_var(env: &mut Env, name: &'static str) -> Option<Result<Duration, ()>> {
    let text = env.get(name)?.to_owned();
    let result = parse_duration(&text).and_then(|d| {
        if d.is_zero() {
            Err(format!(
                "{text:?} is zero; expected a duration longer than 0s such as `90m` or `4h`"
            ))
        } else {
            Ok(d)
        }
    });
    Some(result.map_err(|problem| env.error(ConfigError::new(name, problem))))
}

/// One `LOCK_POLICY` entry as written. Durations are strings in the `WARN_AFTER` syntax.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    path: String,
    #[serde(default)]
    warn_after: Option<String>,
    #[serde(default)]
    expire_after: Option<String>,
    #[serde(default)]
    auto_expire: Option<bool>,
}

const LOCK_POLICY_EXAMPLE: &str = r#"[{"path": "acme-tfstate/prod/*", "warn_after": "30m", "expire_after": "2h", "auto_expire": false}]"#;

/// Parses `LOCK_POLICY`, recording one error per problem. Entries are numbered from 0, as in JSON.
/// `globals` is `(WARN_AFTER, EXPIRE_AFTER)` when both are valid, for the per-entry order check.
fn parse_lock_policy(
    text: &str,
    globals: Option<(Duration, Duration)>,
    env: &mut Env,
) -> Vec<PathOverride> {
    let var = StaleLockPolicy::LOCK_POLICY;
    let entries: Vec<serde_json::Value> = match serde_json::from_str::<serde_json::Value>(text) {
        Err(e) => {
            env.error(ConfigError::new(
                var,
                format!("is not valid JSON ({e}); expected an array such as {LOCK_POLICY_EXAMPLE}"),
            ));
            return Vec::new();
        }
        Ok(serde_json::Value::Array(entries)) => entries,
        Ok(other) => {
            env.error(ConfigError::new(
                var,
                format!(
                    "is a JSON {}, not an array; expected an array such as {LOCK_POLICY_EXAMPLE}",
                    json_type(&other)
                ),
            ));
            return Vec::new();
        }
    };

    let mut overrides = Vec::new();
    for (index, value) in entries.into_iter().enumerate() {
        let label = match value.get("path").and_then(|p| p.as_str()) {
            Some(p) => format!("entry {index} ({p:?})"),
            None => format!("entry {index}"),
        };
        let mut problems = Vec::new();
        let entry = match serde_json::from_value::<PolicyEntry>(value) {
            Ok(entry) => entry,
            Err(e) => {
                env.error(ConfigError::new(var, format!("{label}: {e}")));
                continue;
            }
        };
        let mut duration = |field: &str, text: &Option<String>| -> Option<Duration> {
            let text = text.as_deref()?;
            match parse_duration(text) {
                Ok(d) if d.is_zero() => {
                    problems.push(format!(
                        "{field} {text:?} is zero; expected a duration longer than 0s such as `90m` or `4h`"
                    ));
                    None
                }
                Ok(d) => Some(d),
                Err(problem) => {
                    problems.push(format!("{field}: {problem}"));
                    None
                }
            }
        };
        let warn_after = duration("warn_after", &entry.warn_after);
        let expire_after = duration("expire_after", &entry.expire_after);
        let durations_valid = (entry.warn_after.is_none() || warn_after.is_some())
            && (entry.expire_after.is_none() || expire_after.is_some());

        if entry.path.trim().is_empty() {
            problems.push(
                "`path` is empty; expected a glob on the state path such as `acme-tfstate/prod/*`"
                    .to_owned(),
            );
        }
        if entry.warn_after.is_none() && entry.expire_after.is_none() && entry.auto_expire.is_none()
        {
            problems.push(
                "sets none of `warn_after`, `expire_after`, `auto_expire`, so it would have no effect"
                    .to_owned(),
            );
        }
        let sets_threshold = entry.warn_after.is_some() || entry.expire_after.is_some();
        if let (true, true, Some((global_warn, global_expire))) =
            (durations_valid, sets_threshold, globals)
        {
            let warn = warn_after.unwrap_or(global_warn);
            let expire = expire_after.unwrap_or(global_expire);
            if expire < warn {
                let source = |own: bool, name: &str| {
                    if own {
                        String::new()
                    } else {
                        format!(" (from {name})")
                    }
                };
                problems.push(format!(
                    "expire_after {}{} is shorter than warn_after {}{}; a lock must be warned about before it is proposed for unlock",
                    format_duration(expire),
                    source(expire_after.is_some(), "EXPIRE_AFTER"),
                    format_duration(warn),
                    source(warn_after.is_some(), "WARN_AFTER"),
                ));
            }
        }
        let compiled =
            match PathOverride::new(&entry.path, warn_after, expire_after, entry.auto_expire) {
                Ok(o) => Some(o),
                Err(e) => {
                    problems.push(format!("bad glob: {e}"));
                    None
                }
            };
        match compiled {
            Some(o) if problems.is_empty() => overrides.push(o),
            _ => {
                for problem in problems {
                    env.error(ConfigError::new(var, format!("{label}: {problem}")));
                }
            }
        }
    }
    overrides
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
