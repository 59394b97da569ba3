"""`smartgrid sql` is read-only because the database refuses, not because a parser does.

On PostgreSQL it connects as a least-privilege reader role (never the owner's login), in a READ
ONLY transaction under a statement timeout; every known bypass (function names quoted, commented
or schema-qualified, `set_config('role', …)`, SET ROLE, SET SESSION AUTHORIZATION, large objects,
signalling a real second backend, COPY TO PROGRAM, writes) is refused by the server, also when
the statement-type check in front is bypassed, and the data stays as it was. On DuckDB, a lake
outage leaves the warehouse's own tables queryable and costs a query of a lake table one line.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql as pgsql

from smartgrid_assets.cli import main
from smartgrid_assets.lake import Lake
from smartgrid_assets.settings import Settings, load_settings
from smartgrid_assets.warehouse import ReadOnlyViolation, warehouse
from smartgrid_assets.warehouse.duckdb_warehouse import DuckDBWarehouse
from smartgrid_assets.warehouse.postgres_warehouse import PostgresWarehouse
from smartgrid_tests.test_warehouse import one_reading

SERVER_ROLES = (
    "pg_read_server_files",
    "pg_write_server_files",
    "pg_execute_server_program",
    "pg_signal_backend",
)
# What the server says when it refuses (the friendly check says "statements are not allowed").
SERVER_REFUSAL = r"refused: (permission denied|must be |cannot execute .* read-only)"


def drop_role(url: str, role: str) -> None:
    """Roles outlive a test's database: drop one the test or the warehouse created, with its
    privileges in the database at `url`."""
    with psycopg.connect(url, autocommit=True) as con:
        if con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
            con.execute(pgsql.SQL("DROP OWNED BY {}").format(pgsql.Identifier(role)))
            con.execute(pgsql.SQL("DROP ROLE {}").format(pgsql.Identifier(role)))


def _url_as(url: str, role: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


@pytest.fixture
def make_role(postgres_database: str) -> Iterator:
    """Creates LOGIN roles for a test (`make_role("IN ROLE x")`), dropped after it."""
    made: list[str] = []

    def make(options: str = "") -> str:
        role = f"sg_test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(postgres_database, autocommit=True) as con:
            con.execute(f'CREATE ROLE "{role}" LOGIN {options}')
        made.append(role)
        return role

    yield make
    for role in made:
        drop_role(postgres_database, role)


@pytest.fixture
def pg(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PostgresWarehouse]:
    """A small PostgreSQL warehouse written through the warehouse API; `smartgrid sql` is
    pointed at it by the environment (reader role derived, default timeout)."""
    monkeypatch.setenv("SMARTGRID_WAREHOUSE_URL", postgres_database)
    for name in ("SMARTGRID_SQL_URL", "SMARTGRID_SQL_TIMEOUT_S", "SMARTGRID_ANALYST_ROLE"):
        monkeypatch.delenv(name, raising=False)
    wh = warehouse(load_settings())
    assert isinstance(wh, PostgresWarehouse)
    wh.replace("meters", pa.table({"meter_id": ["M1", "M2"], "feeder_id": ["F1", "F1"]}))
    wh.replace("feeder_hourly", pa.table({"feeder_id": ["F1"], "kwh": [12.5]}))
    yield wh
    drop_role(postgres_database, wh.reader_role)


def _sql(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["sql", *args])
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


def _ask(capsys: pytest.CaptureFixture, query: str) -> list[dict]:
    code, out, err = _sql(capsys, "--format", "json", query)
    assert code == 0, err
    return json.loads(out)


def _unchanged(url: str) -> None:
    with psycopg.connect(url) as con:
        assert con.execute("SELECT count(*) FROM meters").fetchone() == (2,)
        assert con.execute("SELECT kwh FROM feeder_hourly").fetchone() == (12.5,)
        tables = con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' ORDER BY 1"
        ).fetchall()
        assert tables == [("feeder_hourly",), ("meters",)]


# --- who the query runs as ----------------------------------------------------------------------


@pytest.mark.postgres
def test_sql_runs_as_the_reader_role_in_a_read_only_transaction(
    pg: PostgresWarehouse, postgres_database: str, capsys: pytest.CaptureFixture
) -> None:
    reader = pg.reader_role
    login = urlsplit(pg.sql_url)
    assert reader.endswith("_sql_reader") and login.username == reader and not login.password
    assert _ask(capsys, "SELECT current_user AS u, session_user AS s") == [
        {"u": reader, "s": reader}
    ]
    assert _ask(capsys, "SHOW transaction_read_only") == [{"transaction_read_only": "on"}]
    assert _ask(capsys, "SHOW statement_timeout") == [{"statement_timeout": "1min"}]
    assert _ask(capsys, "SELECT count(*) AS n FROM meters") == [{"n": 2}]
    with psycopg.connect(postgres_database) as con:
        attributes = con.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
            "rolcanlogin FROM pg_roles WHERE rolname = %s",
            [reader],
        ).fetchone()
        assert attributes == (False, False, False, False, False, True)
        for role in (*SERVER_ROLES, "postgres"):
            member = con.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [reader, role])
            assert member.fetchone() == (False,), role
        rights = con.execute(
            "SELECT has_table_privilege(%(r)s, 'meters', 'SELECT'), "
            "has_table_privilege(%(r)s, 'meters', 'INSERT, UPDATE, DELETE, TRUNCATE'), "
            "has_schema_privilege(%(r)s, 'public', 'USAGE'), "
            "has_schema_privilege(%(r)s, 'public', 'CREATE')",
            {"r": reader},
        ).fetchone()
        assert rights == (True, False, True, False)


@pytest.mark.postgres
def test_tables_created_later_are_readable_too(
    pg: PostgresWarehouse, postgres_database: str, capsys: pytest.CaptureFixture
) -> None:
    pg.replace("anomaly_events", pa.table({"event_id": ["e1"]}))
    with psycopg.connect(postgres_database) as con:  # as dbt builds a mart: the owner's login
        con.execute("CREATE TABLE fct_meter_daily AS SELECT 'M1' AS meter_id")
        con.execute("CREATE VIEW stg_meters AS SELECT meter_id FROM meters")
    assert _ask(capsys, "SELECT count(*) AS n FROM anomaly_events") == [{"n": 1}]
    assert _ask(capsys, "SELECT meter_id FROM fct_meter_daily") == [{"meter_id": "M1"}]
    assert _ask(capsys, "SELECT count(*) AS n FROM stg_meters") == [{"n": 2}]


@pytest.mark.postgres
def test_a_privileged_sql_login_is_refused(
    pg: PostgresWarehouse,
    postgres_database: str,
    make_role,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    for login in (
        postgres_database,  # the owner (a superuser here)
        _url_as(postgres_database, make_role("IN ROLE pg_read_server_files")),
        _url_as(postgres_database, make_role("CREATEROLE")),
    ):
        monkeypatch.setenv("SMARTGRID_SQL_URL", login)
        code, out, err = _sql(capsys, "SELECT 1")
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1 and "refused" in err and "SMARTGRID_SQL_URL" in err


@pytest.mark.postgres
def test_an_operator_created_reader_gets_its_grants_from_the_next_write(
    pg: PostgresWarehouse,
    postgres_database: str,
    make_role,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    reader = make_role()
    monkeypatch.setenv("SMARTGRID_SQL_URL", _url_as(postgres_database, reader))
    code, _, err = _sql(capsys, "SELECT count(*) FROM meters")
    assert code == 2 and "permission denied for table meters" in err
    warehouse(load_settings()).replace("meters", pa.table({"meter_id": ["M1", "M2"]}))
    assert _ask(capsys, "SELECT current_user AS u, count(*) AS n FROM meters GROUP BY 1") == [
        {"u": reader, "n": 2}
    ]


@pytest.mark.postgres
def test_with_an_analyst_role_the_reader_reads_what_analysts_read(
    postgres_database: str, make_role, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    analyst = make_role()
    monkeypatch.setenv("SMARTGRID_WAREHOUSE_URL", postgres_database)
    monkeypatch.setenv("SMARTGRID_ANALYST_ROLE", analyst)
    wh = warehouse(load_settings())
    try:
        wh.replace("meters", pa.table({"meter_id": ["M1", "M2"]}))
        with psycopg.connect(postgres_database) as con:  # as dbt grants a mart
            con.execute("CREATE TABLE fct_meter_daily AS SELECT 'M1' AS meter_id")
            con.execute(f'GRANT SELECT ON fct_meter_daily TO "{analyst}"')
            member = con.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [wh.reader_role, analyst])
            assert member.fetchone() == (True,)
        assert _ask(capsys, "SELECT meter_id FROM fct_meter_daily") == [{"meter_id": "M1"}]
        code, _, err = _sql(capsys, "SELECT count(*) FROM meters")
        assert code == 2 and "permission denied for table meters" in err
    finally:
        drop_role(postgres_database, wh.reader_role)


# --- what the server refuses --------------------------------------------------------------------

# Statements the statement-type check lets through (they start like a query): the server
# refuses them, through `smartgrid sql` itself.
ALLOWED_BY_THE_CHECK = [
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT \"pg_read_file\"('/etc/hostname')",
    "SELECT pg_read_file/**/('/etc/hostname')",
    "SELECT pg_catalog.pg_read_file('/etc/hostname')",
    'SELECT "pg_catalog"."pg_read_file"(\'/etc/hostname\')',
    "SELECT PG_READ_FILE('/etc/hostname')",
    "SELECT pg_read_binary_file('/etc/hostname')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT \"pg_ls_dir\"('.')",
    "SELECT \"set_config\"('role', 'postgres', false)",
    "SELECT set_config('session_authorization', 'postgres', false)",
    "SELECT \"lo_import\"('/etc/hostname')",
    "SELECT lo_export(0, '/tmp/smartgrid-lo-export')",
    "SELECT pg_reload_conf()",
    "WITH gone AS (DELETE FROM meters RETURNING *) SELECT * FROM gone",
    "SELECT * INTO copied FROM meters",
    "EXPLAIN ANALYZE DELETE FROM meters",
]


@pytest.mark.postgres
@pytest.mark.parametrize("statement", ALLOWED_BY_THE_CHECK)
def test_the_server_refuses_what_the_check_lets_through(
    pg: PostgresWarehouse, postgres_database: str, statement: str, capsys
) -> None:
    code, out, err = _sql(capsys, statement)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("smartgrid sql: refused: ")
    assert "statements are not allowed" not in err, "the server's refusal, not the check's"
    with pytest.raises(ReadOnlyViolation, match=SERVER_REFUSAL):
        pg.run_readonly(statement)
    _unchanged(postgres_database)


# Statements the check refuses first: run past it (the lower-level `run_readonly`), the server
# refuses them too.
REFUSED_BY_THE_CHECK_TOO = [
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "COPY (SELECT 1) TO PROGRAM 'true'",
    "COPY meters FROM PROGRAM 'echo M9'",
    "COPY meters TO '/tmp/smartgrid-meters.csv'",
    "DELETE FROM meters",
    "UPDATE feeder_hourly SET kwh = 0",
    "INSERT INTO meters VALUES ('M9', 'F9')",
    "TRUNCATE meters",
    "DROP TABLE meters",
    "CREATE TABLE y (x int)",
    "GRANT pg_read_server_files TO CURRENT_USER",
    "ALTER TABLE meters ADD COLUMN x int",
]


@pytest.mark.postgres
@pytest.mark.parametrize("statement", REFUSED_BY_THE_CHECK_TOO)
def test_the_server_refuses_what_the_check_refuses_when_run_past_it(
    pg: PostgresWarehouse, postgres_database: str, statement: str, capsys
) -> None:
    code, _, err = _sql(capsys, statement)
    assert code == 2 and len(err.splitlines()) == 1 and "statements are not allowed" in err
    with pytest.raises(ReadOnlyViolation, match=SERVER_REFUSAL):
        pg.run_readonly(statement)
    _unchanged(postgres_database)


@pytest.mark.postgres
def test_other_backends_cannot_be_signalled(
    pg: PostgresWarehouse, postgres_database: str, make_role, capsys
) -> None:
    owner = psycopg.connect(postgres_database, autocommit=True)
    plain = psycopg.connect(_url_as(postgres_database, make_role()), autocommit=True)
    with owner, plain:
        for victim in (owner, plain):
            pid = victim.info.backend_pid
            for function in ("pg_terminate_backend", "pg_cancel_backend", "PG_TERMINATE_BACKEND"):
                code, _, err = _sql(capsys, f'SELECT "{function.lower()}"({pid})')
                assert code == 2 and len(err.splitlines()) == 1, err
                assert re.search(SERVER_REFUSAL, err), err
                with pytest.raises(ReadOnlyViolation, match=SERVER_REFUSAL):
                    pg.run_readonly(f"SELECT {function}/**/({pid})")
            assert victim.execute("SELECT pg_backend_pid()").fetchone() == (pid,)
    _unchanged(postgres_database)


@pytest.mark.postgres
def test_a_query_past_the_statement_timeout_is_cancelled(
    pg: PostgresWarehouse, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SMARTGRID_SQL_TIMEOUT_S", "0.3")
    assert _ask(capsys, "SHOW statement_timeout") == [{"statement_timeout": "300ms"}]
    started = time.monotonic()
    code, _, err = _sql(capsys, "SELECT pg_sleep(10)")
    assert time.monotonic() - started < 5
    assert code == 2 and len(err.splitlines()) == 1
    assert "cancelled" in err and "0.3 s" in err and "SMARTGRID_SQL_TIMEOUT_S" in err
    # Lowering the timeout inside the statement does not lift it for that statement.
    started = time.monotonic()
    code, _, err = _sql(capsys, "SELECT set_config('statement_timeout', '0', false), pg_sleep(10)")
    assert code == 2 and "cancelled" in err and time.monotonic() - started < 5


# --- the lake out of reach (DuckDB) -------------------------------------------------------------


def test_warehouse_tables_answer_while_the_lake_is_unreachable(
    s3_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    lake = Lake.from_settings(s3_settings)
    lake.write_partition("raw_readings", date(2026, 3, 16), one_reading())
    DuckDBWarehouse(tmp_path / "warehouse.duckdb").replace(
        "meters", pa.table({"meter_id": ["M1", "M2"]})
    )
    monkeypatch.setenv("SMARTGRID_HOME", str(tmp_path))
    monkeypatch.setenv("SMARTGRID_LAKE_URL", s3_settings.lake_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_settings.aws_endpoint_url)
    monkeypatch.delenv("SMARTGRID_WAREHOUSE_URL", raising=False)
    query = "SELECT m.meter_id, r.kwh FROM meters m JOIN raw_readings r USING (meter_id)"
    assert _ask(capsys, query) == [{"meter_id": "M1", "kwh": 0.5}]

    # The outage: the lake's endpoint is a loopback port nobody listens on.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead}")
    assert _ask(capsys, "SELECT count(*) AS n FROM meters") == [{"n": 2}]
    assert _ask(capsys, "SELECT 'raw_readings' AS t") == [{"t": "raw_readings"}]
    for statement in (query, 'SELECT count(*) FROM "Raw_Readings"'):
        code, out, err = _sql(capsys, statement)
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert err.startswith("smartgrid sql: lake table raw_readings is unavailable")
        assert s3_settings.lake_url in err
