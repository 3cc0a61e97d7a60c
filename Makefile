# Bourse: the two commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
export PORT
# Tests get their own data folder, so they never touch the `make run` database or secrets.
TEST_DATA_DIR ?= $(CURDIR)/var/test

.PHONY: run test install install-test migrate seed openapi clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $@

$(VENV)/.test-installed: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-test.txt
	touch $@

install: $(VENV)/.runtime-installed
install-test: $(VENV)/.test-installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

seed: migrate
	$(BIN)/python manage.py seed_demo

## run: install, migrate, seed the demo market and traders, and serve on 127.0.0.1:$(PORT)
run: seed
	$(BIN)/python manage.py run_embedded

## test: install test dependencies and run the whole suite (DATABASE_URL/REDIS_URL honoured)
test: install-test
	BOURSE_DATA_DIR=$(TEST_DATA_DIR) BOURSE_ALLOW_GENERATED_SECRETS=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

## openapi: regenerate the committed docs/openapi.yaml and docs/errors.md from the code
openapi: install
	BOURSE_DATA_DIR=$(TEST_DATA_DIR) BOURSE_ALLOW_GENERATED_SECRETS=1 $(BIN)/python manage.py generate_docs

clean:
	rm -rf $(VENV) var
