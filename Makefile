# Two commands on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast lint bench

$(VENV)/installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # the CPU wheel; an unpinned torch pulls GBs of CUDA
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/installed
	$(VENV)/bin/prefpipe demo

test: $(VENV)/installed  # lint first, so that CI catches it; three workers on two cores: many tests wait on servers and subprocesses
	$(VENV)/bin/ruff check prefpipe flows tasks tests benchmarks
	$(PY) -m pytest -n 3

test-fast: $(VENV)/installed  # without the integration tests marked slow (Prefect servers, subprocesses)
	$(PY) -m pytest -m "not slow"

lint: $(VENV)/installed
	$(VENV)/bin/ruff check prefpipe flows tasks tests benchmarks

bench: $(VENV)/installed
	$(PY) benchmarks/ingest.py
