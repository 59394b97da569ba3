"""The lake: readings-level Parquet tables partitioned by local day, local or on S3/MinIO."""

from .store import PART_FILE, Lake, LakeError

__all__ = ["PART_FILE", "Lake", "LakeError"]
