# Two commands on a fresh machine:  make install   then   make test
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install system-packages test lint bench

# llama.cpp built with -march=native on a CPU with AMX (Sapphire Rapids and later) segfaults in its AMX
# matmul on the bundled Q4_1 model (ggml-org/llama.cpp#20824), in-process and in llama-cpp-python's
# server alike: on x86-64 compile it without AMX. --no-cache-dir: pip's wheel cache would hand back an
# earlier AMX build of the same version.
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE_ARGS ?= $(if $(filter x86_64,$(shell uname -m)),-DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)')

install: system-packages
	# CPU build of torch first (an unpinned torch pulls a multi-GB CUDA build), then llama.cpp (the local-llm
	# extra's compiled part, built without AMX), then the rest: everything, extras included.
	$(PIP) install torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install --no-cache-dir 'llama-cpp-python>=0.3.7'
	$(PIP) install -e '.[dev,ray,local-llm]'

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

# Two workers halve the suite's wall time on the 2-core CI machine: most of it is CLI subprocesses
# waiting on imports. loadscope keeps each module on one worker, so module fixtures (the Ray cluster,
# the local model's shared cache) start once. A plain `pytest` stays serial for debugging.
TEST_WORKERS ?= 2
test:
	$(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadscope

lint:
	$(PYTHON) -m ruff check clusterdiv tests eval

bench:
	$(PYTHON) -m eval.bench_metrics
	$(PYTHON) -m eval.bench_cache --data ../shared/data --n 1000
