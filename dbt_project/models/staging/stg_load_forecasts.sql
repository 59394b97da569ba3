select
    level,
    asset_id,
    model,
    issued_at,
    target_day,
    ts,
    p10,
    p50,
    p90
from {{ source('smartgrid', 'load_forecasts') }}
