"""The code location: every asset under defs/, with storage built from settings at run time."""

import dagster as dg

from smartgrid_assets.defs import (
    anomalies,
    automation,
    features,
    forecasts,
    marts,
    readings,
    registry,
    weather,
)
from smartgrid_assets.platform import Platform

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(
        [registry, weather, readings, features, forecasts, anomalies, marts]
    ),
    jobs=[automation.daily_job],
    schedules=[automation.daily_schedule],
    sensors=[automation.landing_sensor],
    resources={
        "platform": dg.ResourceDefinition(resource_fn=lambda _: Platform.from_environment()),
    },
)
