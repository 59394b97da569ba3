"""The dbt marts in the lineage graph, on DuckDB and on the real local PostgreSQL.

One synthetic utility is materialized through the whole graph twice per target (a week, a
registry change, the next week): every mart and its dbt tests (asset checks) run on both
targets and agree; the README's questions run through `smartgrid sql` on both and are checked
against the synthetic ground truth (labels.csv); the analyst role reads the marts and nothing
else; transformer loading has one source; the incremental marts replace their window only.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import psycopg
import pytest

from smartgrid_assets import anomalies
from smartgrid_assets.cli import main
from smartgrid_assets.days import day_bounds_utc
from smartgrid_assets.definitions import defs
from smartgrid_assets.defs.marts import MART_ASSETS
from smartgrid_assets.demo import DAILY_ASSETS, partition_range_tags
from smartgrid_assets.pipeline.land import land_tree
from smartgrid_assets.platform import Platform
from smartgrid_assets.settings import load_settings
from smartgrid_assets.synth import synthesize
from smartgrid_tests.conftest import TEST_TZ

README = Path(__file__).resolve().parent.parent / "README.md"
START = date(2026, 3, 16)
DAYS = 14
MIDDLE = START + timedelta(days=6)
LAST = START + timedelta(days=DAYS - 1)
FACTS = ["fct_meter_daily", "fct_feeder_hourly", "fct_transformer_loading", "fct_forecast_accuracy"]
MARTS = {
    "dim_feeder": ["feeder_id"],
    "dim_transformer": ["transformer_id"],
    "fct_meter_daily": ["meter_id", "local_day"],
    "fct_feeder_hourly": ["feeder_id", "ts"],
    "fct_transformer_loading": ["transformer_id", "local_day"],
    "fct_forecast_accuracy": ["level", "asset_id", "model", "issued_at", "ts"],
    "fct_anomalies": ["event_id"],
    "dim_meter": ["meter_id", "valid_from"],
}
# dim_meter columns that say when things landed: different for two separately landed copies
LANDING_TIMES = {"valid_from", "valid_to", "registry_loaded_at", "version_loaded_at"}


@dataclasses.dataclass
class Built:
    target: str
    platform: Platform
    utility: Path
    results: list
    moved: dict
    removed: str
    registry_v2_landed_at: datetime
    oids: dict = dataclasses.field(default_factory=dict)
    pg: object = None


@pytest.fixture(scope="module")
def utility(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("utility")
    synthesize(out, meters=120, days=DAYS, seed=3, tz=TEST_TZ, start=START)
    return out


def _labels(utility: Path) -> list[dict]:
    with open(utility / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def _registry_v2(utility: Path) -> tuple[str, dict, str]:
    """The registry with one meter moved to a transformer on another feeder and one removed
    at the end of the period (meters without labels, so the ground truth stays)."""
    labelled = {r["meter_id"] for r in _labels(utility)} | {
        m for r in _labels(utility) for m in re.findall(r"M\d{6}", r["detail"])
    }
    with open(utility / "registry" / "meters.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(utility / "registry" / "transformers.csv", newline="") as f:
        transformers = list(csv.DictReader(f))
    plain = [
        r
        for r in rows
        if r["meter_id"] not in labelled and not r["removed_at"] and r["has_solar"] == "false"
    ]
    mover, leaver = plain[0], plain[1]
    target = next(t for t in transformers if t["feeder_id"] != mover["feeder_id"])
    moved = {
        "meter_id": mover["meter_id"],
        "transformer_before": mover["transformer_id"],
        "transformer_now": target["transformer_id"],
        "feeder_before": mover["feeder_id"],
        "feeder_now": target["feeder_id"],
    }
    mover.update(
        transformer_id=target["transformer_id"],
        feeder_id=target["feeder_id"],
        substation_id=target["substation_id"],
    )
    leaver["removed_at"] = day_bounds_utc(LAST, TEST_TZ)[1].isoformat()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue(), moved, leaver["meter_id"]


def _materialize(platform: Platform, selection: list[str], first=None, last=None):
    result = dg.materialize(
        list(defs.assets or []),
        selection=selection,
        instance=dg.DagsterInstance.ephemeral(),
        resources={"platform": platform},
        tags=partition_range_tags(first, last) if first else None,
    )
    assert result.success
    return result


def _oids(url: str) -> dict[str, int]:
    with psycopg.connect(url) as con:
        rows = con.execute(
            "SELECT relname, oid FROM pg_class WHERE relname = ANY(%s)", [list(MARTS)]
        ).fetchall()
    return dict(rows)


def _build(target: str, home: Path, utility: Path, pg=None) -> Built:
    env = {"SMARTGRID_HOME": str(home)}
    if pg is not None:
        env |= {"SMARTGRID_WAREHOUSE_URL": pg.url, "SMARTGRID_ANALYST_ROLE": pg.analyst_role}
    platform = Platform(dataclasses.replace(load_settings(env), tz=TEST_TZ))
    land_tree(platform.landing, utility, late_arrival=START + timedelta(days=DAYS))
    results = [_materialize(platform, ["meters"])]
    results.append(_materialize(platform, DAILY_ASSETS, START, MIDDLE))
    oids = _oids(pg.url) if pg is not None else {}
    registry, moved, removed = _registry_v2(utility)
    landed = platform.landing.put("registry/2099-01-01/meters.csv", registry.encode())
    results.append(_materialize(platform, ["meters"]))
    results.append(_materialize(platform, DAILY_ASSETS, MIDDLE + timedelta(days=1), LAST))
    return Built(target, platform, utility, results, moved, removed, landed.last_modified, oids, pg)


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory, utility: Path) -> Built:
    return _build("duckdb", tmp_path_factory.mktemp("duck"), utility)


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory, utility: Path, postgres_warehouse) -> Built:
    return _build("postgres", tmp_path_factory.mktemp("pg"), utility, postgres_warehouse)


@pytest.fixture(params=["duckdb", "postgres"])
def built(request: pytest.FixtureRequest) -> Built:
    return request.getfixturevalue("duck" if request.param == "duckdb" else "pg")


# --- the graph ------------------------------------------------------------------------------


def test_marts_are_in_the_lineage_graph_downstream_of_the_python_assets() -> None:
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    unpartitioned = {"meters", "detector_evaluation"}
    assert set(MART_ASSETS) <= keys and set(DAILY_ASSETS) | unpartitioned == keys
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
    }
    assert parents["stg_meters"] == {"meters"}
    assert parents["stg_feeder_hourly"] == {"feeder_hourly"}
    assert parents["stg_rejected_readings"] == {"raw_readings"}
    assert parents["stg_meter_day_sufficiency"] == {"cleaned_readings"}
    assert parents["stg_anomaly_events"] == {"anomaly_report"}
    assert parents["stg_load_forecasts"] == {"load_forecasts"}
    assert parents["stg_transformer_loading"] == {"transformer_loading"}
    assert parents["dim_meter"] == {"stg_meters"}, "the registry snapshot"
    for key in MART_ASSETS:
        node = graph.get(dg.AssetKey(key))
        assert node.partitions_def is not None and node.pools == {"warehouse"}, key
    checks = {c.name for c in graph.asset_check_keys}
    assert "unique_combination_fct_meter_daily_meter_id__local_day" in checks
    assert any(c.startswith("relationships_fct_feeder_hourly_feeder_id") for c in checks)
    assert any(c.startswith("accepted_values_fct_anomalies_severity") for c in checks)


def test_the_marts_accept_every_anomaly_type_the_detectors_report() -> None:
    import yaml

    from smartgrid_assets.anomalies import ANOMALY_TYPES

    repo = Path(__file__).resolve().parents[1]
    marts = yaml.safe_load((repo / "dbt_project/models/marts/_marts.yml").read_text())
    model = next(m for m in marts["models"] if m["name"] == "fct_anomalies")
    column = next(c for c in model["columns"] if c["name"] == "type")
    test = next(t for t in column["data_tests"] if isinstance(t, dict))
    assert set(test["accepted_values"]["arguments"]["values"]) == set(ANOMALY_TYPES)


def test_every_mart_built_and_every_dbt_test_passed_as_an_asset_check(built: Built) -> None:
    last = built.results[-1]
    materialized = {e.asset_key.to_user_string() for e in last.get_asset_materialization_events()}
    assert set(MART_ASSETS) <= materialized
    evaluations = [  # the run's data-quality checks are test_quality's
        e
        for e in last.get_asset_check_evaluations()
        if e.asset_check_key.asset_key.path[0] in MART_ASSETS
    ]
    expected = {
        k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key.path[0] in MART_ASSETS
    }
    assert {e.asset_check_key for e in evaluations} == expected
    failed = [e.asset_check_key.name for e in evaluations if not e.passed]
    assert not failed, failed
    partitions = {
        e.partition for e in last.get_asset_materialization_events() if e.asset_key.path[0] in FACTS
    }
    assert partitions == {(MIDDLE + timedelta(days=i)).isoformat() for i in range(1, 8)}


def _rows(built: Built, table: str) -> list[dict]:
    keys = ", ".join(MARTS[table])
    rows = built.platform.warehouse.read(f"SELECT * FROM {table} ORDER BY {keys}").to_pylist()
    if table == "dim_meter":
        rows = [
            {k: v for k, v in r.items() if k not in LANDING_TIMES | {"meter_version_id"}}
            for r in rows
        ]
    return rows


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def test_the_same_marts_on_duckdb_and_postgres(duck: Built, pg: Built) -> None:
    for table in MARTS:
        ours, theirs = _rows(duck, table), _rows(pg, table)
        assert ours, table
        assert len(ours) == len(theirs), table
        for a, b in zip(ours, theirs, strict=True):
            assert a.keys() == b.keys(), table
            different = {k: (a[k], b[k]) for k in a if not _same(a[k], b[k])}
            assert not different, (table, different)


def test_incremental_marts_hold_every_partition_once(built: Built) -> None:
    days = built.platform.warehouse.read(
        "SELECT count(DISTINCT local_day) AS days, count(*) AS n, "
        "count(DISTINCT meter_id) AS meters FROM fct_meter_daily"
    ).to_pylist()[0]
    assert days["days"] == DAYS, "both runs' windows are in the mart"
    source = built.platform.warehouse.read(
        "SELECT count(*) AS n FROM (SELECT meter_id, local_day FROM meter_day_sufficiency "
        "UNION SELECT meter_id, local_day FROM meter_daily) AS d"
    ).to_pylist()[0]
    assert days["n"] == source["n"]


def test_every_model_and_column_is_described_and_no_personal_data(duck: Built) -> None:
    from smartgrid_assets.warehouse_project import warehouse_project

    manifest = json.loads(warehouse_project.manifest_path.read_text())
    nodes = [
        n
        for n in manifest["nodes"].values()
        if n["resource_type"] in ("model", "snapshot") and n["package_name"] == "smartgrid"
    ]
    assert {n["name"] for n in nodes} == set(MART_ASSETS)
    for node in nodes:
        assert node["description"].strip(), node["name"]
        actual = duck.platform.warehouse.read(f"SELECT * FROM {node['name']} LIMIT 0")
        documented = {c: v["description"].strip() for c, v in node["columns"].items()}
        assert set(documented) == set(actual.column_names), node["name"]
        assert all(documented.values()), node["name"]
        personal = {"lat", "lon", "latitude", "longitude", "name", "address", "customer_name"}
        assert not personal & set(actual.column_names), node["name"]


# --- the README's questions on both targets ----------------------------------------------------


def readme_questions() -> dict[str, str]:
    text = README.read_text()
    section = text.split("\n## Querying the warehouse\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"^### (.+?)\n\n```sql\n(.*?)```", section, flags=re.S | re.M)
    return {title.strip(): sql.strip() for title, sql in found}


def test_the_readme_has_at_least_five_questions_and_each_has_a_check() -> None:
    questions = readme_questions()
    assert len(questions) >= 5
    assert set(questions) == set(GROUND_TRUTH)


def _ask(built: Built, sql: str, monkeypatch: pytest.MonkeyPatch, capsys) -> list[dict]:
    """Through `smartgrid sql --format json`, as an analyst would."""
    monkeypatch.setenv("SMARTGRID_HOME", str(built.platform.settings.home))
    monkeypatch.setenv("SMARTGRID_WAREHOUSE_URL", built.platform.settings.warehouse_url)
    capsys.readouterr()
    code = main(["sql", "--format", "json", sql])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _window(built: Built) -> tuple[datetime, datetime]:
    return day_bounds_utc(START, TEST_TZ)[0], day_bounds_utc(LAST, TEST_TZ)[1]


def _labels_in_window(built: Built, kind: str | None = None) -> list[dict]:
    start, end = _window(built)
    return [
        r
        for r in _labels(built.utility)
        if (kind is None or r["type"] == kind)
        and datetime.fromisoformat(r["start"]) < end
        and datetime.fromisoformat(r["end"]) > start
    ]


def check_top_transformers(built: Built, rows: list[dict]) -> None:
    overloaded = {r["asset_id"] for r in _labels_in_window(built, "transformer_overload")}
    assert overloaded, "the synthetic utility has an overloaded transformer"
    above = [r for r in rows if r["hours_above_rating"] > 0]
    assert rows[0]["transformer_id"] in overloaded
    assert overloaded <= {r["transformer_id"] for r in above}
    for r in above:
        assert r["peak_loading"] > 1 and r["peak_kva"] > r["kva_rating"]


def check_feeder_peaks(built: Built, rows: list[dict]) -> None:
    wh = built.platform.warehouse
    actual = {
        (r["asset_id"], str(r["local_day"])): r["kwh"]
        for r in wh.read(
            "SELECT asset_id, local_day, max(kwh) AS kwh FROM feeder_hourly "
            "WHERE level = 'feeder' GROUP BY asset_id, local_day"
        ).to_pylist()
    }
    forecast = {
        (r["asset_id"], str(r["target_day"])): r["p50"]
        for r in wh.read(
            "SELECT f.asset_id, f.target_day, max(f.p50) AS p50 FROM load_forecasts f "
            "JOIN feeder_hourly h ON h.level = f.level AND h.asset_id = f.asset_id "
            "AND h.ts = f.ts WHERE f.level = 'feeder' AND f.model = 'gbm' "
            "GROUP BY f.asset_id, f.target_day"
        ).to_pylist()
    }
    assert len(rows) == len(forecast) > 0
    for r in rows:
        key = (r["feeder_id"], r["local_day"])
        assert r["peak_kwh"] == pytest.approx(actual[key])
        assert r["forecast_peak_kwh"] == pytest.approx(forecast[key])


def check_lowest_sufficiency(built: Built, rows: list[dict]) -> None:
    # a whole local day of Wh sent as kWh: every interval edited (X), none actual
    edited = {r["meter_id"] for r in _labels_in_window(built, "unit_wh_as_kwh")}
    assert edited and edited <= {r["meter_id"] for r in rows[:5]}, rows[:5]
    values = [r["sufficiency"] for r in rows]
    assert values == sorted(values) and values[0] < 1


def check_forecast_accuracy(built: Built, rows: list[dict]) -> None:
    python = {
        (r["level"], r["model"]): r
        for r in built.platform.warehouse.read(
            "SELECT level, model, sum(hours) AS hours, sum(mae * hours) / sum(hours) AS mae "
            "FROM forecast_accuracy GROUP BY level, model"
        ).to_pylist()
    }
    assert {(r["level"], r["model"]) for r in rows} == set(python)
    for r in rows:
        theirs = python[(r["level"], r["model"])]
        assert r["hours"] == theirs["hours"]
        assert r["mae_kwh"] == pytest.approx(theirs["mae"])
        assert 0 <= r["coverage_p10_p90"] <= 1
    feeder = {r["model"]: r["mae_kwh"] for r in rows if r["level"] == "feeder"}
    assert feeder["gbm"] < feeder["seasonal_naive_1d"]


def check_anomalies_per_feeder(built: Built, rows: list[dict]) -> None:
    wh = built.platform.warehouse
    assert sum(r["events"] for r in rows) == wh.read("SELECT * FROM anomaly_events").num_rows
    feeders = {
        r["meter_id"]: r["feeder_id"]
        for r in wh.read("SELECT meter_id, feeder_id FROM meters").to_pylist()
    } | {
        r["transformer_id"]: r["feeder_id"]
        for r in wh.read("SELECT transformer_id, feeder_id FROM transformers").to_pylist()
    }
    injected = {
        (feeders[r["meter_id"] or r["asset_id"]], r["type"])
        for r in _labels_in_window(built)
        if r["class"] == "anomaly"
    }
    found = {(r["feeder_id"], r["type"]) for r in rows}
    assert len(injected & found) >= 0.8 * len(injected), injected - found
    overload = {p for p in injected if p[1] == "transformer_overload"}
    assert overload and overload <= found


def check_consumption_drop(built: Built, rows: list[dict]) -> None:
    theft = [r for r in _labels_in_window(built, "theft_drop")]
    assert theft, "the synthetic utility has a theft-like drop"
    assert rows[0]["meter_id"] in {r["meter_id"] for r in theft}
    assert rows[0]["drop_share"] > 0.2
    assert built.removed not in {r["meter_id"] for r in rows}, "removed meters are left out"


def check_registry_changes(built: Built, rows: list[dict]) -> None:
    by_meter = {r["meter_id"]: r for r in rows}
    assert set(by_meter) == {built.moved["meter_id"], built.removed}
    moved = by_meter[built.moved["meter_id"]]
    for key in ("transformer_before", "transformer_now", "feeder_before", "feeder_now"):
        assert moved[key] == built.moved[key], key
    assert moved["removed_at"] is None
    removed = by_meter[built.removed]
    assert removed["removed_at"] is not None
    assert removed["transformer_before"] == removed["transformer_now"]
    landed = built.registry_v2_landed_at.astimezone(UTC)
    for r in rows:
        assert datetime.fromisoformat(r["changed_at"]) == landed


GROUND_TRUTH = {
    "Top transformers by hours above rating": check_top_transformers,
    "Feeder peak against the day-ahead forecast": check_feeder_peaks,
    "Meters with the lowest data sufficiency": check_lowest_sufficiency,
    "Day-ahead forecast accuracy by level and model": check_forecast_accuracy,
    "Anomaly events per feeder and type": check_anomalies_per_feeder,
    "Meters whose consumption dropped most (last 7 days against the 7 before)": (
        check_consumption_drop
    ),
    "Registry changes: meters moved or removed": check_registry_changes,
}


def test_readme_questions_answer_the_ground_truth(
    built: Built, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for title, sql in readme_questions().items():
        rows = _ask(built, sql, monkeypatch, capsys)
        assert rows, title
        GROUND_TRUTH[title](built, rows)


# --- transformer loading: one computation ------------------------------------------------------


def test_overload_events_and_the_loading_mart_are_one_computation(built: Built) -> None:
    wh = built.platform.warehouse
    events = wh.read(
        'SELECT asset_id, "start", "end", score, evidence FROM anomaly_events '
        "WHERE type = 'transformer_overload'"
    ).to_pylist()
    assert events
    for event in events:
        evidence = json.loads(event["evidence"])
        days = sorted(
            {
                (event["start"] + timedelta(hours=h))
                .astimezone(built.platform.settings.zone)
                .date()
                for h in range(int(evidence["hours"]))
            }
        )
        mart = wh.read(
            "SELECT max(peak_loading) AS peak, sum(hours_above_rating) AS hours "
            "FROM fct_transformer_loading WHERE transformer_id = ? "
            "AND local_day IN (SELECT unnest(?))",
            [event["asset_id"], days],
        ).to_pylist()[0]
        assert mart["peak"] == pytest.approx(evidence["peak_loading"], rel=1e-12)
        assert mart["peak"] == pytest.approx(event["score"], rel=1e-12)
        assert mart["hours"] == evidence["hours"]
    # and the hourly numbers are the detector's function itself
    hourly = wh.read(
        "SELECT transformer_id, ts, loading FROM transformer_loading WHERE local_day = ?", [LAST]
    )
    start, end = day_bounds_utc(LAST, TEST_TZ)
    recomputed = anomalies.transformer_loading(
        built.platform.lake.read_days("cleaned_readings", [LAST], _schema("cleaned_readings")),
        built.platform.lake.read_days("meter_hourly", [LAST], _schema("meter_hourly")),
        wh.read("SELECT * FROM meters"),
        wh.read("SELECT * FROM transformers"),
        window_end=end,
    )
    assert hourly.num_rows == len(recomputed) > 0
    mine = {(r["transformer_id"], r["ts"]): r["loading"] for r in hourly.to_pylist()}
    for tx, ts, loading in zip(
        recomputed["transformer_id"], recomputed["ts"], recomputed["loading"], strict=True
    ):
        key = (tx, datetime.fromtimestamp(ts / 1e6, UTC))
        assert mine[key] == pytest.approx(loading, rel=1e-12)
    assert start <= min(k[1] for k in mine)


def _schema(name: str):
    from smartgrid_assets import contract

    return contract.SCHEMAS[name]


# --- PostgreSQL: roles and indexes ------------------------------------------------------------


def test_the_analyst_role_reads_the_marts_and_nothing_else(pg: Built) -> None:
    role = pg.pg.analyst_role
    with psycopg.connect(pg.pg.url_as(role), autocommit=True) as con:
        assert con.execute("SELECT current_user").fetchone() == (role,)
        for mart in MARTS:
            assert con.execute(f"SELECT count(*) FROM {mart}").fetchone()[0] > 0, mart
        for statement in (
            "INSERT INTO fct_meter_daily (meter_id, local_day) VALUES ('M9', '2026-03-16')",
            "UPDATE fct_transformer_loading SET peak_kva = 0",
            "DELETE FROM fct_anomalies",
            "TRUNCATE dim_meter",
            "DROP TABLE fct_feeder_hourly",
            "CREATE TABLE mine (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(statement)
        for raw in (
            "meters",
            "meters_history",
            "transformers",
            "feeder_hourly",
            "meter_daily",
            "transformer_loading",
            "anomaly_events",
            "load_forecasts",
            "stg_meters",
            "stg_feeder_hourly",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(f"SELECT count(*) FROM {raw}")
    rebuilt = {t for t, oid in _oids(pg.pg.url).items() if pg.oids.get(t) != oid}
    assert {"fct_anomalies", "dim_feeder", "dim_transformer"} <= rebuilt, (
        "tables dbt rebuilt in the second run are still granted (above)"
    )


def test_indexes_where_the_marts_are_queried_come_from_dbt(pg: Built) -> None:
    with psycopg.connect(pg.pg.url) as con:
        indexes = {
            (table, tuple(re.search(r"\((.*)\)", definition).group(1).split(", ")))
            for table, definition in con.execute(
                "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            ).fetchall()
        }
    assert ("fct_meter_daily", ("meter_id", "local_day")) in indexes
    assert ("fct_feeder_hourly", ("feeder_id", "ts")) in indexes
    assert ("fct_transformer_loading", ("transformer_id", "local_day")) in indexes
    assert ("fct_forecast_accuracy", ("target_day",)) in indexes
    assert not [t for t, _ in indexes if not t.startswith(("fct_", "dim_"))], "only marts"


# --- partition-aware incremental marts --------------------------------------------------------


def test_a_partition_run_replaces_its_days_of_the_facts_and_nothing_else(duck: Built) -> None:
    wh = duck.platform.warehouse
    tampered = ("fct_meter_daily", "fct_transformer_loading")
    last_rows = {
        t: wh.read(f"SELECT * FROM {t} WHERE local_day = ? ORDER BY ALL", [LAST]) for t in tampered
    }
    con = duckdb.connect(str(wh.path))
    try:
        for table in tampered:
            con.execute(f"UPDATE {table} SET hours = -1 WHERE local_day IN (?, ?)", [START, LAST])
    finally:
        con.close()
    _materialize(duck.platform, MART_ASSETS, LAST, LAST)
    for table in tampered:
        stale = wh.read(f"SELECT DISTINCT local_day FROM {table} WHERE hours = -1").to_pylist()
        assert stale == [{"local_day": START}], "the run replaced its day and left the others"
        now = wh.read(f"SELECT * FROM {table} WHERE local_day = ? ORDER BY ALL", [LAST])
        assert now.equals(last_rows[table]), "and rebuilt it as it was"
    _materialize(duck.platform, MART_ASSETS, START, START)
    for table in tampered:
        assert wh.read(f"SELECT count(*) AS n FROM {table} WHERE hours = -1")["n"][0].as_py() == 0
