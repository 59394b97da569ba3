"""Hourly feature tables: `meter_hourly` in the lake, `feeder_hourly` in the warehouse."""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.features.hourly import CLEANED_COLUMNS, feeder_hourly, meter_hourly
from smartgrid_assets.pipeline.readings import window_bounds, write_days
from smartgrid_assets.pipeline.registry import current_meters
from smartgrid_assets.platform import Platform


def build_meter_hourly(platform: Platform, days: list[date]) -> dict[str, int]:
    schema = contract.dictionary_strings(
        contract.project(contract.CLEANED_READINGS, CLEANED_COLUMNS)
    )
    cleaned = platform.lake.read_days("cleaned_readings", days, schema)
    return write_days(platform, "meter_hourly", meter_hourly(cleaned, platform.tz), days)


def build_feeder_hourly(platform: Platform, days: list[date]) -> pa.Table:
    start, end = window_bounds(days, platform.tz)
    hourly = platform.lake.read_days("meter_hourly", days, contract.METER_HOURLY)
    observed = platform.warehouse.read(
        "SELECT * FROM weather_observed WHERE ts >= ? AND ts < ?", [start, end]
    )
    forecast = platform.warehouse.read(
        "SELECT * FROM weather_forecast WHERE ts >= ? AND ts < ?", [start, end]
    )
    table = feeder_hourly(hourly, current_meters(platform), observed, forecast, platform.tz)
    platform.warehouse.replace("feeder_hourly", table, match={"local_day": days})
    return table
