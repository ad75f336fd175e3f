# Two entry points: `make run` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck unit postgres bench clean

# The service on embedded defaults: this repository as its own project, SQLite under
# .tc-scheduler/, dry-run unless TASKCLUSTER_* credentials are set. Stop it with Ctrl-C.
run: $(VENV)/.installed-run
	$(BIN)/tc-scheduler run

test: lint typecheck unit

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test postgres
	$(BIN)/pytest -q

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
