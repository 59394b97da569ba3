"""The synthetic utility: a seeded, labelled stand-in for a real AMI head-end and its registry.

Plain Python (no Dagster): ``synthesize(out, meters=..., days=...)`` writes registry, weather,
per-region daily readings files (CSV and Parquet), ground-truth labels and a manifest.
"""

from smartgrid_assets.synth.core import DEFAULT_START, SynthSummary, synthesize
from smartgrid_assets.synth.inject import LABEL_TYPES

__all__ = ["DEFAULT_START", "LABEL_TYPES", "SynthSummary", "synthesize"]
