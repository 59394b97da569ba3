"""A ridge regression of the load on its daily profile, lags and shaped weather, with
conformal P10 / P90.

Trees learn a weather effect as steps from the days they saw; on a few weeks of net load
(a substation with a wind farm or solar park behind it) that is a coarse staircase, while the
generation itself is smooth in the weather: the output of a wind farm follows its turbines'
power curve, a solar park's the irradiance, scaled by the time of day. A linear model on
those shapes interpolates between them, and it errs differently enough from the trees that
their mean (the backtest's blend) can beat both (on the test windows of four of the eight
shared real series it does; the folds decide per series).

One model over every series, per lead; each row is one series ``s``, target day ``t`` and
interval ``k``, issued at 00:00 of ``t - lead`` (features read only days before it), divided by
the series' scale (mean |value| over its history, see series_scale) so that feeders of any
size share it. Features:

- the profile: one indicator per hour of the day and day type (working day, Saturday, Sunday
  or public holiday);
- lags: the same interval ``lead + 1``, 7 and 14 days before the target, and the mean of the
  last day before the issue;
- per weather variable at the target interval, and at the lag days ``lead + 1`` and 7 before
  (so that a lag's own weather can be taken out of it): a wind speed (a variable whose name
  holds ``wind``, in m/s) through ``wind_power_shape``; any other variable as its value and
  square, and at the target its value times each hour of the day (irradiance makes power by
  the sun's height, temperature moves load by the hour).

A series is forecast once it has ``min_days_gbm`` complete local days, as by the gbm.

The penalty is chosen per fit, and the bands are split conformal as in gbm, on the same
held-out days: a fit without the newest ``calibration_days`` training days forecasts them with
every penalty of ``ALPHAS``, the one with the lowest MAE is kept, and the 10 % / 90 % quantiles
of its errors around their median are the offsets of P10 and P90.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from smartgrid_assets.forecasting.config import ForecastConfig
from smartgrid_assets.forecasting.features import at_slot, days_off
from smartgrid_assets.forecasting.gbm import band_offsets
from smartgrid_assets.forecasting.grid import Grid
from smartgrid_assets.forecasting.models import Forecaster, blank, weather_at

#: ridge penalties (on standardised features) a fit chooses from on its held-out days
ALPHAS = tuple(float(a) for a in np.logspace(1, 4, 7))
#: a generic turbine: no output below cut-in, the cube of the speed up to rated, then flat
#: until cut-out (m/s)
CUT_IN, RATED, CUT_OUT = 3.0, 12.0, 25.0
MIN_ROWS = 200


def wind_power_shape(speed: np.ndarray) -> np.ndarray:
    """Share of rated output a generic wind turbine gives at ``speed`` m/s (NaN stays NaN)."""
    v = np.asarray(speed, dtype=float)
    share = np.clip((v**3 - CUT_IN**3) / (RATED**3 - CUT_IN**3), 0.0, 1.0)
    return np.where(v >= CUT_OUT, 0.0, share)


def is_wind_speed(name: str) -> bool:
    return "wind" in name.lower()


def series_scale(hist: Grid) -> np.ndarray:
    """(S,) mean |value| of each series over its whole history (NaN where none): steady, where
    a few weeks' level would move with the wind behind a substation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a series without values
        scale = np.nanmean(np.abs(hist.values).reshape(hist.n_series, -1), axis=1)
    return np.where(scale > 1e-9, scale, np.nan)


def design(
    hist: Grid,
    s: np.ndarray,
    t: np.ndarray,
    k: np.ndarray,
    lead: int,
    weather_t: Mapping[str, np.ndarray],
    names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """(n, p) features and (n,) levels of rows (series, target slot, interval) ``lead`` days
    ahead; ``weather_t`` maps each name to the rows' target weather."""
    n = len(s)
    issue = t - lead
    lev = series_scale(hist)[s]
    day = hist.day0 + t
    span = np.unique(day)
    off = days_off(span, hist.tz)[np.searchsorted(span, day)]
    saturday = ((day + 3) % 7 == 5) & ~off
    day_type = np.where(off & ~saturday, 2, np.where(saturday, 1, 0))
    hour = (k * 24) // hist.steps
    profile = np.zeros((n, 72))
    profile[np.arange(n), hour * 3 + day_type] = 1.0
    hours = np.zeros((n, 24))
    hours[np.arange(n), hour] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a missing day
        day_mean = np.nanmean(hist.values, axis=2)
    cols = [profile]
    lags = (lead + 1, 7, 14)
    cols.extend(at_slot(hist.filled, s, t - d, k)[:, None] / lev[:, None] for d in lags)
    cols.append((at_slot(day_mean, s, issue - 1) / lev)[:, None])
    for w in names:
        at_lags = [at_slot(hist.weather[w], s, t - d, k) for d in lags[:2]]
        target = np.asarray(weather_t[w], dtype=float)
        if is_wind_speed(w):
            cols.extend(wind_power_shape(v)[:, None] for v in (target, *at_lags))
            cols.append(target[:, None])
        else:
            cols.extend(np.column_stack([v, v**2]) for v in (target, *at_lags))
            cols.append(hours * target[:, None])
    return np.column_stack(cols), lev


class Scaled:
    """Ridge regressions on standardised features, one per penalty in ``ALPHAS`` (missing
    features take the training mean); ``alpha`` picks the one that predicts."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a feature never known (no lag yet)
            mean = np.nanmean(x, axis=0)
            sd = np.nanstd(x, axis=0)
        self.mean = np.where(np.isfinite(mean), mean, 0.0)
        self.scale = np.where(np.isfinite(sd) & (sd > 1e-9), sd, 1.0)
        z = self._standard(x)
        self.intercept = float(np.mean(y))
        gram, moment = z.T @ z, z.T @ (y - self.intercept)
        eye = np.eye(len(gram))
        self.coef = {a: np.linalg.solve(gram + a * eye, moment) for a in ALPHAS}
        self.alpha = ALPHAS[len(ALPHAS) // 2]

    def _standard(self, x: np.ndarray) -> np.ndarray:
        return (np.where(np.isfinite(x), x, self.mean) - self.mean) / self.scale

    def predict(self, x: np.ndarray, alpha: float | None = None) -> np.ndarray:
        return self._standard(x) @ self.coef[alpha or self.alpha] + self.intercept


class RidgeForecaster(Forecaster):
    name = "ridge"

    def __init__(self, config: ForecastConfig | None = None) -> None:
        self.config = config or ForecastConfig()
        self.refit_days = self.config.refit_days
        self.weather: tuple[str, ...] = ()
        self.models: dict[int, Scaled] = {}
        self.bands: dict[int, tuple[float, float]] = {}

    def fit(self, hist: Grid) -> RidgeForecaster:
        super().fit(hist)
        self.weather = tuple(sorted(hist.weather))
        self.models, self.bands = {}, {}
        for lead in self.config.leads:
            # from the first target with a day before its issue (missing lags: their mean)
            t = np.arange(max(lead + 2, hist.n_days - self.config.train_days), hist.n_days)
            s, j, k = np.nonzero(~np.isnan(hist.values[:, t, :]))
            t = t[j]
            weather = {w: hist.weather[w][s, t, k] for w in self.weather}
            x, lev = design(hist, s, t, k, lead, weather, self.weather)
            y = hist.values[s, t, k] / lev
            ok = np.isfinite(y)
            x, y, t = x[ok], y[ok], t[ok]
            if len(y) < MIN_ROWS:
                continue
            model = Scaled(x, y)
            held = t >= hist.n_days - self.config.calibration_days
            if held.any() and (~held).sum() >= MIN_ROWS:
                early = Scaled(x[~held], y[~held])
                errors = {a: y[held] - early.predict(x[held], a) for a in ALPHAS}
                model.alpha = min(ALPHAS, key=lambda a: float(np.mean(np.abs(errors[a]))))
                error = errors[model.alpha]
            else:
                error = y - model.predict(x)
            self.bands[lead] = band_offsets(error, np.full(len(error), lead))[lead]
            self.models[lead] = model
        return self

    def predict(
        self, hist: Grid, targets: Sequence[int], weather: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        targets, out = blank(hist, targets)
        series = np.flatnonzero(hist.complete.sum(axis=1) >= self.config.min_days_gbm)
        n_k = hist.steps
        s = np.repeat(series, n_k)
        k = np.tile(np.arange(n_k), len(series))
        for j, target in enumerate(targets):
            lead = int(target - hist.end_day)
            model = self.models.get(lead)
            if model is None:
                continue
            t = np.full(len(s), target - hist.day0)
            rows = weather_at(weather, self.weather, s, j, k)
            x, lev = design(hist, s, t, k, lead, rows, self.weather)
            mid = model.predict(x)
            low, high = self.bands[lead]
            out[s, j, k] = np.column_stack([mid + low, mid, mid + high]) * lev[:, None]
        return out
