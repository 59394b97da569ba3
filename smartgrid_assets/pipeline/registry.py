"""Load the meter registry (meters and transformers) from the latest landed registry files."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from smartgrid_assets import contract
from smartgrid_assets.ingest.files import parse
from smartgrid_assets.ingest.validate import FileRejected
from smartgrid_assets.landing import LandedFile
from smartgrid_assets.platform import Platform

REGISTRY_PREFIX = "registry/"


@dataclass(frozen=True)
class RegistryLoad:
    files: dict[str, str]
    rows: dict[str, int]
    rejected: pa.Table
    quarantined: list[dict]


def _latest(files: list[LandedFile], kind: str) -> list[LandedFile]:
    """Registry files of a kind, newest landing first (the name says the kind)."""
    mine = [f for f in files if kind in f.key.rsplit("/", 1)[-1]]
    return sorted(mine, key=lambda f: (f.last_modified, f.key), reverse=True)


def load_registry(platform: Platform) -> RegistryLoad:
    """Replace the warehouse's current registry and add its version to `meters_history`.

    A meters file is required; without a transformers file the transformers table is empty.
    """
    listed = platform.landing.list(REGISTRY_PREFIX)
    files: dict[str, str] = {}
    rows: dict[str, int] = {}
    rejected: list[pa.Table] = []
    quarantined: list[dict] = []
    for kind in ("meters", "transformers"):
        for file in _latest(listed, kind):
            try:
                parsed = parse(
                    kind, file.key, platform.landing.read_bytes(file.key), file.last_modified
                )
            except FileRejected as exc:
                platform.landing.quarantine(file, exc.reason, dict(exc.details))
                quarantined.append({"key": file.key, "reason": exc.reason})
                continue
            platform.warehouse.replace(kind, parsed.table)
            if kind == "meters":
                history = parsed.table.append_column(
                    "registry_file", pa.array([file.key] * parsed.table.num_rows, pa.string())
                ).append_column(
                    "valid_from",
                    pa.array([file.last_modified] * parsed.table.num_rows, contract.UTC_TS),
                )
                platform.warehouse.replace("meters_history", history, {"registry_file": [file.key]})
            files[kind] = file.key
            rows[kind] = parsed.table.num_rows
            rejected.append(
                parsed.rejected.select(["source_file", "row", "field", "value", "reason"])
            )
            break
        else:
            if kind == "meters":
                raise FileNotFoundError(
                    f"no usable meters registry file under {platform.landing.url}/"
                    f"{REGISTRY_PREFIX}: land one (columns {', '.join(contract.METERS.names)})"
                )
            # Exports brought without a grid model still load; loading-based checks see none.
            platform.warehouse.replace(kind, contract.TRANSFORMERS.empty_table())
            files[kind] = ""
            rows[kind] = 0
    return RegistryLoad(
        files=files, rows=rows, rejected=pa.concat_tables(rejected), quarantined=quarantined
    )


def current_meters(platform: Platform) -> pa.Table:
    return contract.conform(platform.warehouse.read("SELECT * FROM meters"), contract.METERS)
