#!/usr/bin/env python3
"""`make build-local`: every binary the local stack and the demo run, in one release build.

One `cargo build --release --locked` of the functions and the `lockreaper` CLI (one dependency
graph, features unified once, so the AWS SDK crates compile once for all of them), then the function
binaries laid out exactly as `sam build` lays out its output: `<build dir>/<LogicalId>/bootstrap`
and `<build dir>/template.yaml`, the production template with each function's `CodeUri` pointing
at its directory there. `sam deploy --template-file <build dir>/template.yaml` deploys that as it
deploys `sam build`'s output.

Why not `sam build` here: SAM builds each function in its own `cargo lambda build --bin X` (three
cargo runs, each resolving features for one package, and through zig for a glibc 2.26 target), and
the CLI would be a fourth build for the host. On two cores that was minutes of compiling in the
middle of `make demo`. The functions run as local processes under ministack on this machine, so a
host release build is what runs. The AWS path is unchanged: `make build-arm64` / `make deploy` run
`sam build` for arm64 (and `make test` checks those packages).

Standard library only: `make` runs it while the Python tools are still being installed.
Cargo's own output goes to stderr; the last stdout line is JSON: {"build_dir", "cli", "slack_standin", "seconds"}.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / ".aws-sam" / "build-x86_64"
TEMPLATE = ROOT / "template.yaml"
# template.yaml logical ID → (CodeUri in the template, binary name). test_local_build checks this
# table against the template, so a renamed function cannot silently be left out.
FUNCTIONS = {
    "ReaperFunction": ("functions/reaper", "reaper"),
    "LockMetricsFunction": ("functions/lock-metrics", "lock-metrics"),
    "ForceUnlockFunction": ("functions/force-unlock", "force-unlock"),
    # The Slack app mode's (Condition HasSlackApp): built and packaged always, since `sam deploy`
    # packages every function's CodeUri whatever its condition.
    "SlackNotifierFunction": ("functions/slack-notifier", "slack-notifier"),
    "SlackInteractionsFunction": ("functions/slack-interactions", "slack-interactions"),
}
CLI_PACKAGE, CLI_BINARY = "lockreaper-cli", "lockreaper"
# Files the template's metadata (AWS::ServerlessRepo::Application LicenseUrl, ReadmeUrl) names.
METADATA_FILES = ("LICENSE", "README.md")
# Each function's package is named as its binary; one build of them all and the CLI.
PACKAGES = [binary for _uri, binary in FUNCTIONS.values()] + [CLI_PACKAGE]
# Built here too, never packaged: the local stand-in of the Slack Web API that the demo runs as a
# process for the Slack app mode (a small crate: tokio and serde_json, already in the graph).
STANDIN_PACKAGE, STANDIN_BINARY = "lockreaper-slack-standin", "slack-standin"


class BuildFailed(Exception):
    pass


def cargo_metadata() -> dict:
    """`cargo metadata` of the workspace's own packages (no dependencies)."""
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--locked"],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0:
        raise BuildFailed(f"`cargo metadata` failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def target_dir() -> Path:
    """Where cargo puts build output: CARGO_TARGET_DIR, a config's build.target-dir, or ./target."""
    return Path(cargo_metadata()["target_directory"])


def built_template(template_text: str, build_dir: Path | None = None, code_uri=None) -> str:
    """The production template with each function's CodeUri replaced by its build directory (as
    `sam build` writes it: relative to the built template), or by `code_uri(logical_id)` (`make
    package`: the function's zip). Every function must be found exactly once."""
    text = template_text
    new_uri = code_uri or (lambda logical_id: logical_id)
    for logical_id, (source_uri, _binary) in FUNCTIONS.items():
        pattern = re.compile(rf"^(\s+CodeUri:\s*){re.escape(source_uri)}\s*$", re.MULTILINE)
        text, count = pattern.subn(lambda m, lid=logical_id: f"{m.group(1)}{new_uri(lid)}", text)
        if count != 1:
            raise BuildFailed(f"template.yaml: expected exactly one `CodeUri: {source_uri}` ({logical_id}), found {count}")
    return text


def build(log=sys.stderr) -> dict:
    """Builds (cargo decides what is stale: a no-op build takes seconds) and lays out the build dir."""
    started = time.monotonic()
    cmd = ["cargo", "build", "--release", "--locked"] + [arg for p in PACKAGES + [STANDIN_PACKAGE] for arg in ("-p", p)]
    print(f"==> {' '.join(cmd)}  (the functions, the CLI and the Slack stand-in, one build)", file=log, flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    if proc.returncode != 0:
        raise BuildFailed(f"`{' '.join(cmd)}` failed ({proc.returncode}); cargo's messages are above")
    release = target_dir() / "release"
    template = built_template(TEMPLATE.read_text(), BUILD_DIR)
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    for logical_id, (_code_uri, binary) in FUNCTIONS.items():
        src = release / binary
        if not src.is_file():
            raise BuildFailed(f"cargo built no {src}")
        dest = BUILD_DIR / logical_id
        dest.mkdir(exist_ok=True)
        tmp = dest / "bootstrap.tmp"
        shutil.copy2(src, tmp)
        os.replace(tmp, dest / "bootstrap")
    # The template's Serverless Application Repository metadata names LICENSE and README.md relative
    # to the template; `sam deploy` uploads them, so they must be next to the built template (`sam
    # build` rewrites those paths instead; a copy keeps this template identical but for CodeUri).
    for doc in METADATA_FILES:
        shutil.copy2(ROOT / doc, BUILD_DIR / doc)
    (BUILD_DIR / "template.yaml").write_text(template)
    cli = release / CLI_BINARY
    if not cli.is_file():
        raise BuildFailed(f"cargo built no {cli}")
    standin = release / STANDIN_BINARY
    if not standin.is_file():
        raise BuildFailed(f"cargo built no {standin}")
    return {"build_dir": str(BUILD_DIR), "cli": str(cli), "slack_standin": str(standin),
            "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    try:
        result = build()
    except BuildFailed as e:
        print(f"build-local: {e}", file=sys.stderr)
        return 1
    print(f"==> built in {result['seconds']:.0f}s: {BUILD_DIR.relative_to(ROOT)}/<Function>/bootstrap, CLI {result['cli']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
