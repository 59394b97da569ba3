"""`duplicate` (and alignment conflicts): several readings for one meter, channel and slot.

Readings are grouped by slot, the (meter, channel, ts) after alignment snapping. One row per
slot is kept, by precedence:

1. an aligned reading beats a snapped (misaligned) one;
2. then the latest `landed_at`;
3. then the greatest `source_file`, then the greatest `source_row` (the later row of a file);
4. then (fully deterministic on identical deliveries) the earliest raw ts, the greatest kWh.

The kept row is flagged `duplicate` when another reading had the same raw ts (a re-delivery),
and `alignment` when it was misaligned itself or won over a misaligned reading. Superseded rows
leave the cleaned table (they stay in raw).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arrays import segment_ids


def conflicting(slot_key: np.ndarray) -> np.ndarray:
    """Indices of rows sharing their slot with another row (`slot_key` sorted)."""
    if len(slot_key) < 2:
        return np.zeros(0, dtype=np.int64)
    same = slot_key[1:] == slot_key[:-1]
    if not same.any():
        return np.zeros(0, dtype=np.int64)
    multi = np.zeros(len(slot_key), dtype=bool)
    multi[1:] |= same
    multi[:-1] |= same
    return np.flatnonzero(multi)


@dataclass(frozen=True)
class SlotResolution:
    keep: np.ndarray  # bool per row: the row kept for its slot
    duplicate: np.ndarray  # bool per row: kept row that superseded a re-delivery
    alignment: np.ndarray  # bool per row: kept row whose slot involved a misaligned reading


def resolve_slots(
    slot_key: np.ndarray,
    ts_raw: np.ndarray,
    misaligned: np.ndarray,
    landed_at: np.ndarray,
    source_rank: np.ndarray,
    source_row: np.ndarray,
    kwh: np.ndarray,
) -> SlotResolution:
    """Pick one row per slot. Rows with equal `slot_key` must be adjacent.

    `source_rank` orders `source_file` names (a greater rank is a greater name). Any subset of
    rows that holds whole slots may be passed (e.g. the rows from `conflicting`).
    """
    n = len(slot_key)
    seg, starts = segment_ids(slot_key)
    n_seg = len(starts)
    misaligned = np.asarray(misaligned, dtype=bool)
    order = np.lexsort((kwh, -ts_raw, source_row, source_rank, landed_at, ~misaligned, seg))
    sorted_seg = seg[order]
    last = np.ones(n, dtype=bool)
    last[:-1] = sorted_seg[1:] != sorted_seg[:-1]
    winners = order[last]  # one per slot, in slot order
    keep = np.zeros(n, dtype=bool)
    keep[winners] = True
    win_ts = ts_raw[winners]  # indexed by slot
    sizes = np.bincount(seg, minlength=n_seg)
    same_raw = np.bincount(seg, weights=ts_raw == win_ts[seg], minlength=n_seg)
    any_mis = np.bincount(seg, weights=misaligned, minlength=n_seg) > 0
    duplicate = np.zeros(n, dtype=bool)
    duplicate[winners] = (same_raw > 1) & (sizes > 1)
    alignment = np.zeros(n, dtype=bool)
    alignment[winners] = any_mis
    return SlotResolution(keep, duplicate, alignment)
