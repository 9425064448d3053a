# Two commands on a fresh machine:  make install   then   make test
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test lint bench

install:
	# CPU build of torch first (an unpinned torch pulls a multi-GB CUDA build), then everything else.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'

test:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check clusterdiv tests eval

bench:
	$(PYTHON) -m eval.bench_metrics
	$(PYTHON) -m eval.bench_cache --data ../shared/data --n 1000
