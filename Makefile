# duetfair: two commands on a fresh machine -> `make demo`, `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP := $(VENV)/bin/pip
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo demo-full test lint test-slow test-all bench bench-methods setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"
	touch $(STAMP)

# First contact: six methods at the quick size, the comparison table and runs/demo/report.html with
# the findings (about 2 minutes on 2 cores: 1 min 58 s / 2 min 11 s of CPU time measured; README "The demo").
demo: $(STAMP)
	$(VENV)/bin/duetfair demo --quick

# The demo's full comparison (default size: 20 epochs, HD95/NSD, 1000 bootstrap resamples,
# per-method reports); about 8 to 10 minutes on an unshared 2-core machine.
demo-full: $(STAMP)
	$(VENV)/bin/duetfair demo --out runs/demo-full

test: lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

# The published method benchmark (docs/benchmarks.md, "Methods"): three suites, twelve methods,
# SEEDS seeds each; resumable (finished runs are reused). Several hours on 2 CPU cores.
SEEDS ?= 5
bench-methods: $(STAMP)
	for t in fundus2d lesion2d tumor3d; do \
	  $(VENV)/bin/duetfair benchmark --task $$t --method all --size bench --seeds $(SEEDS) --out runs/bench/$$t || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
