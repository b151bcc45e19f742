# Two commands on a fresh machine: `make quickstart` (the main job) and `make test`.
# Both build (or reuse) the virtual environment in .venv and install everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/quickstart
BENCH_ARGS ?=

.PHONY: quickstart test lint bench clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,tf]"
	touch $(STAMP)

quickstart: $(STAMP)
	$(PY) -m ienet_jax.quickstart --workdir=$(WORKDIR)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n 2 --durations=15

lint: $(STAMP)
	$(PY) -m ruff check .

# The benchmark table (bench/suite.py); e.g. make bench BENCH_ARGS="--short --json runs/bench.json"
bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
