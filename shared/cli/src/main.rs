//! `lockreaper`: the operator CLI for a lockreaper deployment. Configured by the same environment
//! variables as the Lambda functions, each also a flag (a flag wins). See `lockreaper --help`.

mod approve;
mod audit;
mod config;
mod config_check;
mod doctor;
mod doctor_roles;
mod failure;
mod locks;
mod progress;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::approve::Action;
use crate::failure::Failure;

const ABOUT: &str = "Find and release stale Terraform/OpenTofu and Gyro state locks (operator CLI for a lockreaper deployment)";

const LONG_ABOUT: &str = "\
Find and release stale Terraform/OpenTofu and Gyro state locks: the operator CLI for a lockreaper \
deployment.

It reads the same environment variables as the Lambda functions (LOCK_TABLES, LOCK_BUCKETS, \
LEDGER_TABLE, APPROVAL_TOPIC_ARN, WARN_AFTER, ...), so the values of the deployed stack work \
as they are; every one is also a flag, and a flag wins. AWS access comes from the standard AWS \
environment (AWS_PROFILE, AWS_REGION, credentials, AWS_ENDPOINT_URL).";

const AFTER_HELP: &str = "\
Start here:
  export LOCK_TABLES=tf-locks LOCK_BUCKETS=acme-tfstate LEDGER_TABLE=lockreaper-ledger
  lockreaper doctor                  # is the deployment set up right?
  lockreaper locks                   # who holds which lock, for how long, and is anyone alive?
  lockreaper approve lr1.… --approver ana --reason \"runner was killed\"
  lockreaper audit acme-tfstate/network/terraform.tfstate

Exit codes: 0 done; 1 usage or configuration error (nothing done); 2 the command ran but found \
problems (a source unreachable or a lock unparseable in `locks`, a FAIL in `doctor`, AWS refused \
the call).";

const LOCKS_LONG: &str = "\
List every lock in the configured tables (LOCK_TABLES) and buckets (LOCK_BUCKETS), oldest first: \
kind, state path, lock ID, holder, operation, age, liveness evidence and the level the reaper's \
policy gives it now (fresh, warn, propose-unlock, auto-expire).

Liveness evidence, as the reaper gathers it: the state object's LastModified after the lock was \
taken; the last state write lock-metrics recorded in the ledger (with LEDGER_TABLE); Terraform's \
-md5 digest item against the state object's ETag. A state write after the lock means the holder \
is probably alive; no write proves nothing (plans write no state).

Read-only: nothing is recorded or deleted. Unparseable locks and unreachable sources are listed \
after the table, and make the exit code 2.

--json prints one document for scripts (\"schema\": \"lockreaper.locks/v1\"): generated_at, \
sources {tables, buckets}, ledger_table, policy {warn_after_seconds, expire_after_seconds, \
auto_expire, overrides}, locks [{kind, tool, location {store: dynamodb|s3, ...}, state_path, \
lock_id, who, operation, tool_version, created, created_source, age_seconds, age, level, reasons, \
liveness {state_last_modified, state_object_exists, last_state_write, digest_matches_state, \
state_written_after_lock, holder_probably_alive}, thresholds {...}, unlock_command}], \
digest_items, unparseable [{location, reason}], unreachable [{source, kind, error}], \
evidence_errors [{lock, error}], complete.";

#[derive(Parser, Debug)]
#[command(
    name = "lockreaper",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    arg_required_else_help = true,
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    settings: config::Settings,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every lock with age, holder, operation, liveness evidence and the policy's level
    #[command(long_about = LOCKS_LONG)]
    Locks(locks::Args),

    /// Approve a proposed unlock: publish the token to the approvals topic, as the chat button does
    #[command(
        long_about = "Approve a proposed unlock. Publishes {\"action\": \"approve\", \"token\": ..., \"approver\": ..., \"reason\": ...} to APPROVAL_TOPIC_ARN, as the alert's chat button does. The force-unlock function verifies the token (signature, expiry, single use), checks the lock is still exactly the one proposed, records the audit entry, deletes the lock conditionally and posts the result to the alert thread. The token's shape and expiry are checked here first; the signature can only be checked by force-unlock."
    )]
    Approve(approve::DecisionArgs),

    /// Deny a proposed unlock: the proposal is closed and the lock left alone
    Deny(approve::DecisionArgs),

    /// Silence alerts for a proposed unlock's lock for a while (at most 7d)
    Snooze(approve::SnoozeArgs),

    /// Show the audit trail of one state: every unlock lockreaper made, newest first (needs LEDGER_TABLE)
    Audit(audit::Args),

    /// Check the deployment: lock tables (key, stream), buckets (versioning, listing), ledger (keys, TTL), topics
    #[command(
        long_about = "Check the deployment's configuration against what AWS says, and print OK, WARN or FAIL for each check with a one-line fix: each lock table exists, is keyed on LockID or LockKey (S), has a NEW_AND_OLD_IMAGES stream and can be scanned; each bucket exists, has versioning enabled and can be listed; the ledger exists, is keyed on pk/sk and has TTL on expires_at; the approvals and alert topics exist and have subscribers; for each lock table (its lock and digest items) and each searched bucket (its .tflock files), the state buckets its locks point at, each covered by STATE_BUCKETS (bucket and key prefix), readable by the caller (HeadBucket, HeadObject on one state key) and in this region (at most 10,000 items per source; a WARN says when it stopped); with REAPER_ROLE_ARN, LOCK_METRICS_ROLE_ARN, FORCE_UNLOCK_ROLE_ARN and, in the Slack app mode, SLACK_NOTIFIER_ROLE_ARN, SLACK_INTERACTIONS_ROLE_ARN (the stack's role outputs; APPROVAL_SECRET_ARN adds the signing key, SLACK_BOT_TOKEN_SECRET_ARN, SLACK_SIGNING_SECRET_ARN and SLACK_ATTESTATION_SECRET_ARN the Slack app's secrets), every permission each function needs on the configured tables, streams, buckets, prefixes, ledger, topic and secret, simulated with iam:SimulatePrincipalPolicy (which the caller needs; denied, it is a WARN, never a pass): one check per function, OK or FAIL naming each denied action and resource, implicit or explicit deny. The simulation covers the roles' identity policies and permissions boundaries, not service control policies or resource policies (bucket, key, topic policies). Read-only. Exit code 2 when any check FAILs. --json prints one document for scripts (\"schema\": \"lockreaper.doctor/v1\"): region, sections [{title, checks [{status: ok|warn|fail, what, fix}]}], coverage [{source, read, capped, error, buckets [{bucket, configured_prefixes, listed, state_paths, covered, uncovered_example, example_key, readable, read_error, region, same_region}]}], roles [{function, role_arn, simulated, denied [{action, resource, leading_key, decision: implicit_deny|explicit_deny, why, missing_context}], error, simulation_denied}], counts {ok, warn, fail}, passed."
    )]
    Doctor(doctor::Args),

    #[command(
        long_about = "Check a deployment's configuration before deploying it. `config check <samconfig.toml>` reads the file's [default.deploy.parameters] parameter_overrides (or --config-env NAME), as SAM CLI does (a string or a list of Key=Value strings), gives the functions the environment the template would give them, and runs their own start-up checks (WARN_AFTER, EXPIRE_AFTER, REMIND_EVERY, AUTO_EXPIRE, LOCK_POLICY, APPROVAL_TTL, DRY_RUN, SCAN_SEGMENTS, METRICS_NAMESPACE, UNLOCKS_PAUSED, LOCK_TABLES/LOCK_BUCKETS) and the template's Rules (somewhere to look, both Slack IDs, both VPC lists, somebody alerted); also each parameter's template constraints (AllowedValues, AllowedPattern, MinValue/MaxValue, MaxLength) and override names the template does not have (SAM CLI drops those silently, deploying the default). Prints every problem with its parameter and a fix. Needs no AWS access. Exit code 2 when any problem is found, 1 when the file cannot be read or is not TOML."
    )]
    Config(config_check::Args),

    /// Print a shell completion script to stdout (bash, zsh, fish, elvish, powershell)
    #[command(
        long_about = "Print a completion script for SHELL to stdout. Install it where your shell looks, e.g. \
bash: lockreaper completions bash > ~/.local/share/bash-completion/completions/lockreaper; \
zsh: lockreaper completions zsh > \"${fpath[1]}/_lockreaper\"; \
fish: lockreaper completions fish > ~/.config/fish/completions/lockreaper.fish."
    )]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff) to stdout, or write one page per command into a directory
    #[command(
        long_about = "Print the man page of lockreaper (roff) to stdout: lockreaper man | man -l -. \
With --dir DIR, write lockreaper.1 and one page per command (lockreaper-locks.1, ...) into DIR, \
e.g. --dir ~/.local/share/man/man1."
    )]
    Man {
        /// Write lockreaper.1 and lockreaper-<command>.1 into this directory instead
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// Writes `lockreaper`'s completion script or man page(s): generated from the same clap definition
/// that parses the command line, so they can never describe flags that do not exist.
fn write_docs(command: &Command) -> Option<Result<(), String>> {
    use clap::CommandFactory;
    let mut cli = Cli::command();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cli, "lockreaper", &mut std::io::stdout());
            Some(Ok(()))
        }
        Command::Man { dir: None } => Some(
            clap_mangen::Man::new(cli)
                .render(&mut std::io::stdout())
                .or_else(|e| match e.kind() {
                    // `lockreaper man | head` closes the pipe early: not an error.
                    std::io::ErrorKind::BrokenPipe => Ok(()),
                    _ => Err(format!("cannot write the man page: {e}")),
                }),
        ),
        Command::Man { dir: Some(dir) } => Some(
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(cli, dir))
                .map(|()| eprintln!("lockreaper: man pages written to {}", dir.display()))
                .map_err(|e| format!("cannot write the man pages into {}: {e}", dir.display())),
        ),
        _ => None,
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    let settings = &cli.settings;
    match &cli.command {
        Command::Locks(args) => locks::run(settings, args).await,
        Command::Approve(args) => {
            approve::run(settings, Action::Approve, &args.token, None, &args.common).await
        }
        Command::Deny(args) => {
            approve::run(settings, Action::Deny, &args.token, None, &args.common).await
        }
        Command::Snooze(args) => {
            approve::run(
                settings,
                Action::Snooze,
                &args.token,
                Some(&args.duration),
                &args.common,
            )
            .await
        }
        Command::Audit(args) => audit::run(settings, args).await,
        Command::Doctor(args) => doctor::run(settings, args).await,
        Command::Config(args) => config_check::run(args),
        Command::Completions { .. } | Command::Man { .. } => Ok(0),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return failure::clap_exit(e),
    };
    match write_docs(&cli.command) {
        Some(Ok(())) => return ExitCode::SUCCESS,
        Some(Err(e)) => {
            eprintln!("lockreaper: {e}");
            return ExitCode::from(failure::EXIT_PROBLEMS);
        }
        None => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lockreaper: cannot start the async runtime: {e}");
            return ExitCode::from(failure::EXIT_PROBLEMS);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("lockreaper: {}", f.message());
            ExitCode::from(f.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
