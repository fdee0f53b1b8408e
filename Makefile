# simfarm: `make demo` runs the embedded farm with demo jobs; `make test` runs every check.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test up lint clean pyedb-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash scripts/install-system-deps.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/simfarm demo

up: setup
	$(VENV)/bin/simfarm up

test: setup
	bash scripts/install-system-deps.sh --test
	PY=$(PY) bash scripts/run-tests.sh

lint: setup
	$(PY) -m ruff check simfarm tests
	$(PY) -m mypy simfarm

# PyEDB 0.65.2 in its own venv: the peer of benchmarks/bench_pyedb.py
pyedb-venv: .venv-pyedb/.installed

.venv-pyedb/.installed:
	python3 -m venv .venv-pyedb
	.venv-pyedb/bin/python -m pip install -q 'pyedb==0.65.2'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
