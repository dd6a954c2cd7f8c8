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
	$(BIN)/hpohash hash --config-dir examples/configs --model distilbert \
		--hyperparameters '{"learning_rate": 2.33e-05, "batch_size": 16, "dropout": 0.1733, "weight_decay": 0.0042}'


lint: $(VENV)/.installed-test
	$(BIN)/ruff check hpohash tests benchmarks examples

test: $(VENV)/.installed-test
	$(BIN)/ruff check hpohash tests benchmarks examples
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache mlflow.db mlruns .hpohash
