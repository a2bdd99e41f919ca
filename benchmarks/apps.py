"""Battery and finance summaries for a fleet, from PostgreSQL: `battery_finance_s_10k`.

Data (not timed). The simulator drives `TEMPLATES` vehicles for 30 days (physics, charging,
trips; the four simulated models, packs of 86-98 % SoH), and each vehicle's state is read the
way a connected-car API reports it, every `CADENCE_S` seconds while the vehicle is awake:
state of charge, pack current and voltage, and while driving speed and odometer, with the
ignition state at each trip's start and end. A fresh PostgreSQL schema gets the telemetry
tables, the templates' readings, and `VEHICLES` vehicles, each a copy of template
`id % TEMPLATES` (server-side `INSERT ... SELECT`), one bundle per vehicle and day. The
readings are put in directly: the loader's own figures are `make bench-indexer`'s.

Timed: for every vehicle, the readings of both applications are fetched from PostgreSQL
(`gather_fleet_inputs`, chunks of `CHUNK` vehicles, one query for the numeric signals and
one for the text ones, read as numpy columns: `apps.columnar`) and the battery
report (SoH with interval, sessions, degradation, charging behaviour) and the finance report
(odometer checks, usage, value with SoH) are computed, in `WORKERS` processes. At this
cadence the methods' gap parameters are widened to two readings (`max_gap_s`,
`trip_gap_s`) and a speed reading stands for one cadence. The workers run with a larger
young generation for the garbage collector (`batch_process`), as a batch job would.

Usage: `python benchmarks/apps.py [vehicles]`; the last line printed is one JSON object. If
`benchmarks/apps_ii.py` exists with `measure(pg_url) -> dict`, its figures are merged in.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import io
import json
import os
import secrets
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps import battery, finance  # noqa: E402
from device_bridge.simulator import FleetOptions, simulate_fleet  # noqa: E402
from device_bridge.simulator.vehicle import VehicleTrace  # noqa: E402
from indexer.apps.inputs import gather_fleet_inputs  # noqa: E402
from indexer.db import make_engine  # noqa: E402
from indexer.loader import create_tables  # noqa: E402
from indexer.queries import IGNITION, ODOMETER, SOC, SPEED  # noqa: E402

PG_URL = os.environ.get("DIMO_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
VEHICLES = 10_000
TEMPLATES = 8
DAYS = 30
CADENCE_S = 300
CHUNK = 250
WORKERS = 2
START = dt.date(2026, 3, 2)
START_MS = int(dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()) * 1000
END_MS = START_MS + DAYS * 86_400_000
TARGET_S = 60.0
#: The simulator's models as VehicleId records them (make, model, year).
FACTS = {
    "hyundai_kona_ev_2019": battery.VehicleFacts("Hyundai", "Kona Electric", 2019),
    "tesla_model3": battery.VehicleFacts("Tesla", "Model 3", 2021),
    "nissan_leaf_2018": battery.VehicleFacts("Nissan", "Leaf", 2018),
    "hyundai_canfd": battery.VehicleFacts("Hyundai", "Ioniq 5", 2022),
}
SIGNALS = (SOC, battery.CURRENT, battery.VOLTAGE, SPEED, ODOMETER, IGNITION)


def batch_process() -> None:
    """Worker set-up of a batch job: the reports are many small lists of ints (inputs, events)
    without cycles, so the collector runs on a larger young generation."""
    gc.set_threshold(100_000, 50, 100)


def _template_rows(trace: VehicleTrace, ids: dict[str, int]) -> list[tuple[int, int, float | str]]:
    """(signal id, ts, value) of one simulated vehicle at the API cadence."""
    rows: list[tuple[int, int, float | str]] = []
    for seg in trace.segments:
        step = max(1, CADENCE_S * 1_000_000 // seg.dt_us)
        for k in range(0, seg.n, step):
            ts = (seg.t0 + k * seg.dt_us) // 1000
            rows.append((ids[SOC], ts, round(seg.soc[k] * 2) / 2))
            rows.append((ids[battery.CURRENT], ts, round(seg.current[k], 1)))
            rows.append((ids[battery.VOLTAGE], ts, round(seg.voltage[k], 1)))
            if seg.kind == "drive":
                rows.append((ids[SPEED], ts, round(seg.speed_kmh[k], 1)))
                rows.append((ids[ODOMETER], ts, round(seg.odometer_km[k], 1)))
        if seg.kind == "drive":
            rows.append((ids[IGNITION], seg.t0 // 1000, "ON"))
            rows.append((ids[IGNITION], (seg.end - seg.dt_us) // 1000 + 1, "OFF"))
    return rows


def setup(engine: Engine, vehicles: int) -> tuple[int, dict[int, str]]:
    """Simulates the templates and fills the schema; returns the row count and models."""
    create_tables(engine)
    traces = simulate_fleet(
        FleetOptions(vehicles=TEMPLATES, days=DAYS, seed=42, soh_percent=None, start=START)
    )
    ids = {name: i + 1 for i, name in enumerate(SIGNALS)}
    numeric, texts = io.StringIO(), io.StringIO()
    for tv, trace in enumerate(traces):
        for sid, ts, value in _template_rows(trace, ids):
            day = (ts - START_MS) // 86_400_000 + 1
            out = texts if isinstance(value, str) else numeric
            out.write(f"{tv}\t{sid}\t{ts}\t{value}\t{day}\n")
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(
            "INSERT INTO signals (id, name) VALUES " + ",".join(f"({i}, %s)" for i in ids.values()),
            list(ids),
        )
        for table, buf, kind in (
            ("tmpl_n", numeric, "double precision"),
            ("tmpl_t", texts, "text"),
        ):
            cur.execute(
                f"CREATE TABLE {table} (tv int, signal smallint, ts bigint, value {kind}, day int)"
            )
            buf.seek(0)
            with cur.copy(f"COPY {table} FROM STDIN") as copy:  # type: ignore[attr-defined]
                copy.write(buf.read())
        for table, tmpl in (("readings", "tmpl_n"), ("readings_text", "tmpl_t")):
            cur.execute(
                f"INSERT INTO {table} (vehicle_id, signal, ts, value, batch_id, leaf_index) "
                f"SELECT g.v, t.signal, t.ts, t.value, t.day, g.v FROM {tmpl} t "
                f"JOIN generate_series(1, %s) g(v) ON t.tv = mod(g.v, {TEMPLATES})",
                (vehicles,),
            )
        cur.execute(
            "INSERT INTO bundles_index (batch_id, leaf_index, device, vehicle_id, sequence, "
            "window_start, window_end, data_hash, signature, wire) "
            "SELECT d, g.v, '0x' || lpad(to_hex(mod(g.v, 3) + 1), 40, '0'), g.v, d, "
            "%s + (d - 1) * 86400000::bigint, %s + d * 86400000::bigint, "
            "decode(repeat('00', 32), 'hex'), decode(repeat('00', 65), 'hex'), ''::bytea "
            "FROM generate_series(1, %s) g(v) CROSS JOIN generate_series(1, %s) d",
            (START_MS, START_MS, vehicles, DAYS),
        )
        cur.execute("SELECT count(*) FROM readings")
        count = int(cur.fetchone()[0])
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    models = {v: traces[v % TEMPLATES].config.model for v in range(1, vehicles + 1)}
    return count, models


def _work(args: tuple[str, str, list[int], dict[int, str]]) -> list[dict[str, Any]]:
    url, schema, ids, models = args
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    out = []
    try:
        with engine.connect() as conn:
            inputs = gather_fleet_inputs(conn, ids, SIGNALS, START_MS, END_MS)
        for vid in ids:
            facts = FACTS[models[vid]]
            nominal = battery.nominal_kwh_of(facts.make, facts.model) or 60.0
            params = battery.BatteryParams(nominal, max_gap_s=2 * CADENCE_S)
            b = battery.battery_report(inputs[vid], params, facts, START_MS, END_MS)
            f = finance.finance_report(
                inputs[vid],
                finance.FinanceParams(trip_gap_s=2 * CADENCE_S, max_hold_s=CADENCE_S),
                age_years=facts.age_years(END_MS),
                life_start_ms=START_MS - 86_400_000,
                end_ms=END_MS,
                battery={"method": b["method"], "soh": b["soh"]},
            )
            out.append(
                {
                    "vehicle": vid,
                    "soh": b["soh"]["percent"] if b["soh"] else None,
                    "flags": f["odometer"]["flags"],
                    "value": f["value"]["value"],
                }
            )
    finally:
        engine.dispose()
    return out


def measure(vehicles: int) -> dict[str, Any]:
    """Sets up a throwaway schema, times the summaries, drops the schema."""
    admin = create_engine(PG_URL)
    schema = f"bench_apps_{secrets.token_hex(4)}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        t = time.perf_counter()
        rows, models = setup(engine, vehicles)
        setup_s = time.perf_counter() - t
        ids = sorted(models)
        chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
        t = time.perf_counter()
        with ProcessPoolExecutor(WORKERS, initializer=batch_process) as pool:
            results = [
                r
                for part in pool.map(
                    _work,
                    [(PG_URL, schema, c, {v: models[v] for v in c}) for c in chunks],
                )
                for r in part
            ]
        elapsed = time.perf_counter() - t
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
    sohs = [r["soh"] for r in results if r["soh"] is not None]
    return {
        "vehicles": len(results),
        "readings": rows,
        "readings_per_vehicle": rows // max(1, vehicles),
        "cadence_s": CADENCE_S,
        "days": DAYS,
        "setup_s": round(setup_s, 1),
        "summaries_s": round(elapsed, 2),
        "vehicles_per_s": round(len(results) / elapsed, 1),
        "with_soh": len(sohs),
        "soh_median": round(statistics.median(sohs), 2) if sohs else None,
        "flagged": sum(1 for r in results if {"decrease", "implausible-jump"} & set(r["flags"])),
    }


def main() -> None:
    """Prints progress, then the figures as one JSON line."""
    vehicles = int(sys.argv[1]) if len(sys.argv) > 1 else VEHICLES
    figures = measure(vehicles)
    print(json.dumps(figures), file=sys.stderr)
    key = "battery_finance_s_10k" if vehicles == VEHICLES else f"battery_finance_s_{vehicles}"
    out: dict[str, Any] = {
        key: figures["summaries_s"],
        "battery_finance_target_s": TARGET_S,
        "battery_finance_readings": figures["readings"],
        "battery_finance_readings_per_vehicle": figures["readings_per_vehicle"],
        "battery_finance_cadence_s": CADENCE_S,
        "battery_finance_vehicles_per_s": figures["vehicles_per_s"],
        "battery_finance_soh_median": figures["soh_median"],
        "battery_finance_flagged": figures["flagged"],
    }
    if (ROOT / "benchmarks" / "apps_ii.py").exists():
        # Imported by its package name, so that its worker processes can pickle its functions.
        module = importlib.import_module("benchmarks.apps_ii")
        out.update(module.measure(PG_URL))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
