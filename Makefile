# One-command set-up: every target below creates the virtual environment it needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_ARGS ?=

.PHONY: run test lint bench clean system-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Debian packages for the browser tests, the C engine, the Cortex-M4 build and QEMU.
system-deps:
	@bash scripts/system-deps.sh

run: $(STAMP) system-deps
	$(BIN)/vo2spike run $(RUN_ARGS)

test: $(STAMP) system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest

# About 2 hours on 2 cores; results in bench/results/*.md and *.json.
bench: $(STAMP) system-deps
	$(BIN)/python bench/engines.py
	$(BIN)/python bench/c_engine.py
	$(BIN)/python bench/malaga_comparison.py
	$(BIN)/python bench/spike_sparsity.py
	$(BIN)/python bench/prune_sparsity.py
	$(BIN)/python bench/pruned_vo2max.py
	$(BIN)/python bench/pruned_fine_tune.py
	$(BIN)/python bench/sim_transfer.py
	$(BIN)/python bench/lopo_variants.py
	$(BIN)/python bench/input_sets.py
	$(BIN)/python bench/kill_safety.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) runs data .pytest_cache .ruff_cache .hypothesis
