"""Schema of the VEE data-sufficiency table (per meter, channel and local day)."""

from __future__ import annotations

import pyarrow as pa

SUFFICIENCY = pa.schema(
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("local_day", pa.date32(), nullable=False),
        pa.field("expected", pa.int64(), nullable=False),
        pa.field("actual", pa.int64(), nullable=False),
        pa.field("estimated", pa.int64(), nullable=False),
        pa.field("edited", pa.int64(), nullable=False),
        pa.field("suspect", pa.int64(), nullable=False),
        pa.field("missing", pa.int64(), nullable=False),
        pa.field("sufficiency", pa.float64()),
    ],
    metadata={
        "smartgrid.name": "vee_sufficiency",
        "smartgrid.version": "1.0",
        "doc": "Data sufficiency per meter, channel and local day: expected interval slots, "
        "cleaned rows by quality (A actual, E estimated, X edited, S suspect), expected slots "
        "left without a row (missing), and sufficiency = actual / expected (null when nothing "
        "is expected).",
    },
)
