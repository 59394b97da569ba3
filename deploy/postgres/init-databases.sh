#!/bin/sh
# Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d): one login
# role and one database per consumer, each role the owner of its own database only. Passwords come
# from the container's environment (deploy/.env), never from this file.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v dagster_password="$DAGSTER_PG_PASSWORD" \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" \
  -v warehouse_password="$WAREHOUSE_DB_PASSWORD" \
  -v warehouse_sql_password="$WAREHOUSE_SQL_PASSWORD" <<'SQL'
-- Dagster instance: run, event-log and schedule storage (deploy/dagster.yaml).
CREATE ROLE dagster LOGIN PASSWORD :'dagster_password';
CREATE DATABASE dagster OWNER dagster;
-- MLflow tracking server backend store.
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
-- The PostgreSQL warehouse (SMARTGRID_WAREHOUSE_URL=postgresql://smartgrid:...@postgres/warehouse).
CREATE ROLE smartgrid LOGIN PASSWORD :'warehouse_password';
CREATE DATABASE warehouse OWNER smartgrid;
-- Read-only access to the warehouse (SMARTGRID_ANALYST_ROLE): dbt grants SELECT on the marts to
-- it; an analyst's login gets it with `GRANT analyst TO <login>`.
CREATE ROLE analyst NOLOGIN;
-- `smartgrid sql`'s login (SMARTGRID_SQL_URL): reads what analysts read, read-only by default.
CREATE ROLE warehouse_sql_reader LOGIN PASSWORD :'warehouse_sql_password' IN ROLE analyst;
ALTER ROLE warehouse_sql_reader SET default_transaction_read_only = on;
-- No role connects to another role's database.
REVOKE CONNECT ON DATABASE dagster, mlflow, warehouse FROM PUBLIC;
GRANT CONNECT ON DATABASE warehouse TO analyst;
SQL
