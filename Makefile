# The two commands of the README's quick start, and the checks CI runs. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help run test install install-dev browser proto lint pytest

help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: install ## Install, then start everything here: embedded PostgreSQL, server, dashboard, 2 workers.
	$(BIN)/task-cli up

test: install-dev lint pytest ## Install the dev tools, then run every check and test.

$(PY):
	@echo "Creating the virtual environment $(VENV)..."
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Installs again only when pyproject.toml changed (the package itself is installed editable).
$(VENV)/.installed: pyproject.toml | $(PY)
	@echo "Installing taskservice and its dependencies into $(VENV) (the first time takes about 30 s)..."
	$(PY) -m pip install --progress-bar on -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	@echo "Installing taskservice with its development tools into $(VENV)..."
	$(PY) -m pip install --progress-bar on -e ".[dev]"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## Install taskservice into .venv.

# The browser tests drive Debian's chromium (never a downloaded browser).
browser: ## Install Debian's chromium for the browser tests, if missing.
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

install-dev: $(VENV)/.installed-dev browser ## Install taskservice with the test and lint tools.

proto: install-dev ## Regenerate the Python code of proto/ (commit the result).
	$(PY) scripts/gen_proto.py

lint: ## Run ruff, mypy --strict, import-linter and the generated-code check.
	$(PY) scripts/gen_proto.py --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: ## Run the tests (embedded PostgreSQL; again on TEST_DATABASE_URL when set).
	env -u TEST_DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on the PostgreSQL server at TEST_DATABASE_URL"; \
		$(BIN)/pytest $(PYTEST_ARGS); \
	fi
