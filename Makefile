# `make run` and `make test` do all the set-up on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The SAM CLI lives in its own venv: its pins would fight the service's.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
# The locked dependency set (README: "Dependencies"). requirements/torch-cpu.txt names torch's CPU build and the
# index it comes from, once (on this project's machines pip finds the same wheel in its local wheel folder).
# requirements/dev.lock (what `make` installs) and requirements/runtime.lock (what the Lambda image installs, at the
# same pins) are written from pyproject.toml by `make lock`, with every file's hash.
TORCH_REQ := requirements/torch-cpu.txt
LOCK := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
# A GPU machine: `make setup TORCH=torch==2.13.0` installs PyPI's CUDA build instead (with its CUDA libraries).
TORCH ?= --no-deps -r $(TORCH_REQ)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup events lint clean lock

$(STAMP): pyproject.toml Makefile $(TORCH_REQ) $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
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

# ---- the lock ------------------------------------------------------------------------------------------------
# After changing dependencies in pyproject.toml (or torch's pin): `make lock`, then commit requirements/. Current
# pins are kept where they still fit; `make lock UPGRADE=1` moves every package to its newest allowed version.
# uv resolves for Python 3.11 and 3.12 (`make` and the image) on every platform, from PyPI only; torch's
# dependencies are read from its CPU wheel, fetched once into .cache/ from the index torch-cpu.txt names.
UV_VERSION := 0.13.9
LOCK_VENV := .venv-lock
UV := $(LOCK_VENV)/bin/uv
TORCH_WHEEL_DIR := .cache/torch-cpu-wheel
UV_COMPILE = $(UV) pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--index-url https://pypi.org/simple --find-links $(TORCH_WHEEL_DIR) --no-emit-find-links \
	--override $(TORCH_REQ) --no-emit-package torch --custom-compile-command "make lock" --quiet \
	$(if $(UPGRADE),--upgrade)

$(UV):
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet "uv==$(UV_VERSION)"

lock: $(UV)
	$(LOCK_VENV)/bin/pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
		--python-version 3.11 -d $(TORCH_WHEEL_DIR) -r $(TORCH_REQ)
	$(UV_COMPILE) -o $(RUNTIME_LOCK)
	$(UV_COMPILE) --extra dev --constraint $(RUNTIME_LOCK) -o $(LOCK)
	@echo "wrote $(RUNTIME_LOCK) and $(LOCK): commit them with pyproject.toml"

clean:
	rm -rf $(VENV) $(SAM_VENV) $(LOCK_VENV) .pytest_cache test-artifacts
