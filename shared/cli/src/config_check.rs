//! `lockreaper config check <samconfig.toml>`: a SAM config file's `parameter_overrides`, turned
//! into the functions' environment exactly as the template does ([`PARAMETER_VARIABLES`], held to
//! the template's `Environment` blocks by `infra/sam/test_template.py`), then checked by the
//! functions' own start-up parsing (`shared/core`'s config and policy parsers) and by the
//! template's Rules. Every problem names the parameter and how to fix it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lockreaper_core::config::{
    parse_approval_ttl, parse_bool, parse_scan_segments, Env, LockSources,
};
use lockreaper_core::coverage::STATE_BUCKETS;
use lockreaper_core::metrics::parse_namespace;
use lockreaper_core::policy::StaleLockPolicy;

use crate::failure::{Failure, EXIT_OK, EXIT_PROBLEMS};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Check a samconfig.toml's parameter_overrides as the template and the functions would.
    Check {
        /// The SAM config file (samconfig.toml).
        file: PathBuf,
        /// The SAM config environment whose `deploy.parameters` to read.
        #[arg(long, default_value = "default", value_name = "NAME")]
        config_env: String,
    },
}

/// Template parameter → function environment variable, with the parameter's default and the
/// functions that get it, exactly as `template.yaml` sets them (`VARIABLE: !Ref Parameter`).
/// `infra/sam/test_template.py` reads this table and compares it with the template.
pub const PARAMETER_VARIABLES: &[(&str, &str, &str, &[&str])] = &[
    ("LockTables", "LOCK_TABLES", "", &["reaper"]),
    ("WarnAfter", "WARN_AFTER", "1h", &["reaper"]),
    ("ExpireAfter", "EXPIRE_AFTER", "4h", &["reaper"]),
    ("RemindEvery", "REMIND_EVERY", "1h", &["reaper"]),
    ("AutoExpire", "AUTO_EXPIRE", "false", &["reaper"]),
    ("LockPolicy", "LOCK_POLICY", "", &["reaper"]),
    ("ApprovalTtl", "APPROVAL_TTL", "24h", &["reaper"]),
    ("DryRun", "DRY_RUN", "false", &["reaper"]),
    ("ScanSegments", "SCAN_SEGMENTS", "1", &["reaper"]),
    (
        "UnlocksPaused",
        "UNLOCKS_PAUSED",
        "false",
        &["reaper", "force-unlock"],
    ),
    (
        "ApproverAllowList",
        "APPROVER_ALLOW_LIST",
        "",
        &["force-unlock"],
    ),
];

/// Parameters the template's Rules, `LOCK_BUCKETS`, `STATE_BUCKETS` and `METRICS_NAMESPACE` read
/// besides those above, with defaults.
const OTHER_PARAMETERS: &[(&str, &str)] = &[
    ("MetricsNamespace", ""),
    ("StateBuckets", ""),
    ("StateKeyPrefix", ""),
    ("SearchLockFiles", "true"),
    ("AlertEmail", ""),
    ("SlackWorkspaceId", ""),
    ("SlackChannelId", ""),
    ("ApprovalPublisherArns", ""),
    ("SubnetIds", ""),
    ("SecurityGroupIds", ""),
];

/// One problem: which parameter, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub parameter: String,
    pub problem: String,
    pub fix: String,
}

pub fn run(args: &Args) -> Result<u8, Failure> {
    let Action::Check { file, config_env } = &args.action;
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
    let overrides = parameter_overrides(&text, config_env)
        .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
    let problems = check(&overrides);
    if problems.is_empty() {
        println!(
            "{}: OK ({} parameter override(s); the functions' start-up checks and the template's Rules pass)",
            file.display(),
            overrides.len()
        );
        return Ok(EXIT_OK);
    }
    println!("{}: {} problem(s):", file.display(), problems.len());
    for p in &problems {
        println!("  - {}: {}\n    fix: {}", p.parameter, p.problem, p.fix);
    }
    Ok(EXIT_PROBLEMS)
}

/// `[<env>.deploy.parameters] parameter_overrides`, as SAM CLI reads it: a string of
/// space-separated `Key=Value` entries or a list of such strings (SAM CLI's
/// `CfnParameterOverridesType`: each string is split at spaces outside quotes, and a value in
/// single or double quotes is unquoted, with `\ `, `\"` and `\'` unescaped).
pub fn parameter_overrides(text: &str, env: &str) -> Result<BTreeMap<String, String>, String> {
    let doc: toml::Table = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let overrides = doc
        .get(env)
        .and_then(|e| e.get("deploy"))
        .and_then(|d| d.get("parameters"))
        .and_then(|p| p.get("parameter_overrides"))
        .ok_or_else(|| format!("has no [{env}.deploy.parameters] parameter_overrides"))?;
    let entries: Vec<&str> = match overrides {
        toml::Value::String(s) => vec![s.as_str()],
        toml::Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_str().ok_or_else(|| {
                    format!("parameter_overrides holds {i:?}, which is not a string")
                })
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "parameter_overrides is {}, expected a string or a list of strings",
                other.type_str()
            ))
        }
    };
    let mut values = BTreeMap::new();
    for entry in entries {
        for token in split_overrides(entry)? {
            let Some((key, value)) = token.split_once('=') else {
                return Err(format!("{token:?} in parameter_overrides is not Key=Value"));
            };
            values.insert(key.to_owned(), unquote(value));
        }
    }
    Ok(values)
}

/// Splits at spaces outside single or double quotes (a backslash escapes the next character).
fn split_overrides(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ('"' | '\'', None) => {
                quote = Some(c);
                current.push(c);
            }
            (c, Some(q)) if c == q => {
                quote = None;
                current.push(c);
            }
            (' ', None) => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("{text:?} has an unclosed {q} quote"));
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

fn unquote(value: &str) -> String {
    let inner = match value.chars().next() {
        Some(q @ ('"' | '\'')) if value.len() >= 2 && value.ends_with(q) => {
            &value[1..value.len() - 1]
        }
        _ => value,
    };
    inner
        .replace("\\ ", " ")
        .replace("\\\"", "\"")
        .replace("\\'", "'")
}

/// The parameters' values, defaults filled in.
fn with_defaults(overrides: &BTreeMap<String, String>) -> BTreeMap<&'static str, String> {
    let defaults = PARAMETER_VARIABLES
        .iter()
        .map(|(p, _, d, _)| (*p, *d))
        .chain(OTHER_PARAMETERS.iter().copied());
    defaults
        .map(|(p, d)| (p, overrides.get(p).cloned().unwrap_or_else(|| d.to_owned())))
        .collect()
}

/// The environment `function` gets from these parameter values, as the template sets it.
pub fn function_env(values: &BTreeMap<&str, String>, function: &str) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = PARAMETER_VARIABLES
        .iter()
        .filter(|(_, _, _, functions)| functions.contains(&function))
        .map(|(p, var, _, _)| ((*var).to_owned(), values[p].clone()))
        .collect();
    // Each StateBuckets entry with its scope: `bucket/…` as written, a bare `bucket` with the
    // deprecated StateKeyPrefix (the template's `${Scope}`).
    let scopes = values["StateBuckets"]
        .split(',')
        .filter(|b| !b.is_empty())
        .map(|b| {
            if b.contains('/') {
                b.to_owned()
            } else {
                format!("{b}/{}", values["StateKeyPrefix"])
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    if function == "reaper" {
        // LOCK_BUCKETS: the scopes while SearchLockFiles=true.
        let buckets = if values["SearchLockFiles"] == "true" {
            scopes.clone()
        } else {
            String::new()
        };
        vars.push((LockSources::BUCKETS.to_owned(), buckets));
    }
    if function == "reaper" || function == "force-unlock" {
        // STATE_BUCKETS (evidence coverage): the scopes, always.
        vars.push((STATE_BUCKETS.to_owned(), scopes));
    }
    if function == "reaper" || function == "lock-metrics" {
        // METRICS_NAMESPACE: MetricsNamespace, else `LockReaper/<stack name>` (any stack name
        // gives a valid namespace, so a placeholder checks the same).
        let namespace = match values["MetricsNamespace"].as_str() {
            "" => "LockReaper/stack".to_owned(),
            set => set.to_owned(),
        };
        vars.push(("METRICS_NAMESPACE".to_owned(), namespace));
    }
    vars
}

/// Every problem with these overrides: the functions' own start-up checks, then the Rules.
pub fn check(overrides: &BTreeMap<String, String>) -> Vec<Problem> {
    let values = with_defaults(overrides);
    let mut problems = Vec::new();
    // The functions' start-up parsing, on the environment the template would give them.
    for function in ["reaper", "force-unlock"] {
        let mut env = Env::new(function_env(&values, function));
        if function == "reaper" {
            LockSources::from_env(&mut env);
            StaleLockPolicy::from_env(&mut env);
            env.parsed("DRY_RUN", false, parse_bool);
            env.parsed(
                "APPROVAL_TTL",
                std::time::Duration::ZERO,
                parse_approval_ttl,
            );
            env.parsed("SCAN_SEGMENTS", 1, parse_scan_segments);
            env.parsed("METRICS_NAMESPACE", String::new(), parse_namespace);
        }
        env.unlocks_paused();
        if let Err(errors) = env.finish(()) {
            for e in errors.0 {
                let (parameter, fix) = parameter_of(e.variable);
                let problem = Problem {
                    parameter,
                    // Said once, whichever functions refuse it (UNLOCKS_PAUSED reaches two).
                    problem: format!("the functions refuse {}: {}", e.variable, e.problem),
                    fix,
                };
                if !problems.contains(&problem) {
                    problems.push(problem);
                }
            }
        }
    }
    problems.extend(rules(&values));
    problems
}

/// The parameter behind an environment variable, and the fix to name.
fn parameter_of(variable: &str) -> (String, String) {
    let parameter = PARAMETER_VARIABLES
        .iter()
        .find(|(_, v, _, _)| *v == variable)
        .map(|(p, ..)| *p);
    let fix = match variable {
        "WARN_AFTER" | "EXPIRE_AFTER" | "REMIND_EVERY" => {
            "use a duration such as 30m, 4h or 1d, with WarnAfter at most ExpireAfter".to_owned()
        }
        "LOCK_POLICY" => r#"write LockPolicy as a JSON list such as [{"path": "acme-tfstate/prod/*", "warn_after": "30m", "expire_after": "2h", "auto_expire": false}], inside single quotes in the samconfig entry"#.to_owned(),
        "APPROVAL_TTL" => "set ApprovalTtl between 1m and 7d, e.g. 24h".to_owned(),
        "UNLOCKS_PAUSED" => "set UnlocksPaused to true or false".to_owned(),
        v if v == LockSources::BUCKETS || v == LockSources::TABLES => {
            return (
                "LockTables/StateBuckets".to_owned(),
                "set LockTables, or StateBuckets with SearchLockFiles=true".to_owned(),
            )
        }
        _ => format!(
            "set {} to the form the problem names",
            parameter.unwrap_or(variable)
        ),
    };
    (parameter.unwrap_or(variable).to_owned(), fix)
}

/// The template's Rules (infra/sam/template.in.yaml `Rules:`), on the same values. WarnAfter
/// above ExpireAfter is the reaper's own check above (`StaleLockPolicy::from_env`).
fn rules(values: &BTreeMap<&str, String>) -> Vec<Problem> {
    let set = |p: &str| !values[p].split(',').all(str::is_empty);
    let mut problems = Vec::new();
    let mut rule = |holds: bool, parameter: &str, problem: &str, fix: &str| {
        if !holds {
            problems.push(Problem {
                parameter: parameter.to_owned(),
                problem: problem.to_owned(),
                fix: fix.to_owned(),
            });
        }
    };
    rule(
        set("LockTables") || (set("StateBuckets") && values["SearchLockFiles"] == "true"),
        "LockTables",
        "the reaper has nowhere to look (template Rule SomewhereToLook)",
        "set LockTables, or StateBuckets with SearchLockFiles=true",
    );
    rule(
        set("SlackWorkspaceId") == set("SlackChannelId"),
        "SlackWorkspaceId/SlackChannelId",
        "only one of the two Slack IDs is set (template Rule SlackNeedsBothIds)",
        "set both SlackWorkspaceId and SlackChannelId, or neither",
    );
    rule(
        set("SubnetIds") == set("SecurityGroupIds"),
        "SubnetIds/SecurityGroupIds",
        "only one of the two VPC lists is set (template Rule VpcNeedsSubnetsAndSecurityGroups)",
        "set both SubnetIds and SecurityGroupIds, or neither",
    );
    rule(
        set("AlertEmail") || set("SlackChannelId") || set("ApprovalPublisherArns"),
        "AlertEmail",
        "nobody would hear of a stale lock or be able to approve an unlock (template Rule SomebodyIsAlerted)",
        "set AlertEmail, or SlackWorkspaceId and SlackChannelId, or ApprovalPublisherArns",
    );
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn reads_both_forms_as_sam_does() {
        let list = r#"
[default.deploy.parameters]
parameter_overrides = [
  "LockTables=tf-locks",
  'StateKeyPrefix=""',
  'ScheduleExpression="rate(5 minutes)"',
  "LockPolicy='[{\"path\": \"a/*\", \"auto_expire\": false}]'",
]
"#;
        let got = parameter_overrides(list, "default").unwrap();
        assert_eq!(got["LockTables"], "tf-locks");
        assert_eq!(got["StateKeyPrefix"], "");
        assert_eq!(got["ScheduleExpression"], "rate(5 minutes)");
        assert_eq!(
            got["LockPolicy"],
            r#"[{"path": "a/*", "auto_expire": false}]"#
        );
        let string = r#"
[prod.deploy.parameters]
parameter_overrides = "LockTables=tf-locks AlertEmail=ops@example.com Note=a\\ b"
"#;
        let got = parameter_overrides(string, "prod").unwrap();
        assert_eq!(got["AlertEmail"], "ops@example.com");
        assert_eq!(got["Note"], "a b");
        assert!(parameter_overrides(string, "default")
            .unwrap_err()
            .contains("no [default.deploy.parameters] parameter_overrides"));
        assert!(parameter_overrides("x = 'a' 'b'", "default")
            .unwrap_err()
            .contains("not valid TOML"));
        let unclosed = "[default.deploy.parameters]\nparameter_overrides = \"A='x\"\n";
        assert!(parameter_overrides(unclosed, "default")
            .unwrap_err()
            .contains("unclosed"));
    }

    #[test]
    fn a_good_configuration_passes() {
        let good = values(&[
            ("LockTables", "tf-locks"),
            ("AlertEmail", "ops@example.com"),
        ]);
        assert_eq!(check(&good), []);
    }

    #[test]
    fn every_problem_names_its_parameter() {
        let bad = values(&[
            ("LockTables", ""),
            ("WarnAfter", "6h"),
            ("ExpireAfter", "4h"),
            ("ApprovalTtl", "30d"),
            ("LockPolicy", "[{\"path\": 1}]"),
            ("UnlocksPaused", "yes"),
            ("SlackWorkspaceId", "T0123"),
        ]);
        let problems = check(&bad);
        let parameters: Vec<&str> = problems.iter().map(|p| p.parameter.as_str()).collect();
        for expected in [
            "ExpireAfter",
            "ApprovalTtl",
            "LockPolicy",
            "UnlocksPaused",
            "LockTables/StateBuckets",
            "SlackWorkspaceId/SlackChannelId",
            "AlertEmail",
        ] {
            assert!(parameters.contains(&expected), "{expected}: {problems:#?}");
        }
        // UNLOCKS_PAUSED reaches both functions; the problem is said once.
        assert_eq!(
            parameters.iter().filter(|p| **p == "UnlocksPaused").count(),
            1,
            "{problems:#?}"
        );
        for p in &problems {
            assert!(!p.fix.is_empty(), "{p:?}");
        }
    }

    #[test]
    fn lock_buckets_as_the_template_builds_them() {
        let v = with_defaults(&values(&[
            ("StateBuckets", "a,b"),
            ("StateKeyPrefix", "env/"),
        ]));
        let env = function_env(&v, "reaper");
        assert!(env.contains(&("LOCK_BUCKETS".to_owned(), "a/env/,b/env/".to_owned())));
        assert!(env.contains(&("STATE_BUCKETS".to_owned(), "a/env/,b/env/".to_owned())));
        let own = with_defaults(&values(&[
            ("StateBuckets", "a/net/,b"),
            ("StateKeyPrefix", "env/"),
        ]));
        let own_env = function_env(&own, "force-unlock");
        assert!(own_env.contains(&("STATE_BUCKETS".to_owned(), "a/net/,b/env/".to_owned())));
        assert!(function_env(&own, "reaper").contains(&(
            "METRICS_NAMESPACE".to_owned(),
            "LockReaper/stack".to_owned()
        )));
        let off = with_defaults(&values(&[
            ("StateBuckets", "a"),
            ("SearchLockFiles", "false"),
        ]));
        assert!(function_env(&off, "reaper").contains(&("LOCK_BUCKETS".to_owned(), String::new())));
        assert!(function_env(&v, "force-unlock")
            .iter()
            .all(|(k, _)| k != "LOCK_BUCKETS" && k != "WARN_AFTER"));
    }
}
