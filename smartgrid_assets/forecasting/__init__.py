"""Day-ahead load forecasts per feeder, substation and system, with P10/P50/P90 bands.

Plain Python on Arrow/pandas/scikit-learn (no Dagster). A forecast for local day D is issued at
00:00 local on D-1 from history before then and the weather forecast issued then:

- ``forecast_day_ahead(history, weather_forecast, target_day, tz)`` -> LOAD_FORECASTS rows;
- ``forecast_accuracy(forecasts, actuals)`` -> FORECAST_ACCURACY rows;
- ``run_backtest(grid, models)`` -> rolling-origin backtest, model choice and metrics;
- ``issue_time`` / ``target_hours`` give the issue instant and the target day's UTC hours.

Modules: timing (issue and hours), grid (series x local day x interval), models (the
``Forecaster`` interface, seasonal naive), features and gbm (the global quantile model),
prophet_model (optional Prophet), backtest, series (a CSV export as a grid), metrics, accuracy,
reconcile (bottom-up), registry (MLflow tracking and the champion), day_ahead (FEEDER_HOURLY in,
LOAD_FORECASTS out).
"""

from smartgrid_assets.forecasting import metrics
from smartgrid_assets.forecasting.accuracy import forecast_accuracy
from smartgrid_assets.forecasting.backtest import BacktestResult, run_backtest
from smartgrid_assets.forecasting.config import HORIZONS, MODELS, QUANTILES, ForecastConfig
from smartgrid_assets.forecasting.day_ahead import forecast_day_ahead
from smartgrid_assets.forecasting.features import FEATURES
from smartgrid_assets.forecasting.grid import Grid, build_grid
from smartgrid_assets.forecasting.models import ZOO, Forecaster, make_model
from smartgrid_assets.forecasting.timing import issue_time, target_hours

__all__ = [
    "FEATURES",
    "HORIZONS",
    "MODELS",
    "QUANTILES",
    "ZOO",
    "BacktestResult",
    "ForecastConfig",
    "Forecaster",
    "Grid",
    "build_grid",
    "forecast_accuracy",
    "forecast_day_ahead",
    "issue_time",
    "make_model",
    "metrics",
    "run_backtest",
    "target_hours",
]
