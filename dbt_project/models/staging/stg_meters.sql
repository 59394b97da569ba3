-- The current registry, by meter id only: no location or other personal data leaves staging.
select
    m.meter_id,
    m.customer_class,
    m.transformer_id,
    m.feeder_id,
    m.substation_id,
    m.region,
    m.has_solar,
    m.multiplier,
    m.installed_at,
    m.removed_at,
    coalesce(h.registry_loaded_at, m.installed_at) as registry_loaded_at
from {{ source('smartgrid', 'meters') }} as m
left join (
    select meter_id, max(valid_from) as registry_loaded_at
    from {{ source('smartgrid', 'meters_history') }}
    where registry_file = (
        select registry_file from {{ source('smartgrid', 'meters_history') }}
        order by valid_from desc, registry_file desc
        limit 1
    )
    group by meter_id
) as h on h.meter_id = m.meter_id
