{% snapshot dim_meter %}
{{
  config(
    unique_key='meter_id',
    strategy='check',
    check_cols=[
      'customer_class', 'transformer_id', 'feeder_id', 'substation_id', 'region',
      'has_solar', 'multiplier', 'installed_at', 'removed_at',
    ],
    updated_at='registry_loaded_at',
    hard_deletes='invalidate',
    snapshot_meta_column_names={
      'dbt_valid_from': 'valid_from',
      'dbt_valid_to': 'valid_to',
      'dbt_scd_id': 'meter_version_id',
      'dbt_updated_at': 'version_loaded_at',
    },
    grants=analyst_grants(),
  )
}}
-- The meter registry's history (type 2): a new version whenever a meter is installed, moves
-- on the grid (transformer, feeder, substation), changes class, solar or multiplier, or is
-- removed; valid_from is when the registry file that changed it landed. A meter dropped from
-- the registry keeps its last version, closed (valid_to set). Meters are known by id only.
select * from {{ ref('stg_meters') }}
{% endsnapshot %}
