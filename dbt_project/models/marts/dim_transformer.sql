{{ config(grants=analyst_grants()) }}

-- One row per distribution transformer, with the meters it serves today.
with served as (
    select transformer_id,
           count(*) as meters,
           sum(case when has_solar then 1 else 0 end) as solar_meters
    from {{ ref('stg_meters') }}
    where removed_at is null and transformer_id is not null
    group by transformer_id
)
select
    t.transformer_id,
    t.feeder_id,
    t.substation_id,
    t.kva_rating,
    coalesce(s.meters, 0) as meters,
    coalesce(s.solar_meters, 0) as solar_meters
from {{ ref('stg_transformers') }} as t
left join served as s on s.transformer_id = t.transformer_id
