#!/usr/bin/env bash
# Makes the toolchain that rust-toolchain.toml pins available to rustup, before anything compiles.
#
# rust-toolchain.toml names an exact release (e.g. 1.95.0). rustup >= 1.28 no longer installs a missing
# pinned toolchain on first use, and a machine that cannot reach static.rust-lang.org cannot install it
# at all, even when its default toolchain *is* that exact release. So, in order:
#   1. the pinned toolchain is already known to rustup          -> nothing to do;
#   2. an installed toolchain reports exactly that rustc release -> register it under the pinned name
#      (a link in $RUSTUP_HOME/toolchains: `rustup toolchain link` refuses official-looking names, and
#      the directory of an installed release is what rustup itself would have put there);
#   3. otherwise                                                 -> `rustup toolchain install` it.
# Prints one line on stderr when it changes something; fails with the fix when it cannot.
set -euo pipefail
cd "$(dirname "$0")/../.."

pinned=$(sed -n 's/^channel *= *"\([^"]*\)".*/\1/p' rust-toolchain.toml)
if [ -z "$pinned" ]; then
  echo "ensure_toolchain: no channel = \"...\" line in rust-toolchain.toml" >&2
  exit 1
fi

if ! command -v rustup >/dev/null 2>&1; then
  # No rustup (a distribution's Rust): the compiler on PATH must be the pinned release.
  have=$(rustc --version 2>/dev/null | awk '{print $2}')
  if [ "$have" != "$pinned" ]; then
    echo "ensure_toolchain: rust-toolchain.toml pins Rust $pinned, but rustc on PATH is ${have:-missing} and rustup is not installed." >&2
    exit 1
  fi
  exit 0
fi

# 1. Known already? (`rustup run` neither installs nor downloads.)
if RUSTUP_TOOLCHAIN="$pinned" rustc --version >/dev/null 2>&1; then
  exit 0
fi

# 2. An installed toolchain of exactly that release?
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
while read -r name _; do
  [ -n "$name" ] || continue
  version=$(RUSTUP_TOOLCHAIN="$name" rustc --version 2>/dev/null | awk '{print $2}') || continue
  [ "$version" = "$pinned" ] || continue
  host=$(RUSTUP_TOOLCHAIN="$name" rustc -vV | sed -n 's/^host: //p')
  sysroot=$(RUSTUP_TOOLCHAIN="$name" rustc --print sysroot)
  ln -sfn "$sysroot" "$rustup_home/toolchains/$pinned-$host"
  if RUSTUP_TOOLCHAIN="$pinned" rustc --version >/dev/null 2>&1; then
    echo "==> Rust $pinned (rust-toolchain.toml) is the installed toolchain '$name': registered it under that name, no download" >&2
    exit 0
  fi
  rm -f "$rustup_home/toolchains/$pinned-$host"
done < <(rustup toolchain list 2>/dev/null | sed 's/ (.*)//')

# 3. Install it (needs static.rust-lang.org).
echo "==> installing Rust $pinned (rust-toolchain.toml) with rustup" >&2
if ! rustup toolchain install "$pinned" --profile minimal --component rustfmt,clippy >&2; then
  echo "ensure_toolchain: rust-toolchain.toml pins Rust $pinned; it is not installed and rustup could not download it. Install it where static.rust-lang.org is reachable: rustup toolchain install $pinned --component rustfmt,clippy" >&2
  exit 1
fi
