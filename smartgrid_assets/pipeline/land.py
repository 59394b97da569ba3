"""Land a folder of exports (e.g. the synthetic utility's) into the landing zone as they are."""

from __future__ import annotations

from pathlib import Path

from smartgrid_assets.landing import LandedFile, LandingZone

LANDABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")


def land_tree(
    landing: LandingZone, folder: Path, skip: tuple[str, ...] = ("late/",)
) -> list[LandedFile]:
    """Land every export under `folder`, keyed by its relative path; folders in `skip` wait.

    Landing the same tree twice lands nothing new: identical files are no-ops.
    """
    landed = []
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_file() and key.endswith(LANDABLE_SUFFIXES) and not key.startswith(skip):
            landed.append(landing.put(key, path.read_bytes()))
    return landed
