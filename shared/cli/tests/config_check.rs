//! `lockreaper config check` on samconfig files: a good one, a bad one with every kind of mistake,
//! and the repository's `samconfig.toml.example` as shipped and with every "# e.g." example value
//! used in place of its entry (as the file's comments say to). Runs the real binary; no AWS.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `lockreaper config check <file>`: (exit code, stdout, stderr).
fn check(file: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lockreaper"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["config", "check"])
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[test]
fn a_good_samconfig_passes() {
    let (code, out, err) = check(&fixture("samconfig-good.toml"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(": OK (10 parameter override(s)"), "{out}");
}

#[test]
fn a_bad_samconfig_names_every_problem_with_its_parameter_and_a_fix() {
    let (code, out, err) = check(&fixture("samconfig-bad.toml"));
    assert_eq!(code, 2, "{out}\n{err}");
    for expected in [
        "- LockTables/StateBuckets: ",
        "- ExpireAfter: the functions refuse EXPIRE_AFTER: 4h is shorter than WARN_AFTER 6h",
        // refused by the template's own constraints (CloudFormation stops there), said once
        "- ApprovalTtl: ApprovalTtl=\"30d\" does not match the template's AllowedPattern ^(([1-9]|[1-5][0-9])m|",
        "- LockPolicy: the functions refuse LOCK_POLICY: ",
        "- UnlocksPaused: UnlocksPaused=\"yes\" is not one of the template's AllowedValues",
        "- SlackWorkspaceId/SlackChannelId: only one of the two Slack IDs is set",
        "fix: set UnlocksPaused to one of: true, false",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    assert_eq!(
        out.matches("\n    fix: ").count(),
        out.matches("\n  - ").count(),
        "{out}"
    );
}

#[test]
fn an_unreadable_file_is_a_usage_error() {
    let dir = std::env::temp_dir().join(format!("lockreaper-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_toml = dir.join("samconfig.toml");
    std::fs::write(&not_toml, "parameter_overrides = ['a' 'b']\n").unwrap();
    let (code, _, err) = check(&not_toml);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not valid TOML"), "{err}");
    let (code, _, err) = check(&dir.join("missing.toml"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot read"), "{err}");
}

/// Issue 17: the example's commented values must be usable. Each "# e.g. <entry>" line replaces
/// the entry above it (what the file tells people to do), all at once; the result must be TOML and
/// pass the functions' checks and the Rules, as must the file as shipped.
#[test]
fn samconfig_example_passes_as_shipped_and_with_every_example_value_used() {
    let example = repo_root().join("samconfig.toml.example");
    let (code, out, err) = check(&example);
    assert_eq!(code, 0, "as shipped:\n{out}\n{err}");

    let text = std::fs::read_to_string(&example).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut used = 0;
    for i in 1..lines.len() {
        let Some(rest) = lines[i].trim_start().strip_prefix("# e.g. ") else {
            continue;
        };
        let indent = lines[i].len() - lines[i].trim_start().len();
        let rest = rest.to_owned();
        // The entry this example replaces: the nearest line above that is not an example.
        let above = (0..i)
            .rev()
            .find(|&j| !lines[j].trim_start().starts_with("# e.g. ") && !lines[j].is_empty())
            .unwrap();
        lines[above] = format!("{}{rest}", " ".repeat(indent));
        lines[i] = String::new();
        used += 1;
    }
    assert!(used >= 8, "{used} examples");
    let dir = std::env::temp_dir().join(format!("lockreaper-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let all_examples = dir.join("samconfig.toml");
    std::fs::write(&all_examples, lines.join("\n") + "\n").unwrap();
    let (code, out, err) = check(&all_examples);
    assert_eq!(code, 0, "every example used:\n{out}\n{err}");
}
