"""Model names, quantiles and the knobs of the day-ahead forecast, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass

MODELS = ("seasonal_naive_1d", "seasonal_naive_7d", "gbm")
NAIVE_MODELS = {"seasonal_naive_1d": 2, "seasonal_naive_7d": 7}  # model -> source day D-k
QUANTILES = (0.1, 0.5, 0.9)
LEVELS = ("transformer", "feeder", "substation", "system")


@dataclass(frozen=True)
class ForecastConfig:
    """How much history each model reads and how the global gradient-boosted model is fit.

    levels: the FEEDER_HOURLY levels that get forecasts.
    train_days: local days before the target day whose hours train the gbm (newest is D-2).
    residual_days: local days of naive errors behind the naive P10/P90 bands.
    min_days_gbm: complete local days of history a series needs before gbm forecasts it.
    calibration_days: newest training days held out to calibrate the gbm P10/P90 bands.
    heating_base_c, cooling_base_c: degree-hour bases of the heating / cooling features.
    The rest are HistGradientBoostingRegressor parameters; random_state makes fits repeatable;
    n_threads caps OpenMP threads during gbm fits (None: the library default, all cores).
    """

    levels: tuple[str, ...] = ("feeder", "substation", "system")
    train_days: int = 56
    residual_days: int = 28
    min_days_gbm: int = 8
    calibration_days: int = 7
    heating_base_c: float = 15.0
    cooling_base_c: float = 22.0
    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    random_state: int = 0
    n_threads: int | None = 1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.levels) - set(LEVELS))
        if unknown or not self.levels:
            raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {self.levels}")
        for name in ("train_days", "residual_days", "min_days_gbm", "calibration_days", "max_iter"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @property
    def lookback_days(self) -> int:
        """Local days of history read before the target day: the windows plus lags to D-8."""
        return max(self.train_days, self.residual_days) + 8
