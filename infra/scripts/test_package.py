"""Contract tests of `make package` (infra/scripts/package.py) that need no build: the packaged
template is template.yaml with only the CodeUris, the Architecture parameter and a header changed;
the zip check refuses what Lambda would refuse; the version comes from one place."""

from __future__ import annotations

import re
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import package  # noqa: E402

TEMPLATE = package.local_build.TEMPLATE.read_text()


def elf(machine: int) -> bytes:
    return b"\x7fELF" + bytes(14) + machine.to_bytes(2, "little") + bytes(100)


def make_zip(path: Path, entries: dict[str, tuple[bytes, int]]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, (data, mode) in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            z.writestr(info, data)


class PackagedTemplate(unittest.TestCase):
    def test_only_code_uris_architecture_and_header_differ(self):
        for arch in package.ARCHES:
            out = package.packaged_template(TEMPLATE, "1.2.3", arch)
            self.assertTrue(out.startswith("# lockreaper 1.2.3, packaged for"), out[:200])
            for logical_id, (source_uri, binary) in package.local_build.FUNCTIONS.items():
                self.assertNotIn(f"CodeUri: {source_uri}\n", out)
                self.assertIn(f"CodeUri: lockreaper-1.2.3-{binary}-{arch}.zip\n", out)
            self.assertIn(f"    Default: {arch}\n    AllowedValues: [{arch}]\n", out)
            # Undo the three changes: what is left must be template.yaml byte for byte.
            body = out.split("\n", 2)[2]
            for logical_id, (source_uri, binary) in package.local_build.FUNCTIONS.items():
                body = body.replace(f"CodeUri: lockreaper-1.2.3-{binary}-{arch}.zip", f"CodeUri: {source_uri}")
            original_param = re.search(r"  Architecture:\n    Type: String\n    Default: \S+\n    AllowedValues: \[[^\]]*\]\n", TEMPLATE)
            self.assertIsNotNone(original_param)
            body = body.replace(f"  Architecture:\n    Type: String\n    Default: {arch}\n    AllowedValues: [{arch}]\n", original_param.group(0))
            self.assertEqual(body, TEMPLATE)

    def test_a_template_without_the_architecture_parameter_is_refused(self):
        broken = TEMPLATE.replace("  Architecture:\n    Type: String\n", "  Arch:\n    Type: String\n", 1)
        with self.assertRaises(package.PackageFailed):
            package.packaged_template(broken, "1.2.3", "arm64")


class ZipCheck(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())

    def check(self, entries, arch="arm64"):
        path = self.dir / "f.zip"
        make_zip(path, entries)
        package.check_zip(path, arch)

    def test_an_executable_bootstrap_of_the_right_architecture_passes(self):
        self.check({"bootstrap": (elf(183), 0o755)}, "arm64")
        self.check({"bootstrap": (elf(62), 0o755)}, "x86_64")

    def test_what_lambda_would_refuse_is_refused(self):
        cases = {
            "wrong architecture": {"bootstrap": (elf(62), 0o755)},
            "not executable": {"bootstrap": (elf(183), 0o644)},
            "not ELF": {"bootstrap": (b"#!/bin/sh\necho hi\n", 0o755)},
            "misnamed": {"main": (elf(183), 0o755)},
            "extra entry": {"bootstrap": (elf(183), 0o755), "README": (b"x", 0o644)},
        }
        for what, entries in cases.items():
            with self.subTest(what), self.assertRaises(package.PackageFailed):
                self.check(entries)


class Version(unittest.TestCase):
    def test_every_crate_inherits_the_workspace_version(self):
        version = package.workspace_version()
        self.assertRegex(version, r"^\d+\.\d+\.\d+")
        root = package.ROOT
        manifests = sorted(root.glob("functions/*/Cargo.toml")) + sorted(root.glob("shared/*/Cargo.toml"))
        self.assertGreaterEqual(len(manifests), 7)
        for manifest in manifests:
            self.assertIn("version.workspace = true", manifest.read_text(), manifest)

    def test_the_serverless_repo_version_is_the_workspace_version(self):
        self.assertEqual(package.sar_version(TEMPLATE), package.workspace_version())
        self.assertIsNone(package.sar_version("Metadata:\n  Other: {}\n"))


if __name__ == "__main__":
    unittest.main()
