"""Regional weather: hourly observed temperature, forecasts as issued, and cloudiness for PV."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smartgrid_assets.synth.timegrid import US_PER_HOUR, TimeGrid

REGION_BIAS_C = {"north": -0.8, "south": 0.8, "east": 0.3, "west": -0.3}
FORECAST_HOURS = 48
FORECAST_ERR_BASE_C = 0.5
FORECAST_ERR_PER_HOUR_C = 0.06


@dataclass(frozen=True)
class Weather:
    hours_us: np.ndarray  # (H,) UTC hours covering the period and 48 h beyond it
    temperature: np.ndarray  # (R, H) true temperature, °C
    observed_mask: np.ndarray  # (H,) hours inside the period, written as observations
    issued_us: np.ndarray  # (D,) forecast issue times: local midnight of each day
    forecast: np.ndarray  # (R, D, 48) forecast temperature by issue and lead hour
    forecast_start: np.ndarray  # (D,) index into hours_us of each forecast's first hour
    cloud: np.ndarray  # (R, days) clear-sky fraction reaching the panels, 0..1


def seasonal_mean(doy: np.ndarray, lat: float) -> np.ndarray:
    """Climatological temperature: warmer towards the equator, coldest ~20 Jan (north)."""
    mean = 30.0 - 0.38 * abs(lat)
    amplitude = max(1.0, 0.2 * abs(lat) - 1.0)
    sign = 1.0 if lat >= 0 else -1.0
    return mean - sign * amplitude * np.cos(2 * np.pi * (doy - 20.0) / 365.25)


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float, std: float) -> np.ndarray:
    """AR(1) along the last axis with stationary standard deviation ``std``."""
    eps = rng.normal(0.0, std * np.sqrt(1 - phi**2), shape)
    out = np.empty(shape)
    out[..., 0] = rng.normal(0.0, std, shape[:-1])
    for i in range(1, shape[-1]):
        out[..., i] = phi * out[..., i - 1] + eps[..., i]
    return out


def simulate_weather(
    rng: np.random.Generator, grid: TimeGrid, regions: tuple[str, ...], centre: tuple[float, float]
) -> Weather:
    lat, lon = centre
    first = grid.t0_us - grid.t0_us % US_PER_HOUR
    last = grid.end_us + FORECAST_HOURS * US_PER_HOUR
    hours_us = np.arange(first, last + US_PER_HOUR, US_PER_HOUR, dtype=np.int64)
    doy = (hours_us / (24 * US_PER_HOUR)) % 365.2425 + 1.0  # close enough to day of year
    solar_hour = (hours_us / US_PER_HOUR + lon / 15.0) % 24.0
    base = seasonal_mean(doy, lat) + 4.0 * np.cos(2 * np.pi * (solar_hour - 15.0) / 24.0)
    shared = _ar1(rng, (1, len(hours_us)), 0.985, 3.0)
    local = _ar1(rng, (len(regions), len(hours_us)), 0.95, 0.8)
    bias = np.array([REGION_BIAS_C.get(r, 0.0) for r in regions])[:, None]
    temperature = np.round(base[None, :] + bias + shared + local, 2)

    issued_us = np.array([grid.day_start_us(d) for d in range(grid.days)], dtype=np.int64)
    forecast_start = np.searchsorted(hours_us, issued_us, side="left")
    idx = forecast_start[:, None] + np.arange(FORECAST_HOURS)[None, :]
    lead = (hours_us[idx] - issued_us[:, None]) / US_PER_HOUR
    err_std = FORECAST_ERR_BASE_C + FORECAST_ERR_PER_HOUR_C * lead
    z = _ar1(rng, (len(regions), grid.days, FORECAST_HOURS), 0.9, 1.0)
    forecast = np.round(temperature[:, idx] + z * err_std[None, :, :], 2)

    observed_mask = (hours_us >= first) & (hours_us < grid.end_us)
    cloud = np.clip(rng.beta(2.0, 1.4, (len(regions), grid.days)), 0.05, 1.0)
    return Weather(
        hours_us=hours_us,
        temperature=temperature,
        observed_mask=observed_mask,
        issued_us=issued_us,
        forecast=forecast,
        forecast_start=forecast_start,
        cloud=cloud,
    )


def at_intervals(weather: Weather, grid: TimeGrid) -> np.ndarray:
    """(R, T) temperature at each interval's midpoint, interpolated from the hourly truth."""
    mid = grid.ts_us + grid.step_us // 2
    return np.stack([np.interp(mid, weather.hours_us, row) for row in weather.temperature])
