"""The columnar fetch of a block of vehicles against the row path, on SQLite and PostgreSQL, and
the applications over columns against the same readings as lists."""

# The fixtures come from the indexer tests; their names are parameters here by design.
# ruff: noqa: F811

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine

from apps import battery, finance
from apps.audit import AppInputs
from apps.columnar import Columns, as_columns
from indexer.apps import insurance
from indexer.apps.inputs import fetch_fleet_columns, gather_fleet_inputs, gather_inputs
from indexer.queries import IGNITION, ODOMETER, SOC, SPEED, Reading, signal_ids
from indexer.telemetry import bundles_index, readings, readings_text, signals
from tests.apps.sim import direct_inputs, simulated
from tests.indexer.test_loader import engine  # noqa: F401 (SQLite and PostgreSQL indexes)

NUMERIC = (SOC, battery.CURRENT, battery.VOLTAGE, SPEED, ODOMETER)
SIGNALS = (*NUMERIC, IGNITION)
T0 = 1_767_571_200_000
DEVICES = ("0x" + "11" * 20, "0x" + "22" * 20)


@pytest.fixture
def index(engine: Engine) -> Engine:
    """An index with a small fleet, on SQLite and on PostgreSQL (`engine`'s two databases)."""
    _fill(engine)
    return engine


def _fill(engine: Engine) -> None:
    """Vehicles 1-6 with a day of readings in bundles of two devices, inserted out of order,
    with readings at one instant in two bundles (stored in reverse), and text ignition."""
    rng = np.random.default_rng(7)
    rows, text_rows, bundles = [], [], []
    with engine.begin() as conn:
        ids = signal_ids(conn, SIGNALS)
        conn.execute(signals.insert(), [{"id": ids[n], "name": n} for n in SIGNALS])
        for vid in range(1, 7):
            for hour in range(24):
                batch, leaf = 100 + hour, vid
                bundles.append(
                    {
                        "batch_id": batch,
                        "leaf_index": leaf,
                        "device": DEVICES[hour >= 12 and vid % 2],
                        "vehicle_id": vid,
                        "sequence": hour,
                        "window_start": T0 + hour * 3_600_000,
                        "window_end": T0 + (hour + 1) * 3_600_000,
                        "data_hash": b"\0" * 32,
                        "signature": b"\0" * 65,
                        "wire": b"",
                    }
                )
                for name in NUMERIC:
                    for k in range(0, 3_600_000, 600_000):
                        ts = T0 + hour * 3_600_000 + k + vid
                        value = float(np.round(rng.normal(50, 20), 1))
                        rows.append((vid, ids[name], ts, value, batch, leaf))
                text_rows.append((vid, ids[IGNITION], T0 + hour * 3_600_000, "ON", batch, leaf))
            # Two readings at one instant from two bundles, the later bundle stored first.
            for batch in (200, 199):
                bundles.append({**bundles[-1], "batch_id": batch, "sequence": batch})
                rows.append((vid, ids[SPEED], T0 + 5_000, float(batch), batch, vid))
        rng.shuffle(rows)
        keys = ("vehicle_id", "signal", "ts", "value", "batch_id", "leaf_index")
        conn.execute(readings.insert(), [dict(zip(keys, r, strict=True)) for r in rows])
        conn.execute(readings_text.insert(), [dict(zip(keys, r, strict=True)) for r in text_rows])
        conn.execute(bundles_index.insert(), bundles)


def _row_path(index: Engine, vid: int, start: int, end: int) -> AppInputs:
    with index.connect() as conn:
        spans = {name: [(start, end)] for name in SIGNALS}
        return gather_inputs(conn, vid, SIGNALS, start, end, spans)


@pytest.mark.parametrize("vehicles", [[1, 2, 3, 4, 5, 6], [2, 5, 6]])
def test_the_columnar_fetch_gives_the_readings_and_devices_of_the_row_path(
    index: Engine, vehicles: list[int]
) -> None:
    start, end = T0 + 1_800_000, T0 + 20 * 3_600_000
    with index.connect() as conn:
        got = fetch_fleet_columns(conn, vehicles, SIGNALS, start, end)
    assert sorted(got) == vehicles
    for vid in vehicles:
        rows = _row_path(index, vid, start, end)
        inputs = got[vid]
        assert list(inputs.series) == list(rows.series) == sorted(SIGNALS)
        for name, expected in rows.series.items():
            cols = inputs.series[name]
            assert isinstance(cols, Columns)
            assert list(cols) == list(expected)
        assert inputs.refs() == rows.refs()
        assert inputs.devices == rows.devices
        assert set(inputs.devices.values()) <= set(DEVICES)


def test_readings_at_one_instant_come_in_bundle_order(index: Engine) -> None:
    with index.connect() as conn:
        got = fetch_fleet_columns(conn, [3], [SPEED], T0, T0 + 10_000)
    speed = got[3].get(SPEED)
    assert [(r.ts, r.batch_id) for r in speed] == [
        (T0 + 3, 100),
        (T0 + 5_000, 199),
        (T0 + 5_000, 200),
    ]
    assert [r.value for r in speed][1:] == [199.0, 200.0]


def test_a_vehicle_without_readings_gets_empty_inputs_and_devices_can_be_skipped(
    index: Engine,
) -> None:
    with index.connect() as conn:
        got = gather_fleet_inputs(conn, [1, 99], SIGNALS, T0, T0 + 86_400_000, devices=False)
    assert got[99].series == {}
    assert got[99].refs() == []
    assert got[1].devices == {}
    assert len(got[1].get(SOC)) == 24 * 6


def test_the_fleet_score_over_columns_equals_the_score_of_the_row_path(index: Engine) -> None:
    start, end = T0, T0 + 86_400_000
    with index.connect() as conn:
        fleet = insurance.fleet_scores(conn, [1, 4], start, end)
    for vid in (1, 4):
        rows = _row_path(index, vid, start, end)
        one = insurance.score(vid, start, end, rows.get(SPEED), rows.get(IGNITION))
        assert fleet[vid].to_dict() == one.to_dict()
        assert fleet[vid].reading_count == len(rows.get(SPEED)) + len(rows.get(IGNITION))


# -------------------------------------------------------------------------------------------
# columns as a sequence, and the applications over columns
# -------------------------------------------------------------------------------------------


def test_columns_index_slice_and_iterate_as_the_readings_they_hold() -> None:
    rs = [Reading(T0 + i, float(i) / 2, 7, i) for i in range(5)]
    cols = as_columns(rs)
    assert len(cols) == 5
    assert cols[2] == rs[2]
    assert cols[-1] == rs[-1]
    assert list(cols[1:3]) == rs[1:3]
    assert cols == rs
    assert as_columns(cols) is cols
    assert cols.take(np.array([4, 0])) == [rs[4], rs[0]]
    names = as_columns([Reading(T0, "ON", 1, 0), Reading(T0 + 1, "OFF", 1, 1)])
    assert names.is_text
    assert [r.value for r in names] == ["ON", "OFF"]
    assert Columns.empty() == []


def test_the_battery_and_finance_reports_over_columns_equal_those_over_lists() -> None:
    windows, _ = simulated(4, 90.0, 5)
    lists = direct_inputs(windows)
    cols = AppInputs({k: Columns.of(v) for k, v in lists.series.items()}, lists.devices)
    start, end = windows[0].start, windows[-1].end
    params = battery.BatteryParams(64.0)
    facts = battery.VehicleFacts("Hyundai", "Kona Electric", 2019)
    a = battery.battery_report(lists, params, facts, start, end)
    b = battery.battery_report(cols, params, facts, start, end)
    assert a == b
    assert a["soh"] is not None
    fp = finance.FinanceParams()
    fa = finance.finance_report(lists, fp, age_years=5.0, life_start_ms=start, end_ms=end)
    fb = finance.finance_report(cols, fp, age_years=5.0, life_start_ms=start, end_ms=end)
    assert fa == fb
    assert fa["usage"]["trips"] > 0
