"""Split a VEE input by meter, so shards clean in parallel and concatenate to one result.

Every rule and estimate reads one meter's own readings and registry row only, so cleaning the
shards of contiguous meter_id ranges and concatenating the outputs in shard order gives the
same rows, in the same order, as cleaning the whole input at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Shard:
    readings: pa.Table
    meters: pa.Table


def meter_shards(readings: list[pa.Table], meters: pa.Table, count: int) -> list[Shard]:
    """`count` shards of contiguous meter_id ranges, each with its meters' readings from every
    table of `readings` (kept apart so a table sorted by meter is cut into slices, not
    copied). A reading of a meter not in the registry goes to the shard of its id's range,
    where VEE counts it as dropped once."""
    ids = pc.unique(pc.drop_null(meters["meter_id"])).sort()
    count = max(1, min(count, len(ids)))
    if count == 1:
        return [Shard(pa.concat_tables(readings), meters)]
    cuts = ids.take(pa.array(len(ids) * np.arange(1, count) // count))
    meter_parts = _split(meters, _shard_of(meters["meter_id"], ids, cuts), count)
    reading_parts = [_split(t, _shard_of(t["meter_id"], ids, cuts), count) for t in readings]
    return [
        Shard(pa.concat_tables([parts[k] for parts in reading_parts]), meter_parts[k])
        for k in range(count)
    ]


def _shard_of(meter_id: pa.ChunkedArray, ids: pa.Array, cuts: pa.Array) -> np.ndarray:
    """Shard number of each row: how many cut ids are at or below its meter_id (null: 0)."""
    position = pc.index_in(meter_id, value_set=ids)
    cut_positions = np.asarray(pc.index_in(cuts, value_set=ids))
    known = np.asarray(position.fill_null(-1), dtype=np.int64)
    shard = np.searchsorted(cut_positions, known, side="right")
    unknown = np.flatnonzero(known < 0)
    if len(unknown):
        names = pc.fill_null(meter_id.take(pa.array(unknown)), "")
        shard[unknown] = sum(
            np.asarray(pc.greater_equal(names, cut), dtype=np.int64) for cut in cuts
        )
    return shard


def _split(table: pa.Table, shard: np.ndarray, count: int) -> list[pa.Table]:
    """Rows of each shard, in their order: slices when `shard` ascends, else one reorder."""
    if len(shard) > 1 and not bool(np.all(shard[1:] >= shard[:-1])):
        order = np.argsort(shard, kind="stable")
        table, shard = table.take(pa.array(order)), shard[order]
    bounds = np.searchsorted(shard, np.arange(count + 1), side="left")
    return [table.slice(bounds[k], bounds[k + 1] - bounds[k]) for k in range(count)]
