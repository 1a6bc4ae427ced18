//! Exit codes and the one-line error every failure is reported as.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done; nothing needs attention |
//! | 1 | usage or configuration error (a flag, variable or argument is missing or malformed): nothing was done |
//! | 2 | the command ran but found problems: a source was unreachable, a lock could not be parsed or its liveness evidence could not be read (`locks`), a check failed (`doctor`), or AWS refused the call (`approve`, `deny`, `snooze`, `audit`) |

use std::process::ExitCode;

/// Success: nothing needs attention.
pub const EXIT_OK: u8 = 0;
/// Usage or configuration error; nothing was done.
pub const EXIT_USAGE: u8 = 1;
/// The command ran, but found problems (or AWS refused it).
pub const EXIT_PROBLEMS: u8 = 2;

/// Why a command stopped.
#[derive(Debug)]
pub enum Failure {
    /// A flag, variable or argument is missing or malformed: exit 1.
    Usage(anyhow::Error),
    /// AWS refused or failed: exit 2.
    Problem(anyhow::Error),
}

impl Failure {
    pub fn usage(message: impl std::fmt::Display) -> Failure {
        Failure::Usage(anyhow::anyhow!("{message}"))
    }

    pub fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Problem(_) => EXIT_PROBLEMS,
        }
    }

    /// The one line printed after `lockreaper: ` (the whole `anyhow` chain, `{:#}` style).
    pub fn message(&self) -> String {
        match self {
            Failure::Usage(e) | Failure::Problem(e) => one_line(&format!("{e:#}")),
        }
    }
}

impl From<lockreaper_aws::AwsError> for Failure {
    fn from(e: lockreaper_aws::AwsError) -> Self {
        Failure::Problem(anyhow::anyhow!("{}", aws_error(&e)))
    }
}

/// `<action> <resource>: <concise reason>`.
pub fn aws_error(e: &lockreaper_aws::AwsError) -> String {
    format!("{} {}: {}", e.action, e.resource, concise(&e.message))
}

/// The longest reason printed; SDK messages can embed whole responses.
const REASON_MAX: usize = 300;

/// An SDK error message as people need it: the error code and AWS's message, without the SDK's
/// debug dump of the raw response, without repeated segments, on one line, at most 300 characters.
pub fn concise(message: &str) -> String {
    let mut text = message;
    for marker in [
        " (ServiceError(",
        " (ResponseError(",
        " (DispatchFailure(",
        " (TimeoutError(",
        " (ConstructionFailure(",
    ] {
        if let Some(i) = text.find(marker) {
            text = &text[..i];
        }
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ").map(str::trim) {
        if part.is_empty() || part == "service error" || part == "unhandled error" {
            continue;
        }
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    let text = one_line(&parts.join(": "));
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(REASON_MAX).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Collapses a multi-line message (SDK error contexts can contain newlines) into one line.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints a clap parse result: `--help`/`--version` as clap renders them (exit 0), everything else
/// as one `lockreaper: ...` line naming the problem (exit 1).
pub fn clap_exit(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::from(EXIT_OK)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(EXIT_USAGE)
        }
        _ => {
            eprintln!("lockreaper: {}", clap_message(&error.to_string()));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// clap's error text without its `error:` prefix, usage block and colours, on one line.
fn clap_message(rendered: &str) -> String {
    let lines: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut text = String::new();
    for line in lines {
        if !text.is_empty() {
            text.push_str(if line.starts_with("tip:") { "; " } else { " " });
        }
        text.push_str(line);
    }
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("{text} (see `lockreaper --help`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  <TOKEN>\n\nUsage: lockreaper approve <TOKEN>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_message(rendered),
            "the following required arguments were not provided: <TOKEN> (see `lockreaper --help`)"
        );
    }

    #[test]
    fn sdk_messages_are_cut_to_code_and_message() {
        let m = "NotFound: service error: NotFoundException: Endpoint does not exist: NotFoundException: Endpoint does not exist (ServiceError(ServiceError { source: NotFoundException { .. } }))";
        assert_eq!(
            concise(m),
            "NotFound: NotFoundException: Endpoint does not exist"
        );
        assert_eq!(concise(&"x".repeat(400)).chars().count(), 301);
    }

    #[test]
    fn chains_print_on_one_line() {
        let e = anyhow::anyhow!("HTTP 400:\n  bad\n  request").context("publish to arn:x");
        assert_eq!(
            Failure::Problem(e).message(),
            "publish to arn:x: HTTP 400: bad request"
        );
    }
}
