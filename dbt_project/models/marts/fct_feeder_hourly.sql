{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window('local_day') }}",
    indexes=postgres_indexes([
      {'columns': ['feeder_id', 'ts'], 'unique': true},
      {'columns': ['local_day']},
    ]),
    grants=analyst_grants(),
  )
}}

-- Net load per feeder and local clock hour, with observed and day-ahead forecast temperature.
select
    h.asset_id as feeder_id,
    f.substation_id,
    h.region,
    h.ts,
    h.local_day,
    {{ local_hour('h.ts') }} as local_hour,
    h.kwh,
    h.meters,
    h.intervals_estimated,
    h.intervals_suspect,
    h.temperature_c,
    h.temperature_forecast_c
from {{ ref('stg_feeder_hourly') }} as h
left join {{ ref('dim_feeder') }} as f on f.feeder_id = h.asset_id
where h.level = 'feeder' and {{ window_filter('h.local_day') }}
