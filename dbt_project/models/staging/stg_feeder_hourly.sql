select
    level,
    asset_id,
    ts,
    local_day,
    kwh,
    meters,
    intervals_estimated,
    intervals_suspect,
    region,
    temperature_c,
    temperature_forecast_c,
    kwh_delivered,
    kwh_received
from {{ source('smartgrid', 'feeder_hourly') }}
