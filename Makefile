# The two commands a new user needs: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
BENCH_VENV := .venv-bench
DEPLOY_VENV := .venv-deploy

.PHONY: setup run test test-all compat releases lint bench chaos contracts browser prometheus monitoring images container-tools rehearse clean

setup: $(VENV)/.installed node_modules/.installed $(DEPLOY_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

# checkov (the manifests' policy check) in its own environment: its pins must not reach ours
$(DEPLOY_VENV)/.installed: deploy/requirements-checkov.txt
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r deploy/requirements-checkov.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The searcher in shadow mode on the embedded devnet (anvil, Uniswap V2/V3, a simulated market).
# Ctrl-C stops it with a summary; `make run ARGS="--max-blocks 50"` stops by itself.
run: setup
	$(BIN)/arbx run $(ARGS)

lint: setup
	$(BIN)/ruff check src tests bench chaos deploy rehearsal
	$(BIN)/ruff format --check src tests bench chaos deploy rehearsal
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo
	$(BIN)/hadolint deploy/images/*/Containerfile

# Debian's chromium drives the dashboard's end-to-end tests (installed when missing, as root)
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || \
	  echo "the dashboard tests need Debian's chromium: apt-get install chromium"

# Debian's prometheus gives promtool and the server the monitoring tests run (installed when
# missing, as root)
prometheus:
	@test -x /usr/bin/promtool || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus >/dev/null; } || \
	  echo "the monitoring tests need Debian's prometheus: apt-get install prometheus"

# podman and the tools `make images` uses, from Debian (installed when missing, as root)
CONTAINER_TOOLS := podman buildah runc debootstrap docker-registry curl
container-tools:
	@missing=""; for tool in $(CONTAINER_TOOLS); do command -v $$tool >/dev/null || \
	  missing="$$missing $$tool"; done; [ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing \
	  >/dev/null; } || { echo "make images needs:$$missing (apt-get install$$missing)"; exit 1; }

# The container images (searcher, web, devnet, postgres) built with podman from Debian bookworm
# bases made here with debootstrap and a local wheelhouse (no network inside the builds), tagged
# with the version and the git revision, pushed to the local registry on 127.0.0.1:5050.
# `make images IMAGES=searcher REGISTRY=` builds one image and pushes nothing.
images: export CONTAINERS_CONF := $(CURDIR)/deploy/images/containers.conf
images: setup container-tools
	PYTHON_BIN=$(BIN)/python IMAGES="$(IMAGES)" $(if $(filter undefined,$(origin REGISTRY)),,REGISTRY="$(REGISTRY)") deploy/images/build.sh

test: setup lint browser prometheus container-tools
	$(BIN)/pytest -q

# The previous release (deploy/releases.toml) on this schema, on PostgreSQL and SQLite (make test
# runs PostgreSQL only)
compat: setup
	ARBX_COMPAT_ALL=1 $(BIN)/pytest -q tests/integration/test_previous_release.py tests/integration/test_schema_policy.py

# The engine's release end to end (a standby compared, a worse one refused, the signer lock
# handed over) on PostgreSQL and SQLite (make test runs PostgreSQL only)
releases: setup
	ARBX_RELEASES_ALL=1 $(BIN)/pytest -q tests/integration/test_release_handover.py tests/integration/test_release_records.py

# More differential cases than CI runs: make test-all DIFF_CASES=5000
test-all: setup
	ARBX_DIFF_CASES=$(or $(DIFF_CASES),5000) $(BIN)/pytest -q

$(BENCH_VENV)/.installed: bench/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

bench: setup $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench
	$(BIN)/python -m bench.chain
	$(BIN)/python -m bench.mainnet
	$(BIN)/python -m bench.live
	$(BIN)/python -m bench.hotpath
	$(BIN)/python -m bench.api_bench
	$(BIN)/python -m bench.decode
	$(BIN)/python -m bench.rpc_hedge
	$(BIN)/python -m bench.stages
	$(BIN)/python -m bench.capture --short
	$(MAKE) -s images REGISTRY=
	$(BIN)/python -m bench.images

# The fault suite: a limited-mode run on the devnet (anvil, the local builder, a private
# PostgreSQL) with RPC, reorg, database, builder, crash, signer-lock and API faults injected one at
# a time and combined; writes build/chaos/report.json and prints its table (exit 1 on a miss).
# `make chaos FAULTS="reorgs builder_5xx"` runs some of them.
chaos: setup
	$(BIN)/python -m chaos $(FAULTS)

# The staging rehearsal: the stack on podman (registry, PostgreSQL, devnet, Prometheus, the pods),
# the Rollouts and AnalysisTemplates of deploy/k8s/overlays/staging executed on it, releases v2
# and v3, the rollbacks; writes build/rehearsal/report.json. `make rehearse ARGS=--short`.
rehearse: export CONTAINERS_CONF := $(CURDIR)/deploy/images/containers.conf
rehearse: setup container-tools prometheus
	$(BIN)/python -m rehearsal $(ARGS)

# Rebuild the compiled contracts shipped in the package (PoolLens, the executor): the one way
# to turn a Solidity change into what runs; the tests check they match their sources
contracts: setup
	$(BIN)/python -m arbx.devnet.build_contracts

# Regenerate the alert rules (plain and PrometheusRule) and the Grafana dashboards from their
# sources in deploy/; the tests check the committed files match
monitoring: setup
	$(BIN)/python deploy/prometheus/alerts.py
	$(BIN)/python deploy/grafana/dashboards.py

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(DEPLOY_VENV) node_modules build .pytest_cache .mypy_cache .ruff_cache
