# Two commands on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export DO_NOT_TRACK := 1

.PHONY: demo test test-fast lint bench

$(VENV)/installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # the CPU wheel; an unpinned torch pulls GBs of CUDA
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/installed
	$(VENV)/bin/prefpipe demo

test: $(VENV)/installed
	$(PY) -m pytest

test-fast: $(VENV)/installed  # without the integration tests marked slow (Prefect servers, subprocesses)
	$(PY) -m pytest -m "not slow"

lint: $(VENV)/installed
	$(VENV)/bin/ruff check prefpipe flows tasks tests benchmarks

bench: $(VENV)/installed
	$(PY) benchmarks/ingest.py
