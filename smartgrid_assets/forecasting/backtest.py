"""Rolling-origin backtests of every model, model-family choice, and the metrics per series.

One issue per day over the test window: each forecast is issued at 00:00 local of its issue
day from the grid cut there (``grid.until``), for the target days of the horizon (``1d``: the
day after the issue day; ``48h``: the issue day and the day after). Models are refit when
their ``refit_days`` have passed since their last fit (the gbm and Prophet weekly, so each fit
serves the issues of the following week; the naive models read the history of each issue).
Weather of the target days comes from the grid (the file's own weather stands in for a
forecast in a CSV backtest: observed temperature is a perfect forecast, which flatters every
model that reads it).

The model of each series is chosen on the ``select_days`` target days before the test window,
never on it: they are split into ``folds`` consecutive rolling folds (two of 14 days by
default), each model's P50 MAE is taken per fold, and the lowest mean over the folds wins. The
candidates are every family and ``blend``, the mean of the two learned families with the lowest
fold means (P10, P50 and P90 each averaged). That choice is the series' *champion* on the
test window.

The reference peer (peer module) runs beside them, fit once on the history before the test
window, and is never a candidate: ``ratio_to_reference`` is a model's test MAE over the peer's.

Metrics per series, model, window and lead: MAE, RMSE, MAPE (guarded near zero, see metrics),
rMAE (MAE over naive-1d's MAE on the same points), pinball loss (mean over P10 / P50 / P90) and
P10-P90 coverage (NaN for the peer, which forecasts no band).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from smartgrid_assets.forecasting import metrics
from smartgrid_assets.forecasting.config import HORIZONS, QUANTILES, ForecastConfig
from smartgrid_assets.forecasting.grid import Grid, day_of
from smartgrid_assets.forecasting.models import NAIVE, ZOO, Forecaster, make_model
from smartgrid_assets.forecasting.peer import REFERENCE

BASELINE = "seasonal_naive_1d"
BLEND = "blend"
SUMMARY_KEYS = ("mae", "rmse", "rmae", "coverage_p10_p90")


#: a backtest of one series trains the gbm on up to this many of its intervals
SERIES_TRAIN_ROWS = 300_000


def series_config(grid: Grid, train_days: int | None = None) -> ForecastConfig:
    """The configuration of a backtest of a file's series: every day of it trains the models
    (as the reference peer is trained), unless ``train_days`` says otherwise."""
    return ForecastConfig(
        train_days=train_days or max(grid.n_days, 1), max_train_rows=SERIES_TRAIN_ROWS
    )


class BacktestError(ValueError):
    """The data cannot be backtested as asked (too short, nothing to forecast)."""


def point_metrics(
    actual: np.ndarray, pred: np.ndarray, naive: np.ndarray | None = None
) -> dict[str, float]:
    """Metrics of P10/P50/P90 ``pred`` (n, 3) against ``actual`` (n,), rMAE against naive P50."""
    a, p10, p50, p90 = actual, pred[:, 0], pred[:, 1], pred[:, 2]
    mae = metrics.mae(a, p50)
    out = {
        "mae": mae,
        "rmse": metrics.rmse(a, p50),
        "mape": metrics.mape(a, p50),
        "rmae": float("nan"),
        "pinball": float(
            np.mean([metrics.pinball_loss(a, pred[:, i], q) for i, q in enumerate(QUANTILES)])
        )
        if len(a)
        else float("nan"),
        "coverage_p10_p90": metrics.coverage(a, p10, p90)
        if np.isfinite(pred[:, [0, 2]]).all()
        else float("nan"),
        "points": len(a),
    }
    if naive is not None and len(a):
        base = metrics.mae(a, naive)
        out["rmae"] = mae / base if base > 0 else float("nan")
    return out


@dataclass
class BacktestResult:
    grid: Grid
    horizon: str
    leads: tuple[int, ...]
    models: tuple[str, ...]
    select_targets: np.ndarray  # day numbers
    test_targets: np.ndarray
    forecasts: dict[str, dict[int, np.ndarray]]  # model -> lead -> (S, T, K, 3) over all targets
    seconds: dict[str, dict[str, float]]  # model -> fit / predict seconds
    fits: dict[str, int]
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why it did not run
    folds: int = 2
    blended: dict[int, tuple[str, str]] = field(default_factory=dict)  # series -> blend parts

    @property
    def candidates(self) -> tuple[str, ...]:
        """The models a series' champion is chosen from: never the reference peer."""
        return tuple(m for m in self.models if m != REFERENCE)

    @property
    def targets(self) -> np.ndarray:
        return np.concatenate([self.select_targets, self.test_targets])

    def series_keys(self) -> list[str]:
        cols = list(self.grid.series.columns)
        return ["/".join(str(v) for v in row) for row in self.grid.series[cols].to_numpy()]

    def _window(self, window: str) -> np.ndarray:
        n_sel = len(self.select_targets)
        idx = np.arange(len(self.targets))
        return idx[:n_sel] if window == "select" else idx[n_sel:]

    def _points(self, model: str, window: str, series: np.ndarray, leads: Sequence[int]):
        return self._points_at(model, self._window(window), series, leads)

    def _points_at(self, model: str, cols: np.ndarray, series: np.ndarray, leads: Sequence[int]):
        """Actual, prediction (n, 3) and naive P50 at target columns ``cols`` on the points
        every one of them has."""
        slots = self.targets[cols] - self.grid.day0
        actual_all = self.grid.values[series][:, slots]  # (s, T, K)
        a, p, n = [], [], []
        for lead in leads:
            pred = self.forecasts[model][lead][series][:, cols]
            naive = self.forecasts[BASELINE][lead][series][:, cols][..., 1]
            ok = ~np.isnan(actual_all) & ~np.isnan(pred[..., 1]) & ~np.isnan(naive)
            a.append(actual_all[ok])
            p.append(pred[ok])
            n.append(naive[ok])
        return np.concatenate(a), np.concatenate(p), np.concatenate(n)

    def score(
        self,
        model: str,
        window: str = "test",
        series: Sequence[int] | None = None,
        leads: Sequence[int] | None = None,
    ) -> dict[str, float]:
        """Metrics of ``model`` pooled over ``series`` (all by default) and ``leads``."""
        rows = np.arange(self.grid.n_series) if series is None else np.asarray(series)
        a, p, n = self._points(model, window, rows, leads or self.leads)
        return point_metrics(a, p, n)

    def fold_scores(self, model: str, series: int) -> list[float]:
        """P50 MAE of ``model`` on each rolling fold of the selection window, oldest first."""
        out = []
        for fold in np.array_split(np.arange(len(self.select_targets)), self.folds):
            a, p, _ = self._points_at(model, fold, np.array([series]), self.leads)
            out.append(metrics.mae(a, p[:, 1]) if len(a) else float("nan"))
        return out

    def fold_mean(self, model: str, series: int) -> float:
        scores = self.fold_scores(model, series)
        return float(np.mean(scores)) if np.isfinite(scores).all() else float("nan")

    def champions(self) -> dict[int, str]:
        """Series index -> the candidate with the lowest mean MAE over the selection folds
        (among those with test points); naive-1d when none could be scored."""
        chosen = {}
        for s in range(self.grid.n_series):
            best, best_mae = BASELINE, np.inf
            for model in self.candidates:
                mae = self.fold_mean(model, s)
                test_points = self.score(model, "test", [s])["points"]
                if np.isfinite(mae) and test_points and mae < best_mae:
                    best, best_mae = model, mae
            chosen[s] = best
        return chosen

    def choice(self) -> list[dict]:
        """Per series: the champion, each candidate's fold MAEs, and what ``blend`` averages."""
        chosen = self.champions()
        return [
            {
                "series": key,
                "champion": chosen[s],
                "blend_of": list(self.blended.get(s, ())),
                "fold_mae": {
                    m: [_finite(v) for v in self.fold_scores(m, s)] for m in self.candidates
                },
            }
            for s, key in enumerate(self.series_keys())
        ]

    def add_blend(self) -> None:
        """Add ``blend``: per series the mean of the two learned families (not the naive ones,
        whose mean with a better model only drags it back) with the lowest fold means."""
        families = [m for m in self.candidates if m not in (BLEND, *NAIVE)]
        if len(families) < 2:
            return
        blend = {lead: np.full_like(self.forecasts[BASELINE][lead], np.nan) for lead in self.leads}
        for s in range(self.grid.n_series):
            ranked = sorted(
                (mean, i, m)
                for i, m in enumerate(families)
                if np.isfinite(mean := self.fold_mean(m, s))
            )
            if len(ranked) < 2:
                continue
            a, b = ranked[0][2], ranked[1][2]
            self.blended[s] = (a, b)
            for lead in self.leads:
                blend[lead][s] = (self.forecasts[a][lead][s] + self.forecasts[b][lead][s]) / 2
        self.forecasts[BLEND] = blend
        reference = tuple(m for m in self.models if m == REFERENCE)
        self.models = (*self.candidates, BLEND, *reference)

    def champion_score(self, window: str = "test") -> dict[str, float]:
        """Metrics of each series' champion, pooled over series."""
        chosen = self.champions()
        parts = [
            self._points(model, window, np.array([s]), self.leads) for s, model in chosen.items()
        ]
        a, p, n = (np.concatenate(x) for x in zip(*parts, strict=True))
        return point_metrics(a, p, n)

    def champion_name(self) -> str:
        """The model chosen for most series (the only one for a single series)."""
        chosen = list(self.champions().values())
        models = self.candidates
        return max(models, key=lambda m: (chosen.count(m), -models.index(m)))

    def ratio_to_reference(self, scored: dict[str, float]) -> float:
        """A test-window MAE over the reference peer's (NaN without the peer)."""
        if REFERENCE not in self.models:
            return float("nan")
        ref = self.score(REFERENCE)["mae"]
        return scored["mae"] / ref if ref > 0 else float("nan")

    def per_series(self) -> list[dict]:
        """One row per series, model, window and lead (plus every lead pooled as lead None)."""
        rows = []
        keys = self.series_keys()
        for s, key in enumerate(keys):
            for model in self.models:
                for window in ("select", "test"):
                    for lead in (*self.leads, None):
                        m = self.score(model, window, [s], [lead] if lead is not None else None)
                        rows.append(
                            {"series": key, "model": model, "window": window, "lead": lead, **m}
                        )
        return rows

    def summary(self) -> dict:
        """Test-window figures: ``models`` (name -> mae, rmse, rmae, coverage_p10_p90,
        ratio_to_reference), ``champion`` (the model chosen for most series),
        ``champion_score`` (each series' own champion, pooled), ``reference`` (the peer's
        name, None without it) and ``choice`` (per series, see choice)."""
        out = {}
        for model in self.models:
            m = self.score(model)
            out[model] = {k: _finite(m[k]) for k in SUMMARY_KEYS}
            out[model]["ratio_to_reference"] = _finite(self.ratio_to_reference(m))
        best = self.champion_score()
        return {
            "models": out,
            "champion": self.champion_name(),
            "champion_score": {
                **{k: _finite(best[k]) for k in SUMMARY_KEYS},
                "ratio_to_reference": _finite(self.ratio_to_reference(best)),
            },
            "reference": REFERENCE if REFERENCE in self.models else None,
            "choice": self.choice(),
        }


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def backtest_windows(grid: Grid, test_days: int, select_days: int) -> tuple[np.ndarray, np.ndarray]:
    """The selection and test target days: the last ``test_days`` up to the newest day that is
    complete for some series, and the ``select_days`` before them."""
    any_complete = np.flatnonzero(grid.complete.any(axis=0))
    if len(any_complete) == 0:
        raise BacktestError("no complete local day in the data")
    last = grid.day0 + int(any_complete[-1])
    test = np.arange(last - test_days + 1, last + 1)
    select = np.arange(test[0] - select_days, test[0])
    need = 14  # history before the first issue: a week of lags and a week of naive errors
    if select[0] - 1 - grid.day0 < need:
        raise BacktestError(
            f"too short: a backtest of {test_days} test days after {select_days} selection days "
            f"needs at least {test_days + select_days + need + 1} local days, the data has "
            f"{last - grid.day0 + 1} ({day_of(grid.day0)}..{day_of(last)})"
        )
    return select, test


def run_backtest(
    grid: Grid,
    models: Sequence[str] = ZOO,
    *,
    horizon: str = "1d",
    test_days: int = 28,
    select_days: int = 28,
    config: ForecastConfig | None = None,
    factory: Callable[[str, ForecastConfig], Forecaster] = make_model,
    progress: Callable[[str], None] | None = None,
    reference: bool = True,
    folds: int = 2,
) -> BacktestResult:
    """Backtest ``models`` (rolling origin, one issue per day) over the selection and test
    windows, then add their ``blend``. A model that cannot be built (Prophet not installed) is
    skipped with its reason; naive-1d, the baseline of rMAE, always runs; the reference peer
    runs on the test window unless ``reference`` is false."""
    if not 1 <= folds <= select_days:
        raise BacktestError(f"folds must be between 1 and the {select_days} selection days")
    if horizon not in HORIZONS:
        raise BacktestError(f"unknown horizon {horizon!r}; choose from {', '.join(HORIZONS)}")
    leads = HORIZONS[horizon]
    config = config or ForecastConfig()
    if tuple(config.leads) != leads:
        from dataclasses import replace

        config = replace(config, leads=leads)
    select, test = backtest_windows(grid, test_days, select_days)
    targets = np.concatenate([select, test])
    names = list(dict.fromkeys([BASELINE, *models, *([REFERENCE] if reference else [])]))
    built: dict[str, Forecaster] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            built[name] = factory(name, config)
        except ImportError as exc:
            skipped[name] = str(exc)
    ordered = tuple(m for m in ZOO if m in built) + tuple(m for m in built if m not in ZOO)
    shape = (grid.n_series, len(targets), grid.steps, len(QUANTILES))
    forecasts = {m: {lead: np.full(shape, np.nan) for lead in leads} for m in ordered}
    seconds = {m: {"fit": 0.0, "predict": 0.0} for m in ordered}
    fits = dict.fromkeys(ordered, 0)
    index = {int(t): j for j, t in enumerate(targets)}
    issues = sorted({int(t) - lead for t in targets for lead in leads})
    for issue in issues:
        hist = grid.until(issue - grid.day0)
        due = [(lead, issue + lead) for lead in leads if issue + lead in index]
        days = np.array([t for _, t in due], dtype=np.int64)
        slots = days - grid.day0
        weather = {w: v[:, slots] for w, v in grid.weather.items()}
        for name in ordered:
            if name == REFERENCE and days.max() < test[0]:
                continue  # fit once on the history before the test window
            model = built[name]
            if model.fitted_until is None or issue - model.fitted_until >= model.refit_days:
                start = time.perf_counter()
                model.fit(hist)
                seconds[name]["fit"] += time.perf_counter() - start
                fits[name] += 1
                if progress:
                    progress(f"{name}: fit for issues from {day_of(issue)}")
            start = time.perf_counter()
            pred = model.predict(hist, days, weather)
            seconds[name]["predict"] += time.perf_counter() - start
            for j, (lead, t) in enumerate(due):
                forecasts[name][lead][:, index[t]] = pred[:, j]
    result = BacktestResult(
        grid=grid,
        horizon=horizon,
        leads=leads,
        models=ordered,
        select_targets=select,
        test_targets=test,
        forecasts=forecasts,
        seconds=seconds,
        fits=fits,
        skipped=skipped,
        folds=folds,
    )
    result.add_blend()
    return result
