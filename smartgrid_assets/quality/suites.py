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
from datetime import date, datetime
from typing import Any

from smartgrid_assets.contract import CHANNELS, CUSTOMER_CLASSES
from smartgrid_assets.vee import VeeConfig

# Bump whenever an expectation, a threshold default or a group changes.
SUITE_VERSION = "1.0.0"

ERROR = "error"
WARN = "warn"


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the aggregate expectations."""

    #: cleaned rows of a local day against the slots VEE expected (active meters x intervals)
    min_completeness: float = 0.9
    #: share of a local day's cleaned rows that may be estimated (`E`)
    max_estimated_share: float = 0.1
    #: offending rows kept per group as a sample
    sample_rows: int = 20
    #: plausible air temperature, observed or forecast
    temperature_range_c: tuple[float, float] = (-60.0, 60.0)
    vee: VeeConfig = field(default_factory=VeeConfig)


@dataclass(frozen=True)
class Partition:
    """What the expectations of one partition need: its local day and UTC bounds."""

    day: date | None
    start: datetime | None
    end: datetime | None
    config: QualityConfig

    @property
    def minutes(self) -> int:
        """Length of the local day in minutes (1380, 1440 or 1500 across DST)."""
        assert self.start is not None and self.end is not None
        return int((self.end - self.start).total_seconds() // 60)


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


def _ts(value: datetime | None) -> str:
    assert value is not None
    return f"TIMESTAMPTZ '{value.isoformat()}'"


def _not_null(columns: list[str]) -> list[Any]:
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _in_set(column: str, values: list[Any]) -> Any:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=values)


def _between(column: str, low: float, high: float) -> Any:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)


def _rows(description: str, query: str) -> Any:
    """An expectation that `query` (over `{batch}`) returns no rows; its rows are the sample."""
    import great_expectations.expectations as gxe

    return gxe.UnexpectedRowsExpectation(description=description, unexpected_rows_query=query)


def _duplicates(columns: tuple[str, ...], description: str) -> Any:
    keys = ", ".join(columns)
    return _rows(
        description,
        f"SELECT {keys}, count(*) AS copies FROM {{batch}} GROUP BY {keys} HAVING count(*) > 1",
    )


# ---- readings: judged on per-series aggregates computed in one scan (see workspace.py) ----
SERIES_KEYS = ("meter_id", "channel")


def _series_keys(p: Partition) -> list[Any]:
    return [
        *_not_null(list(SERIES_KEYS)),
        _in_set("channel", list(CHANNELS)),
    ]


def _outside_day(p: Partition) -> Any:
    return _rows(
        "every reading lies in the partition's local day",
        "SELECT meter_id, channel, outside_day, first_ts, last_ts FROM {batch} "
        "WHERE outside_day > 0",
    )


def _raw_keys(p: Partition) -> list[Any]:
    return [
        *_series_keys(p),
        _rows(
            "every reading has ts, interval, kwh and source file; interval of 1 to 1440 min",
            "SELECT meter_id, channel, null_values, bad_interval FROM {batch} "
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
            "SELECT meter_id, channel, null_values, unknown_codes FROM {batch} "
            "WHERE null_values > 0 OR unknown_codes > 0",
        ),
        _outside_day(p),
    ]


def _cleaned_unique(p: Partition) -> list[Any]:
    return [
        _rows(
            "(meter_id, ts, channel) is unique: one row per interval slot of a series",
            "SELECT meter_id, channel, interval_minutes, rows_in_day, distinct_slots "
            "FROM {batch} WHERE rows_in_day <> distinct_slots",
        )
    ]


def _cleaned_aligned(p: Partition) -> list[Any]:
    return [
        _between("interval_minutes", 1, 1440),
        _rows(
            "timestamps are on the interval grid (epoch minutes a multiple of the interval), "
            "as VEE's alignment rule defines it",
            "SELECT meter_id, channel, interval_minutes, misaligned, first_ts, last_ts "
            "FROM {batch} WHERE misaligned > 0",
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
            SELECT s.meter_id, s.channel, m.customer_class, m.has_solar, s.not_finite,
                   s.min_kw, s.max_kw, l.low_kw, l.high_kw
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
        _rows(
            "VEE expected intervals of every meter in service during the day",
            f"""
            SELECT m.meter_id, m.installed_at, m.removed_at, s.rows
            FROM meters AS m
            LEFT JOIN {{batch}} AS s ON s.meter_id = m.meter_id AND s.channel = 'delivered'
            WHERE m.installed_at < {_ts(p.end)}
              AND (m.removed_at IS NULL OR m.removed_at > {_ts(p.start)})
              AND m.meter_id NOT IN (SELECT meter_id FROM sufficiency WHERE expected > 0)
            """,
        ),
        _rows(
            "no series has more readings than VEE expected slots (a series VEE does not "
            "expect, such as the zeros a meter not registered as solar reports on its received "
            "channel: than the day's intervals), nor more expected slots than the local day "
            "has intervals (92 / 96 / 100 quarter hours)",
            f"""
            SELECT s.meter_id, s.channel, s.interval_minutes, s.rows_not_suspect, x.expected,
                   {p.minutes} // s.interval_minutes AS day_intervals
            FROM {{batch}} AS s
            LEFT JOIN sufficiency AS x ON x.meter_id = s.meter_id AND x.channel = s.channel
            WHERE s.rows_not_suspect > CASE WHEN coalesce(x.expected, 0) > 0 THEN x.expected
                                            ELSE {p.minutes} // s.interval_minutes END
               OR x.expected > {p.minutes} // s.interval_minutes
            """,
        ),
        _rows(
            f"the day's cleaned readings are at least {share:.0%} of the slots VEE expected "
            "(active meters x intervals of the local day)",
            f"""
            SELECT readings, expected FROM
                (SELECT coalesce(sum(rows), 0) AS readings FROM {{batch}}),
                (SELECT coalesce(sum(expected), 0) AS expected FROM sufficiency)
            WHERE readings < {share!r} * expected
            """,
        ),
    ]


def _cleaned_estimated(p: Partition) -> list[Any]:
    share = p.config.max_estimated_share
    return [
        _rows(
            f"at most {share:.0%} of the day's cleaned readings are estimated",
            f"""
            SELECT sum(estimated) AS estimated, sum(rows) AS readings,
                   sum(estimated) / sum(rows) AS share
            FROM {{batch}} HAVING sum(estimated) > {share!r} * sum(rows)
            """,
        )
    ]


# ---- meters --------------------------------------------------------------------------------
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
        *_not_null(["region", "ts", "temperature_c"]),
        _between("temperature_c", low, high),
        _duplicates(keys, "one observation per region and hour"),
        _rows(
            "observations are on the hour",
            "SELECT region, ts FROM {batch} WHERE epoch_us(ts) % 3600000000 <> 0",
        ),
    ]


def _weather_forecast(p: Partition) -> list[Any]:
    keys = ("region", "issued_at", "ts")
    low, high = p.config.temperature_range_c
    return [
        *_not_null(["region", "issued_at", "ts", "temperature_c"]),
        _between("temperature_c", low, high),
        _duplicates(keys, "one forecast value per region, issue and hour"),
    ]


# ---- load_forecasts ------------------------------------------------------------------------
FORECAST_KEYS = ("level", "asset_id", "model", "issued_at", "ts")


def _forecast_keys(p: Partition) -> list[Any]:
    columns = [*FORECAST_KEYS, "target_day", "p10", "p50", "p90"]
    return [
        *_not_null(columns),
        _duplicates(FORECAST_KEYS, "one forecast per series, model, issue and hour"),
    ]


def _forecast_quantiles(p: Partition) -> list[Any]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=high, column_B=low, or_equal=True)
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
