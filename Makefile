# The two commands: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo test test-core lint benchmark clean

setup:
	@bash tools/system-deps.sh
	@VENV=$(VENV) bash tools/venv.sh

demo: setup
	$(PY) -m examples.multistage

test: setup
	$(PY) -m ruff check core plugins tests examples benchmarks
	$(PY) -m pytest $(PYTEST_ARGS)

test-core: setup
	$(PY) -m pytest core/tests $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check core plugins tests examples benchmarks

benchmark: setup
	$(PY) benchmarks/multistage.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache
