"""Day-ahead load forecasts per feeder, substation and system, with P10/P50/P90 bands.

Plain Python on Arrow/pandas/scikit-learn (no Dagster). A forecast for local day D is issued at
00:00 local on D-1 from history before then and the weather forecast issued then:

- ``forecast_day_ahead(history, weather_forecast, target_day, tz)`` -> LOAD_FORECASTS rows;
- ``forecast_accuracy(forecasts, actuals)`` -> FORECAST_ACCURACY rows;
- ``issue_time`` / ``target_hours`` give the issue instant and the target day's UTC hours.

Modules: timing (issue and hours), panel (history cut at the issue), naive (seasonal naive
models and bands), features (design matrix, forecast weather), gbm (global quantile model),
metrics, accuracy, day_ahead (orchestration).
"""

from smartgrid_assets.forecasting import metrics
from smartgrid_assets.forecasting.accuracy import forecast_accuracy
from smartgrid_assets.forecasting.config import MODELS, QUANTILES, ForecastConfig
from smartgrid_assets.forecasting.day_ahead import forecast_day_ahead
from smartgrid_assets.forecasting.features import FEATURES
from smartgrid_assets.forecasting.timing import issue_time, target_hours

__all__ = [
    "FEATURES",
    "MODELS",
    "QUANTILES",
    "ForecastConfig",
    "forecast_accuracy",
    "forecast_day_ahead",
    "issue_time",
    "metrics",
    "target_hours",
]
