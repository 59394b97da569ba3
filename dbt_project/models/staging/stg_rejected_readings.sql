-- Rejected rows that name a meter and a local day, counted per meter and day (one landed row
-- can break several fields: it counts once).
select
    meter_id,
    day as local_day,
    count(distinct source_file || '#' || cast("row" as varchar)) as rows_rejected
from {{ source('smartgrid', 'rejected_readings') }}
where meter_id is not null and day is not null
group by meter_id, day
