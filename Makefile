# Quick start: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint install clean

# Timings measured on a 2-core machine with a warm pip cache (see README "Quick start").
INSTALL_TIME      := about 1.5 minutes
INSTALL_TEST_TIME := about 2 minutes (seconds after make demo)
SUITE_TIME        := about 9 to 10 minutes

$(BIN)/python:
	@echo "==> creating $(VENV) (a virtual environment, with $$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "==> installing hpohash and mlflow, click, rich, pyyaml into $(VENV): $(INSTALL_TIME) the first time (pip is quiet meanwhile)"
	@start=$$(date +%s); $(PIP) install -e . && echo "==> installed in $$(( $$(date +%s) - start )) s"
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	@echo "==> installing hpohash with its test extra (mlflow, click, rich, pyyaml, pytest, hypothesis, ruff, mypy) into $(VENV): $(INSTALL_TEST_TIME) the first time (pip is quiet meanwhile)"
	@start=$$(date +%s); $(PIP) install -e '.[test]' && echo "==> installed in $$(( $$(date +%s) - start )) s"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

# Writes the demo experiment into ./mlflow.db (MLflow's embedded default), shows what is broken,
# then what backfill would change.
demo: $(VENV)/.installed
	@echo "==> writing the demo experiment 'hpohash-demo' into ./mlflow.db (a few seconds)"
	$(BIN)/hpohash demo
	@echo "==> what is broken, and why"
	@# verify exits 1 on the demo's broken runs (intended); any other failure stops make
	@$(BIN)/hpohash verify -e hpohash-demo || { rc=$$?; [ $$rc -eq 1 ] && echo "(verify exited 1: errors found, as the demo intends)"; }
	@echo "==> what backfill would change (a dry run: nothing is written)"
	$(BIN)/hpohash backfill -e hpohash-demo --dry-run

# ruff (lint and format) and mypy (types, over hpohash/): the gate make test runs first
lint: $(VENV)/.installed-test
	@echo "==> ruff (lint, format) and mypy (types)"
	$(BIN)/ruff check hpohash tests benchmarks examples
	$(BIN)/ruff format --check hpohash tests benchmarks examples
	$(BIN)/mypy

test: lint
	@echo "==> pytest: the whole suite against real MLflow stores (SQLite in temp dirs, one real mlflow server on 127.0.0.1): $(SUITE_TIME)"
	@start=$$(date +%s); $(BIN)/python -m pytest; rc=$$?; echo "==> suite finished in $$(( $$(date +%s) - start )) s"; exit $$rc

clean:
	rm -rf $(VENV) .pytest_cache mlflow.db mlruns .hpohash
