"""`future`: an interval that starts at or after the run's "now" (`as_of`)."""

from __future__ import annotations

import numpy as np


def future(ts_us: np.ndarray, as_of_us: int) -> np.ndarray:
    """True where ts >= as_of (both UTC microseconds)."""
    return np.asarray(ts_us, dtype=np.int64) >= as_of_us
