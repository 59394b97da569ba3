"""`install_period`: a reading outside the meter's [installed_at, removed_at)."""

from __future__ import annotations

import numpy as np

#: Stand-in for a null `removed_at` (still installed).
NEVER = np.iinfo(np.int64).max


def outside_install(
    ts_us: np.ndarray, installed_us: np.ndarray, removed_us: np.ndarray
) -> np.ndarray:
    """True where ts < installed_at or ts >= removed_at (use NEVER for a null removed_at)."""
    ts = np.asarray(ts_us, dtype=np.int64)
    return (ts < installed_us) | (ts >= removed_us)
