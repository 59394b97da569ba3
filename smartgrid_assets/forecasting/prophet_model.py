"""Prophet per series, as a utility would configure it: the peer the global model must beat.

Optional: ``prophet`` is imported when a ``ProphetModel`` is built, and a missing install raises
ImportError with the command that adds it. One Prophet per series, fit on the newest
``prophet_train_days`` local days before the issue and refit every ``refit_days`` (weekly, not
daily: a fit takes seconds per series). Its time axis is the grid's local clock (day + interval),
so daily seasonality follows local time across DST. Configuration:

- yearly seasonality when the history spans a year or more, weekly seasonality, and daily
  seasonality conditional on working days and days off (weekends, public holidays) with enough
  Fourier terms for an intraday load profile;
- the public holidays of the utility's time zone (features.calendar) as holiday effects;
- each weather variable ``w`` as the regressors ``w`` and ``w**2`` (load is U-shaped in
  temperature), from the history and the day-ahead weather of the target days;
- P10 / P50 / P90 from Prophet's 80 % uncertainty interval and its point forecast.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from smartgrid_assets.features.calendar import holiday_calendar
from smartgrid_assets.forecasting.config import QUANTILES, ForecastConfig
from smartgrid_assets.forecasting.grid import Grid, holiday_flags
from smartgrid_assets.forecasting.models import Forecaster, blank

INSTALL_HINT = (
    "Prophet is not installed: pip install 'smartgrid-analytics[prophet]' (or pip install "
    "prophet), or leave prophet out of the models"
)


def _import_prophet():
    logging.getLogger("prophet.plot").disabled = True  # "Importing plotly failed" otherwise
    logging.getLogger("prophet").setLevel(logging.WARNING)
    logging.getLogger("cmdstanpy").disabled = True  # a line per fit otherwise
    try:
        from prophet import Prophet
    except ImportError as exc:  # also a broken install (e.g. no Stan backend)
        raise ImportError(f"{INSTALL_HINT} ({exc})") from exc
    return Prophet


def _regressor_names(weather: Sequence[str]) -> dict[str, tuple[str, str]]:
    return {w: (f"w{i}", f"w{i}_sq") for i, w in enumerate(weather)}


def _key(hist: Grid, s: int) -> tuple:
    return tuple(hist.series.iloc[s].tolist())


class ProphetModel(Forecaster):
    name = "prophet"

    def __init__(self, config: ForecastConfig | None = None) -> None:
        self.config = config or ForecastConfig()
        self.refit_days = self.config.refit_days
        self._prophet = _import_prophet()
        self.fitted_models: dict[tuple, object] = {}  # series key -> fitted Prophet
        self.weather: tuple[str, ...] = ()
        self.means: dict[str, float] = {}

    def _frame(self, hist: Grid, s: int, days: np.ndarray, values: np.ndarray | None, weather):
        """Rows of series ``s`` for day slots ``days`` (absolute day numbers) x intervals."""
        n_k = hist.steps
        day = np.repeat(days, n_k)
        k = np.tile(np.arange(n_k), len(days))
        ds = pd.to_datetime(day, unit="D") + pd.to_timedelta(k * hist.interval_minutes, unit="m")
        off = (((day + 3) % 7) >= 5) | holiday_flags(day, hist.tz)
        frame = pd.DataFrame({"ds": ds, "workday": ~off, "dayoff": off})
        if values is not None:
            frame["y"] = values.reshape(-1)
        for w, (a, b) in _regressor_names(self.weather).items():
            v = np.asarray(weather[w], dtype=float).reshape(-1)
            v = np.where(np.isnan(v), self.means.get(w, np.nanmean(v) if len(v) else 0.0), v)
            frame[a], frame[b] = v, v**2
        return frame

    def _holidays(self, hist: Grid, first: int, last: int) -> pd.DataFrame | None:
        years = range(pd.Timestamp(first, unit="D").year, pd.Timestamp(last, unit="D").year + 2)
        cal = holiday_calendar(hist.tz, years)
        if not cal:
            return None
        return pd.DataFrame(
            {"holiday": [str(n) for n in cal.values()], "ds": pd.to_datetime(list(cal.keys()))}
        )

    def fit(self, hist: Grid) -> ProphetModel:
        super().fit(hist)
        self.fitted_models = {}
        self.weather = tuple(sorted(hist.weather))
        first = max(hist.n_days - self.config.prophet_train_days, 0)
        days = hist.day0 + np.arange(first, hist.n_days)
        recent = {w: v[:, first:] for w, v in hist.weather.items()}
        self.means = {
            w: float(np.nanmean(v)) if np.isfinite(v).any() else 0.0 for w, v in recent.items()
        }
        holidays = self._holidays(hist, int(days[0]), int(days[-1])) if len(days) else None
        for s in range(hist.n_series):
            if hist.complete[s, first:].sum() < self.config.min_days_gbm:
                continue
            frame = self._frame(
                hist, s, days, hist.values[s, first:], {w: v[s] for w, v in recent.items()}
            ).dropna(subset=["y"])
            model = self._prophet(
                yearly_seasonality=len(days) >= 365,
                weekly_seasonality=True,
                daily_seasonality=False,
                holidays=holidays,
                interval_width=QUANTILES[-1] - QUANTILES[0],
                uncertainty_samples=300,
            )
            for cond in ("workday", "dayoff"):
                model.add_seasonality(
                    name=f"daily_{cond}", period=1, fourier_order=10, condition_name=cond
                )
            for a, b in _regressor_names(self.weather).values():
                model.add_regressor(a)
                model.add_regressor(b)
            np.random.seed(self.config.random_state)  # the uncertainty samples
            model.fit(frame)
            self.fitted_models[_key(hist, s)] = model
        return self

    def predict(
        self, hist: Grid, targets: Sequence[int], weather: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        targets, out = blank(hist, targets)
        for s in range(hist.n_series if len(targets) else 0):
            model = self.fitted_models.get(_key(hist, s))
            if model is None:
                continue
            target_weather = {
                w: weather[w][s] if w in weather else np.full((len(targets), hist.steps), np.nan)
                for w in self.weather
            }
            frame = self._frame(hist, s, targets, None, target_weather)
            np.random.seed(self.config.random_state)
            fc = model.predict(frame)
            pred = (
                fc[["yhat_lower", "yhat", "yhat_upper"]]
                .to_numpy()
                .reshape(len(targets), hist.steps, 3)
            )
            out[s] = np.sort(pred, axis=-1)
        return out
