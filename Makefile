# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint typecheck bench clean env lock browser

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

## run: the whole hub (receiver, worker, scheduler) and the two fake CRMs, on the demo's own
## configuration and secrets (var/demo/crmhub.yaml), embedded Redis unless CRMHUB_REDIS_URL is
## set. The fakes' ports: CRMHUB_DEMO_PORT (8900), CRMHUB_DEMO_HUBSPOT_PORT (8901).
run: $(STAMP)
	$(BIN)/crmhub serve --demo

## env: the running demo's environment for a second shell: eval "$(make -s env)"
env:
	@cat "$${CRMHUB_VAR_DIR:-var}/demo/env" 2>/dev/null || \
	    { echo "make env: no demo environment yet; start the demo with 'make run'" >&2; exit 1; }

## browser: Debian's chromium and its chromedriver, which the dashboard's browser tests drive
## (tests/integration/test_dashboard_browser.py); installed from the distribution when missing,
## never a downloaded browser build.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	        chromium chromium-driver; \
	fi

## test: lint, type check and the whole suite (unit, integration, end to end).
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
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
