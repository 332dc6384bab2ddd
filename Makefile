# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# the default suite on all cores (pytest-xdist, a dev dependency); one file per worker keeps
# module fixtures (a tiny demo, a trained run, an int8 export) built once
PYTEST_XDIST ?= -n auto --dist loadfile
DEMO_ARGS ?=
SERVE_ARGS ?=

.PHONY: install demo serve test test-slow test-all lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vcfnet demo $(DEMO_ARGS)

serve: $(STAMP)
	$(BIN)/vcfnet serve $(SERVE_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# everything: the default suite, the slow tests and the PostgreSQL runs of the platform's tests (CI)
test-all: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

bench: $(STAMP)
	$(BIN)/vcfnet bench all

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
