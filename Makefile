# Two commands work on a fresh machine with only Python: `make demo` and `make test`.
# Each creates .venv when missing and installs the pinned dependencies it needs.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
TEST_WORKERS ?= 2
# pip installs only uv (pinned in constraints.txt); uv installs the rest, byte-compiled as pip
# does: on a new clone install-dev took 48 s against 87 s with pip (benchmarks/README.md).
# uv reads neither pip.conf nor PIP_INDEX_URL: behind a package mirror set UV_DEFAULT_INDEX,
# or install with pip alone (make install INSTALLER=pip).
INSTALLER ?= uv
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
ifeq ($(INSTALLER),pip)
INSTALL_WITH := $(BIN)/python
INSTALL := $(PIP)
else
INSTALL_WITH := $(BIN)/uv
INSTALL := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt
endif

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: $(BIN)/python
	$(PIP) uv

$(VENV)/.base: $(INSTALL_WITH) pyproject.toml constraints.txt
	$(INSTALL) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(INSTALL) -e ".[dev,spark]"
	touch $@

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install install-dev chromium postgresql demo test check lint format typecheck clean
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(VENV)/.base ## Install the pipeline (pinned) into .venv

install-dev: $(VENV)/.dev ## Install the pipeline with test, lint and Spark extras

demo: install ## Simulated world -> validate -> train -> backtest -> score -> report (local MLflow)
	$(BIN)/churn demo

chromium: ## Install Debian's chromium and chromium-driver for the report's browser tests (when missing)
	@missing=; command -v chromium >/dev/null || missing=chromium; \
	[ -x /usr/bin/chromedriver ] || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $$missing; \
	fi

postgresql: ## Install Debian's postgresql for the team tracking server's test (when missing)
	@ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y postgresql; \
	}

# --no-loadscope-reorder: keep the order of tests/conftest.py (the slowest files first);
# xdist's default puts the files with the most tests first, which left the Spark cluster and
# the team server for last on one worker while the other sat idle for 3 minutes.
test: install-dev chromium postgresql ## Run the test suite (what CI runs), a file per worker on 2 workers
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

format: install-dev ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: install-dev ## ruff format --check, ruff check and the import layers contract
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install-dev ## mypy
	$(BIN)/mypy

check: lint typecheck test ## Everything: format, lint, import layers, mypy, tests

clean: ## Remove generated data, MLflow runs and caches (keeps .venv)
	rm -rf data/demo mlruns .pytest_cache .mypy_cache .ruff_cache
