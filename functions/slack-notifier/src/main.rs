//! PLACEHOLDER for `functions/slack-notifier` (issue 13), which is written on the `notifier`
//! branch; that branch's crate replaces this directory whole on merge. It exists here only so that
//! the build lists (`infra/sam/local_build.py`, `make package`, `sam build`) and
//! `template.yaml`'s `CodeUri: functions/slack-notifier` have a crate to build: `sam deploy`
//! packages every function's `CodeUri`, whatever its condition, so without it no stack could be
//! deployed from this branch, with the Slack app mode off or on.
//!
//! It reads the deploy contract's environment (so that a misconfigured stack is told which
//! variable is wrong) and then refuses to start: it posts nothing, so a stack deployed from this
//! branch with the Slack app mode on fails loudly (`SlackNotifierErrorsAlarm`) instead of
//! pretending to notify.

use lockreaper_core::config::Env;

/// The notifier's variables (issue 13's deploy contract).
const SLACK_BOT_TOKEN_SECRET_ARN: &str = "SLACK_BOT_TOKEN_SECRET_ARN";
const SLACK_CHANNEL_ID: &str = "SLACK_CHANNEL_ID";
const SLACK_API_BASE_URL: &str = "SLACK_API_BASE_URL";

fn main() -> std::process::ExitCode {
    let mut env = Env::new(std::env::vars());
    env.required(
        SLACK_BOT_TOKEN_SECRET_ARN,
        "the ARN of the Secrets Manager secret holding the Slack app's bot token",
    );
    env.required(SLACK_CHANNEL_ID, "the Slack channel ID, e.g. C0123ABCDEF");
    env.get(SLACK_API_BASE_URL);
    env.required_ledger_table();
    if let Err(errors) = env.finish(()) {
        eprintln!("slack-notifier: invalid configuration: {errors}");
    }
    eprintln!(
        "slack-notifier: this build is the placeholder of the `template` branch, not the notifier \
         (issue 13: merge the `notifier` branch's functions/slack-notifier); nothing was posted"
    );
    std::process::ExitCode::FAILURE
}
