# Everyday commands. `make book` and `make test` create the Python
# environment in $(VENV) on first use (needs Python >= 3.10 with pip and venv).
# With conda instead: conda env create -f environment.yml && conda activate ust,
# then `make test VENV=$CONDA_PREFIX`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ust-installed
# MathJax 3, served with the book so that math renders offline (not committed;
# fetched once from PyPI, see book/_ext/fetch_mathjax.py).
MATHJAX := book/_mathjax/mathjax/tex-chtml.js

.PHONY: env book mathjax check-book test lint benchmark clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e .
	touch $(STAMP)

## mathjax: fetch MathJax into book/_mathjax (once; needs the network)
mathjax: $(MATHJAX)

$(MATHJAX):
	$(MAKE) env
	$(BIN)/python book/_ext/fetch_mathjax.py

## book: execute every chapter and build the HTML into _build/html
book: env
	$(MAKE) --no-print-directory mathjax
	$(BIN)/jupyter-book build book -W -n --keep-going

## check-book: check the built HTML (errors in outputs, figures, downloads, rendering in headless Chromium)
check-book: env
	$(BIN)/python .ci/check_book.py

## test: the test suite (CI runs exactly this)
test: env
	$(BIN)/python -m pytest

## lint: ruff's checks (pycodestyle, pyflakes; settings in pyproject.toml); also part of `make test`
lint: env
	$(BIN)/python -m ruff check .

## benchmark: dense extraction speed-up over the naive per-patch loop
benchmark: env
	$(BIN)/python benchmarks/dense_extraction.py --csv book/results/dense_extraction.csv

clean:
	rm -rf _build .pytest_cache
