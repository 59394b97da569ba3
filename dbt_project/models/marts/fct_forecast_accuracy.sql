{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window('target_day') }}",
    indexes=postgres_indexes([
      {'columns': ['asset_id', 'target_day']},
      {'columns': ['target_day']},
    ]),
    grants=analyst_grants(),
  )
}}

-- Every issued hourly forecast beside the load that came (hours with actuals only).
select
    f.level,
    f.asset_id,
    f.model,
    f.issued_at,
    f.target_day,
    f.ts,
    {{ local_hour('f.ts') }} as local_hour,
    f.p10,
    f.p50,
    f.p90,
    a.kwh as actual_kwh,
    f.p50 - a.kwh as error_kwh,
    abs(f.p50 - a.kwh) as abs_error_kwh,
    (a.kwh >= f.p10 and a.kwh <= f.p90) as within_p10_p90
from {{ ref('stg_load_forecasts') }} as f
join {{ ref('stg_feeder_hourly') }} as a
  on a.level = f.level and a.asset_id = f.asset_id and a.ts = f.ts
where {{ window_filter('f.target_day') }}
