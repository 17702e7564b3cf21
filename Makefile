# `make run` and `make test` do all the set-up on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The SAM CLI lives in its own venv: its pins would fight the service's.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
# CPU build of torch; on this project's machines it comes from the local wheel cache.
TORCH ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup events lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(SAM):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet "aws-sam-cli==1.170.0"

setup: $(STAMP)

run: $(STAMP)
	@echo "Face Interpolator on http://$(HOST):$(PORT)/  (try-it page; API docs: http://$(HOST):$(PORT)/docs)"
	POWERTOOLS_METRICS_DISABLED=true POWERTOOLS_TRACE_DISABLED=true \
		$(BIN)/uvicorn handler.app:app --host $(HOST) --port $(PORT)

test: $(STAMP) $(SAM) browser
	$(BIN)/python -m pytest -q

# Debian's chromium + chromedriver for tests/test_web.py (skipped without them, except under CI=true).
.PHONY: browser
browser:
	@sh scripts/install_browser.sh

events: $(STAMP)
	$(BIN)/python scripts/make_events.py

clean:
	rm -rf $(VENV) $(SAM_VENV) .pytest_cache test-artifacts
