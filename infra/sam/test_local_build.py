#!/usr/bin/env python3
"""Checks of infra/sam/local_build.py against template.yaml (`make validate` runs it):

    infra/.venv-deploy/bin/python -m unittest infra/sam/test_local_build.py

The local build stands in for `sam build` on the emulator path, so it must build every function the
template declares, from the directory and binary the template names, and write a built template
that differs from the production one only in each function's CodeUri.
"""

from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

from cfnlint.decode import decode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import local_build as lb  # noqa: E402


def decoded(path: Path) -> dict:
    template, matches = decode(str(path))
    if matches:
        raise AssertionError(f"{path} does not parse: {matches}")
    return template


class LocalBuildMatchesTheTemplate(unittest.TestCase):
    def setUp(self) -> None:
        self.template = decoded(lb.TEMPLATE)
        self.functions = {
            k: r for k, r in self.template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
        }

    def test_every_function_is_built_from_the_directory_and_binary_the_template_names(self) -> None:
        self.assertEqual(set(self.functions), set(lb.FUNCTIONS))
        for logical_id, (code_uri, binary) in lb.FUNCTIONS.items():
            resource = self.functions[logical_id]
            self.assertEqual(resource["Properties"]["CodeUri"], code_uri, logical_id)
            self.assertEqual(resource["Metadata"]["BuildMethod"], "rust-cargolambda", logical_id)
            self.assertEqual(resource["Metadata"]["BuildProperties"]["Binary"], binary, logical_id)
            self.assertIn(binary, lb.PACKAGES, f"{binary} is built by the one cargo build")
        self.assertIn(lb.CLI_PACKAGE, lb.PACKAGES)

    def test_the_built_template_differs_only_in_code_uri(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            built_path = Path(tmp) / "template.yaml"
            built_path.write_text(lb.built_template(lb.TEMPLATE.read_text(), Path(tmp)))
            built = decoded(built_path)
        for logical_id in lb.FUNCTIONS:
            self.assertEqual(built["Resources"][logical_id]["Properties"]["CodeUri"], logical_id)
            built["Resources"][logical_id]["Properties"]["CodeUri"] = self.functions[logical_id]["Properties"]["CodeUri"]
        self.assertEqual(built, self.template)

    def test_every_local_file_the_metadata_names_travels_with_the_built_template(self) -> None:
        # `sam deploy` uploads the Serverless Application Repository metadata's LicenseUrl and
        # ReadmeUrl (samcli METADATA_WITH_LOCAL_PATHS): a path the build dir lacks fails the deploy.
        sar = self.template["Metadata"]["AWS::ServerlessRepo::Application"]
        named = {sar["LicenseUrl"], sar["ReadmeUrl"]}
        self.assertEqual(named, set(lb.METADATA_FILES))
        for name in named:
            self.assertTrue((lb.ROOT / name).is_file(), name)

    def test_a_function_missing_from_the_template_is_an_error_not_a_silent_skip(self) -> None:
        text = lb.TEMPLATE.read_text().replace("CodeUri: functions/reaper", "CodeUri: functions/renamed")
        with self.assertRaisesRegex(lb.BuildFailed, r"expected exactly one `CodeUri: functions/reaper`"):
            lb.built_template(text, Path("/nonexistent"))


if __name__ == "__main__":
    unittest.main()
