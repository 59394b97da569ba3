"""The dbt project (`dbt_project/`) as Dagster sees it, and the dbt target chosen from settings.

`warehouse_project` is the `DbtProject` (see `dbt_project_dir`); Dagster builds the dbt assets
from its manifest, target/manifest.json. `make dbt-parse` (run by `make test`, `make demo` and
`make dev`) and the Docker image's build step prepare it with `dbt parse --quiet` in the project,
the step `dagster-dbt project prepare-and-package --file smartgrid_assets/warehouse_project.py`
runs too; under `dagster dev`, or when it is missing, importing this module prepares it.

dbt never reads the product's settings itself: `dbt_env(settings)` turns a `Settings` into the
`SMARTGRID_DBT_*` variables that `dbt_project/profiles.yml` reads with `env_var`, and
`SmartgridDbtCli` hands them to the dbt subprocess. So the same `SMARTGRID_WAREHOUSE_URL` that
points the Python assets at DuckDB or PostgreSQL points dbt at the same database.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import parse_qs, unquote, urlsplit

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.core import resource as _dbt_resource
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation
from dagster_dbt.dbt_project import DagsterDbtProjectPreparer, using_dagster_dev

from smartgrid_assets.settings import Settings


def dbt_project_dir() -> Path:
    """`dbt_project/` beside the package (a checkout or an editable install), else in the
    working directory (the Docker image's /opt/dagster/app: there the package itself is
    installed into site-packages)."""
    beside = Path(__file__).resolve().parent.parent / "dbt_project"
    if (beside / "dbt_project.yml").exists():
        return beside
    return Path.cwd() / "dbt_project"


DBT_PROJECT_DIR = dbt_project_dir()

warehouse_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)

DBT_ENV_PREFIX = "SMARTGRID_DBT_"
# dbt scrubs the values of DBT_ENV_SECRET_* variables from its logs.
PASSWORD_ENV = "DBT_ENV_SECRET_SMARTGRID_PG_PASSWORD"


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment `profiles.yml` reads: target, connection, time zone, analyst role."""
    url = settings.warehouse_url
    env = {
        f"{DBT_ENV_PREFIX}TZ": settings.tz,
        f"{DBT_ENV_PREFIX}ANALYST_ROLE": settings.analyst_role or "",
    }
    if url.startswith("duckdb://"):
        return {
            **env,
            f"{DBT_ENV_PREFIX}TARGET": "duckdb",
            f"{DBT_ENV_PREFIX}DUCKDB_PATH": str(Path(url.removeprefix("duckdb://")).resolve()),
        }
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    schema = "public"
    for option in query.get("options", "").split():
        if option.startswith(("-csearch_path=", "search_path=")):
            schema = option.split("=", 1)[1].split(",")[0].strip() or schema
    return {
        **env,
        f"{DBT_ENV_PREFIX}TARGET": "postgres",
        f"{DBT_ENV_PREFIX}PG_HOST": parts.hostname or query.get("host", "127.0.0.1"),
        f"{DBT_ENV_PREFIX}PG_PORT": str(parts.port or query.get("port", 5432)),
        f"{DBT_ENV_PREFIX}PG_USER": unquote(parts.username or query.get("user", "postgres")),
        f"{DBT_ENV_PREFIX}PG_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
        f"{DBT_ENV_PREFIX}PG_SCHEMA": schema,
        f"{DBT_ENV_PREFIX}PG_SSLMODE": query.get("sslmode", "prefer"),
        PASSWORD_ENV: unquote(parts.password or query.get("password", "")),
    }


_CLI_LOCK = threading.Lock()


def _invocation_with(extra: Mapping[str, str]) -> type[DbtCliInvocation]:
    class _Invocation(DbtCliInvocation):
        @classmethod
        def run(cls, *, env: dict[str, str], **kwargs: Any) -> DbtCliInvocation:
            return super().run(env={**env, **extra}, **kwargs)

    return _Invocation


class SmartgridDbtCli(DbtCliResource):
    """`DbtCliResource` whose dbt subprocess also gets `env` (see `dbt_env`).

    dagster-dbt builds the subprocess's environment from this process's and offers no argument
    for more; `cli` has it start the subprocess through a `DbtCliInvocation` that adds `env`,
    so nothing here reads or changes this process's environment.
    """

    env: dict[str, str]

    def cli(self, args, **kwargs):  # type: ignore[override]
        with (
            _CLI_LOCK,
            patch.object(_dbt_resource, "DbtCliInvocation", _invocation_with(self.env)),
        ):
            return super().cli(args, **kwargs)


def dbt_executable() -> str:
    """The `dbt` installed beside this Python (a virtualenv's bin/ need not be on PATH)."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def dbt_cli(settings: Settings) -> SmartgridDbtCli:
    """The dbt CLI resource for a warehouse chosen by settings (one per distinct target: the
    resource asks `dbt --version` once, which takes seconds)."""
    return _dbt_cli(tuple(sorted(dbt_env(settings).items())))


@functools.lru_cache(maxsize=16)
def _dbt_cli(env: tuple[tuple[str, str], ...]) -> SmartgridDbtCli:
    return SmartgridDbtCli(
        project_dir=warehouse_project,
        dbt_executable=dbt_executable(),
        global_config_flags=["--no-use-colors"],
        env=dict(env),
    )


class _Preparer(DagsterDbtProjectPreparer):
    """dagster-dbt's preparer, with the `dbt` beside this Python (not necessarily on PATH)."""

    def _prepare_manifest(self, project: DbtProject) -> None:
        DbtCliResource(project_dir=project, dbt_executable=dbt_executable()).cli(
            ["parse", "--quiet"], target_path=project.target_path
        ).wait()


# `dagster dev` re-parses at load, so model edits show up; a checkout that was never prepared
# (no `make`) gets its manifest on first import instead of an error.
if using_dagster_dev() or not warehouse_project.manifest_path.exists():
    _Preparer().prepare(warehouse_project)
