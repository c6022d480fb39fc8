# Two commands for a fresh machine with only Python 3.11: `make demo` and `make test`.
# Each creates .venv (pinned by requirements/ci.txt, resolved with uv) when it is missing or stale.
# `make test` also builds .venv-floor, the oldest supported Airflow as its users resolved it
# (requirements/floor.txt, see requirements/floor.in), and runs the integration tests on it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A throwaway Airflow home under the repo (git-ignored) so nothing touches ~/airflow.
DEMO_HOME := $(CURDIR)/.airflow-home/demo
TEST_HOME := $(CURDIR)/.airflow-home/test
PYTEST_ARGS ?=
FLOOR_VENV := .venv-floor
FLOOR_BIN := $(FLOOR_VENV)/bin
FLOOR_STAMP := $(FLOOR_VENV)/.installed
# Its own Airflow home: a 3.3 metadata DB cannot be migrated by 3.2.
FLOOR_HOME := $(CURDIR)/.airflow-home/floor
# What runs on the floor: the integration tests (issue #10): the example DAGs under dag.test(), the
# emulator, the trigger and its shared poller, the transfer (S3 on moto, with the amazon provider of
# that day), and tests/test_compat.py, which imports every module and checks the 3.2 behaviour.
# Not tests/operators: it tests the task state store, which Airflow 3.2 does not have; what the
# operators do there instead (one submit per try) is in tests/test_compat.py and the example DAGs.
# The unit tests (hooks, models, retry, ...) run on the pinned newest only: they test our code, not Airflow.
FLOOR_TESTS ?= tests/example_dags tests/testing tests/triggers tests/transfers tests/test_compat.py
# Example runs that repeat on 3.2 a path a kept floor test already takes there (each still runs on the
# newest), deselected so the floor job fits beside the others on 2 cores: the second model of the daily
# example (the request body differs, not Airflow's part), the log-hygiene and key-leak runs (our own
# logging, the same on both), the README's offline example (the daily example's DAG), the edit pipeline's
# own run (the floor runs it in test_trigger_xcoms_downstream), the batch from an upstream task, from a
# local JSONL file and of 200 prompts (the floor runs the same operator from S3 to S3), and the daily
# example to S3 through Variables (S3 on the floor: the batch's and the README's example to S3).
FLOOR_DESELECT := \
	--deselect "tests/example_dags/test_example_dags.py::test_daily_content_runs_end_to_end[gpt-image-1.5]" \
	--deselect tests/example_dags/test_example_dags.py::test_no_xcom_misses_are_logged \
	--deselect tests/example_dags/test_example_dags.py::test_api_key_never_printed \
	--deselect tests/example_dags/test_example_dags.py::test_edit_pipeline_sends_stored_image_and_mask_as_data_uris \
	--deselect tests/example_dags/test_readme_examples.py::test_offline_test_example_runs \
	--deselect tests/example_dags/test_batch_catalog.py::test_prompts_from_the_upstream_task_to_local_disk \
	--deselect tests/example_dags/test_batch_catalog.py::test_prompts_from_a_jsonl_file_to_local_disk \
	--deselect tests/example_dags/test_batch_catalog.py::test_two_hundred_prompts_in_one_task \
	--deselect tests/example_dags/test_documented_configurations.py::test_daily_content_to_s3_through_the_variables

.PHONY: demo test test-newest test-system test-scale test-floor test-distributed lint-ci e2e lint venv venv-floor clean

venv: $(STAMP)

# --compile-bytecode (here and for the floor): uv, unlike pip, writes no .pyc at install, and where
# PYTHONDONTWRITEBYTECODE is set (as on the machines this project is built on) none is ever written:
# every Airflow process then compiled Airflow from source, 4.4 CPU-s for `import airflow.sdk` against
# 1.8 s with bytecode, in every task process, triggerer and test interpreter. Compiling once costs 30 CPU-s.
$(STAMP): pyproject.toml requirements/ci.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --upgrade >/dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements/ci.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

venv-floor: $(FLOOR_STAMP)

# `uv pip sync` makes the venv exactly requirements/floor.txt, so a stale one (older pins, packages
# since dropped) is corrected rather than added to; the provider itself goes in without dependencies.
$(FLOOR_STAMP): pyproject.toml requirements/floor.txt | $(STAMP)
	@test -x $(FLOOR_BIN)/python || $(PYTHON) -m venv $(FLOOR_VENV)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(FLOOR_BIN)/python requirements/floor.txt
	$(BIN)/uv pip install --quiet --python $(FLOOR_BIN)/python --no-deps -e .
	@touch $(FLOOR_STAMP)

## Start the emulator (or use the real gateway when PIXAZO_API_KEY is set), run the daily example
## pipeline with `airflow dags test`, and print where the images are.
demo: $(STAMP)
	@$(BIN)/python -m airflow_provider_pixazo.testing.demo --airflow-home $(DEMO_HOME) \
		--dags-folder $(CURDIR)/example_dags --output $(CURDIR)/.demo/images

## The whole suite: unit, emulator, dag.test() runs, S3 on a loopback moto server, lint and types.
## Six jobs side by side (scripts/run-suites.sh prints each one's output whole when it ends, then a
## summary with each one's wall and CPU seconds, and fails naming the job that failed): the 200-prompt
## scale test (PostgreSQL; started first, it is the longest), the pinned newest in process, its
## real-process and browser tests, the floor (it builds .venv-floor first), the distributed deployment
## (Celery, Redis, PostgreSQL) and ruff + mypy.
## Redis and PostgreSQL are installed first, before the jobs start, so their apt run never meets the
## browser's (test-system) on apt's lock.
test: $(STAMP)
	@if [ -n "$$CI" ]; then sh scripts/install-services.sh; fi
	@MAKE="$(MAKE)" sh scripts/run-suites.sh test-scale test-newest test-system test-floor test-distributed lint-ci

# The tests that start real Airflow processes or a browser (markers system, scale, e2e): their own job,
# so the in-process suite runs beside them instead of after them.
SYSTEM_MARKERS := (system or scale or e2e) and not distributed

## The in-process suite on the pinned newest Airflow: unit, emulator, dag.test() and chaos runs.
test-newest: $(STAMP)
	AIRFLOW_HOME=$(TEST_HOME) $(BIN)/python -m pytest -q --durations=15 -m "not distributed and not ($(SYSTEM_MARKERS))" \
		$(PYTEST_ARGS)

## Real Airflow deployments (tests/system: the example DAGs with a triggerer killed, 200 mapped prompts,
## the batch's crash tests; the benchmarks' smoke runs) and the browser tests, one after the other.
test-system: $(STAMP)
	@# CI (CI=true) installs Debian's Chromium so the browser test runs; elsewhere it skips without one.
	@if [ -n "$$CI" ]; then sh scripts/install-browser.sh; fi
	AIRFLOW_HOME=$(TEST_HOME)-system $(BIN)/python -m pytest -q --durations=15 -m "$(SYSTEM_MARKERS)" \
		--deselect $(SCALE_TEST) $(PYTEST_ARGS)

# 200 mapped prompts run on PostgreSQL (on SQLite, beside the other jobs, Airflow's dag-processor died
# of "database is locked" after 260 s), in a job of their own started first: the example's pool of 4
# submits at a time makes it the longest job (7.8 min beside the others in a fresh-clone run).
SCALE_TEST := tests/system/test_scale.py::test_two_hundred_mapped_prompts_all_succeed_paid_once

## 200 mapped prompts of the daily example's shape on real processes and PostgreSQL, retries=0 (issue #17).
## Installs Debian's postgresql first when it is missing (root or sudo).
test-scale: $(STAMP)
	@sh scripts/install-services.sh
	AIRFLOW_HOME=$(TEST_HOME)-scale $(BIN)/python -m pytest -q -rP -p no:cacheprovider --durations=5 $(SCALE_TEST)

## The distributed deployment (tests/distributed): CeleryExecutor with a Redis broker, PostgreSQL, two
## workers and two triggerers, all started by the test. Installs Debian's redis-server and postgresql
## first when either is missing (root or sudo; quiet and quick when both are there). -rP prints the
## test's figures (submits, 429 share, takeover time) even when it passes.
test-distributed: $(STAMP)
	@sh scripts/install-services.sh
	AIRFLOW_HOME=$(TEST_HOME)-distributed $(BIN)/python -m pytest -q -rP -p no:cacheprovider --durations=5 \
		-m distributed tests/distributed

## ruff and mypy as CI runs them (`make lint` also checks the formatting).
lint-ci: $(STAMP)
	$(BIN)/ruff check airflow_provider_pixazo tests example_dags benchmarks
	$(BIN)/mypy airflow_provider_pixazo

## The integration tests on the oldest supported Airflow (requirements/floor.in says which and why).
test-floor: $(FLOOR_STAMP)
	AIRFLOW_HOME=$(FLOOR_HOME) $(FLOOR_BIN)/python -m pytest -q -p no:cacheprovider --durations=10 \
		-m "not chaos and not e2e and not system" $(FLOOR_DESELECT) $(FLOOR_TESTS)

## The browser test alone (installs Debian's Chromium first; needs root or sudo).
e2e: $(STAMP)
	sh scripts/install-browser.sh
	AIRFLOW_HOME=$(TEST_HOME) $(BIN)/python -m pytest -q -m e2e tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check airflow_provider_pixazo tests example_dags benchmarks
	$(BIN)/ruff format --check airflow_provider_pixazo tests example_dags benchmarks
	$(BIN)/mypy airflow_provider_pixazo

clean:
	rm -rf $(VENV) $(FLOOR_VENV) .airflow-home .demo .pytest_cache .mypy_cache .ruff_cache
