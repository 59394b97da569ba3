{{ config(grants=analyst_grants()) }}

-- One row per feeder: its substation, transformers, installed kVA and the meters it serves
-- today. Feeders come from the transformer list and from the meter registry alike, so a feeder
-- known only from meters (exports without a grid model) is here too.
with feeders as (
    select feeder_id, substation_id from {{ ref('stg_transformers') }}
    union
    select feeder_id, substation_id from {{ ref('stg_meters') }} where feeder_id is not null
),
one_substation as (
    select feeder_id, min(substation_id) as substation_id
    from feeders
    group by feeder_id
),
transformers as (
    select feeder_id, count(*) as transformers, sum(kva_rating) as kva_installed
    from {{ ref('stg_transformers') }}
    group by feeder_id
),
meters as (
    select feeder_id,
           count(*) as meters,
           sum(case when has_solar then 1 else 0 end) as solar_meters,
           count(distinct region) as regions,
           min(region) as region
    from {{ ref('stg_meters') }}
    where removed_at is null and feeder_id is not null
    group by feeder_id
)
select
    f.feeder_id,
    f.substation_id,
    case when m.regions = 1 then m.region end as region,
    coalesce(t.transformers, 0) as transformers,
    coalesce(t.kva_installed, 0) as kva_installed,
    coalesce(m.meters, 0) as meters,
    coalesce(m.solar_meters, 0) as solar_meters
from one_substation as f
left join transformers as t on t.feeder_id = f.feeder_id
left join meters as m on m.feeder_id = f.feeder_id
