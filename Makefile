# Two commands on a fresh machine:  make install   then   make test
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install system-packages test lint bench

install: system-packages
	# CPU build of torch first (an unpinned torch pulls a multi-GB CUDA build), then everything else.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,ray]'

# PostgreSQL server binaries let the history tests run against a real server, and Debian's
# Chromium lets the explorer's browser test drive a real page (both skip when absent).
system-packages:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  missing=""; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  [ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	else echo "not root or no apt-get: skipping system packages (PostgreSQL tests will skip)"; fi

test:
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check clusterdiv tests eval

bench:
	$(PYTHON) -m eval.bench_metrics
	$(PYTHON) -m eval.bench_cache --data ../shared/data --n 1000
