"""Model names, quantiles and the knobs of the forecasts, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import dataclass

#: the models ``load_forecasts`` issues for every series (naive-1d is the accuracy baseline)
MODELS = ("seasonal_naive_1d", "seasonal_naive_7d", "gbm", "ridge")
NAIVE_MODELS = {"seasonal_naive_1d": 2, "seasonal_naive_7d": 7}  # model -> source day D-k
QUANTILES = (0.1, 0.5, 0.9)
LEVELS = ("transformer", "feeder", "substation", "system")
HORIZONS = {"1d": (1,), "48h": (0, 1)}  # horizon -> leads in days after the issue day


@dataclass(frozen=True)
class ForecastConfig:
    """How much history each model reads and how the models are fit.

    levels: the FEEDER_HOURLY levels that get forecasts.
    train_days: local days before the issue whose intervals train the gbm.
    residual_days: local days of naive errors behind the naive P10/P90 bands.
    min_days_gbm: complete local days of history a series needs before gbm (or ridge)
        forecasts it.
    calibration_days: newest training days held out to calibrate the gbm P10/P90 bands
        (conformal) and to score a fit against the champion.
    refit_days: the gbm and Prophet are refit when this many days passed since their last fit.
    leads: days between the issue day and the target days the gbm is trained for (1: the
        day-ahead target D+1 of an issue at 00:00 of D; 0: day D itself, for 48 h horizons).
    max_train_rows: the gbm trains on at most this many intervals (a seeded sample beyond: a
        global model of similar series learns as much from a sample, and fit time grows with
        the rows).
    prophet_train_days: local days of history each Prophet fit reads.
    The rest are HistGradientBoostingRegressor parameters (``loss`` of the gbm's P50: its bands
    are conformal, so no quantile loss is needed); random_state makes fits repeatable;
    n_threads caps OpenMP threads during gbm fits (None: the library default, all cores).
    """

    levels: tuple[str, ...] = ("feeder", "substation", "system")
    train_days: int = 1092
    residual_days: int = 28
    min_days_gbm: int = 8
    calibration_days: int = 14
    refit_days: int = 7
    leads: tuple[int, ...] = (1,)
    max_train_rows: int = 100_000
    prophet_train_days: int = 730
    loss: str = "squared_error"
    max_iter: int = 100
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 20
    l2_regularization: float = 0.0
    max_bins: int = 255
    random_state: int = 0
    n_threads: int | None = 1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.levels) - set(LEVELS))
        if unknown or not self.levels:
            raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {self.levels}")
        for name in (
            "train_days",
            "residual_days",
            "min_days_gbm",
            "calibration_days",
            "refit_days",
            "max_iter",
            "max_train_rows",
            "prophet_train_days",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.leads or min(self.leads) < 0:
            raise ValueError(f"leads must be non-negative day offsets, got {self.leads}")

    @property
    def lookback_days(self) -> int:
        """Local days of history read before the issue: the windows plus the lags."""
        return max(self.train_days, self.residual_days) + 30

    @property
    def dependency_days(self) -> int:
        """Local days before the target day a forecast needs: the naive bands and the lags."""
        return max(self.residual_days, 28) + 8

    def gbm_params(self) -> dict:
        """The parameters an MLflow run logs for a gbm fit."""
        return {
            k: getattr(self, k)
            for k in (
                "train_days",
                "calibration_days",
                "min_days_gbm",
                "leads",
                "max_train_rows",
                "loss",
                "max_iter",
                "learning_rate",
                "max_leaf_nodes",
                "min_samples_leaf",
                "l2_regularization",
                "max_bins",
                "random_state",
            )
        }
