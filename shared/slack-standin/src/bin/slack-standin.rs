//! `slack-standin`: the local stand-in of the Slack Web API as a process, for `make demo` and
//! `make deploy-local`, where the deployed functions (local processes started by the emulator)
//! call it over HTTP.
//!
//! `slack-standin --token <bot token> --channel <ID> [--channel <ID>…] --state <file>` prints
//! `listening on http://127.0.0.1:<port>` and then keeps `<file>` holding every message "Slack"
//! shows (a JSON array, oldest first; replaced atomically after each change), until it is killed.

use std::path::PathBuf;
use std::time::Duration;

use lockreaper_slack_standin::{SlackApi, SlackMessage};
use serde_json::{json, Value};

const USAGE: &str =
    "usage: slack-standin --token <bot token> --channel <ID> [--channel <ID>…] --state <file>";

fn as_json(messages: &[SlackMessage]) -> Value {
    Value::Array(
        messages
            .iter()
            .map(|m| {
                json!({
                    "channel": m.channel,
                    "ts": m.ts,
                    "thread_ts": m.thread_ts,
                    "text": m.text,
                    "blocks": m.blocks,
                })
            })
            .collect(),
    )
}

fn parse_args() -> Result<(String, Vec<String>, PathBuf), String> {
    let (mut token, mut channels, mut state) = (None, Vec::new(), None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--token" => token = Some(value()?),
            "--channel" => channels.push(value()?),
            "--state" => state = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    match (token, state) {
        (Some(token), Some(state)) if !channels.is_empty() => Ok((token, channels, state)),
        _ => Err(USAGE.to_owned()),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let (token, channels, state) = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("{problem}");
            return std::process::ExitCode::from(2);
        }
    };
    let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
    let slack = SlackApi::start(&token, &channels).await;
    println!("listening on {}", slack.base_url);
    let partial = state.with_extension("partial");
    let mut written = None;
    loop {
        let now = as_json(&slack.messages());
        if written.as_ref() != Some(&now) {
            let saved = std::fs::write(&partial, now.to_string())
                .and_then(|()| std::fs::rename(&partial, &state));
            if let Err(e) = saved {
                eprintln!("slack-standin: cannot write {}: {e}", state.display());
                return std::process::ExitCode::FAILURE;
            }
            written = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
