"""Dagster wiring only: assets, checks, sensors, schedules and resources over the plain-Python
pipeline. Domain logic lives outside this package."""

import warnings

import dagster as dg

# Single-run backfills and partition mappings that reach before the first partition are what
# the design needs; Dagster still labels both beta.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
