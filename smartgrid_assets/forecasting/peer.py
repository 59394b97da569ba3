"""The reference peer: what a utility's data scientist writes in an afternoon, run beside ours.

A plain scikit-learn ``HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05)`` on the
value itself, fit once on every day of history before the test window, with the features a day
ahead allows: the value at the same local clock interval ``lead + 1``, ``lead + 2``, 7, 8 and 14
days before the target (2, 3, 7, 8 and 14 days for the day-ahead target D+1 of an issue at
00:00 of D), the mean of the last complete local day before the issue (D-1), the interval of
the day, the day of the week and the file's weather columns as given. It is a yardstick, never
a candidate: the backtest prints every model's MAE over the peer's and never chooses it.
Its P10 / P90 are not forecast (NaN).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from smartgrid_assets.forecasting.config import ForecastConfig
from smartgrid_assets.forecasting.features import at_slot
from smartgrid_assets.forecasting.grid import Grid
from smartgrid_assets.forecasting.models import Forecaster, blank, weather_at
from smartgrid_assets.forecasting.sun import SUN

REFERENCE = "reference_hgb"
WEEK_LAGS = (7, 8, 14)
#: the first target slot with every lag inside the history
FIRST_ROW = max(WEEK_LAGS)


def lag_days(lead: int) -> tuple[int, ...]:
    """Days between the target day and the lag days of a forecast ``lead`` days ahead."""
    return (lead + 1, lead + 2, *(d for d in WEEK_LAGS if d > lead + 2))


def peer_rows(
    hist: Grid,
    s: np.ndarray,
    t: np.ndarray,
    k: np.ndarray,
    lead: int,
    weather: Mapping[str, np.ndarray],
    names: Sequence[str],
) -> np.ndarray:
    """Features of rows (series, target slot, interval) forecast ``lead`` days ahead;
    ``weather`` maps each name to the rows' weather."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a missing day
        day_mean = np.nanmean(hist.values, axis=2)
    day = hist.day0 + t
    cols = [at_slot(hist.values, s, t - d, k) for d in lag_days(lead)]
    cols.append(at_slot(day_mean, s, t - lead - 1))
    cols.extend([k.astype(float), ((day + 3) % 7).astype(float)])  # 1970-01-01: a Thursday
    cols.extend(np.asarray(weather[w], dtype=float) for w in names)
    return np.column_stack(cols)


class ReferencePeer(Forecaster):
    name = REFERENCE
    refit_days = 10**9  # fit once: the backtest fits it before its first test issue

    def __init__(self, config: ForecastConfig | None = None) -> None:
        self.config = config or ForecastConfig()
        self.models: dict[int, HistGradientBoostingRegressor] = {}
        self.weather: tuple[str, ...] = ()

    def fit(self, hist: Grid) -> ReferencePeer:
        super().fit(hist)
        self.weather = tuple(sorted(w for w in hist.weather if w != SUN))  # the file's only
        self.models = {}
        for lead in self.config.leads:
            t = np.arange(FIRST_ROW, hist.n_days)
            s, j, k = np.nonzero(~np.isnan(hist.values[:, t, :]))
            if len(s) < 40:
                continue
            t = t[j]
            x = peer_rows(
                hist,
                s,
                t,
                k,
                lead,
                {w: hist.weather[w][s, t, k] for w in self.weather},
                self.weather,
            )
            model = HistGradientBoostingRegressor(
                max_iter=500, learning_rate=0.05, random_state=self.config.random_state
            )
            with threadpool_limits(limits=self.config.n_threads, user_api="openmp"):
                self.models[lead] = model.fit(x, hist.values[s, t, k])
        return self

    def predict(
        self, hist: Grid, targets: Sequence[int], weather: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        targets, out = blank(hist, targets)
        n_s, n_k = hist.n_series, hist.steps
        for j, target in enumerate(targets):
            lead = int(target - hist.end_day)
            model = self.models.get(lead)
            if model is None:
                continue
            s = np.repeat(np.arange(n_s), n_k)
            k = np.tile(np.arange(n_k), n_s)
            t = np.full(len(s), target - hist.day0)
            rows = weather_at(weather, self.weather, s, j, k)
            x = peer_rows(hist, s, t, k, lead, rows, self.weather)
            with threadpool_limits(limits=self.config.n_threads, user_api="openmp"):
                out[s, j, k, 1] = model.predict(x)
        return out
