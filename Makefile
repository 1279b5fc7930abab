# Two commands on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast lint bench browser

$(VENV)/installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # the CPU wheel; an unpinned torch pulls GBs of CUDA
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: $(VENV)/installed
	$(VENV)/bin/prefpipe demo

test: $(VENV)/installed browser  # lint first, so that CI catches it; three workers on two cores: many tests wait on servers and subprocesses
	$(VENV)/bin/ruff check prefpipe flows tasks tests benchmarks
	# idle torch threads sleep rather than spin: three workers on two cores would burn a core spinning
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -n 3 --dist loadgroup

test-fast: $(VENV)/installed  # without the integration tests marked slow (Prefect servers, subprocesses)
	$(PY) -m pytest -m "not slow"

lint: $(VENV)/installed
	$(VENV)/bin/ruff check prefpipe flows tasks tests benchmarks

browser:  # Debian's Chromium and ChromeDriver for the report's browser tests, installed where apt-get is usable (as root); else those tests skip
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { echo "make test: installing Debian's chromium and chromium-driver for the browser tests"; \
	       DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
	       || { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }; }; } \
	  || echo "make test: no Chromium here and apt-get is not usable: the report's browser tests will be skipped"

bench: $(VENV)/installed
	$(PY) benchmarks/ingest.py
