# One-command set-up: every target below creates the virtual environment it needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUN_ARGS ?=

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/vo2spike run $(RUN_ARGS)

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/sim_transfer.py
	$(BIN)/python bench/lopo_variants.py

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) runs data .pytest_cache .ruff_cache .hypothesis
