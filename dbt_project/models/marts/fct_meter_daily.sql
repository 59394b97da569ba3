{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window('local_day') }}",
    indexes=postgres_indexes([
      {'columns': ['meter_id', 'local_day'], 'unique': true},
      {'columns': ['local_day']},
    ]),
    grants=analyst_grants(),
  )
}}

-- Energy, peak, load factor and data sufficiency per meter and local day. Meter-days VEE
-- expected but that brought no readings are here too (zero energy, sufficiency 0).
with energy as (
    select * from {{ ref('stg_meter_daily') }} where {{ window_filter('local_day') }}
),
sufficiency as (
    select * from {{ ref('stg_meter_day_sufficiency') }} where {{ window_filter('local_day') }}
),
rejected as (
    select * from {{ ref('stg_rejected_readings') }} where {{ window_filter('local_day') }}
),
meter_days as (
    select meter_id, local_day from energy
    union
    select meter_id, local_day from sufficiency
)
select
    d.meter_id,
    d.local_day,
    m.customer_class,
    m.transformer_id,
    m.feeder_id,
    coalesce(e.kwh_delivered, 0) as kwh_delivered,
    coalesce(e.kwh_received, 0) as kwh_received,
    coalesce(e.kwh_net, 0) as kwh_net,
    e.peak_kw,
    e.peak_at,
    case when e.peak_kw > 0 and e.hours > 0
         then (e.kwh_net / e.hours) / e.peak_kw end as load_factor,
    coalesce(e.hours, 0) as hours,
    coalesce(s.intervals_expected, 0) as intervals_expected,
    coalesce(s.intervals_actual, 0) as intervals_actual,
    coalesce(s.intervals_estimated, 0) as intervals_estimated,
    coalesce(s.intervals_edited, 0) as intervals_edited,
    coalesce(s.intervals_suspect, 0) as intervals_suspect,
    coalesce(s.intervals_missing, 0) as intervals_missing,
    case when s.intervals_expected > 0
         then cast(s.intervals_actual as double precision) / s.intervals_expected end
        as sufficiency,
    coalesce(r.rows_rejected, 0) as rows_rejected
from meter_days as d
left join energy as e on e.meter_id = d.meter_id and e.local_day = d.local_day
left join sufficiency as s on s.meter_id = d.meter_id and s.local_day = d.local_day
left join rejected as r on r.meter_id = d.meter_id and r.local_day = d.local_day
left join {{ ref('stg_meters') }} as m on m.meter_id = d.meter_id
