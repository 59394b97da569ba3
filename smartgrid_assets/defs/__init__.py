"""Dagster wiring only: assets, checks, sensors, schedules and resources over the plain-Python
pipeline. Domain logic lives outside this package."""
