select
    transformer_id,
    ts,
    local_day,
    kw,
    kw_as_hourly,
    kva,
    meters,
    kva_rating,
    power_factor,
    loading
from {{ source('smartgrid', 'transformer_loading') }}
