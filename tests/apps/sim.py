"""Simulated vehicles through the real bridge: simulator -> CAN frames (real DBCs) -> decoder ->
10 s windows -> bundles signed by the device key, with the simulator's ground truth alongside."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

from apps.audit import AppInputs
from apps.battery import SIGNALS as BATTERY_SIGNALS
from apps.finance import SIGNALS as FINANCE_SIGNALS
from device_bridge.decoder import Decoder
from device_bridge.mapping import load_databases, load_mapping
from device_bridge.simulator import FleetOptions, GroundTruth, simulate_fleet, vehicle_frames
from device_bridge.window import ClosedWindow, Windower
from indexer.queries import Reading
from protocol.bundle import Bundle, SignedBundle, sign_bundle
from protocol.eip712 import Eip712Domain

KONA = "hyundai_kona_ev_2019"
KONA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "can" / "kona-ev"
START = dt.date(2025, 1, 6)
START_MS = int(dt.datetime(2025, 1, 6, tzinfo=dt.UTC).timestamp()) * 1000
WINDOW_MS = 10_000
#: The signals a device sends in these tests: what the two applications read.
SENT = frozenset(BATTERY_SIGNALS) | frozenset(FINANCE_SIGNALS)


@functools.cache
def simulated(
    days: int, soh: float, seed: int, rollback: bool = False, rate_scale: float = 0.05
) -> tuple[tuple[ClosedWindow, ...], GroundTruth]:
    """One simulated Kona's closed 10 s windows (the applications' signals) and its truth."""
    options = FleetOptions(
        vehicles=1,
        days=days,
        seed=seed,
        models=(KONA,),
        soh_percent=soh,
        start=START,
        rollback_vehicles=frozenset({0}) if rollback else frozenset(),
        rate_scale=rate_scale,
        dbc_dir=KONA_DIR,
    )
    trace = simulate_fleet(options)[0]
    mapping = load_mapping(KONA)
    dbs = {name: db for name, (db, _) in load_databases(mapping, dbc_dir=KONA_DIR).items()}
    decoder = Decoder(mapping, dbs)
    windower = Windower(WINDOW_MS)
    closed: list[ClosedWindow] = []
    batch = []
    for msg in vehicle_frames(trace, rate_scale, dbc_dir=KONA_DIR):
        batch.append(msg)
        if len(batch) == 4096:
            closed += windower.add([r for r in decoder.decode_many(batch) if r.path in SENT])
            batch = []
    closed += windower.add([r for r in decoder.decode_many(batch) if r.path in SENT])
    closed += windower.flush()
    return tuple(w for w in closed if w.readings), trace.truth


def shift_for(after_ms: int) -> int:
    """A shift (a multiple of the window) moving the simulated start past `after_ms`."""
    delta = after_ms - START_MS + 86_400_000
    return -(-delta // WINDOW_MS) * WINDOW_MS


def sign_windows(
    windows: tuple[ClosedWindow, ...],
    key: Any,
    vehicle: int,
    domain: Eip712Domain,
    shift_ms: int,
    *,
    first_sequence: int = 0,
    schema: int = 1,
) -> list[SignedBundle]:
    """The windows as bundles (of bundle `schema`) of `vehicle` signed by device `key`, times
    moved by `shift_ms`."""
    out = []
    for i, w in enumerate(windows):
        readings = {
            name: [(ts + shift_ms, v) for ts, v in samples] for name, samples in w.readings.items()
        }
        bundle = Bundle(
            key.address,
            vehicle,
            first_sequence + i,
            w.start + shift_ms,
            w.end + shift_ms,
            readings,
            schema_version=schema,
        )
        out.append(sign_bundle(bundle, bytes(key.key), domain))
    return out


def direct_inputs(
    windows: tuple[ClosedWindow, ...], names: frozenset[str] | None = None
) -> AppInputs:
    """Inputs straight from the windows (batch 0, leaf = window index), for the pure tests."""
    series: dict[str, list[Reading]] = {}
    for i, w in enumerate(windows):
        for name, samples in w.readings.items():
            if names is not None and name not in names:
                continue
            for ts, v in samples:
                value: float | str = v if isinstance(v, str) else float(v)
                series.setdefault(name, []).append(Reading(ts, value, 0, i))
    return AppInputs(
        {k: sorted(v, key=lambda r: (r.ts, r.leaf_index)) for k, v in sorted(series.items())},
        {(0, i): "0x0000000000000000000000000000000000000001" for i in range(len(windows))},
    )
