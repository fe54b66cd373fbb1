# Two entry points: `make serve` and `make test`. Both create .venv and install what they need.
# `make test` also runs `make runtimes` (R with rpy2 and a JDK with py4j for the R and Java model tests) and
# `make containers` first: a container engine (podman, installed with apt-get when missing and possible) and
# the drum drop-in base image for the `--docker` tests (docs/containers.md), and `make peers` (MLServer's and
# KServe's own venvs for the V2 client tests and the benchmark); each ends with a `ready` or
# `skipped: <reason>` line and never stops the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080
EXAMPLE ?= examples/regression

.PHONY: serve test lint venv clean bench containers runtimes peers

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

# Idempotent (cached: about 2 s when everything exists; about 3 min on a fresh machine). Writes .venv/.containers.
containers: $(BIN)/python
	bash tools/containers/setup.sh

# Idempotent: R (r-base-core) with rpy2 and a JDK with py4j for the R and Java model tests, installed when
# missing (apt-get as root, pip into .venv); writes .venv/.runtimes (tools/runtimes/setup.sh).
runtimes: $(VENV)/.installed-test
	bash tools/runtimes/setup.sh $(VENV)

# Idempotent: MLServer's and KServe's own venvs under .venv/peers (never in .venv itself), for the tests that
# drive the V2 routes with their clients and for the benchmark's peer columns; writes .venv/.peers.
peers: $(VENV)/.installed-test
	bash tools/peers/setup.sh $(VENV)

test: $(VENV)/.installed-test containers runtimes peers
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

$(VENV)/.installed-bench: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[bench]'
	touch $@

# Side-by-side benchmark (bench/README.md): DRUM_REFERENCE_VENV=/path/to/venv adds DRUM 1.18.1 as the
# first column; BENCH_ARGS selects a subset, e.g. BENCH_ARGS='--quick' or '--servers fastapi,gunicorn --cases csv1-*'.
BENCH_ARGS ?=
bench: $(VENV)/.installed-bench peers
	@command -v wrk >/dev/null 2>&1 || { echo "bench: installing the load generators wrk and hey with apt-get"; \
	  { apt-get install -y -q wrk hey || { apt-get update -q && apt-get install -y -q wrk hey; }; } >/dev/null 2>&1; true; }
	@command -v wrk >/dev/null 2>&1 || command -v hey >/dev/null 2>&1 || { \
	  echo "bench: wrk (or hey) is needed and apt-get could not install it (not root, or no network)." >&2; \
	  echo "bench: install it yourself (e.g. sudo apt-get install wrk hey) and run make bench again." >&2; exit 1; }
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
