"""Landing zone: where head-end exports are dropped, on a local folder or S3/MinIO.

``landing_zone(settings)`` picks the backend from ``settings.landing_url``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import (
    QUARANTINE_PREFIX,
    UNUSABLE_PREFIX,
    LandedFile,
    LandingError,
    LandingProblem,
    LandingZone,
    Listing,
    key_problem,
)
from .local import LocalLandingZone
from .s3 import S3LandingZone

if TYPE_CHECKING:
    from smartgrid_assets.settings import Settings

__all__ = [
    "QUARANTINE_PREFIX",
    "UNUSABLE_PREFIX",
    "LandedFile",
    "LandingError",
    "LandingProblem",
    "LandingZone",
    "Listing",
    "LocalLandingZone",
    "S3LandingZone",
    "key_problem",
    "landing_zone",
]


def landing_zone(settings: Settings) -> LandingZone:
    """The landing zone at ``settings.landing_url``: ``file://…`` or ``s3://bucket/prefix``."""
    url = settings.landing_url
    if url.startswith("file://"):
        return LocalLandingZone(url)
    if url.startswith("s3://"):
        return S3LandingZone(url, client_kwargs=settings.aws_client_kwargs())
    raise LandingError(
        f"SMARTGRID_LANDING_URL={url!r}: expected a folder (file://…) or s3://bucket/prefix"
    )
