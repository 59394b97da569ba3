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
    """Each group's values sorted ascending, for order statistics by index look-up.

    Rows must be sorted by `gid`. Dense data (groups of similar size: one or two days of
    interval data per meter-channel) become one NaN-padded 2-D array sorted along its rows;
    ragged data (one group far larger than the others) use one lexsort. NaN values are ignored
    (they sort last within their group).
    """

    def __init__(self, values: np.ndarray, gid: np.ndarray, n_groups: int) -> None:
        vals = np.asarray(values, dtype=np.float64)
        gid = np.asarray(gid, dtype=np.int64)
        sizes = np.bincount(gid, minlength=n_groups).astype(np.int64)
        width = int(sizes.max()) if n_groups and len(gid) else 0
        starts = np.zeros(n_groups, dtype=np.int64)
        if n_groups:
            np.cumsum(sizes[:-1], out=starts[1:])
        self.n_groups = n_groups
        self._width: int | None = width
        if n_groups and int(sizes.min()) == width:
            grid = vals.reshape(n_groups, width).copy()
        elif n_groups * width <= 2 * len(vals) + 1024:
            # each group's values left-aligned in its row, NaN after them (few such cells)
            row_start = np.arange(n_groups, dtype=np.int64) * width
            padded = np.flatnonzero(sizes < width)
            pads = rows_of(padded, row_start + sizes, row_start + width)
            flat = np.empty(n_groups * width)
            if len(pads):
                filled = np.ones(len(flat), dtype=bool)
                filled[pads] = False
                flat[filled] = vals
                del filled
                flat[pads] = np.nan
            else:
                flat[:] = vals
            grid = flat.reshape(n_groups, width)
        else:
            grid = None
        if grid is not None:
            grid.sort(axis=1)
            self._flat = grid.ravel()
            self._starts = np.arange(n_groups, dtype=np.int64) * width
            self._gid = None
        else:
            order = np.lexsort((vals, gid))
            self._flat, self._width, self._starts, self._gid = vals[order], None, starts, gid
        self.counts = self.count(~np.isnan(self._flat))

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Per group, how many sorted values a mask (aligned with the sorted values) selects."""
        if self._width is not None:
            return mask.reshape(self.n_groups, self._width).sum(axis=1, dtype=np.int64)
        return np.bincount(self._gid, weights=mask, minlength=self.n_groups).astype(np.int64)

    def count_at_most(self, limit: np.ndarray) -> np.ndarray:
        """Per group, how many of its values are <= that group's `limit` (NaN never counts)."""
        limit = np.asarray(limit, dtype=np.float64)
        if self._width is not None:
            grid = self._flat.reshape(self.n_groups, self._width)
            return (grid <= limit[:, None]).sum(axis=1, dtype=np.int64)
        return self.count(self._flat <= limit[self._gid])

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """(smallest, largest) value per group, NaN for a group without values."""
        low = np.full(self.n_groups, np.nan)
        high = np.full(self.n_groups, np.nan)
        has = np.flatnonzero(self.counts > 0)
        low[has] = self._at(has, np.zeros(len(has), dtype=np.int64))
        high[has] = self._at(has, self.counts[has] - 1)
        return low, high

    def _at(self, group: np.ndarray, offset: np.ndarray) -> np.ndarray:
        return self._flat[self._starts[group] + offset]

    def band_median(
        self,
        first: np.ndarray,
        count: np.ndarray,
        skip_at: np.ndarray | None = None,
        skip: np.ndarray | None = None,
    ) -> np.ndarray:
        """Median of each group's sorted values at positions [first, first + count).

        With `skip_at` / `skip`, the `skip` values starting at position `skip_at` are left
        out (and `count` must not include them).
        """
        out = np.full(self.n_groups, np.nan)
        has = np.flatnonzero(count > 0)
        lo = first[has] + (count[has] - 1) // 2
        hi = first[has] + count[has] // 2
        if skip is not None and skip_at is not None:
            at, n = skip_at[has], skip[has]
            lo = np.where(lo >= at, lo + n, lo)
            hi = np.where(hi >= at, hi + n, hi)
        out[has] = 0.5 * (self._at(has, lo) + self._at(has, hi))
        return out

    def median(self, exclude_zero: bool = False) -> np.ndarray:
        """Median per group (NaN for a group without values), optionally of non-zero values."""
        start = np.zeros(self.n_groups, dtype=np.int64)
        if not exclude_zero:
            return self.band_median(start, self.counts)
        negative = self.count(self._flat < 0)
        zero = self.count(self._flat == 0)
        return self.band_median(start, self.counts - zero, skip_at=negative, skip=zero)

    def mad(self, median: np.ndarray, exclude_zero: bool = False) -> np.ndarray:
        """Median absolute deviation from `median` per group (unscaled), optionally of the
        non-zero values only."""
        if self._width is None:
            dev = np.abs(self._flat - median[self._gid])
            if exclude_zero:
                dev[self._flat == 0] = np.nan
            return SortedGroups(dev, self._gid, self.n_groups).median()
        dev = np.abs(self._flat.reshape(self.n_groups, self._width) - median[:, None])
        if exclude_zero:
            dev[self._flat.reshape(dev.shape) == 0] = np.nan
        dev.sort(axis=1)
        counts = (~np.isnan(dev)).sum(axis=1, dtype=np.int64)
        start = np.zeros(self.n_groups, dtype=np.int64)
        out = np.full(self.n_groups, np.nan)
        has = np.flatnonzero(counts > 0)
        lo, hi = start[has] + (counts[has] - 1) // 2, start[has] + counts[has] // 2
        out[has] = 0.5 * (dev[has, lo] + dev[has, hi])
        return out


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


def group_ends(starts: np.ndarray, n: int) -> np.ndarray:
    """End row (exclusive) of each segment, from the segments' start rows over n rows."""
    ends = np.empty(len(starts), dtype=np.int64)
    ends[:-1] = starts[1:]
    if len(starts):
        ends[-1] = n
    return ends


def rows_of(selected: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Row indices (ascending) of the `selected` groups (group indices, ascending), whose rows
    are [starts, ends)."""
    lengths = ends[selected] - starts[selected]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(lengths) - lengths
    return np.repeat(starts[selected] - first, lengths) + np.arange(total, dtype=np.int64)


def run_flags(
    member: np.ndarray, link: np.ndarray, minutes: np.ndarray, threshold: float
) -> np.ndarray:
    """`member & (run_minutes(member, link, minutes) >= threshold)`, without per-row totals.

    Only runs of two or more rows are summed; a single-row run lasts its own minutes.
    """
    n = len(member)
    if n == 0:
        return np.zeros(0, dtype=bool)
    cont = member & link
    cont[1:] &= member[:-1]
    cont[0] = False
    out = member & (np.asarray(minutes) >= threshold)
    tails = np.flatnonzero(cont)  # rows continuing the run of the row before them
    if len(tails) == 0:
        return out
    rows = np.union1d(tails - 1, tails)  # every row of a run of >= 2 rows, ascending
    run_id = np.cumsum(~cont[rows]) - 1
    totals = np.bincount(run_id, weights=np.asarray(minutes)[rows].astype(np.float64))
    out[rows] = totals[run_id] >= threshold
    return out
