"""Data quality: GX Core expectation suites over the lake and the warehouse (no Dagster).

`suites.py` defines the groups of expectations (one asset check each) and `SUITE_VERSION`;
`workspace.py` puts one partition's data in a DuckDB file where GX's SQL data source reads it
in place; `runner.run_checks` validates and summarises per group and local day.
"""

from smartgrid_assets.quality.runner import ExpectationOutcome, GroupResult, run_checks
from smartgrid_assets.quality.suites import (
    ERROR,
    GROUPS,
    PARTITIONED_ASSETS,
    SUITE_VERSION,
    WARN,
    Group,
    QualityConfig,
    groups_for,
)

__all__ = [
    "ERROR",
    "GROUPS",
    "PARTITIONED_ASSETS",
    "SUITE_VERSION",
    "WARN",
    "ExpectationOutcome",
    "Group",
    "GroupResult",
    "QualityConfig",
    "groups_for",
    "run_checks",
]
