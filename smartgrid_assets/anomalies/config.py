"""Detector configuration: every threshold in one frozen dataclass, the types and the version."""

from __future__ import annotations

from dataclasses import dataclass, fields

# Bump whenever a detector's behaviour changes: every event carries it in `detector_version`.
DETECTOR_VERSION = "2.0.0"

STUCK_METER = "stuck_meter"
ZERO_RUN = "zero_run"
THEFT_DROP = "theft_drop"
REVERSE_FLOW = "reverse_flow"
TRANSFORMER_OVERLOAD = "transformer_overload"
LOAD_SPIKE = "load_spike"
PROFILE_DEVIATION = "profile_deviation"
FEEDER_IMBALANCE = "feeder_imbalance"
PROFILE_OUTLIER = "profile_outlier"
INTERVAL_SPIKE = "interval_spike"

#: Types a rule decides, named like the synthetic utility's anomaly labels.
RULE_TYPES: tuple[str, ...] = (
    STUCK_METER,
    ZERO_RUN,
    THEFT_DROP,
    REVERSE_FLOW,
    LOAD_SPIKE,
    PROFILE_DEVIATION,
    TRANSFORMER_OVERLOAD,
    FEEDER_IMBALANCE,
)
#: Types no rule decides: an unsupervised score (IsolationForest) for what the rules miss.
SCORE_TYPES: tuple[str, ...] = (PROFILE_OUTLIER,)
#: Types that report a data problem VEE flagged, not the customer's or the grid's behaviour:
#: a single absurd interval is VEE's `spike` (a data problem: flagged, estimated for billing
#: and reported here), never silently dropped.
DATA_PROBLEM_TYPES: tuple[str, ...] = (INTERVAL_SPIKE,)
#: Every event type.
ANOMALY_TYPES: tuple[str, ...] = RULE_TYPES + SCORE_TYPES + DATA_PROBLEM_TYPES
#: Types whose subject is a grid asset (`asset_id`), not a meter.
ASSET_TYPES: tuple[str, ...] = (TRANSFORMER_OVERLOAD, FEEDER_IMBALANCE)

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

ANOMALY = "anomaly"
DATA_PROBLEM = "data_problem"


def event_class(type: str) -> str:
    """`data_problem` for what VEE flagged in the data, `anomaly` for everything else."""
    return DATA_PROBLEM if type in DATA_PROBLEM_TYPES else ANOMALY


@dataclass(frozen=True)
class DetectorConfig:
    """Every detector threshold. Hours are hours of interval data unless said otherwise.

    Hashable and comparable; `dataclasses.asdict` gives a plain dict for run metadata.
    """

    # --- runs on the delivered channel (stuck_meter, zero_run, reverse_flow) ---
    #: readings of one run may be separated by missing or estimated intervals up to this long
    bridge_gap_minutes: int = 120
    #: the same non-zero value (|difference| <= tolerance) for at least this long -> stuck_meter
    stuck_min_hours: float = 6.0
    stuck_tolerance_kwh: float = 1e-9
    #: |kWh| <= this counts as zero (zero_run; and "non-zero" for stuck_meter is above it)
    zero_tolerance_kwh: float = 0.0
    #: zeros for at least this long (both channels on a solar meter) -> zero_run
    zero_min_hours: float = 6.0
    #: delivered below -tolerance on a meter without solar for at least this long -> reverse_flow
    reverse_min_hours: float = 1.0
    reverse_tolerance_kwh: float = 0.0
    #: run severity: below `run_warning_hours` info, from it warning, from `run_critical_hours`
    #: critical (stuck_meter); zero_run: warning from `run_warning_hours`, info again from
    #: `vacancy_min_hours` (days of zeros: a vacancy or a disconnection, not an alarm)
    run_warning_hours: float = 12.0
    run_critical_hours: float = 72.0
    vacancy_min_hours: float = 72.0
    #: reverse flow is a warning (backfeed, tampering), critical from this many hours
    reverse_critical_hours: float = 24.0
    # --- theft_drop: change point on the meter's own daily delivered energy ---
    #: drop of the after-days median against the baseline median, as a fraction of the baseline
    theft_min_drop: float = 0.30
    #: complete days needed after the change (the drop must have lasted this long)
    theft_min_days_after: int = 7
    #: complete days needed before the change, and at most this many form the baseline
    theft_min_days_before: int = 3
    theft_baseline_days: int = 14
    #: share of a local day's minutes with usable readings for the day to count
    theft_min_day_coverage: float = 0.8
    #: baseline median below this (kWh/day) is too small to judge
    theft_min_baseline_kwh: float = 1.0
    #: at least this share of the after-days must lie below the baseline median
    theft_min_share_below: float = 0.8
    #: the first week after the change against the same weekdays a week before (median of the
    #: day ratios) must show at least this drop too, so a weekly rhythm or a holiday week in the
    #: after-days does not read as a drop
    theft_min_weekly_drop: float = 0.15
    #: daily energy is divided by its peer group's common daily factor (same customer class
    #: and region, else class, else all meters) when the group has at least this many meters,
    #: so weather, weekends and holidays that move every peer do not read as a drop; 0: off
    theft_min_peers: int = 8
    #: solar meters' delivered energy follows the weather: no theft_drop on them
    theft_skip_solar: bool = True
    #: a drop of at least this fraction is critical (else warning)
    theft_critical_drop: float = 0.8
    # --- transformer_overload: hourly loading from meter_hourly ---
    #: loading = sum(kwh_net) per hour (average kW) / (kva_rating x power_factor)
    power_factor: float = 1.0
    #: loading above this for at least `overload_min_hours` consecutive hours -> an event
    overload_threshold: float = 1.0
    overload_min_hours: float = 1.0
    #: a peak loading above this is critical (else warning)
    overload_critical_loading: float = 1.2
    #: energy of readings carrying these VEE rules is taken out of its hour before judging
    overload_discount_rules: tuple[str, ...] = ("spike",)
    # --- load_spike: a burst far above the meter's usual level at that time of day and week ---
    #: a reading is spiking when log(kW / usual level) is at or above the meter's calibrated
    #: threshold (`calibration.py`) and the reading is at least this many kW above the level
    spike_min_excess_kw: float = 2.0
    #: spiking readings lasting at least this long and at most `spike_max_hours` (longer is
    #: a level change) make an event; critical when its tail probability is a tenth of the
    #: detector's budget share or less
    spike_min_minutes: int = 30
    spike_max_hours: float = 12.0
    #: readings carrying these VEE rules are data problems, not load: never a load_spike
    spike_exclude_rules: tuple[str, ...] = ("spike", "limit.high", "flat_line")
    # --- interval_spike: what VEE flagged in a single interval, reported as a data problem ---
    #: a `spike` beyond the meter's calibrated ceiling; any single interval VEE found to be
    #: Wh sent as kWh (and corrected) or above the class's power limit
    data_problem_rules: tuple[str, ...] = ("spike",)
    single_interval_rules: tuple[str, ...] = ("unit.wh_as_kwh", "limit.high")
    # --- profile_deviation: the day's shape against the meter's own expected shape ---
    #: shape = share of the local day's energy in each local hour; expected shape = median
    #: share per hour over the input's days; day distance = sum over hours of |residual|,
    #: after removing the peers' common residual of that day and hour (same groups and
    #: `theft_min_peers` as theft_drop)
    #: a day deviates when its distance is above max(this floor, the meter's calibrated
    #: threshold on its day distances)
    profile_min_distance: float = 0.15
    #: this many consecutive deviating days make an event (shorter is a one-off)
    profile_min_days: int = 3
    #: days with a usable shape needed before judging a meter
    profile_min_history_days: int = 7
    #: the event is critical from this many days (else warning)
    profile_critical_days: int = 14
    #: solar meters' delivered shape follows the clouds: not judged
    profile_skip_solar: bool = True
    # --- feeder_imbalance: a feeder-head meter against the sum of the feeder's meters ---
    #: head meters are registry meters with a feeder_id and no transformer_id; imbalance per
    #: hour = (head kWh - sum of the feeder's other meters' kwh_net) / head kWh
    imbalance_threshold: float = 0.15
    imbalance_min_hours: float = 6.0
    #: hours whose head reading is below this (kWh) are not judged
    imbalance_min_head_kwh: float = 1.0
    imbalance_critical: float = 0.3
    # --- profile_outlier: IsolationForest on daily profile features (info, never a rule) ---
    outlier_enabled: bool = True
    #: anomaly score (0..1, about 0.5 for a normal day) from which a meter-day is reported,
    #: unless a rule-based event of the meter covers it
    outlier_min_score: float = 0.7
    outlier_trees: int = 50
    outlier_seed: int = 0
    # --- calibration to the alarm budget (`calibration.py`) ---
    #: events per 1,000 meter-days the calibrated detectors (load_spike, interval_spike,
    #: profile_deviation, theft_drop) may raise on normal data, shared evenly between them
    #: (SMARTGRID_ANOMALY_BUDGET)
    anomaly_budget: float = 10.0
    #: days of a detector's statistic a meter needs to be calibrated on its own history;
    #: with fewer (but at least `calibration_min_days`) its class's pooled days are used; with
    #: fewer still it is `insufficient_history` and judged only by rules needing no history
    calibration_meter_days: int = 56
    calibration_min_days: int = 7
    # --- input hygiene ---
    #: rows carrying any of these VEE rules are not read at all
    exclude_rules: tuple[str, ...] = ("future", "install_period")
    #: rows carrying any of these VEE rules do not count towards daily energy (theft_drop);
    #: a day left short of coverage is skipped
    theft_exclude_rules: tuple[str, ...] = (
        "flat_line",
        "limit.high",
        "limit.low",
        "negative",
        "spike",
        "zero_run",
    )

    def __post_init__(self) -> None:
        positive = {
            "stuck_min_hours": self.stuck_min_hours,
            "zero_min_hours": self.zero_min_hours,
            "reverse_min_hours": self.reverse_min_hours,
            "theft_min_drop": self.theft_min_drop,
            "theft_min_days_after": self.theft_min_days_after,
            "theft_min_days_before": self.theft_min_days_before,
            "theft_baseline_days": self.theft_baseline_days,
            "power_factor": self.power_factor,
            "overload_threshold": self.overload_threshold,
            "overload_min_hours": self.overload_min_hours,
            "spike_min_minutes": self.spike_min_minutes,
            "spike_max_hours": self.spike_max_hours,
            "profile_min_distance": self.profile_min_distance,
            "profile_min_days": self.profile_min_days,
            "profile_min_history_days": self.profile_min_history_days,
            "imbalance_threshold": self.imbalance_threshold,
            "imbalance_min_hours": self.imbalance_min_hours,
            "outlier_trees": self.outlier_trees,
            "anomaly_budget": self.anomaly_budget,
            "calibration_meter_days": self.calibration_meter_days,
            "calibration_min_days": self.calibration_min_days,
        }
        bad = [name for name, value in positive.items() if not value > 0]
        if bad:
            raise ValueError(f"DetectorConfig fields must be > 0: {bad}")
        non_negative = {
            "bridge_gap_minutes": self.bridge_gap_minutes,
            "stuck_tolerance_kwh": self.stuck_tolerance_kwh,
            "zero_tolerance_kwh": self.zero_tolerance_kwh,
            "reverse_tolerance_kwh": self.reverse_tolerance_kwh,
            "theft_min_baseline_kwh": self.theft_min_baseline_kwh,
            "spike_min_excess_kw": self.spike_min_excess_kw,
            "imbalance_min_head_kwh": self.imbalance_min_head_kwh,
        }
        bad = [name for name, value in non_negative.items() if value < 0]
        if bad:
            raise ValueError(f"DetectorConfig fields must be >= 0: {bad}")
        fractions = {
            "theft_min_drop": self.theft_min_drop,
            "theft_min_day_coverage": self.theft_min_day_coverage,
            "theft_min_share_below": self.theft_min_share_below,
            "theft_min_weekly_drop": self.theft_min_weekly_drop,
            "theft_critical_drop": self.theft_critical_drop,
            "power_factor": self.power_factor,
            "outlier_min_score": self.outlier_min_score,
        }
        bad = [name for name, value in fractions.items() if not 0 <= value <= 1]
        if bad:
            raise ValueError(f"DetectorConfig fields must be in [0, 1]: {bad}")
        if self.theft_baseline_days < self.theft_min_days_before:
            raise ValueError("DetectorConfig.theft_baseline_days must be >= theft_min_days_before")
        if self.run_critical_hours < self.run_warning_hours:
            raise ValueError("DetectorConfig.run_critical_hours must be >= run_warning_hours")
        for name in (
            "exclude_rules",
            "theft_exclude_rules",
            "overload_discount_rules",
            "spike_exclude_rules",
            "data_problem_rules",
            "single_interval_rules",
        ):
            if not isinstance(getattr(self, name), tuple):
                raise TypeError(f"DetectorConfig.{name} must be a tuple of rule names")

    def as_dict(self) -> dict[str, object]:
        """Plain dict (tuples as lists), e.g. for run metadata."""
        return {
            f.name: list(value) if isinstance(value, tuple) else value
            for f in fields(self)
            for value in [getattr(self, f.name)]
        }
