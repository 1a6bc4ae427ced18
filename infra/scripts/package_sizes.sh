#!/usr/bin/env bash
# `make bench` (last part): builds each function as AWS Lambda runs it (release, arm64, zip) with
# cargo-lambda and reports the size of each deployment package. Needs the pinned cargo-lambda
# (with zig) from infra/.venv and the aarch64 Rust target (added here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/infra/.venv/bin:$PATH"
arch_flag=--arm64
if ! rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$'; then
  if ! rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
    echo "package sizes: the aarch64 Rust target cannot be installed here; measuring x86_64 packages instead" >&2
    arch_flag=--x86-64
  fi
fi
# Every function the template builds (infra/sam/local_build.py's table, held to the template).
mapfile -t functions < <(python3 -c 'import sys; sys.path.insert(0, "infra/sam"); import local_build; print("\n".join(b for _u, b in local_build.FUNCTIONS.values()))')
args=()
for f in "${functions[@]}"; do args+=(-p "$f"); done
echo "==> cargo lambda build --release $arch_flag --output-format zip (first build: several minutes)"
cargo lambda build --release "$arch_flag" --output-format zip "${args[@]}" >/dev/null
printf '\n%-18s %12s %12s\n' function "zip (KiB)" "bootstrap (KiB)"
for f in "${functions[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  size_zip=$(( $(stat -c %s "$zip") / 1024 ))
  size_bin=$(python3 -c "import zipfile,sys; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist())//1024)" "$zip")
  printf '%-18s %12s %12s\n' "$f" "$size_zip" "$size_bin"
done
