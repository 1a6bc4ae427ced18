#!/usr/bin/env python3
"""Checks the architecture invariants of ARCHITECTURE.md that the compiler does not (`make lint`).

1. `shared/core` is pure. Its normal dependencies, transitively (`cargo tree`), include no async
   runtime, no randomness and no AWS crate; its sources (tests included) name no clock, no
   randomness and no async code. (`shared/core/clippy.toml` also makes clippy refuse the clocks
   `Utc::now`, `Local::now`, `SystemTime::now` and `Instant::now` there, by path.)
2. AWS SDK types stay in `shared/aws`. The functions' deployed code (`functions/*/src`, outside
   `#[cfg(test)]`) and the CLI's name no `aws_sdk_*`, `aws_smithy_*`, `aws_config` or `aws_types`,
   and the functions have no normal dependency on those crates. Tests, benchmarks and
   `shared/testkit` may: they set up and inspect the emulator directly, the way a person would with
   the AWS CLI, and are never deployed.
   Known exception, listed in SDK_TYPES_ALLOWED: the CLI's `doctor` still probes AWS (DescribeTable,
   GetBucketVersioning, a ledger write probe, SNS attributes) with SDK calls of its own.

Exit status 1 with one line per violation (`path:line: why`), 0 when clean.

    python3 infra/scripts/check_architecture.py            # the repository
    python3 -m unittest infra/scripts/test_check_architecture.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CORE_PACKAGE = "lockreaper-core"
# Crates whose presence anywhere in the core's normal dependency tree breaks its purity.
CORE_FORBIDDEN_CRATES = re.compile(
    r"^(tokio|tokio-.*|async-std|smol|futures.*|mio|rand|rand_.*|getrandom|uuid|fastrand|time|aws-.*|lambda_runtime)$"
)
# What the core's sources must not name. Comments are not code and are skipped.
CORE_FORBIDDEN_CODE = [
    (re.compile(r"\bSystemTime::now\b"), "a clock (SystemTime::now): take `now` as an argument"),
    (re.compile(r"\bInstant::now\b"), "a clock (Instant::now): take `now` as an argument"),
    (re.compile(r"\b(?:Utc|Local)::now\b"), "a clock (chrono's now): take `now` as an argument"),
    (re.compile(r"\bOffsetDateTime::now_\w+"), "a clock (time's now): take `now` as an argument"),
    (re.compile(r"\brand::|\bthread_rng\b|\bgetrandom\b"), "randomness: take random ids as arguments"),
    (re.compile(r"\bUuid::new_v4\b"), "randomness (Uuid::new_v4): take random ids as arguments"),
    (re.compile(r"\btokio\b|\basync_std\b"), "an async runtime"),
    (re.compile(r"\basync\s+(?:fn|move\b|\{)|\.await\b"), "async code: I/O belongs in shared/aws"),
]

SDK_NAME = re.compile(r"\b(aws_sdk_\w+|aws_smithy_\w+|aws_config|aws_types)\b")
SDK_CRATE = re.compile(r"^(aws-sdk-.*|aws-smithy-.*|aws-config|aws-types)$")
# Deployed code that may still name SDK types, with why (see the module docs).
SDK_TYPES_ALLOWED = {
    "shared/cli/src/doctor.rs": "doctor's own AWS probes, not yet behind shared/aws",
}


def function_packages(metadata: dict) -> list[str]:
    """The workspace's function crates: every package under functions/ (a new function is checked
    as soon as it is a workspace member; no list to forget)."""
    return sorted(p["name"] for p in metadata["packages"] if "/functions/" in p["manifest_path"].replace("\\", "/"))


def code_lines(text: str, *, skip_tests: bool) -> list[tuple[int, str]]:
    """(line number, code) of a Rust source, comments blanked; with `skip_tests`, nothing from the
    first `#[cfg(test)]` on (the convention of this repository: tests last)."""
    if skip_tests and "#[cfg(test)]" in text:
        text = text.split("#[cfg(test)]")[0]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("//", 1)[0]
        if code.strip():
            out.append((number, code))
    return out


def core_code_violations(root: Path) -> list[str]:
    problems = []
    for path in sorted((root / "shared/core/src").rglob("*.rs")):
        for number, code in code_lines(path.read_text(), skip_tests=False):
            for pattern, why in CORE_FORBIDDEN_CODE:
                if pattern.search(code):
                    problems.append(f"{path.relative_to(root)}:{number}: shared/core names {why}")
    return problems


def sdk_type_violations(root: Path) -> list[str]:
    problems = []
    sources = sorted((root / "functions").glob("*/src/**/*.rs")) + sorted((root / "shared/cli/src").rglob("*.rs"))
    for path in sources:
        rel = str(path.relative_to(root))
        if rel in SDK_TYPES_ALLOWED:
            continue
        for number, code in code_lines(path.read_text(), skip_tests=True):
            m = SDK_NAME.search(code)
            if m:
                problems.append(f"{rel}:{number}: `{m.group(1)}` outside shared/aws: reach AWS through lockreaper-aws")
    return problems


def dependency_violations(core_tree: list[str], metadata: dict) -> list[str]:
    """`core_tree`: the crates of the core's normal dependency tree, features resolved for the core
    alone (`cargo tree -p lockreaper-core -e normal`; the workspace-wide resolve would show what
    other packages switch on in shared crates, e.g. serde_dynamo's SDK support for shared/aws).
    `metadata`: `cargo metadata --no-deps`, for the functions' declared dependencies."""
    problems = [
        f"shared/core/Cargo.toml: {CORE_PACKAGE} depends on `{name}`: the core has no runtime, clock source, randomness or AWS"
        for name in sorted(set(core_tree))
        if CORE_FORBIDDEN_CRATES.match(name)
    ]
    packages = {p["name"]: p for p in metadata["packages"]}
    for function in function_packages(metadata):
        for dep in packages[function]["dependencies"]:
            if dep["kind"] is None and SDK_CRATE.match(dep["name"]):
                problems.append(
                    f"functions/{function}/Cargo.toml: depends on `{dep['name']}`: reach AWS through lockreaper-aws (tests may: [dev-dependencies])"
                )
    return problems


def cargo(root: Path, *args: str) -> str:
    return subprocess.run(["cargo", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def core_tree(root: Path) -> list[str]:
    out = cargo(root, "tree", "--locked", "-p", CORE_PACKAGE, "-e", "normal", "--prefix", "none", "--format", "{p}")
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def violations(root: Path, core_tree: list[str], metadata: dict) -> list[str]:
    return core_code_violations(root) + sdk_type_violations(root) + dependency_violations(core_tree, metadata)


def main() -> int:
    metadata = json.loads(cargo(ROOT, "metadata", "--locked", "--no-deps", "--format-version", "1"))
    problems = violations(ROOT, core_tree(ROOT), metadata)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} architecture invariant violation(s); see ARCHITECTURE.md", file=sys.stderr)
        return 1
    print("architecture invariants hold: core pure, AWS SDK types only in shared/aws")
    return 0


if __name__ == "__main__":
    sys.exit(main())
