"""`spike`: a reading far above the meter's own history and both its neighbours.

Fires when all hold:
- robust z-score against the meter-channel's non-zero readings in the input (context
  included), (kwh - median) / (MAD x 1.4826), is above `spike_z`. Zeros are left out of the
  statistics: a solar meter exports nothing at night and imports nothing while the sun
  shines, and with half its readings at zero the median and MAD would make every cloud edge
  a "spike";
- kwh > `spike_neighbour_ratio` x max(previous, next reading of the meter-channel);
- kwh > `spike_min_kwh`.
A high but normal peak (an evening ramp) has high neighbours and does not fire. The reading
is kept as read, quality `S`.
"""

from __future__ import annotations

import numpy as np

from ..arrays import SortedGroups, following, previous
from ..config import VeeConfig

MAD_TO_SIGMA = 1.4826


def robust_z(
    kwh: np.ndarray,
    gid: np.ndarray,
    n_groups: int,
    groups: SortedGroups | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Robust z-score of each reading within its group (rows sorted by `gid`).

    Median and MAD are of the group's non-zero readings. A group with zero MAD gives +/-inf
    for readings off its median (0 on it). `groups` may pass the already sorted values
    (`SortedGroups(kwh, gid, n_groups)`) to save a sort; with `rows` (indices), only the
    scores of those rows are returned.
    """
    kwh = np.asarray(kwh, dtype=np.float64)
    if groups is None:
        groups = SortedGroups(kwh, gid, n_groups)
    group_median = groups.median(exclude_zero=True)
    group_scale = groups.mad(group_median, exclude_zero=True)
    g = np.asarray(gid)
    if rows is not None:
        kwh, g = kwh[rows], g[rows]
    deviation = kwh - group_median[g]
    scale = group_scale[g] * MAD_TO_SIGMA
    with np.errstate(divide="ignore", invalid="ignore"):
        z = deviation / scale
    return np.where((deviation == 0) | np.isnan(deviation), 0.0, z)


def spike(
    kwh: np.ndarray,
    gid: np.ndarray,
    n_groups: int,
    same_prev: np.ndarray,
    config: VeeConfig,
    groups: SortedGroups | None = None,
) -> np.ndarray:
    """True on spikes. Rows sorted by group and time; `same_prev` marks rows whose previous
    row is in the same group; `groups` as in `robust_z`."""
    kwh = np.asarray(kwh, dtype=np.float64)
    out = np.zeros(len(kwh), dtype=bool)
    if len(kwh) == 0:
        return out
    # the cheap neighbour tests first; the z-score only for the rows that pass them
    neighbour = previous(kwh, same_prev)
    np.fmax(neighbour, following(kwh, same_prev), out=neighbour)
    with np.errstate(invalid="ignore"):
        hit = ~np.isnan(neighbour)
        hit &= kwh > np.multiply(neighbour, config.spike_neighbour_ratio, out=neighbour)
        hit &= kwh > config.spike_min_kwh
    del neighbour
    rows = np.flatnonzero(hit)
    del hit
    if len(rows):
        z = robust_z(kwh, gid, n_groups, groups, rows)
        out[rows[z > config.spike_z]] = True
    return out
