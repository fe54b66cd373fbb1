# Two entry points: `make serve` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
EXAMPLE ?= examples/regression

.PHONY: serve test lint venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

serve: $(VENV)/.installed
	@echo "Try: curl -s -X POST --data-binary @$(EXAMPLE)/input.csv -H 'Content-Type: text/csv' http://$(HOST):$(PORT)/predict/"
	$(BIN)/drum server --code-dir $(EXAMPLE) --address $(HOST):$(PORT) --target-type regression

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
