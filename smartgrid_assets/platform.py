"""The product's storage, built once from settings: landing zone, lake, warehouse, catalog."""

from __future__ import annotations

from dataclasses import dataclass, field

from smartgrid_assets.days import day_start_utc
from smartgrid_assets.ingest.catalog import ReadingsCatalog
from smartgrid_assets.lake import Lake
from smartgrid_assets.landing import LandingZone, landing_zone
from smartgrid_assets.settings import Settings, load_settings
from smartgrid_assets.warehouse import Warehouse, warehouse


@dataclass
class Platform:
    settings: Settings
    landing: LandingZone = field(init=False)
    lake: Lake = field(init=False)
    warehouse: Warehouse = field(init=False)
    catalog: ReadingsCatalog = field(init=False)

    def __post_init__(self) -> None:
        self.landing = landing_zone(self.settings)
        self.lake = Lake.from_settings(self.settings)
        self.warehouse = warehouse(self.settings, self.lake)
        self.catalog = ReadingsCatalog(
            self.landing, self.lake, earliest=day_start_utc(self.settings.start_date, self.tz)
        )

    @property
    def tz(self) -> str:
        return self.settings.tz

    @classmethod
    def from_environment(cls) -> Platform:
        return cls(load_settings())
