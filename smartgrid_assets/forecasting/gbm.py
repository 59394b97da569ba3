"""The global gradient-boosted model: quantile regressors for P10 / P50 / P90 over all series.

One model for every series (scikit-learn ``HistGradientBoostingRegressor`` with quantile loss),
trained on every series' intervals of the ``train_days`` local days before the issue, each with
the features it would have had at its own (virtual) issue (see features): only what was known
then, and the weather forecast of its day, never what came after.

Bands are calibrated by split conformal quantile regression: the P10 and P90 regressors are fit
without the newest ``calibration_days`` training days; on those held-out days the shifts that
put 10 % of the intervals below P10 and 10 % above P90 are measured (level-scaled units, pooled
over series); P50 is fit on every training day. Quantile trees fit their own training tails too
closely, so uncalibrated in-sample bands are too narrow; the held-out days fix that. The three
quantiles are sorted per interval so P10 <= P50 <= P90.

With ``score=True`` a P50 regressor fit without the held-out days also forecasts them, which
gives the fit's backtest score (``holdout``: MAE and naive-1d MAE on those days) that decides
promotion in the registry.

Skipped (NaN) for a series with fewer than ``min_days_gbm`` complete local days in the history
it is forecast from, and for every series when the training set has fewer than
``2 * min_samples_leaf`` rows. Fits run with ``config.n_threads`` OpenMP threads (default 1).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from smartgrid_assets.forecasting.config import QUANTILES, ForecastConfig
from smartgrid_assets.forecasting.features import LagTables, design_matrix, feature_names
from smartgrid_assets.forecasting.grid import Grid
from smartgrid_assets.forecasting.models import Forecaster, naive_sources, take_profiles

LOW, MID, HIGH = QUANTILES


def _regressor(quantile: float, config: ForecastConfig) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        loss="quantile",
        quantile=quantile,
        learning_rate=config.learning_rate,
        max_iter=config.max_iter,
        max_leaf_nodes=config.max_leaf_nodes,
        min_samples_leaf=config.min_samples_leaf,
        l2_regularization=config.l2_regularization,
        early_stopping=False,
        random_state=config.random_state,
    )


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
        self.models: dict[float, HistGradientBoostingRegressor] = {}
        self.shifts = (0.0, 0.0)
        self.weather: tuple[str, ...] = ()
        self.use_doy = False
        self.names: tuple[str, ...] = ()
        self.constant: dict[float, np.ndarray] = {}  # quantile -> features held at 0
        self.holdout: dict[str, float] = {}
        self.train_rows = 0

    @property
    def fitted(self) -> bool:
        return bool(self.models)

    # -- training -----------------------------------------------------------------------------

    def training_rows(self, hist: Grid) -> tuple[np.ndarray, ...]:
        """(s, t, k, issue) of every present interval of the training window, per lead."""
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
        self.models, self.constant, self.shifts, self.holdout = {}, {}, (0.0, 0.0), {}
        self.weather = tuple(sorted(hist.weather))
        self.use_doy = hist.n_days >= 365 and cfg.train_days >= 365
        self.names = feature_names(self.weather, self.use_doy)
        s, t, k, issue = self.training_rows(hist)
        lags = LagTables(hist)
        w_t = {w: hist.weather[w][s, t, k] for w in self.weather}
        w_day = {w: tuple(x[s, t] for x in lags.weather_day[w]) for w in self.weather}
        x, lev = design_matrix(hist, lags, s, t, k, issue, w_t, w_day, self.weather, self.names)
        y = hist.values[s, t, k] / lev
        ok = np.isfinite(y)
        x, y, t, lev = x[ok], y[ok], t[ok], lev[ok]
        self.train_rows = len(y)
        if len(y) < 2 * cfg.min_samples_leaf:
            return self
        days = np.unique(t)
        n_cal = min(cfg.calibration_days, len(days) // 3)
        held = t >= days[-n_cal] if n_cal >= 1 else np.zeros(len(t), bool)
        proper = ~held
        with threadpool_limits(limits=cfg.n_threads, user_api="openmp"):
            if held.any() and proper.sum() >= 2 * cfg.min_samples_leaf:
                for q in (LOW, HIGH):
                    self._fit(q, x[proper], y[proper])
                low = self._predict(LOW, x[held])
                high = self._predict(HIGH, x[held])
                lo, hi = np.minimum(low, high), np.maximum(low, high)
                width = self._width(lo, hi)
                self.shifts = (
                    float(np.quantile((lo - y[held]) / width, 1.0 - LOW)),
                    float(np.quantile((y[held] - hi) / width, HIGH)),
                )
                if score:
                    self._fit(MID, x[proper], y[proper])
                    rows = (s[ok][held], t[held], k[ok][held], issue[ok][held])
                    mid = self._predict(MID, x[held]) * lev[held]
                    self._held = (*rows, mid)
                    self.holdout = _rmae(hist, *rows, mid)
            else:
                for q in (LOW, HIGH):
                    self._fit(q, x, y)
            self._fit(MID, x, y)
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_held", None)  # held-out rows of the last fit: not part of the model
        return state

    def predict_rows(self, hist: Grid, s, t, k, issue) -> np.ndarray:
        """P50 of rows (series, target slot, interval, issue slot) of ``hist`` whose target
        weather is in ``hist`` itself (held-out training days)."""
        missing = [w for w in self.weather if w not in hist.weather]
        if not self.fitted or missing:
            return np.full(len(s), np.nan)
        lags = LagTables(hist)
        w_t = {w: hist.weather[w][s, t, k] for w in self.weather}
        w_day = {w: tuple(x[s, t] for x in lags.weather_day[w]) for w in self.weather}
        x, lev = design_matrix(hist, lags, s, t, k, issue, w_t, w_day, self.weather, self.names)
        with threadpool_limits(limits=self.config.n_threads, user_api="openmp"):
            return self._predict(MID, x) * lev

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

    def _width(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The scale of the conformal scores: the band's own width (level units), floored."""
        if not self.config.scaled_bands:
            return np.ones(len(lo))
        return np.maximum(hi - lo, 0.01)

    def _fit(self, q: float, x: np.ndarray, y: np.ndarray) -> None:
        """Fit the ``q`` regressor. A feature with no value in its training rows carries nothing
        and would break the binning: it is held at 0 (in fitting and forecasting)."""
        self.constant[q] = np.isnan(x).all(axis=0)
        self.models[q] = _regressor(q, self.config).fit(self._prepare(q, x), y)

    def _predict(self, q: float, x: np.ndarray) -> np.ndarray:
        return self.models[q].predict(self._prepare(q, x))

    def _prepare(self, q: float, x: np.ndarray) -> np.ndarray:
        constant = self.constant.get(q)
        if constant is not None and constant.any():
            x = x.copy()
            x[:, constant] = 0.0
        return x

    # -- forecasting --------------------------------------------------------------------------

    def predict(
        self, hist: Grid, targets: Sequence[int], weather: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        targets = np.asarray(targets, dtype=np.int64)
        out = np.full((hist.n_series, len(targets), hist.steps, len(QUANTILES)), np.nan)
        if not self.fitted or hist.n_days == 0 or len(targets) == 0:
            return out
        series = np.flatnonzero(hist.complete.sum(axis=1) >= self.config.min_days_gbm)
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
        lags = LagTables(hist)
        w_t, w_day = _target_weather(hist, weather, self.weather, s, j, k)
        x, lev = design_matrix(hist, lags, s, t, k, issue, w_t, w_day, self.weather, self.names)
        with threadpool_limits(limits=self.config.n_threads, user_api="openmp"):
            pred = np.column_stack([self._predict(q, x) for q in QUANTILES])
        pred = np.sort(pred, axis=1)
        width = self._width(pred[:, 0], pred[:, 2])
        pred[:, 0] -= self.shifts[0] * width
        pred[:, 2] += self.shifts[1] * width
        pred = np.sort(pred, axis=1) * lev[:, None]
        out[s, j, k] = pred
        return out
