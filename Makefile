# One-command entry points. Everything installs into a repo-local virtualenv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export SMARTGRID_HOME ?= $(CURDIR)/data
export DO_NOT_TRACK := 1
export DAGSTER_DISABLE_TELEMETRY := 1
# One planned event per asset for a single-run backfill, not one per asset and day: a two-year
# backfill otherwise spends most of an hour writing them to SQLite (settings.py says more).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS := 1
export GX_ANALYTICS_ENABLED := false
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install lock test lint demo dev bench clean dbt-parse

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==0.13.9
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# Re-pin after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra prophet --python-version 3.11 --no-header --quiet -o requirements.lock

# The manifest Dagster loads the dbt assets from (dbt_project/target/manifest.json): what
# `dagster-dbt project prepare-and-package --file smartgrid_assets/warehouse_project.py` runs;
# deploy/Dockerfile runs the same command at build time.
dbt-parse: $(STAMP)
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) dbt-parse lint
	$(BIN)/python -m pytest

demo: $(STAMP) dbt-parse
	mkdir -p $(DAGSTER_HOME)
	cp -n dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/smartgrid demo

dev: $(STAMP) dbt-parse
	mkdir -p $(DAGSTER_HOME)
	cp -n dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

bench: $(STAMP)
	$(BIN)/smartgrid bench

clean:
	rm -rf $(VENV) .dagster_home data .pytest_cache
