"""Land exports into the landing zone as they are, under the day they arrived.

Readings keys are `readings/<arrival date>/<name>`: a listing that starts after the landing
sensor's cursor sees every new file, a late file about an old day included, because what orders
the keys is when a file arrived, not the day its readings are about.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from smartgrid_assets.landing import LandedFile, LandingZone

LANDABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
READINGS = "readings"


def arrival_key(kind: str, name: str, arrived: date | None = None) -> str:
    """The landing key of a file of a kind (`readings`, `registry`, `weather`) arriving today."""
    day = arrived or datetime.now(UTC).date()
    return f"{kind}/{day.isoformat()}/{name}"


def land_tree(
    landing: LandingZone,
    folder: Path,
    skip: tuple[str, ...] = ("late/",),
    arrived: date | None = None,
    late_arrival: date | None = None,
) -> list[LandedFile]:
    """Land every export under `folder` (kind = its first folder), keyed by arrival day and its
    path below the kind; folders in `skip` wait. With `late_arrival`, the exports the synthetic
    utility holds back under `late/` land too, as arriving on that day.

    Landing the same tree twice lands nothing new: identical files are no-ops.
    """
    landed = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if not path.is_file() or not relative.endswith(LANDABLE_SUFFIXES):
            continue
        if relative.startswith(skip) or "/" not in relative:
            continue
        kind, name = relative.split("/", 1)
        landed.append(landing.put(arrival_key(kind, name, arrived), path.read_bytes()))
    if late_arrival is not None and (folder / "late").is_dir():
        landed += land_tree(landing, folder / "late", skip=(), arrived=late_arrival)
    return landed
