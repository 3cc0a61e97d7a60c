# Bourse: the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
export PORT
# Tests get their own data folder, so they never touch the `make run` database or secrets.
TEST_DATA_DIR ?= $(CURDIR)/var/test

.PHONY: run run-prod test chaos lint lock install install-test migrate seed openapi clean sdk sdk-install sdk-generate tools-install bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Installs come from the lock files: every package, transitive ones included, at the version
# CI tested (--no-deps: nothing is resolved at install time). `make lock` regenerates them
# after a change to requirements*.txt; tests/exchange/test_requirements.py catches a lock that
# was not regenerated.
PIP := $(BIN)/pip install --disable-pip-version-check -q --no-deps
$(VENV)/.runtime-installed: requirements.lock | $(BIN)/python
	$(PIP) -r requirements.lock
	touch $@

$(VENV)/.test-installed: requirements-test.lock | $(BIN)/python
	$(PIP) -r requirements-test.lock
	touch $@

install: $(VENV)/.runtime-installed
install-test: $(VENV)/.test-installed

# The TypeScript SDK's npm dependencies: `npm ci` again only when the lockfile changes (npm ci
# empties node_modules, so the stamp inside it goes too), then dist/ is built here (the package
# has no `prepare` script: an integrator's install never builds; `npm pack` builds through `prepack`).
SDK_TS := sdk/typescript
$(SDK_TS)/node_modules/.bourse-installed: $(SDK_TS)/package.json $(SDK_TS)/package-lock.json
	cd $(SDK_TS) && npm ci --no-audit --no-fund --loglevel=error && node scripts/build.mjs
	touch $@
sdk-install: $(SDK_TS)/node_modules/.bourse-installed

# The contract tools (Redocly CLI, Spectral, the AsyncAPI parser), pinned in
# tools/package-lock.json; the contract tests run them (docs/versioning.md).
TOOLS := tools
$(TOOLS)/node_modules/.bourse-installed: $(TOOLS)/package.json $(TOOLS)/package-lock.json
	cd $(TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@
tools-install: $(TOOLS)/node_modules/.bourse-installed

## sdk: check the SDK's generated types against docs/openapi.yaml, type-check, unit-test, build
sdk: sdk-install
	cd $(SDK_TS) && node scripts/generate.mjs --check && npm run --silent typecheck && npm test && npm run --silent build

## sdk-generate: regenerate the SDK's types from docs/openapi.yaml (make openapi does this too)
sdk-generate: sdk-install
	cd $(SDK_TS) && node scripts/generate.mjs

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

## run: install, migrate, seed the demo market and traders, and serve on 127.0.0.1:$(PORT)
run: seed
	$(BIN)/python manage.py run_embedded

## run-prod: production on one machine: migrate, collect static files, then every role of the Procfile under honcho,
## against DATABASE_URL/REDIS_URL (docs/deployment.md); Ctrl-C / SIGTERM stops them all
# honcho sends SIGKILL 5 s after SIGTERM: the roles' drain (BOURSE_SHUTDOWN_GRACE_S) stays under it.
run-prod: install
	@test -n "$$DATABASE_URL" || { echo "run-prod: DATABASE_URL is not set; production needs DATABASE_URL, REDIS_URL, SECRET_KEY and BOURSE_ENCRYPTION_KEYS (docs/deployment.md)" >&2; exit 2; }
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0  # production serves only the collected set
	@# The roles' metrics files (docs/operations.md, "Metrics") start empty with the roles.
	@if [ -n "$$PROMETHEUS_MULTIPROC_DIR" ]; then mkdir -p "$$PROMETHEUS_MULTIPROC_DIR" && find "$$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete; fi
	PATH="$(CURDIR)/$(BIN):$$PATH" BOURSE_SHUTDOWN_GRACE_S=$${BOURSE_SHUTDOWN_GRACE_S:-4} exec $(BIN)/honcho start

## test: install test dependencies and run the whole suite (DATABASE_URL/REDIS_URL honoured)
test: install-test sdk-install tools-install
	BOURSE_DATA_DIR=$(TEST_DATA_DIR) BOURSE_ALLOW_GENERATED_SECRETS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

## chaos: break a whole deployment on private PostgreSQL/Redis servers under load and prove it recovers (tests/chaos)
chaos: install-test
	BOURSE_DATA_DIR=$(TEST_DATA_DIR) BOURSE_ALLOW_GENERATED_SECRETS=1 $(BIN)/python -m pytest -m chaos tests/chaos -s -q $(PYTEST_ARGS)

## bench: the order path under load (issue 16's targets): REST served as documented (manage.py
## serve_http), an engine, a Celery worker; prints each figure beside its same-run baseline and
## writes bench/reports/order_path/ (report.md, PNG plots). Needs its own database and Redis db.
BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bourse_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/5
BENCH_ARGS ?= --seconds 10 --sustain 30 --rate 500
bench: install-test
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) BOURSE_ALLOW_GENERATED_SECRETS=1 \
	BOURSE_DATA_DIR=$(CURDIR)/var/bench LOG_LEVEL=WARNING \
	$(BIN)/python bench/rest_load.py $(BENCH_ARGS) --report bench/reports/order_path

## lint: ruff, the import-layer contracts, mypy, and ESLint on the TypeScript SDK
lint: install-test sdk-install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	BOURSE_DATA_DIR=$(TEST_DATA_DIR) BOURSE_ALLOW_GENERATED_SECRETS=1 $(BIN)/mypy
	cd $(SDK_TS) && npm run --silent lint

## lock: regenerate requirements.lock and requirements-test.lock from requirements*.txt
lock: | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q pip-tools==7.7.0
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe -o requirements.lock requirements.txt
	$(BIN)/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links --allow-unsafe -o requirements-test.lock requirements-test.txt
	sed -i 's#^-e file://$(CURDIR)/sdk/python#-e ./sdk/python#' requirements-test.lock  # the Python SDK, relative to the checkout

## openapi: regenerate docs/openapi.yaml, docs/asyncapi.yaml, docs/errors.md, docs/fix44-bourse.xml and the SDK types
openapi: install sdk-install
	BOURSE_DATA_DIR=$(TEST_DATA_DIR) BOURSE_ALLOW_GENERATED_SECRETS=1 $(BIN)/python manage.py generate_docs
	$(BIN)/python tools/fix_dictionary.py
	cd $(SDK_TS) && node scripts/generate.mjs

clean:
	rm -rf $(VENV) var $(TOOLS)/node_modules $(SDK_TS)/node_modules $(SDK_TS)/dist $(SDK_TS)/.examples-out
