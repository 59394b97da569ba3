"""Peer groups: what meters that share a transformer, class or region do in common, so a
detector judges a meter against its own history with the shared change (weather, holidays)
taken out."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


def peer_medians(
    values: np.ndarray, has_data: np.ndarray, keys: list[np.ndarray], min_peers: int
) -> tuple[np.ndarray, np.ndarray]:
    """(median of `values` over each meter's peers along axis 0, which meters got one).

    `keys` are peer keys from the finest to the coarsest; a meter takes the finest whose group
    has at least `min_peers` meters with data.
    """
    m = values.shape[0]
    medians = np.full(values.shape, np.nan)
    done = np.zeros(m, dtype=bool)
    for key in keys:
        codes, uniques = pd.factorize(pd.Series(key, dtype=object))
        for g in range(len(uniques)):
            members = (codes == g) & has_data
            target = (codes == g) & ~done
            if members.sum() < min_peers or not target.any():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                medians[target] = np.nanmedian(values[members], axis=0)[None]
            done |= target
    return medians, done
