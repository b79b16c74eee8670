# Blockdata — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
BD := $(BIN)/blockdata
PORT ?= 5000
REQUESTS ?= 200000
TEST_WORKERS ?= auto  # pytest-xdist processes for `make test` (auto: one per core)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

.PHONY: system-deps
system-deps: ## Install missing Debian packages (PostgreSQL, PostGIS, Chromium, GDAL)
	scripts/system-deps.sh --browser --gdal

.PHONY: setup
setup: system-deps $(VENV)/.installed ## Install everything: Debian packages and .venv with `blockdata`

.PHONY: db
db: setup ## Start the database and migrate it to the newest schema
	$(BD) db start
	$(BD) db upgrade head

.PHONY: demo
demo: db ## Load the demo district and serve the map on PORT (default 5000)
	@if $(BD) demo --help >/dev/null 2>&1; then $(BD) demo load --requests $(REQUESTS); fi
	$(BD) serve --port $(PORT)

.PHONY: test
test: setup ## Run the whole test suite against a real PostGIS (TEST_WORKERS processes)
	$(BD) db start
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: lint
lint: setup ## ruff (lint + format check) and mypy
	$(BIN)/ruff check app etl layers migrations tests bench
	$(BIN)/ruff format --check app etl layers migrations tests bench
	$(BIN)/mypy

.PHONY: fmt
fmt: setup ## Format the code with ruff
	$(BIN)/ruff check --fix app etl layers migrations tests bench
	$(BIN)/ruff format app etl layers migrations tests bench

.PHONY: bench
bench: db ## Run the benchmarks; results go to docs/benchmarks.md
	@ls bench/bench_*.py >/dev/null 2>&1 || { echo "no benchmarks yet"; exit 0; }
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

.PHONY: lock
lock: ## Refresh constraints.txt from the current .venv (after changing pyproject.toml)
	$(BIN)/pip freeze --exclude-editable | grep -v '^blockdata' > constraints.txt

.PHONY: stop
stop: ## Stop the managed database
	$(BD) db stop

.PHONY: clean
clean: ## Stop the database, delete its data (var/pg; as root /var/lib/blockdata/<key>), .venv, var/
	@if [ -x $(BD) ]; then $(BD) db destroy --yes; \
	elif [ -L var/pg ]; then echo "no $(BD): var/pg's target $$(readlink var/pg) is left"; fi
	rm -rf $(VENV) var
