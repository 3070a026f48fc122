# The two commands: `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup demo demo-multistage demo-session test test-core lint benchmark clean

setup:
	@bash tools/system-deps.sh
	@VENV=$(VENV) bash tools/venv.sh

demo: setup
	$(PY) -m examples.multistage
	$(PY) -m examples.session

demo-multistage: setup
	$(PY) -m examples.multistage

demo-session: setup
	$(PY) -m examples.session

test: setup
	$(PY) -m ruff check core plugins tests examples benchmarks
	$(PY) -m pytest $(PYTEST_ARGS)

test-core: setup
	$(PY) -m pytest core/tests $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check core plugins tests examples benchmarks

# Every comparison in README.md's performance table. The Merlin peer runs in its own virtualenv,
# built once by benchmarks/peers/merlin/setup.sh (5-15 min); its script is
# benchmarks/peers/merlin/merlin_pipeline.py, started by multistage.py --peers merlin.
benchmark: setup
	@test -x .venv-merlin/bin/python || bash benchmarks/peers/merlin/setup.sh
	$(PY) benchmarks/multistage.py --peers merlin $(BENCH_ARGS)
	$(PY) benchmarks/feast_overhead.py
	$(PY) benchmarks/faiss_overhead.py
	$(PY) benchmarks/triton_overhead.py
	$(PY) benchmarks/readme_table.py

clean:
	rm -rf $(VENV) build .pytest_cache
