# Everyday commands. `make book` and `make test` create the Python
# environment in $(VENV) on first use (needs Python >= 3.10 with pip and venv).
# With conda instead: conda env create -f environment.yml && conda activate ust,
# then `make test VENV=$CONDA_PREFIX`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ust-installed

.PHONY: env book test benchmark clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -e .
	touch $(STAMP)

## book: execute every chapter and build the HTML into _build/html
book: env
	$(BIN)/jupyter-book build book -W -n --keep-going

## test: the test suite (CI runs exactly this)
test: env
	$(BIN)/python -m pytest

## benchmark: dense extraction speed-up over the naive per-patch loop
benchmark: env
	$(BIN)/python benchmarks/dense_extraction.py

clean:
	rm -rf _build .pytest_cache
