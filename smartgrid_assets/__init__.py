"""SmartGrid Analytics: a Dagster data-asset platform for smart-meter (AMI) analytics."""

import os

import pyarrow as pa

# Arrow allocates the readings tables from jemalloc unless ARROW_DEFAULT_MEMORY_POOL names
# another pool: the wheel's default, mimalloc, made the cleaning of a 5.7 M-reading day about
# 1.5x slower here (`smartgrid bench --only cleaning`, assets 4.6-4.9 s against 3.0-3.5 s).
if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
    pa.set_memory_pool(pa.jemalloc_memory_pool())
