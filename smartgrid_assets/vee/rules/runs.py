"""`flat_line` and `zero_run`: long runs of one repeated value on the delivered channel.

A run is a sequence of contiguous intervals (each starting where the previous one ends) of
one meter-channel with identical non-zero values (|diff| <= `flat_line_tolerance_kwh`:
`flat_line`) or exact zeros (`zero_run`). A run lasting at least `flat_line_min_minutes` /
`zero_run_min_minutes` marks every one of its rows `S`. Runs are computed over the whole
input, so a run that starts in the context day and crosses midnight is seen. The `received`
channel is exempt: zero export at night is normal. Likewise a solar meter imports nothing
while it exports, so a `delivered` zero at a slot where the `received` channel reads more
than zero is no part of a zero run (a dead meter or an outage reads zero on both).
"""

from __future__ import annotations

import numpy as np

from ..arrays import run_flags, same_as_previous
from ..config import VeeConfig

US_PER_MINUTE = 60_000_000


def contiguous(gid: np.ndarray, ts_us: np.ndarray, interval_minutes: np.ndarray) -> np.ndarray:
    """True where a row starts exactly where the previous row of its group ends."""
    link = same_as_previous(gid)
    if len(gid) > 1:
        ts = np.asarray(ts_us, dtype=np.int64)
        interval = np.asarray(interval_minutes)
        if interval.min() == interval.max():
            ends = ts[:-1] + int(interval[0]) * US_PER_MINUTE
        else:
            ends = interval[:-1].astype(np.int64)
            ends *= US_PER_MINUTE
            ends += ts[:-1]
        link[1:] &= ts[1:] == ends
    return link


def flat_line(
    kwh: np.ndarray,
    link: np.ndarray,
    interval_minutes: np.ndarray,
    eligible: np.ndarray,
    config: VeeConfig,
) -> np.ndarray:
    """True on rows of a long run of identical non-zero values (`link` from `contiguous`)."""
    kwh = np.asarray(kwh, dtype=np.float64)
    member = eligible & (kwh != 0)
    same_value = np.zeros(len(kwh), dtype=bool)
    if len(kwh) > 1:
        diff = np.subtract(kwh[1:], kwh[:-1])
        same_value[1:] = np.abs(diff, out=diff) <= config.flat_line_tolerance_kwh
        del diff
    same_value &= link
    return run_flags(member, same_value, interval_minutes, config.flat_line_min_minutes)


def zero_run(
    kwh: np.ndarray,
    link: np.ndarray,
    interval_minutes: np.ndarray,
    eligible: np.ndarray,
    config: VeeConfig,
) -> np.ndarray:
    """True on rows of a long run of exact zeros (`link` from `contiguous`)."""
    member = eligible & (np.asarray(kwh) == 0)
    return run_flags(member, link, interval_minutes, config.zero_run_min_minutes)


def exporting(received_key: np.ndarray, key: np.ndarray, kwh: np.ndarray) -> np.ndarray:
    """True where the reading with sort key `received_key` exists and is > 0.

    `key` / `kwh` are all readings sorted by key; `received_key` is the key of the received
    channel at the slot of each delivered reading asked about.
    """
    if len(key) == 0:
        return np.zeros(len(received_key), dtype=bool)
    pos = np.searchsorted(key, received_key)
    at = np.minimum(pos, len(key) - 1)
    return (pos < len(key)) & (key[at] == received_key) & (kwh[at] > 0)
