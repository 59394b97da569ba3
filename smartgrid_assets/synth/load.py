"""Clean interval energy per meter: class shapes, calendar, temperature response, rooftop PV.

Everything works on (meters x intervals) arrays; the only loops are over customer classes.
"""

from __future__ import annotations

import numpy as np

from smartgrid_assets.synth.timegrid import TimeGrid
from smartgrid_assets.synth.topology import Topology
from smartgrid_assets.synth.weather import Weather

HEAT_BELOW_C = 15.0
COOL_ABOVE_C = 22.0
# A class shape gives (kW by meter x interval, occupancy 0..1 scaling the temperature response).
Shape = tuple[np.ndarray, np.ndarray]


def _bump(hour: np.ndarray, centre: float | np.ndarray, width: float) -> np.ndarray:
    """Gaussian peak on the 24-hour circle, so a shifted evening peak wraps past midnight."""
    d = (hour - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _step(x: np.ndarray, width: float = 0.4) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x / width))


def _window(hour: np.ndarray, opens: np.ndarray | float, closes: np.ndarray | float) -> np.ndarray:
    return _step(hour - opens) * _step(closes - hour)


def residential_kw(
    rng: np.random.Generator, n: int, hour: np.ndarray, day_type: np.ndarray
) -> Shape:
    """Morning and evening peaks; weekends later and flatter."""
    shift = rng.normal(0.0, 0.6, (n, 1))
    h = hour[None, :] - shift
    workday = (
        0.22 + 0.55 * _bump(h, 7.0, 1.0) + 0.15 * _bump(h, 13.0, 2.5) + 1.0 * _bump(h, 19.0, 1.8)
    )
    weekend = (
        0.25 + 0.45 * _bump(h, 9.5, 1.5) + 0.35 * _bump(h, 13.5, 2.5) + 0.9 * _bump(h, 19.0, 2.0)
    )
    kw = np.where(day_type[None, :] == 0, workday, weekend)
    return kw, np.ones_like(kw)


def commercial_kw(
    rng: np.random.Generator, n: int, hour: np.ndarray, day_type: np.ndarray
) -> Shape:
    """Business hours on workdays, a short Saturday, base load on Sundays and holidays."""
    opens = rng.uniform(7.0, 9.0, (n, 1))
    closes = rng.uniform(17.5, 20.0, (n, 1))
    h = hour[None, :]
    weekday_open = _window(h, opens, closes)
    saturday_open = 0.45 * _window(h, opens + 1.5, 14.0)
    occupied = np.where(
        day_type[None, :] == 0, weekday_open, np.where(day_type[None, :] == 1, saturday_open, 0.0)
    )
    return 3.0 + 12.0 * occupied, 0.3 + 0.7 * occupied


def industrial_kw(
    rng: np.random.Generator, n: int, hour: np.ndarray, day_type: np.ndarray
) -> Shape:
    """Two or three shifts on workdays, one on Saturday, a weekend drop to base."""
    night = np.where(rng.random((n, 1)) < 0.35, 170.0, 70.0)
    h = hour[None, :]
    day_shifts = _window(h, 6.0, 22.0)
    workday = night + (200.0 - night) * day_shifts
    saturday = 60.0 + 90.0 * _window(h, 6.0, 14.0)
    kw = np.where(day_type[None, :] == 0, workday, np.where(day_type[None, :] == 1, saturday, 50.0))
    return kw, np.ones_like(kw)


SHAPES = {"residential": residential_kw, "commercial": commercial_kw, "industrial": industrial_kw}
# kW per °C below HEAT_BELOW_C / above COOL_ABOVE_C, and interval noise, per class.
TEMPERATURE_RESPONSE = {
    "residential": (0.03, 0.1),
    "commercial": (0.35, 0.8),
    "industrial": (1.0, 2.5),
}
NOISE_SIGMA = {"residential": 0.15, "commercial": 0.06, "industrial": 0.04}


def clear_sky(grid: TimeGrid, lat: float, lon: float) -> np.ndarray:
    """(T,) sine of the solar elevation at interval midpoints, zero at night."""
    mid_h = (grid.ts_us + grid.step_us // 2) / 3.6e9
    doy = (mid_h / 24.0) % 365.2425 + 1.0
    decl = np.deg2rad(23.44) * np.sin(2 * np.pi * (284 + doy) / 365.0)
    hour_angle = np.deg2rad(15.0 * ((mid_h + lon / 15.0) % 24.0 - 12.0))
    phi = np.deg2rad(lat)
    sin_elev = np.sin(phi) * np.sin(decl) + np.cos(phi) * np.cos(decl) * np.cos(hour_angle)
    return np.clip(sin_elev, 0.0, None)


def simulate_load(
    rng: np.random.Generator, grid: TimeGrid, topo: Topology, temp: np.ndarray, weather: Weather
) -> tuple[np.ndarray, np.ndarray]:
    """(delivered, received) kWh per interval; received is (solar meters x T) by solar index."""
    hour = grid.local_minute / 60.0 + grid.interval_minutes / 120.0
    region = topo.meter_region
    load = np.zeros((topo.n_meters, grid.n))
    for cls, shape in SHAPES.items():
        idx = np.flatnonzero(topo.meter_class == cls)
        if len(idx) == 0:
            continue
        kw, occupancy = shape(rng, len(idx), hour, grid.day_type)
        t = temp[region[idx]]
        heat, cool = TEMPERATURE_RESPONSE[cls]
        sens = rng.lognormal(0.0, 0.4, (len(idx), 2))
        kw = kw + occupancy * (
            sens[:, :1] * heat * np.maximum(HEAT_BELOW_C - t, 0.0)
            + sens[:, 1:] * cool * np.maximum(t - COOL_ABOVE_C, 0.0)
        )
        scale = rng.lognormal(0.0, 0.35, (len(idx), 1))
        daily = rng.lognormal(0.0, 0.08, (len(idx), grid.days))[:, grid.day_of]
        noise = rng.lognormal(0.0, NOISE_SIGMA[cls], (len(idx), grid.n))
        load[idx] = kw * scale * daily * noise * grid.interval_h

    solar = topo.solar_index
    sun = clear_sky(grid, *topo.centre)
    cloud = weather.cloud[:, grid.day_of]  # (R, T)
    flicker = np.clip(rng.lognormal(0.0, 0.1, (len(solar), grid.n)), 0.0, 1.1)
    pv = (
        topo.pv_kwp[solar, None]
        * 0.8
        * sun[None, :] ** 1.2
        * (0.15 + 0.85 * cloud[region[solar]])
        * flicker
        * grid.interval_h
    )
    received = np.maximum(pv - load[solar], 0.0)
    load[solar] = np.maximum(load[solar] - pv, 0.0)
    return load, received
