# Two commands (see README): `make run` starts the app, `make test` runs every check.
# Each creates .venv and installs what it needs on first use; stamps keep a second run from reinstalling.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install install-test chromium lint clean

run: $(VENV)/.runtime-installed
	@echo "Starting the app: open http://localhost:$(PORT) in your browser (Ctrl-C stops it)."
	$(PY) -m streamlit run streamlit_app.py --server.headless true --server.address localhost --server.port $(PORT)

test: $(VENV)/.test-installed chromium
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(VENV)/.runtime-installed

install-test: $(VENV)/.test-installed

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt requirements-nodeps.txt | $(VENV)/bin/python
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -r requirements-nodeps.txt
	touch $@

$(VENV)/.test-installed: requirements-test.txt $(VENV)/.runtime-installed
	$(PY) -m pip install -r requirements-test.txt
	touch $@

# Browser tests drive Debian's Chromium; Playwright's own browser download is never used.
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && \
		$(SUDO) apt-get install -y --no-install-recommends chromium fonts-dejavu-core; }

lint: $(VENV)/.test-installed
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
