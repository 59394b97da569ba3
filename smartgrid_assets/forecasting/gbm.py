"""The global gradient-boosted model: one P50 regressor over all series, conformal P10 / P90.

One model for every series (scikit-learn ``HistGradientBoostingRegressor``), trained on every
series' intervals of the ``train_days`` local days before the issue (a seeded sample of at most
``max_train_rows`` of them: a global model of similar series learns as much from a sample, at a
fraction of the time), each with the features it would have had at its own (virtual) issue
(see features): only what was known then, and the weather forecast of its day, never what
came after.

The target is the value over the series' level. A model trained on less than a year first
takes off the baseline (``type_same``: the same interval's mean over recent days of the target's
day type) and a least-squares line in the weather changes from the baseline's days, and its
trees learn how the target day departs from them; with a year or more the trees learn the
value directly (see Stages).

Bands are split conformal: a P50 regressor fit without the newest ``calibration_days``
training days forecasts them, and the 10 % and 90 % quantiles of its errors on those held-out
days (level units, pooled over series, per lead) are the offsets of P10 and P90 from P50. The
held-out errors are honest out-of-sample errors, so the bands cover about 80 %; quantile
regressors fit their own training tails too closely and cost a fit each. The calibration
window rolls with the issues: a forecast issued days after the fit adds this model's errors on
the days since the fit (which it never saw, forecast as they would have been issued) and drops
the oldest held-out days, so the bands always rest on the newest ``calibration_days`` days of
out-of-sample errors (over the last 28 test days, P10-P90 coverage on PJME_hourly 85.9 % with
bands fixed at the fit, 81.4 % rolling). A forecast whose weather lies beyond the range the
weather line was fit on reaches further on both sides, by the part of the line beyond that
range (``Stages.beyond``): held-out days only show errors inside the range seen up to them, and
past it the straight line is a guess (on the synthetic feeders, whose test weeks warm past
every training day, coverage 0.69 without, 0.78 with). The same held-out forecasts give the
fit's backtest score with ``score=True`` (``holdout``: MAE and naive-1d MAE on those days),
which decides promotion in the registry. The forecasting P50 is then refit on every training
day. A fit is therefore two regressor fits (one when there are too few days to hold any out:
the bands then come from in-sample errors, which understate them).

Skipped (NaN) for a series with fewer than ``min_days_gbm`` complete local days in the history
it is forecast from, and for every series when the training set has fewer than
``2 * min_samples_leaf`` rows. Fits run with ``config.n_threads`` OpenMP threads (default 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from smartgrid_assets.forecasting.config import QUANTILES, ForecastConfig
from smartgrid_assets.forecasting.features import (
    WEATHER_CHANGE,
    LagTables,
    design_matrix,
    feature_names,
)
from smartgrid_assets.forecasting.grid import Grid
from smartgrid_assets.forecasting.models import Forecaster, blank, naive_sources, take_profiles

LOW, MID, HIGH = QUANTILES


def _regressor(config: ForecastConfig) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        loss=config.loss,
        learning_rate=config.learning_rate,
        max_iter=config.max_iter,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        max_bins=config.max_bins,
        early_stopping=False,
        random_state=config.random_state,
    )


class Calibration(NamedTuple):
    """Out-of-sample errors (actual - P50, level units) of rows: target day (day number), lead."""

    day: np.ndarray
    lead: np.ndarray
    error: np.ndarray


class Stages(NamedTuple):
    """A fitted P50 in level units. ``offset``: the baseline, a least-squares line in the
    weather changes (``linear``: their coefficients and the intercept) and the trees on what
    they leave; else the trees on the value itself (``linear`` is its mean).

    Trees cannot extrapolate: on a short history a weather change wider than any seen in
    training gets the effect of the widest seen, and the daily shape of each series is copied
    from the lags in coarse steps. The baseline carries the shape and the line carries the
    weather effect on (as Prophet's weather regressors do), and the trees fit the rest. With a
    year or more of history the trees have seen every season's weather and day types, learn
    them directly and do better without (rMAE 0.305 against 0.360 on vic_elec, 0.716 against
    0.777 on PJME)."""

    offset: bool
    linear: np.ndarray
    columns: np.ndarray  # the weather-change columns of the design matrix
    trees: HistGradientBoostingRegressor | None
    constant: np.ndarray  # features held at 0: no value in the training rows
    raw: np.ndarray  # the columns of each weather variable itself (one per two of ``columns``)
    seen: np.ndarray  # (len(raw), 2): its lowest and highest value in the training rows

    def predict(self, x: np.ndarray, base: np.ndarray) -> np.ndarray:
        start = base + _line(self, x) if self.offset else _line(self, x)
        return start + self.trees.predict(_prepare(self.constant, x))

    def beyond(self, x: np.ndarray) -> np.ndarray:
        """How much of each row's weather line lies beyond the weather seen in training (level
        units, signed; 0 inside the seen range and without a line).

        Past the seen range the line goes on straight, while the load may as well level off
        (heating stops as it gets warm) or bend further: the line's value with the weather
        clipped to the seen range is as likely as its own, so the band reaches it too."""
        out = np.zeros(len(x))
        for i, col in enumerate(self.raw):
            w = x[:, col]
            clipped = np.clip(w, *self.seen[i])
            part = self.linear[2 * i] * (w - clipped) + self.linear[2 * i + 1] * (w**2 - clipped**2)
            out += np.nan_to_num(part, nan=0.0)  # missing weather: no change (as in the line)
        return out


def _line(stages: Stages, x: np.ndarray) -> np.ndarray:
    """The linear part; a missing weather change counts as no change."""
    change = np.nan_to_num(x[:, stages.columns], nan=0.0, posinf=0.0, neginf=0.0)
    return change @ stages.linear[:-1] + stages.linear[-1]


def fit_stages(
    x: np.ndarray,
    y: np.ndarray,
    base: np.ndarray,
    columns: np.ndarray,
    raw: np.ndarray,
    offset: bool,
    config: ForecastConfig,
) -> Stages:
    """Fit ``y`` (level units) with or without the baseline and the weather line (``offset``;
    ``columns``: the weather changes, two per weather variable ``raw``).
    A feature with no value in the training rows carries nothing and would break the binning:
    it is held at 0 (in fitting and forecasting)."""
    columns = columns if offset else np.zeros(0, np.int64)
    raw = raw if offset else np.zeros(0, np.int64)
    target = y - base if offset else y
    change = np.nan_to_num(x[:, columns], nan=0.0, posinf=0.0, neginf=0.0)
    design = np.column_stack([change, np.ones(len(y))])
    linear = np.linalg.lstsq(design, target, rcond=None)[0]
    constant = np.isnan(x).all(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a weather variable never known
        seen = np.column_stack([np.nanmin(x[:, raw], axis=0), np.nanmax(x[:, raw], axis=0)])
    stages = Stages(offset, linear, columns, None, constant, raw, seen)
    trees = _regressor(config).fit(_prepare(constant, x), target - _line(stages, x))
    return stages._replace(trees=trees)


def _target_weather(
    hist: Grid, weather: Mapping[str, np.ndarray], names: Sequence[str], s, j, k
) -> tuple[dict, dict]:
    """Per-row target weather and its day mean / max / min from (S, T, K) forecast arrays."""
    at, day = {}, {}
    for w in names:
        arr = weather.get(w)
        if arr is None:  # no forecast for the target: the trees route missing values
            arr = np.full((hist.n_series, int(j.max()) + 1 if len(j) else 0, hist.steps), np.nan)
        arr = np.asarray(arr, dtype=float)
        at[w] = arr[s, j, k]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing day
            stats = (np.nanmean(arr, 2), np.nanmax(arr, 2), np.nanmin(arr, 2))
        day[w] = tuple(x[s, j] for x in stats)
    return at, day


def band_offsets(errors: np.ndarray, leads: np.ndarray) -> dict[int, tuple[float, float]]:
    """Lead -> (P10, P90) offsets from P50: the 10 % / 90 % quantiles of ``errors`` (actual -
    P50) at that lead around their median, clipped so that P10 <= P50 <= P90. Centred, because
    the forecasting P50 is refit on the held-out days: a bias it had there is gone, and
    keeping it would shift the band off the forecast."""
    out = {}
    for lead in np.unique(leads):
        e = errors[leads == lead]
        lo, hi = np.quantile(e - np.median(e), [LOW, HIGH])
        out[int(lead)] = (min(float(lo), 0.0), max(float(hi), 0.0))
    return out


def _rmae(hist: Grid, s, t, k, issue, p50) -> dict[str, float]:
    """MAE of ``p50`` on rows of ``hist`` and of naive-1d as issued at each row's issue."""
    actual = hist.values[s, t, k]
    naive = np.full(len(s), np.nan)
    for i in np.unique(issue):
        rows = np.flatnonzero(issue == i)
        src = naive_sources(hist, "seasonal_naive_1d", np.array([i]), np.array([i]))
        prof = take_profiles(hist.filled, src)[:, 0, :]  # (S, K)
        naive[rows] = prof[s[rows], k[rows]]
    ok = ~np.isnan(naive) & ~np.isnan(actual) & ~np.isnan(p50)
    if not ok.any():
        return {}
    mae = float(np.mean(np.abs(p50[ok] - actual[ok])))
    mae_naive = float(np.mean(np.abs(naive[ok] - actual[ok])))
    return {
        "holdout_mae": mae,
        "holdout_mae_naive_1d": mae_naive,
        "holdout_rmae": mae / mae_naive if mae_naive > 0 else float("nan"),
        "holdout_points": float(ok.sum()),
    }


class GlobalGBM(Forecaster):
    name = "gbm"

    def __init__(self, config: ForecastConfig | None = None) -> None:
        self.config = config or ForecastConfig()
        self.refit_days = self.config.refit_days
        self.model: Stages | None = None
        self.bands: dict[int, tuple[float, float]] = {}  # lead -> P10 / P90 offsets (level units)
        self.calibration: Calibration | None = None
        self.weather: tuple[str, ...] = ()
        self.use_doy = False
        self.names: tuple[str, ...] = ()
        self.holdout: dict[str, float] = {}
        self.train_rows = 0

    @property
    def fitted(self) -> bool:
        return self.model is not None

    # -- training -----------------------------------------------------------------------------

    def training_rows(self, hist: Grid) -> tuple[np.ndarray, ...]:
        """(s, t, k, issue) of every present interval of the training window, per lead; a
        seeded sample of ``max_train_rows`` of them when there are more."""
        n = hist.n_days
        first = max(n - self.config.train_days, 0)
        parts = []
        for lead in self.config.leads:
            t = np.arange(max(first, lead + 1), n)
            if len(t) == 0:
                continue
            present = ~np.isnan(hist.values[:, t, :])
            s, j, k = np.nonzero(present)
            parts.append((s, t[j], k, t[j] - lead))
        if not parts:
            return tuple(np.zeros(0, np.int64) for _ in range(4))
        s, t, k, issue = (np.concatenate(p) for p in zip(*parts, strict=True))
        if len(s) > self.config.max_train_rows:
            rng = np.random.default_rng(self.config.random_state)
            keep = np.sort(rng.choice(len(s), self.config.max_train_rows, replace=False))
            s, t, k, issue = s[keep], t[keep], k[keep], issue[keep]
        return s, t, k, issue

    def fit(self, hist: Grid, score: bool = False) -> GlobalGBM:
        super().fit(hist)
        cfg = self.config
        self.model, self.bands, self.holdout, self.calibration = None, {}, {}, None
        self.__dict__.pop("_held", None)
        self.weather = tuple(sorted(hist.weather))
        self.use_doy = hist.n_days >= 365 and cfg.train_days >= 365
        self.names = feature_names(self.weather, self.use_doy)
        s, t, k, issue = self.training_rows(hist)
        x, lev, base = self._rows(hist, s, t, k, issue)
        y = hist.values[s, t, k] / lev
        ok = np.isfinite(y)
        s, t, k, issue, x, y, lev, base = (a[ok] for a in (s, t, k, issue, x, y, lev, base))
        self.train_rows = len(y)
        if len(y) < 2 * cfg.min_samples_leaf:
            return self
        days = np.unique(t)
        n_cal = min(cfg.calibration_days, len(days) // 3)
        held = t >= days[-n_cal] if n_cal >= 1 else np.zeros(len(t), bool)
        proper = ~held
        with threadpool_limits(limits=cfg.n_threads, user_api="openmp"):
            if held.any() and proper.sum() >= 2 * cfg.min_samples_leaf:
                early = self._fit(x[proper], y[proper], base[proper])
                mid = early.predict(x[held], base[held])
                lead = (t - issue)[held]
                self.calibration = Calibration(hist.day0 + t[held], lead, y[held] - mid)
                if score:
                    rows = (s[held], t[held], k[held], issue[held])
                    p50 = mid * lev[held]
                    self._held = (*rows, p50)
                    self.holdout = _rmae(hist, *rows, p50)
                self.model = self._fit(x, y, base)
            else:
                self.model = self._fit(x, y, base)
                mid = self.model.predict(x, base)
                self.calibration = Calibration(hist.day0 + t, t - issue, y - mid)
        self.bands = band_offsets(self.calibration.error, self.calibration.lead)
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_held", None)  # held-out rows of the last fit: not part of the model
        return state

    def __setstate__(self, state: dict) -> None:
        # a model registered before its errors were kept: bands fixed at its fit
        self.__dict__.update({"calibration": None, **state})

    def _rows(
        self,
        hist: Grid,
        s,
        t,
        k,
        issue,
        weather: tuple[dict, dict] | None = None,
        lags: LagTables | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, level and baseline (level units) of rows of ``hist``; target weather from
        ``weather`` (per-row values and day stats), else from ``hist`` itself; ``lags``: the
        history's lag tables when the caller has them already."""
        lags = lags or LagTables(hist)
        if weather is None:
            w_t = {w: hist.weather[w][s, t, k] for w in self.weather}
            w_day = {w: tuple(x[s, t] for x in lags.weather_day[w]) for w in self.weather}
        else:
            w_t, w_day = weather
        return design_matrix(hist, lags, s, t, k, issue, w_t, w_day, self.weather, self.names)

    def predict_rows(self, hist: Grid, s, t, k, issue) -> np.ndarray:
        """P50 of rows (series, target slot, interval, issue slot) of ``hist`` whose target
        weather is in ``hist`` itself (held-out training days)."""
        missing = [w for w in self.weather if w not in hist.weather]
        if not self.fitted or missing:
            return np.full(len(s), np.nan)
        x, lev, base = self._rows(hist, s, t, k, issue)
        with threadpool_limits(limits=self.config.n_threads, user_api="openmp"):
            return self.model.predict(x, base) * lev

    def compare_on_holdout(self, hist: Grid, other: GlobalGBM) -> tuple[float, float]:
        """rMAE of this fit's held-out P50 and of ``other`` on the same held-out points that
        ``other`` never saw (target days at or after its cutoff); NaN, NaN when there are
        none. Needs a fit with ``score=True`` on ``hist``."""
        held = getattr(self, "_held", None)
        if held is None or other.fitted_until is None:
            return float("nan"), float("nan")
        s, t, k, issue, mine = held
        unseen = hist.day0 + t >= other.fitted_until
        if not unseen.any():
            return float("nan"), float("nan")
        rows = (s[unseen], t[unseen], k[unseen], issue[unseen])
        theirs = other.predict_rows(hist, *rows)
        both = ~np.isnan(theirs) & ~np.isnan(mine[unseen])
        rows = tuple(r[both] for r in rows)
        a = _rmae(hist, *rows, mine[unseen][both]).get("holdout_rmae", float("nan"))
        b = _rmae(hist, *rows, theirs[both]).get("holdout_rmae", float("nan"))
        return a, b

    def _fit(self, x: np.ndarray, y: np.ndarray, base: np.ndarray) -> Stages:
        """The P50 stages; the baseline and the weather line only for a model trained on less
        than a year (one that reads the day of year has seen every season: see Stages)."""
        columns = [self.names.index(f"{w}{c}") for w in self.weather for c in WEATHER_CHANGE]
        columns = np.array(columns, dtype=np.int64)
        raw = np.array([self.names.index(w) for w in self.weather], dtype=np.int64)
        return fit_stages(x, y, base, columns, raw, not self.use_doy, self.config)

    # -- forecasting --------------------------------------------------------------------------

    def predict(
        self, hist: Grid, targets: Sequence[int], weather: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        targets, out = blank(hist, targets)
        if not self.fitted or hist.n_days == 0 or len(targets) == 0:
            return out
        series = self._forecastable(hist)
        if len(series) == 0:
            return out
        n_t, n_k = len(targets), hist.steps
        s = np.repeat(series, n_t * n_k)
        j = np.tile(np.repeat(np.arange(n_t), n_k), len(series))
        k = np.tile(np.arange(n_k), len(series) * n_t)
        t = targets[j] - hist.day0
        issue = np.full(len(s), hist.n_days)
        missing = [w for w in self.weather if w not in hist.weather]
        if missing:
            raise ValueError(f"the history lacks the weather the model was trained on: {missing}")
        target_weather = _target_weather(hist, weather, self.weather, s, j, k)
        lags = LagTables(hist)
        x, lev, base = self._rows(hist, s, t, k, issue, target_weather, lags)
        with threadpool_limits(limits=self.config.n_threads, user_api="openmp"):
            mid = self.model.predict(x, base)
        lead = t - issue
        bands = self.bands_at(hist, lags)
        offsets = np.zeros((len(s), 2))
        for value in np.unique(lead):
            # a lead the model was not calibrated at takes the farthest one's (the widest)
            offsets[lead == value] = bands.get(int(value)) or bands[max(bands)]
        reach = np.abs(self.model.beyond(x))
        pred = np.column_stack([mid + offsets[:, 0] - reach, mid, mid + offsets[:, 1] + reach])
        out[s, j, k] = pred * lev[:, None]
        return out

    def bands_at(self, hist: Grid, lags: LagTables | None = None) -> dict[int, tuple[float, float]]:
        """Lead -> P10 / P90 offsets for an issue at the end of ``hist``: from the newest
        ``calibration_days`` days of out-of-sample errors, the held-out days of the fit and the
        days forecast since it."""
        since = self._errors_since_fit(hist, lags or LagTables(hist))
        if self.calibration is None or since is None:
            return self.bands
        day, lead, error = (np.concatenate(p) for p in zip(self.calibration, since, strict=True))
        keep = day >= hist.end_day - self.config.calibration_days
        return band_offsets(error[keep], lead[keep]) if keep.any() else self.bands

    def _forecastable(self, hist: Grid) -> np.ndarray:
        """Series with the ``min_days_gbm`` complete local days the model needs."""
        return np.flatnonzero(hist.complete.sum(axis=1) >= self.config.min_days_gbm)

    def _errors_since_fit(self, hist: Grid, lags: LagTables) -> Calibration | None:
        """This model's errors on the days of ``hist`` after its training history, each day
        forecast as it would have been issued (``lead`` days before it)."""
        if self.fitted_until is None:
            return None
        days = np.arange(max(self.fitted_until - hist.day0, 0), hist.n_days)
        series = self._forecastable(hist)
        parts = []
        for lead in self.config.leads:
            t = days[days - lead >= 1]
            if len(t) == 0 or len(series) == 0:
                continue
            j, k = np.nonzero(~np.isnan(hist.values[series][:, t]).reshape(-1, len(t) * hist.steps))
            if len(j) == 0:
                continue  # no actuals since the fit (a backfill past the newest reading)
            s = series[j]
            t_rows, k = t[k // hist.steps], k % hist.steps
            x, lev, base = self._rows(hist, s, t_rows, k, t_rows - lead, lags=lags)
            with threadpool_limits(limits=self.config.n_threads, user_api="openmp"):
                error = hist.values[s, t_rows, k] / lev - self.model.predict(x, base)
            ok = np.isfinite(error)
            parts.append(
                Calibration(hist.day0 + t_rows[ok], np.full(int(ok.sum()), lead), error[ok])
            )
        if not parts:
            return None
        return Calibration(*(np.concatenate(p) for p in zip(*parts, strict=True)))


def _prepare(constant: np.ndarray, x: np.ndarray) -> np.ndarray:
    if constant.any():
        x = x.copy()
        x[:, constant] = 0.0
    return x
