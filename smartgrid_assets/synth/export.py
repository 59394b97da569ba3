"""Writing the synthetic utility to disk in the landing zone's layout, byte-for-byte repeatable.

CSV is assembled with Arrow compute (no per-row Python) and Parquet written with fixed options;
nothing of the run itself (clock, host, paths) goes into any file.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from smartgrid_assets.contract import (
    CHANNELS,
    METERS,
    TRANSFORMERS,
    WEATHER_FORECAST,
    WEATHER_OBSERVED,
)
from smartgrid_assets.synth.inject import Canvas, Label
from smartgrid_assets.synth.layout import late_key, readings_key, region_format
from smartgrid_assets.synth.timegrid import US_PER_MINUTE, TimeGrid, iso_utc
from smartgrid_assets.synth.topology import NEVER, Topology
from smartgrid_assets.synth.weather import FORECAST_HOURS, Weather

READING_COLUMNS = ("meter_id", "ts", "interval_minutes", "channel", "kwh")
READING_SCHEMA = pa.schema(
    [
        pa.field("meter_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("interval_minutes", pa.int32(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("kwh", pa.float64(), nullable=False),
    ]
)
LABEL_COLUMNS = ("label_id", "class", "type", "meter_id", "asset_id", "start", "end", "detail")
PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "data_page_version": "1.0",
}
OWNED = ("registry", "weather", "readings", "late", "labels.csv", "manifest.json")


def _write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    n = 0
    for row in rows:
        writer.writerow(row)
        n += 1
    path.write_text(buf.getvalue(), encoding="utf-8")
    return n


def write_registry(out: Path, topo: Topology) -> None:
    feeder = topo.meter_feeder
    sub = topo.meter_sub
    region = topo.meter_region
    meters = (
        (
            topo.meter_ids[i],
            topo.meter_class[i],
            topo.tx_ids[topo.meter_tx[i]],
            topo.feeder_ids[feeder[i]],
            topo.sub_ids[sub[i]],
            topo.regions[region[i]],
            "true" if topo.has_solar[i] else "false",
            f"{topo.multiplier[i]:.1f}",
            iso_utc(topo.installed_us[i]),
            "" if topo.removed_us[i] == NEVER else iso_utc(topo.removed_us[i]),
            f"{topo.lat[i]:.6f}",
            f"{topo.lon[i]:.6f}",
        )
        for i in range(topo.n_meters)
    )
    _write_rows(out / "registry" / "meters.csv", METERS.names, meters)
    transformers = (
        (
            topo.tx_ids[t],
            topo.feeder_ids[topo.tx_feeder[t]],
            topo.sub_ids[topo.feeder_sub[topo.tx_feeder[t]]],
            f"{topo.tx_kva[t]:g}",
        )
        for t in range(len(topo.tx_ids))
    )
    _write_rows(out / "registry" / "transformers.csv", TRANSFORMERS.names, transformers)


def write_weather(out: Path, weather: Weather, regions: Sequence[str]) -> tuple[int, int]:
    hour_iso = [iso_utc(us) for us in weather.hours_us]
    observed = (
        (region, hour_iso[h], f"{weather.temperature[r, h]:.2f}")
        for r, region in enumerate(regions)
        for h in np.flatnonzero(weather.observed_mask)
    )
    n_obs = _write_rows(out / "weather" / "weather_observed.csv", WEATHER_OBSERVED.names, observed)
    forecast = (
        (
            region,
            iso_utc(weather.issued_us[d]),
            hour_iso[weather.forecast_start[d] + k],
            f"{weather.forecast[r, d, k]:.2f}",
        )
        for r, region in enumerate(regions)
        for d in range(len(weather.issued_us))
        for k in range(FORECAST_HOURS)
    )
    n_fc = _write_rows(out / "weather" / "weather_forecast.csv", WEATHER_FORECAST.names, forecast)
    return n_obs, n_fc


def fixed4(values: np.ndarray) -> pa.Array:
    """kWh as text with exactly four decimals, vectorised (``"%.4f"`` per row is too slow)."""
    scaled = np.rint(values * 1e4).astype(np.int64)
    mag = np.abs(scaled)
    whole = pc.cast(pa.array(mag // 10_000), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(mag % 10_000), pa.string()), 4, "0")
    text = pc.binary_join_element_wise(whole, frac, ".")
    if (scaled < 0).any():
        text = pc.if_else(pa.array(scaled < 0), pc.binary_join_element_wise("-", text, ""), text)
    return text


class _RegionRows:
    """One region's series (meter x channel, sorted like meter_id then channel) over the grid."""

    def __init__(self, c: Canvas, region: int) -> None:
        topo = c.topo
        meters = np.flatnonzero(topo.meter_region == region)
        solar = topo.has_solar[meters]
        self.series_meter = np.repeat(meters, np.where(solar, 2, 1))
        first = np.r_[True, self.series_meter[1:] != self.series_meter[:-1]]
        self.series_channel = np.where(first, 0, 1).astype(np.int64)
        self.delivered_pos = np.flatnonzero(self.series_channel == 0)
        self.received_pos = np.flatnonzero(self.series_channel == 1)
        self.received_rows = c.solar_row[self.series_meter[self.received_pos]]

    def day(self, c: Canvas, sl: slice) -> dict[str, np.ndarray]:
        k, n = len(self.series_meter), sl.stop - sl.start
        values = np.empty((k, n))
        values[self.delivered_pos] = c.delivered[self.series_meter[self.delivered_pos], sl]
        values[self.received_pos] = c.received[self.received_rows, sl]
        mask = c.present[self.series_meter, sl].ravel()
        t_idx = np.broadcast_to(np.arange(sl.start, sl.stop), (k, n)).ravel()[mask]
        return {
            "meter": np.repeat(self.series_meter, n)[mask],
            "channel": np.repeat(self.series_channel, n)[mask],
            "t": t_idx,
            "shift": c.shift_min[self.series_meter, sl].ravel()[mask].astype(np.int64),
            "kwh": values.ravel()[mask],
        }


def _duplicate_rows(c: Canvas, region: int, day: int) -> dict[str, np.ndarray] | None:
    parts = []
    dups = [d for d in c.duplicates if d.file_day == day and c.topo.meter_region[d.meter] == region]
    for dup in sorted(dups, key=lambda d: (d.meter, d.a)):
        t = np.arange(dup.a, dup.b)
        channels = [c.delivered[dup.meter, dup.a : dup.b]]
        if c.solar_row[dup.meter] >= 0:
            channels.append(c.received[c.solar_row[dup.meter], dup.a : dup.b])
        for ch, values in enumerate(channels):
            kwh = values if dup.factors is None else np.round(values * dup.factors[ch], 4)
            parts.append((np.full(len(t), dup.meter), np.full(len(t), ch), t, kwh))
    if not parts:
        return None
    meter, channel, t, kwh = (np.concatenate(p) for p in zip(*parts, strict=True))
    return {
        "meter": meter,
        "channel": channel,
        "t": t,
        "shift": np.zeros(len(t), np.int64),
        "kwh": kwh,
    }


def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    return a if b is None else {k: np.concatenate([a[k], b[k]]) for k in a}


class ReadingsWriter:
    def __init__(self, c: Canvas) -> None:
        self.c = c
        self.meter_ids = pa.array(c.topo.meter_ids, pa.string())
        self.channels = pa.array(CHANNELS, pa.string())
        self.ts_text = pc.strftime(
            pa.array(c.grid.ts_us // 1_000_000, pa.timestamp("s", tz="UTC")),
            format="%Y-%m-%dT%H:%M:%S+00:00",
        )

    def table(self, rows: dict[str, np.ndarray], fmt: str) -> pa.Table:
        grid = self.c.grid
        n = len(rows["t"])
        ts_us = grid.ts_us[rows["t"]] + rows["shift"] * US_PER_MINUTE
        meter = self.meter_ids.take(pa.array(rows["meter"]))
        channel = self.channels.take(pa.array(rows["channel"]))
        minutes = pa.array(np.full(n, grid.interval_minutes, np.int32))
        if fmt == "parquet":
            ts = pa.array(ts_us, pa.timestamp("us", tz="UTC"))
            return pa.Table.from_arrays(
                [meter, ts, minutes, channel, pa.array(rows["kwh"])], schema=READING_SCHEMA
            )
        shifted = np.flatnonzero(rows["shift"])
        text_idx = rows["t"].copy()
        text_idx[shifted] = grid.n + np.arange(len(shifted))
        extra = pa.array([iso_utc(us) for us in ts_us[shifted]], pa.string())
        ts_text = pa.concat_arrays([self.ts_text, extra]).take(pa.array(text_idx))
        return pa.Table.from_arrays(
            [meter, ts_text, minutes, channel, fixed4(rows["kwh"])], names=list(READING_COLUMNS)
        )

    @staticmethod
    def write(table: pa.Table, path: Path, fmt: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            pq.write_table(table, path, **PARQUET_OPTIONS)
            return
        with path.open("wb") as fh:
            fh.write((",".join(READING_COLUMNS) + "\n").encode())
            pacsv.write_csv(
                table, fh, pacsv.WriteOptions(include_header=False, quoting_style="none")
            )

    def write_all(self, out: Path) -> dict[str, int]:
        """One file per region and local day; returns file key -> rows."""
        c = self.c
        files: dict[str, int] = {}
        for region, name in enumerate(c.topo.regions):
            fmt = region_format(region)
            series = _RegionRows(c, region)
            for day in range(c.grid.days):
                rows = _concat(
                    series.day(c, c.grid.day_slice(day)), _duplicate_rows(c, region, day)
                )
                date = c.grid.dates[day]
                late = (region, day) in c.late
                key = late_key(name, date, fmt) if late else readings_key(name, date, fmt)
                self.write(self.table(rows, fmt), out / key, fmt)
                files[key] = len(rows["t"])
        return files


def write_labels(out: Path, labels: Sequence[Label], topo: Topology) -> list[Label]:
    """Labels sorted by start so ids are stable and read chronologically."""
    ordered = sorted(
        labels,
        key=lambda lb: (lb.start_us, lb.type, -1 if lb.meter is None else lb.meter, lb.asset_id),
    )
    width = max(5, len(str(len(ordered))))
    rows = (
        (
            f"L{i + 1:0{width}d}",
            lb.cls,
            lb.type,
            "" if lb.meter is None else topo.meter_ids[lb.meter],
            lb.asset_id,
            iso_utc(lb.start_us),
            iso_utc(lb.end_us),
            lb.detail,
        )
        for i, lb in enumerate(ordered)
    )
    _write_rows(out / "labels.csv", LABEL_COLUMNS, rows)
    return ordered


def write_manifest(out: Path, manifest: dict[str, object]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")


def grid_summary(grid: TimeGrid) -> dict[str, object]:
    return {
        "start_utc": iso_utc(grid.t0_us),
        "end_utc": iso_utc(grid.end_us),
        "intervals": grid.n,
        "intervals_per_local_day": {
            d.isoformat(): int(n) for d, n in zip(grid.dates, np.diff(grid.day_bounds), strict=True)
        },
    }
