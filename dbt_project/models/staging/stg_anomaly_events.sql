select
    event_id,
    type,
    meter_id,
    asset_id,
    "start" as started_at,
    "end" as ended_at,
    severity,
    score,
    evidence,
    detector_version
from {{ source('smartgrid', 'anomaly_events') }}
