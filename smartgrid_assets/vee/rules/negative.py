"""`negative`: negative energy where none can flow.

Negative kWh is suspect on a meter without solar (either channel) and on a `received`
(export) channel, which counts energy as positive. A solar meter's single-channel `delivered`
export may go negative (net metering) and is left to `limit.low`.
"""

from __future__ import annotations

import numpy as np


def negative(kwh: np.ndarray, has_solar: np.ndarray, received: np.ndarray) -> np.ndarray:
    """True where kwh < 0 and (the meter has no solar or the channel is `received`)."""
    return (np.asarray(kwh) < 0) & (
        ~np.asarray(has_solar, dtype=bool) | np.asarray(received, dtype=bool)
    )
