# dask-gke: one entry point for setup, the sandbox, deploys, tests and benchmarks.
# `make deploy` and `make test` are the two commands a fresh machine needs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.stamp
SANDBOX := $(PY) -m sandbox.cli
CLEANUP_CONFIRM ?= dask

# The first Python >= 3.12 found: PYTHON, then python3.13/3.12 on PATH, then pyenv.
define find_python
for c in "$${PYTHON:-}" python3.14 python3.13 python3.12 python3 \
    $$(ls -d "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
  [ -n "$$c" ] || continue; \
  if command -v "$$c" >/dev/null 2>&1 && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
    command -v "$$c"; exit 0; fi; \
done; \
echo "No Python >= 3.12 found (ansible-core 2.20+ needs it). Install one (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12." >&2; exit 1
endef

.PHONY: help setup deploy cleanup upgrade sandbox sandbox-down sandbox-status sandbox-tools \
        sandbox-system-packages sandbox-images \
        lint unit integration test bench clean collection collection-test changelog

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt meta/requirements.txt
	@py="$$($(find_python))"; echo "setup: using $$py ($$($$py --version))"; \
	  [ -x $(PY) ] || "$$py" -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

setup: $(STAMP) ## Create .venv with the pinned Python dependencies

sandbox-tools: ## Build the sandbox's Kubernetes, etcd, KWOK and Helm binaries (cached)
	sandbox/tools/build.sh

sandbox-system-packages: ## Install the Debian packages the sandbox needs (apt-get, when missing)
	sandbox/system-packages.sh

sandbox-images: setup sandbox-system-packages ## Build the Dask, notebook and pause images (cached)
	$(PY) -m sandbox.images build --all

sandbox: setup sandbox-system-packages ## Build tools if needed and start the local GKE + Kubernetes sandbox
	$(SANDBOX) up

sandbox-down: ## Stop the sandbox: every cluster and every process it started
	@if [ -x $(PY) ]; then $(SANDBOX) down; else echo "sandbox: no .venv, nothing to stop"; fi

sandbox-status: ## Show what the sandbox runs
	$(SANDBOX) status

deploy: sandbox ## Deploy Dask on the sandbox: ansible-playbook deploy.yml
	$(BIN)/ansible-playbook deploy.yml

upgrade: setup ## Re-render values and upgrade the release in place (--tags upgrade)
	$(BIN)/ansible-playbook deploy.yml --tags upgrade

cleanup: setup ## Tear the deployment down (CLEANUP_CONFIRM=<cluster name>)
	$(BIN)/ansible-playbook cleanup.yml -e cleanup_confirm_cluster=$(CLEANUP_CONFIRM)

lint: setup ## ansible-lint (production), yamllint, ruff, syntax check
	$(BIN)/yamllint --strict .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-playbook --syntax-check deploy.yml cleanup.yml
	$(BIN)/ansible-lint --offline
	$(BIN)/antsibull-changelog lint

collection: setup ## Build the dask_gke.core collection tarball into dist/
	$(PY) tools/build_collection.py

# Run in the collection tree so that antsibull-changelog finds the new modules and plugins.
changelog: setup ## Release changelogs/fragments into CHANGELOG.md under galaxy.yml's version
	cd collections/ansible_collections/dask_gke/core && $(CURDIR)/$(BIN)/antsibull-changelog release

unit: setup sandbox-system-packages ## pytest on library/, module_utils/, sandbox/ and roles
	$(BIN)/pytest -q tests/unit

integration: sandbox ## Molecule scenarios on the sandbox
	PATH="$(CURDIR)/$(BIN):$$PATH" tests/integration/run.sh

# Starts the sandbox in its recipe, not as a prerequisite: within `make test` the
# prerequisite has already run once, and the molecule scenarios' destroy stopped it.
collection-test: setup sandbox-system-packages ## The built collection as a user installs it: clean venv, ansible-test sanity, EE context, FQCN runbook on the sandbox
	$(SANDBOX) up
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q -p no:cacheprovider tests/collection

test: lint unit integration collection-test ## Everything CI runs

bench: sandbox ## Benchmarks; results and plots under benchmarks/results
	PATH="$(CURDIR)/$(BIN):$$PATH" $(PY) benchmarks/run.py

clean: sandbox-down ## Stop the sandbox and remove local state (keeps the tool cache)
	rm -rf .sandbox artifacts
