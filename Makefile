# One entry point for people and CI. `make demo` and `make test` set up
# everything they need (a virtualenv in .venv) on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check lint types contracts bench snapshot clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed  ## plan the bundled example workloads, then a whole fleet
	$(BIN)/archipel plan examples/workloads/portfolio.yaml
	$(BIN)/archipel fleet plan examples/fleet/lab.yaml

test: $(BIN)/.installed  ## the whole test suite
	$(BIN)/pytest -q

check: lint types contracts  ## everything CI checks besides the tests

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

types: $(BIN)/.installed
	$(BIN)/mypy

contracts: $(BIN)/.installed
	$(BIN)/lint-imports

bench: $(BIN)/.installed  ## performance figures next to their baselines (see BENCHMARKS.md)
	$(BIN)/python bench/plan_bench.py
	$(BIN)/python bench/fleet_bench.py

snapshot: $(BIN)/.installed  ## rebuild the packaged offer snapshot from its sources
	$(BIN)/archipel catalog build

.PHONY: mutants
mutants: $(BIN)/.installed  ## mutation testing of policy/, placement/ and the fleet cost model (slow; not in CI)
	$(BIN)/pip install --quiet -e '.[mutation]'
	HYPOTHESIS_PROFILE=mutants $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
