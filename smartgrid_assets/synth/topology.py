"""The synthetic network: substations, feeders, transformers and the meters behind them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smartgrid_assets.synth.timegrid import US_PER_HOUR, TimeGrid

REGION_NAMES = ("north", "south", "east", "west")
# Direction of each region from the utility's centre, in degrees (lat, lon).
REGION_OFFSETS = {
    "north": (0.12, 0.0),
    "south": (-0.12, 0.0),
    "east": (0.0, 0.18),
    "west": (0.0, -0.18),
}
# Centre of the synthetic service territory by time zone; anything else gets a generic mid-latitude.
CENTRES = {
    "Europe/Berlin": (52.52, 13.40),
    "Europe/London": (51.51, -0.13),
    "America/New_York": (40.71, -74.01),
    "Australia/Melbourne": (-37.81, 144.96),
}
DEFAULT_CENTRE = (45.0, 0.0)
# Single-phase pole/pad and three-phase pad-mount nameplate sizes (kVA).
KVA_SIZES = (10, 15, 25, 37.5, 50, 75, 100, 112.5, 150, 167, 225, 300, 500, 750, 1000, 1500, 2000,
             2500, 3000, 3750, 5000, 7500, 10000)  # fmt: skip
TARGET_PEAK_LOADING = 0.8
CLASS_SHARES = (("industrial", 0.03), ("commercial", 0.12))
SOLAR_SHARE = 0.20
INSTALL_SHARE = 0.03
REMOVAL_SHARE = 0.02
NEVER = np.iinfo(np.int64).max


@dataclass
class Topology:
    """Parallel arrays; meter index i is meter id ``meter_ids[i]`` and ids sort like indexes."""

    regions: tuple[str, ...]
    centre: tuple[float, float]
    sub_ids: list[str]
    sub_region: np.ndarray
    feeder_ids: list[str]
    feeder_sub: np.ndarray
    tx_ids: list[str]
    tx_feeder: np.ndarray
    tx_kva: np.ndarray
    meter_ids: list[str]
    meter_class: np.ndarray
    meter_tx: np.ndarray
    has_solar: np.ndarray
    pv_kwp: np.ndarray
    multiplier: np.ndarray
    installed_us: np.ndarray
    removed_us: np.ndarray  # NEVER when still in service
    lat: np.ndarray
    lon: np.ndarray

    @property
    def n_meters(self) -> int:
        return len(self.meter_ids)

    @property
    def meter_feeder(self) -> np.ndarray:
        return self.tx_feeder[self.meter_tx]

    @property
    def meter_sub(self) -> np.ndarray:
        return self.feeder_sub[self.meter_feeder]

    @property
    def meter_region(self) -> np.ndarray:
        return self.sub_region[self.meter_sub]

    @property
    def solar_index(self) -> np.ndarray:
        return np.flatnonzero(self.has_solar)

    def present(self, grid: TimeGrid) -> np.ndarray:
        """(meters x intervals) True where a meter is in service, i.e. in [installed, removed)."""
        ts = grid.ts_us[None, :]
        return (ts >= self.installed_us[:, None]) & (ts < self.removed_us[:, None])

    def full_period(self, grid: TimeGrid) -> np.ndarray:
        return (self.installed_us <= grid.t0_us) & (self.removed_us >= grid.end_us)


def _ids(prefix: str, n: int, width: int) -> list[str]:
    width = max(width, len(str(n)))
    return [f"{prefix}{i + 1:0{width}d}" for i in range(n)]


def substation_count(meters: int) -> int:
    n = max(1, round(meters / 500))
    return max(n, 2) if meters >= 100 else n


def _split(order: np.ndarray, parts: int) -> list[np.ndarray]:
    return [np.sort(chunk) for chunk in np.array_split(order, parts)]


def build_topology(rng: np.random.Generator, meters: int, grid: TimeGrid) -> Topology:
    if meters < 1:
        raise ValueError("meters must be at least 1")
    n_sub = substation_count(meters)
    regions = REGION_NAMES[: min(len(REGION_NAMES), n_sub)]
    sub_region = np.arange(n_sub) % len(regions)

    meter_class = np.full(meters, "residential", dtype=object)
    order = rng.permutation(meters)
    taken = 0
    for cls, share in CLASS_SHARES:
        n = round(share * meters)
        meter_class[order[taken : taken + n]] = cls
        taken += n

    feeder_sub: list[int] = []
    tx_feeder: list[int] = []
    meter_tx = np.zeros(meters, dtype=np.int64)
    for sub, sub_meters in enumerate(_split(rng.permutation(meters), n_sub)):
        n_fdr = int(min(rng.integers(2, 5), max(1, len(sub_meters))))
        for fdr_meters in _split(rng.permutation(sub_meters), n_fdr):
            fdr = len(feeder_sub)
            feeder_sub.append(sub)
            residential = fdr_meters[meter_class[fdr_meters] == "residential"]
            residential = residential[rng.permutation(len(residential))]
            pos = 0
            while pos < len(residential):
                size = int(rng.integers(5, 12))
                meter_tx[residential[pos : pos + size]] = len(tx_feeder)
                tx_feeder.append(fdr)
                pos += size
            for m in fdr_meters[meter_class[fdr_meters] != "residential"]:
                meter_tx[m] = len(tx_feeder)
                tx_feeder.append(fdr)

    residential = meter_class == "residential"
    has_solar = residential & (rng.random(meters) < SOLAR_SHARE)
    pv_kwp = np.where(has_solar, np.clip(rng.lognormal(np.log(5.0), 0.3, meters), 2.0, 12.0), 0.0)
    multiplier = np.where(
        meter_class == "industrial",
        rng.choice([40.0, 80.0], meters),
        np.where(meter_class == "commercial", rng.choice([1.0, 40.0], meters), 1.0),
    )

    installed, removed = _service_periods(rng, meters, grid)

    centre = CENTRES.get(grid.tz, DEFAULT_CENTRE)
    sub_lat = np.array([centre[0] + REGION_OFFSETS[regions[r]][0] for r in sub_region])
    sub_lon = np.array([centre[1] + REGION_OFFSETS[regions[r]][1] for r in sub_region])
    sub_lat = sub_lat + rng.normal(0, 0.03, n_sub)
    sub_lon = sub_lon + rng.normal(0, 0.04, n_sub)
    tx_feeder_a = np.array(tx_feeder, dtype=np.int64)
    feeder_sub_a = np.array(feeder_sub, dtype=np.int64)
    tx_sub = feeder_sub_a[tx_feeder_a]
    tx_lat = sub_lat[tx_sub] + rng.normal(0, 0.03, len(tx_feeder_a))
    tx_lon = sub_lon[tx_sub] + rng.normal(0, 0.04, len(tx_feeder_a))
    lat = np.round(tx_lat[meter_tx] + rng.normal(0, 0.001, meters), 6)
    lon = np.round(tx_lon[meter_tx] + rng.normal(0, 0.0015, meters), 6)

    return Topology(
        regions=regions,
        centre=centre,
        sub_ids=_ids("SUB", n_sub, 2),
        sub_region=sub_region,
        feeder_ids=_ids("FDR", len(feeder_sub_a), 2),
        feeder_sub=feeder_sub_a,
        tx_ids=_ids("TX", len(tx_feeder_a), 4),
        tx_feeder=tx_feeder_a,
        tx_kva=np.zeros(len(tx_feeder_a)),
        meter_ids=_ids("M", meters, 6),
        meter_class=meter_class,
        meter_tx=meter_tx,
        has_solar=has_solar,
        pv_kwp=pv_kwp,
        multiplier=multiplier,
        installed_us=installed,
        removed_us=removed,
        lat=lat,
        lon=lon,
    )


def _service_periods(
    rng: np.random.Generator, meters: int, grid: TimeGrid
) -> tuple[np.ndarray, np.ndarray]:
    """Most meters predate the period; a few percent are installed or removed inside it."""
    days_before = rng.integers(30, 3650, meters)
    hour = rng.integers(6, 18, meters)
    installed = grid.t0_us - days_before * 24 * US_PER_HOUR + hour * US_PER_HOUR
    removed = np.full(meters, NEVER, dtype=np.int64)
    if grid.days < 3:
        return installed, removed
    order = rng.permutation(meters)
    n_inst = round(INSTALL_SHARE * meters)
    n_rem = round(REMOVAL_SHARE * meters)
    lo, hi = int(grid.day_bounds[1]), grid.n - 1
    inst = order[:n_inst]
    installed[inst] = grid.ts_us[rng.integers(lo, hi, n_inst)]
    rem = order[n_inst : n_inst + n_rem]
    removed[rem] = grid.ts_us[rng.integers(lo, hi, n_rem)]
    return installed, removed


def size_transformers(topo: Topology, net_kw: np.ndarray) -> np.ndarray:
    """Nameplate ratings so each transformer's normal peak is at most ~80% (50-80% typically).

    ``net_kw`` is (meters x intervals) of imports minus exports, zero where a meter is absent.
    """
    order = np.argsort(topo.meter_tx, kind="stable")
    tx_sorted = topo.meter_tx[order]
    starts = np.flatnonzero(np.r_[True, tx_sorted[1:] != tx_sorted[:-1]])
    totals = np.add.reduceat(net_kw[order], starts, axis=0)
    peaks = np.zeros(len(topo.tx_ids))
    peaks[tx_sorted[starts]] = totals.max(axis=1)
    sizes = np.array(KVA_SIZES, dtype=np.float64)
    idx = np.searchsorted(sizes, np.maximum(peaks, 1.0) / TARGET_PEAK_LOADING, side="left")
    return sizes[np.minimum(idx, len(sizes) - 1)]
