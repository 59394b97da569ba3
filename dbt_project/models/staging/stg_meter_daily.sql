select
    meter_id,
    local_day,
    kwh_delivered,
    kwh_received,
    kwh_net,
    peak_kw,
    peak_at,
    hours,
    intervals,
    intervals_estimated,
    intervals_suspect
from {{ source('smartgrid', 'meter_daily') }}
