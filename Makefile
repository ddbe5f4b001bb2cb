# The two commands: `make run` (a sample workflow, end to end) and `make test` (the whole suite).
# Both create .venv and install what they need on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE ?= sample_workflows/local-service/deploy.yaml
SAMPLE_ROOT ?= /tmp/tempeh-local-service

.PHONY: run stop-sample test lint types unit tools bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "tempeh needs Python 3.11+, $(PYTHON) is " + sys.version.split()[0] or 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/tempeh run $(SAMPLE) --headless $(ARGS)

stop-sample:
	sample_workflows/local-service/scripts/service.sh stop $(SAMPLE_ROOT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

# The end-to-end tests drive tempeh in tmux; install it where it is missing (Debian, as root).
tools:
	@command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux; }

# Bytecode first: the tests start tempeh hundreds of times, and where PYTHONDONTWRITEBYTECODE
# is set every start would compile the package again.
unit: $(STAMP) tools
	@$(BIN)/python -m compileall -q tempeh_tui
	$(BIN)/pytest

test: lint types unit

bench: $(STAMP)
	$(BIN)/python bench/spawn.py
	$(BIN)/python bench/engine.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
