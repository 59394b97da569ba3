"""The PostgreSQL warehouse: the same access layer as DuckDB (replace by match and window, COPY
loads, Arrow reads with the contract's types), `smartgrid sql` read-only on it, and the dbt
target prepared from settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pyarrow as pa
import pytest

from smartgrid_assets import contract
from smartgrid_assets.cli import main
from smartgrid_assets.settings import load_settings
from smartgrid_assets.warehouse import ReadOnlyViolation, WarehouseError, Window, warehouse
from smartgrid_assets.warehouse.postgres_warehouse import PostgresWarehouse, to_pg_params
from smartgrid_assets.warehouse_project import PASSWORD_ENV, dbt_env
from smartgrid_tests.test_sql_readonly import drop_role
from smartgrid_tests.test_warehouse import assert_earlier_tables_gain_new_columns

T0 = datetime(2026, 3, 16, tzinfo=UTC)


@pytest.fixture
def pg(postgres_database: str) -> Iterator[PostgresWarehouse]:
    wh = warehouse(load_settings({"SMARTGRID_WAREHOUSE_URL": postgres_database}))
    assert isinstance(wh, PostgresWarehouse)
    yield wh
    drop_role(postgres_database, wh.reader_role)  # the `smartgrid sql` reader it created


def _forecasts(n: int) -> pa.Table:
    hours = [T0 + timedelta(hours=h) for h in range(n)]
    return contract.conform(
        pa.table(
            {
                "level": ["feeder"] * n,
                "asset_id": [f"FDR0{h % 3}" for h in range(n)],
                "model": ["gbm"] * n,
                "issued_at": pa.array([T0 - timedelta(days=1)] * n, contract.UTC_TS),
                "target_day": pa.array([date(2026, 3, 16)] * n, pa.date32()),
                "ts": pa.array(hours, contract.UTC_TS),
                "p10": [float(h) for h in range(n)],
                "p50": [float(h) + 0.5 for h in range(n)],
                "p90": [float(h) + 1.0 for h in range(n)],
            }
        ),
        contract.LOAD_FORECASTS,
    )


def test_contract_tables_round_trip_with_their_types(pg: PostgresWarehouse) -> None:
    table = _forecasts(30)
    assert pg.replace("load_forecasts", table) == 30
    back = pg.read("SELECT * FROM load_forecasts ORDER BY ts")
    assert [f.type for f in back.schema] == [f.type for f in contract.LOAD_FORECASTS]
    assert contract.conform(back, contract.LOAD_FORECASTS).equals(table)
    events = contract.conform(
        pa.table(
            {
                "event_id": ["e1", "e2"],
                "type": ["zero_run", "transformer_overload"],
                "meter_id": ["M1", None],
                "asset_id": [None, "TX1"],
                "start": pa.array([T0, T0], contract.UTC_TS),
                "end": pa.array([T0 + timedelta(hours=6)] * 2, contract.UTC_TS),
                "severity": ["warning", "critical"],
                "score": [6.0, 1.3],
                "evidence": [json.dumps({"hours": 6, "note": 'it\'s 100% "quoted", a,b'}), "{}"],
                "detector_version": ["1.0.0"] * 2,
            }
        ),
        contract.ANOMALY_EVENTS,
    )
    pg.replace("anomaly_events", events)
    back = contract.conform(
        pg.read('SELECT * FROM anomaly_events WHERE "end" >= ? ORDER BY event_id', [T0]),
        contract.ANOMALY_EVENTS,
    )
    assert back.equals(events), "quotes, commas, percent signs and NULLs survive COPY"


def test_a_detector_calibration_round_trips_with_its_lists(pg: PostgresWarehouse) -> None:
    import numpy as np

    from smartgrid_assets import anomalies

    hours = np.arange(40 * 24)
    kwh = 0.3 + 0.5 * np.exp(-(((hours % 24) - 19) ** 2) / 5) * (1 + 0.2 * np.sin(hours / 7))
    readings = pa.table(
        {
            "meter_id": ["M1"] * len(hours),
            "ts": pa.array([T0 + timedelta(hours=int(h)) for h in hours], contract.UTC_TS),
            "interval_minutes": pa.array([60] * len(hours), pa.int32()),
            "channel": ["delivered"] * len(hours),
            "kwh": kwh.round(3),
        }
    )
    table = anomalies.detect_readings(readings, tz="UTC").calibration
    assert table.num_rows and table["reference"].null_count < table.num_rows
    pg.replace("detector_calibration", table, match={"first_ts": [T0]})
    back = pg.read("SELECT * FROM detector_calibration ORDER BY detector, meter_id")
    back = contract.conform(back, anomalies.CALIBRATION)
    assert back.equals(table.sort_by([("detector", "ascending"), ("meter_id", "ascending")]))


def test_replace_by_match_and_window_is_idempotent(pg: PostgresWarehouse) -> None:
    data = pa.table(
        {
            "f": ["a", "a", "b", None],
            "ts": pa.array([T0, T0 + timedelta(hours=1), T0, T0], contract.UTC_TS),
            "v": pa.array([1, 2, 3, 4], pa.int32()),
        }
    )
    pg.replace("x", data)
    pg.replace("x", data.slice(0, 1), match={"f": ["a"]})
    assert pg.read("SELECT f, v FROM x ORDER BY v").to_pylist() == [
        {"f": "a", "v": 1},
        {"f": "b", "v": 3},
        {"f": None, "v": 4},
    ]
    pg.replace("x", data.slice(3, 1), match={"f": [None]})
    assert pg.read("SELECT count(*) AS n FROM x").to_pylist() == [{"n": 3}]
    pg.replace("x", data)
    pg.replace("x", data.slice(0, 0), window=Window("ts", T0, T0 + timedelta(hours=1)))
    assert pg.read("SELECT v FROM x ORDER BY v").to_pylist() == [{"v": 2}]
    assert pg.has_table("x") and not pg.has_table("y")
    assert "x" in pg.tables()


def test_a_table_from_an_earlier_version_gains_new_columns(pg: PostgresWarehouse) -> None:
    assert_earlier_tables_gain_new_columns(pg)


def test_pipeline_queries_with_question_marks_and_lists(pg: PostgresWarehouse) -> None:
    pg.replace("load_forecasts", _forecasts(6))
    rows = pg.read(
        "SELECT asset_id, count(*) AS n FROM load_forecasts "
        "WHERE target_day IN (SELECT unnest(?)) AND asset_id LIKE 'FDR%' AND '?' = '?' "
        "GROUP BY asset_id ORDER BY asset_id",
        [[date(2026, 3, 16), date(2026, 3, 17)]],
    ).to_pylist()
    assert rows == [{"asset_id": f"FDR0{i}", "n": 2} for i in range(3)]
    assert to_pg_params("SELECT '?', \"a?\" -- ?\n WHERE x = ? AND y LIKE 'a%'") == (
        "SELECT '?', \"a?\" -- ?\n WHERE x = %s AND y LIKE 'a%%'"
    )


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM meters",
        "INSERT INTO meters VALUES ('M9')",
        "DROP TABLE meters",
        "CREATE TABLE y AS SELECT 1",
        "UPDATE meters SET meter_id = 'X'",
        "SELECT 1; DELETE FROM meters",
        "WITH gone AS (DELETE FROM meters RETURNING *) SELECT * FROM gone",
        "SELECT * INTO y FROM meters",
        "EXPLAIN ANALYZE DELETE FROM meters",
        "COPY meters TO '/tmp/out.csv'",
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT set_config('role', 'postgres', false)",
        "SET ROLE postgres",
    ],
)
def test_writing_statements_are_refused_and_change_nothing(
    pg: PostgresWarehouse, statement: str
) -> None:
    pg.replace("meters", pa.table({"meter_id": ["M1", "M2"]}))
    with pytest.raises(ReadOnlyViolation, match="refused"):
        pg.query_readonly(statement)
    assert pg.read("SELECT count(*) AS n FROM meters").to_pylist() == [{"n": 2}]
    assert pg.tables() == ["meters"]


def test_sql_command_on_postgres(
    pg: PostgresWarehouse,
    postgres_database: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("SMARTGRID_WAREHOUSE_URL", postgres_database)
    pg.replace(
        "meters", pa.table({"meter_id": ["M1", "M2"], "customer_class": ["residential"] * 2})
    )
    assert main(["sql", "SELECT meter_id FROM meters ORDER BY 1"]) == 0
    out = capsys.readouterr().out
    assert "M1" in out and "(2 rows)" in out
    assert main(["sql", "--format", "csv", "SELECT meter_id FROM meters ORDER BY 1;"]) == 0
    assert capsys.readouterr().out.splitlines() == ['"meter_id"', '"M1"', '"M2"']
    assert main(["sql", "--format", "json", "SELECT count(*) AS n FROM meters"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 2}]
    assert main(["sql", "DELETE FROM meters"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err
    assert main(["sql", "SELECT no_such_column FROM meters"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_column" in err
    with psycopg.connect(postgres_database) as con:
        assert con.execute("SELECT count(*) FROM meters").fetchone() == (2,)


def test_unreachable_postgres_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    url = "postgresql://analyst:s3cret@127.0.0.1:1/nowhere"
    monkeypatch.setenv("SMARTGRID_WAREHOUSE_URL", url)
    assert main(["sql", "SELECT 1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cannot connect to the PostgreSQL warehouse" in err and "s3cret" not in err
    with pytest.raises(WarehouseError, match="cannot connect"):
        PostgresWarehouse(url).read("SELECT 1")


def test_the_sql_login_is_the_reader_role_without_the_owners_password() -> None:
    owner = (
        "postgresql://etl:s3cret@db.internal:6543/grid?sslmode=require&options=-csearch_path%3Dwh"
    )
    derived = PostgresWarehouse(owner)
    assert derived.reader_role == "grid_sql_reader"
    assert derived.sql_url == (
        "postgresql://grid_sql_reader@db.internal:6543/grid?sslmode=require&options=-csearch_path%3Dwh"
    )
    explicit = PostgresWarehouse(owner, sql_url="postgresql://alice:p%40ss@db.internal:6543/grid")
    assert (explicit.reader_role, explicit.sql_url) == (
        "alice",
        "postgresql://alice:p%40ss@db.internal:6543/grid",
    )


def test_dbt_target_comes_from_settings(tmp_path) -> None:
    duck = dbt_env(load_settings({"SMARTGRID_HOME": str(tmp_path), "SMARTGRID_TZ": "Asia/Kolkata"}))
    assert duck["SMARTGRID_DBT_TARGET"] == "duckdb"
    assert duck["SMARTGRID_DBT_DUCKDB_PATH"] == str(tmp_path / "warehouse.duckdb")
    assert duck["SMARTGRID_DBT_TZ"] == "Asia/Kolkata"
    pg = dbt_env(
        load_settings(
            {
                "SMARTGRID_WAREHOUSE_URL": "postgresql://etl:p%40ss@db.internal:6543/grid"
                "?sslmode=require&options=-csearch_path%3Dwarehouse",
                "SMARTGRID_ANALYST_ROLE": "grid_analyst",
            }
        )
    )
    assert {k: v for k, v in pg.items() if k != PASSWORD_ENV} == {
        "SMARTGRID_DBT_TARGET": "postgres",
        "SMARTGRID_DBT_PG_HOST": "db.internal",
        "SMARTGRID_DBT_PG_PORT": "6543",
        "SMARTGRID_DBT_PG_USER": "etl",
        "SMARTGRID_DBT_PG_DBNAME": "grid",
        "SMARTGRID_DBT_PG_SCHEMA": "warehouse",
        "SMARTGRID_DBT_PG_SSLMODE": "require",
        "SMARTGRID_DBT_TZ": "UTC",
        "SMARTGRID_DBT_ANALYST_ROLE": "grid_analyst",
    }
    assert pg[PASSWORD_ENV] == "p@ss"
