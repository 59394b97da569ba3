"""VEE configuration: every threshold in one frozen dataclass, and the rule version."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

# Bump whenever a rule's behaviour changes: every cleaned row carries it in `vee_version`.
VEE_VERSION = "1.0.0"

#: Default average-power limits in kW (low, high) per customer class.
DEFAULT_CLASS_LIMITS_KW: dict[str, tuple[float, float]] = {
    "residential": (-15.0, 30.0),
    "commercial": (-150.0, 600.0),
    "industrial": (-1500.0, 6000.0),
    "unknown": (-1500.0, 6000.0),
}


def _default_limits() -> dict[str, tuple[float, float]]:
    return dict(DEFAULT_CLASS_LIMITS_KW)


@dataclass(frozen=True)
class VeeConfig:
    """Every VEE threshold. Minutes are minutes of interval data (wall-clock length).

    A customer class missing from `class_limits_kw` uses the limits of ``"unknown"``.
    Hashable and comparable, so it can key caches; `dataclasses.asdict` gives a plain dict for
    run metadata.
    """

    # --- estimation (gaps) ---
    #: a gap up to this long with readings on both sides is interpolated linearly
    linear_max_minutes: int = 120
    #: a longer gap up to this long is filled from the same-time-of-day profile of other days
    profile_max_minutes: int = 1440
    # --- runs (delivered channel only) ---
    #: identical non-zero values for at least this long -> `flat_line`
    flat_line_min_minutes: int = 240
    #: exact zeros for at least this long -> `zero_run`
    zero_run_min_minutes: int = 240
    #: two values are "identical" when they differ by at most this
    flat_line_tolerance_kwh: float = 1e-9
    # --- spike ---
    #: robust z-score (median, MAD x 1.4826 of the meter-channel) above which a value may spike
    spike_z: float = 8.0
    #: ... and the value must exceed this many times max(previous, next)
    spike_neighbour_ratio: float = 4.0
    #: ... and be above this many kWh
    spike_min_kwh: float = 0.05
    # --- unit error (Wh sent as kWh) ---
    #: a value above this many times the meter-channel's median of positive values is suspect
    unit_median_ratio: float = 200.0
    #: value / 1000 must lie within [median / r, median x r] to be corrected
    unit_normal_ratio: float = 5.0
    #: when this share of a local day's non-zero readings are unit errors, fix the whole day
    unit_day_share: float = 0.5
    #: ... provided at least this many readings of the day are
    unit_day_min_rows: int = 4
    # --- limits: average kW over the interval, (low, high) per customer class ---
    class_limits_kw: dict[str, tuple[float, float]] = field(default_factory=_default_limits)
    # --- expected grid ---
    #: interval of a meter with no reading in the input (for its expected slots)
    default_interval_minutes: int = 15
    #: expect a `received` channel only for solar meters that delivered some export data in
    #: the input (a single-channel net meter has none); False: for every solar meter
    received_requires_data: bool = True

    def __hash__(self) -> int:
        return hash(
            tuple(
                (f.name, tuple(sorted(v.items())) if isinstance(v, dict) else v)
                for f in fields(self)
                for v in [getattr(self, f.name)]
            )
        )

    def __post_init__(self) -> None:
        positive = {
            "linear_max_minutes": self.linear_max_minutes,
            "profile_max_minutes": self.profile_max_minutes,
            "flat_line_min_minutes": self.flat_line_min_minutes,
            "zero_run_min_minutes": self.zero_run_min_minutes,
            "spike_z": self.spike_z,
            "spike_neighbour_ratio": self.spike_neighbour_ratio,
            "unit_median_ratio": self.unit_median_ratio,
            "unit_normal_ratio": self.unit_normal_ratio,
            "default_interval_minutes": self.default_interval_minutes,
        }
        bad = [name for name, value in positive.items() if not value > 0]
        if bad:
            raise ValueError(f"VeeConfig fields must be > 0: {bad}")
        if not 0 < self.unit_day_share <= 1:
            raise ValueError("VeeConfig.unit_day_share must be in (0, 1]")
        if self.flat_line_tolerance_kwh < 0 or self.spike_min_kwh < 0:
            raise ValueError("VeeConfig tolerances must be >= 0")
        if "unknown" not in self.class_limits_kw:
            raise ValueError("VeeConfig.class_limits_kw needs an 'unknown' entry")
        for name, (low, high) in self.class_limits_kw.items():
            if not low < high:
                raise ValueError(f"VeeConfig.class_limits_kw[{name!r}]: low must be < high")

    def limits_for(self, customer_class: str | None) -> tuple[float, float]:
        """(low, high) average-kW limits of a customer class."""
        key = customer_class if customer_class in self.class_limits_kw else "unknown"
        low, high = self.class_limits_kw[key]
        return float(low), float(high)
