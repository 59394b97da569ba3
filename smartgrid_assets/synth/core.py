"""``synthesize``: a whole synthetic utility, with ground truth, written to one folder."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smartgrid_assets.synth.export import (
    OWNED,
    ReadingsWriter,
    grid_summary,
    write_labels,
    write_manifest,
    write_registry,
    write_weather,
)
from smartgrid_assets.synth.inject import LABEL_TYPES, Canvas, inject
from smartgrid_assets.synth.layout import region_format
from smartgrid_assets.synth.load import simulate_load
from smartgrid_assets.synth.timegrid import build_grid
from smartgrid_assets.synth.topology import build_topology, size_transformers
from smartgrid_assets.synth.weather import at_intervals, simulate_weather

GENERATOR_VERSION = "1.0"
DEFAULT_START = dt.date(2026, 3, 16)


@dataclass(frozen=True)
class SynthSummary:
    out: Path
    meters: int
    meters_by_class: dict[str, int]
    solar_meters: int
    transformers: int
    regions: tuple[str, ...]
    readings_rows: int
    reading_files: int
    late_files: int
    labels: int
    labels_by_class: dict[str, int] = field(default_factory=dict)
    labels_by_type: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "out": str(self.out),
            "meters": self.meters,
            "meters_by_class": dict(self.meters_by_class),
            "solar_meters": self.solar_meters,
            "transformers": self.transformers,
            "regions": list(self.regions),
            "readings_rows": self.readings_rows,
            "reading_files": self.reading_files,
            "late_files": self.late_files,
            "labels": self.labels,
            "labels_by_class": dict(self.labels_by_class),
            "labels_by_type": dict(self.labels_by_type),
        }


def _prepare(out: Path) -> None:
    """Refuse to write into a foreign folder; clear what a previous synth run wrote."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ValueError(
            f"{out} is not empty and holds no synth manifest.json; choose another --out"
        )
    for name in OWNED:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def synthesize(
    out: Path,
    *,
    meters: int,
    days: int,
    interval_minutes: int = 15,
    seed: int = 0,
    tz: str = "UTC",
    start: dt.date = DEFAULT_START,
) -> SynthSummary:
    """Generate registry, weather, readings files, labels and a manifest under ``out``.

    Raises ValueError (one-line message) for parameters it cannot honour.
    """
    out = Path(out)
    grid = build_grid(start, days, interval_minutes, tz)
    if meters < 1:
        raise ValueError("meters must be at least 1")
    rng_topo, rng_weather, rng_load, rng_inject = np.random.default_rng(seed).spawn(4)

    topo = build_topology(rng_topo, meters, grid)
    weather = simulate_weather(rng_weather, grid, topo.regions, topo.centre)
    delivered, received = simulate_load(rng_load, grid, topo, at_intervals(weather, grid), weather)
    present = topo.present(grid)
    net_kw = np.where(present, delivered, 0.0)
    solar = topo.solar_index
    net_kw[solar] -= np.where(present[solar], received, 0.0)
    topo.tx_kva = size_transformers(topo, net_kw / grid.interval_h)
    del net_kw

    canvas = Canvas(grid, topo, delivered, received, present)
    inject(canvas, rng_inject)
    np.round(canvas.delivered, 4, out=canvas.delivered)
    np.round(canvas.received, 4, out=canvas.received)

    _prepare(out)
    write_registry(out, topo)
    n_obs, n_fc = write_weather(out, weather, topo.regions)
    files = ReadingsWriter(canvas).write_all(out)
    labels = write_labels(out, canvas.labels, topo)

    by_class = Counter(lb.cls for lb in labels)
    by_type = Counter(lb.type for lb in labels)
    classes = Counter(str(c) for c in topo.meter_class)
    summary = SynthSummary(
        out=out,
        meters=meters,
        meters_by_class=dict(sorted(classes.items())),
        solar_meters=int(topo.has_solar.sum()),
        transformers=len(topo.tx_ids),
        regions=topo.regions,
        readings_rows=sum(files.values()),
        reading_files=len(files),
        late_files=len(canvas.late),
        labels=len(labels),
        labels_by_class=dict(sorted(by_class.items())),
        labels_by_type={t: by_type.get(t, 0) for t in LABEL_TYPES},
    )
    manifest = {
        "generator": {"name": "smartgrid_assets.synth", "version": GENERATOR_VERSION},
        "parameters": {
            "meters": meters,
            "days": days,
            "interval_minutes": interval_minutes,
            "seed": seed,
            "tz": tz,
            "start": start.isoformat(),
        },
        "period": grid_summary(grid),
        "holidays": {
            "country": grid.country,
            "dates": {d.isoformat(): name for d, name in grid.holidays},
        },
        "regions": [
            {
                "name": name,
                "format": region_format(r),
                "substations": [topo.sub_ids[s] for s in np.flatnonzero(topo.sub_region == r)],
                "meters": int((topo.meter_region == r).sum()),
            }
            for r, name in enumerate(topo.regions)
        ],
        "counts": {
            **{k: v for k, v in summary.to_dict().items() if k not in ("out", "regions")},
            "substations": len(topo.sub_ids),
            "feeders": len(topo.feeder_ids),
            "weather_observed_rows": n_obs,
            "weather_forecast_rows": n_fc,
        },
        "files": dict(sorted(files.items())),
    }
    write_manifest(out, manifest)
    return summary
