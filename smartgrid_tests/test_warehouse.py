"""The warehouse access layer and `smartgrid sql`: read-only for analysts, a clear busy message."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from smartgrid_assets import contract
from smartgrid_assets.cli import main
from smartgrid_assets.lake import Lake
from smartgrid_assets.warehouse import (
    ReadOnlyViolation,
    Warehouse,
    WarehouseBusy,
    WarehouseError,
    Window,
)
from smartgrid_assets.warehouse.duckdb_warehouse import DuckDBWarehouse


@pytest.fixture
def wh(tmp_path: Path) -> DuckDBWarehouse:
    lake = Lake((tmp_path / "lake").as_uri())
    return DuckDBWarehouse(tmp_path / "warehouse.duckdb", lake=lake, busy_timeout_s=1.0)


def _rows(wh: DuckDBWarehouse, sql: str) -> list[dict]:
    return wh.read(sql).to_pylist()


def test_replace_by_match_and_window_is_idempotent(wh: DuckDBWarehouse) -> None:
    t = datetime(2026, 3, 16, tzinfo=UTC)
    data = pa.table(
        {"f": ["a", "a", "b", None], "ts": [t, t.replace(hour=1), t, t], "v": [1, 2, 3, 4]}
    )
    wh.replace("x", data)
    wh.replace("x", data.slice(0, 1), match={"f": ["a"]})
    assert _rows(wh, "SELECT f, v FROM x ORDER BY v") == [
        {"f": "a", "v": 1},
        {"f": "b", "v": 3},
        {"f": None, "v": 4},
    ]
    wh.replace("x", data.slice(3, 1), match={"f": [None]})
    assert wh.read("SELECT count(*) AS n FROM x").to_pylist() == [{"n": 3}]
    wh.replace("x", data)
    wh.replace("x", data.slice(0, 0), window=Window("ts", t, t.replace(hour=1)))
    assert _rows(wh, "SELECT v FROM x ORDER BY v") == [{"v": 2}]


def assert_earlier_tables_gain_new_columns(wh: Warehouse) -> None:
    """A contract that adds a nullable column (forecasts gained p50_base) writes into the
    table an earlier version created; its old rows read the new column as null. Shared by
    the DuckDB and PostgreSQL warehouse tests."""
    old = pa.table({"day": ["d1", "d2"], "p50": [1.0, 2.0]})
    wh.replace("forecasts", old)
    new = pa.table({"day": ["d2"], "p50": [3.0], "p50_base": [2.5]})
    wh.replace("forecasts", new, match={"day": ["d2"]})
    wh.replace("forecasts", new, match={"day": ["d2"]})  # the column is there now
    assert wh.read("SELECT * FROM forecasts ORDER BY day").to_pylist() == [
        {"day": "d1", "p50": 1.0, "p50_base": None},
        {"day": "d2", "p50": 3.0, "p50_base": 2.5},
    ]


def test_a_table_from_an_earlier_version_gains_new_columns(wh: DuckDBWarehouse) -> None:
    assert_earlier_tables_gain_new_columns(wh)


def one_reading() -> pa.Table:
    """M1's reading of 2026-03-16 00:00 UTC, as raw_readings holds it."""
    return contract.conform(
        pa.table(
            {
                "meter_id": ["M1"],
                "ts": pa.array([datetime(2026, 3, 16, tzinfo=UTC)], contract.UTC_TS),
                "interval_minutes": pa.array([15], pa.int32()),
                "channel": ["delivered"],
                "kwh": [0.5],
                "source_file": ["readings/a.csv"],
                "source_row": [1],
                "landed_at": pa.array([datetime(2026, 3, 17, tzinfo=UTC)], contract.UTC_TS),
            }
        ),
        contract.READINGS,
    )


def test_analyst_queries_see_tables_and_lake_views(wh: DuckDBWarehouse) -> None:
    wh.replace("meters", pa.table({"meter_id": ["M1", "M2"]}))
    wh.lake.write_partition("raw_readings", date(2026, 3, 16), one_reading())
    result = wh.query_readonly(
        "SELECT m.meter_id, r.kwh, r.day FROM meters m JOIN raw_readings r USING (meter_id)"
    )
    assert result.to_pylist() == [{"meter_id": "M1", "kwh": 0.5, "day": date(2026, 3, 16)}]
    assert {"meters", "raw_readings"} <= set(wh.tables())


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM meters",
        "INSERT INTO meters VALUES ('M9')",
        "DROP TABLE meters",
        "CREATE TABLE y AS SELECT 1",
        "UPDATE meters SET meter_id = 'X'",
        "SELECT 1; DELETE FROM meters",
        "ATTACH 'other.duckdb' AS other",
        "COPY meters TO 'out.csv'",
    ],
)
def test_writing_statements_are_refused_and_change_nothing(
    wh: DuckDBWarehouse, statement: str, tmp_path: Path
) -> None:
    wh.replace("meters", pa.table({"meter_id": ["M1", "M2"]}))
    with pytest.raises(ReadOnlyViolation, match="refused"):
        wh.query_readonly(statement)
    assert wh.read("SELECT count(*) AS n FROM meters").to_pylist() == [{"n": 2}]
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("INSTALL httpfs", "INSTALL"),
        ("/* first */ install httpfs", "INSTALL"),
        ("LOAD httpfs", "LOAD"),
        ("PRAGMA threads=4", "PRAGMA"),
        ("PRAGMA table_info('meters')", "PRAGMA"),
        ("SET threads = 1", "SET"),
        ("RESET threads", "RESET"),
        ("CHECKPOINT", "CHECKPOINT"),
        ("UPDATE EXTENSIONS", "UPDATE"),
        ("SELECT 1; PRAGMA threads=4", "PRAGMA"),
    ],
)
def test_a_refusal_names_the_statement_given(
    wh: DuckDBWarehouse, statement: str, named: str
) -> None:
    wh.replace("meters", pa.table({"meter_id": ["M1"]}))
    with pytest.raises(ReadOnlyViolation, match=rf"^refused: {named} statements are not allowed"):
        wh.query_readonly(statement)


def test_a_query_past_the_statement_timeout_is_interrupted(tmp_path: Path) -> None:
    wh = DuckDBWarehouse(tmp_path / "warehouse.duckdb", sql_timeout_s=0.2)
    wh.replace("meters", pa.table({"meter_id": ["M1"]}))
    started = time.monotonic()
    with pytest.raises(WarehouseError, match=r"cancelled: .* 0\.2 s \(SMARTGRID_SQL_TIMEOUT_S\)"):
        wh.query_readonly("SELECT sum(a * b) FROM range(100000000000) t(a), range(1) u(b)")
    assert time.monotonic() - started < 10
    assert wh.query_readonly("SELECT count(*) AS n FROM meters").to_pylist() == [{"n": 1}]


def test_file_access_from_sql_is_refused(wh: DuckDBWarehouse) -> None:
    wh.replace("meters", pa.table({"meter_id": ["M1"]}))
    with pytest.raises(Exception, match="disabled"):
        wh.query_readonly("SELECT * FROM read_csv('/etc/hostname')")


@pytest.fixture
def sql_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SMARTGRID_HOME", str(tmp_path))
    for name in ("SMARTGRID_WAREHOUSE_URL", "SMARTGRID_LAKE_URL", "SMARTGRID_LANDING_URL"):
        monkeypatch.delenv(name, raising=False)
    DuckDBWarehouse(tmp_path / "warehouse.duckdb").replace(
        "meters", pa.table({"meter_id": ["M1", "M2"], "customer_class": ["residential"] * 2})
    )
    return tmp_path / "warehouse.duckdb"


def test_sql_command_prints_table_csv_and_json(
    sql_env: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["sql", "SELECT meter_id FROM meters ORDER BY 1"]) == 0
    out = capsys.readouterr().out
    assert "M1" in out and "(2 rows)" in out
    assert main(["sql", "--format", "csv", "SELECT meter_id FROM meters ORDER BY 1"]) == 0
    assert capsys.readouterr().out.splitlines() == ['"meter_id"', '"M1"', '"M2"']
    assert main(["sql", "--format", "json", "SELECT count(*) AS n FROM meters"]) == 0
    assert '"n": 2' in capsys.readouterr().out


def test_sql_command_refuses_writes_in_one_line(
    sql_env: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["sql", "DELETE FROM meters"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused" in err
    assert main(["sql", "SELECT count(*) AS n FROM meters"]) == 0
    assert "2" in capsys.readouterr().out


def test_sql_command_reports_any_failure_in_one_line(
    sql_env: Path, capsys: pytest.CaptureFixture
) -> None:
    for args in (
        ["SELECT no_such_column FROM meters"],
        ["--format", "csv", "SELECT [1, 2] AS a_list"],  # CSV has no lists
        ["   "],
    ):
        assert main(["sql", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("smartgrid sql: "), err


def test_sql_command_says_busy_while_a_writer_holds_the_file(
    sql_env: Path, capsys: pytest.CaptureFixture
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
            " time.sleep(30)",
            str(sql_env),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        assert main(["sql", "SELECT 1"]) == 2
        assert time.monotonic() - started < 10, "the CLI must not wait for the writer"
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        assert "warehouse busy" in err and "retry" in err
    finally:
        holder.kill()
        holder.wait()


def test_pipeline_reads_wait_for_a_busy_warehouse_then_give_a_clear_error(
    wh: DuckDBWarehouse,
) -> None:
    wh.replace("meters", pa.table({"meter_id": ["M1"]}))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
            " print('held', flush=True); time.sleep(30)",
            str(wh.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WarehouseBusy, match="warehouse busy"):
            wh.read("SELECT * FROM meters")
    finally:
        holder.kill()
        holder.wait()
    assert wh.read("SELECT * FROM meters").num_rows == 1
