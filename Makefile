# The two commands: `make run` runs the platform, `make test` passes the tests.
# Each installs what it needs first (venv, npm ci, our solc shim), idempotently.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
# solc-js behind tools/solc-shim.js, registered with py-solc-x in this clone's venv only.
export SOLCX_BINARY_PATH := $(VENV)/solcx
# Ape's packages and compiler caches stay inside this clone.
export APE_DATA_FOLDER := $(CURDIR)/.ape
export PYTHONDONTWRITEBYTECODE := 1

PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
SHIM_STAMP := $(SOLCX_BINARY_PATH)/.registered
# The dApp (vite + viem) built into dapp/dist, which the indexer serves at `/`.
DAPP_SOURCES := $(shell find dapp -path dapp/dist -prune -o -type f -print)
DAPP_STAMP := dapp/dist/.built

# Debian's chromium drives the browser tests and `make bench-dapp` (Playwright and Lighthouse
# use it; nothing downloads a browser). Installed with apt-get when missing and we are root.
CHROMIUM := /usr/bin/chromium

.PHONY: help install chromium dapp compile test fuzz run e2e bench bench-gas bench-oracle bench-bridge bench-rewards bench-indexer bench-apps bench-attestations bench-stack bench-dapp bench-triggers lint clean

help:
	@echo "make run     run the platform (anvil, deploy, oracle quorum, indexer, simulated fleet)"
	@echo "make e2e     end-to-end check: simulated days through the whole platform"
	@echo "make test    install, compile and run the test suite (forge invariants included)"
	@echo "make fuzz    the forge invariant suites, deeper (256 runs of 128 calls each)"
	@echo "make bench   run every benchmark;  make bench-gas  contract gas figures"
	@echo "make bench-dapp  Lighthouse, axe and the owner view's requests and time"
	@echo "make lint    ruff and mypy (strict) on our packages"
	@echo "make dapp    build the dApp (dapp/dist, served by the indexer at /)"

install: $(PY_STAMP) $(NPM_STAMP) $(SHIM_STAMP) $(DAPP_STAMP) chromium

chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y --no-install-recommends chromium \
	      || { apt-get update && apt-get install -y --no-install-recommends chromium; }; \
	  else \
	    echo "warning: $(CHROMIUM) is missing; the browser tests and bench-dapp need it" \
	      "(as root: apt-get install -y chromium)"; \
	  fi; }

$(PY_STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -e . --group dev
	$(PY) -m pip install --quiet --no-deps --group sdk
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

dapp: $(DAPP_STAMP)

$(DAPP_STAMP): $(DAPP_SOURCES) package-lock.json $(NPM_STAMP)
	npm run build --silent
	touch $@

$(SHIM_STAMP): tools/solc-shim.js $(PY_STAMP) $(NPM_STAMP)
	$(PY) -m tools.register_solc
	touch $@

compile: install
	ape compile

# forge compiles through our solc shim (foundry.toml: solc = .venv/bin/solc, offline).
test: install compile
	$(PY) -m pytest -q
	forge test

fuzz: install
	FOUNDRY_PROFILE=deep forge test

# `make run DEMO=0` runs without the demo seed (products, DIMO, proposal, first rewards).
run: install compile
	dimo stack run $(if $(filter 0 false no,$(DEMO)),--no-demo,)

e2e: install compile
	$(PY) -m pytest -q tests/stack/test_e2e.py

bench: install compile
	$(PY) -m benchmarks

bench-gas: install compile
	$(PY) benchmarks/gas.py

bench-indexer: install compile
	$(PY) benchmarks/indexer.py

bench-rewards: install compile
	$(PY) benchmarks/rewards.py

bench-apps: install
	$(PY) benchmarks/apps.py

bench-attestations: install compile
	$(PY) benchmarks/attestations.py

bench-triggers: install
	$(PY) benchmarks/triggers.py

bench-oracle: install compile
	$(PY) benchmarks/oracle.py

bench-bridge: install
	$(PY) benchmarks/bridge.py

bench-stack: install compile
	$(PY) benchmarks/stack.py

bench-dapp: install compile
	$(PY) benchmarks/dapp.py

lint: install
	ruff check .
	ruff format --check .
	mypy

clean:
	rm -rf .build .ape $(VENV) node_modules dapp/dist
