{#- The Dagster partition's window of local days, from the vars min_day / max_day. -#}

{% macro window_filter(column) -%}
  {%- set lo = var('min_day', none) -%}
  {%- set hi = var('max_day', none) -%}
  {%- if lo and hi -%}
    {{ column }} >= cast('{{ lo }}' as date) and {{ column }} <= cast('{{ hi }}' as date)
  {%- else -%}
    1 = 1
  {%- endif -%}
{%- endmacro %}

{#- Pre-hook of the incremental marts: a partition is replaced whole, so a re-run or a backfill
    leaves exactly what the window's sources say (rows that disappeared go too). -#}
{% macro delete_window(column) -%}
  {%- if is_incremental() -%}
    delete from {{ this }} where {{ window_filter(column) }}
  {%- endif -%}
{%- endmacro %}
