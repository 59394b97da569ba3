{{
  config(
    materialized='table',
    indexes=postgres_indexes([{'columns': ['feeder_id', 'started_at']}]),
    grants=analyst_grants(),
  )
}}

-- Anomaly events with the grid they sit on. Rebuilt whole: events merge across days and
-- superseded ones disappear, so a partition window is not a stable slice of them.
select
    e.event_id,
    e.type,
    case when e.meter_id is not null then 'meter'
         when t.transformer_id is not null then 'transformer'
         else 'asset' end as subject,
    e.meter_id,
    e.asset_id,
    coalesce(t.transformer_id, m.transformer_id) as transformer_id,
    coalesce(m.feeder_id, t.feeder_id) as feeder_id,
    coalesce(m.substation_id, t.substation_id) as substation_id,
    e.started_at,
    e.ended_at,
    {{ local_date('e.started_at') }} as start_day,
    {{ hours_between('e.started_at', 'e.ended_at') }} as duration_hours,
    e.severity,
    e.score,
    e.evidence,
    e.detector_version
from {{ ref('stg_anomaly_events') }} as e
left join {{ ref('stg_meters') }} as m on m.meter_id = e.meter_id
left join {{ ref('stg_transformers') }} as t on t.transformer_id = e.asset_id
