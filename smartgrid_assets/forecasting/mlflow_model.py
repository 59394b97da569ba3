"""The global model as an MLflow pyfunc: what a registered version of the gbm holds.

``unwrap_python_model().model`` is the fitted ``GlobalGBM`` (the product forecasts with it).
``predict`` takes a frame of its design-matrix columns (``model.names``, see features) plus a
``level`` column and returns P10 / P50 / P90, for inspection outside the product.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from smartgrid_assets.forecasting.config import QUANTILES


class GbmPyfunc(mlflow.pyfunc.PythonModel):
    def __init__(self, model) -> None:
        self.model = model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        x = model_input[list(self.model.names)].to_numpy(dtype=float)
        level = model_input["level"].to_numpy(dtype=float)
        pred = np.sort(np.column_stack([self.model._predict(q, x) for q in QUANTILES]), axis=1)
        return pd.DataFrame(pred * level[:, None], columns=["p10", "p50", "p90"])
