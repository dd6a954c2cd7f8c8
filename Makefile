# Quick start: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

# Writes the demo experiment into ./mlflow.db (MLflow's embedded default), shows what is broken,
# then what backfill would change.
demo: $(VENV)/.installed
	$(BIN)/hpohash demo
	@# verify exits 1 on the demo's broken runs (intended); any other failure stops make
	@$(BIN)/hpohash verify -e hpohash-demo || { rc=$$?; [ $$rc -eq 1 ] && echo "verify exited 1: errors found, as the demo intends"; }
	$(BIN)/hpohash backfill -e hpohash-demo --dry-run

lint: $(VENV)/.installed-test
	$(BIN)/ruff check hpohash tests benchmarks examples

test: $(VENV)/.installed-test
	$(BIN)/ruff check hpohash tests benchmarks examples
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache mlflow.db mlruns .hpohash
