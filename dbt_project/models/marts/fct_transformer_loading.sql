{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window('local_day') }}",
    indexes=postgres_indexes([
      {'columns': ['transformer_id', 'local_day'], 'unique': true},
      {'columns': ['local_day']},
    ]),
    grants=analyst_grants(),
  )
}}

-- Peak kVA against the nameplate rating and hours above it, per transformer and local day.
-- The hourly loading comes from the one computation the overload detector uses
-- (smartgrid_assets.anomalies.transformer_loading: spike-flagged energy taken out, loading =
-- kW / (kVA rating x power factor)); this mart only summarises it, so the mart and the
-- transformer_overload events always agree.
with hours as (
    select
        l.*,
        max(l.kva) over (partition by l.transformer_id, l.local_day) as day_peak_kva
    from {{ ref('stg_transformer_loading') }} as l
    where {{ window_filter('l.local_day') }}
)
select
    h.transformer_id,
    h.local_day,
    t.feeder_id,
    t.substation_id,
    max(h.kva_rating) as kva_rating,
    max(h.power_factor) as power_factor,
    count(*) as hours,
    sum(h.kw) as energy_kwh,
    max(h.kw) as peak_kw,
    max(h.kva) as peak_kva,
    max(h.loading) as peak_loading,
    min(case when h.kva = h.day_peak_kva then h.ts end) as peak_at,
    sum(case when h.loading > 1 then 1 else 0 end) as hours_above_rating,
    max(h.meters) as meters
from hours as h
left join {{ ref('dim_transformer') }} as t on t.transformer_id = h.transformer_id
group by h.transformer_id, h.local_day, t.feeder_id, t.substation_id
