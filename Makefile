# mlship developer commands. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

DEV := .venv/dev/bin
PYTEST_ARGS ?=
export CRDS_DIR ?= $(abspath ../shared/crds)
export HELM ?= $(abspath .tools/bin/helm)
export HELM4 ?= $(abspath .tools/bin/helm4)
export KUBECONFORM ?= $(abspath .tools/bin/kubeconform)

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: system-packages
system-packages: ## install promtool, wrk and PostgreSQL from Debian when missing
	bash ci/install-system-packages.sh

.PHONY: venvs
venvs: ## build .venv/{steps,serve,registry,dev} from the lock files
	bash ci/setup-venvs.sh

.PHONY: tools
tools: system-packages ## build helm v3 and v4, helm-unittest, kubeconform, vegeta, schemas and the API server into .tools
	bash ci/install-tools.sh
	bash ci/apiserver/build.sh

.PHONY: setup
setup: venvs tools ## all set-up for the demo and the tests

.PHONY: demo
demo: venvs ## run the whole pipeline locally, then serve the model and send predictions
	bash ci/install-tools.sh
	$(DEV)/mlship demo

.PHONY: lint
lint: venvs ## ruff and mypy
	$(DEV)/ruff check src tests ci
	$(DEV)/ruff format --check src tests ci
	$(DEV)/mypy src/mlship

.PHONY: chart-unittest
chart-unittest: tools ## helm-unittest suites of the chart
	.tools/bin/helm-unittest charts/mlship

.PHONY: test
test: setup lint chart-unittest ## every test: lint, helm-unittest, pytest
	$(DEV)/python -m pytest $(PYTEST_ARGS)

.PHONY: bench-serving
bench-serving: venvs system-packages tools ## benchmark the model server against MLServer and mlflow models serve
	$(DEV)/python ci/bench_serving.py

.PHONY: soak-serving
soak-serving: venvs system-packages tools ## 5 minutes at a constant rate, bad requests mixed in: errors and server memory
	$(DEV)/python ci/soak_serving.py

.PHONY: lock
lock: ## regenerate every lock file from pyproject.toml
	PYTHON=$$(bash ci/find-python.sh) bash ci/lock.sh

.PHONY: clean
clean: ## remove run outputs (keeps .tools and .venv)
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
