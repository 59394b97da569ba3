select
    meter_id,
    customer_class,
    transformer_id,
    feeder_id,
    substation_id,
    has_solar,
    installed_at,
    removed_at
from {{ source('smartgrid', 'meters') }}
