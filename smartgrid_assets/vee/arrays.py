"""Vectorised helpers on arrays sorted by group (meter-channel) and time.

Conventions used throughout VEE: rows are sorted by an integer group id and time, so each
group is one contiguous segment; `gid` holds dense group numbers 0..n_groups-1 per row.
"""

from __future__ import annotations

import numpy as np


def segment_ids(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids for runs of equal consecutive `keys`, and the start index of each run."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ids = np.cumsum(new, dtype=np.int64) - 1
    return ids, starts


def same_as_previous(gid: np.ndarray) -> np.ndarray:
    """True where the row belongs to the same group as the row before it."""
    out = np.zeros(len(gid), dtype=bool)
    if len(gid) > 1:
        np.equal(gid[1:], gid[:-1], out=out[1:])
    return out


def previous(values: np.ndarray, same_prev: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Value of the previous row of the same group (`fill` at a group's first row)."""
    out = np.full(len(values), fill, dtype=np.float64)
    if len(values) > 1:
        out[1:] = values[:-1]
    out[~same_prev] = fill
    return out


def following(values: np.ndarray, same_prev: np.ndarray, fill: float = np.nan) -> np.ndarray:
    """Value of the next row of the same group (`fill` at a group's last row)."""
    out = np.full(len(values), fill, dtype=np.float64)
    if len(values) > 1:
        out[:-1] = values[1:]
    same_next = np.zeros(len(values), dtype=bool)
    same_next[:-1] = same_prev[1:]
    out[~same_next] = fill
    return out


class SortedGroups:
    """Each group's values as one row of a NaN-padded 2-D array, sorted ascending.

    Rows must be sorted by `gid`. Dense data (groups of similar size: one or two days of
    interval data per meter-channel) take one 2-D sort; ragged data (one group far larger than
    the others) use a lexsort instead. Statistics are then simple index look-ups.
    """

    def __init__(self, values: np.ndarray, gid: np.ndarray, n_groups: int) -> None:
        vals = np.asarray(values, dtype=np.float64)
        sizes = np.bincount(gid, minlength=n_groups) if len(gid) else np.zeros(n_groups, int)
        width = int(sizes.max()) if n_groups else 0
        starts = np.zeros(n_groups, dtype=np.int64)
        if n_groups:
            np.cumsum(sizes[:-1], out=starts[1:])
        if n_groups and int(sizes.min()) == width:
            grid = vals.reshape(n_groups, width).copy()
            grid.sort(axis=1)
            self._flat, self._width = grid.ravel(), width
            self._starts = np.arange(n_groups, dtype=np.int64) * width
        elif n_groups * width <= 2 * len(vals) + 1024:
            pos = np.arange(len(vals), dtype=np.int64) - starts[gid]
            grid = np.full((n_groups, width), np.nan)
            grid[gid, pos] = vals
            grid.sort(axis=1)  # NaN sorts last
            self._flat, self._width = grid.ravel(), width
            self._starts = np.arange(n_groups, dtype=np.int64) * width
        else:
            order = np.lexsort((vals, gid))  # NaN sorts last within each group
            self._flat, self._width = vals[order], None
            self._starts = starts
        self.n_groups = n_groups
        self.counts = sizes - np.bincount(gid, weights=np.isnan(vals), minlength=n_groups).astype(
            np.int64
        )

    def _at(self, group: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return self._flat[self._starts[group] + offset]

    def band_median(self, first: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Median of each group's sorted values at positions [first, first + count)."""
        out = np.full(self.n_groups, np.nan)
        has = np.flatnonzero(count > 0)
        lo = first[has] + (count[has] - 1) // 2
        hi = first[has] + count[has] // 2
        out[has] = 0.5 * (self._at(has, lo) + self._at(has, hi))
        return out

    def median(self) -> np.ndarray:
        """Median per group (NaN for an empty group)."""
        return self.band_median(np.zeros(self.n_groups, dtype=np.int64), self.counts)

    def mad(self, median: np.ndarray) -> np.ndarray:
        """Median absolute deviation from `median` per group (unscaled)."""
        if self._width is None:
            gid = np.repeat(
                np.arange(self.n_groups), np.diff(np.append(self._starts, len(self._flat)))
            )
            return SortedGroups(np.abs(self._flat - median[gid]), gid, self.n_groups).median()
        dev = np.abs(self._flat.reshape(self.n_groups, self._width) - median[:, None])
        dev.sort(axis=1)
        return SortedGroups._from_sorted(dev, self.counts).median()

    @classmethod
    def _from_sorted(cls, grid: np.ndarray, counts: np.ndarray) -> SortedGroups:
        obj = cls.__new__(cls)
        obj.n_groups, width = grid.shape
        obj._flat, obj._width = grid.ravel(), width
        obj._starts = np.arange(obj.n_groups, dtype=np.int64) * width
        obj.counts = counts
        return obj


def group_median(
    values: np.ndarray, gid: np.ndarray, n_groups: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """Median of `values` per group over rows where `valid` (NaN for a group without any).

    Rows must be sorted by `gid`.
    """
    vals = np.asarray(values, dtype=np.float64)
    if valid is not None:
        vals = np.where(valid, vals, np.nan)
    return SortedGroups(vals, gid, n_groups).median()


def run_minutes(member: np.ndarray, link: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Total minutes of the run each member row belongs to (0 for non-members).

    `member` marks rows that may belong to a run; `link[i]` says row i continues the run of
    row i-1 when both are members (same group, contiguous in time, same value...).
    """
    n = len(member)
    out = np.zeros(n, dtype=np.float64)
    if n == 0 or not member.any():
        return out
    cont = member & link
    cont[1:] &= member[:-1]
    cont[0] = False
    start = member & ~cont
    run_id = np.cumsum(start) - 1
    idx = np.flatnonzero(member)
    totals = np.bincount(run_id[idx], weights=minutes[idx].astype(np.float64))
    out[idx] = totals[run_id[idx]]
    return out
