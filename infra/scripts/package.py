#!/usr/bin/env python3
"""`make package`: everything a deployment needs, built once, into `dist/` — so whoever deploys needs
no Rust toolchain, zig or cargo-lambda, only SAM CLI (or the AWS CLI) and the files here.

For each architecture (arm64, x86_64) it runs one `cargo lambda build --release --locked
--output-format zip` of the three functions and the `lockreaper` CLI (cargo-lambda compiles through
zig for an old glibc, so the binaries run on `provided.al2023` whatever glibc the build host has),
then writes:

  dist/lockreaper-<version>-<function>-<arch>.zip   each function's deployment package (bootstrap)
  dist/lockreaper-<version>-cli-linux-<arch>         the CLI, one static-ish Linux binary per arch
  dist/template-<arch>.yaml                          template.yaml with every CodeUri pointing at the
                                                     zips above and Architecture fixed to <arch>
  dist/SHA256SUMS                                    sha256sum format: `sha256sum -c SHA256SUMS`
  dist/manifest.json                                 version, git commit, files, sizes, checksums
  dist/LICENSE, dist/README.md                       what the templates' repository metadata names

The version is the workspace's (`[workspace.package] version` in Cargo.toml: one place, which every
crate inherits and the functions log at start). Before writing anything, the packages are checked:
each zip holds exactly one executable `bootstrap` ELF for its architecture, each template's
CodeUris resolve to files that exist, and nothing else in the template changed.

Deploy from it with no build step:
  sam deploy --template-file dist/template-arm64.yaml --guided --capabilities CAPABILITY_IAM
or with the AWS CLI (uploads the zips to your bucket, then deploys):
  aws cloudformation package --template-file dist/template-arm64.yaml --s3-bucket <bucket> \\
      --output-template-file packaged.yaml
  aws cloudformation deploy --template-file packaged.yaml --stack-name lockreaper \\
      --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --parameter-overrides LockTables=…

Options: --arch arm64|x86_64 (repeatable; default both), --dist DIR (default dist/).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "sam"))
import local_build  # noqa: E402  (the function table and the CodeUri rewrite live there, once)

ARCHES = {
    # arch → (Rust target triple, ELF e_machine)
    "arm64": ("aarch64-unknown-linux-gnu", 183),
    "x86_64": ("x86_64-unknown-linux-gnu", 62),
}


class PackageFailed(Exception):
    pass


def sar_version(template_text: str) -> str | None:
    """The Serverless Application Repository `SemanticVersion` in the template's metadata."""
    match = re.search(r"^  AWS::ServerlessRepo::Application:\n(?:    .*\n)*?    SemanticVersion: (\S+)$",
                      template_text, re.MULTILINE)
    return match.group(1) if match else None


def workspace_version() -> str:
    """`[workspace.package] version`, which every crate inherits (checked: none may differ)."""
    versions = {p["name"]: p["version"] for p in local_build.cargo_metadata()["packages"]}
    distinct = set(versions.values())
    if len(distinct) != 1:
        raise PackageFailed(f"the workspace's crates disagree on their version: {versions}; "
                            "each should say `version.workspace = true`")
    return distinct.pop()


def git_commit() -> str | None:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def elf_machine(data: bytes) -> int | None:
    if data[:4] != b"\x7fELF" or len(data) < 20:
        return None
    return int.from_bytes(data[18:20], "little")


def check_zip(path: Path, arch: str) -> None:
    """A Lambda `provided.al2023` package: exactly one entry, `bootstrap`, executable, for `arch`."""
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if names != ["bootstrap"]:
            raise PackageFailed(f"{path.name}: expected exactly one entry `bootstrap`, found {names}")
        info = z.getinfo("bootstrap")
        mode = info.external_attr >> 16
        if not mode & 0o111:
            raise PackageFailed(f"{path.name}: bootstrap is not executable (mode {oct(mode)})")
        machine = elf_machine(z.read("bootstrap")[:20])
    if machine != ARCHES[arch][1]:
        raise PackageFailed(f"{path.name}: bootstrap is not an {arch} ELF (e_machine {machine})")


def packaged_template(template_text: str, version: str, arch: str) -> str:
    """template.yaml with each function's CodeUri pointing at its zip (relative to the template,
    as SAM and `aws cloudformation package` resolve it) and the Architecture parameter fixed."""
    text = local_build.built_template(
        template_text, code_uri=lambda logical_id: zip_name(version, logical_id, arch)
    )
    param = re.compile(
        r"^(  Architecture:\n    Type: String\n)    Default: \S+\n    AllowedValues: \[[^\]]*\]\n",
        re.MULTILINE,
    )
    text, count = param.subn(
        lambda m: f"{m.group(1)}    Default: {arch}\n    AllowedValues: [{arch}]\n", text
    )
    if count != 1:
        raise PackageFailed("template.yaml: the Architecture parameter (Type, Default, AllowedValues) "
                            "was not found in the shape this script rewrites")
    header = (f"# lockreaper {version}, packaged for {arch} by `make package`: deploy this file as it is\n"
              f"# (sam deploy --template-file template-{arch}.yaml --guided). Generated; do not edit.\n")
    return header + text


def zip_name(version: str, logical_id: str, arch: str) -> str:
    binary = local_build.FUNCTIONS[logical_id][1]
    return f"lockreaper-{version}-{binary}-{arch}.zip"


def cli_name(version: str, arch: str) -> str:
    return f"lockreaper-{version}-cli-linux-{arch}"


def build(arch: str, log) -> Path:
    """One cargo-lambda build of the functions and the CLI for `arch`; returns the target dir."""
    triple = ARCHES[arch][0]
    packages = [arg for p in local_build.PACKAGES for arg in ("-p", p)]
    cmd = ["cargo", "lambda", "build", "--release", "--locked", "--target", triple,
           "--output-format", "zip", *packages]
    print(f"==> {' '.join(cmd)}", file=log, flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    if proc.returncode != 0:
        raise PackageFailed(f"`{' '.join(cmd)}` failed ({proc.returncode}); its messages are above")
    print(f"    {arch}: built in {time.monotonic() - started:.0f}s", file=log, flush=True)
    return local_build.target_dir()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package(arches: list[str], dist: Path, log=sys.stderr) -> dict:
    version = workspace_version()
    template_text = local_build.TEMPLATE.read_text()
    if sar_version(template_text) != version:
        raise PackageFailed(f"template.yaml's SemanticVersion ({sar_version(template_text)}) is not the "
                            f"workspace version {version}: change infra/sam/template.in.yaml, then `make template`")
    staging = dist.with_name(dist.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for arch in arches:
        target = build(arch, log)
        staging.mkdir(parents=True, exist_ok=True)
        for logical_id, (_uri, binary) in local_build.FUNCTIONS.items():
            built = target / "lambda" / binary / "bootstrap.zip"
            if not built.is_file():
                raise PackageFailed(f"cargo lambda built no {built}")
            dest = staging / zip_name(version, logical_id, arch)
            shutil.copy2(built, dest)
            check_zip(dest, arch)
        cli = target / ARCHES[arch][0] / "release" / local_build.CLI_BINARY
        if elf_machine(cli.read_bytes()[:20]) != ARCHES[arch][1]:
            raise PackageFailed(f"{cli} is missing or not an {arch} ELF")
        dest = staging / cli_name(version, arch)
        shutil.copy2(cli, dest)
        dest.chmod(0o755)
        (staging / f"template-{arch}.yaml").write_text(packaged_template(template_text, version, arch))
    # The packaged templates name these (Serverless Application Repository metadata: LicenseUrl,
    # ReadmeUrl, relative to the template), so they travel with them.
    for doc in local_build.METADATA_FILES:
        shutil.copy2(ROOT / doc, staging / doc)
    files = sorted(p for p in staging.iterdir() if p.is_file())
    sums = {p.name: sha256(p) for p in files}
    (staging / "SHA256SUMS").write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    manifest = {
        "name": "lockreaper",
        "version": version,
        "commit": git_commit(),
        "architectures": arches,
        "files": [{"name": p.name, "bytes": p.stat().st_size, "sha256": sums[p.name]} for p in files],
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # Replace dist/ only once everything is there: a failed run never leaves half a release.
    shutil.rmtree(dist, ignore_errors=True)
    os.replace(staging, dist)
    return manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", choices=sorted(ARCHES), help="default: both")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = parser.parse_args()
    arches = args.arch or ["arm64", "x86_64"]
    try:
        manifest = package(arches, args.dist.resolve())
    except (PackageFailed, local_build.BuildFailed, OSError) as e:
        print(f"make package: {e}", file=sys.stderr)
        return 1
    print(f"\nlockreaper {manifest['version']} ({manifest['commit'] or 'no git commit'}) in {args.dist}:")
    for f in manifest["files"]:
        print(f"  {f['name']:<48} {f['bytes'] / 1024:>9.0f} KiB  {f['sha256'][:16]}…")
    print("\nverify: (cd dist && sha256sum -c SHA256SUMS)")
    print("deploy: sam deploy --template-file dist/template-arm64.yaml --guided --capabilities CAPABILITY_IAM")
    return 0


if __name__ == "__main__":
    sys.exit(main())
