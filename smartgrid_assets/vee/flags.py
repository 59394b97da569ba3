"""Rule names, their bits in a per-row flag mask, quality precedence and the list column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

# Every rule name as it appears in `vee_rules`. Sorted, so bit order is the list order.
RULES: tuple[str, ...] = (
    "alignment",
    "duplicate",
    "estimate.linear",
    "estimate.profile",
    "flat_line",
    "future",
    "install_period",
    "interval_length",
    "limit.high",
    "limit.low",
    "negative",
    "spike",
    "unit.wh_as_kwh",
    "zero_run",
)
assert list(RULES) == sorted(RULES)

BIT: dict[str, int] = {name: 1 << i for i, name in enumerate(RULES)}

#: Rules that make a row suspect (`S`): kept as read, flagged for review.
SUSPECT_RULES: tuple[str, ...] = (
    "flat_line",
    "future",
    "install_period",
    "interval_length",
    "limit.high",
    "limit.low",
    "negative",
    "spike",
    "zero_run",
)
SUSPECT_MASK = sum(BIT[name] for name in SUSPECT_RULES)
ESTIMATE_MASK = BIT["estimate.linear"] | BIT["estimate.profile"]

# Quality codes as small integers (dictionary indices into QUALITY_CODES).
QUALITY_CODES = ("A", "E", "X", "S")
Q_A, Q_E, Q_X, Q_S = range(4)


def quality(flags: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Quality code per row: any suspect rule -> S, else an edit -> X, else estimate -> E, else A.

    `edited` marks rows whose value or timestamp was corrected (unit error, alignment snap);
    `alignment` in the flags alone (an aligned row that won over a misaligned one) is no edit.
    """
    flags = np.asarray(flags)
    q = np.full(len(flags), Q_A, dtype=np.int8)
    flagged = np.flatnonzero(flags)  # usually few rows: test the masks on those only
    bits = flags[flagged]
    q[flagged[(bits & ESTIMATE_MASK) != 0]] = Q_E
    q[edited] = Q_X
    q[flagged[(bits & SUSPECT_MASK) != 0]] = Q_S
    return q


def quality_array(codes: np.ndarray) -> pa.DictionaryArray:
    """Arrow dictionary array (int32 indices) of quality letters from integer codes."""
    dictionary = pa.array(QUALITY_CODES, type=pa.string())
    indices = pa.array(codes.astype(np.int32, copy=False), type=pa.int32())
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def rules_list_array(flags: np.ndarray) -> pa.Array:
    """Arrow list<string> of the rule names set in each row's flag mask (sorted names)."""
    flags = np.asarray(flags)
    n = len(flags)
    flagged = np.flatnonzero(flags)
    offsets = np.zeros(n + 1, dtype=np.int32)
    names = np.zeros(0, dtype=np.int32)
    if len(flagged):
        # one bit table per distinct flag combination, looked up per flagged row
        combos, which = np.unique(flags[flagged].astype(np.int64), return_inverse=True)
        bits = ((combos[:, None] >> np.arange(len(RULES))) & 1).astype(bool)
        offsets[flagged + 1] = bits.sum(axis=1)[which]
        names = np.nonzero(bits[which])[1].astype(np.int32)  # row-major: per row, rule order
    np.cumsum(offsets, out=offsets)
    values = pa.DictionaryArray.from_arrays(
        pa.array(names, type=pa.int32()), pa.array(RULES, type=pa.string())
    ).cast(pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values)


def count_by_rule(flags: np.ndarray) -> dict[str, int]:
    """Number of rows on which each rule fired (every rule listed, 0 included)."""
    flags = np.asarray(flags)
    flags = flags[flags != 0]
    return {name: int(np.count_nonzero(flags & BIT[name])) for name in RULES}
