# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck bench clean env lock

# Installs exactly the tested versions: constraints.txt pins every package (see `make lock`).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## lock: re-pin constraints.txt to the newest versions pyproject.toml allows (then `make test`
## and commit both). To move one package only: `make lock LOCK_ARGS='--upgrade-package celery'`.
LOCK_ARGS ?= --upgrade
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --all-extras --strip-extras --no-emit-index-url \
	    --no-emit-find-links $(LOCK_ARGS) --output-file constraints.txt pyproject.toml

## run: the whole hub (receiver, worker, scheduler) on the example config, embedded Redis
## unless CRMHUB_REDIS_URL is set, plus the demo target.
# The demo's signing secrets (override them in the environment for anything real).
export STRIPE_WEBHOOK_SECRET ?= whsec_demo_stripe_secret_for_local_use_only
export FORMS_WEBHOOK_SECRET ?= demo-forms-secret
export HUBSPOT_CLIENT_ID ?= demo-hubspot-client
export HUBSPOT_CLIENT_SECRET ?= demo-hubspot-client-secret
export HUBSPOT_REFRESH_TOKEN ?= demo-hubspot-refresh-token
export CRMHUB_CONFIG ?= examples/crmhub.yaml

run: $(STAMP)
	$(BIN)/crmhub serve --demo

## env: the demo's environment for a second shell: eval "$(make -s env)"
DEMO_VARS := CRMHUB_CONFIG STRIPE_WEBHOOK_SECRET FORMS_WEBHOOK_SECRET HUBSPOT_CLIENT_ID \
             HUBSPOT_CLIENT_SECRET HUBSPOT_REFRESH_TOKEN
env:
	@$(foreach v,$(DEMO_VARS),echo "export $(v)='$($(v))'";)

## test: lint, type check and the whole suite (unit, integration, end to end).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadgroup

## test-fast: the unit tests only (fakeredis, in-process fakes): the loop while editing.
test-fast: $(STAMP)
	$(BIN)/pytest tests/unit -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/receiver.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
