{#- Who may read what, and the indexes analysts' queries need, on PostgreSQL. On DuckDB (one
    file, read through `smartgrid sql`) both are empty. -#}

{% macro analyst_role() -%}
  {{ return(env_var('SMARTGRID_DBT_ANALYST_ROLE', '') | trim) }}
{%- endmacro %}

{#- The marts' `grants`: SELECT for the analyst role (SMARTGRID_ANALYST_ROLE). dbt re-applies
    them whenever it rebuilds a table, so a rebuilt mart keeps them. -#}
{% macro analyst_grants() -%}
  {%- if target.type == 'postgres' and analyst_role() -%}
    {{ return({'select': [analyst_role()]}) }}
  {%- else -%}
    {{ return({}) }}
  {%- endif -%}
{%- endmacro %}

{% macro postgres_indexes(indexes) -%}
  {%- if target.type == 'postgres' -%}
    {{ return(indexes) }}
  {%- else -%}
    {{ return([]) }}
  {%- endif -%}
{%- endmacro %}

{#- The analyst role needs USAGE on the schema to reach the granted marts (nothing else).
    Granted only when missing (on `public` every role has it), so a dbt login that does not
    own the schema still runs. -#}
{% macro grant_schema_usage() -%}
  {%- if execute and target.type == 'postgres' and analyst_role() -%}
    {%- set check -%}
      select has_schema_privilege('{{ analyst_role() }}', '{{ target.schema }}', 'USAGE')
    {%- endset -%}
    {%- if not run_query(check).columns[0].values()[0] -%}
      grant usage on schema {{ adapter.quote(target.schema) }} to {{ adapter.quote(analyst_role()) }}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
