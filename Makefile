# Two commands for a fresh machine with only Python 3.11: `make demo` and `make test`.
# Each creates .venv (pinned by requirements/ci.txt, resolved with uv) when it is missing or stale.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A throwaway Airflow home under the repo (git-ignored) so nothing touches ~/airflow.
DEMO_HOME := $(CURDIR)/.airflow-home/demo
TEST_HOME := $(CURDIR)/.airflow-home/test
PYTEST_ARGS ?=

.PHONY: demo test e2e lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/ci.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade >/dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements/ci.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

## Start the emulator (or use the real gateway when PIXAZO_API_KEY is set), run the daily example
## pipeline with `airflow dags test`, and print where the images are.
demo: $(STAMP)
	@$(BIN)/python -m airflow_provider_pixazo.testing.demo --airflow-home $(DEMO_HOME) \
		--dags-folder $(CURDIR)/example_dags --output $(CURDIR)/.demo/images

## The whole suite: unit, emulator, dag.test() runs, S3 on a loopback moto server, lint and types.
test: $(STAMP)
	@# CI (CI=true) installs Debian's Chromium so the browser test runs; elsewhere it skips without one.
	@if [ -n "$$CI" ]; then sh scripts/install-browser.sh; fi
	AIRFLOW_HOME=$(TEST_HOME) $(BIN)/python -m pytest -q $(PYTEST_ARGS)
	$(BIN)/ruff check airflow_provider_pixazo tests example_dags benchmarks
	$(BIN)/mypy airflow_provider_pixazo

## The browser test alone (installs Debian's Chromium first; needs root or sudo).
e2e: $(STAMP)
	sh scripts/install-browser.sh
	AIRFLOW_HOME=$(TEST_HOME) $(BIN)/python -m pytest -q -m e2e tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_pixazo tests example_dags benchmarks
	$(BIN)/ruff format --check airflow_provider_pixazo tests example_dags benchmarks
	$(BIN)/mypy airflow_provider_pixazo

clean:
	rm -rf $(VENV) .airflow-home .demo .pytest_cache .mypy_cache .ruff_cache
