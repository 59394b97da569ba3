"""VEE: validation, estimation and editing of interval readings (plain Python, no Dagster).

``apply(readings, meters, window_start=..., window_end=..., tz=..., as_of=..., config=...)``
returns a `VeeResult`: the cleaned readings of the window (CLEANED_READINGS with its strings
as dictionaries, `CLEANED_ARROW`, sorted by meter_id, channel, ts), a data-sufficiency table
per meter, channel and local day (`SUFFICIENCY`), and how many window rows each rule fired on.
One module per rule family lives in `rules/`; `estimation.py` fills short gaps; `engine.py`
composes them, vectorised.

Calling it from an asset:

- pass the raw readings of the window **plus one local day of context before it** (more days
  give a better profile estimate; readings after the window may be passed too and serve as the
  right neighbour of a gap at the end of the window). Pass them as landed, duplicates
  included: VEE picks the latest delivery;
- `window_start` / `window_end`: UTC instants of the partition's local-day bounds in
  `SMARTGRID_TZ` (a multi-day window works; the sufficiency table has one row per local day);
- `as_of`: the run's "now", recorded for reproducibility. Readings at or after it are
  `future`; slots that have not ended by then are not expected (no gap, no estimate);
- `meters`: the registry (at least meter_id, customer_class, has_solar, installed_at,
  removed_at); readings of unknown meters are dropped and counted in `rows_dropped`;
- a large input may be split with `meter_shards` and the shards cleaned in parallel: the
  concatenated outputs are the unsharded result;
- `VEE_VERSION` changes whenever a rule's behaviour does: a natural asset `code_version`.
"""

from . import estimation, flags, timegrid
from .config import DEFAULT_CLASS_LIMITS_KW, VEE_VERSION, VeeConfig
from .engine import CLEANED_ARROW, VeeResult, apply
from .flags import RULES, SUSPECT_RULES
from .schemas import SUFFICIENCY
from .shards import Shard, meter_shards

__all__ = [
    "CLEANED_ARROW",
    "DEFAULT_CLASS_LIMITS_KW",
    "RULES",
    "SUFFICIENCY",
    "SUSPECT_RULES",
    "VEE_VERSION",
    "Shard",
    "VeeConfig",
    "VeeResult",
    "apply",
    "estimation",
    "flags",
    "meter_shards",
    "timegrid",
]
