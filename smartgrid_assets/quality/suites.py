"""The expectation suites, in code and versioned: one group of expectations per asset check.

Each `Group` names the asset it guards, the workspace relation it validates (see
`workspace.py`), whether a failure blocks what is downstream, and builds its GX expectations
for one partition. GX is imported only when expectations are built: importing it takes seconds,
and the Dagster code location reads group names and flags without it.

Value limits come from VEE (`VeeConfig.class_limits_kw`) and expected interval counts from VEE's
data-sufficiency table, so the checks judge VEE's output by VEE's own definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from smartgrid_assets.contract import CHANNELS, CUSTOMER_CLASSES
from smartgrid_assets.vee import VeeConfig

# Bump whenever an expectation, a threshold default or a group changes.
SUITE_VERSION = "1.1.0"

ERROR = "error"
WARN = "warn"


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the aggregate expectations."""

    #: a meter's cleaned rows of a local day against the slots VEE expected of it
    min_completeness: float = 0.9
    #: share of a meter's cleaned rows of a local day that may be estimated (`E`)
    max_estimated_share: float = 0.1
    #: share of the meters in service a per-meter group may find short of readings or mostly
    #: estimated and only warn: real fleets always have meters with gaps; above it the day is
    #: held (as when a whole export is missing)
    max_affected_share: float = 0.2
    #: offending rows kept per group as a sample
    sample_rows: int = 20
    #: plausible air temperature, observed or forecast
    temperature_range_c: tuple[float, float] = (-60.0, 60.0)
    vee: VeeConfig = field(default_factory=VeeConfig)


@dataclass(frozen=True)
class Partition:
    """What the expectations of a batch of partitions need: its local days (None for the
    unpartitioned registry) and the thresholds. The workspace's relations of a partitioned
    asset hold every day of the batch with its `local_day`, and `days` gives each day's UTC
    bounds and length, so one query per expectation judges every day of the batch."""

    days: tuple[date, ...] | None
    config: QualityConfig


@dataclass(frozen=True)
class Group:
    asset: str
    name: str
    description: str
    #: the workspace relation GX validates: the group's batch
    relation: str
    blocking: bool
    severity: str
    #: columns that identify an offending row in samples of row-level expectations
    keys: tuple[str, ...]
    build: Callable[[Partition], list[Any]]
    #: has per-meter expectations (`_per_meter`): failures judged by the share of the fleet
    judges_fleet: bool = False


def _not_null(columns: list[str]) -> list[Any]:
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _in_set(column: str, values: list[Any]) -> Any:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=values)


def _rows(description: str, query: str) -> Any:
    """An expectation that `query` (over `{batch}`) returns no rows; its rows are the sample.
    On a partitioned asset the query selects `local_day`: the day each row is about."""
    import great_expectations.expectations as gxe

    return gxe.UnexpectedRowsExpectation(description=description, unexpected_rows_query=query)


def _sql_values(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _nulls(columns: list[str], keys: tuple[str, ...]) -> list[Any]:
    """Per day: rows with a null in each of `columns`."""
    return [
        _rows(
            f"{c} is never null",
            f"SELECT local_day, {', '.join(keys)} FROM {{batch}} WHERE {c} IS NULL",
        )
        for c in columns
    ]


def _not_in(column: str, values: list[Any], keys: tuple[str, ...]) -> Any:
    return _rows(
        f"{column} is one of {', '.join(map(str, values))}",
        f"SELECT local_day, {', '.join(keys)}, {column} FROM {{batch}} "
        f"WHERE {column} NOT IN ({_sql_values(values)})",
    )


def _outside(column: str, low: float, high: float, keys: tuple[str, ...]) -> Any:
    return _rows(
        f"{column} lies in [{low}, {high}]",
        f"SELECT local_day, {', '.join(keys)}, {column} FROM {{batch}} "
        f"WHERE {column} < {low!r} OR {column} > {high!r}",
    )


PER_METER = "per_meter"


def _per_meter(expectation: Any) -> Any:
    """Mark an expectation whose unexpected rows are one per affected meter in service: its
    group judges their share of the fleet (`QualityConfig.max_affected_share`)."""
    expectation.meta = {PER_METER: True}
    return expectation


#: the meters in service on each day of the batch, in the workspace's `meters` and `days`
IN_SERVICE = (
    "SELECT d.local_day, d.minutes, m.meter_id FROM days AS d JOIN meters AS m "
    "ON m.installed_at < d.day_end AND (m.removed_at IS NULL OR m.removed_at > d.day_start)"
)


def _duplicates(columns: tuple[str, ...], description: str) -> Any:
    keys = ", ".join(columns)
    return _rows(
        description,
        f"SELECT local_day, {keys}, count(*) AS copies FROM {{batch}} "
        f"GROUP BY local_day, {keys} HAVING count(*) > 1",
    )


# ---- readings: judged on per-series aggregates computed in one scan (see workspace.py) ----
SERIES_KEYS = ("meter_id", "channel")


def _series_keys(p: Partition) -> list[Any]:
    return [
        *_nulls(list(SERIES_KEYS), SERIES_KEYS),
        _not_in("channel", list(CHANNELS), SERIES_KEYS),
    ]


def _outside_day(p: Partition) -> Any:
    return _rows(
        "every reading lies in the partition's local day",
        "SELECT local_day, meter_id, channel, outside_day, first_ts, last_ts FROM {batch} "
        "WHERE outside_day > 0",
    )


def _raw_keys(p: Partition) -> list[Any]:
    return [
        *_series_keys(p),
        _rows(
            "every reading has ts, interval, kwh and source file; interval of 1 to 1440 min",
            "SELECT local_day, meter_id, channel, null_values, bad_interval FROM {batch} "
            "WHERE null_values > 0 OR bad_interval > 0",
        ),
    ]


def _raw_in_day(p: Partition) -> list[Any]:
    return [_outside_day(p)]


def _cleaned_keys(p: Partition) -> list[Any]:
    return [
        *_series_keys(p),
        _rows(
            "every reading has ts, interval, kwh, quality and VEE version, and a known quality",
            "SELECT local_day, meter_id, channel, null_values, unknown_codes FROM {batch} "
            "WHERE null_values > 0 OR unknown_codes > 0",
        ),
        _outside_day(p),
    ]


def _cleaned_unique(p: Partition) -> list[Any]:
    return [
        _rows(
            "(meter_id, ts, channel) is unique: one row per interval slot of a series",
            "SELECT local_day, meter_id, channel, interval_minutes, rows_in_day, distinct_slots "
            "FROM {batch} WHERE rows_in_day <> distinct_slots",
        )
    ]


def _cleaned_aligned(p: Partition) -> list[Any]:
    return [
        _outside("interval_minutes", 1, 1440, SERIES_KEYS),
        _rows(
            "timestamps are on the interval grid (epoch minutes a multiple of the interval), "
            "as VEE's alignment rule defines it",
            "SELECT local_day, meter_id, channel, interval_minutes, misaligned, first_ts, "
            "last_ts FROM {batch} WHERE misaligned > 0",
        ),
    ]


def _class_limits_sql(config: VeeConfig) -> str:
    """VEE's class limits as a VALUES list: (customer_class, low_kw, high_kw)."""
    rows = ", ".join(
        f"('{name}', {low!r}, {high!r})" for name, (low, high) in config.class_limits_kw.items()
    )
    return f"(VALUES {rows})"


def _cleaned_ranges(p: Partition) -> list[Any]:
    limits = _class_limits_sql(p.config.vee)
    return [
        _rows(
            "average kW of every reading not marked suspect lies within its customer class's "
            "VEE limits (below zero only on solar meters) and is finite",
            f"""
            SELECT s.local_day, s.meter_id, s.channel, m.customer_class, m.has_solar,
                   s.not_finite, s.min_kw, s.max_kw, l.low_kw, l.high_kw
            FROM {{batch}} AS s
            JOIN meters AS m ON m.meter_id = s.meter_id
            JOIN {limits} AS l(customer_class, low_kw, high_kw) ON l.customer_class = CASE
                WHEN m.customer_class IN (SELECT k.c FROM {limits} AS k(c, low, high))
                THEN m.customer_class ELSE 'unknown' END
            WHERE s.not_finite > 0 OR s.max_kw > l.high_kw
               OR s.min_kw < CASE WHEN m.has_solar THEN l.low_kw ELSE 0 END
            """,
        )
    ]


def _cleaned_row_count(p: Partition) -> list[Any]:
    share = p.config.min_completeness
    return [
        _per_meter(
            _rows(
                f"every meter in service during the day has at least {share:.0%} of the "
                "intervals VEE expected of it (one row per meter that has not)",
                f"""
                SELECT m.local_day, m.meter_id, coalesce(s.rows, 0) AS rows, x.expected
                FROM ({IN_SERVICE}) AS m
                LEFT JOIN {{batch}} AS s ON s.local_day = m.local_day
                    AND s.meter_id = m.meter_id AND s.channel = 'delivered'
                LEFT JOIN sufficiency AS x ON x.local_day = m.local_day
                    AND x.meter_id = m.meter_id AND x.channel = 'delivered'
                WHERE coalesce(x.expected, 0) = 0 OR coalesce(s.rows, 0) < {share!r} * x.expected
                """,
            )
        ),
        _rows(
            "no series has more readings than VEE expected slots (a series VEE does not "
            "expect, such as the zeros a meter not registered as solar reports on its received "
            "channel: than the day's intervals), nor more expected slots than the local day "
            "has intervals (92 / 96 / 100 quarter hours)",
            """
            SELECT s.local_day, s.meter_id, s.channel, s.interval_minutes, s.rows_not_suspect,
                   x.expected, d.minutes // s.interval_minutes AS day_intervals
            FROM {batch} AS s
            JOIN days AS d ON d.local_day = s.local_day
            LEFT JOIN sufficiency AS x ON x.local_day = s.local_day
                AND x.meter_id = s.meter_id AND x.channel = s.channel
            WHERE s.rows_not_suspect > CASE WHEN coalesce(x.expected, 0) > 0 THEN x.expected
                                            ELSE d.minutes // s.interval_minutes END
               OR x.expected > d.minutes // s.interval_minutes
            """,
        ),
    ]


def _cleaned_estimated(p: Partition) -> list[Any]:
    share = p.config.max_estimated_share
    return [
        _per_meter(
            _rows(
                f"at most {share:.0%} of each meter's cleaned readings of the day are estimated "
                "(one row per meter with more)",
                f"""
                SELECT local_day, meter_id, sum(estimated) AS estimated, sum(rows) AS readings,
                       sum(estimated) / sum(rows) AS share
                FROM {{batch}} GROUP BY local_day, meter_id
                HAVING sum(estimated) > {share!r} * sum(rows)
                """,
            )
        )
    ]


# ---- meters (unpartitioned: GX's own column expectations) --------------------------------
def _meters_keys(p: Partition) -> list[Any]:
    import great_expectations.expectations as gxe

    columns = ["meter_id", "customer_class", "has_solar", "multiplier", "installed_at"]
    return [
        *_not_null(columns),
        gxe.ExpectColumnValuesToBeUnique(column="meter_id"),
        _in_set("customer_class", list(CUSTOMER_CLASSES)),
    ]


def _meters_validity(p: Partition) -> list[Any]:
    return [
        _rows(
            "a meter is removed after it is installed, and its multiplier is positive",
            "SELECT meter_id, installed_at, removed_at, multiplier FROM {batch} "
            "WHERE removed_at <= installed_at OR multiplier <= 0",
        )
    ]


# ---- weather -------------------------------------------------------------------------------
def _weather_observed(p: Partition) -> list[Any]:
    keys = ("region", "ts")
    low, high = p.config.temperature_range_c
    return [
        *_nulls(["region", "ts", "temperature_c"], keys),
        _outside("temperature_c", low, high, keys),
        _duplicates(keys, "one observation per region and hour"),
        _rows(
            "observations are on the hour",
            "SELECT local_day, region, ts FROM {batch} WHERE epoch_us(ts) % 3600000000 <> 0",
        ),
    ]


def _weather_forecast(p: Partition) -> list[Any]:
    keys = ("region", "issued_at", "ts")
    low, high = p.config.temperature_range_c
    return [
        *_nulls(["region", "issued_at", "ts", "temperature_c"], keys),
        _outside("temperature_c", low, high, keys),
        _duplicates(keys, "one forecast value per region, issue and hour"),
    ]


# ---- load_forecasts ------------------------------------------------------------------------
FORECAST_KEYS = ("level", "asset_id", "model", "issued_at", "ts")


def _forecast_keys(p: Partition) -> list[Any]:
    columns = [*FORECAST_KEYS, "target_day", "p10", "p50", "p90"]
    return [
        *_nulls(columns, FORECAST_KEYS),
        _duplicates(FORECAST_KEYS, "one forecast per series, model, issue and hour"),
    ]


def _forecast_quantiles(p: Partition) -> list[Any]:
    keys = ", ".join(FORECAST_KEYS)
    return [
        _rows(
            f"{high} >= {low}",
            f"SELECT local_day, {keys}, {low}, {high} FROM {{batch}} WHERE {high} < {low}",
        )
        for low, high in (("p10", "p50"), ("p50", "p90"))
    ]


GROUPS: tuple[Group, ...] = (
    Group(
        "raw_readings",
        "raw_keys",
        "Keys and values present, channel known, interval length plausible.",
        "raw_series",
        blocking=False,
        severity=WARN,
        keys=SERIES_KEYS,
        build=_raw_keys,
    ),
    Group(
        "raw_readings",
        "raw_in_partition_day",
        "Every landed reading of the partition lies in its local day.",
        "raw_series",
        blocking=False,
        severity=WARN,
        keys=SERIES_KEYS,
        build=_raw_in_day,
    ),
    Group(
        "cleaned_readings",
        "cleaned_keys",
        "Keys, value and quality present; channel and quality codes known; inside the day.",
        "cleaned_series",
        blocking=True,
        severity=ERROR,
        keys=SERIES_KEYS,
        build=_cleaned_keys,
    ),
    Group(
        "cleaned_readings",
        "cleaned_unique",
        "One row per meter, channel and interval after VEE.",
        "cleaned_series",
        blocking=True,
        severity=ERROR,
        keys=SERIES_KEYS,
        build=_cleaned_unique,
    ),
    Group(
        "cleaned_readings",
        "cleaned_intervals_aligned",
        "Timestamps on the meter's interval grid.",
        "cleaned_series",
        blocking=True,
        severity=ERROR,
        keys=SERIES_KEYS,
        build=_cleaned_aligned,
    ),
    Group(
        "cleaned_readings",
        "cleaned_values_in_class_range",
        "Values not marked suspect within the customer class's VEE limits.",
        "cleaned_series",
        blocking=True,
        severity=ERROR,
        keys=SERIES_KEYS,
        build=_cleaned_ranges,
    ),
    Group(
        "cleaned_readings",
        "cleaned_row_count",
        "Readings against active meters x expected intervals of the local day.",
        "cleaned_series",
        blocking=True,
        severity=ERROR,
        keys=SERIES_KEYS,
        build=_cleaned_row_count,
        judges_fleet=True,
    ),
    Group(
        "cleaned_readings",
        "cleaned_estimated_share",
        "Estimated values under the threshold share of the day: a day whose export has not "
        "arrived is mostly estimated, and waits until the file lands and re-runs it.",
        "cleaned_series",
        blocking=True,
        severity=ERROR,
        keys=SERIES_KEYS,
        build=_cleaned_estimated,
        judges_fleet=True,
    ),
    Group(
        "meters",
        "meters_keys",
        "Meter ids present and unique, customer class known.",
        "meters",
        blocking=False,
        severity=WARN,
        keys=("meter_id",),
        build=_meters_keys,
    ),
    Group(
        "meters",
        "meters_validity",
        "Install before removal, positive multiplier.",
        "meters",
        blocking=False,
        severity=WARN,
        keys=("meter_id",),
        build=_meters_validity,
    ),
    Group(
        "weather",
        "weather_observed_valid",
        "Observed temperature present, plausible, hourly, one per region and hour.",
        "weather_observed",
        blocking=False,
        severity=WARN,
        keys=("region", "ts"),
        build=_weather_observed,
    ),
    Group(
        "weather",
        "weather_forecast_valid",
        "Forecast temperature present, plausible, one per region, issue and hour.",
        "weather_forecast",
        blocking=False,
        severity=WARN,
        keys=("region", "issued_at", "ts"),
        build=_weather_forecast,
    ),
    Group(
        "load_forecasts",
        "forecast_keys",
        "Forecast keys and quantiles present, one row per series, model, issue and hour.",
        "load_forecasts",
        blocking=False,
        severity=ERROR,
        keys=FORECAST_KEYS,
        build=_forecast_keys,
    ),
    Group(
        "load_forecasts",
        "forecast_quantiles_ordered",
        "P10 <= P50 <= P90 on every row.",
        "load_forecasts",
        blocking=False,
        severity=ERROR,
        keys=FORECAST_KEYS,
        build=_forecast_quantiles,
    ),
)

PARTITIONED_ASSETS = ("raw_readings", "cleaned_readings", "weather", "load_forecasts")


def groups_for(asset: str) -> list[Group]:
    return [g for g in GROUPS if g.asset == asset]
