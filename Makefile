# Everything a fresh machine needs: Python 3.11 and this Makefile.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test fuzz lint fmt bench clean system-deps oidc-deps

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gateway demo

lint: $(STAMP)
	$(BIN)/ruff check gateway schemas policies audit tests bench
	$(BIN)/ruff format --check gateway schemas policies audit tests bench
	$(BIN)/mypy gateway schemas policies audit

fmt: $(STAMP)
	$(BIN)/ruff format gateway schemas policies audit tests bench
	$(BIN)/ruff check --fix gateway schemas policies audit tests bench

test: lint oidc-deps
	$(BIN)/python -m pytest

# Longer schemathesis run (`make test` runs the same fuzz tests with a few examples each).
fuzz: $(STAMP)
	GATEWAY_FUZZ_EXAMPLES=$(or $(EXAMPLES),300) $(BIN)/python -m pytest tests/hardening/test_fuzz_api.py -q

# The independent OIDC provider (npm oidc-provider) the identity tests run; pinned by its lockfile.
oidc-deps:
	@if [ ! -d tests/oidc/node_modules ]; then \
	  if command -v npm >/dev/null 2>&1; then cd tests/oidc && npm ci --no-audit --no-fund; \
	  else echo "warning: npm not found; the OIDC provider test skips (and fails under CI)"; fi; \
	fi

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# System packages the tests use (SoftHSM2 for the PKCS#11 key provider). Installed once per machine.
system-deps:
	@if ! command -v softhsm2-util >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null) \
	  || echo "warning: could not install softhsm2; PKCS#11 tests will skip outside CI"; \
	fi
	@if ! command -v chromium >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || echo "warning: could not install chromium; console browser tests will skip outside CI"; \
	fi
