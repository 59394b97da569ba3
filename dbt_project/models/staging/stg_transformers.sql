select
    transformer_id,
    feeder_id,
    substation_id,
    kva_rating
from {{ source('smartgrid', 'transformers') }}
