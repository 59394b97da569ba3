"""The models behind one interface, and the seasonal naive models.

Every model is a ``Forecaster``: ``fit(hist)`` learns from a grid that holds only the local days
before an issue (see grid), ``predict(hist, targets, weather)`` forecasts whole local days from
the history known at the issue (``hist.end_day`` is the issue day: issued at 00:00 local of it)
and the weather forecast of the target days, as (S, T, K, 3) P10 / P50 / P90 arrays, NaN for a
series the model cannot forecast. A model may be fitted on an older history than the one it
predicts from (refit weekly, predict daily): lags and bands always come from ``hist``.

- ``seasonal_naive_1d``: the profile of the newest complete local day before the issue (day D-1
  for an issue at 00:00 of D), repeated; for a day-ahead target D+1 that is two days back.
- ``seasonal_naive_7d``: the profile of the same weekday one week earlier (two weeks when that
  day is not known yet at the issue).
- ``gbm``: the global gradient-boosted quantile model (gbm module).
- ``ridge``: a ridge regression on the daily profile, lags and shaped weather (linear module).
- ``prophet``: Prophet per series, optional (prophet_model module; ``pip install prophet``).

Naive bands: P50 is the naive value; P10 / P90 add the 10 % / 90 % quantiles of the series' own
naive errors (actual - naive, at the same lead) over the last ``residual_days`` days of history,
clipped so that P10 <= P50 <= P90 (zero width with no past errors yet). A naive model is skipped
(NaN) for a series whose source day is not complete.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from smartgrid_assets.forecasting.config import QUANTILES, ForecastConfig
from smartgrid_assets.forecasting.grid import Grid

NAIVE = ("seasonal_naive_1d", "seasonal_naive_7d")
ZOO = (*NAIVE, "gbm", "ridge", "prophet")  # every model family, in report order


class Forecaster(ABC):
    """One model family. Subclasses set ``name`` and ``refit_days``."""

    name: str = ""
    #: in a backtest the model is refit when this many days passed since its last fit
    refit_days: int = 1
    #: the issue day (day number) of the history of the last fit, None before any fit
    fitted_until: int | None = None

    def fit(self, hist: Grid) -> Forecaster:
        """Learn from ``hist`` (only days before the issue); returns self."""
        self.fitted_until = hist.end_day
        return self

    @abstractmethod
    def predict(
        self, hist: Grid, targets: Sequence[int], weather: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """(S, T, K, 3) P10/P50/P90 for target day numbers ``targets`` (each >= the issue day)."""


def blank(hist: Grid, targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The target day numbers as an array, and their (S, T, K, 3) forecast, all NaN."""
    targets = np.asarray(targets, dtype=np.int64)
    return targets, np.full((hist.n_series, len(targets), hist.steps, len(QUANTILES)), np.nan)


def weather_at(
    weather: Mapping[str, np.ndarray], names: Sequence[str], s: np.ndarray, j: np.ndarray, k
) -> dict[str, np.ndarray]:
    """Each variable's target weather at rows (series, target index, interval) of (S, T, K)
    forecast arrays; NaN for a variable without a forecast."""
    return {
        w: np.asarray(weather[w], dtype=float)[s, j, k] if w in weather else np.full(len(s), np.nan)
        for w in names
    }


def latest_complete(complete: np.ndarray) -> np.ndarray:
    """(S, D) newest complete day slot at or before each slot, -1 if none."""
    n_s, n_days = complete.shape
    slots = np.broadcast_to(np.arange(n_days), (n_s, n_days))
    return np.maximum.accumulate(np.where(complete, slots, -1), axis=1)


def naive_sources(
    hist: Grid, kind: str, target: np.ndarray, issue: np.ndarray, newest: np.ndarray | None = None
) -> np.ndarray:
    """(S, n) day slot whose profile is the naive forecast of target slot ``target[j]`` issued
    at 00:00 of slot ``issue[j]`` (data before it), -1 where there is none."""
    target = np.asarray(target, dtype=np.int64)
    issue = np.asarray(issue, dtype=np.int64)
    n_s = hist.n_series
    if kind == "seasonal_naive_1d":
        newest = latest_complete(hist.complete) if newest is None else newest
        before = issue - 1
        ok = (before >= 0) & (before < hist.n_days)
        out = np.full((n_s, len(target)), -1, dtype=np.int64)
        out[:, ok] = newest[:, before[ok]]
        return out
    if kind == "seasonal_naive_7d":
        weeks = np.maximum((target - issue) // 7 + 1, 1)
        src = target - 7 * weeks
        ok = (src >= 0) & (src < hist.n_days)
        out = np.full((n_s, len(target)), -1, dtype=np.int64)
        good = hist.complete[:, np.where(ok, src, 0)] & ok[None, :]
        out[good] = np.broadcast_to(src, (n_s, len(src)))[good]
        return out
    raise ValueError(f"unknown naive model {kind!r}")


def take_profiles(values: np.ndarray, src: np.ndarray) -> np.ndarray:
    """(S, n, K) values[s, src[s, j], :], NaN where src is -1."""
    n_s = values.shape[0]
    rows = np.arange(n_s)[:, None]
    out = values[rows, np.maximum(src, 0)]
    out[src < 0] = np.nan
    return out


def error_quantiles(errors: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """(S, len(quantiles)) per-series quantiles of (S, ...) errors ignoring NaN (0 where none)."""
    flat = errors.reshape(errors.shape[0], -1)
    out = np.zeros((flat.shape[0], len(quantiles)))
    has = ~np.isnan(flat).all(axis=1)
    if has.any():
        out[has] = np.nanquantile(flat[has], list(quantiles), axis=1).T
    return out


class SeasonalNaive(Forecaster):
    def __init__(self, kind: str = "seasonal_naive_1d", config: ForecastConfig | None = None):
        if kind not in NAIVE:
            raise ValueError(f"unknown naive model {kind!r}")
        self.name = kind
        self.config = config or ForecastConfig()

    def predict(
        self, hist: Grid, targets: Sequence[int], weather: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        targets = np.asarray(targets, dtype=np.int64)
        issue = hist.n_days
        target_slots = targets - hist.day0
        out = np.full((hist.n_series, len(targets), hist.steps, len(QUANTILES)), np.nan)
        if hist.n_days == 0:
            return out
        newest = latest_complete(hist.complete)
        src = naive_sources(hist, self.name, target_slots, np.full(len(targets), issue), newest)
        p50 = take_profiles(hist.filled, src)
        for lead in np.unique(target_slots - issue):
            j = np.flatnonzero(target_slots - issue == lead)
            band = self.bands(hist, int(lead), newest)
            mid = p50[:, j]
            out[:, j] = np.stack(
                [mid + band[:, None, None, 0], mid, mid + band[:, None, None, 1]], axis=-1
            )
        return out

    def bands(self, hist: Grid, lead: int, newest: np.ndarray) -> np.ndarray:
        """(S, 2) P10 and P90 offsets from the naive errors at ``lead`` over recent days."""
        days = np.arange(max(hist.n_days - self.config.residual_days, 0), hist.n_days)
        src = naive_sources(hist, self.name, days, days - lead, newest)
        err = hist.values[:, days] - take_profiles(hist.filled, src)
        q = error_quantiles(err, (QUANTILES[0], QUANTILES[-1]))
        q[:, 0] = np.minimum(q[:, 0], 0.0)
        q[:, 1] = np.maximum(q[:, 1], 0.0)
        return q


def make_model(name: str, config: ForecastConfig | None = None) -> Forecaster:
    """A fresh, unfitted model of the family ``name`` (one of ZOO)."""
    config = config or ForecastConfig()
    if name in NAIVE:
        return SeasonalNaive(name, config)
    if name == "gbm":
        from smartgrid_assets.forecasting.gbm import GlobalGBM

        return GlobalGBM(config)
    if name == "ridge":
        from smartgrid_assets.forecasting.linear import RidgeForecaster

        return RidgeForecaster(config)
    if name == "prophet":
        from smartgrid_assets.forecasting.prophet_model import ProphetModel

        return ProphetModel(config)
    if name == "reference_hgb":
        from smartgrid_assets.forecasting.peer import ReferencePeer

        return ReferencePeer(config)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(ZOO)}")
