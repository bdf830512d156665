# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_BIKES := ../shared/data/drift/bike-sharing
DEMO_DIR ?= demo-project
DEMO_DATA := $(if $(wildcard $(SHARED_BIKES)/hour.csv),--data $(SHARED_BIKES),)
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: install demo test lint typecheck layers unit test-postgres migration bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; Gyre needs Python >= 3.11 (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e ".[dev]"
	@# An editable install leaves the sources uncompiled; where bytecode is not written on
	@# import (PYTHONDONTWRITEBYTECODE), every command would compile them again (0.13 s).
	$(BIN)/python -m compileall -q src
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gyre demo $(DEMO_DIR) --force $(DEMO_DATA)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck layers unit

# The whole suite again with the metadata store on PostgreSQL (each test gets its own database).
test-postgres: $(STAMP)
	GYRE_STORE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres $(BIN)/pytest $(PYTEST_ARGS)

# Every benchmark in bench/ (files starting with _ are their helpers): our figure beside the
# floor and the peer tools. Peers install into their own venvs under .bench/ on first use.
# Quick run: make bench BENCH_ARGS=--quick
bench: $(STAMP)
	@set -e; for script in bench/[!_]*.py; do \
		echo "== $$script"; $(BIN)/python $$script $(BENCH_ARGS); \
	done

# Generate a migration after changing gyre/core/store/tables.py: make migration m="add x"
migration: $(STAMP)
	$(BIN)/python -m gyre.core.store.revision "$(m)"

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
