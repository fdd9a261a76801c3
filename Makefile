# One entry point for people and CI. `make demo` and `make test` set up
# everything they need (a virtualenv in .venv) on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Dependencies come from requirements.lock, one exact version (and its hashes)
# for every package, so that CI, a new user and a developer run the same code.
# To change one: edit pyproject.toml, run `make lock`, then `make test`, and
# commit pyproject.toml and requirements.lock together (see README).
LOCK := requirements.lock
# `make mutants` alone: the mutation-testing extra, on top of the same pins
MUTATION_LOCK := requirements-mutation.lock
# the FOCUS validator's own pins, in their own virtualenv (see docs/focus.md)
FOCUS_LOCK := requirements-focus.lock
FOCUS_VENV := .venv-focus

.PHONY: demo test check lint types contracts bench snapshot lock clean

$(BIN)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

demo: $(BIN)/.installed  ## plan the bundled example workloads, then a whole fleet
	$(BIN)/archipel plan examples/workloads/portfolio.yaml
	$(BIN)/archipel fleet plan examples/fleet/lab.yaml

test: $(BIN)/.installed  ## the whole test suite
	$(BIN)/pytest -q

check: lint types contracts  ## everything CI checks besides the tests

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench scripts examples
	$(BIN)/ruff format --check src tests bench scripts examples

types: $(BIN)/.installed
	$(BIN)/mypy

contracts: $(BIN)/.installed
	$(BIN)/lint-imports

bench: $(BIN)/.installed  ## performance figures next to their baselines (see BENCHMARKS.md)
	$(BIN)/python bench/plan_bench.py
	$(BIN)/python bench/fleet_bench.py

# `make lock` keeps every pin it can and resolves what pyproject.toml changed;
# `make lock LOCK_ARGS=--upgrade` moves everything to its newest allowed version,
# `make lock LOCK_ARGS="--upgrade-package highspy"` one package.
LOCK_ARGS ?=
lock: $(BIN)/.installed  ## resolve pyproject.toml into requirements.lock (see above)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra gateway --extra ray --python-version 3.11 \
		--universal --generate-hashes --custom-compile-command 'make lock' --quiet \
		--output-file $(LOCK) $(LOCK_ARGS)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra gateway --extra ray --extra mutation \
		--python-version 3.11 --universal --generate-hashes --custom-compile-command 'make lock' \
		--quiet --constraint $(LOCK) --output-file $(MUTATION_LOCK) $(LOCK_ARGS)
	$(BIN)/uv pip compile requirements-focus.in --python-version 3.11 --universal \
		--generate-hashes --custom-compile-command 'make lock' --quiet \
		--output-file $(FOCUS_LOCK) $(LOCK_ARGS)

# `make focus-validator`: the FinOps Foundation's focus-validator in .venv-focus
# (it pins numpy<2, so it cannot live in .venv); tests/ledger/test_focus_validator.py
# builds the same virtualenv when it is missing.
.PHONY: focus-validator
focus-validator: $(FOCUS_VENV)/bin/.installed
$(FOCUS_VENV)/bin/.installed: $(FOCUS_LOCK) $(BIN)/.installed
	$(BIN)/uv venv --quiet --allow-existing --python $(BIN)/python $(FOCUS_VENV)
	$(BIN)/uv pip install --quiet --python $(FOCUS_VENV)/bin/python --require-hashes -r $(FOCUS_LOCK)
	touch $@

snapshot: $(BIN)/.installed  ## rebuild the packaged offer snapshot from its sources
	$(BIN)/archipel catalog build

.PHONY: mutants
mutants: $(BIN)/.installed  ## mutation testing of policy/, placement/ and the fleet cost model (slow; not in CI)
	$(BIN)/pip install --quiet --require-hashes -r $(MUTATION_LOCK)
	HYPOTHESIS_PROFILE=mutants $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) $(FOCUS_VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
