-- VEE's per-channel counts summed to the meter and local day.
select
    meter_id,
    local_day,
    sum(expected) as intervals_expected,
    sum(actual) as intervals_actual,
    sum(estimated) as intervals_estimated,
    sum(edited) as intervals_edited,
    sum(suspect) as intervals_suspect,
    sum(missing) as intervals_missing
from {{ source('smartgrid', 'meter_day_sufficiency') }}
group by meter_id, local_day
