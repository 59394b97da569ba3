{#- Local days and hours in the utility's time zone (SMARTGRID_TZ, passed by the Dagster
    assets); `at time zone` reads the same on DuckDB and PostgreSQL. -#}

{% macro utility_tz() -%}
  '{{ env_var("SMARTGRID_DBT_TZ", "UTC") }}'
{%- endmacro %}

{% macro local_date(ts) -%}
  cast(({{ ts }}) at time zone {{ utility_tz() }} as date)
{%- endmacro %}

{% macro local_hour(ts) -%}
  cast(extract(hour from ({{ ts }}) at time zone {{ utility_tz() }}) as integer)
{%- endmacro %}

{% macro hours_between(start_ts, end_ts) -%}
  (extract(epoch from ({{ end_ts }}) - ({{ start_ts }})) / 3600.0)
{%- endmacro %}
