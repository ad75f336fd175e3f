# Two entry points: `make run` and `make test` (and `make test-fast`, the pure core's unit tests
# in seconds; `make test-faults`, the fault trials at full size). All build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test test-fast test-faults lint typecheck unit postgres bench clean

# The service on embedded defaults: this repository as its own project, SQLite under
# .tc-scheduler/, dry-run unless TASKCLUSTER_* credentials are set. Stop it with Ctrl-C.
run: $(VENV)/.installed-run
	$(BIN)/tc-scheduler run

test: lint typecheck unit

# ruff, and the layer contract of docs/architecture.md (import-linter, in pyproject.toml).
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test postgres
	$(BIN)/pytest -q

# The unit tier without its Hypothesis properties (tests/support/tiers.py): no PostgreSQL,
# emulator, git or process; `make test` runs everything.
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -q --fast

# tests/faults at the sizes of issue 14's acceptance (`make test` runs their quick form):
# SIGKILLs, lost replies, replicas, restarts, a Slack outage, secret canaries, hostile
# repositories. Each trial's figures are summed up at the end. Tens of minutes.
test-faults: $(VENV)/.installed-test postgres
	TC_SCHEDULER_FAULTS=full $(BIN)/pytest -q tests/faults

# The ledger's tests run on SQLite and on the PostgreSQL server at 127.0.0.1:5432.
postgres:
	@scripts/ensure-postgres

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/plan_year.py
	$(BIN)/python benchmarks/tick_fanout.py

$(VENV)/bin/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "tc-scheduler needs Python 3.11 or newer (PYTHON=$(PYTHON))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis *.egg-info
