"""Day-ahead load forecasting: timing, no look-ahead, naive models, gbm skill and accuracy."""

from __future__ import annotations

import datetime as dt
import itertools
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from smartgrid_assets.contract import FORECAST_ACCURACY, LOAD_FORECASTS
from smartgrid_assets.days import day_start_utc
from smartgrid_assets.features.calendar import holiday_country, holidays_in, is_holiday
from smartgrid_assets.forecasting import (
    MODELS,
    ForecastConfig,
    forecast_accuracy,
    forecast_day_ahead,
    issue_time,
    metrics,
    target_hours,
)

TZ = "Europe/Berlin"
START = dt.date(2026, 3, 16)  # 28 days to 2026-04-12, across the 2026-03-29 spring-forward
DAYS = 28
UTC_TS = pa.timestamp("us", tz="UTC")
FEEDERS = {"F1": ("north", "S1", 900.0), "F2": ("north", "S1", 600.0)}
FEEDERS |= {"F3": ("south", "S2", 1200.0), "F4": ("south", "S2", 400.0)}
FEEDERS |= {"F5": ("south", "S2", 750.0)}
DAY_FACTOR = np.array([1.0, 1.0, 1.0, 1.0, 0.97, 0.78, 0.62])  # Monday .. Sunday


def _hours(first: dt.date, days: int) -> pd.DatetimeIndex:
    start = day_start_utc(first, TZ)
    end = day_start_utc(first + dt.timedelta(days=days), TZ)
    return pd.date_range(start, end, freq="h", inclusive="left")


def _shape(local_hour: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Relative load by local hour: morning and evening peaks, flatter on days off."""
    morning = np.exp(-0.5 * ((local_hour - np.where(off, 10.0, 8.0)) / 2.0) ** 2)
    evening = np.exp(-0.5 * ((local_hour - 19.0) / 2.5) ** 2)
    return 0.55 + 0.35 * morning + 0.5 * evening


@cache
def synthetic(first: dt.date = START, days: int = DAYS, seed: int = 1):
    """FEEDER_HOURLY history (feeders, substations, system) and the weather forecasts issued."""
    rng = np.random.default_rng(seed)
    hours = _hours(first, days + 2)  # two more days so forecasts cover the last target day
    local = hours.tz_convert(TZ)
    h = np.asarray(local.hour, dtype=float)
    local_day = np.asarray(local.date)
    daily = np.unique(local_day)
    dow = np.asarray(local.dayofweek)
    off = (dow >= 5) | is_holiday(local_day, TZ)
    factor = np.where(is_holiday(local_day, TZ), DAY_FACTOR[6], DAY_FACTOR[dow])

    # true temperature per region: a daily cycle plus multi-day weather swings
    swings = np.cumsum(rng.normal(0.0, 1.8, (2, len(daily))), axis=1)
    day_idx = np.searchsorted(daily, local_day)
    true_t = 7.0 + 4.0 * np.cos(2 * np.pi * (h - 15.0) / 24.0) + swings[:, day_idx]
    true_t += np.array([[-1.0], [1.0]]) + rng.normal(0.0, 0.4, true_t.shape)

    # forecasts issued at 00:00 local of each day, 48 h ahead, error growing with lead time
    issues = [day_start_utc(d, TZ) for d in daily]
    wf_rows = []
    fc_for_hour = np.full(true_t.shape, np.nan)  # the one issued at 00:00 of the day before
    ts = hours.as_unit("us").asi8
    for k, issued in enumerate(issues):
        i0 = int(np.searchsorted(ts, _us([issued])[0]))
        idx = np.arange(i0, min(i0 + 48, len(ts)))
        lead = np.arange(len(idx))
        for r, region in enumerate(("north", "south")):
            value = true_t[r, idx] + rng.normal(0.0, 1.0, len(idx)) * (0.3 + 0.03 * lead)
            value = np.round(value, 2)
            wf_rows.append(pd.DataFrame({"region": region, "issued_at": issued, "ts": ts[idx]}))
            wf_rows[-1]["temperature_c"] = value
            nxt = day_idx[idx] == k + 1
            fc_for_hour[r, idx[nxt]] = value[nxt]
    weather = pd.concat(wf_rows, ignore_index=True)

    region_ix = {"north": 0, "south": 1}
    frames = []
    series: dict[tuple[str, str], tuple[np.ndarray, str | None, np.ndarray, np.ndarray]] = {}
    for fid, (region, _, base) in FEEDERS.items():
        r = region_ix[region]
        heat = 0.035 * np.maximum(15.0 - true_t[r], 0.0)
        noise = rng.normal(0.0, 0.03, len(h))
        kwh = base * (_shape(h, off) * factor + heat + noise)
        series[("feeder", fid)] = (kwh, region, true_t[r], fc_for_hour[r])
    for sid in ("S1", "S2"):
        members = [f for f, v in FEEDERS.items() if v[1] == sid]
        r = region_ix[FEEDERS[members[0]][0]]
        kwh = np.sum([series[("feeder", f)][0] for f in members], axis=0)
        series[("substation", sid)] = (kwh, FEEDERS[members[0]][0], true_t[r], fc_for_hour[r])
    total = np.sum([v[0] for k, v in series.items() if k[0] == "feeder"], axis=0)
    series[("system", "system")] = (total, None, true_t.mean(0), fc_for_hour.mean(0))

    keep = local_day < first + dt.timedelta(days=days)
    for (level, asset), (kwh, region, t_obs, t_fc) in series.items():
        frames.append(
            pd.DataFrame(
                {
                    "level": level,
                    "asset_id": asset,
                    "ts": ts[keep],
                    "local_day": local_day[keep],
                    "kwh": np.round(kwh[keep], 3),
                    "meters": 100,
                    "intervals_estimated": 0,
                    "intervals_suspect": 0,
                    "region": region,
                    "temperature_c": np.round(t_obs[keep], 2),
                    "temperature_forecast_c": np.round(t_fc[keep], 2),
                }
            )
        )
    hist = pd.concat(frames, ignore_index=True)
    return _feeder_table(hist), _weather_table(weather)


def _us(values) -> np.ndarray:
    """Timestamps (aware datetimes or integer microseconds) as integer microseconds."""
    values = pd.Series(values)
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(np.int64)
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("us").asi8


def _feeder_table(df: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            "level": pa.array(df["level"], pa.string()),
            "asset_id": pa.array(df["asset_id"], pa.string()),
            "ts": pa.array(_us(df["ts"])).cast(UTC_TS),
            "local_day": pa.array(df["local_day"], pa.date32()),
            "kwh": pa.array(df["kwh"], pa.float64()),
            "meters": pa.array(df["meters"], pa.int32()),
            "intervals_estimated": pa.array(df["intervals_estimated"], pa.int32()),
            "intervals_suspect": pa.array(df["intervals_suspect"], pa.int32()),
            "region": pa.array(df["region"], pa.string()),
            "temperature_c": pa.array(df["temperature_c"], pa.float64()),
            "temperature_forecast_c": pa.array(df["temperature_forecast_c"], pa.float64()),
        }
    )


def _weather_table(df: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            "region": pa.array(df["region"], pa.string()),
            "issued_at": pa.array(_us(df["issued_at"])).cast(UTC_TS),
            "ts": pa.array(_us(df["ts"])).cast(UTC_TS),
            "temperature_c": pa.array(df["temperature_c"], pa.float64()),
        }
    )


def _frame(table: pa.Table) -> pd.DataFrame:
    df = table.to_pandas()
    for col in ("ts", "issued_at"):
        if col in df:
            df[col] = pd.to_datetime(df[col], utc=True)
    return df


def _actual_profile(hist: pd.DataFrame, level: str, asset: str, day: dt.date) -> pd.Series:
    """Actual kWh of a series on a local day, indexed by local hour (duplicates averaged)."""
    rows = hist[(hist.level == level) & (hist.asset_id == asset)]
    local = rows.ts.dt.tz_convert(TZ)
    rows = rows[local.dt.date == day]
    return rows.groupby(rows.ts.dt.tz_convert(TZ).dt.hour)["kwh"].mean()


def _local_hours(ts: pd.Series) -> np.ndarray:
    return ts.dt.tz_convert(TZ).dt.hour.to_numpy()


@pytest.fixture(scope="module")
def data():
    return synthetic()


NAIVE = ("seasonal_naive_1d", "seasonal_naive_7d")
LAST = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def backtest(data):
    """Forecasts (all models) for each of the last 7 days of the data, and their accuracy."""
    hist, weather = data
    issued = pa.concat_tables(
        [forecast_day_ahead(hist, weather, LAST - dt.timedelta(days=k), TZ) for k in range(7)]
    )
    return issued, forecast_accuracy(issued, hist)


@pytest.fixture(scope="module")
def forecast(backtest):
    """The forecast for 2026-04-08, as issued 2026-04-07 00:00 local."""
    fc = backtest[0]
    return fc.filter(pc.equal(fc["target_day"], pa.scalar(dt.date(2026, 4, 8), pa.date32())))


# --- calendar -------------------------------------------------------------------------------


def test_calendar_holidays_by_time_zone():
    days = [dt.date(2026, 4, 2), dt.date(2026, 4, 3), dt.date(2026, 4, 6), dt.date(2026, 12, 25)]
    assert is_holiday(days, TZ).tolist() == [False, True, True, True]
    assert is_holiday(days, "UTC").tolist() == [False] * 4
    assert is_holiday(np.array(days, dtype="datetime64[D]"), TZ).tolist() == [0, 1, 1, 1]
    assert is_holiday([], TZ).shape == (0,)
    assert holiday_country(TZ) == "DE" and holiday_country("Asia/Tokyo") is None
    assert holidays_in(days, TZ)[0] == (dt.date(2026, 4, 3), "Good Friday")


# --- timing ---------------------------------------------------------------------------------


def test_issue_time_is_local_midnight_of_the_day_before_in_utc():
    assert issue_time(dt.date(2026, 3, 30), TZ) == dt.datetime(2026, 3, 28, 23, tzinfo=dt.UTC)
    assert issue_time(dt.date(2026, 3, 31), TZ) == dt.datetime(2026, 3, 29, 22, tzinfo=dt.UTC)
    assert issue_time(dt.date(2026, 7, 1), "UTC") == dt.datetime(2026, 6, 30, tzinfo=dt.UTC)


def test_target_hours_follow_dst():
    spring = target_hours(dt.date(2026, 3, 29), TZ)
    autumn = target_hours(dt.date(2026, 10, 25), TZ)
    assert len(spring) == 23 and len(autumn) == 25
    assert len(target_hours(dt.date(2026, 3, 30), TZ)) == 24
    assert len(target_hours(dt.date(2026, 10, 25), "UTC")) == 24
    assert spring[0] == dt.datetime(2026, 3, 28, 23, tzinfo=dt.UTC)
    assert spring[-1] == dt.datetime(2026, 3, 29, 21, tzinfo=dt.UTC)
    assert autumn[0] == dt.datetime(2026, 10, 24, 22, tzinfo=dt.UTC)
    assert autumn[-1] == dt.datetime(2026, 10, 25, 22, tzinfo=dt.UTC)
    assert all(b - a == dt.timedelta(hours=1) for a, b in itertools.pairwise(autumn))


# --- forecast table -------------------------------------------------------------------------


def test_schema_rows_and_order(forecast):
    assert forecast.schema.equals(LOAD_FORECASTS, check_metadata=True)
    df = _frame(forecast)
    assert set(df.model) == set(MODELS)
    series = set(zip(df.level, df.asset_id, strict=True))
    assert ("feeder", "F1") in series and ("system", "system") in series
    assert {lvl for lvl, _ in series} == {"feeder", "substation", "system"}  # default levels
    assert len(df) == len(series) * len(MODELS) * 24
    assert (df.issued_at == pd.Timestamp("2026-04-06T22:00Z")).all()
    assert (df.target_day == dt.date(2026, 4, 8)).all()
    keys = df[["level", "asset_id", "model", "ts"]]
    assert keys.equals(keys.sort_values(list(keys.columns), ignore_index=True))
    assert not keys.duplicated().any()


def test_quantiles_are_ordered_and_finite(forecast):
    df = _frame(forecast)
    assert np.isfinite(df[["p10", "p50", "p90"]].to_numpy()).all()
    assert (df.p10 <= df.p50).all() and (df.p50 <= df.p90).all()
    assert (df.p90 - df.p10 > 0).groupby(df.model).mean().min() > 0.9  # real bands


def test_levels_are_configurable(data):
    hist, weather = data
    cfg = ForecastConfig(levels=("system",))
    out = _frame(forecast_day_ahead(hist, weather, dt.date(2026, 4, 8), TZ, config=cfg))
    assert set(out.level) == {"system"}
    with pytest.raises(ValueError):
        ForecastConfig(levels=("county",))
    with pytest.raises(ValueError, match="unknown models"):
        forecast_day_ahead(hist, weather, dt.date(2026, 4, 8), TZ, models=("arima",))


def test_no_look_ahead(data, forecast):
    hist, weather = data
    issued = pd.Timestamp("2026-04-06T22:00Z")
    hdf = _frame(hist)
    late = (hdf.ts >= issued).to_numpy()
    assert late.sum() > 0
    for col, change in (("kwh", 5.0), ("temperature_c", 10.0), ("temperature_forecast_c", -9.0)):
        hdf.loc[late, col] = hdf.loc[late, col] * change + 1.0
    wdf = _frame(weather)
    after = (wdf.issued_at > issued).to_numpy()
    assert after.sum() > 0
    wdf.loc[after, "temperature_c"] += 15.0
    perturbed = forecast_day_ahead(
        _feeder_table(hdf),
        _weather_table(wdf),
        dt.date(2026, 4, 8),
        TZ,
    )
    assert perturbed.equals(forecast)


def test_weather_of_the_issue_matters(data, forecast):
    """The weather forecast issued at the issue time does feed the gbm (a control for the above)."""
    hist, weather = data
    wdf = _frame(weather)
    at_issue = (wdf.issued_at == pd.Timestamp("2026-04-06T22:00Z")).to_numpy()
    wdf.loc[at_issue, "temperature_c"] -= 15.0
    colder = forecast_day_ahead(
        hist,
        _weather_table(wdf),
        dt.date(2026, 4, 8),
        TZ,
        models=("gbm",),
    )
    base = _frame(forecast)
    base = base[base.model == "gbm"]
    assert _frame(colder).p50.sum() > base.p50.sum()


def test_naive_1d_repeats_day_d_minus_2(data, forecast):
    hist = _frame(data[0])
    df = _frame(forecast)
    for level, asset in (("feeder", "F3"), ("system", "system")):
        rows = df[(df.model == "seasonal_naive_1d") & (df.asset_id == asset)]
        expected = _actual_profile(hist, level, asset, dt.date(2026, 4, 6))
        np.testing.assert_allclose(rows.p50, expected.loc[_local_hours(rows.ts)])


def test_naive_7d_repeats_day_d_minus_7(data, forecast):
    hist = _frame(data[0])
    df = _frame(forecast)
    rows = df[(df.model == "seasonal_naive_7d") & (df.asset_id == "S2")]
    expected = _actual_profile(hist, "substation", "S2", dt.date(2026, 4, 1))
    np.testing.assert_allclose(rows.p50, expected.loc[_local_hours(rows.ts)])


def test_naive_maps_local_hours_on_spring_forward(data):
    hist, weather = data
    hdf = _frame(hist)
    # the target day itself is 23 hours long: 02:00 does not exist
    short = _frame(forecast_day_ahead(hist, weather, dt.date(2026, 3, 29), TZ, NAIVE))
    f1 = short[(short.asset_id == "F1") & (short.model == "seasonal_naive_1d")]
    assert len(f1) == 23 and 2 not in _local_hours(f1.ts)
    d2 = _actual_profile(hdf, "feeder", "F1", dt.date(2026, 3, 27))
    np.testing.assert_allclose(f1.p50, d2.loc[_local_hours(f1.ts)])
    # D-2 is the short day: its missing 02:00 is filled from 01:00
    after = _frame(forecast_day_ahead(hist, weather, dt.date(2026, 3, 31), TZ, NAIVE))
    f1 = after[(after.asset_id == "F1") & (after.model == "seasonal_naive_1d")]
    src = _actual_profile(hdf, "feeder", "F1", dt.date(2026, 3, 29))
    assert len(f1) == 24 and 2 not in src.index
    assert f1.p50.iloc[2] == src.loc[1]
    np.testing.assert_allclose(f1.p50.iloc[3:], src.loc[3:])


def test_naive_maps_local_hours_on_fall_back():
    hist, weather = synthetic(dt.date(2026, 10, 12), 17)
    hdf = _frame(hist)
    fall = _frame(forecast_day_ahead(hist, weather, dt.date(2026, 10, 25), TZ))
    assert (fall.groupby(["asset_id", "model"]).size() == 25).all()
    assert set(fall.model) == set(MODELS)
    f2 = fall[(fall.asset_id == "F2") & (fall.model == "seasonal_naive_7d")]
    d7 = _actual_profile(hdf, "feeder", "F2", dt.date(2026, 10, 18))
    np.testing.assert_allclose(f2.p50, d7.loc[_local_hours(f2.ts)])  # both 02:00 from 02:00
    after = _frame(forecast_day_ahead(hist, weather, dt.date(2026, 10, 27), TZ, NAIVE))
    f2 = after[(after.asset_id == "F2") & (after.model == "seasonal_naive_1d")]
    src = hdf[(hdf.asset_id == "F2") & (hdf.ts.dt.tz_convert(TZ).dt.date == dt.date(2026, 10, 25))]
    twice = src[src.ts.dt.tz_convert(TZ).dt.hour == 2].kwh
    assert len(twice) == 2 and len(f2) == 24
    assert f2.p50.iloc[2] == pytest.approx(twice.mean())


# --- short history --------------------------------------------------------------------------


def _since(hist: pa.Table, day: dt.date) -> pa.Table:
    start = pa.scalar(day_start_utc(day, TZ), UTC_TS)
    return hist.filter(pc.greater_equal(hist["ts"], start))


@pytest.mark.parametrize(
    ("days_before", "expected"),
    [
        (0, set()),
        (1, set()),  # only D-1 (nothing before the issue)
        (2, {"seasonal_naive_1d"}),  # D-2 complete
        (6, {"seasonal_naive_1d"}),  # D-6 .. D-2: no D-7
        (7, {"seasonal_naive_1d", "seasonal_naive_7d"}),  # D-7 .. D-2: 6 complete days
        (9, set(MODELS)),  # D-9 .. D-2: 8 complete days
    ],
)
def test_models_without_enough_history_are_skipped(data, days_before, expected):
    hist, weather = data
    target = dt.date(2026, 4, 10)
    out = forecast_day_ahead(
        _since(hist, target - dt.timedelta(days=days_before)), weather, target, TZ
    )
    assert out.schema.equals(LOAD_FORECASTS)
    assert set(out["model"].to_pylist()) == expected
    if expected:
        df = _frame(out)
        assert (df.groupby(["asset_id", "model"]).size() == 24).all()
        assert (df.p10 <= df.p50).all() and (df.p50 <= df.p90).all()


def test_incomplete_day_is_not_a_naive_profile(data):
    hist, weather = data
    target = dt.date(2026, 4, 10)
    since = _since(hist, target - dt.timedelta(days=2))
    partial = since.filter(pc.less(since["ts"], pa.scalar(dt.datetime(2026, 4, 8, 9), UTC_TS)))
    assert partial.num_rows > 0
    assert forecast_day_ahead(partial, weather, target, TZ).num_rows == 0
    empty = forecast_day_ahead(hist.slice(0, 0), weather.slice(0, 0), target, TZ)
    assert empty.num_rows == 0 and empty.schema.equals(LOAD_FORECASTS)


def test_missing_weather_degrades_not_crashes(data):
    hist, _ = data
    out = forecast_day_ahead(hist, None, dt.date(2026, 4, 8), TZ, models=("gbm",))
    df = _frame(out)
    assert len(df) > 0 and np.isfinite(df.p50).all()
    no_temps = hist.set_column(
        hist.schema.get_field_index("temperature_forecast_c"),
        "temperature_forecast_c",
        pa.nulls(hist.num_rows, pa.float64()),
    )
    out = forecast_day_ahead(no_temps, None, dt.date(2026, 4, 8), TZ, models=("gbm",))
    assert out.num_rows == len(df)


# --- skill and accuracy ---------------------------------------------------------------------


def test_gbm_beats_naive_1d_over_the_last_week(backtest):
    _, acc = backtest
    df = acc.to_pandas()
    assert df.target_day.nunique() == 7
    mae = df.groupby("model").mae.mean()
    print(f"mean daily MAE kWh over the last 7 target days: {mae.round(2).to_dict()}")
    assert mae["gbm"] < 0.75 * mae["seasonal_naive_1d"]
    assert mae["gbm"] < mae["seasonal_naive_7d"]
    gbm = df[df.model == "gbm"]
    assert gbm.rmae.median() < 0.8
    assert gbm.coverage_p10_p90.mean() > 0.5


def test_accuracy_covers_every_fully_observed_forecast(backtest, data):
    fc, acc = backtest
    assert acc.schema.equals(FORECAST_ACCURACY, check_metadata=True)
    assert acc.num_rows == len(fc.group_by(["asset_id", "model", "target_day"]).aggregate([]))
    # a target day without actuals yet gets no row
    hist, weather = data
    future = forecast_day_ahead(hist, weather, LAST + dt.timedelta(days=1), TZ, NAIVE)
    assert future.num_rows > 0
    assert forecast_accuracy(future, hist).num_rows == 0


def _fc_rows(model, p10, p50, p90, asset="F1"):
    n = len(p50)
    ts = [dt.datetime(2026, 5, 2, 22, tzinfo=dt.UTC) + dt.timedelta(hours=i) for i in range(n)]
    return pd.DataFrame(
        {
            "level": "feeder",
            "asset_id": asset,
            "model": model,
            "issued_at": dt.datetime(2026, 5, 1, 22, tzinfo=dt.UTC),
            "target_day": dt.date(2026, 5, 3),
            "ts": ts,
            "p10": p10,
            "p50": p50,
            "p90": p90,
        }
    )


def test_forecast_accuracy_hand_computed():
    fc = pd.concat(
        [
            _fc_rows("seasonal_naive_1d", [8, 8, 8, 8], [10, 10, 10, 10], [11, 11, 11, 11]),
            _fc_rows("gbm", [11, 8, 9, 11], [12, 9, 10, 12], [13, 10, 12, 12.5]),
            _fc_rows("seasonal_naive_1d", [5, 5, 5, 5], [5, 5, 5, 5], [5, 5, 5, 5], "F2"),
            _fc_rows("gbm", [4, 4, 4, 4], [5, 6, 5, 5], [6, 6, 6, 6], "F2"),
            _fc_rows("seasonal_naive_1d", [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], "F3"),
        ],
        ignore_index=True,
    )
    forecasts = pa.Table.from_pandas(fc, preserve_index=False)
    actual = pd.DataFrame(
        {
            "level": "feeder",
            "asset_id": ["F1"] * 4 + ["F2"] * 4 + ["F3"] * 3,
            "ts": list(fc.ts[:4]) * 2 + list(fc.ts[:3]),
            "kwh": [12.0, 9.0, 10.0, 13.0] + [5.0] * 4 + [1.0] * 3,
        }
    )
    acc = forecast_accuracy(forecasts, pa.Table.from_pandas(actual, preserve_index=False))
    assert acc.schema.equals(FORECAST_ACCURACY, check_metadata=True)
    rows = {(r["asset_id"], r["model"]): r for r in acc.to_pylist()}
    assert set(rows) == {
        ("F1", "gbm"),
        ("F1", "seasonal_naive_1d"),
        ("F2", "gbm"),
        ("F2", "seasonal_naive_1d"),
    }
    naive = rows[("F1", "seasonal_naive_1d")]
    assert naive["hours"] == 4
    assert naive["mae"] == pytest.approx((2 + 1 + 0 + 3) / 4)
    assert naive["rmae"] == pytest.approx(1.0)
    assert naive["coverage_p10_p90"] == pytest.approx(2 / 4)  # 9 and 10 inside [8, 11]
    gbm = rows[("F1", "gbm")]
    assert gbm["mae"] == pytest.approx((0 + 0 + 0 + 1) / 4)
    assert gbm["mae_naive_1d"] == pytest.approx(1.5)
    assert gbm["rmae"] == pytest.approx(0.25 / 1.5)
    assert gbm["coverage_p10_p90"] == pytest.approx(3 / 4)  # 13 above 12.5
    f2 = rows[("F2", "gbm")]
    assert f2["mae"] == pytest.approx(0.25) and f2["mae_naive_1d"] == 0.0
    assert f2["rmae"] is None
    assert rows[("F2", "seasonal_naive_1d")]["rmae"] is None


def test_metrics():
    a, p = [1.0, 2.0, 0.0, 4.0], [2.0, 2.0, 1.0, 2.0]
    assert metrics.mae(a, p) == pytest.approx(1.0)
    assert metrics.rmse(a, p) == pytest.approx(np.sqrt(6 / 4))
    assert metrics.mape(a, p) == pytest.approx(100 * (1.0 + 0.0 + 0.5) / 3)  # zero left out
    assert np.isnan(metrics.mape([0.0, 0.0], [1.0, 1.0]))
    assert metrics.pinball_loss(a, p, 0.9) == pytest.approx((0.1 + 0 + 0.1 + 1.8) / 4)
    assert metrics.coverage(a, [0, 0, 0, 5], [1, 1, 1, 6]) == pytest.approx(0.5)
    assert np.isnan(metrics.mae([], []))


# --- determinism ----------------------------------------------------------------------------


def test_deterministic_and_independent_of_row_order(data, forecast):
    """Recomputed from shuffled inputs, the forecast is identical to the one in the backtest."""
    hist, weather = data
    rng = np.random.default_rng(0)
    shuffled = forecast_day_ahead(
        hist.take(rng.permutation(hist.num_rows)),
        weather.take(rng.permutation(weather.num_rows)),
        dt.date(2026, 4, 8),
        TZ,
    )
    assert shuffled.equals(forecast)


def _issued(day: dt.date, model: str, error: float) -> dict:
    issued = issue_time(day, TZ)
    return {
        "level": "feeder",
        "asset_id": "F1",
        "model": model,
        "issued_at": issued,
        "target_day": day,
        "ts": issued + dt.timedelta(days=1),
        "p10": 9.0 + error,
        "p50": 10.0 + error,
        "p90": 11.0 + error,
    }


def test_the_model_is_chosen_on_two_rolling_folds_and_the_folds_are_stored():
    """gbm is far better on the newer fold only, ridge steady on both: ridge has the lower
    mean over the folds; a model scored on the newer fold only is not chosen over them."""
    from smartgrid_assets.pipeline.forecasts import choose_models

    target = dt.date(2026, 4, 30)
    days = [target - dt.timedelta(days=d) for d in range(2, 30)]  # D-29 .. D-2
    newer = target - dt.timedelta(days=15)
    rows, actuals = [], []
    for day in days:
        late = day >= newer
        rows.append(_issued(day, "seasonal_naive_1d", 5.0))
        rows.append(_issued(day, "gbm", 0.5 if late else 6.0))
        rows.append(_issued(day, "ridge", 2.0))
        if late:
            rows.append(_issued(day, "prophet", 0.1))
        actuals.append({"level": "feeder", "asset_id": "F1", "ts": rows[-1]["ts"], "kwh": 10.0})
    earlier = pa.Table.from_pylist(rows)
    choice = choose_models(
        earlier,
        pa.Table.from_pylist(actuals),
        pd.DataFrame({"level": ["feeder", "feeder"], "asset_id": ["F1", "F2"]}),
        issue_time(target, TZ),
        target,
        "3",
    ).to_pylist()
    assert [c["asset_id"] for c in choice] == ["F1", "F2"]
    f1, f2 = choice
    assert f1["model"] == "ridge" and f1["mae_folds"] == [2.0, 2.0] and f1["mae"] == 2.0
    assert f1["days_scored"] == 28 and f1["gbm_version"] == "3"
    assert f2["model"] == "gbm" and f2["mae_folds"] is None and f2["days_scored"] == 0


def test_a_series_too_short_for_the_learned_models_is_named_with_its_reason(data):
    from smartgrid_assets.pipeline.forecasts import naive_only

    hist, weather = data
    target = dt.date(2026, 4, 10)
    short = _since(hist, target - dt.timedelta(days=6))  # D-6 .. D-2: naive-1d only
    out = forecast_day_ahead(short, weather, target, TZ)
    reasons = naive_only(out, ForecastConfig())
    assert set(reasons) == set(out["asset_id"].to_pylist()) and reasons
    assert all("fewer than 8 complete local days" in why for why in reasons.values())
    assert naive_only(forecast_day_ahead(hist, weather, target, TZ), ForecastConfig()) == {}
