# Two entry points: `make run` and `make test` (and `make test-fast`, the pure core's unit tests
# in seconds; `make test-faults`, the fault trials at full size; `make image` and
# `make test-image`, the container image of deploy/). All build .venv from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# The image `make image` builds, on which base, for the base's Python (the wheels must fit it).
IMAGE        ?= tc-scheduler:$(VERSION)
IMAGE_BASE   ?= docker.io/library/python:3.12-slim
IMAGE_PYTHON ?= 3.12
IMAGE_BUILD_FLAGS ?=
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.PHONY: run test test-fast test-faults lint typecheck unit postgres chromium bench clean \
	image-wheels image image-tools test-image

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

unit: $(VENV)/.installed-test postgres chromium
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

# The container image (deploy/container/Containerfile): this repository's wheel and its
# dependencies' in build/wheels first, so that the build itself downloads nothing.
image-wheels: $(VENV)/bin/python
	PYTHON=$(BIN)/python deploy/container/wheels build/wheels $(IMAGE_PYTHON)

image: image-wheels
	podman build $(IMAGE_BUILD_FLAGS) --format docker -f deploy/container/Containerfile \
		--build-arg BASE=$(IMAGE_BASE) --build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$(REVISION) -t $(IMAGE) .

# tests/test_image.py: builds the image on a base made from Debian's packages, with no image
# registry, and runs its commands as its user (`make test` runs it too when podman is there).
test-image: $(VENV)/.installed-test image-tools
	$(BIN)/pytest -q tests/test_image.py

image-tools:
	@scripts/ensure-image-tools

# The ledger's tests run on SQLite and on the PostgreSQL server at 127.0.0.1:5432.
postgres:
	@scripts/ensure-postgres

# The dashboard's browser test drives Debian's Chromium (never a downloaded browser).
chromium:
	@scripts/ensure-chromium

# Each prints its figures (min / median / max); idle_tick and replicas need PostgreSQL, and the
# tick benchmarks the corpus's translations template in ../shared/corpus.
bench: $(VENV)/.installed-test postgres
	$(BIN)/python benchmarks/plan_year.py
	$(BIN)/python benchmarks/plan_corpus.py
	$(BIN)/python benchmarks/tick_fanout.py
	$(BIN)/python benchmarks/idle_tick.py
	$(BIN)/python benchmarks/replicas.py
	$(BIN)/python benchmarks/slot_latency.py
	$(BIN)/python benchmarks/expiry_scan.py
	$(BIN)/python benchmarks/dashboard.py
	$(BIN)/python benchmarks/head_reads.py
	$(BIN)/python benchmarks/per_fire.py
	$(BIN)/python benchmarks/ledger_bulk.py

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
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis *.egg-info build
