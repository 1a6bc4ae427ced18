#!/usr/bin/env python3
"""Proves infra/scripts/check_architecture.py catches what it is for: each violation planted in a
copy-sized fake repository is reported, and the clean repository passes.

    python3 -m unittest infra/scripts/test_check_architecture.py
"""

from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_architecture as check  # noqa: E402

CLEAN_CORE = """//! Pure: `now` comes in (never Utc::now() here, this is a comment).
pub fn age(now: i64, created: i64) -> i64 {
    now - created
}
"""
CLEAN_FUNCTION = """use lockreaper_aws::inventory::LockReaders;
pub struct Reaper { pub readers: LockReaders }

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue; // tests talk to the emulator directly
}
"""


def metadata(function_deps: dict[str, list[tuple[str, str | None]]]) -> dict:
    return {
        "packages": [
            {
                "name": name,
                "manifest_path": f"/repo/functions/{name}/Cargo.toml",
                "dependencies": [{"name": dep, "kind": kind} for dep, kind in deps],
            }
            for name, deps in function_deps.items()
        ]
        # not a function: its SDK dependencies are its own business (doctor)
        + [{"name": "lockreaper-cli", "manifest_path": "/repo/shared/cli/Cargo.toml", "dependencies": [{"name": "aws-sdk-iam", "kind": None}]}]
    }


CLEAN_DEPS = {
    "reaper": [("lockreaper-aws", None), ("aws-sdk-dynamodb", "dev")],
    "lock-metrics": [("lockreaper-aws", None)],
    "force-unlock": [("lockreaper-aws", None), ("aws-sdk-s3", "dev")],
}
CLEAN_TREE = ["lockreaper-core", "serde", "chrono", "hmac", "sha2"]


class CheckArchitecture(unittest.TestCase):
    def tree(self, core: str = CLEAN_CORE, function: str = CLEAN_FUNCTION, cli: str = "fn main() {}\n") -> Path:
        root = Path(self.tmp.name)
        files = {
            "shared/core/src/lib.rs": core,
            "functions/reaper/src/lib.rs": function,
            "shared/cli/src/main.rs": cli,
            "shared/cli/src/doctor.rs": "use aws_sdk_dynamodb::Client;\n",  # the listed exception
            "shared/testkit/src/lib.rs": "use aws_sdk_dynamodb::Client;\n",  # never deployed
            "functions/reaper/tests/sweep.rs": "use aws_sdk_dynamodb::Client;\n",
        }
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def test_a_clean_tree_passes(self):
        self.assertEqual(check.violations(self.tree(), CLEAN_TREE, metadata(CLEAN_DEPS)), [])

    def test_a_clock_randomness_or_async_in_the_core_is_caught(self):
        for code, why in [
            ("let now = chrono::Utc::now();", "clock"),
            ("let t = std::time::SystemTime::now();", "clock"),
            ("let t = Instant::now();", "clock"),
            ("let id = uuid::Uuid::new_v4();", "randomness"),
            ("getrandom::fill(&mut b);", "randomness"),
            ("pub async fn read() {}", "async"),
            ("tokio::spawn(x);", "async runtime"),
        ]:
            with self.subTest(code=code):
                root = self.tree(core=CLEAN_CORE + f"fn bad() {{ {code} }}\n")
                problems = check.violations(root, CLEAN_TREE, metadata(CLEAN_DEPS))
                self.assertEqual(len(problems), 1, problems)
                self.assertIn("shared/core/src/lib.rs:5:", problems[0])
                self.assertIn(why, problems[0])

    def test_the_core_is_checked_in_its_tests_too(self):
        root = self.tree(core=CLEAN_CORE + "#[cfg(test)]\nmod tests { fn t() { let _ = chrono::Utc::now(); } }\n")
        self.assertEqual(len(check.violations(root, CLEAN_TREE, metadata(CLEAN_DEPS))), 1)

    def test_an_sdk_type_in_deployed_function_or_cli_code_is_caught(self):
        function = "pub struct Reaper { pub dynamodb: aws_sdk_dynamodb::Client }\n" + CLEAN_FUNCTION
        cli = "use aws_config::BehaviorVersion;\nfn main() {}\n"
        problems = check.violations(self.tree(function=function, cli=cli), CLEAN_TREE, metadata(CLEAN_DEPS))
        self.assertEqual(len(problems), 2, problems)
        self.assertIn("functions/reaper/src/lib.rs:1: `aws_sdk_dynamodb` outside shared/aws", problems[0])
        self.assertIn("shared/cli/src/main.rs:1: `aws_config`", problems[1])

    def test_forbidden_dependencies_are_caught(self):
        deps = dict(CLEAN_DEPS, reaper=[("lockreaper-aws", None), ("aws-sdk-s3", None)])
        problems = check.violations(self.tree(), CLEAN_TREE + ["tokio", "getrandom", "aws-smithy-types"], metadata(deps))
        self.assertEqual(
            [p.split(":")[0] for p in problems],
            ["shared/core/Cargo.toml"] * 3 + ["functions/reaper/Cargo.toml"],
            problems,
        )
        self.assertIn("`aws-sdk-s3`", problems[-1])

    def test_every_function_crate_is_checked_without_a_list(self):
        # a function added under functions/ (the Slack app mode's two, issue 13) is checked as soon as
        # it is a workspace member
        deps = dict(CLEAN_DEPS, **{"slack-new": [("aws-sdk-secretsmanager", None)]})
        problems = check.violations(self.tree(), CLEAN_TREE, metadata(deps))
        self.assertEqual([p.split(":")[0] for p in problems], ["functions/slack-new/Cargo.toml"], problems)

    def test_this_repository_passes(self):
        import json

        root = check.ROOT
        meta = json.loads(check.cargo(root, "metadata", "--locked", "--no-deps", "--format-version", "1"))
        self.assertEqual(check.violations(root, check.core_tree(root), meta), [])


if __name__ == "__main__":
    unittest.main()
