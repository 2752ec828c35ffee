# The two commands of the quick start: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml clients/python/pyproject.toml | sha256sum | cut -c1-12)
CONFIG ?= configs/default.yaml

# The clients' offline tests; their live suites run inside the integration tests
# (tests/integration/test_clients.py), against the test cluster.
JS_TESTS := $(filter-out %/live.test.js,$(wildcard clients/js/test/*.test.js))
CLIENT_TESTS = $(BIN)/python -m pytest -q -p no:cacheprovider clients/python/tests \
		--ignore=clients/python/tests/test_live.py && node --test $(JS_TESTS)

.PHONY: install browser services chaos chaos-soak chaos-services postgres postgres-stop openapi run demo traffic test test-unit test-gpu test-integration lint lint-imports typecheck validate clean bench bench-scale bench-precomputed soak power

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned, so nothing else can pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e clients/python
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Debian's Chromium for the browser tests (tests/browser.py drives it with playwright);
# never a browser download. BLENDSERVE_CHROMIUM names another binary instead.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@test -n "$$BLENDSERVE_CHROMIUM" || command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	@# Node 18+ runs the JavaScript client's tests (clients/js, no npm packages needed).
	@command -v node >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs; }

# Debian's PostgreSQL server, for the live catalogue's PostgreSQL backend and its tests
# (the test fixture starts a throwaway server from it; nothing runs as a system service).
services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

# Debian's Redis, for the chaos suite's GCS fault tolerance (started by the suite).
chaos-services:
	@command -v redis-server >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

# Every part of the service SIGKILLed under load, one at a time (~10 min); rewrites
# docs/RELIABILITY.md. Not part of `make test`.
chaos: install chaos-services
	$(BIN)/python -m pytest -m "chaos and not slow" tests/chaos

# Thirty minutes at 60% of the default config's capacity: errors and memory growth
# per replica, into docs/RELIABILITY.md (BLENDSERVE_SOAK_S=300 for a shorter run).
chaos-soak: install chaos-services
	$(BIN)/python -m pytest -m "chaos and slow" tests/chaos

# A local PostgreSQL for `live_catalog.url` (README "State off the node"): data in
# .blendserve/postgres, 127.0.0.1:$(PG_PORT) only; `make postgres-stop` stops it.
PG_PORT ?= 54329
postgres: install services
	$(BIN)/python -m deployments.local.postgres start --data .blendserve/postgres/data --port $(PG_PORT)

postgres-stop: install
	$(BIN)/python -m deployments.local.postgres stop --data .blendserve/postgres/data

# Trains and publishes the demo models, then the `discover` use case's stacked
# combiner from the demo's logged feedback; versions already in the store are kept.
demo: install
	$(BIN)/blendserve demo-train --store artifacts --data data
	$(BIN)/blendserve train-stack configs/default.yaml --use-case discover --node learned \
		--feedback data/feedback.parquet --skip-existing

run: demo
	$(BIN)/blendserve validate $(CONFIG)
	$(BIN)/blendserve up $(CONFIG)

test: install browser services
	$(BIN)/lint-imports
	$(BIN)/python -m pytest
	$(CLIENT_TESTS)

test-unit: install browser services
	$(BIN)/python -m pytest tests/unit
	$(CLIENT_TESTS)

test-gpu: install
	$(BIN)/python -m pytest -m gpu

test-integration: install browser services
	$(BIN)/python -m pytest tests/integration

lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The one-way layers and the Ray-free packages (pyproject.toml [tool.importlinter]).
lint-imports: install
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy models blending deployments benchmarks clients/python/blendserve_client

# Rewrite docs/openapi.json from the code (a test fails when it drifts).
openapi: install
	$(BIN)/python -m deployments.serve.openapi_schema

validate: install
	$(BIN)/blendserve validate $(CONFIG)

clean:
	rm -rf $(VENV) artifacts data .pytest_cache .mypy_cache .ruff_cache benchmarks/.venv

# Are the experiment verdicts right? A simulated population through the HTTP API (A/A
# with peeking, coverage, power of A/B vs interleaving, staged vs A/B/n); writes
# docs/MEASUREMENT.md. `make power POWER_ARGS=--quick` is a smoke run.
power: demo
	$(BIN)/python -m benchmarks.power $(POWER_ARGS)

# Throughput and latency beside a naive Serve composition, a Serve echo and MLServer;
# writes BENCHMARKS.md. Installs wrk (apt-get) and benchmarks/.venv (MLServer, py-spy)
# on first use. `make bench BENCH_ARGS=--quick` is a smoke run.
bench: demo
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Precomputed lists (`blendserve batch-score` on Ray Data) against scoring on request,
# per request and in freshness (BENCHMARKS.md, "Precomputed lists"); about a minute.
bench-precomputed: demo
	$(BIN)/python -m benchmarks.precomputed

# 10k, 100k and 1M items: the collaborative model in process, exact scoring against
# the approximate index, then each size served over HTTP (BENCHMARKS.md, "Scale");
# SCALE_ARGS=--quick is a small smoke run.
bench-scale: install
	$(BIN)/python -m benchmarks.scale $(SCALE_ARGS)

# Simulated readers who click what they like, against a running `make run`: watch
# CTR per experiment arm move on http://127.0.0.1:8000/dashboard.
TRAFFIC_S ?= 120
traffic: install
	$(BIN)/blendserve demo-traffic --duration $(TRAFFIC_S)

# Open-loop load at a fixed rate against a running `make run` (README "Load and soak").
SOAK_URL ?= http://127.0.0.1:8000
SOAK_RATE ?= 80
SOAK_S ?= 600
soak: install
	$(BIN)/python -m benchmarks.soak --url $(SOAK_URL) --rate $(SOAK_RATE) --duration $(SOAK_S) \
		--users "$$(seq -f 'u%04g' 0 499 | paste -sd, -)"
