# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test lint bench-ingest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test,bench,dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job: starts (or reuses) the embedded PostgreSQL, then runs the end-to-end demo.
demo: $(STAMP)
	$(BIN)/pgembed demo

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check pgembed tests migrations

# Figures in docs/benchmarks.md; BASE defaults to generated data (pass the real dataset's .npy).
BASE ?=
bench-ingest: $(STAMP)
	$(BIN)/pgembed bench-ingest $(if $(BASE),--base $(BASE)) --rows 100000 --repeats 3 --out docs/results/ingest.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
