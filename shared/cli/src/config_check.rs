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
        &["force-unlock", "slack-interactions"],
    ),
    // The Slack app mode (issue 13): its two functions exist only with SlackAppChannelId.
    (
        "SlackAppChannelId",
        "SLACK_CHANNEL_ID",
        "",
        &["slack-notifier"],
    ),
    (
        "SlackBotTokenSecretArn",
        "SLACK_BOT_TOKEN_SECRET_ARN",
        "",
        &["slack-notifier", "slack-interactions"],
    ),
    (
        "SlackSigningSecretArn",
        "SLACK_SIGNING_SECRET_ARN",
        "",
        &["slack-interactions"],
    ),
    (
        "SlackApiBaseUrl",
        "SLACK_API_BASE_URL",
        "https://slack.com",
        &["slack-notifier", "slack-interactions"],
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

/// One template parameter as `template.yaml` declares it: name, `Type`, `AllowedValues`,
/// `AllowedPattern` (empty: none), `MinValue`/`MaxValue`, `MaxLength`. Every parameter of the
/// template is here, exactly as written there: `infra/sam/test_template.py` compares this table
/// with the template's Parameters, so a parameter or constraint added to the template fails that
/// test until it is added here.
pub type ParameterConstraint = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<(i64, i64)>,
    Option<usize>,
);

pub const PARAMETER_CONSTRAINTS: &[ParameterConstraint] = &[
    (
        "Architecture",
        "String",
        &["arm64", "x86_64"],
        r"",
        None,
        None,
    ),
    (
        "LockTables",
        "String",
        &[],
        r"^$|^[A-Za-z0-9_.-]{3,255}(,[A-Za-z0-9_.-]{3,255}){0,39}$",
        None,
        None,
    ),
    (
        "LockTableStreamArns",
        "String",
        &[],
        r"^$|^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]+/stream/[A-Za-z0-9:.-]+(,arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]+/stream/[A-Za-z0-9:.-]+){0,39}$",
        None,
        None,
    ),
    (
        "StateBuckets",
        "String",
        &[],
        r"^$|^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^,*?$]*)?(,[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^,*?$]*)?){0,39}$",
        None,
        None,
    ),
    (
        "StateKeyPrefix",
        "String",
        &[],
        r"^[^,*?$]*$",
        None,
        Some(1024),
    ),
    (
        "SearchLockFiles",
        "String",
        &["true", "false"],
        r"",
        None,
        None,
    ),
    (
        "S3EventsEnabled",
        "String",
        &["true", "false"],
        r"",
        None,
        None,
    ),
    (
        "UnlocksPaused",
        "String",
        &["true", "false"],
        r"",
        None,
        None,
    ),
    (
        "WarnAfter",
        "String",
        &[
            "5m", "10m", "15m", "30m", "45m", "1h", "90m", "2h", "3h", "4h", "6h", "8h", "12h",
            "1d", "2d", "3d", "7d",
        ],
        r"",
        None,
        None,
    ),
    (
        "ExpireAfter",
        "String",
        &[
            "30m", "1h", "2h", "3h", "4h", "6h", "8h", "12h", "1d", "2d", "3d", "7d",
        ],
        r"",
        None,
        None,
    ),
    (
        "RemindEvery",
        "String",
        &[],
        r"^([0-9]+[smhd])+$",
        None,
        None,
    ),
    ("AutoExpire", "String", &["true", "false"], r"", None, None),
    ("LockPolicy", "String", &[], r"", None, None),
    (
        "ApprovalTtl",
        "String",
        &[],
        r"^(([1-9]|[1-5][0-9])m|([1-9]|[1-9][0-9]|1[0-5][0-9]|16[0-8])h|[1-7]d)$",
        None,
        None,
    ),
    ("DryRun", "String", &["true", "false"], r"", None, None),
    ("ScheduleExpression", "String", &[], r"", None, None),
    (
        "ScheduleState",
        "String",
        &["ENABLED", "DISABLED"],
        r"",
        None,
        None,
    ),
    (
        "AlertEmail",
        "String",
        &[],
        r"^$|^[^@\s]+@[^@\s]+$",
        None,
        None,
    ),
    (
        "SlackWorkspaceId",
        "String",
        &[],
        r"^$|^[0-9A-Z]{1,255}$",
        None,
        None,
    ),
    (
        "SlackChannelId",
        "String",
        &[],
        r"^$|^[A-Za-z0-9]+$",
        None,
        None,
    ),
    (
        "ApprovalTopicName",
        "String",
        &[],
        r"^$|^[A-Za-z0-9_-]{1,19}$",
        None,
        None,
    ),
    (
        "ApprovalPublisherArns",
        "CommaDelimitedList",
        &[],
        r"",
        None,
        None,
    ),
    ("ApproverAllowList", "String", &[], r"", None, None),
    (
        "SlackAppChannelId",
        "String",
        &[],
        r"^$|^[A-Z0-9]{9,12}$",
        None,
        None,
    ),
    (
        "SlackBotTokenSecretArn",
        "String",
        &[],
        r"^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$",
        None,
        None,
    ),
    (
        "SlackSigningSecretArn",
        "String",
        &[],
        r"^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$",
        None,
        None,
    ),
    (
        "SlackApiBaseUrl",
        "String",
        &[],
        r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        None,
        None,
    ),
    (
        "MetricsNamespace",
        "String",
        &[],
        r"^$|^(?!AWS/)[A-Za-z0-9._/#:-]{1,255}$",
        None,
        None,
    ),
    (
        "LogLevel",
        "String",
        &["TRACE", "DEBUG", "INFO", "WARN", "ERROR"],
        r"",
        None,
        None,
    ),
    (
        "LogRetentionDays",
        "Number",
        &[
            "1", "3", "5", "7", "14", "30", "60", "90", "120", "150", "180", "365", "400", "545",
            "731", "1096", "1827", "2192", "2557", "2922", "3288", "3653",
        ],
        r"",
        None,
        None,
    ),
    (
        "ReaperSilenceAlarmSeconds",
        "Number",
        &["600", "900", "1800", "3600", "7200", "21600", "86400"],
        r"",
        None,
        None,
    ),
    (
        "StreamIteratorAgeAlarmSeconds",
        "Number",
        &["300", "600", "900", "1800", "3600", "7200", "21600"],
        r"",
        None,
        None,
    ),
    ("StreamBatchSize", "Number", &[], r"", Some((1, 1000)), None),
    (
        "StreamMaximumRetryAttempts",
        "Number",
        &[],
        r"",
        Some((0, 100)),
        None,
    ),
    (
        "LocalEmulator",
        "String",
        &["true", "false"],
        r"",
        None,
        None,
    ),
    ("ScanSegments", "Number", &[], r"", Some((1, 64)), None),
    (
        "PermissionsBoundary",
        "String",
        &[],
        r"^$|^arn:aws[a-z-]*:iam::[0-9]{12}:policy/[A-Za-z0-9+=,.@_/-]+$",
        None,
        None,
    ),
    (
        "RoleNamePrefix",
        "String",
        &[],
        r"^$|^[A-Za-z0-9+=,.@_-]{1,50}$",
        None,
        None,
    ),
    ("SubnetIds", "CommaDelimitedList", &[], r"", None, None),
    (
        "SecurityGroupIds",
        "CommaDelimitedList",
        &[],
        r"",
        None,
        None,
    ),
    (
        "LockTableKmsKeyArns",
        "String",
        &[],
        r"^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+(,arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+)*$",
        None,
        None,
    ),
    (
        "StateBucketKmsKeyArns",
        "String",
        &[],
        r"^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+(,arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+)*$",
        None,
        None,
    ),
    (
        "TopicKmsKeyArn",
        "String",
        &[],
        r"^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$",
        None,
        None,
    ),
    (
        "LedgerKmsKeyArn",
        "String",
        &[],
        r"^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$",
        None,
        None,
    ),
];

/// Whether `value` matches a CloudFormation `AllowedPattern` (a Java regular expression matched
/// against the whole value). The template's one construct the `regex` crate lacks, a negative
/// lookahead right after `^` (`^(?!AWS/)…`, MetricsNamespace), is read as "does not start with".
fn matches_pattern(pattern: &str, value: &str) -> Result<bool, String> {
    // Each top-level alternative on its own: a lookahead belongs to its alternative.
    let mut alternatives = Vec::new();
    let (mut depth, mut start, mut escaped, mut in_class) = (0i32, 0usize, false, false);
    for (i, c) in pattern.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' => in_class = true,
            ']' => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => depth -= 1,
            '|' if depth == 0 && !in_class => {
                alternatives.push(&pattern[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    alternatives.push(&pattern[start..]);
    for alternative in alternatives {
        let (refused, rest) = match alternative
            .strip_prefix("^(?!")
            .and_then(|r| r.split_once(')'))
        {
            Some((refused, rest)) => (Some(refused), format!("^{rest}")),
            None => (None, alternative.to_owned()),
        };
        let regex = regex::Regex::new(&format!("^(?:{rest})$")).map_err(|e| {
            format!("the template's AllowedPattern {pattern:?} cannot be read: {e}")
        })?;
        if regex.is_match(value) && refused.is_none_or(|r| !value.starts_with(r)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The template's own constraints on the overrides, as CloudFormation applies them before
/// anything is deployed, and override names the template does not have: SAM CLI passes only the
/// template's parameters to CloudFormation and drops any other key without a word (SAM CLI
/// 1.170.0, `samcli/commands/deploy/deploy_context.py`, `DeployContext.merge_parameters`: it
/// iterates `template_dict["Parameters"]` and looks each one up in the overrides), so a typo'd
/// name silently leaves the parameter at its default.
pub fn constraints(overrides: &BTreeMap<String, String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (name, value) in overrides {
        let Some((_, kind, values, pattern, range, max_length)) =
            PARAMETER_CONSTRAINTS.iter().find(|(p, ..)| p == name)
        else {
            let close = PARAMETER_CONSTRAINTS
                .iter()
                .map(|(p, ..)| *p)
                .find(|p| p.eq_ignore_ascii_case(name))
                .map(|p| format!("did you mean {p}? "))
                .unwrap_or_default();
            problems.push(Problem {
                parameter: name.clone(),
                problem: format!("{name} is not a parameter of the template: SAM would drop it silently and deploy without it"),
                fix: format!("{close}use one of the template's parameters (infra/sam/README.md lists them), or remove {name}"),
            });
            continue;
        };
        let mut refuse = |problem: String, fix: String| {
            problems.push(Problem {
                parameter: (*name).to_owned(),
                problem,
                fix,
            })
        };
        if !values.is_empty() && !values.contains(&value.as_str()) {
            refuse(
                format!("{name}={value:?} is not one of the template's AllowedValues"),
                format!("set {name} to one of: {}", values.join(", ")),
            );
        }
        if let Some(max) = max_length {
            if value.chars().count() > *max {
                refuse(
                    format!(
                        "{name} is {} characters long; the template allows at most {max}",
                        value.chars().count()
                    ),
                    format!("shorten {name} to at most {max} characters"),
                );
            }
        }
        if let Some((min, max)) = range {
            match value.trim().parse::<i64>() {
                Ok(n) if (*min..=*max).contains(&n) => {}
                Ok(_) => refuse(
                    format!("{name}={value:?} is outside the template's MinValue..MaxValue {min}..{max}"),
                    format!("set {name} to a whole number from {min} to {max}"),
                ),
                Err(_) => refuse(
                    format!("{name}={value:?} is not a number"),
                    format!("set {name} to a whole number from {min} to {max}"),
                ),
            }
        } else if *kind == "Number" && value.trim().parse::<f64>().is_err() {
            refuse(
                format!("{name}={value:?} is not a number (the parameter's Type is Number)"),
                format!("set {name} to a number"),
            );
        }
        if !pattern.is_empty() {
            // A CommaDelimitedList's pattern applies to each of its entries.
            let entries: Vec<&str> = if *kind == "CommaDelimitedList" {
                value.split(',').collect()
            } else {
                vec![value.as_str()]
            };
            for entry in entries {
                match matches_pattern(pattern, entry) {
                    Ok(true) => {}
                    Ok(false) => refuse(
                        format!("{name}={entry:?} does not match the template's AllowedPattern {pattern}"),
                        format!("write {name} in the form that pattern allows (infra/sam/README.md describes each parameter)"),
                    ),
                    Err(e) => refuse(e, "report this: the checker must read every pattern of the template".to_owned()),
                }
            }
        }
    }
    problems
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
    let mut problems = constraints(overrides);
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
                // Said once, and not at all for a value the template's constraints already
                // refuse (CloudFormation stops the deploy before any function starts).
                if !problems.iter().any(|p| p.parameter == problem.parameter) {
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
    let slack_app = [
        "SlackAppChannelId",
        "SlackBotTokenSecretArn",
        "SlackSigningSecretArn",
    ];
    rule(
        slack_app.iter().all(|p| set(p)) || !slack_app.iter().any(|p| set(p)),
        "SlackAppChannelId/SlackBotTokenSecretArn/SlackSigningSecretArn",
        "the Slack app mode is half configured (template Rule SlackAppNeedsChannelTokenAndSigningSecret)",
        "set all of SlackAppChannelId, SlackBotTokenSecretArn and SlackSigningSecretArn, or none",
    );
    rule(
        set("AlertEmail")
            || set("SlackChannelId")
            || set("SlackAppChannelId")
            || set("ApprovalPublisherArns"),
        "AlertEmail",
        "nobody would hear of a stale lock or be able to approve an unlock (template Rule SomebodyIsAlerted)",
        "set AlertEmail, or SlackWorkspaceId and SlackChannelId, or the Slack app mode (SlackAppChannelId and its two secrets), or ApprovalPublisherArns",
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
    fn the_slack_app_mode_needs_all_three_and_alerts_somebody() {
        let token = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:lockreaper/slack-bot-token-AbCdEf";
        let signing =
            "arn:aws:secretsmanager:eu-west-1:111122223333:secret:lockreaper/slack-signing-GhIjKl";
        let app = [
            ("LockTables", "tf-locks"),
            ("SlackAppChannelId", "C0123ABCDEF"),
            ("SlackBotTokenSecretArn", token),
            ("SlackSigningSecretArn", signing),
        ];
        // the Slack app mode alone is somebody alerted (no AlertEmail, no Chatbot)
        assert_eq!(check(&values(&app)), []);
        let half = values(&app[..3]);
        let problems = check(&half);
        assert_eq!(
            problems
                .iter()
                .map(|p| p.parameter.as_str())
                .collect::<Vec<_>>(),
            ["SlackAppChannelId/SlackBotTokenSecretArn/SlackSigningSecretArn"],
            "{problems:#?}"
        );
        // an alias or a name is not a secret ARN, and the channel is an ID, not a name
        let named = values(&[
            ("LockTables", "tf-locks"),
            ("SlackAppChannelId", "#ops"),
            ("SlackBotTokenSecretArn", "lockreaper/slack-bot-token"),
            ("SlackSigningSecretArn", signing),
        ]);
        let parameters: Vec<String> = check(&named).into_iter().map(|p| p.parameter).collect();
        assert!(
            parameters.contains(&"SlackAppChannelId".to_owned()),
            "{parameters:?}"
        );
        assert!(
            parameters.contains(&"SlackBotTokenSecretArn".to_owned()),
            "{parameters:?}"
        );
        let v = with_defaults(&values(&app));
        let notifier = function_env(&v, "slack-notifier");
        assert!(notifier.contains(&("SLACK_CHANNEL_ID".to_owned(), "C0123ABCDEF".to_owned())));
        assert!(notifier.contains(&(
            "SLACK_API_BASE_URL".to_owned(),
            "https://slack.com".to_owned()
        )));
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

    #[test]
    fn the_templates_constraints_name_parameter_value_and_allowed_set() {
        let problems = constraints(&values(&[
            ("WarnAfter", "7m"),
            ("LockTables", "tf locks"),
            ("ScanSegments", "65"),
            ("StreamBatchSize", "many"),
            ("MetricsNamespace", "AWS/Lambda"),
            ("SubnetIds", "subnet-1,subnet-2"),
            ("StateKeyPrefix", &"k".repeat(1025)),
        ]));
        let find = |name: &str| {
            problems
                .iter()
                .find(|p| p.parameter == name)
                .unwrap_or_else(|| panic!("{name}: {problems:#?}"))
        };
        let warn = find("WarnAfter");
        assert_eq!(
            warn.problem,
            "WarnAfter=\"7m\" is not one of the template's AllowedValues"
        );
        assert!(
            warn.fix
                .starts_with("set WarnAfter to one of: 5m, 10m, 15m, 30m"),
            "{}",
            warn.fix
        );
        assert!(find("LockTables")
            .problem
            .contains("does not match the template's AllowedPattern ^$|^[A-Za-z0-9_.-]{3,255}"));
        assert!(find("ScanSegments")
            .problem
            .contains("outside the template's MinValue..MaxValue 1..64"));
        assert!(find("StreamBatchSize").problem.contains("is not a number"));
        assert!(find("MetricsNamespace").problem.contains("AllowedPattern"));
        assert!(find("StateKeyPrefix").problem.contains("at most 1024"));
        assert!(
            !problems.iter().any(|p| p.parameter == "SubnetIds"),
            "{problems:#?}"
        );
        let fine = constraints(&values(&[
            ("WarnAfter", "90m"),
            ("LockTables", "tf-locks,gyro.locks"),
            ("ScanSegments", "64"),
            ("MetricsNamespace", "Team/LockReaper"),
            ("ApprovalTtl", "168h"),
            ("LogRetentionDays", "365"),
            ("StateBuckets", "acme-tfstate/env/,acme.gyro"),
        ]));
        assert_eq!(fine, []);
    }

    #[test]
    fn an_unknown_parameter_name_is_a_problem_sam_would_hide() {
        let problems = check(&values(&[
            ("LockTables", "tf-locks"),
            ("AlertEmail", "ops@example.com"),
            ("autoexpire", "true"),
        ]));
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].parameter, "autoexpire");
        assert!(problems[0]
            .problem
            .contains("not a parameter of the template: SAM would drop it silently"));
        assert!(
            problems[0].fix.starts_with("did you mean AutoExpire?"),
            "{}",
            problems[0].fix
        );
    }

    #[test]
    fn every_pattern_of_the_template_is_read_and_lookahead_refuses() {
        for (name, _, _, pattern, _, _) in PARAMETER_CONSTRAINTS {
            if !pattern.is_empty() {
                assert!(matches_pattern(pattern, "x").is_ok(), "{name}: {pattern}");
            }
        }
        let namespace = r"^$|^(?!AWS/)[A-Za-z0-9._/#:-]{1,255}$";
        assert_eq!(matches_pattern(namespace, ""), Ok(true));
        assert_eq!(matches_pattern(namespace, "AWS/DynamoDB"), Ok(false));
        assert_eq!(matches_pattern(namespace, "LockReaper/x"), Ok(true));
        // whole-value match, as CloudFormation applies AllowedPattern
        assert_eq!(matches_pattern("[a-z]+", "abc1"), Ok(false));
    }

    #[test]
    fn a_value_the_template_refuses_is_said_once() {
        let problems = check(&values(&[
            ("LockTables", "tf-locks"),
            ("AlertEmail", "ops@example.com"),
            ("UnlocksPaused", "yes"),
        ]));
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].problem.contains("AllowedValues"));
    }
}
