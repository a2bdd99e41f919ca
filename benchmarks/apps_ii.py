"""Applications II on PostgreSQL: driving scores and a demand-response settlement at fleet scale.

`measure(pg_url)` (merged into `benchmarks/apps.py`'s JSON) builds a throwaway schema, fills it
in the database with `generate_series` (not timed), and times:

- `insurance_s_10k`: the `dimo-insurance-v1` score of 10,000 vehicles, each with a month of
  trips (44 trips of 15 minutes, speed every 10 s: about 4,000 speed readings and 88 ignition
  readings a vehicle, 40 million readings in all), read from PostgreSQL in vehicle blocks
  (`indexer.apps.inputs.gather_fleet_inputs`) and scored by `indexer.apps.insurance.score`.
- `dr_settlement_s_10k`: a demand-response settlement over 10,000 vehicles, each charging
  every evening with power every 60 s (17 days, about 3,700 readings a vehicle): each
  vehicle's readings from its first baseline window to the event's end are read, and
  `indexer.apps.energy.deliver` / `settle` run over the event and its 10 baseline windows.

Both spread the vehicles over `workers` processes (one connection each, a larger young
generation for the garbage collector: `batch_process`), as a batch job would on the API's
replicas. The readings come as numpy columns (`apps.columnar`). Rows are laid out
by vehicle (as a table clustered or segmented by vehicle would be). Run alone:
`python -m benchmarks.apps_ii [PG_URL] [--vehicles N]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import secrets
import sys
import time
import types
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import create_engine, text

from apps.columnar import as_columns
from indexer.apps import energy, insurance
from indexer.apps.inputs import gather_fleet_inputs
from indexer.db import make_engine
from indexer.queries import CHARGE_POWER, IGNITION, IS_CHARGING, SPEED, signal_ids
from indexer.telemetry import TELEMETRY_TABLES, readings, readings_text

PG_URL: Final = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
VEHICLES: Final = 10_000
DAY: Final = 86_400_000
HOUR: Final = 3_600_000
#: 2026-01-05T00:00:00Z, a Monday: the month starts here.
MONTH_START: Final = 1_767_571_200_000
TRIPS: Final = 44
TRIP_READINGS: Final = 91
#: The event: 2026-01-21 (a Wednesday) 18:00-20:00 UTC; charging history from MONTH_START.
EVENT_START: Final = MONTH_START + 16 * DAY + 18 * HOUR
EVENT_END: Final = EVENT_START + 2 * HOUR
BLOCK: Final = 250
SIGNALS: Final = (SPEED, IGNITION, CHARGE_POWER, IS_CHARGING)


def batch_process() -> None:
    """Worker set-up of a batch job: the reports are many small lists of ints (inputs, events)
    without cycles, so the collector runs on a larger young generation."""
    gc.set_threshold(100_000, 50, 100)


def _url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


def _fill(url: str, vehicles: int) -> dict[str, int]:
    """Creates the telemetry tables and fills them with the fleet's month, in the database."""
    engine = make_engine(url)
    try:
        for table in TELEMETRY_TABLES:
            table.create(engine)
        indexes = [ix for table in (readings, readings_text) for ix in table.indexes]
        with engine.begin() as conn:
            ids = signal_ids(conn, SIGNALS)  # the ids the loader gives them
            # A throwaway copy: no WAL, and the indexes built once the rows are in.
            for table in (readings, readings_text):
                conn.execute(text(f"ALTER TABLE {table.name} SET UNLOGGED"))
            for ix in indexes:
                ix.drop(conn)
            for name in SIGNALS:
                conn.execute(
                    text("INSERT INTO signals VALUES (:i, :n)"), {"i": ids[name], "n": name}
                )
            # Trips: 2 a day on 22 days, 07:00+ and 23:30+ (partly at night), 15 minutes.
            conn.execute(
                text(
                    """
                INSERT INTO readings (vehicle_id, signal, ts, value, batch_id, leaf_index)
                SELECT v, :speed,
                  :m + (k / 2) * :day + CASE WHEN k % 2 = 0 THEN 7 * :hour ELSE 23.5 * :hour END
                     + (v % 50) * 60000 + i * 10000,
                  CASE WHEN i = 0 OR i = :n - 1 THEN 0.0 ELSE
                    greatest(0.0, least(150.0, 70 + 45 * sin((i + v) / 9.0)
                      + 20 * sin(i * 1.3 + k))) END,
                  v, k * :n + i
                FROM generate_series(1, :vehicles) v, generate_series(0, :trips - 1) k,
                     generate_series(0, :n - 1) i
                ORDER BY v, k, i
                """
                ),
                {
                    "m": MONTH_START,
                    "day": DAY,
                    "hour": HOUR,
                    "n": TRIP_READINGS,
                    "vehicles": vehicles,
                    "trips": TRIPS,
                    "speed": ids[SPEED],
                    "ignition": ids[IGNITION],
                },
            )
            conn.execute(
                text(
                    """
                INSERT INTO readings_text (vehicle_id, signal, ts, value, batch_id, leaf_index)
                SELECT v, :ignition,
                  :m + (k / 2) * :day + CASE WHEN k % 2 = 0 THEN 7 * :hour ELSE 23.5 * :hour END
                     + (v % 50) * 60000 + CASE WHEN e = 0 THEN -5000 ELSE (:n - 1) * 10000 + 5000
                     END,
                  CASE WHEN e = 0 THEN 'ON' ELSE 'OFF' END,
                  v, k * :n + (CASE WHEN e = 0 THEN 0 ELSE :n - 1 END)
                FROM generate_series(1, :vehicles) v, generate_series(0, :trips - 1) k,
                     generate_series(0, 1) e
                ORDER BY v, k, e
                """
                ),
                {
                    "m": MONTH_START,
                    "day": DAY,
                    "hour": HOUR,
                    "n": TRIP_READINGS,
                    "vehicles": vehicles,
                    "trips": TRIPS,
                    "speed": ids[SPEED],
                    "ignition": ids[IGNITION],
                },
            )
            # Charging every evening 17:30-20:30 (weekends 1 h less), power every 60 s; on the
            # event day every third vehicle draws 40 % less from 18:00 to 20:00.
            conn.execute(
                text(
                    """
                INSERT INTO readings (vehicle_id, signal, ts, value, batch_id, leaf_index)
                SELECT v, s.sig, t, s.val, 1000000 + v, d * 300 + i
                FROM generate_series(1, :vehicles) v, generate_series(0, 16) d,
                     generate_series(0, 179) i,
                     LATERAL (SELECT :m + d * :day + 17.5 * :hour + i * 60000 AS t) tt,
                     LATERAL (SELECT 3.6 + (v % 8) * 0.5 AS kw) kk,
                     LATERAL (VALUES
                       (:power, CASE WHEN d = 16 AND v % 3 = 0 AND t >= :es AND t < :ee
                                THEN kw * 0.6 ELSE kw * (0.97 + 0.06 * ((v * 31 + d * 7 + i) % 11)
                                / 10.0) END),
                       (:charging, 1.0)) s(sig, val)
                WHERE (d % 7 < 5 OR i < 120) AND (s.sig = :power OR i % 5 = 0)
                ORDER BY v, d, i
                """
                ),
                {
                    "m": MONTH_START,
                    "day": DAY,
                    "hour": HOUR,
                    "vehicles": vehicles,
                    "es": EVENT_START,
                    "ee": EVENT_END,
                    "power": ids[CHARGE_POWER],
                    "charging": ids[IS_CHARGING],
                },
            )
        with engine.begin() as conn:
            for ix in indexes:
                ix.create(conn)
            conn.execute(text("ANALYZE readings"))
            conn.execute(text("ANALYZE readings_text"))
            counts = {
                "readings": int(conn.execute(text("SELECT count(*) FROM readings")).scalar_one()),
                "readings_text": int(
                    conn.execute(text("SELECT count(*) FROM readings_text")).scalar_one()
                ),
            }
        return counts
    finally:
        engine.dispose()


def _blocks(vehicles: int) -> list[list[int]]:
    return [list(range(a, min(a + BLOCK, vehicles + 1))) for a in range(1, vehicles + 1, BLOCK)]


def _score_blocks(url: str, blocks: Sequence[Sequence[int]]) -> tuple[int, float, int, float]:
    """Scores the vehicles of `blocks`; returns (vehicles, sum of scores, events, CPU s)."""
    cpu = time.process_time()
    engine = make_engine(url)
    start, end = MONTH_START, MONTH_START + 30 * DAY
    n = events = 0
    total = 0.0
    try:
        with engine.connect() as conn:
            for block in blocks:
                for result in insurance.fleet_scores(conn, block, start, end).values():
                    n += 1
                    total += result.score
                    events += sum(len(t.events) for t in result.trips)
    finally:
        engine.dispose()
    return n, total, events, time.process_time() - cpu


def _settle_blocks(
    url: str, blocks: Sequence[Sequence[int]]
) -> tuple[list[energy.VehicleDelivery], float]:
    """Each vehicle's delivery in the event, and the CPU seconds it took."""
    cpu = time.process_time()
    params = energy.EnergyParams()
    windows = energy.comparable_windows(EVENT_START, EVENT_END, params)[: params.baseline_days]
    hold = int(params.max_hold_s * 1000)
    spans = [(a - hold, b) for a, b in [(EVENT_START, EVENT_END), *windows]]
    first = min(a for a, _ in spans)
    engine = make_engine(url)
    out = []
    try:
        with engine.connect() as conn:
            for block in blocks:
                got = gather_fleet_inputs(
                    conn, block, [CHARGE_POWER, IS_CHARGING], first, EVENT_END
                )
                for vid in block:
                    inputs = got[vid]
                    power = as_columns(inputs.get(CHARGE_POWER))
                    power = power.take(_inside(spans, power.ts))
                    out.append(
                        energy.deliver(
                            vid,
                            EVENT_START,
                            EVENT_END,
                            windows,
                            power,
                            inputs.get(IS_CHARGING),
                            params,
                        )
                    )
    finally:
        engine.dispose()
    return out, time.process_time() - cpu


def _inside(spans: Sequence[tuple[int, int]], ts: NDArray[np.int64]) -> NDArray[np.bool_]:
    inside = np.zeros(len(ts), bool)
    for a, b in spans:
        inside |= (ts >= a) & (ts < b)
    return inside


def _split(blocks: list[list[int]], workers: int) -> list[list[list[int]]]:
    return [blocks[i::workers] for i in range(workers)]


def measure(pg_url: str = PG_URL, vehicles: int = VEHICLES, workers: int = 2) -> dict[str, Any]:
    """Times the insurance scores and the demand-response settlement over `vehicles`.

    Args:
        pg_url: A PostgreSQL database to make a throwaway schema in (dropped afterwards).
        vehicles: Fleet size.
        workers: Processes the vehicles are spread over.

    Returns:
        `insurance_s_10k`, `dr_settlement_s_10k` (seconds, for `vehicles` vehicles) and what
        they ran over.
    """
    schema = f"apps_ii_{secrets.token_hex(5)}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _url(pg_url, schema)
    try:
        t = time.perf_counter()
        counts = _fill(url, vehicles)
        fill_s = time.perf_counter() - t
        parts = _split(_blocks(vehicles), workers)
        # The workers find the functions by module name: register this module under its
        # name if it was loaded from its file without it (as benchmarks/apps.py does).
        if __name__ not in sys.modules:
            registered = types.ModuleType(__name__)
            registered.__dict__.update(globals())
            sys.modules[__name__] = registered
        # The coordinating process collects every vehicle's result: it runs as the workers do.
        thresholds = gc.get_threshold()
        batch_process()
        with ProcessPoolExecutor(workers, initializer=batch_process) as pool:
            t = time.perf_counter()
            scored = list(pool.map(_score_blocks, [url] * workers, parts))
            insurance_s = time.perf_counter() - t
            t = time.perf_counter()
            settled = list(pool.map(_settle_blocks, [url] * workers, parts))
            delivered = [d for part, _ in settled for d in part]
            event = {
                "id": 1,
                "program_id": 1,
                "region": "bench",
                "start_ms": EVENT_START,
                "end_ms": EVENT_END,
                "requested_kw": 1000.0,
            }
            settlement = energy.settle(event, delivered, energy.EnergyParams())
            dr_s = time.perf_counter() - t
        gc.set_threshold(*thresholds)
        n = sum(s[0] for s in scored)
        return {
            "insurance_s_10k": round(insurance_s, 2),
            "dr_settlement_s_10k": round(dr_s, 2),
            "apps_ii_vehicles": vehicles,
            "apps_ii_workers": workers,
            "apps_ii_readings": counts["readings"] + counts["readings_text"],
            "apps_ii_fill_s": round(fill_s, 1),
            # CPU seconds of the workers (the client side; the database's work is not in it):
            # the wall times above stretch when other work shares the cores.
            "insurance_cpu_s": round(sum(s[3] for s in scored), 2),
            "dr_settlement_cpu_s": round(sum(c for _, c in settled), 2),
            "insurance_vehicles_scored": n,
            "insurance_mean_score": round(sum(s[1] for s in scored) / max(1, n), 3),
            "insurance_events": sum(s[2] for s in scored),
            "dr_settled_vehicles": settlement["totals"]["settled"],
            "dr_delivered_kwh": settlement["totals"]["delivered_kwh"],
        }
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    """Prints the figures as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pg_url", nargs="?", default=PG_URL)
    parser.add_argument("--vehicles", type=int, default=VEHICLES)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(measure(args.pg_url, args.vehicles, args.workers)))


if __name__ == "__main__":
    main()
