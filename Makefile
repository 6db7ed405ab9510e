# The two commands of the README's quick start, and the checks CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test install install-dev browser proto lint pytest fuzz

# Install and start everything on this machine: embedded PostgreSQL, server, workers, dashboard.
run: install
	$(BIN)/task-cli up

# Install and run every check and test (embedded PostgreSQL; also TEST_DATABASE_URL when set).
test: install-dev lint pytest

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e .

# The browser tests drive Debian's chromium (never a downloaded browser).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

install-dev: $(PY) browser
	$(PY) -m pip install --quiet -e ".[dev]"
	# The tests' OpenID Connect provider (dashboard login), pinned by its package-lock.json.
	npm ci --prefix tests/oidc --no-audit --no-fund --silent

# Regenerate the Python code of proto/ (commit the result).
proto: install-dev
	$(PY) scripts/gen_proto.py

lint:
	$(PY) scripts/gen_proto.py --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest:
	env -u TEST_DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on the PostgreSQL server at TEST_DATABASE_URL"; \
		$(BIN)/pytest $(PYTEST_ARGS); \
	fi

# The long fuzz run for releases (CI runs the same suite with a few examples per RPC).
fuzz: install-dev
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-5000} $(BIN)/pytest tests/test_fuzz.py -p no:cacheprovider
