"""`profile_outlier`: an IsolationForest score on daily profile features, for what rules miss.

Features of a meter-day (`profile.daily_shapes`): the 24 hourly residuals of its shape against
the meter's expected shape (peers' common residual taken out) and the log of its energy over
the meter's median day. The forest is fitted on every usable meter-day of the input (lookback
included) with a fixed seed, so the same input always gives the same scores. The score is
sklearn's anomaly score, -score_samples: about 0.5 for an ordinary day, towards 1 for a day
unlike the others. Meter-days in the window scoring at least `outlier_min_score` are reported
as `info` (an analyst's lead, never an alert); `detect` drops those a rule-based event of the
same meter already covers. Consecutive days merge into one event like any other.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .config import PROFILE_OUTLIER, DetectorConfig
from .events import candidates, evidence_json
from .frame import Observed
from .profile import DailyShapes, daily_shapes

#: fewer usable meter-days than this and there is nothing to learn "ordinary" from
MIN_SAMPLES = 14


def day_features(shapes: DailyShapes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (N, 25), meter row, day index) of every usable meter-day."""
    valid = ~np.isnan(shapes.energy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nanmedian(shapes.energy, axis=1)
        log_level = np.log(np.maximum(shapes.energy, 1e-6) / np.maximum(level, 1e-6)[:, None])
    row, day = np.nonzero(valid)
    features = np.column_stack([np.nan_to_num(shapes.residual[row, day]), log_level[row, day]])
    return features, row, day


def outlier_scores(features: np.ndarray, judged: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """IsolationForest anomaly score (0..1, about 0.5 ordinary) of the `judged` rows, the
    forest fitted on every row."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=config.outlier_trees, random_state=config.outlier_seed)
    forest.fit(features)
    return -forest.score_samples(features[judged])


def profile_outlier(
    obs: Observed,
    config: DetectorConfig,
    start_us: int,
    end_us: int,
    tz: str,
    shapes: DailyShapes | None = None,
) -> pd.DataFrame:
    """`profile_outlier` events (info) for meter-days overlapping [start_us, end_us);
    `shapes`: `daily_shapes` of the same input, when already computed."""
    if not config.outlier_enabled or not len(obs):
        return candidates([])
    shapes = shapes if shapes is not None else daily_shapes(obs, config, end_us, tz)
    features, row, day = day_features(shapes)
    if len(features) < MIN_SAMPLES:
        return candidates([])
    start, end = shapes.bounds[day], shapes.bounds[day + 1]
    judged = np.flatnonzero((start < end_us) & (end > start_us))
    if not len(judged):
        return candidates([])
    score = np.full(len(features), np.nan)
    score[judged] = outlier_scores(features, judged, config)
    hit = judged[score[judged] >= config.outlier_min_score]
    return candidates(
        [
            {
                "type": PROFILE_OUTLIER,
                "meter_id": obs.meter_ids[shapes.meters[row[i]]],
                "start": int(start[i]),
                "end": int(end[i]),
                "severity": "info",
                "score": float(score[i]),
                "evidence": evidence_json(
                    {
                        "day": shapes.days[day[i]],
                        "isolation_forest_score": float(score[i]),
                        "kwh": float(shapes.energy[row[i], day[i]]),
                        "shape_distance": float(np.abs(features[i, :-1]).sum()),
                        "model": "IsolationForest",
                        "trees": config.outlier_trees,
                        "meter_days_fitted": len(features),
                    }
                ),
            }
            for i in hit
        ]
    )
